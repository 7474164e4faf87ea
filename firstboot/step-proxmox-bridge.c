/* proxmox-bridge: the bridge the VMs' net0 is on, the way Proxmox's own installer lays it out:
 * the uplink (the NIC of the default route) becomes a bridge port with no address, and the
 * bridge takes the address, prefix and gateway the NIC has now (its DHCP lease made static:
 * the node's address must not move under /etc/hosts and the cluster file system). ifupdown2,
 * which proxmox-ve brings, owns /etc/network/interfaces; systemd-networkd, which brought the
 * network up until now, is told to leave the port and the bridge alone, and systemd-resolved
 * keeps the DNS servers the lease gave. Done on the running machine only: it needs the live
 * address. An existing stanza for the bridge is left as it is; an interfaces file that
 * configures other interfaces is not rewritten. If ifreload fails, the old configuration is
 * put back (fb-proxmox.h: the four proxmox steps). */
#include "fb-proxmox.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <time.h>

#define INTERFACES "/etc/network/interfaces"
#define IFRELOAD "/usr/sbin/ifreload"
#define BRIDGE_NETWORKD "/etc/systemd/network/10-pmoves-proxmox-bridge.network"
#define BRIDGE_RESOLVED "/etc/systemd/resolved.conf.d/pmoves-proxmox.conf"
#define RESOLVED_UPSTREAM "/run/systemd/resolve/resolv.conf"

struct uplink {
	char dev[16];
	char addr[INET_ADDRSTRLEN];
	char cidr[INET_ADDRSTRLEN + 4];
	char gateway[INET_ADDRSTRLEN];
};

/* The token after the word WORD (delimited by blanks) in TEXT, into BUF: 0, or -ENOENT. */
static int token_after(const char *text, const char *word, char *buf, size_t size)
{
	size_t wl = strlen(word);
	for (const char *p = text; p && (p = strstr(p, word)); p += wl) {
		bool start = p == text || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n';
		if (!start || (p[wl] != ' ' && p[wl] != '\t'))
			continue;
		const char *t = p + wl + strspn(p + wl, " \t");
		size_t n = strcspn(t, " \t\n\\");
		if (n == 0 || n >= size)
			return -ENOENT;
		memcpy(buf, t, n);
		buf[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

static bool is_ipv4(const char *s)
{
	unsigned char bin[4];
	return inet_pton(AF_INET, s, bin) == 1;
}

/* The interface names in TEXT's "iface", "auto" and "allow-*" lines, each once. */
static int interfaces_names(const char *text, char ***ret)
{
	_cleanup_strv_ char **names = NULL;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		const char *l = p + strspn(p, " \t");
		bool iface = !strncmp(l, "iface ", 6) || !strncmp(l, "iface\t", 6);
		bool autoline = !strncmp(l, "auto", 4) && (l[4] == ' ' || l[4] == '\t');
		if (iface || autoline || !strncmp(l, "allow-", 6)) {
			const char *w = l + strcspn(l, " \t\n");
			/* "iface NAME inet ...": one name; "auto A B ...": every word. */
			for (bool first = true; w < p + n && (first || !iface); first = false) {
				w += strspn(w, " \t");
				size_t wl = strcspn(w, " \t\n");
				if (wl == 0)
					break;
				_cleanup_free_ char *name = strndup(w, wl);
				if (!name)
					return -ENOMEM;
				if (!strv_contains(names, name) && strv_push(&names, name) < 0)
					return -ENOMEM;
				w += wl;
			}
		}
		p += n + (p[n] == '\n');
	}
	*ret = TAKE_PTR(names);
	return 0;
}

/* 1 with "iface BRIDGE" in TEXT, 0 without. */
static int has_iface(const char *text, const char *bridge)
{
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		const char *l = p + strspn(p, " \t");
		char name[64];
		if (!strncmp(l, "iface", 5) && (l[5] == ' ' || l[5] == '\t') &&
		    sscanf(l + 5, "%63s", name) == 1 && STREQ(name, bridge))
			return 1;
		p += n + (p[n] == '\n');
	}
	return 0;
}

static int bridge_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	const char *bridge = fb_json_str(section, "bridge", PROXMOX_DEFAULT_BRIDGE);
	_cleanup_free_ char *text = NULL;
	int r = fb_read(INTERFACES, 1 << 20, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", INTERFACES, strerror(-r));
		return r;
	}
	if (!has_iface(text, bridge))
		return 0;
	*ret_msg = fb_strdupf("'%s' is in '%s': left as it is", bridge, INTERFACES);
	return 1;
}

/* CIDR is "ADDR/LEN" with LEN a prefix length from 0 to 32. */
static bool is_cidr_of(const char *cidr, const char *addr)
{
	size_t al = strlen(addr);
	if (strncmp(cidr, addr, al) || cidr[al] != '/' || !isdigit((unsigned char)cidr[al + 1]))
		return false;
	char *end;
	errno = 0;
	unsigned long len = strtoul(cidr + al + 1, &end, 10);
	return errno == 0 && *end == '\0' && len <= 32;
}

/* The uplink as it is now: the default route's device, source address and gateway, and the
 * address's prefix. -ENETUNREACH (message set) without an IPv4 default route. */
static int uplink_now(struct uplink *u, char **ret_msg)
{
	_cleanup_free_ char *route = NULL, *addrs = NULL;
	char *rargv[] = { "ip", "-4", "-o", "route", "get", "192.0.2.1", NULL };
	if (fb_run_capture(rargv, &route) != 0 || token_after(route, "dev", u->dev, sizeof(u->dev)) < 0 ||
	    token_after(route, "src", u->addr, sizeof(u->addr)) < 0 || !is_ipv4(u->addr)) {
		*ret_msg = strdup("no IPv4 default route yet (no network): trying again on a later run");
		return -ENETUNREACH;
	}
	if (token_after(route, "via", u->gateway, sizeof(u->gateway)) < 0 || !is_ipv4(u->gateway))
		u->gateway[0] = '\0';
	if (!valid_name(u->dev, 15)) {
		*ret_msg = fb_strdupf("the default route's device '%.32s' is not an interface name", u->dev);
		return -EINVAL;
	}
	char *aargv[] = { "ip", "-4", "-o", "addr", "show", "dev", u->dev, NULL };
	if (fb_run_capture(aargv, &addrs) != 0)
		addrs = NULL;
	/* "2: ens18    inet 10.0.2.15/24 brd ...": the line whose address is the route's source. */
	for (const char *p = addrs; p && *p;) {
		char cidr[sizeof(u->cidr)];
		size_t n = strcspn(p, "\n");
		_cleanup_free_ char *line = strndup(p, n);
		if (!line)
			return -ENOMEM;
		if (token_after(line, "inet", cidr, sizeof(cidr)) == 0 && is_cidr_of(cidr, u->addr)) {
			memcpy(u->cidr, cidr, sizeof(cidr));
			return 0;
		}
		p += n + (p[n] == '\n');
	}
	*ret_msg = fb_strdupf("cannot find the prefix of %s on '%s'", u->addr, u->dev);
	return -ENOENT;
}

/* [Resolve] with the DNS servers and search domains systemd-resolved has from the lease, or
 * NULL when it has none (no resolved, or no servers). */
static char *resolved_text(void)
{
	_cleanup_free_ char *text = NULL;
	if (fb_read(RESOLVED_UPSTREAM, 64 * 1024, &text, NULL) < 0)
		return NULL;
	_cleanup_free_ char *dns = strdup(""), *domains = NULL;
	int servers = 0;
	for (const char *p = text; dns && *p;) {
		size_t n = strcspn(p, "\n");
		char word[16], value[INET6_ADDRSTRLEN + 1];
		unsigned char bin[16];
		if (servers < 3 && sscanf(p, "%15s %46s", word, value) == 2 && STREQ(word, "nameserver") &&
		    (inet_pton(AF_INET, value, bin) == 1 || inet_pton(AF_INET6, value, bin) == 1)) {
			char *d = fb_strdupf("%s%s%s", dns, servers ? " " : "", value);
			free(dns);
			dns = d;
			servers++;
		} else if (!strncmp(p, "search ", 7) && !domains) {
			domains = strndup(p + 7, n - 7);
			if (domains && strspn(domains, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.- ") !=
					       strlen(domains))
				domains[0] = '\0';
		}
		p += n + (p[n] == '\n');
	}
	if (!dns || servers == 0)
		return NULL;
	return fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): the DNS servers of the uplink's lease, now\n"
			  "# that systemd-networkd leaves the uplink to ifupdown2.\n[Resolve]\nDNS=%s\n%s%s%s",
			  dns, domains && domains[0] ? "Domains=" : "", domains && domains[0] ? domains : "",
			  domains && domains[0] ? "\n" : "");
}

static char *interfaces_text(const char *bridge, const struct uplink *u)
{
	return fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): the Proxmox bridge on the uplink, with the\n"
			  "# address the uplink had (from DHCP, now static). Proxmox edits this file (System > Network).\n"
			  "auto lo\niface lo inet loopback\n\n"
			  "iface %s inet manual\n\n"
			  "auto %s\niface %s inet static\n\taddress %s\n%s%s%s\tbridge-ports %s\n\tbridge-stp off\n\tbridge-fd 0\n\n"
			  "source /etc/network/interfaces.d/*\n",
			  u->dev, bridge, bridge, u->cidr, u->gateway[0] ? "\tgateway " : "", u->gateway,
			  u->gateway[0] ? "\n" : "", u->dev);
}

/* The bridge has DEV as its port and CIDR as its address (the live system, after ifreload). */
static int bridge_up(const char *bridge, const struct uplink *u, char **ret_msg)
{
	_cleanup_free_ char *dir = fb_strdupf("/sys/class/net/%s", u->dev);
	if (!dir)
		return -ENOMEM;
	_cleanup_close_ int dfd = fb_open(dir, O_PATH | O_DIRECTORY, 0);
	char target[PATH_MAX];
	ssize_t n = dfd < 0 ? -1 : readlinkat(dfd, "master", target, sizeof(target) - 1);
	if (n > 0)
		target[n] = '\0';
	const char *base = n > 0 ? strrchr(target, '/') : NULL;
	if (!base || !STREQ(base + 1, bridge)) {
		*ret_msg = fb_strdupf("after 'ifreload -a' '%s' is not a port of '%s'", u->dev, bridge);
		return -EIO;
	}
	_cleanup_free_ char *out = NULL;
	char *argv[] = { "ip", "-4", "-o", "addr", "show", "dev", (char *)bridge, NULL };
	char cidr[sizeof(u->cidr)];
	if (fb_run_capture(argv, &out) != 0 || token_after(out, "inet", cidr, sizeof(cidr)) < 0 || !STREQ(cidr, u->cidr)) {
		*ret_msg = fb_strdupf("after 'ifreload -a' '%s' does not have %s", bridge, u->cidr);
		return -EIO;
	}
	return 0;
}

/* networkd's reload only queues the reconfiguration: until it lists DEV as "unmanaged" it may
 * still act on the uplink (its DHCP client re-adding what the flush below takes away, under
 * the bridge ifreload makes). Waits for that, up to 10 s: 0, or -ETIMEDOUT. */
static int networkd_released(const char *dev)
{
	char *argv[] = { "networkctl", "list", "--no-legend", "--no-pager", (char *)dev, NULL };
	for (double end = now_seconds() + 10;;) {
		_cleanup_free_ char *out = NULL;
		char link[32], setup[32];
		/* "  2 ens3 ether routable unmanaged" */
		if (fb_run_capture(argv, &out) == 0 && sscanf(out, "%*u %31s %*s %*s %31s", link, setup) == 2 &&
		    STREQ(link, dev) && STREQ(setup, "unmanaged"))
			return 0;
		if (now_seconds() >= end)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
	}
}

/* Back to the configuration before apply: the old interfaces file, networkd on the uplink. */
static void bridge_undo(const char *old, const struct uplink *u)
{
	if (old)
		fb_write(INTERFACES, old, strlen(old), 0644, 0, 0);
	else
		fb_remove(INTERFACES);
	fb_remove(BRIDGE_NETWORKD);
	char *reload[] = { "networkctl", "reload", NULL };
	char *reconf[] = { "networkctl", "reconfigure", (char *)u->dev, NULL };
	fb_run(reload);
	fb_run(reconf);
}

static enum fb_result bridge_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	const char *bridge = fb_json_str(section, "bridge", PROXMOX_DEFAULT_BRIDGE);
	int r;
	if (fb_exists(IFRELOAD) != 1) {
		*ret_msg = strdup("waiting for step 'proxmox-ve' (no '" IFRELOAD "': ifupdown2 comes with proxmox-ve)");
		return FB_PENDING;
	}
	if (!fb_live()) {
		*ret_msg = fb_strdupf("'%s' takes the uplink's live address: it is set up on the running machine", bridge);
		return FB_PENDING;
	}
	_cleanup_free_ char *old = NULL;
	if ((r = fb_read(INTERFACES, 1 << 20, &old, NULL)) < 0 && r != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", INTERFACES, strerror(-r));
		return FB_FAILED;
	}
	_cleanup_strv_ char **names = NULL;
	if (interfaces_names(old, &names) < 0)
		return FB_FAILED;
	for (char **n = names; n && *n; n++)
		if (!STREQ(*n, "lo")) {
			*ret_msg = fb_strdupf("'%s' configures '%s' already: add the bridge '%s' there yourself "
					      "(Proxmox: System > Network), it is not rewritten",
					      INTERFACES, *n, bridge);
			return FB_FAILED;
		}
	/* Left by an apply cut short before it wrote the interfaces file: networkd must have the
	 * uplink again, or the machine stays without its address. */
	if (fb_exists(BRIDGE_NETWORKD) == 1) {
		char *reload[] = { "networkctl", "reload", NULL };
		if (fb_remove(BRIDGE_NETWORKD) < 0)
			return FB_FAILED;
		fb_run(reload);
	}
	struct uplink u = { 0 };
	if ((r = uplink_now(&u, ret_msg)) < 0)
		return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
	if (STREQ(u.dev, bridge)) {
		*ret_msg = fb_strdupf("'%s' carries the default route but has no stanza in '%s'", bridge, INTERFACES);
		return FB_FAILED;
	}
	_cleanup_free_ char *text = interfaces_text(bridge, &u), *resolved = resolved_text(),
			    *unmanaged = fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): ifupdown2 owns these "
						    "(" INTERFACES ").\n[Match]\nName=%s %s\n\n[Link]\nUnmanaged=yes\n",
						    u.dev, bridge);
	if (!text || !unmanaged)
		return FB_FAILED;
	if ((r = fb_write(BRIDGE_NETWORKD, unmanaged, strlen(unmanaged), 0644, 0, 0)) < 0 ||
	    (resolved && (r = fb_write(BRIDGE_RESOLVED, resolved, strlen(resolved), 0644, 0, 0)) < 0) ||
	    (r = fb_write(INTERFACES, text, strlen(text), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write the bridge's configuration: %s", strerror(-r));
		return FB_FAILED;
	}
	/* networkd lets go of the uplink; its address and routes leave it (a port has none); the
	 * bridge comes up with them. */
	char *reload[] = { "networkctl", "reload", NULL };
	char *flush_addr[] = { "ip", "-4", "addr", "flush", "dev", u.dev, NULL };
	char *flush_route[] = { "ip", "-4", "route", "flush", "dev", u.dev, NULL };
	char *ifreload[] = { "ifreload", "-a", NULL };
	if ((r = fb_run(reload)) != 0) {
		*ret_msg = fb_strdupf("'networkctl reload' exited with %d: the old network configuration is back", r);
		bridge_undo(old, &u);
		return FB_FAILED;
	}
	if (!fb_dry_run() && networkd_released(u.dev) < 0) {
		*ret_msg = fb_strdupf("systemd-networkd did not let go of '%s' within 10 s of 'networkctl reload': "
				      "the old network configuration is back", u.dev);
		bridge_undo(old, &u);
		return FB_FAILED;
	}
	fb_run(flush_addr);
	fb_run(flush_route);
	if ((r = fb_run(ifreload)) != 0 || (!fb_dry_run() && bridge_up(bridge, &u, ret_msg) < 0)) {
		if (r != 0)
			*ret_msg = fb_strdupf("'ifreload -a' exited with %d: the old network configuration is back", r);
		bridge_undo(old, &u);
		return FB_FAILED;
	}
	/* Best effort, both: resolved picks up the lease's servers from the drop-in; networkd's
	 * wait-online has no link left to wait for and would hold network-online.target for its
	 * whole timeout on every boot (ifupdown2's networking.service orders it now). */
	if (resolved) {
		fb_systemctl_live("try-restart", (char *[]){ "systemd-resolved.service", NULL });
	}
	fb_systemctl("disable", (char *[]){ "systemd-networkd-wait-online.service", NULL });
	*ret_msg = fb_strdupf("'%s' over '%s' with %s%s%s (static, the uplink's address)%s", bridge, u.dev, u.cidr,
			      u.gateway[0] ? ", gateway " : "", u.gateway, resolved ? "; DNS servers kept for systemd-resolved" : "");
	return FB_OK;
}

const struct fb_step step_proxmox_bridge = {
	.name = "proxmox-bridge",
	.config_key = "proxmox",
	.schema = &fb_proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = bridge_check,
	.apply = bridge_apply,
};

