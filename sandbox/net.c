/* The sandboxes' network: a bridge with the host at .1 of the subnet, a tap per sandbox on it
 * (isolated from the other ports: sandboxes do not see each other), and an nftables table that
 * lets them reach the uplink's default route and nothing else: not the host (its services, its
 * tailnet and mesh addresses), not the LAN ranges, not the tailnet's or the mesh's; and only
 * from the subnet's addresses (a guest's forged source address goes nowhere). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "hash.h"
#include "log.h"
#include "run.h"
#include "sbx.h"
#include "util.h"

#define TABLE "pmoves_sandbox"

/* Where sandboxes never go, whatever the routes say (IPv6 is refused whole). */
static const char *const blocked[] = {
	"0.0.0.0/8",      /* this network */
	"10.0.0.0/8",     /* private, the mesh's 10.42/16 with it */
	"100.64.0.0/10",  /* carrier-grade NAT: the tailnet */
	"127.0.0.0/8",    /* loopback */
	"169.254.0.0/16", /* link local, cloud metadata */
	"172.16.0.0/12",  /* private */
	"192.168.0.0/16", /* private */
	"224.0.0.0/3",    /* multicast and reserved */
};

/* The interface of the default route into RET: 0, or -ENETUNREACH (none: RET is ""). */
static int default_route_if(char ret[IFNAMSIZ])
{
	ret[0] = 0;
	_cleanup_fclose_ FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return log_errno(-errno, "/proc/net/route");
	char line[256], name[IFNAMSIZ + 1];
	unsigned long dest, mask;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%16s %lx %*x %*x %*d %*d %*d %lx", name, &dest, &mask) == 3 && dest == 0 && mask == 0 &&
		    strlen(name) < IFNAMSIZ) {
			memcpy(ret, name, strlen(name) + 1);
			return 0;
		}
	return -ENETUNREACH;
}

/* The inet table: what the bridge may reach, through UPLINK ("" when there is none). */
static char *inet_text(const struct sbx_config *cfg, const char *uplink)
{
	char set[512] = "", net[20], out[64], nat[128] = "";
	for (size_t i = 0; i < ARRAY_SIZE(blocked); i++)
		names_add(set, sizeof(set), blocked[i], false);
	struct in_addr a = { htonl(cfg->net) };
	inet_ntop(AF_INET, &a, net, sizeof(net));
	/* No uplink: nothing from the bridge is forwarded at all, nothing masqueraded. */
	snprintf(out, sizeof(out), uplink[0] ? "oifname != \"%s\" " : "%s", uplink);
	if (uplink[0])
		snprintf(nat, sizeof(nat), "\t\tip saddr %s/%u oifname \"%s\" masquerade\n", net, cfg->prefix, uplink);
	return strdupf("table inet " TABLE " {\n"
		       "\tset blocked {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { %s }\n\t}\n"
		       "\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n"
		       "\t\tiifname \"%s\" drop\n\t}\n"
		       "\tchain forward {\n\t\ttype filter hook forward priority filter - 10; policy accept;\n"
		       "\t\tiifname \"%s\" ip saddr != %s/%u drop\n"
		       "\t\tiifname \"%s\" %sdrop\n"
		       "\t\tiifname \"%s\" meta nfproto != ipv4 drop\n"
		       "\t\tiifname \"%s\" ip daddr @blocked drop\n"
		       "\t\toifname \"%s\" ct state established,related accept\n"
		       "\t\toifname \"%s\" drop\n\t}\n"
		       "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		       "%s\t}\n}\n",
		       set, cfg->bridge, cfg->bridge, net, cfg->prefix, cfg->bridge, out, cfg->bridge, cfg->bridge,
		       cfg->bridge, cfg->bridge, nat);
}

/* Each tap speaks only as its sandbox: its MAC and address (bound when the tap is made,
 * sbx_net_attach), IPv4 and ARP, nothing else. Without it a guest could answer ARP for another
 * sandbox's address and take its replies. */
static const char bridge_text[] =
	"table bridge " TABLE " {\n"
	"\tset ports {\n\t\ttype ifname\n\t}\n"
	"\tset bound {\n\t\ttype ifname . ether_addr . ipv4_addr\n\t}\n"
	"\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n"
	"\t\tiifname @ports ether type != { ip, arp } drop\n"
	"\t\tiifname @ports ether type arp iifname . ether saddr . arp saddr ip != @bound drop\n"
	"\t\tiifname @ports ether type arp iifname . arp saddr ether . arp saddr ip != @bound drop\n"
	"\t\tiifname @ports ether type ip iifname . ether saddr . ip saddr != @bound drop\n\t}\n}\n";

char *sbx_net_nft(const struct sbx_config *cfg, const char *uplink)
{
	_cleanup_free_ char *inet = inet_text(cfg, uplink);
	return inet ? strdupf("%s%s", inet, bridge_text) : NULL;
}

static int run_quiet(char *const argv[], int in_fd)
{
	_cleanup_free_ char *out = NULL;
	struct run_opts o = { .capture = &out, .capture_stderr = true, .in_fd = in_fd };
	int r = run_argv(argv, &o);
	if (r != 0) {
		_cleanup_free_ char *cmd = argv_to_string(argv);
		log_error("%s: %s%s%s", cmd ? cmd : argv[0], r < 0 ? strerror(-r) : "failed", out && out[0] ? ": " : "",
			  out ? out : "");
		return r < 0 ? r : -EIO;
	}
	return 0;
}

/* nft -f - with TEXT: one transaction, all of it or nothing. */
static int nft_load(const char *text)
{
	char tmpl[] = "/tmp/pmoves-sandbox-nft.XXXXXX";
	_cleanup_close_ int fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "a temporary file for nft");
	unlink(tmpl);
	if (write_full(fd, text, strlen(text)) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return log_errno(-errno, "a temporary file for nft");
	return run_quiet((char *[]){ "nft", "-f", "-", NULL }, fd);
}

/* IPv4 forwarding for the packets that come in on IFNAME, not for the whole host: the kernel
 * asks the interface a packet arrived on. The bridge's, for what sandboxes send; the uplink's,
 * for the replies (the inet table lets nothing else from it reach the bridge; what else the
 * uplink may forward is the host's own firewall's business, as with ip_forward). The machine's
 * other interfaces (the LAN, the tailnet, the mesh) forward nothing for the sandboxes' sake.
 * An uplink left behind when the route moves keeps its forwarding until the next boot. */
static int write_sysctl(const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_full(fd, value, strlen(value)) < 0)
		return log_errno(-errno, "%s", path);
	return 0;
}

static int forward_on(const char *ifname)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
	return write_sysctl(path, "1\n");
}

bool sbx_net_link_exists(const char *name)
{
	char p[64];
	snprintf(p, sizeof(p), "/sys/class/net/%s", name);
	return access(p, F_OK) == 0;
}

/* The uplink the inet table was loaded with: STATE_DIR/net/uplink, locked while it is read,
 * compared and changed. Its fd, or -errno. */
static int uplink_record(const struct sbx_config *cfg, char ret[IFNAMSIZ])
{
	_cleanup_free_ char *dir = strdupf("%s/net", cfg->state_dir), *path = strdupf("%s/net/uplink", cfg->state_dir);
	if (!dir || !path)
		return -ENOMEM;
	int r = mkdir_p(cfg->state_dir, 0711);
	if (r < 0)
		return log_errno(r, "%s", cfg->state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "%s", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		r = log_errno(-errno, "%s", path);
		if (fd >= 0)
			close(fd);
		return r;
	}
	ssize_t n = pread(fd, ret, IFNAMSIZ - 1, 0);
	ret[n > 0 ? n : 0] = 0;
	return fd;
}

static int uplink_save(int fd, const char *uplink)
{
	if (ftruncate(fd, 0) < 0 || pwrite(fd, uplink, strlen(uplink), 0) != (ssize_t)strlen(uplink))
		return log_errno(-errno, "recording the uplink");
	return 0;
}

/* Without an uplink in the config, sandboxes leave where the default route leads now: a
 * machine whose DHCP answered after net-up (or that moved to another network) gets its inet
 * table again, atomically; the bridge table (the taps' bindings) is left alone. */
static int follow_default_route(const struct sbx_config *cfg)
{
	char now[IFNAMSIZ], was[IFNAMSIZ];
	if (cfg->uplink)
		return 0;
	default_route_if(now);
	_cleanup_close_ int fd = uplink_record(cfg, was);
	if (fd < 0)
		return fd;
	if (STREQ(now, was))
		return 0;
	_cleanup_free_ char *inet = inet_text(cfg, now);
	_cleanup_free_ char *all = inet ? strdupf("table inet " TABLE "\ndelete table inet " TABLE "\n%s", inet) : NULL;
	int r = all ? nft_load(all) : -ENOMEM;
	if (r < 0 || (now[0] && (r = forward_on(now)) < 0) || (r = uplink_save(fd, now)) < 0)
		return r;
	log_info("the default route now leads through %s: sandboxes leave there", now[0] ? now : "nothing");
	return 0;
}

int sbx_net_up(const struct sbx_config *cfg)
{
	if (!cfg->bridge[0]) {
		log_info("sandboxes have no network (bridge is empty): nothing to set up");
		return 0;
	}
	char uplink[IFNAMSIZ];
	int r = 0;
	/* An offline machine still runs sandboxes, with a network that leads nowhere until a
	 * default route appears (follow_default_route, when a sandbox starts). */
	if (cfg->uplink)
		snprintf(uplink, sizeof(uplink), "%s", cfg->uplink);
	else if (default_route_if(uplink) < 0)
		log_warn("no default route: sandboxes reach nothing until there is one");
	char was[IFNAMSIZ];
	_cleanup_close_ int record = uplink_record(cfg, was);
	if (record < 0)
		return record;
	_cleanup_free_ char *text = sbx_net_nft(cfg, uplink);
	char host[24];
	struct in_addr a = { htonl(cfg->net + 1) };
	inet_ntop(AF_INET, &a, host, 16);
	snprintf(host + strlen(host), sizeof(host) - strlen(host), "/%u", cfg->prefix);
	if (!text)
		return -ENOMEM;
	if (!sbx_net_link_exists(cfg->bridge) &&
	    (r = run_quiet((char *[]){ "ip", "link", "add", cfg->bridge, "type", "bridge", NULL }, -1)) < 0)
		return r;
	if ((r = run_quiet((char *[]){ "ip", "addr", "replace", host, "dev", cfg->bridge, NULL }, -1)) < 0 ||
	    (r = run_quiet((char *[]){ "ip", "link", "set", cfg->bridge, "up", NULL }, -1)) < 0)
		return r;
	/* The tables replace themselves whole: declared, deleted, then written. */
	_cleanup_free_ char *all = strdupf("table inet " TABLE "\ndelete table inet " TABLE "\n"
					   "table bridge " TABLE "\ndelete table bridge " TABLE "\n%s",
					   text);
	if (!all || (r = nft_load(all)) < 0 || (r = uplink_save(record, cfg->uplink ? "" : uplink)) < 0)
		return r < 0 ? r : -ENOMEM;
	if ((r = forward_on(cfg->bridge)) < 0 || (uplink[0] && (r = forward_on(uplink)) < 0))
		return r;
	log_info("bridge %s at %s, sandboxes leave through %s", cfg->bridge, host, uplink[0] ? uplink : "nothing");
	return 0;
}

int sbx_net_down(const struct sbx_config *cfg)
{
	int r = 0;
	if (cfg->bridge[0] && sbx_net_link_exists(cfg->bridge))
		r = run_quiet((char *[]){ "ip", "link", "del", cfg->bridge, NULL }, -1);
	int k = nft_load("table inet " TABLE "\ndelete table inet " TABLE "\n"
			 "table bridge " TABLE "\ndelete table bridge " TABLE "\n");
	return r < 0 ? r : k;
}

/* The lowest free address of the subnet, held by a lock on STATE_DIR/net/N for as long as the
 * launcher lives: a launcher that died frees its address with its descriptors. */
static int take_address(struct sbx *s)
{
	const struct sbx_config *c = s->cfg;
	_cleanup_free_ char *dir = strdupf("%s/net", c->state_dir);
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "%s", dir);
	uint32_t hosts = (1u << (32 - c->prefix)) - 2;
	for (uint32_t n = 2; n <= hosts; n++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%u", dir, n);
		int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return log_errno(-errno, "%s", p);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			continue;
		}
		struct in_addr a = { htonl(c->net + n) }, g = { htonl(c->net + 1) };
		char ip[16];
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		snprintf(s->addr, sizeof(s->addr), "%s/%u", ip, c->prefix);
		inet_ntop(AF_INET, &g, s->gw, sizeof(s->gw));
		/* A locally administered MAC from the address: unique on the bridge. */
		snprintf(s->mac, sizeof(s->mac), "0a:50:4d:%02x:%02x:%02x", (c->net + n) >> 16 & 0xff,
			 (c->net + n) >> 8 & 0xff, (c->net + n) & 0xff);
		s->addr_lock = fd;
		return 0;
	}
	log_error("every address of %s/%u is in use", inet_ntoa((struct in_addr){ htonl(c->net) }), c->prefix);
	return -EADDRINUSE;
}

/* The tap's binding in the bridge table: one of the sandboxes' ports, whose frames carry its
 * MAC and address, or are dropped. Made before the tap joins the bridge. */
static int bind_tap(struct sbx *s, bool add)
{
	const char *verb = add ? "add" : "delete";
	_cleanup_free_ char *text = strdupf("%s element bridge " TABLE " ports { \"%s\" }\n"
					    "%s element bridge " TABLE " bound { \"%s\" . %s . %.*s }\n",
					    verb, s->tap, verb, s->tap, s->mac, (int)strcspn(s->addr, "/"), s->addr);
	int r = text ? nft_load(text) : -ENOMEM;
	if (r < 0 && add)
		log_error("binding %s to %s: is the network up (pmoves-sandbox net-up)?", s->tap, s->addr);
	s->bound = add && r == 0;
	return r;
}

void sbx_net_tap_name(const char *id, char ret[16])
{
	snprintf(ret, 16, "sbx%.12s", id + 4);
}

int sbx_net_attach(struct sbx *s, bool named)
{
	const struct sbx_config *c = s->cfg;
	int r = follow_default_route(c);
	if (r < 0)
		return r;
	r = take_address(s);
	if (r < 0)
		return r;
	/* A tap that lives as long as its descriptor: the VMM inherits it, and when both are
	 * gone the kernel removes the tap. Its name comes from the sandbox's id. */
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "/dev/net/tun");
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	sbx_net_tap_name(s->id, ifr.ifr_name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    (named && (ioctl(fd, TUNSETOWNER, (unsigned long)s->uid) < 0 || ioctl(fd, TUNSETPERSIST, 1UL) < 0))) {
		r = log_errno(-errno, "making tap %s", ifr.ifr_name);
		close(fd);
		return r;
	}
	snprintf(s->tap, sizeof(s->tap), "%s", ifr.ifr_name);
	if (named)
		close(fd);
	else
		s->tap_fd = fd;
	if ((r = bind_tap(s, true)) < 0)
		return r;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return log_errno(-errno, "socket");
	struct ifreq br = { 0 };
	snprintf(br.ifr_name, IFNAMSIZ, "%s", c->bridge);
	struct ifreq up = { 0 };
	snprintf(up.ifr_name, IFNAMSIZ, "%s", s->tap);
	if (ioctl(sock, SIOCGIFINDEX, &up) < 0) {
		r = log_errno(-errno, "%s", s->tap);
		close(sock);
		return r;
	}
	br.ifr_ifindex = up.ifr_ifindex;
	if (ioctl(sock, SIOCBRADDIF, &br) < 0) {
		r = log_errno(-errno, "adding %s to bridge %s (pmoves-sandbox net-up makes it)", s->tap, c->bridge);
	} else if (ioctl(sock, SIOCGIFFLAGS, &up) < 0 || (up.ifr_flags |= IFF_UP, ioctl(sock, SIOCSIFFLAGS, &up) < 0)) {
		r = log_errno(-errno, "bringing %s up", s->tap);
	} else {
		/* Isolated ports forward only to the bridge's non-isolated ports: the host. */
		char p[96];
		snprintf(p, sizeof(p), "/sys/class/net/%s/brport/isolated", s->tap);
		r = write_sysctl(p, "1\n");
	}
	close(sock);
	return r;
}

void sbx_net_handed_over(struct sbx *s)
{
	if (s->tap_fd >= 0)
		close(s->tap_fd);
	s->tap_fd = -1;
}

/* A persistent tap goes when it is told to: opened by its name and made not persistent. */
static void remove_named_tap(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 0UL) < 0)
		log_errno(-errno, "removing tap %s", name);
	if (fd >= 0)
		close(fd);
}

void sbx_net_detach(struct sbx *s)
{
	if (s->bound)
		bind_tap(s, false);
	if (s->tap_fd < 0 && s->tap[0])
		remove_named_tap(s->tap);
	s->tap[0] = 0;
	sbx_net_handed_over(s);
	if (s->addr_lock >= 0)
		close(s->addr_lock); /* the lock file stays: it is a slot, not a sandbox's data */
	s->addr_lock = -1;
}
