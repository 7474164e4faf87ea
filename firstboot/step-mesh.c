/* mesh: a batman-adv mesh node (OpenMANET style), set up once and brought up on every boot.
 *
 * Persistent configuration, all through systemd-networkd (BatmanAdvanced since systemd 248;
 * bookworm has 252), so that every boot brings the mesh up without us:
 *   /etc/systemd/network/60-pmoves-mesh-bat0.netdev    bat0, Kind=batadv, [BatmanAdvanced]
 *                                                      GatewayMode=, RoutingAlgorithm= and
 *                                                      BridgeLoopAvoidance=no (below)
 *   /etc/systemd/network/60-pmoves-mesh-bat0.network   bat0's address in the mesh subnet, MTU
 *   /etc/systemd/network/60-pmoves-mesh-if-KEY.network one per hard interface, matched by name
 *                                                      or MAC: BatmanAdvanced=bat0, the MTU
 *                                                      raised by batman's 32-byte header
 *   /etc/systemd/system/pmoves-mesh-IFNAME.service     Wi-Fi only: set the interface type
 *                                                      (mesh point or IBSS) and join, which
 *                                                      networkd cannot do: wpa_supplicant
 *                                                      (SAE or IBSS-RSN) for a radio with a
 *                                                      key, iw for an "open" one; wanted by
 *                                                      the radio's device unit, so it runs
 *                                                      whenever the radio appears
 *   /etc/wpa_supplicant/pmoves-mesh-IFNAME.conf        a radio with a key: its supplicant's
 *                                                      config, 0600 (it holds the key)
 *   /etc/modules-load.d/pmoves-mesh.conf               batman-adv loaded at boot
 * and systemd-networkd (and the Wi-Fi units) enabled. Files of ours for interfaces no longer
 * in the config are removed (a Wi-Fi unit stopped and disabled first). On the running system (root "/") it is
 * also applied now: modprobe batman-adv; networkctl reload when networkd runs (plus batctl
 * gw_mode and bridge_loop_avoidance for an existing bat0, which networkd does not change), else
 * networkd started (--no-block: at boot it is ordered after us); the Wi-Fi units restarted.
 *
 * The 60- prefix sorts before other .network files (80-pmoves-dhcp.network matches en*), so
 * networkd gives a mesh interface our file and not a DHCP one.
 *
 * Bridge loop avoidance is off: bat0 carries the node's address and is bridged into no LAN, so
 * there is no loop to avoid, and with it on (the kernel's default) batman-adv makes the node a
 * backbone gateway on its first frame and then drops every broadcast and multicast frame, sent
 * or received, ARP included, for its first 3 periods of 10 s: after every boot no node could
 * reach a peer it had not talked to for 20 to 30 s after the mesh came up. */
#include "fb-fileset.h"
#include "fb-lan.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#define NETWORK_DIR "/etc/systemd/network"
#define NETDEV_FILE NETWORK_DIR "/60-pmoves-mesh-bat0.netdev"
#define BAT_NETWORK_FILE NETWORK_DIR "/60-pmoves-mesh-bat0.network"
#define MODULES_FILE "/etc/modules-load.d/pmoves-mesh.conf"
#define WPA_DIR "/etc/wpa_supplicant"
#define DEFAULT_SUPPLICANT "/usr/sbin/wpa_supplicant"
#define SYS_NET "/sys/class/net"
#define NETWORKD "systemd-networkd.service"
#define HEADER "# Written by pmoves-firstboot (mesh step): change its config, not this file.\n"
#define MAX_INTERFACES 16
#define BATMAN_HEADER 32 /* batman-adv's unicast header: 1532 on the wire for 1500 inside */
#define DEFAULT_MTU 1500
#define DEFAULT_PREFIX 24

/* ---- config schema (the step record's .schema) ---- */

enum mesh_type { TYPE_ETHERNET, TYPE_80211S, TYPE_IBSS };
static const char *const type_names[] = { "ethernet", "80211s", "ibss", NULL };

static const struct fb_format fmt_ifname = {
	.name = "mesh_interface_name",
	.message = "'%s' is not a network interface name (1 to 15 of a-z, A-Z, 0-9, '_', '.', '-'; not 'bat0', which is "
		   "the mesh itself)",
	.except = "bat0",
	.also = &fb_fmt_ifname,
};

static int type_of(const char *s)
{
	for (size_t i = 0; type_names[i]; i++)
		if (STREQ(s, type_names[i]))
			return (int)i;
	return -1;
}

static const struct fb_format fmt_type = {
	.name = "mesh_interface_type",
	.message = "'%s' is not an interface type: 'ethernet', '80211s' or 'ibss'",
	.values = type_names,
};

/* Mesh IDs and SSIDs go into a unit's ExecStart= line: a safe alphabet, no quoting needed. */
static const struct fb_format fmt_mesh_name = {
	.name = "mesh_id",
	.message = "'%s' is not a usable mesh ID or SSID (1 to 32 of a-z, A-Z, 0-9, '_', '.', '-', not starting with '-')",
	.pattern = "^[A-Za-z0-9_.][A-Za-z0-9_.-]*$",
	.max = 32,
};

/* Whole numbers from LO to HI: "N is out of range (WHAT, LO to HI)" for another one, "must be an
 * integer (...)" for anything else. */
#define INT_IN(lo_, hi_, what)                                                       \
	.integer = true, .lo = (lo_), .hi = (hi_),                                   \
	.message = "%s is out of range (" what ", " #lo_ " to " #hi_ ")",            \
	.type_message = "must be an integer (" what ", " #lo_ " to " #hi_ ")"

static const struct fb_format fmt_channel = {
	.name = "wifi_channel",
	INT_IN(1, 177, "a 2.4 GHz (1-14) or 5 GHz (32-177) channel; give 'frequency' for others"),
};

/* 2.4 GHz channels 1-14, 5 GHz channels 32-177; 0 for anything else. */
static unsigned channel_freq(int64_t ch)
{
	if (ch >= 1 && ch <= 13)
		return (unsigned)(2407 + 5 * ch);
	if (ch == 14)
		return 2484;
	if (ch >= 32 && ch <= 177)
		return (unsigned)(5000 + 5 * ch);
	return 0;
}

/* After fmt_channel: not one of 15-31. */
static int valid_channel(struct fb_check *c, json_object *v)
{
	if (!channel_freq(json_object_get_int64(v)))
		return fb_bad(c, "%lld is not a 2.4 GHz (1-14) or 5 GHz (32-177) channel; give 'frequency' in MHz for others",
			      (long long)json_object_get_int64(v));
	return 0;
}

static const struct fb_format fmt_frequency = {
	.name = "wifi_frequency",
	INT_IN(750, 7125, "MHz: 750-950 for Wi-Fi HaLow, 2412-7125 for Wi-Fi"),
};

static const struct fb_format fmt_width = {
	.name = "wifi_width",
	.message = "'%s' is not a channel width iw knows: NOHT, HT20, HT40+, HT40-, 80MHz, 160MHz, 5MHz, 10MHz, or for "
		   "HaLow 1MHz, 2MHz, 4MHz, 8MHz, 16MHz",
	.values = (const char *const[]){ "NOHT", "HT20", "HT40+", "HT40-", "80MHz", "160MHz", "5MHz", "10MHz", "1MHz", "2MHz",
					 "4MHz", "8MHz", "16MHz", NULL },
};

/* A WPA passphrase (IEEE 802.11i): 8 to 63 printable ASCII characters, space included. It
 * reaches wpa_supplicant's config hex-encoded (sae_password) or as the PSK derived from it
 * (psk), never quoted, so no character can end a quoted string there. */
static const struct fb_format fmt_key = {
	.name = "wifi_key",
	.message = "the key is not a WPA passphrase: 8 to 63 printable ASCII characters (space to '~')",
	.pattern = "^[ -~]{8,63}$",
};

/* It goes into a unit's ExecStart= line: no blanks, quotes, '$', '%' or '\\'. */
static const struct fb_format fmt_supplicant = {
	.name = "wifi_supplicant",
	.message = "'%s' is not a plain absolute path of A-Z, a-z, 0-9, '_', '.', '+', '-' and '/' (a wpa_supplicant binary)",
	.pattern = "^/[A-Za-z0-9_.+/-]*$",
	.also = &fb_fmt_abs_path,
};

/* The regulatory domain: ISO 3166-1 alpha-2, as cfg80211 and wpa_supplicant's country= take it. */
static const struct fb_format fmt_country = {
	.name = "wifi_country",
	.message = "'%s' is not a country code: ISO 3166-1 alpha-2, two upper-case letters such as \"DE\" or \"US\"",
	.pattern = "^[A-Z][A-Z]$",
};

/* The widths wpa_supplicant's network block can set (NULL: none, a radio with a key refuses it). */
static const struct {
	const char *width, *lines;
} wpa_widths[] = {
	{ "NOHT", "\tdisable_ht=1\n" },
	{ "HT20", "\tdisable_ht40=1\n" },
	{ "HT40+", "\tht40=1\n" },
	{ "HT40-", "\tht40=1\n" },
	{ "80MHz", "\tht40=1\n\tvht=1\n\tmax_oper_chwidth=1\n" },
	{ "160MHz", "\tht40=1\n\tvht=1\n\tmax_oper_chwidth=2\n" },
};

static const char *wpa_width(const char *width)
{
	for (size_t i = 0; width && i < ARRAY_SIZE(wpa_widths); i++)
		if (STREQ(width, wpa_widths[i].width))
			return wpa_widths[i].lines;
	return NULL;
}

static const struct fb_format fmt_hard_mtu = {
	.name = "interface_mtu",
	INT_IN(1280, 9216, "the interface's MTU in bytes"),
};

static const struct fb_format fmt_mtu = {
	.name = "bat0_mtu",
	INT_IN(1280, 9000, "bat0's MTU in bytes; the interfaces get 32 more"),
};

static int valid_interface(struct fb_check *c, json_object *v)
{
	json_object *t;
	int type = json_object_object_get_ex(v, "type", &t) ? type_of(json_object_get_string(t)) : TYPE_ETHERNET;
	if (fb_json_has(v, "name") == fb_json_has(v, "mac"))
		return fb_bad(c, fb_json_has(v, "name") ? "'name' and 'mac' are both given: one only" : "'name' or 'mac' is required");
	if (type == TYPE_ETHERNET) {
		/* A key on a wired link is refused, not ignored: batman-adv frames on a cable are
		 * not encrypted by this step, and a key there would suggest they were. */
		static const char *const wifi_only[] = { "mesh_id", "ssid", "frequency", "channel", "width", "key", "open", "supplicant" };
		for (size_t i = 0; i < ARRAY_SIZE(wifi_only); i++)
			if (fb_json_has(v, wifi_only[i]))
				return fb_bad(c, "'%s' is for Wi-Fi interfaces (type '80211s' or 'ibss'), this one is 'ethernet'", wifi_only[i]);
		return 0;
	}
	if (type == TYPE_80211S && (!fb_json_has(v, "mesh_id") || fb_json_has(v, "ssid")))
		return fb_bad(c, fb_json_has(v, "ssid") ? "an 80211s interface takes 'mesh_id', not 'ssid'" : "an 80211s interface needs 'mesh_id'");
	if (type == TYPE_IBSS && (!fb_json_has(v, "ssid") || fb_json_has(v, "mesh_id")))
		return fb_bad(c, fb_json_has(v, "mesh_id") ? "an ibss interface takes 'ssid', not 'mesh_id'" : "an ibss interface needs 'ssid'");
	if (fb_json_has(v, "frequency") == fb_json_has(v, "channel"))
		return fb_bad(c, fb_json_has(v, "channel") ? "'frequency' and 'channel' are both given: one only"
						   : "a Wi-Fi interface needs 'frequency' (MHz) or 'channel'");
	json_object *o;
	bool open = json_object_object_get_ex(v, "open", &o) && json_object_get_boolean(o), key = fb_json_has(v, "key");
	const char *shown = fb_json_str(v, "name", fb_json_str(v, "mac", ""));
	/* Neither a key nor "open" is not refused here: the key is a secret, scrubbed from
	 * device.json after an ok run, and a profile has the mesh without each card's key. The
	 * step keeps the supplicant config an earlier run wrote, or fails (keys_there). */
	if (open && key)
		return fb_bad(c, "radio '%s' has a 'key' and \"open\": true: one only", shown);
	if (open && fb_json_has(v, "supplicant"))
		return fb_bad(c, "radio '%s' is open: 'supplicant' is for radios with a 'key'", shown);
	if (!open && fb_json_has(v, "width") && !wpa_width(fb_json_str(v, "width", NULL)))
		return fb_bad(c, "width '%s' of radio '%s' is not one wpa_supplicant sets (NOHT, HT20, HT40+, HT40-, 80MHz, 160MHz): "
				 "leave it out for the driver's default",
			      fb_json_str(v, "width", ""), shown);
	return 0;
}

/* The regulatory domain is required with any radio: the driver's default (the world domain,
 * or whatever the card's EEPROM says) may be wrong for where the node is. */
static int valid_mesh(struct fb_check *c, json_object *v)
{
	json_object *list;
	if (fb_json_has(v, "country") || !json_object_object_get_ex(v, "interfaces", &list))
		return 0;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *f = json_object_array_get_idx(list, i);
		if (type_of(fb_json_str(f, "type", "ethernet")) != TYPE_ETHERNET)
			return fb_bad(c, "'country' is required with Wi-Fi interfaces (radio '%s'): the regulatory domain, ISO 3166-1 "
					 "alpha-2 such as \"DE\" or \"US\"",
				      fb_json_str(f, "name", fb_json_str(f, "mac", "")));
	}
	return 0;
}

static int valid_interfaces(struct fb_check *c, json_object *v)
{
	size_t n = json_object_array_length(v);
	if (n == 0)
		return fb_bad(c, "at least one interface is needed");
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++) {
			json_object *a = json_object_array_get_idx(v, i), *b = json_object_array_get_idx(v, j), *x, *y;
			for (const char *const *k = (const char *const[]){ "name", "mac", NULL }; *k; k++)
				if (json_object_object_get_ex(a, *k, &x) && json_object_object_get_ex(b, *k, &y) &&
				    !strcasecmp(json_object_get_string(x), json_object_get_string(y)))
					return fb_bad(c, "interface '%s' is listed twice ([%zu] and [%zu])", json_object_get_string(x), j, i);
		}
	return 0;
}

/* "A.B.C.D/P" or "A.B.C.D" (/24) -> "A.B.C.D/P"; false when it is not a usable host address. */
static bool parse_address(const char *s, char ret[24], char **ret_why)
{
	char host[16];
	size_t n = strcspn(s, "/");
	unsigned prefix = DEFAULT_PREFIX;
	struct in_addr a;
	if (n == 0 || n >= sizeof(host)) {
		*ret_why = strdup("not an IPv4 address");
		return false;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1) {
		*ret_why = strdup("not an IPv4 address");
		return false;
	}
	if (s[n]) {
		uint64_t p;
		if (parse_u64(s + n + 1, &p) < 0 || p < 8 || p > 30) {
			*ret_why = strdup("the prefix length must be 8 to 30");
			return false;
		}
		prefix = (unsigned)p;
	}
	uint32_t h = ntohl(a.s_addr), hostmask = (1u << (32 - prefix)) - 1;
	if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 28) >= 14) {
		*ret_why = strdup("not a unicast address (0/8, 127/8, multicast and reserved are refused)");
		return false;
	}
	if ((h & hostmask) == 0 || (h & hostmask) == hostmask) {
		*ret_why = fb_strdupf("the network or broadcast address of its /%u", prefix);
		return false;
	}
	snprintf(ret, 24, "%s/%u", host, prefix);
	return true;
}

static int valid_address(struct fb_check *c, json_object *v)
{
	char addr[24];
	_cleanup_free_ char *why = NULL;
	if (STREQ(json_object_get_string(v), "dhcp"))
		return 0;
	if (!parse_address(json_object_get_string(v), addr, &why))
		return fb_bad(c, "'%.40s' is not bat0's address: %s (such as \"10.42.0.2/24\", or \"dhcp\")", json_object_get_string(v),
			      why ? why : "invalid");
	return 0;
}

static const struct fb_format fmt_gateway = {
	.name = "mesh_gateway_mode",
	.message = "'%s' is not a gateway mode: 'server' (the node with an uplink), 'client' or 'off'",
	.values = (const char *const[]){ "server", "client", "off", NULL },
};

static const struct fb_format fmt_algorithm = {
	.name = "mesh_routing_algorithm",
	.message = "'%s' is not a routing algorithm: 'batman-iv' or 'batman-v'",
	.values = (const char *const[]){ "batman-iv", "batman-v", NULL },
};

/* The first octet not 0, 127, multicast or reserved (224 and up). */
#define UNICAST_FIRST "([1-9]|[1-9][0-9]|1[01][0-9]|12[0-6]|12[89]|1[3-9][0-9]|2[01][0-9]|22[0-3])"
static const struct fb_format fmt_router = {
	.name = "mesh_router",
	.message = "'%s' is not a unicast IPv4 address (the gateway node's bat0 address, such as \"10.42.0.1\")",
	.pattern = "^" UNICAST_FIRST "(\\." FB_IPV4_OCTET "){3}$",
};

static const struct fb_field interface_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fmt_ifname, FB_ID, 0 },
	{ "mac", FB_T_STRING, NULL, NULL, &fb_fmt_mac, FB_ID, 0 },
	{ "type", FB_T_STRING, NULL, NULL, &fmt_type, 0, 0 },
	{ "mesh_id", FB_T_STRING, NULL, NULL, &fmt_mesh_name, 0, 0 },
	{ "ssid", FB_T_STRING, NULL, NULL, &fmt_mesh_name, 0, 0 },
	{ "frequency", FB_T_SCALAR, NULL, NULL, &fmt_frequency, 0, 0 },
	{ "channel", FB_T_SCALAR, NULL, valid_channel, &fmt_channel, 0, 0 },
	{ "width", FB_T_STRING, NULL, NULL, &fmt_width, 0, 0 },
	{ "mtu", FB_T_SCALAR, NULL, NULL, &fmt_hard_mtu, 0, 0 },
	{ "key", FB_T_STRING, NULL, NULL, &fmt_key, FB_SECRET, 63 },
	{ "open", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "supplicant", FB_T_STRING, NULL, fb_valid_path_limits, &fmt_supplicant, 0, FB_PATH_MAX },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field interface_elem = { NULL, FB_T_OBJECT, interface_fields, valid_interface, NULL, 0, 0 };

static const struct fb_field mesh_fields[] = {
	{ "interfaces", FB_T_ARRAY, &interface_elem, valid_interfaces, NULL, FB_REQUIRED, MAX_INTERFACES },
	{ "address", FB_T_STRING, NULL, valid_address, NULL, FB_REQUIRED, 0 },
	{ "gateway", FB_T_STRING, NULL, NULL, &fmt_gateway, 0, 0 },
	{ "mtu", FB_T_SCALAR, NULL, NULL, &fmt_mtu, 0, 0 },
	{ "routing_algorithm", FB_T_STRING, NULL, NULL, &fmt_algorithm, 0, 0 },
	{ "router", FB_T_STRING, NULL, NULL, &fmt_router, 0, 0 },
	{ "country", FB_T_STRING, NULL, NULL, &fmt_country, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field mesh_schema = { NULL, FB_T_OBJECT, mesh_fields, valid_mesh, NULL, 0, 0 };

/* ---- the node, from a valid section ---- */

struct mesh_if {
	const char *name; /* as configured, or NULL */
	char mac[18];     /* lower case, or "" */
	enum mesh_type type;
	const char *id;   /* mesh_id or ssid */
	unsigned freq;    /* MHz */
	const char *width;
	unsigned mtu;
	char ifname[16];  /* Wi-Fi: the kernel's name (configured, or found by MAC) */
	const char *key;  /* the WPA passphrase (secret), or NULL: open, or given to an earlier run */
	bool open;        /* "open": true: no encryption, no supplicant */
	bool kept;        /* not open and no key: the supplicant config an earlier run wrote is kept */
	const char *supplicant; /* not open: the wpa_supplicant binary */
};

struct mesh {
	struct mesh_if ifs[MAX_INTERFACES];
	size_t n;
	char address[24]; /* or "dhcp" */
	const char *gateway, *algorithm;
	const char *router; /* default route through the mesh, or NULL */
	const char *country; /* with radios: the regulatory domain */
	unsigned mtu;
};

/* -ENODEV with *ret_msg: a Wi-Fi interface named by MAC is not there. */
static int mesh_load(json_object *section, struct mesh *m, char **ret_msg)
{
	json_object *list;
	memset(m, 0, sizeof(*m));
	_cleanup_free_ char *why = NULL;
	bool dhcp = STREQ(fb_json_str(section, "address", ""), "dhcp");
	if (dhcp)
		memcpy(m->address, "dhcp", sizeof("dhcp"));
	else if (!parse_address(fb_json_str(section, "address", ""), m->address, &why))
		return -EINVAL;
	m->gateway = fb_json_str(section, "gateway", "client");
	m->algorithm = fb_json_str(section, "routing_algorithm", "batman-iv");
	m->mtu = (unsigned)fb_json_int(section, "mtu", DEFAULT_MTU);
	m->router = fb_json_str(section, "router", NULL);
	m->country = fb_json_str(section, "country", NULL);
	if (dhcp && STREQ(m->gateway, "server"))
		*ret_msg = strdup("bat0's address is 'dhcp' on the gateway server: the server needs a static address (it is the "
				  "mesh's router and DHCP server)");
	else if (dhcp && m->router)
		*ret_msg = strdup("'router' is for a static bat0 address: with \"dhcp\" the default route comes from the gateway's "
				  "DHCP server");
	if (dhcp && *ret_msg)
		return -EINVAL;
	if (m->router && !dhcp) {
		/* Checked here, not in the schema: it depends on "address" and "gateway" too. */
		uint32_t a, rt;
		unsigned prefix = (unsigned)strtoul(strchr(m->address, '/') + 1, NULL, 10);
		uint32_t mask = ~((1u << (32 - prefix)) - 1);
		char host[16];
		snprintf(host, sizeof(host), "%.*s", (int)strcspn(m->address, "/"), m->address);
		if (!fb_parse_ipv4(host, &a) || !fb_parse_ipv4(m->router, &rt))
			return -EINVAL;
		if (STREQ(m->gateway, "server"))
			*ret_msg = fb_strdupf("'router' is for the nodes without an uplink: this one is the gateway server");
		else if ((a & mask) != (rt & mask) || a == rt)
			*ret_msg = fb_strdupf("router '%s' is not another address of bat0's subnet '%s'", m->router, m->address);
		if (*ret_msg)
			return -EINVAL;
	}
	if (!json_object_object_get_ex(section, "interfaces", &list))
		return -EINVAL;
	m->n = json_object_array_length(list);
	if (m->n > MAX_INTERFACES)
		return -E2BIG;
	for (size_t i = 0; i < m->n; i++) {
		json_object *o = json_object_array_get_idx(list, i);
		struct mesh_if *f = &m->ifs[i];
		f->name = fb_json_str(o, "name", NULL);
		if (fb_json_has(o, "mac") && !fb_parse_mac(fb_json_str(o, "mac", ""), f->mac))
			return -EINVAL;
		f->type = (enum mesh_type)type_of(fb_json_str(o, "type", "ethernet"));
		f->id = fb_json_str(o, f->type == TYPE_IBSS ? "ssid" : "mesh_id", NULL);
		f->freq = fb_json_has(o, "channel") ? channel_freq(fb_json_int(o, "channel", 0)) : (unsigned)fb_json_int(o, "frequency", 0);
		f->width = fb_json_str(o, "width", NULL);
		f->mtu = (unsigned)fb_json_int(o, "mtu", (int64_t)m->mtu + BATMAN_HEADER);
		if (f->type == TYPE_ETHERNET)
			continue;
		/* The schema checked these (valid_interface, valid_mesh); a config that reaches us
		 * otherwise is refused, never joined open. */
		json_object *open;
		f->key = fb_json_str(o, "key", NULL);
		f->open = json_object_object_get_ex(o, "open", &open) && json_object_get_boolean(open);
		f->supplicant = fb_json_str(o, "supplicant", DEFAULT_SUPPLICANT);
		if (!m->country || (f->key && f->open))
			return -EINVAL;
		if (f->name) {
			memcpy(f->ifname, f->name, strlen(f->name) + 1);
			continue;
		}
		int r = fb_ifname_of_mac(f->mac, f->ifname);
		if (r == -ENODEV)
			*ret_msg = fb_strdupf("no network interface has MAC '%s' (the %s radio): trying again on a later run",
					      f->mac, type_names[f->type]);
		else if (r < 0)
			*ret_msg = fb_strdupf("cannot read '%s': %s", SYS_NET, strerror(-r));
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the files ---- */

struct plan {
	struct fb_file_set files;
	char **units; /* to enable: networkd, then the Wi-Fi units */
	char **wifi_units;
	char **kept; /* supplicant configs of radios without a key, left as an earlier run wrote them */
};

static void plan_done(struct plan *p)
{
	/* The supplicant configs (0600) hold the key or the PSK made from it. */
	for (size_t i = 0; i < p->files.n; i++)
		if (p->files.files[i].mode == 0600 && p->files.files[i].text)
			explicit_bzero(p->files.files[i].text, strlen(p->files.files[i].text));
	fb_file_set_done(&p->files);
	strv_free(p->units);
	strv_free(p->wifi_units);
	strv_free(p->kept);
	memset(p, 0, sizeof(*p));
}

/* Takes PATH and TEXT (both may be NULL: -ENOMEM). */
static int plan_add(struct plan *p, char *path, char *text)
{
	return fb_file_set_add(&p->files, path, text, 0644);
}

/* The file name part for a hard interface: its name, or its MAC without colons. */
static void if_key(const struct mesh_if *f, char ret[16])
{
	if (f->name) {
		memcpy(ret, f->name, strlen(f->name) + 1);
		return;
	}
	size_t k = 0;
	for (const char *s = f->mac; *s; s++)
		if (*s != ':')
			ret[k++] = *s;
	ret[k] = '\0';
}

static const char *if_shown(const struct mesh_if *f)
{
	return f->name ? f->name : f->mac;
}

static char *hard_network(const struct mesh_if *f)
{
	return fb_strdupf(HEADER "# batman-adv hard interface of bat0 (%s).\n"
			  "[Match]\n%s=%s\n%s\n"
			  "[Link]\nMTUBytes=%u\nRequiredForOnline=no\n\n"
			  "[Network]\nBatmanAdvanced=bat0\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nLLDP=no\nEmitLLDP=no\n",
			  type_names[f->type], f->name ? "Name" : "MACAddress", f->name ? f->name : f->mac,
			  f->type == TYPE_ETHERNET ? "" : "Type=wlan\n", f->mtu);
}

/* The device unit's name escapes '-' (systemd-escape): wlan-1 -> wlan\x2d1. */
static void device_unit_name(const char *ifname, char ret[16 * 4])
{
	size_t k = 0;
	for (const char *s = ifname; *s; s++)
		k += (size_t)snprintf(ret + k, 16 * 4 - k, *s == '-' ? "\\x2d" : "%c", *s);
}

static char *wpa_conf_path(const struct mesh_if *f)
{
	return fb_strdupf(WPA_DIR "/pmoves-mesh-%s.conf", f->ifname);
}

/* LEN bytes at P as lower-case hex into RET (2 * LEN + 1 bytes). */
static void hex_of(const unsigned char *p, size_t len, char *ret)
{
	for (size_t i = 0; i < len; i++)
		snprintf(ret + 2 * i, 3, "%02x", p[i]);
}

/* wpa_supplicant's config for a radio with a key: 802.11s with SAE (and protected management
 * frames, which mesh SAE requires), or IBSS-RSN (WPA2-PSK, CCMP). The key is never written in
 * quotes, where a '"' or '#' in it would end the string or start a comment: sae_password is
 * given hex-encoded (wpa_supplicant reads an unquoted string value as hex), psk as the
 * 256-bit PSK derived from the passphrase and the SSID (PBKDF2-HMAC-SHA1, 4096 rounds, as
 * IEEE 802.11i and wpa_passphrase do). mesh_fwding=0: batman-adv routes, the 802.11s layer
 * must not forward (HWMP) too. */
static char *wpa_conf(const struct mesh *m, const struct mesh_if *f)
{
	bool mp = f->type == TYPE_80211S;
	unsigned char psk[32];
	char hex[2 * 63 + 1];
	const char *width = f->width ? wpa_width(f->width) : "";
	if (!width || strlen(f->key) > 63) /* the schema's limits: fmt_key, and a width it sets */
		return NULL;
	if (mp)
		hex_of((const unsigned char *)f->key, strlen(f->key), hex);
	else if (PKCS5_PBKDF2_HMAC_SHA1(f->key, (int)strlen(f->key), (const unsigned char *)f->id, (int)strlen(f->id), 4096,
					(int)sizeof(psk), psk) != 1)
		return NULL;
	else
		hex_of(psk, sizeof(psk), hex);
	char *text = mp ? fb_strdupf(HEADER "# %s in the 802.11s mesh '%s' with SAE; read by pmoves-mesh-%s.service.\n"
					    "ctrl_interface=/run/wpa_supplicant\n"
					    "country=%s\n"
					    "network={\n\tssid=\"%s\"\n\tmode=5\n\tfrequency=%u\n%s"
					    "\tkey_mgmt=SAE\n\tsae_password=%s\n\tieee80211w=2\n\tmesh_fwding=0\n}\n",
				     f->ifname, f->id, f->ifname, m->country, f->id, f->freq, width, hex)
			: fb_strdupf(HEADER "# %s in the IBSS '%s' with IBSS-RSN (WPA2-PSK, CCMP); read by pmoves-mesh-%s.service.\n"
					    "ctrl_interface=/run/wpa_supplicant\n"
					    "ap_scan=2\n"
					    "country=%s\n"
					    "network={\n\tssid=\"%s\"\n\tmode=1\n\tfrequency=%u\n\tfixed_freq=1\n%s"
					    "\tproto=RSN\n\tkey_mgmt=WPA-PSK\n\tpairwise=CCMP\n\tgroup=CCMP\n\tpsk=%s\n}\n",
				     f->ifname, f->id, f->ifname, m->country, f->id, f->freq, width, hex);
	explicit_bzero(psk, sizeof(psk));
	explicit_bzero(hex, sizeof(hex));
	return text;
}

/* The radio's unit: the interface type set with iw, then either wpa_supplicant with our
 * config (a radio with a key: it joins, and keeps running for the peers' SAE or 4-way
 * handshakes) or, on an "open" radio, the regulatory domain and the join with iw. The key is
 * in the 0600 config only, never on a command line or in this (0644) file. */
static char *wifi_unit(const struct mesh *m, const struct mesh_if *f)
{
	bool mp = f->type == TYPE_80211S;
	const char *verb = mp ? "mesh" : "ibss";
	char dev[16 * 4];
	device_unit_name(f->ifname, dev);
	_cleanup_free_ char *width = f->width ? fb_strdupf(" %s", f->width) : strdup(""), *conf = wpa_conf_path(f);
	if (!width || !conf)
		return NULL;
	_cleanup_free_ char *run = NULL;
	if (!f->open)
		run = fb_strdupf("ExecStart=%s -D nl80211 -i %s -c %s\n"
				 "Restart=on-failure\nRestartSec=5\n",
				 f->supplicant, f->ifname, conf);
	else if (mp)
		run = fb_strdupf("Type=oneshot\nRemainAfterExit=yes\n"
				 "ExecStart=iw reg set %s\n"
				 "ExecStart=iw dev %s mesh join %s freq %u%s\n"
				 "ExecStart=iw dev %s set mesh_param mesh_fwding 0\n"
				 "ExecStop=-iw dev %s mesh leave\n",
				 m->country, f->ifname, f->id, f->freq, width, f->ifname, f->ifname);
	else
		run = fb_strdupf("Type=oneshot\nRemainAfterExit=yes\n"
				 "ExecStart=iw reg set %s\n"
				 "ExecStart=iw dev %s ibss join %s %u%s fixed-freq\n"
				 "ExecStop=-iw dev %s ibss leave\n",
				 m->country, f->ifname, f->id, f->freq, width, f->ifname);
	if (!run)
		return NULL;
	return fb_strdupf(HEADER "[Unit]\n"
			  "Description=pmoves mesh: %s joins the %s '%s' on %u MHz%s\n"
			  "BindsTo=sys-subsystem-net-devices-%s.device\n"
			  "After=sys-subsystem-net-devices-%s.device\n"
			  "Before=network.target\n\n"
			  "[Service]\n"
			  "ExecStartPre=-iw dev %s %s leave\n"
			  "ExecStartPre=ip link set dev %s down\n"
			  "ExecStartPre=iw dev %s set type %s\n"
			  "ExecStartPre=ip link set dev %s up\n"
			  "%s\n"
			  "[Install]\nWantedBy=sys-subsystem-net-devices-%s.device\n",
			  f->ifname, mp ? "802.11s mesh" : "IBSS", f->id, f->freq,
			  f->open ? ", open" : mp ? " with SAE" : " with IBSS-RSN", dev, dev, f->ifname, verb, f->ifname, f->ifname,
			  mp ? "mp" : "ibss", f->ifname, run, dev);
}

static int mesh_plan(const struct mesh *m, struct plan *p)
{
	int r = plan_add(p, strdup(NETDEV_FILE),
			 fb_strdupf(HEADER "[NetDev]\nName=bat0\nKind=batadv\nDescription=pmoves mesh (batman-adv)\n\n"
					   "[BatmanAdvanced]\nGatewayMode=%s\nRoutingAlgorithm=%s\n"
					   "# bat0 is bridged into no LAN: bridge loop avoidance would only drop every\n"
					   "# broadcast, ARP too, for 20-30 s after bat0 comes up\n"
					   "BridgeLoopAvoidance=no\n",
				    m->gateway, m->algorithm));
	_cleanup_free_ char *route = m->router ? fb_strdupf("Gateway=%s\n", m->router) : strdup("");
	/* "dhcp": networkd's DHCP client on bat0 (batman-adv's gateway client mode sends its
	 * requests to the best gateway), the default route from the lease's router option. */
	_cleanup_free_ char *addr = STREQ(m->address, "dhcp") ? strdup("DHCP=ipv4\n") : fb_strdupf("Address=%s\n", m->address);
	if (r == 0)
		r = plan_add(p, strdup(BAT_NETWORK_FILE),
			     route && addr ? fb_strdupf(HEADER "[Match]\nName=bat0\n\n[Link]\nMTUBytes=%u\n\n"
							       "[Network]\n%s%sConfigureWithoutCarrier=yes\nIPv6AcceptRA=no\n",
							m->mtu, addr, route)
					   : NULL);
	for (size_t i = 0; r == 0 && i < m->n; i++) {
		char key[16];
		if_key(&m->ifs[i], key);
		r = plan_add(p, fb_strdupf(NETWORK_DIR "/60-pmoves-mesh-if-%s.network", key), hard_network(&m->ifs[i]));
	}
	if (r == 0)
		r = plan_add(p, strdup(MODULES_FILE), strdup(HEADER "batman-adv\n"));
	if (r == 0)
		r = strv_push(&p->units, NETWORKD);
	for (size_t i = 0; r == 0 && i < m->n; i++) {
		const struct mesh_if *f = &m->ifs[i];
		if (f->type == TYPE_ETHERNET)
			continue;
		_cleanup_free_ char *unit = fb_strdupf("pmoves-mesh-%s.service", f->ifname);
		if (f->key && (r = fb_file_set_add(&p->files, wpa_conf_path(f), wpa_conf(m, f), 0600)) < 0)
			break;
		_cleanup_free_ char *kept = f->kept ? wpa_conf_path(f) : NULL;
		if (f->kept && (r = kept ? strv_push(&p->kept, kept) : -ENOMEM) < 0)
			break;
		r = unit ? plan_add(p, fb_strdupf("/etc/systemd/system/%s", unit), wifi_unit(m, f)) : -ENOMEM;
		if (r == 0)
			r = strv_push(&p->units, unit);
		if (r == 0)
			r = strv_push(&p->wifi_units, unit);
	}
	return r;
}

static int sys_exists(const char *fmt, const char *name)
{
	_cleanup_free_ char *p = fb_strdupf(fmt, name);
	return p ? fb_exists(p) : -ENOMEM;
}

/* 1: PATH is an executable regular file on the machine (symbolic links followed inside the
 * root); 0: not; -errno. */
static int program_there(const char *path)
{
	_cleanup_close_ int fd = fb_open(path, O_PATH, 0);
	struct stat st;
	if (fd == -ENOENT || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Every radio with a key has its wpa_supplicant: 0, or -ENOENT with *ret_msg. A unit that
 * cannot start is not written: the radio would stay out of the mesh without a word. */
static int supplicants_there(const struct mesh *m, char **ret_msg)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct mesh_if *f = &m->ifs[i];
		int r = f->type != TYPE_ETHERNET && !f->open ? program_there(f->supplicant) : 1;
		if (r < 0)
			*ret_msg = fb_strdupf("cannot look at '%s' (the supplicant of radio '%s'): %s", f->supplicant, if_shown(f), strerror(-r));
		else if (r == 0)
			*ret_msg = fb_strdupf("'%s' (the supplicant of radio '%s') is not an executable on this machine: install %s",
					      f->supplicant, if_shown(f),
					      STREQ(f->supplicant, DEFAULT_SUPPLICANT) ? "Debian's wpasupplicant in the image"
										       : "the radio vendor's wpa_supplicant, or fix 'supplicant'");
		if (r <= 0)
			return r < 0 ? r : -ENOENT;
	}
	return 0;
}

/* Every radio that is not open has its key, or the supplicant config an earlier run wrote with
 * it (the key is scrubbed from device.json after an ok run): that one is kept as it is. 0, or
 * -ENOKEY with *ret_msg: nothing is written, and no radio comes up unencrypted instead. */
static int keys_there(struct mesh *m, char **ret_msg)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mesh_if *f = &m->ifs[i];
		if (f->type == TYPE_ETHERNET || f->open || f->key)
			continue;
		_cleanup_free_ char *conf = wpa_conf_path(f);
		int r = conf ? fb_exists(conf) : -ENOMEM;
		if (r < 0)
			*ret_msg = fb_strdupf("cannot look at '%s' (the supplicant config of radio '%s'): %s", conf ? conf : "", if_shown(f),
					      strerror(-r));
		else if (r == 0)
			*ret_msg = fb_strdupf("radio '%s' has no 'key' (the mesh's WPA passphrase) and no supplicant config from an earlier run: "
					      "give its 'key' in device.json, or set \"open\": true for an unencrypted radio",
					      if_shown(f));
		if (r <= 0)
			return r < 0 ? r : -ENOKEY;
		f->kept = true;
	}
	return 0;
}

/* ---- files left by an earlier config ---- */

#define UNIT_DIR "/etc/systemd/system"
static const struct {
	const char *dir, *prefix, *suffix;
} ours[] = {
	{ NETWORK_DIR, "60-pmoves-mesh-if-", ".network" },
	{ UNIT_DIR, "pmoves-mesh-", ".service" },
	{ WPA_DIR, "pmoves-mesh-", ".conf" },
};

/* Our hard interface files and Wi-Fi units that the plan does not write (an interface taken
 * out of the config), sorted; NULL when there are none. */
static int stale_files(const struct plan *p, char ***ret)
{
	_cleanup_strv_ char **stale = NULL;
	for (size_t k = 0; k < ARRAY_SIZE(ours); k++) {
		int fd = fb_open(ours[k].dir, O_RDONLY | O_DIRECTORY, 0);
		if (fd == -ENOENT)
			continue;
		if (fd < 0)
			return fd;
		DIR *d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -errno;
		}
		int r = 0;
		for (struct dirent *de; r == 0 && (de = readdir(d));) {
			size_t n = strlen(de->d_name), pl = strlen(ours[k].prefix), sl = strlen(ours[k].suffix);
			if (n <= pl + sl || strncmp(de->d_name, ours[k].prefix, pl) || !STREQ(de->d_name + n - sl, ours[k].suffix))
				continue;
			_cleanup_free_ char *abs = fb_strdupf("%s/%s", ours[k].dir, de->d_name);
			if (!abs)
				r = -ENOMEM;
			else if (!fb_file_set_has(&p->files, abs) && !strv_contains(p->kept, abs))
				r = strv_push(&stale, abs);
		}
		closedir(d);
		if (r < 0)
			return r;
	}
	if (stale)
		strv_sort(stale);
	*ret = TAKE_PTR(stale);
	return 0;
}

/* A Wi-Fi unit first leaves the mesh (live), is disabled, then its file goes; a .network file
 * just goes (networkctl reload, later, lets the interface go). */
static enum fb_result remove_stale(char **stale, char **ret_msg)
{
	for (char **f = stale; f && *f; f++) {
		const char *base = strrchr(*f, '/') + 1;
		int r;
		if (!strncmp(*f, UNIT_DIR "/", strlen(UNIT_DIR) + 1)) {
			char *units[] = { (char *)base, NULL };
			_cleanup_strv_ char **disable = NULL;
			fb_systemctl_live("stop", units); /* not running: nothing to stop */
			if (fb_systemctl_argv("disable", units, &disable) < 0 || fb_run_msg(disable, ret_msg) < 0)
				return FB_FAILED;
		}
		if ((r = fb_remove(*f)) < 0) {
			*ret_msg = fb_strdupf("cannot remove '%s': %s", *f, strerror(-r));
			return FB_FAILED;
		}
	}
	return FB_OK;
}

/* ---- the step ---- */

static int mesh_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct mesh m;
	_cleanup_(plan_done) struct plan p = { 0 };
	_cleanup_free_ char *msg = NULL;
	int r = mesh_load(section, &m, &msg);
	if (r == -ENODEV)
		return 0; /* apply says why */
	if (r == 0 && (keys_there(&m, &msg) < 0 || supplicants_there(&m, &msg) < 0))
		return 0; /* apply says why */
	if (r == 0)
		r = mesh_plan(&m, &p);
	if (r < 0) {
		*ret_msg = TAKE_PTR(msg);
		return r;
	}
	if ((r = fb_file_set_check(&p.files)) <= 0)
		return r;
	for (char **u = p.units; *u; u++)
		if ((r = fb_unit_enabled(*u)) <= 0)
			return r;
	_cleanup_strv_ char **stale = NULL;
	if ((r = stale_files(&p, &stale)) < 0 || stale)
		return r < 0 ? r : 0;
	if (!fb_live())
		return 1;
	/* The running system has the mesh: module loaded, bat0 there. */
	if ((r = fb_exists("/sys/module/batman_adv")) <= 0)
		return r;
	return sys_exists(SYS_NET "/%s", "bat0");
}

/* Bring it up on the running system. */
static enum fb_result apply_live(const struct mesh *m, const struct plan *p, char **ret_msg)
{
	char *modprobe[] = { "modprobe", "batman-adv", NULL };
	if (fb_run_msg(modprobe, ret_msg) < 0)
		return FB_FAILED;
	if (p->wifi_units) {
		char *reload[] = { "systemctl", "daemon-reload", NULL };
		if (fb_run_msg(reload, ret_msg) < 0)
			return FB_FAILED;
	}
	char *networkd[] = { NETWORKD, NULL };
	_cleanup_strv_ char **start = NULL;
	int r = fb_unit_active(NETWORKD);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot run 'systemctl is-active %s': %s", NETWORKD, strerror(-r));
		return FB_FAILED;
	}
	if (r > 0) {
		/* reload creates a new bat0 and reconfigures the links whose .network changed; an
		 * existing bat0 keeps its gateway mode and bridge loop avoidance, so those are set
		 * with batctl. */
		char *reload[] = { "networkctl", "reload", NULL };
		if (fb_run_msg(reload, ret_msg) < 0)
			return FB_FAILED;
		if (sys_exists(SYS_NET "/%s", "bat0") > 0) {
			char *gw[] = { "batctl", "meshif", "bat0", "gw_mode", (char *)m->gateway, NULL };
			char *bla[] = { "batctl", "meshif", "bat0", "bridge_loop_avoidance", "0", NULL };
			if (fb_run_msg(gw, ret_msg) < 0 || fb_run_msg(bla, ret_msg) < 0)
				return FB_FAILED;
		}
	} else if (fb_systemctl_live_argv("start", networkd, &start) < 0 || fb_run_msg(start, ret_msg) < 0)
		return FB_FAILED;
	for (char **u = p->wifi_units; u && *u; u++) {
		/* A radio not there yet: its unit starts when the device appears (WantedBy=). */
		char ifname[16];
		const char *name = *u + strlen("pmoves-mesh-");
		snprintf(ifname, sizeof(ifname), "%.*s", (int)(strlen(name) - strlen(".service")), name);
		if (sys_exists(SYS_NET "/%s", ifname) <= 0)
			continue;
		_cleanup_strv_ char **restart = NULL;
		if (fb_systemctl_live_argv("restart", (char *[]){ *u, NULL }, &restart) < 0 || fb_run_msg(restart, ret_msg) < 0)
			return FB_FAILED;
	}
	return FB_OK;
}

static enum fb_result mesh_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct mesh m;
	_cleanup_(plan_done) struct plan p = { 0 };
	int r = mesh_load(section, &m, ret_msg);
	if (r == -ENODEV)
		return FB_PENDING;
	if (r == 0 && (keys_there(&m, ret_msg) < 0 || supplicants_there(&m, ret_msg) < 0))
		return FB_FAILED;
	if (r == 0)
		r = mesh_plan(&m, &p);
	if (r < 0) {
		if (!*ret_msg)
			*ret_msg = fb_strdupf("cannot prepare the mesh configuration: %s", strerror(-r));
		return FB_FAILED;
	}
	_cleanup_strv_ char **stale = NULL;
	r = stale_files(&p, &stale);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot list the mesh files of an earlier config: %s", strerror(-r));
		return FB_FAILED;
	}
	enum fb_result res = remove_stale(stale, ret_msg);
	if (res != FB_OK)
		return res;
	if (fb_file_set_write(&p.files, ret_msg) < 0)
		return FB_FAILED;
	_cleanup_strv_ char **enable = NULL;
	if (fb_systemctl_argv("enable", p.units, &enable) < 0 || fb_run_msg(enable, ret_msg) < 0)
		return FB_FAILED;
	if (fb_live() && (res = apply_live(&m, &p, ret_msg)) != FB_OK)
		return res;

	_cleanup_free_ char *ifs = NULL;
	for (size_t i = 0; i < m.n; i++) {
		const struct mesh_if *f = &m.ifs[i];
		char *more = fb_strdupf("%s%s%s %s MTU %u", ifs ? ifs : "", ifs ? ", " : "", if_shown(f), type_names[f->type], f->mtu);
		free(ifs);
		if (!(ifs = more))
			return FB_FAILED;
	}
	size_t n_stale = strv_length(stale);
	_cleanup_free_ char *via = m.router ? fb_strdupf(", default route via %s", m.router) : strdup("");
	if (!via)
		return FB_FAILED;
	*ret_msg = fb_strdupf("bat0 %s%s, gateway %s, %s, MTU %u over %s%s%s", STREQ(m.address, "dhcp") ? "by DHCP" : m.address, via,
			      m.gateway, m.algorithm, m.mtu, ifs,
			      n_stale ? "; removed the files of interfaces no longer configured" : "",
			      fb_live() ? "" : "; comes up on the next boot");
	return FB_OK;
}

const struct fb_step step_mesh = {
	.name = "mesh",
	.config_key = "mesh",
	.schema = &mesh_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = mesh_check,
	.apply = mesh_apply,
};
