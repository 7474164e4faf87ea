/* A routed IPv4 LAN with DHCP and DNS from dnsmasq (fb-lan.h). */
#include "fb-lan.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#define DEFAULT_LEASE "12h"
#define MAX_UPSTREAM 8

void fb_ip4_format(uint32_t h, char ret[16])
{
	struct in_addr a = { htonl(h) };
	inet_ntop(AF_INET, &a, ret, 16);
}

int fb_subnet_parse(const char *s, struct fb_subnet *ret, const char **ret_why)
{
	char host[16];
	size_t n = strcspn(s, "/");
	uint64_t p;
	struct fb_subnet sn;
	if (n == 0 || n >= sizeof(host) || !s[n]) {
		*ret_why = "not an IPv4 address with a prefix length";
		return -EINVAL;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (!fb_parse_ipv4(host, &sn.addr) || parse_u64(s + n + 1, &p) < 0) {
		*ret_why = "not an IPv4 address with a prefix length";
		return -EINVAL;
	}
	if (p < 8 || p > 30) {
		*ret_why = "the prefix length must be 8 to 30";
		return -EINVAL;
	}
	sn.prefix = (unsigned)p;
	uint32_t mask = ~((1u << (32 - sn.prefix)) - 1);
	sn.net = sn.addr & mask;
	sn.bcast = sn.net | ~mask;
	if ((sn.addr >> 24) == 0 || (sn.addr >> 24) == 127 || (sn.addr >> 28) >= 14) {
		*ret_why = "not a unicast address (0/8, 127/8, multicast and reserved are refused)";
		return -EINVAL;
	}
	if (sn.addr == sn.net || sn.addr == sn.bcast) {
		*ret_why = "the network or broadcast address of its subnet";
		return -EINVAL;
	}
	*ret = sn;
	return 0;
}

int fb_dhcp_range(const struct fb_subnet *sn, const char *start, const char *end, uint32_t *ret_start, uint32_t *ret_end,
		  char **ret_why)
{
	uint32_t a, b;
	char gw[16];
	fb_ip4_format(sn->addr, gw);
	if (!start && !end) {
		/* The upper half without the broadcast address, or the lower half without the
		 * network address: whichever does not hold the gateway. */
		uint32_t half = (sn->bcast - sn->net + 1) / 2;
		if (sn->addr >= sn->net + half) {
			a = sn->net + 1;
			b = sn->net + half - 1;
		} else {
			a = sn->net + half;
			b = sn->bcast - 1;
		}
	} else if (!start || !end) {
		*ret_why = strdup("give both 'range_start' and 'range_end', or neither");
		return -EINVAL;
	} else if (!fb_parse_ipv4(start, &a) || !fb_parse_ipv4(end, &b)) {
		*ret_why = strdup("'range_start' and 'range_end' must be IPv4 addresses");
		return -EINVAL;
	}
	for (int i = 0; i < 2; i++) {
		uint32_t x = i ? b : a;
		if (x <= sn->net || x >= sn->bcast) {
			char s[16], net[16];
			fb_ip4_format(x, s);
			fb_ip4_format(sn->net, net);
			*ret_why = fb_strdupf("%s is outside the LAN's hosts (%s/%u)", s, net, sn->prefix);
			return -EINVAL;
		}
	}
	if (a > b) {
		*ret_why = strdup("'range_start' is after 'range_end'");
		return -EINVAL;
	}
	if (sn->addr >= a && sn->addr <= b) {
		*ret_why = fb_strdupf("the range holds the gateway's own address %s", gw);
		return -EINVAL;
	}
	*ret_start = a;
	*ret_end = b;
	return 0;
}

int fb_ifname_of_mac(const char *mac, char ret[16])
{
	int fd = fb_open("/sys/class/net", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd == -ENOENT ? -ENODEV : fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	int r = -ENODEV;
	for (struct dirent *de; r == -ENODEV && (de = readdir(d));) {
		char path[sizeof("/sys/class/net//address") + NAME_MAX], addr[64], m[18];
		if (de->d_name[0] == '.' || !fb_ifname_ok(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/sys/class/net/%s/address", de->d_name);
		if (fb_read_line(path, addr, sizeof(addr)) == 0 && fb_parse_mac(addr, m) && STREQ(m, mac)) {
			memcpy(ret, de->d_name, strlen(de->d_name) + 1);
			r = 0;
		}
	}
	closedir(d);
	return r;
}

int fb_routing_live(const char *table)
{
	char fwd[16];
	int r = fb_read_line("/proc/sys/net/ipv4/ip_forward", fwd, sizeof(fwd));
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (!STREQ(fwd, "1"))
		return 0;
	_cleanup_free_ char *out = NULL;
	char *argv[] = { "nft", "list", "table", "inet", (char *)table, NULL };
	r = fb_run_capture(argv, &out);
	return r < 0 ? r : r == 0;
}

/* dnsmasq's lease time: seconds, or a number with m, h or d; at least 2 minutes. */
static int lease_seconds(json_object *v, uint64_t *ret)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t x = json_object_get_int64(v);
		if (x < 120 || x > 31536000)
			return -ERANGE;
		*ret = (uint64_t)x;
		return 0;
	}
	const char *s = json_object_get_string(v);
	size_t n = strlen(s);
	char num[16];
	uint64_t x, unit = 1;
	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: break;
	}
	if (unit != 1)
		num[n - 1] = '\0';
	if (parse_u64(num, &x) < 0 || !isdigit((unsigned char)num[0]))
		return -EINVAL;
	if (x > 31536000 / unit || x * unit < 120)
		return -ERANGE;
	*ret = x * unit;
	return 0;
}

int fb_dhcp_lease(json_object *dhcp, char ret[24])
{
	json_object *v;
	uint64_t secs = 0;
	if (!dhcp || !json_object_object_get_ex(dhcp, "lease_time", &v)) {
		memcpy(ret, DEFAULT_LEASE, sizeof(DEFAULT_LEASE));
		return 0;
	}
	if (lease_seconds(v, &secs) < 0)
		return -EINVAL;
	if (json_object_is_type(v, json_type_int))
		snprintf(ret, 24, "%llu", (unsigned long long)secs);
	else
		snprintf(ret, 24, "%s", json_object_get_string(v));
	return 0;
}

/* A string lease time (the range is fb_valid_lease's): seconds, or with 'm', 'h' or 'd'. */
const struct fb_format fb_fmt_lease = {
	.name = "lease_time",
	.message = "'%s' is not a lease time (seconds, or a number with 'm', 'h' or 'd': \"12h\")",
	.pattern = "^[0-9]+[mhd]?$",
	.max = 15,
};

int fb_valid_lease(struct fb_check *c, json_object *v)
{
	uint64_t s;
	int r = lease_seconds(v, &s);
	if (r == -ERANGE)
		return fb_bad(c, "the lease time must be from 2 minutes to a year");
	if (r < 0)
		return fb_bad(c, fb_fmt_lease.message, FB_SHOW(json_object_get_string(v)));
	return 0;
}

static int valid_upstream(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	unsigned char buf[16];
	if (strlen(s) > 45 || (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1))
		return fb_bad(c, "'%.48s' is not an IPv4 or IPv6 address of a DNS server", s);
	return 0;
}

static const struct fb_format fmt_domain = {
	.name = "local_domain",
	.message = "'%s' is not a local domain name (lower-case letters, digits, '-', '.': \"lan\")",
	.pattern = "^[a-z0-9][a-z0-9-]*(\\.[a-z0-9-]+)*$",
	.max = 63,
};

static const struct fb_field upstream_elem = { NULL, FB_T_STRING, NULL, valid_upstream, NULL, 0, 0 };
const struct fb_field fb_dns_fields[] = {
	{ "upstream", FB_T_ARRAY, &upstream_elem, NULL, NULL, 0, MAX_UPSTREAM },
	{ "domain", FB_T_STRING, NULL, NULL, &fmt_domain, 0, 0 },
	FB_FIELDS_END,
};

char *fb_dnsmasq_conf(const struct fb_dnsmasq *d)
{
	char a[16], b[16], gw[16], mask[16];
	fb_ip4_format(d->start, a);
	fb_ip4_format(d->end, b);
	fb_ip4_format(d->sn->addr, gw);
	fb_ip4_format(~((1u << (32 - d->sn->prefix)) - 1), mask);
	_cleanup_strv_ char **up = NULL;
	if (d->upstream) {
		if (strv_push(&up, "no-resolv") < 0)
			return NULL;
		for (size_t i = 0; i < json_object_array_length(d->upstream); i++) {
			_cleanup_free_ char *line =
				fb_strdupf("server=%s", json_object_get_string(json_object_array_get_idx(d->upstream, i)));
			if (!line || strv_push(&up, line) < 0)
				return NULL;
		}
	} else if (d->default_upstream && strv_push(&up, d->default_upstream) < 0) {
		return NULL;
	}
	if (up && strv_push(&up, "") < 0)
		return NULL;
	_cleanup_free_ char *ups = up ? strv_join(up, "\n") : strdup("");
	_cleanup_free_ char *dom = d->domain ? fb_strdupf("domain=%s\nlocal=/%s/\nexpand-hosts\n", d->domain, d->domain) : strdup("");
	/* Tagged: the router and DNS server options go to this range's clients only, whatever
	 * other dnsmasq.d files (another step's LAN) say without a tag. */
	_cleanup_free_ char *set = d->tag ? fb_strdupf("set:%s,", d->tag) : strdup("");
	_cleanup_free_ char *tag = d->tag ? fb_strdupf("tag:%s,", d->tag) : strdup("");
	if (!ups || !dom || !set || !tag)
		return NULL;
	return fb_strdupf("%s# DHCP and DNS for %s '%s' only.\n"
			  "interface=%s\n"
			  "bind-dynamic\n"
			  "domain-needed\n"
			  "bogus-priv\n"
			  "%s"
			  "%s"
			  "dhcp-range=%s%s,%s,%s,%s\n"
			  "dhcp-option=%soption:router,%s\n"
			  "dhcp-option=%soption:dns-server,%s\n"
			  "dhcp-authoritative\n",
			  d->header, d->what, d->ifname, d->ifname, ups, dom, set, a, b, mask, d->lease, tag, gw, tag, gw);
}
