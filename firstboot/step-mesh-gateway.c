/* mesh-gateway: the batman-adv mesh's gateway node routes for the mesh: bat0's subnet
 * masqueraded out of the uplink, forwarded there and the replies back, and (optionally) DHCP
 * and DNS for the mesh from dnsmasq on bat0 only. The mesh step makes bat0 (its section must
 * say "gateway": "server" and give bat0 a static address); this step reads that section for
 * the subnet and its own, "mesh_gateway", for the rest.
 *
 * The uplink: "name" (as it is), "mac" (the interface with that MAC when the step runs: its
 * name is used from then on), or by default any interface but bat0 and tailscale0, that is
 * the one the routing table sends the traffic to (the default route's), whichever that is at
 * the time: a Wi-Fi client link, Ethernet, an LTE modem, with no name to pin at first boot.
 *
 * Persistent configuration (every boot brings it up without us):
 *   /etc/pmoves/mesh-gateway.nft                    table inet pmoves_mesh_gateway
 *   /etc/systemd/system/pmoves-mesh-gateway.service loads it at boot (like nftables.service,
 *                                                   and after it: its 'flush ruleset' first)
 *   /etc/sysctl.d/90-pmoves-mesh-gateway.conf       net.ipv4.ip_forward = 1
 *   /etc/dnsmasq.d/pmoves-mesh-gateway.conf         DHCP and DNS on bat0 only (DHCP on)
 * and that unit (and dnsmasq) enabled. On the running system it is applied now: sysctl -p,
 * nft -f of the file (it replaces only its own table), dnsmasq restarted (--no-block).
 *
 * Only its own table, its own files and a tagged dnsmasq range: the gateway step's
 * /etc/nftables.conf and dnsmasq.d file and Tailscale's tables stay as they are. The ruleset
 * never flushes anything: declare, delete, define. Its forward chain accepts by default (other
 * tables decide for other traffic) and drops only what is new into the mesh from anywhere but
 * the tailnet. */
#include "fb-fileset.h"
#include "fb-lan.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#define NFT_FILE "/etc/pmoves/mesh-gateway.nft"
#define UNIT "pmoves-mesh-gateway.service"
#define UNIT_FILE "/etc/systemd/system/" UNIT
#define SYSCTL_FILE "/etc/sysctl.d/90-pmoves-mesh-gateway.conf"
#define DNSMASQ_FILE "/etc/dnsmasq.d/pmoves-mesh-gateway.conf"
#define NFT_TABLE "pmoves_mesh_gateway"
#define DNSMASQ "dnsmasq.service"
#define DHCP_TAG "pmoves-mesh"
#define HEADER "# Written by pmoves-firstboot (mesh-gateway step): change its config, not this file.\n"

/* ---- config schema (the step record's .schema) ---- */

static const struct fb_format fmt_uplink_name = {
	.name = "uplink_name",
	.message = "'%s' is not the uplink's name (1 to 15 of a-z, A-Z, 0-9, '_', '.', '-'; not 'bat0' or 'tailscale0', "
		   "which are the mesh and the tailnet)",
	.forbid = "^(bat0|tailscale0)$",
	.also = &fb_fmt_ifname,
};

static int valid_uplink(struct fb_check *c, json_object *v)
{
	if (fb_json_has(v, "name") && fb_json_has(v, "mac"))
		return fb_bad(c, "'name' and 'mac' are both given: one only (or neither: the default route's interface)");
	return 0;
}

static int valid_dhcp(struct fb_check *c, json_object *v)
{
	json_object *e;
	if (!json_object_object_get_ex(v, "enabled", &e) || json_object_get_boolean(e))
		return 0;
	static const char *const with_dhcp[] = { "range_start", "range_end", "lease_time" };
	for (size_t i = 0; i < ARRAY_SIZE(with_dhcp); i++)
		if (fb_json_has(v, with_dhcp[i]))
			return fb_bad(c, "'%s' is given with DHCP off ('enabled': false)", with_dhcp[i]);
	return 0;
}

static const struct fb_field uplink_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fmt_uplink_name, 0, 0 },
	{ "mac", FB_T_STRING, NULL, NULL, &fb_fmt_mac, 0, 0 },
	FB_FIELDS_END,
};

static const struct fb_field dhcp_fields[] = {
	{ "enabled", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	FB_DHCP_FIELDS,
	FB_FIELDS_END,
};

static const struct fb_field mesh_gateway_fields[] = {
	{ "uplink", FB_T_OBJECT, uplink_fields, valid_uplink, NULL, 0, 0 },
	{ "dhcp", FB_T_OBJECT, dhcp_fields, valid_dhcp, NULL, 0, 0 },
	{ "dns", FB_T_OBJECT, fb_dns_fields, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field mesh_gateway_schema = { NULL, FB_T_OBJECT, mesh_gateway_fields, NULL, NULL, 0, 0 };

/* ---- the gateway node, from a valid config ---- */

enum uplink { UPLINK_ROUTE, UPLINK_NAME, UPLINK_MAC };

struct mgw {
	struct fb_subnet sn; /* bat0's */
	char addr[24];       /* bat0's address with its prefix */
	char net[24];        /* the mesh subnet: "10.42.0.0/24" */
	enum uplink how;
	char uplink[16];     /* UPLINK_NAME, UPLINK_MAC: its name */
	char mac[18];
	bool dhcp;
	uint32_t start, end;
	char lease[24];
	json_object *upstream;
	const char *domain;
};

static json_object *obj_of(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* -EINVAL with *ret_msg: the config does not make a gateway node; -ENODEV with *ret_msg: the
 * uplink named by MAC is not there (yet). */
static int mgw_load(const struct fb_ctx *c, json_object *section, struct mgw *g, char **ret_msg)
{
	json_object *mesh = obj_of(c->config, "mesh"), *uplink = obj_of(section, "uplink"), *dhcp = obj_of(section, "dhcp");
	memset(g, 0, sizeof(*g));
	if (!mesh) {
		*ret_msg = strdup("no 'mesh' section: the mesh gateway routes for bat0, which the mesh step makes from it");
		return -EINVAL;
	}
	const char *mode = fb_json_str(mesh, "gateway", "client"), *address = fb_json_str(mesh, "address", "");
	if (!STREQ(mode, "server")) {
		*ret_msg = fb_strdupf("the mesh's gateway mode is '%s': the gateway node needs \"gateway\": \"server\" in 'mesh'", mode);
		return -EINVAL;
	}
	if (STREQ(address, "dhcp")) {
		*ret_msg = strdup("bat0's address ('mesh.address') is 'dhcp': the gateway node needs a static one");
		return -EINVAL;
	}
	/* The mesh step takes an address without a prefix as a /24. */
	int n = snprintf(g->addr, sizeof(g->addr), strchr(address, '/') ? "%s" : "%s/24", address);
	const char *why = NULL;
	if (n < 0 || (size_t)n >= sizeof(g->addr) || fb_subnet_parse(g->addr, &g->sn, &why) < 0) {
		*ret_msg = fb_strdupf("bat0's address '%.40s' is not usable: %s", address, why ? why : "too long");
		return -EINVAL;
	}
	char net[16];
	fb_ip4_format(g->sn.net, net);
	snprintf(g->net, sizeof(g->net), "%s/%u", net, g->sn.prefix);

	json_object *e;
	g->dhcp = !(dhcp && json_object_object_get_ex(dhcp, "enabled", &e) && !json_object_get_boolean(e));
	if (g->dhcp) {
		_cleanup_free_ char *msg = NULL;
		if (fb_dhcp_range(&g->sn, fb_json_str(dhcp, "range_start", NULL), fb_json_str(dhcp, "range_end", NULL), &g->start,
				  &g->end, &msg) < 0) {
			*ret_msg = fb_strdupf("bad DHCP range for the mesh %s (bat0 %s): %s", g->net, g->addr, msg ? msg : "invalid");
			return -EINVAL;
		}
		if (fb_dhcp_lease(dhcp, g->lease) < 0)
			return -EINVAL;
		json_object *dns = obj_of(section, "dns"), *up = obj_of(dns, "upstream");
		g->upstream = up && json_object_array_length(up) ? up : NULL;
		g->domain = fb_json_str(dns, "domain", NULL);
	}

	const char *name = fb_json_str(uplink, "name", NULL), *mac = fb_json_str(uplink, "mac", NULL);
	if (name) {
		g->how = UPLINK_NAME;
		snprintf(g->uplink, sizeof(g->uplink), "%s", name);
	} else if (mac) {
		g->how = UPLINK_MAC;
		if (!fb_parse_mac(mac, g->mac))
			return -EINVAL;
		int r = fb_ifname_of_mac(g->mac, g->uplink);
		if (r == -ENODEV)
			*ret_msg = fb_strdupf("no network interface has MAC '%s' (the uplink): trying again on a later run", g->mac);
		else if (r < 0)
			*ret_msg = fb_strdupf("cannot read '/sys/class/net': %s", strerror(-r));
		else if (STREQ(g->uplink, "bat0") || STREQ(g->uplink, "tailscale0"))
			*ret_msg = fb_strdupf("the uplink's MAC '%s' is %s's: the uplink is another interface", g->mac, g->uplink);
		if (*ret_msg)
			return r < 0 ? r : -EINVAL;
	}
	return 0;
}

/* ---- the files ---- */

/* The nft match of the uplink. */
static char *oif(const struct mgw *g)
{
	return g->how == UPLINK_ROUTE ? strdup("oifname != { \"bat0\", \"tailscale0\" }") : fb_strdupf("oifname \"%s\"", g->uplink);
}

static char *ruleset(const struct mgw *g)
{
	_cleanup_free_ char *out = oif(g);
	if (!out)
		return NULL;
	return fb_strdupf("#!/usr/sbin/nft -f\n" HEADER
			  "# The mesh's gateway: the mesh masqueraded out of the uplink; new connections into the\n"
			  "# mesh only from the tailnet. Only this table is replaced: other tables (the gateway\n"
			  "# step's, Tailscale's) stay.\n"
			  "table inet " NFT_TABLE "\n"
			  "delete table inet " NFT_TABLE "\n\n"
			  "table inet " NFT_TABLE " {\n"
			  "\tchain forward {\n"
			  "\t\ttype filter hook forward priority filter; policy accept;\n"
			  "\t\tct state established,related accept\n"
			  "\t\tiifname \"bat0\" %s counter accept comment \"mesh to the uplink\"\n"
			  "\t\tiifname \"tailscale0\" oifname \"bat0\" accept comment \"tailnet to the mesh (subnet router)\"\n"
			  "\t\toifname \"bat0\" counter drop comment \"nothing else into the mesh\"\n"
			  "\t}\n\n"
			  "\tchain postrouting {\n"
			  "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
			  "\t\t%s ip saddr %s counter masquerade comment \"mesh out of the uplink\"\n"
			  "\t}\n"
			  "}\n",
			  out, out, g->net);
}

static char *unit_file(void)
{
	return strdup(HEADER "[Unit]\n"
			     "Description=pmoves mesh gateway: NAT and forwarding for the mesh (table inet " NFT_TABLE ")\n"
			     "DefaultDependencies=no\n"
			     "Wants=network-pre.target\n"
			     "# After nftables.service: Debian's default /etc/nftables.conf flushes the ruleset.\n"
			     "After=nftables.service\n"
			     "Before=network-pre.target shutdown.target\n"
			     "Conflicts=shutdown.target\n\n"
			     "[Service]\n"
			     "Type=oneshot\n"
			     "RemainAfterExit=yes\n"
			     "ExecStart=/usr/sbin/nft -f " NFT_FILE "\n\n"
			     "[Install]\n"
			     "WantedBy=sysinit.target\n");
}

static char *dnsmasq_conf(const struct mgw *g)
{
	struct fb_dnsmasq d = {
		.header = HEADER,
		.what = "the mesh on",
		.ifname = "bat0",
		.tag = DHCP_TAG,
		.sn = &g->sn,
		.start = g->start,
		.end = g->end,
		.lease = g->lease,
		.upstream = g->upstream,
		.default_upstream = NULL, /* dnsmasq's own: /etc/resolv.conf */
		.domain = g->domain,
	};
	return fb_dnsmasq_conf(&d);
}

static int mgw_plan(const struct mgw *g, struct fb_file_set *p, char ***ret_units)
{
	_cleanup_strv_ char **units = NULL;
	int r = fb_file_set_add(p, strdup(NFT_FILE), ruleset(g), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(UNIT_FILE), unit_file(), 0644);
	if (r == 0)
		r = fb_file_set_add(p, strdup(SYSCTL_FILE), strdup(HEADER "net.ipv4.ip_forward = 1\n"), 0644);
	if (r == 0 && g->dhcp)
		r = fb_file_set_add(p, strdup(DNSMASQ_FILE), dnsmasq_conf(g), 0644);
	if (r == 0)
		r = strv_push(&units, UNIT);
	if (r == 0 && g->dhcp)
		r = strv_push(&units, DNSMASQ);
	if (r < 0)
		return r;
	*ret_units = TAKE_PTR(units);
	return 0;
}

/* ---- the running system ---- */

static int mgw_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	struct mgw g;
	_cleanup_(fb_file_set_done) struct fb_file_set p = { 0 };
	_cleanup_strv_ char **units = NULL;
	_cleanup_free_ char *msg = NULL;
	int r = mgw_load(c, section, &g, &msg);
	if (r < 0)
		return 0; /* apply says why */
	if ((r = mgw_plan(&g, &p, &units)) < 0) {
		*ret_msg = fb_strdupf("cannot prepare the mesh gateway configuration: %s", strerror(-r));
		return r;
	}
	if ((r = fb_file_set_check(&p)) <= 0)
		return r;
	if (!g.dhcp && (r = fb_exists(DNSMASQ_FILE)) != 0)
		return r < 0 ? r : 0; /* DHCP turned off: our dnsmasq file is still to go */
	if ((r = fb_unit_enabled(UNIT)) <= 0)
		return r;
	/* A dnsmasq that failed to start (or was stopped) serves no DHCP, whatever its file says. */
	if (g.dhcp && (r = fb_unit_running(DNSMASQ)) <= 0)
		return r;
	return fb_live() ? fb_routing_live(NFT_TABLE) : 1;
}

static const char *uplink_shown(const struct mgw *g, char *buf, size_t size)
{
	if (g->how == UPLINK_ROUTE)
		return "any interface but bat0 and tailscale0 (the default route's)";
	if (g->how == UPLINK_NAME)
		snprintf(buf, size, "'%s'", g->uplink);
	else
		snprintf(buf, size, "'%s' (%s)", g->uplink, g->mac);
	return buf;
}

/* The console line: what was set up. */
static char *summary(const struct mgw *g)
{
	char a[16], b[16], gw[16], up[48];
	fb_ip4_format(g->start, a);
	fb_ip4_format(g->end, b);
	fb_ip4_format(g->sn.addr, gw);
	_cleanup_free_ char *dhcp = g->dhcp ? fb_strdupf("DHCP %s-%s lease %s on bat0 (router %s)", a, b, g->lease, gw)
					    : strdup("no DHCP (static addresses)");
	if (!dhcp)
		return NULL;
	return fb_strdupf("mesh %s masqueraded out of %s, forwarding on; %s%s", g->net, uplink_shown(g, up, sizeof(up)), dhcp,
			  fb_live() ? "" : "; comes up on the next boot");
}

#define RUN(...)                                       \
	do {                                           \
		char *argv_[] = { __VA_ARGS__, NULL }; \
		if (fb_run_msg(argv_, ret_msg) < 0)    \
			return FB_FAILED;              \
	} while (0)

static enum fb_result apply_live(const struct mgw *g, bool dnsmasq_dropped, char **ret_msg)
{
	RUN("sysctl", "-q", "-p", SYSCTL_FILE);
	/* The file replaces our table alone: never a flush, Tailscale's tables stay. */
	RUN("nft", "-f", NFT_FILE);
	char *dnsmasq[] = { DNSMASQ, NULL };
	_cleanup_strv_ char **restart = NULL;
	/* DHCP turned off: a dnsmasq that still serves bat0 forgets it (try-: not started if it
	 * does not run). */
	const char *verb = g->dhcp ? "restart" : "try-restart";
	if ((g->dhcp || dnsmasq_dropped) &&
	    (fb_systemctl_live_argv(verb, dnsmasq, &restart) < 0 || fb_run_msg(restart, ret_msg) < 0))
		return FB_FAILED;
	return FB_OK;
}

static enum fb_result mgw_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	struct mgw g;
	_cleanup_(fb_file_set_done) struct fb_file_set p = { 0 };
	_cleanup_strv_ char **units = NULL;
	int r = mgw_load(c, section, &g, ret_msg);
	if (r == -ENODEV)
		return FB_PENDING;
	if (r == 0)
		r = mgw_plan(&g, &p, &units);
	if (r < 0) {
		if (!*ret_msg)
			*ret_msg = fb_strdupf("cannot prepare the mesh gateway configuration: %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_file_set_write(&p, ret_msg) < 0)
		return FB_FAILED;
	bool dropped = false;
	if (!g.dhcp && fb_exists(DNSMASQ_FILE) > 0) {
		if ((r = fb_remove(DNSMASQ_FILE)) < 0) {
			*ret_msg = fb_strdupf("cannot remove '%s': %s", DNSMASQ_FILE, strerror(-r));
			return FB_FAILED;
		}
		dropped = true;
	}
	_cleanup_strv_ char **enable = NULL;
	if (fb_systemctl_argv("enable", units, &enable) < 0 || fb_run_msg(enable, ret_msg) < 0)
		return FB_FAILED;
	if (fb_live()) {
		enum fb_result res = apply_live(&g, dropped, ret_msg);
		if (res != FB_OK)
			return res;
	}
	*ret_msg = summary(&g);
	return FB_OK;
}

static int mgw_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	struct mgw g;
	_cleanup_free_ char *msg = NULL;
	if (mgw_load(c, section, &g, &msg) < 0)
		return 0; /* apply just used it */
	/* The engine shows verify's message in place of apply's. */
	if (fb_live() && !fb_dry_run()) {
		int r = fb_routing_live(NFT_TABLE);
		if (r <= 0) {
			*ret_msg = strdup("the mesh gateway is not up: IPv4 forwarding and table 'inet " NFT_TABLE "' expected");
			return r < 0 ? r : -EIO;
		}
	}
	*ret_msg = summary(&g);
	return 0;
}

const struct fb_step step_mesh_gateway = {
	.name = "mesh-gateway",
	.config_key = "mesh_gateway",
	.schema = &mesh_gateway_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = mgw_check,
	.apply = mgw_apply,
	.verify = mgw_verify,
};
