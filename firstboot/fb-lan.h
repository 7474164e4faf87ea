/* A routed IPv4 LAN with DHCP and DNS from dnsmasq: its subnet, its DHCP range and lease, the
 * config schema of its "dhcp" and "dns" objects and dnsmasq's config file. The steps that
 * route a LAN share it: gateway (the gateway VM's LAN) and mesh-gateway (the mesh's bat0). */
#ifndef PMOVES_FB_LAN_H
#define PMOVES_FB_LAN_H

#include "fb-valid.h"

#include <json-c/json.h>
#include <stdint.h>

/* Host byte order. */
struct fb_subnet {
	uint32_t addr, net, bcast;
	unsigned prefix;
};

/* H as a dotted quad. */
void fb_ip4_format(uint32_t h, char ret[16]);
/* "A.B.C.D/P": a host address (not the network or broadcast address) with P from 8 to 30. 0, or
 * -EINVAL with *ret_why (static text). */
int fb_subnet_parse(const char *s, struct fb_subnet *ret, const char **ret_why);
/* The DHCP range in SN: START..END as given (both or neither), else the half of the subnet
 * without SN's own address. Inside the subnet's hosts, in order, not holding SN's address. 0,
 * or -EINVAL with *ret_why (malloc'd). */
int fb_dhcp_range(const struct fb_subnet *sn, const char *start, const char *end, uint32_t *ret_start,
		  uint32_t *ret_end, char **ret_why);
/* The lease time of DHCP (its "lease_time", or 12h) as dnsmasq takes it. 0, or -EINVAL. */
int fb_dhcp_lease(json_object *dhcp, char ret[24]);

/* The name of the network interface with MAC (lower case) in /sys/class/net: 0, or -ENODEV
 * when there is none (or no /sys/class/net), -errno. */
int fb_ifname_of_mac(const char *mac, char ret[16]);

/* The running system routes: IPv4 forwarding on and nftables' table 'inet TABLE' loaded. 1,
 * 0 (not), -errno. */
int fb_routing_live(const char *table);

/* The fields of a "dhcp" object: range_start, range_end, lease_time (for a field list). */
extern const struct fb_format fb_fmt_lease;
int fb_valid_lease(struct fb_check *c, json_object *v);
#define FB_DHCP_FIELDS                                                                  \
	{ "range_start", FB_T_STRING, NULL, NULL, &fb_fmt_ipv4, 0, 0 },                 \
	{ "range_end", FB_T_STRING, NULL, NULL, &fb_fmt_ipv4, 0, 0 },                   \
	{ "lease_time", FB_T_SCALAR, NULL, fb_valid_lease, &fb_fmt_lease, 0, 0 }
/* A "dns" object: upstream (up to 8 IPv4 or IPv6 addresses), domain. */
extern const struct fb_field fb_dns_fields[];

struct fb_dnsmasq {
	const char *header;   /* "# Written by ...\n" */
	const char *what;     /* the comment's name for the network: "the LAN" */
	const char *ifname;   /* the one interface served */
	const char *tag;      /* or NULL: the range's tag, and its options only for it */
	const struct fb_subnet *sn;
	uint32_t start, end;
	const char *lease;
	json_object *upstream;        /* an array of addresses, or NULL */
	const char *default_upstream; /* the line without upstream ("resolv-file=..."), or NULL */
	const char *domain;           /* or NULL */
};

/* dnsmasq's config: DHCP and DNS on D's interface only, the gateway's address as router and
 * DNS server. NULL on ENOMEM. */
char *fb_dnsmasq_conf(const struct fb_dnsmasq *d);

#endif
