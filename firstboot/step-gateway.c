/* gateway: an edge router with no open ports: WAN by DHCP, a LAN with DHCP and DNS from
 * dnsmasq, NAT from the LAN out of the WAN, and nothing accepted from the WAN but replies.
 *
 * The two NICs: each of "wan" and "lan" is named by "mac" (renamed to wan/lan by a .link file),
 * by "name" (used as it is, no .link), or by neither: by order. By order means the ethernet
 * NICs of /sys/class/net (physical: not under /sys/devices/virtual; type 1; not wireless)
 * sorted by their sysfs device path (PCI domain:bus:device.function, then deeper), leaving out
 * a NIC the other side names; WAN takes the first, LAN the next. The order is read once, on the
 * machine, and pinned by MAC in the .link files: later boots do not depend on it.
 *
 * Persistent configuration (every boot brings it up without us):
 *   /etc/systemd/network/10-pmoves-gateway-{wan,lan}.link     MACAddress= -> Name=wan / lan
 *   /etc/systemd/network/10-pmoves-gateway-{wan,lan}.network  WAN: DHCP; LAN: the static
 *                                                              address; both IPForward=ipv4
 *   /etc/sysctl.d/90-pmoves-gateway.conf                       net.ipv4.ip_forward = 1
 *   /etc/nftables.conf                                         table inet pmoves_gateway
 *   /etc/dnsmasq.d/pmoves-gateway.conf                         DHCP and DNS on the LAN only
 * and systemd-networkd, nftables and dnsmasq enabled. On the running system it is applied now:
 * NICs renamed (ip link set name), forwarding on (sysctl -p), the ruleset loaded
 * (systemctl reload-or-restart nftables: never a stop, whose 'flush ruleset' would take
 * tailscaled's rules too), networkd reloaded or started and dnsmasq restarted (--no-block: at
 * boot they are ordered after us).
 *
 * The ruleset replaces only its own table (declare, delete, define): other tables (Tailscale's)
 * stay. Input: policy drop; established/related, loopback, the LAN and tailscale0 accepted;
 * from the WAN only DHCP replies and the ICMPv6 that IPv6 needs. Forward: policy drop; LAN to
 * WAN, tailnet to and from LAN, established/related. NAT: the LAN subnet masqueraded out of
 * the WAN. No port forwards. */
#include "fb-fileset.h"
#include "fb-lan.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#define NETWORK_DIR "/etc/systemd/network"
#define SYSCTL_FILE "/etc/sysctl.d/90-pmoves-gateway.conf"
#define NFT_FILE "/etc/nftables.conf"
#define DNSMASQ_FILE "/etc/dnsmasq.d/pmoves-gateway.conf"
#define SYS_NET "/sys/class/net"
#define NFT_TABLE "pmoves_gateway"
#define NETWORKD "systemd-networkd.service"
#define NFTABLES "nftables.service"
#define DNSMASQ "dnsmasq.service"
#define HEADER "# Written by pmoves-firstboot (gateway step): change its config, not this file.\n"
#define DEFAULT_LAN "192.168.50.1/24"
#define MAX_NICS 32
#define WAIT_NICS 10 /* seconds */

/* ---- config schema (the step record's .schema) ---- */

static json_object *obj_of(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int valid_lan_address(struct fb_check *c, json_object *v)
{
	struct fb_subnet sn;
	const char *why = NULL;
	if (fb_subnet_parse(json_object_get_string(v), &sn, &why) < 0)
		return fb_bad(c, "'%.40s' is not the LAN address: %s (such as \"192.168.50.1/24\")", json_object_get_string(v), why);
	return 0;
}

static int valid_nic(struct fb_check *c, json_object *v)
{
	if (fb_json_has(v, "name") && fb_json_has(v, "mac"))
		return fb_bad(c, "'name' and 'mac' are both given: one only (or neither: by order)");
	return 0;
}

/* Checks across the section: what one source holds (another source may hold the rest; the
 * merged config is checked too, and apply refuses what is still wrong with the defaults). */
static int valid_gateway(struct fb_check *c, json_object *v)
{
	json_object *wan = obj_of(v, "wan"), *lan = obj_of(v, "lan"), *dhcp = obj_of(v, "dhcp");
	const char *wn = fb_json_str(wan, "name", NULL), *ln = fb_json_str(lan, "name", NULL);
	const char *wm = fb_json_str(wan, "mac", NULL), *lm = fb_json_str(lan, "mac", NULL);
	if (wn && ln && STREQ(wn, ln))
		return fb_bad(c, "WAN and LAN are the same NIC '%s': the gateway needs two", wn);
	if (wm && lm && !strcasecmp(wm, lm))
		return fb_bad(c, "WAN and LAN are the same NIC (MAC '%s'): the gateway needs two", wm);
	if ((wn && STREQ(wn, "lan")) || (ln && STREQ(ln, "wan")))
		return fb_bad(c, "the WAN cannot be named 'lan' nor the LAN 'wan'");
	if (fb_json_has(lan, "address") && (fb_json_has(dhcp, "range_start") || fb_json_has(dhcp, "range_end"))) {
		struct fb_subnet sn;
		const char *why = NULL;
		uint32_t a, b;
		_cleanup_free_ char *msg = NULL;
		if (fb_subnet_parse(fb_json_str(lan, "address", ""), &sn, &why) < 0)
			return -EINVAL; /* said already */
		if (fb_dhcp_range(&sn, fb_json_str(dhcp, "range_start", NULL), fb_json_str(dhcp, "range_end", NULL), &a, &b, &msg) < 0)
			return fb_bad(c, "bad DHCP range: %s", msg ? msg : "invalid");
	}
	return 0;
}

static const struct fb_field wan_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fb_fmt_ifname, 0, 0 },
	{ "mac", FB_T_STRING, NULL, NULL, &fb_fmt_mac, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};

static const struct fb_field lan_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fb_fmt_ifname, 0, 0 },
	{ "mac", FB_T_STRING, NULL, NULL, &fb_fmt_mac, 0, 0 },
	{ "address", FB_T_STRING, NULL, valid_lan_address, NULL, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};

static const struct fb_field dhcp_fields[] = {
	FB_DHCP_FIELDS,
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};

static const struct fb_field gateway_fields[] = {
	{ "wan", FB_T_OBJECT, wan_fields, valid_nic, NULL, 0, 0 },
	{ "lan", FB_T_OBJECT, lan_fields, valid_nic, NULL, 0, 0 },
	{ "dhcp", FB_T_OBJECT, dhcp_fields, NULL, NULL, 0, 0 },
	{ "dns", FB_T_OBJECT, fb_dns_fields, NULL, NULL, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field gateway_schema = { NULL, FB_T_OBJECT, gateway_fields, valid_gateway, NULL, 0, 0 };

/* ---- the machine's NICs ---- */

struct nic {
	char name[16];
	char mac[18];
	char path[256]; /* the sysfs device path, for the order */
};

static int nic_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nic *)a)->path, ((const struct nic *)b)->path);
}

/* The physical ethernet NICs, sorted by device path. -ENOENT: no /sys/class/net. */
static int list_nics(struct nic *ret, size_t max, size_t *ret_n)
{
	int fd = fb_open(SYS_NET, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));) {
		char p[sizeof(SYS_NET) + NAME_MAX + 32], line[64];
		struct nic x = { 0 };
		if (de->d_name[0] == '.' || !fb_ifname_ok(de->d_name))
			continue;
		ssize_t k = readlinkat(dirfd(d), de->d_name, x.path, sizeof(x.path) - 1);
		if (k <= 0 || (size_t)k >= sizeof(x.path) - 1 || strstr(x.path, "/virtual/"))
			continue; /* not a symlink to a device (virtual, or too deep to sort) */
		x.path[k] = '\0';
		snprintf(p, sizeof(p), SYS_NET "/%s/type", de->d_name);
		if (fb_read_line(p, line, sizeof(line)) < 0 || !STREQ(line, "1"))
			continue;
		snprintf(p, sizeof(p), SYS_NET "/%s/wireless", de->d_name);
		if (fb_exists(p) > 0)
			continue;
		snprintf(p, sizeof(p), SYS_NET "/%s/phy80211", de->d_name);
		if (fb_exists(p) > 0)
			continue;
		snprintf(p, sizeof(p), SYS_NET "/%s/address", de->d_name);
		if (fb_read_line(p, line, sizeof(line)) < 0 || !fb_parse_mac(line, x.mac))
			continue;
		memcpy(x.name, de->d_name, strlen(de->d_name) + 1);
		if (n < max)
			ret[n++] = x;
	}
	closedir(d);
	qsort(ret, n, sizeof(*ret), nic_cmp);
	*ret_n = n;
	return 0;
}

/* ---- the gateway, from a valid section ---- */

enum how { BY_NAME, BY_MAC, BY_ORDER };
static const char *const how_names[] = { "by name", "by MAC", "by order" };

struct side {
	const char *role; /* "wan", "lan" */
	enum how how;
	char ifname[16]; /* the name it has once set up: "wan"/"lan", or the configured name */
	char mac[18];    /* BY_MAC and BY_ORDER */
	char current[16]; /* on the machine now, when known */
};

struct gw {
	struct side wan, lan;
	struct fb_subnet sn;
	char addr[24];
	char net[16];
	uint32_t start, end;
	char lease[24];
	json_object *upstream;
	const char *domain;
};

static int side_init(struct side *s, const char *role, json_object *o)
{
	memset(s, 0, sizeof(*s));
	s->role = role;
	const char *name = fb_json_str(o, "name", NULL), *mac = fb_json_str(o, "mac", NULL);
	if (name) {
		s->how = BY_NAME;
		memcpy(s->ifname, name, strlen(name) + 1);
		return 0;
	}
	memcpy(s->ifname, role, strlen(role) + 1);
	if (mac) {
		s->how = BY_MAC;
		return fb_parse_mac(mac, s->mac) ? 0 : -EINVAL;
	}
	s->how = BY_ORDER;
	return 0;
}

static bool nic_is(const struct nic *n, const struct side *s)
{
	return (s->how == BY_NAME && STREQ(n->name, s->ifname)) || (s->how != BY_NAME && s->mac[0] && STREQ(n->mac, s->mac));
}

/* NICs by order, and the current names of NICs by MAC. -ENODEV with *ret_msg: not there (yet). */
static int resolve_nics(struct gw *g, char **ret_msg)
{
	struct nic nics[MAX_NICS];
	size_t n = 0;
	bool order = g->wan.how == BY_ORDER || g->lan.how == BY_ORDER;
	int r = list_nics(nics, ARRAY_SIZE(nics), &n);
	if (r == -ENOENT && !order)
		return 0; /* a tree: names and MACs are enough to write the files */
	if (r < 0) {
		*ret_msg = r == -ENOENT ? fb_strdupf("no '%s' to choose the NICs by order from: trying again on the machine", SYS_NET)
					: fb_strdupf("cannot read '%s': %s", SYS_NET, strerror(-r));
		return r == -ENOENT ? -ENODEV : r;
	}
	struct side *sides[] = { &g->wan, &g->lan };
	for (size_t k = 0; k < 2; k++) {
		struct side *s = sides[k], *other = sides[1 - k];
		if (s->how != BY_ORDER)
			continue;
		for (size_t i = 0; i < n && !s->mac[0]; i++) {
			if (nic_is(&nics[i], other))
				continue;
			memcpy(s->mac, nics[i].mac, sizeof(s->mac));
		}
		if (!s->mac[0]) {
			*ret_msg = fb_strdupf("found %zu ethernet NIC%s in '%s', the gateway needs two (WAN and LAN): trying again on a later run",
					      n, n == 1 ? "" : "s", SYS_NET);
			return -ENODEV;
		}
	}
	for (size_t k = 0; k < 2; k++) {
		struct side *s = sides[k];
		for (size_t i = 0; i < n; i++)
			if (nic_is(&nics[i], s))
				memcpy(s->current, nics[i].name, sizeof(s->current));
		if (s->how == BY_MAC && !s->current[0] && fb_live()) {
			*ret_msg = fb_strdupf("no NIC has MAC '%s' (the %s): trying again on a later run", s->mac, s->role);
			return -ENODEV;
		}
	}
	if (g->wan.mac[0] && STREQ(g->wan.mac, g->lan.mac)) {
		*ret_msg = fb_strdupf("WAN and LAN are the same NIC (MAC '%s')", g->wan.mac);
		return -EINVAL;
	}
	if (g->wan.current[0] && STREQ(g->wan.current, g->lan.current)) {
		*ret_msg = fb_strdupf("WAN and LAN are the same NIC '%s'", g->wan.current);
		return -EINVAL;
	}
	return 0;
}

static int gw_load(json_object *section, struct gw *g, char **ret_msg)
{
	json_object *lan = obj_of(section, "lan"), *dhcp = obj_of(section, "dhcp"), *dns = obj_of(section, "dns"), *v;
	memset(g, 0, sizeof(*g));
	const char *why = NULL;
	_cleanup_free_ char *msg = NULL;
	if (side_init(&g->wan, "wan", obj_of(section, "wan")) < 0 || side_init(&g->lan, "lan", lan) < 0 ||
	    fb_subnet_parse(fb_json_str(lan, "address", DEFAULT_LAN), &g->sn, &why) < 0)
		return -EINVAL;
	if (g->wan.how == BY_NAME && g->lan.how == BY_NAME && STREQ(g->wan.ifname, g->lan.ifname))
		return -EINVAL;
	if (fb_dhcp_range(&g->sn, fb_json_str(dhcp, "range_start", NULL), fb_json_str(dhcp, "range_end", NULL), &g->start, &g->end, &msg) < 0) {
		*ret_msg = fb_strdupf("bad DHCP range for the LAN %s: %s", fb_json_str(lan, "address", DEFAULT_LAN), msg ? msg : "invalid");
		return -EINVAL;
	}
	char a[16];
	fb_ip4_format(g->sn.addr, a);
	snprintf(g->addr, sizeof(g->addr), "%s/%u", a, g->sn.prefix);
	fb_ip4_format(g->sn.net, g->net);
	if (fb_dhcp_lease(dhcp, g->lease) < 0)
		return -EINVAL;
	g->upstream = dns && json_object_object_get_ex(dns, "upstream", &v) && json_object_array_length(v) ? v : NULL;
	g->domain = fb_json_str(dns, "domain", NULL);
	return resolve_nics(g, ret_msg);
}

/* ---- the files ---- */

static char *link_file(const struct side *s)
{
	return fb_strdupf(HEADER "# The %s NIC (%s at first boot), named '%s'.\n"
			  "[Match]\nMACAddress=%s\nType=ether\n\n[Link]\nName=%s\n",
			  STREQ(s->role, "wan") ? "WAN" : "LAN", how_names[s->how], s->ifname, s->mac, s->ifname);
}

static char *wan_network(const struct gw *g)
{
	return fb_strdupf(HEADER "# The WAN: DHCP; nothing from it is accepted but replies (" NFT_FILE ").\n"
			  "[Match]\nName=%s\n\n[Network]\nDHCP=yes\nIPForward=ipv4\n",
			  g->wan.ifname);
}

static char *lan_network(const struct gw *g)
{
	return fb_strdupf(HEADER "# The LAN: DHCP and DNS from dnsmasq (" DNSMASQ_FILE ").\n"
			  "[Match]\nName=%s\n\n[Link]\nRequiredForOnline=no\n\n"
			  "[Network]\nAddress=%s\nConfigureWithoutCarrier=yes\nIPForward=ipv4\nIPv6AcceptRA=no\n",
			  g->lan.ifname, g->addr);
}

static char *ruleset(const struct gw *g)
{
	const char *w = g->wan.ifname, *l = g->lan.ifname;
	return fb_strdupf(
		"#!/usr/sbin/nft -f\n" HEADER
		"# The gateway's firewall: nothing is accepted from the WAN but replies; the LAN is\n"
		"# masqueraded out of the WAN; no port forwards. Only this table is replaced: other\n"
		"# tables (Tailscale's) stay.\n"
		"table inet " NFT_TABLE "\n"
		"delete table inet " NFT_TABLE "\n\n"
		"table inet " NFT_TABLE " {\n"
		"\tchain input {\n"
		"\t\ttype filter hook input priority filter; policy drop;\n"
		"\t\tct state established,related accept\n"
		"\t\tct state invalid drop\n"
		"\t\tiif \"lo\" accept\n"
		"\t\tiifname \"%s\" accept comment \"LAN: DHCP, DNS, SSH to the gateway\"\n"
		"\t\tiifname \"tailscale0\" accept comment \"the tailnet\"\n"
		"\t\tiifname \"%s\" udp sport 67 udp dport 68 accept comment \"WAN: our DHCP client's replies\"\n"
		"\t\tiifname \"%s\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept\n"
		"\t\tiifname \"%s\" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept\n"
		"\t\tiifname \"%s\" counter comment \"WAN: default deny\"\n"
		"\t\tcounter comment \"default deny\"\n"
		"\t}\n\n"
		"\tchain forward {\n"
		"\t\ttype filter hook forward priority filter; policy drop;\n"
		"\t\tct state established,related accept\n"
		"\t\tct state invalid drop\n"
		"\t\tiifname \"%s\" oifname \"%s\" counter accept comment \"LAN to WAN\"\n"
		"\t\tiifname \"tailscale0\" oifname \"%s\" accept comment \"tailnet to LAN (subnet router)\"\n"
		"\t\tiifname \"%s\" oifname \"tailscale0\" accept comment \"LAN to tailnet\"\n"
		"\t\tcounter comment \"default deny\"\n"
		"\t}\n\n"
		"\tchain postrouting {\n"
		"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		"\t\toifname \"%s\" ip saddr %s/%u counter masquerade comment \"LAN out of the WAN\"\n"
		"\t}\n"
		"}\n",
		l, w, w, w, w, l, w, l, l, w, g->net, g->sn.prefix);
}

static char *dnsmasq_conf(const struct gw *g)
{
	struct fb_dnsmasq d = {
		.header = HEADER,
		.what = "the LAN",
		.ifname = g->lan.ifname,
		.sn = &g->sn,
		.start = g->start,
		.end = g->end,
		.lease = g->lease,
		.upstream = g->upstream,
		/* The WAN's DNS servers, learned by DHCP, as systemd-resolved lists them. */
		.default_upstream = "resolv-file=/run/systemd/resolve/resolv.conf",
		.domain = g->domain,
	};
	return fb_dnsmasq_conf(&d);
}

static int gw_plan(const struct gw *g, struct fb_file_set *p)
{
	int r = 0;
	if (g->wan.how != BY_NAME)
		r = fb_file_set_add(p, strdup(NETWORK_DIR "/10-pmoves-gateway-wan.link"), link_file(&g->wan), 0644);
	if (r == 0 && g->lan.how != BY_NAME)
		r = fb_file_set_add(p, strdup(NETWORK_DIR "/10-pmoves-gateway-lan.link"), link_file(&g->lan), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(NETWORK_DIR "/10-pmoves-gateway-wan.network"), wan_network(g), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(NETWORK_DIR "/10-pmoves-gateway-lan.network"), lan_network(g), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(SYSCTL_FILE), strdup(HEADER "net.ipv4.ip_forward = 1\n"), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(NFT_FILE), ruleset(g), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(DNSMASQ_FILE), dnsmasq_conf(g), 0644);
	return r;
}

static char *const units[] = { NETWORKD, NFTABLES, DNSMASQ, NULL };

/* ---- the running system ---- */

static int iface_exists(const char *name)
{
	_cleanup_free_ char *p = fb_strdupf(SYS_NET "/%s", name);
	return p ? fb_exists(p) : -ENOMEM;
}

/* The running system has it: NICs named, forwarding on, our table loaded. */
static int live_ok(const struct gw *g)
{
	int r;
	if ((r = iface_exists(g->wan.ifname)) <= 0 || (r = iface_exists(g->lan.ifname)) <= 0)
		return r;
	return fb_routing_live(NFT_TABLE);
}

static int gw_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct gw g;
	_cleanup_(fb_file_set_done) struct fb_file_set p = { 0 };
	_cleanup_free_ char *msg = NULL;
	int r = gw_load(section, &g, &msg);
	if (r == -ENODEV)
		return 0; /* apply says why */
	if (r == 0)
		r = gw_plan(&g, &p);
	if (r < 0) {
		*ret_msg = msg ? TAKE_PTR(msg) : fb_strdupf("cannot prepare the gateway configuration: %s", strerror(-r));
		return r;
	}
	if ((r = fb_file_set_check(&p)) <= 0)
		return r;
	/* Enabled, and on the running system active: a dnsmasq that failed to start (or was
	 * stopped) is not a gateway, whatever its files say. */
	for (char *const *u = units; *u; u++)
		if ((r = fb_unit_running(*u)) <= 0)
			return r;
	return fb_live() ? live_ok(&g) : 1;
}

#define RUN(...)                                               \
	do {                                                   \
		char *argv_[] = { __VA_ARGS__, NULL };         \
		if (fb_run_msg(argv_, ret_msg) < 0)            \
			return FB_FAILED;                      \
	} while (0)

/* Bring it up on the running system. */
/* The name the NIC with MAC has now: 0, or -ENODEV. */
static int name_of_mac(const char *mac, char ret[16])
{
	struct nic nics[MAX_NICS];
	size_t n = 0;
	int r = list_nics(nics, ARRAY_SIZE(nics), &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (STREQ(nics[i].mac, mac)) {
			memcpy(ret, nics[i].name, sizeof(nics[i].name));
			return 0;
		}
	return -ENODEV;
}

static enum fb_result apply_live(struct gw *g, char **ret_msg)
{
	struct side *sides[] = { &g->wan, &g->lan };
	bool rename = false;
	for (size_t k = 0; k < 2; k++)
		rename |= sides[k]->how != BY_NAME && sides[k]->current[0] && !STREQ(sides[k]->current, sides[k]->ifname);
	if (rename) {
		/* udev may be adding (and naming) NICs right now: with our .link files loaded it
		 * names them itself; let it finish, then rename what it did not. */
		RUN("udevadm", "control", "--reload");
		char *settle[] = { "udevadm", "settle", "--timeout=30", NULL };
		(void)fb_run(settle);
	}
	for (size_t k = 0; rename && k < 2; k++) {
		struct side *s = sides[k];
		char cur[16];
		if (s->how == BY_NAME || name_of_mac(s->mac, cur) < 0 || STREQ(cur, s->ifname))
			continue;
		/* A name can only change while the link is down; networkd brings it up again. */
		char *down[] = { "ip", "link", "set", "dev", cur, "down", NULL };
		char *name[] = { "ip", "link", "set", "dev", cur, "name", s->ifname, NULL };
		int r = fb_run(down);
		if (r == 0)
			r = fb_run(name);
		char now[16];
		if (r != 0 && !(name_of_mac(s->mac, now) == 0 && STREQ(now, s->ifname))) {
			*ret_msg = fb_run_error(name, r);
			return FB_FAILED;
		}
	}
	RUN("sysctl", "-q", "-p", SYSCTL_FILE);
	/* Waited for, and never a stop: its 'flush ruleset' would take tailscaled's rules too. */
	RUN("systemctl", "reload-or-restart", NFTABLES);
	char *networkd[] = { NETWORKD, NULL }, *dnsmasq[] = { DNSMASQ, NULL };
	_cleanup_strv_ char **start = NULL, **restart = NULL;
	int r = fb_unit_active(NETWORKD);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot run 'systemctl is-active %s': %s", NETWORKD, strerror(-r));
		return FB_FAILED;
	}
	if (r > 0)
		RUN("networkctl", "reload");
	else if (fb_systemctl_live_argv("start", networkd, &start) < 0 || fb_run_msg(start, ret_msg) < 0)
		return FB_FAILED;
	if (fb_systemctl_live_argv("restart", dnsmasq, &restart) < 0 || fb_run_msg(restart, ret_msg) < 0)
		return FB_FAILED;
	return FB_OK;
}

/* The console line: what was set up. */
static char *summary(const struct gw *g)
{
	char a[16], b[16];
	fb_ip4_format(g->start, a);
	fb_ip4_format(g->end, b);
	_cleanup_free_ char *wan = g->wan.mac[0] ? fb_strdupf("%s %s", g->wan.mac, how_names[g->wan.how]) : strdup(how_names[g->wan.how]);
	_cleanup_free_ char *lan = g->lan.mac[0] ? fb_strdupf("%s %s", g->lan.mac, how_names[g->lan.how]) : strdup(how_names[g->lan.how]);
	if (!wan || !lan)
		return NULL;
	return fb_strdupf("WAN %s (%s) by DHCP, LAN %s (%s) %s, DHCP %s-%s lease %s, NAT and default-deny inbound%s", g->wan.ifname,
			  wan, g->lan.ifname, lan, g->addr, a, b, g->lease, fb_live() ? "" : "; comes up on the next boot");
}

static enum fb_result gw_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct gw g;
	_cleanup_(fb_file_set_done) struct fb_file_set p = { 0 };
	int r;
	if (fb_live() && !fb_dry_run()) {
		/* At boot we may run before udev has added the NICs: let it finish, then give
		 * late ones a few seconds before ending pending (the timer retries in minutes). */
		char *settle[] = { "udevadm", "settle", "--timeout=30", NULL };
		(void)fb_run(settle);
		for (int i = 0; (r = gw_load(section, &g, ret_msg)) == -ENODEV && i < WAIT_NICS; i++) {
			free(*ret_msg);
			*ret_msg = NULL;
			sleep(1);
		}
	} else {
		r = gw_load(section, &g, ret_msg);
	}
	if (r == -ENODEV)
		return FB_PENDING;
	if (r == 0)
		r = gw_plan(&g, &p);
	if (r < 0) {
		if (!*ret_msg)
			*ret_msg = fb_strdupf("cannot prepare the gateway configuration: %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_file_set_write(&p, ret_msg) < 0)
		return FB_FAILED;
	_cleanup_strv_ char **enable = NULL;
	if (fb_systemctl_argv("enable", units, &enable) < 0 || fb_run_msg(enable, ret_msg) < 0)
		return FB_FAILED;
	if (fb_live()) {
		enum fb_result res = apply_live(&g, ret_msg);
		if (res != FB_OK)
			return res;
	}
	*ret_msg = summary(&g);
	return FB_OK;
}

static int gw_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct gw g;
	_cleanup_free_ char *msg = NULL;
	int r = gw_load(section, &g, &msg);
	if (r < 0)
		return 0; /* apply just used it */
	/* The engine shows verify's message in place of apply's. */
	if (!fb_live() || fb_dry_run()) {
		*ret_msg = summary(&g);
		return 0;
	}
	r = live_ok(&g);
	if (r <= 0) {
		*ret_msg = fb_strdupf("the gateway is not up: NICs '%s' and '%s', IPv4 forwarding and table 'inet %s' expected",
				      g.wan.ifname, g.lan.ifname, NFT_TABLE);
		return r < 0 ? r : -EIO;
	}
	*ret_msg = summary(&g);
	return 0;
}

const struct fb_step step_gateway = {
	.name = "gateway",
	.config_key = "gateway",
	.schema = &gateway_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = gw_check,
	.apply = gw_apply,
	.verify = gw_verify,
};
