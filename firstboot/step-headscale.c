/* headscale: the fleet's control server (the headscale-hub profile, VM 102), for Headscale 0.29
 * (0.29.2 is the release the profile pins; docs/firstboot.md says where each form comes from).
 *
 *   - https only: clients are given an https:// login server, so the hub serves TLS itself,
 *     with a certificate and key from the config ("tls": {"cert", "key"}; the key is a secret:
 *     /etc/headscale/tls.key, 0600, owned by the user Headscale's package runs it as) or with
 *     a certificate Headscale gets by ACME ("tls": {"acme": {...}}). No "tls": the step fails
 *     and says so, rather than serve plain HTTP;
 *   - /etc/headscale/config.yaml in 0.29's format (server_url, listen addresses, TLS, sqlite
 *     database, IP prefixes, DERP map, MagicDNS), and the policy it names,
 *     /etc/headscale/acl.hujson: tagOwners for tag:core, tag:ci, tag:mesh, tag:edge and every
 *     other tag the keys and rules use, owned by the first user ("NAME@", as 0.26 and later
 *     read users), autoApprovers so the mesh subnet routes (10.42.0.0/24 unless the config
 *     says otherwise) of tag:mesh nodes and exit nodes of tag:edge need no manual approval,
 *     and the "acls" and "grants" of the config (none: Headscale lets everyone on the tailnet
 *     reach everyone);
 *   - headscale.service enabled and started (the unit comes with Headscale's package: an
 *     artifact of kind deb, see docs/firstboot.md);
 *   - on the running machine: the users the config lists (`headscale users create`), their
 *     numeric IDs (`headscale users list -o json`), and for each of "keys" a pre-auth key
 *     (`headscale preauthkeys create --user ID ... -o json`), written 0600 to
 *     /var/lib/pmoves/headscale/NAME.key. Messages name the files, never the keys. A key file
 *     that exists is kept: keys are made once.
 * On a tree (--root) the files are written and the unit enabled; users and keys are made on
 * the machine (pending). */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <time.h>

#define CONFIG_FILE "/etc/headscale/config.yaml"
#define POLICY_FILE "/etc/headscale/acl.hujson"
#define CERT_FILE "/etc/headscale/tls.crt"
#define TLS_KEY_FILE "/etc/headscale/tls.key"
#define ACME_CACHE "/var/lib/headscale/cache"
#define KEY_DIR "/var/lib/pmoves/headscale"
#define HEADSCALE "/usr/bin/headscale"
#define SERVICE_USER "headscale" /* the user Headscale's package makes and runs it as */
#define DEFAULT_MESH "10.42.0.0/24"
#define DEFAULT_ACME_URL "https://acme-v02.api.letsencrypt.org/directory"
#define SERVER_WAIT 30 /* seconds for the server to answer after a start */

/* ---- schema ---- */

/* A host name as Headscale's URLs and MagicDNS take it: 1 to 253 of a-z, 0-9, '.', '-', not
 * starting with '.' or '-', not ending with '.'. */
#define HOST_RE "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9-])?"
/* A port from 1 to 65535, leading zeros taken: in server_url in 5 digits at most. */
#define PORT5_RE "(0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
/* HOST:PORT, the host of hex digits, '.', ':' and brackets ("[::]:8080"), the port 1 to 65535
 * with any leading zeros. */
#define LISTEN_RE "([0-9A-Fa-f.:]|\\[|\\])+:0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
/* Any character: '.' is no wildcard in the patterns (fb-valid.h). */
#define ANY_RE "(\n|[^\n])"

/* A pre-auth key's name: the file NAME.key. */
static const struct fb_format fmt_key_name = {
	.name = "headscale_key_name",
	.message = "'%s' is not a key name (lower-case letters, digits, '-')",
	.pattern = "^[a-z0-9][a-z0-9-]*$",
	.max = 63,
};

/* A Headscale user: 0.29 wants 2 characters or more, a letter first (util.ValidateUsername);
 * '@' is left out, the policy names users as "NAME@". */
static const struct fb_format fmt_user = {
	.name = "headscale_user",
	.message = "'%s' is not a user name (2 to 63 lower-case letters, digits, '-', '.', '_', a letter first)",
	.pattern = "^[a-z][a-z0-9._-]*$",
	.min = 2,
	.max = 63,
};

/* "https://HOST[:PORT][/]": what server_url_parse() takes. */
static const struct fb_format fmt_server_url = {
	.name = "headscale_server_url",
	.message = "'%s' is not an https:// URL of a host ('https://hs.example.org', a port if not 443)",
	.pattern = "^https://" HOST_RE "(:" PORT5_RE ")?/?$",
};

static bool host_ok(const char *s, size_t n)
{
	return n > 0 && n <= 253 && s[0] != '.' && s[0] != '-' && s[n - 1] != '.' &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") >= n;
}

/* A fmt_server_url: its host (into HOST) and port (443 when not given). */
static bool server_url_parse(const char *s, char host[254], unsigned *ret_port)
{
	if (strncmp(s, "https://", 8))
		return false;
	s += 8;
	size_t n = strcspn(s, ":/");
	uint64_t port = 443;
	if (!host_ok(s, n))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	s += n;
	if (*s == ':') {
		size_t d = strspn(s + 1, "0123456789");
		char num[8];
		if (d == 0 || d > 5)
			return false;
		memcpy(num, s + 1, d);
		num[d] = '\0';
		if (parse_u64(num, &port) < 0 || port == 0 || port > 65535)
			return false;
		s += 1 + d;
	}
	if (*s == '/')
		s++;
	*ret_port = (unsigned)port;
	return *s == '\0';
}

/* A DERP map URL: https, nothing YAML would read otherwise. */
static const struct fb_format fmt_derp_url = {
	.name = "derp_url",
	.message = "'%s' is not an https:// URL",
	.pattern = "^https://[^/ \t\r\n\"'#][^ \t\r\n\"'#]*$",
};

static const struct fb_format fmt_listen = {
	.name = "listen_address",
	.message = "'%s' is not an address and port ('0.0.0.0:443')",
	.pattern = "^" LISTEN_RE "$",
	.max = 64,
};

static const struct fb_format fmt_prefix = {
	.name = "address_prefix",
	.message = "'%s' is not an address prefix ('10.42.0.0/24')",
	.pattern = "^[0-9A-Fa-f.:/]*/[0-9A-Fa-f.:/]*$",
	.max = 64,
};

static const struct fb_format fmt_duration = {
	.name = "duration",
	.message = "'%s' is not a duration ('720h', '30m')",
	.pattern = "^[0-9]{1,7}[smhd]$",
};

/* base_domain and the ACME host name: as host_ok() takes them. */
static const struct fb_format fmt_domain = {
	.name = "headscale_domain",
	.message = "'%s' is not a domain name",
	.pattern = "^[a-z0-9]([a-z0-9.-]*[a-z0-9-])?$",
	.max = 253,
};

static const struct fb_format fmt_ip = {
	.name = "headscale_ip",
	.message = "'%s' is not an IP address",
	.pattern = "^[0-9A-Fa-f.:]{2,45}$",
};

/* A key needs a user or tags: 0.29 refuses one with neither (ErrPreAuthKeyNotTaggedOrOwned). */
static int valid_key(struct fb_check *c, json_object *v)
{
	json_object *t;
	if (!fb_json_has(v, "user") && !(json_object_object_get_ex(v, "tags", &t) && json_object_array_length(t) > 0))
		return fb_bad(c, "a key needs a 'user' or 'tags' (a tagged key makes tagged nodes, owned by no user)");
	return 0;
}

static const struct fb_field user_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_user, 0, 0 };
static const struct fb_field tag_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_tag, 0, 0 };
static const struct fb_field url_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_derp_url, 0, 512 };
static const struct fb_field ip_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_ip, 0, 64 };
static const struct fb_field key_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fmt_key_name, FB_REQUIRED, 0 },
	{ "user", FB_T_STRING, NULL, NULL, &fmt_user, 0, 0 },
	{ "reusable", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "ephemeral", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "expiration", FB_T_STRING, NULL, NULL, &fmt_duration, 0, 0 },
	{ "tags", FB_T_ARRAY, &tag_elem, NULL, NULL, 0, 16 },
	FB_FIELDS_END,
};
static const struct fb_field key_elem = { NULL, FB_T_OBJECT, key_fields, valid_key, NULL, 0, 0 };

/* Policy rules as Headscale 0.29 reads them: ACLs {action, src, dst, proto} and grants {src,
 * dst, ip}. The names in them go into the policy as they are (users as "NAME@", tags, groups,
 * autogroups, addresses, "*"); Headscale checks them when it loads it. */
static const struct fb_format fmt_acl_action = {
	.name = "acl_action",
	.message = "'%s' is not an ACL action (Headscale knows 'accept')",
	.values = (const char *const[]){ "accept", NULL },
};

static const struct fb_format fmt_acl_proto = {
	.name = "acl_protocol",
	.message = "'%s' is not a protocol ('tcp', 'udp', 'icmp' or an IP protocol number)",
	.pattern = "^[a-z0-9-]+$",
	.max = 16,
};

/* "*", "tag:ci", "group:admins", "alice@", "10.42.0.0/24", "tag:ci:22,443", "*:*", "tcp:443":
 * printable ASCII but space, '"' and '\' (written without '\' and ']' in a bracket: see
 * fb-valid.h). */
static const struct fb_format fmt_acl_entry = {
	.name = "acl_entry",
	.message = "'%s' is not an ACL source or destination (no spaces, quotes or control characters)",
	.pattern = "^([!#-[^-~]|\\])+$",
};

static const struct fb_field acl_entry_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_acl_entry, 0, 256 };
static const struct fb_field acl_fields[] = {
	{ "action", FB_T_STRING, NULL, NULL, &fmt_acl_action, FB_REQUIRED, 0 },
	{ "src", FB_T_ARRAY, &acl_entry_elem, NULL, NULL, FB_REQUIRED, 256 },
	{ "dst", FB_T_ARRAY, &acl_entry_elem, NULL, NULL, FB_REQUIRED, 256 },
	{ "proto", FB_T_STRING, NULL, NULL, &fmt_acl_proto, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field acl_elem = { NULL, FB_T_OBJECT, acl_fields, NULL, NULL, 0, 0 };
static const struct fb_field grant_fields[] = {
	{ "src", FB_T_ARRAY, &acl_entry_elem, NULL, NULL, FB_REQUIRED, 256 },
	{ "dst", FB_T_ARRAY, &acl_entry_elem, NULL, NULL, FB_REQUIRED, 256 },
	{ "ip", FB_T_ARRAY, &acl_entry_elem, NULL, NULL, FB_REQUIRED, 256 },
	FB_FIELDS_END,
};
static const struct fb_field grant_elem = { NULL, FB_T_OBJECT, grant_fields, NULL, NULL, 0, 0 };

/* TLS. The PEM texts are checked for their armour only; Headscale reads them. They are text of
 * several lines: prefix patterns, without '$' (fb-valid.h). A message never shows any of the
 * key. */

/* "-----BEGIN CERTIFICATE-----\n" first, then "\n-----END CERTIFICATE-----" (the first line's
 * newline may be that one's). */
static const struct fb_format fmt_cert = {
	.name = "pem_certificates",
	.message = "not a PEM certificate chain ('-----BEGIN CERTIFICATE-----' ... '-----END CERTIFICATE-----')",
	.pattern = "^-----BEGIN CERTIFICATE-----\n([^\n]*\n)*-----END CERTIFICATE-----",
};

/* "-----BEGIN " first, "PRIVATE KEY-----\n" and "\n-----END " (in either order; a newline may
 * be both's), and no "-----BEGIN " after an "\n-----END ": one key. */
static const struct fb_format fmt_tls_key = {
	.name = "pem_private_key",
	.message = "not one PEM private key ('-----BEGIN PRIVATE KEY-----' ... '-----END PRIVATE KEY-----')",
	.pattern = "^-----BEGIN (" ANY_RE "*PRIVATE KEY-----\n([^\n]*\n)*-----END |" ANY_RE "*\n-----END " ANY_RE
		   "*PRIVATE KEY-----\n)",
	.forbid = "\n-----END " ANY_RE "*-----BEGIN ",
};

/* One '@', not first or last, and letters, digits, '.', '_', '+', '-'. */
static const struct fb_format fmt_email = {
	.name = "email",
	.message = "'%s' is not an e-mail address",
	.pattern = "^[A-Za-z0-9._+-]+@[A-Za-z0-9._+-]+$",
};

static const struct fb_format fmt_challenge = {
	.name = "acme_challenge",
	.message = "'%s' is not an ACME challenge Headscale knows ('HTTP-01' or 'TLS-ALPN-01')",
	.values = (const char *const[]){ "HTTP-01", "TLS-ALPN-01", NULL },
};

/* tls_letsencrypt_listen: ":http", or an address and port ("0.0.0.0:80"). */
static const struct fb_format fmt_acme_listen = {
	.name = "acme_listen_address",
	.message = "'%s' is not an address and port ('0.0.0.0:80') or ':http'",
	.pattern = "^(:http|" LISTEN_RE ")$",
	.max = 64,
};

static int valid_tls(struct fb_check *c, json_object *v)
{
	bool cert = fb_json_has(v, "cert"), key = fb_json_has(v, "key"), acme = fb_json_has(v, "acme");
	if (acme && (cert || key))
		return fb_bad(c, "give 'cert' and 'key', or 'acme', not both (Headscale refuses both)");
	if (key && !cert)
		return fb_bad(c, "a 'key' needs its 'cert'");
	if (!acme && !cert)
		return fb_bad(c, "give 'cert' and 'key', or 'acme'");
	return 0;
}

static const struct fb_field acme_fields[] = {
	{ "hostname", FB_T_STRING, NULL, NULL, &fmt_domain, 0, 0 },
	{ "email", FB_T_STRING, NULL, NULL, &fmt_email, 0, 254 },
	{ "url", FB_T_STRING, NULL, NULL, &fb_fmt_https_url, 0, 512 },
	{ "challenge", FB_T_STRING, NULL, NULL, &fmt_challenge, 0, 0 },
	{ "listen", FB_T_STRING, NULL, NULL, &fmt_acme_listen, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field tls_fields[] = {
	{ "cert", FB_T_STRING, NULL, NULL, &fmt_cert, 0, 64 * 1024 },
	/* Not FB_REQUIRED: the engine scrubs it from device.json once the run is ok; the key file
	 * stays, and a later run uses it. */
	{ "key", FB_T_STRING, NULL, NULL, &fmt_tls_key, FB_SECRET, 16 * 1024 },
	{ "acme", FB_T_OBJECT, acme_fields, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};

/* 0.29 does not start when server_url's host is base_domain or a name under it
 * (types.isSafeServerURL). */
static int valid_section(struct fb_check *c, json_object *v)
{
	const char *base = fb_json_str(v, "base_domain", "fleet.internal");
	char host[254];
	unsigned port;
	if (!server_url_parse(fb_json_str(v, "server_url", ""), host, &port))
		return 0; /* absent in this source: the merged config has it */
	size_t h = strlen(host), b = strlen(base);
	if (STREQ(host, base) || (h > b && host[h - b - 1] == '.' && STREQ(host + h - b, base)))
		return fb_bad(c, "the server's host '%s' must not be 'base_domain' ('%s') or a name under it", host, base);
	return 0;
}

static const struct fb_field headscale_fields[] = {
	{ "server_url", FB_T_STRING, NULL, NULL, &fmt_server_url, FB_REQUIRED, 512 },
	{ "listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "metrics_listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "grpc_listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "tls", FB_T_OBJECT, tls_fields, valid_tls, NULL, 0, 0 },
	{ "prefix_v4", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "prefix_v6", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "base_domain", FB_T_STRING, NULL, NULL, &fmt_domain, 0, 0 },
	{ "nameservers", FB_T_ARRAY, &ip_elem, NULL, NULL, 0, 8 },
	{ "derp_urls", FB_T_ARRAY, &url_elem, NULL, NULL, 0, 8 },
	{ "mesh_subnet", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "users", FB_T_ARRAY, &user_elem, NULL, NULL, 0, 64 },
	{ "keys", FB_T_ARRAY, &key_elem, NULL, NULL, 0, 64 },
	{ "acls", FB_T_ARRAY, &acl_elem, NULL, NULL, 0, 256 },
	{ "grants", FB_T_ARRAY, &grant_elem, NULL, NULL, 0, 256 },
	FB_FIELDS_END,
};
static const struct fb_field headscale_schema = { NULL, FB_T_OBJECT, headscale_fields, valid_section, NULL, 0, 0 };

/* ---- what to write ---- */

static json_object *list_of(json_object *section, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(section, key, &v) ? v : NULL;
}

static void yaml_list(FILE *f, const char *indent, json_object *l, const char *const *defaults)
{
	if (l)
		for (size_t i = 0; i < json_object_array_length(l); i++)
			fprintf(f, "%s- %s\n", indent, json_object_get_string(json_object_array_get_idx(l, i)));
	else
		for (; *defaults; defaults++)
			fprintf(f, "%s- %s\n", indent, *defaults);
}

/* The address Headscale listens on: the config's, else every address on server_url's port. */
static char *listen_addr(json_object *section)
{
	char host[254];
	unsigned port = 443;
	if (fb_json_has(section, "listen_addr"))
		return strdup(fb_json_str(section, "listen_addr", ""));
	server_url_parse(fb_json_str(section, "server_url", ""), host, &port);
	return fb_strdupf("0.0.0.0:%u", port);
}

static void tls_text(FILE *f, json_object *section)
{
	json_object *tls = list_of(section, "tls"), *acme = list_of(tls, "acme");
	if (!acme) {
		fputs("tls_cert_path: " CERT_FILE "\n"
		      "tls_key_path: " TLS_KEY_FILE "\n",
		      f);
		return;
	}
	char host[254] = "";
	unsigned port;
	server_url_parse(fb_json_str(section, "server_url", ""), host, &port);
	fprintf(f,
		"acme_url: %s\n"
		"acme_email: \"%s\"\n"
		"tls_letsencrypt_hostname: %s\n"
		"tls_letsencrypt_cache_dir: " ACME_CACHE "\n"
		"tls_letsencrypt_challenge_type: %s\n"
		"tls_letsencrypt_listen: \"%s\"\n",
		fb_json_str(acme, "url", DEFAULT_ACME_URL), fb_json_str(acme, "email", ""), fb_json_str(acme, "hostname", host),
		fb_json_str(acme, "challenge", "HTTP-01"), fb_json_str(acme, "listen", ":http"));
}

static char *config_text(json_object *section)
{
	static const char *const derp[] = { "https://controlplane.tailscale.com/derpmap/default", NULL };
	static const char *const dns[] = { "1.1.1.1", "9.9.9.9", NULL };
	_cleanup_free_ char *listen = listen_addr(section);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = listen ? open_memstream(&buf, &len) : NULL;
	if (!f)
		return NULL;
	fprintf(f,
		"# Written by pmoves-firstboot (headscale step) for Headscale 0.29: change its config, not this file.\n"
		"server_url: %s\n"
		"listen_addr: %s\n"
		"metrics_listen_addr: %s\n"
		"grpc_listen_addr: %s\n"
		"grpc_allow_insecure: false\n",
		fb_json_str(section, "server_url", ""), listen, fb_json_str(section, "metrics_listen_addr", "127.0.0.1:9090"),
		fb_json_str(section, "grpc_listen_addr", "127.0.0.1:50443"));
	tls_text(f, section);
	fprintf(f,
		"noise:\n"
		"  private_key_path: /var/lib/headscale/noise_private.key\n"
		"prefixes:\n"
		"  v4: %s\n"
		"  v6: %s\n"
		"  allocation: sequential\n"
		"derp:\n"
		"  server:\n"
		"    enabled: false\n"
		"  urls:\n",
		fb_json_str(section, "prefix_v4", "100.64.0.0/10"), fb_json_str(section, "prefix_v6", "fd7a:115c:a1e0::/48"));
	yaml_list(f, "    ", list_of(section, "derp_urls"), derp);
	fprintf(f,
		"  paths: []\n"
		"  auto_update_enabled: true\n"
		"  update_frequency: 3h\n"
		"disable_check_updates: true\n"
		"node:\n"
		"  ephemeral:\n"
		"    inactivity_timeout: 30m\n"
		"database:\n"
		"  type: sqlite\n"
		"  sqlite:\n"
		"    path: /var/lib/headscale/db.sqlite\n"
		"    write_ahead_log: true\n"
		"log:\n"
		"  level: info\n"
		"policy:\n"
		"  mode: file\n"
		"  path: " POLICY_FILE "\n"
		"dns:\n"
		"  magic_dns: true\n"
		"  base_domain: %s\n"
		"  override_local_dns: true\n"
		"  nameservers:\n"
		"    global:\n",
		fb_json_str(section, "base_domain", "fleet.internal"));
	yaml_list(f, "      ", list_of(section, "nameservers"), dns);
	fputs("unix_socket: /var/run/headscale/headscale.sock\n"
	      "unix_socket_permission: \"0770\"\n",
	      f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Add the tag S names ("tag:ci", "tag:ci:22,443") to OWNERS, owned by OWNER (may be NULL). */
static void owners_add(json_object *owners, const char *s, const char *owner)
{
	if (strncmp(s, "tag:", 4))
		return;
	size_t n = 4 + strcspn(s + 4, ":");
	char tag[65];
	if (n < 5 || n > 64 || strspn(s + 4, "abcdefghijklmnopqrstuvwxyz0123456789-") < n - 4)
		return; /* not a tag we can name: Headscale says what is wrong with it */
	memcpy(tag, s, n);
	tag[n] = '\0';
	if (json_object_object_get_ex(owners, tag, NULL))
		return;
	json_object *o = json_object_new_array();
	if (owner)
		json_object_array_add(o, json_object_new_string(owner));
	json_object_object_add(owners, tag, o);
}

/* Every string of the lists KEYS of each object of the array ARR. */
static void owners_from(json_object *owners, json_object *arr, const char *const *keys, const char *owner)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		for (const char *const *k = keys; *k; k++) {
			json_object *l = list_of(json_object_array_get_idx(arr, i), *k);
			for (size_t j = 0; l && j < json_object_array_length(l); j++)
				owners_add(owners, json_object_get_string(json_object_array_get_idx(l, j)), owner);
		}
}

static json_object *copy_of(json_object *v)
{
	json_object *c = NULL;
	return v && json_object_deep_copy(v, &c, NULL) == 0 ? c : NULL;
}

static char *policy_text(json_object *section)
{
	json_object *users = list_of(section, "users");
	_cleanup_free_ char *owner = users && json_object_array_length(users)
					     ? fb_strdupf("%s@", json_object_get_string(json_object_array_get_idx(users, 0)))
					     : NULL;
	_cleanup_(fb_json_putp) json_object *p = json_object_new_object();
	json_object *owners = json_object_new_object(), *approvers = json_object_new_object(),
		    *routes = json_object_new_object(), *mesh = json_object_new_array(), *exit = json_object_new_array();
	if (!p || !owners || !approvers || !routes || !mesh || !exit) {
		json_object_put(owners), json_object_put(approvers), json_object_put(routes), json_object_put(mesh), json_object_put(exit);
		return NULL;
	}
	static const char *const tags[] = { "tag:core", "tag:ci", "tag:mesh", "tag:edge" };
	static const char *const key_lists[] = { "tags", NULL }, *const rule_lists[] = { "src", "dst", NULL };
	for (size_t i = 0; i < ARRAY_SIZE(tags); i++)
		owners_add(owners, tags[i], owner);
	/* A tag the policy does not define makes Headscale refuse it ("references undefined tag"). */
	owners_from(owners, list_of(section, "keys"), key_lists, owner);
	owners_from(owners, list_of(section, "acls"), rule_lists, owner);
	owners_from(owners, list_of(section, "grants"), rule_lists, owner);
	json_object_object_add(p, "tagOwners", owners);
	json_object_array_add(mesh, json_object_new_string("tag:mesh"));
	json_object_object_add(routes, fb_json_str(section, "mesh_subnet", DEFAULT_MESH), mesh);
	json_object_object_add(approvers, "routes", routes);
	json_object_array_add(exit, json_object_new_string("tag:edge"));
	json_object_object_add(approvers, "exitNode", exit);
	json_object_object_add(p, "autoApprovers", approvers);
	/* Without "acls" and "grants" Headscale allows all traffic on the tailnet. */
	if (list_of(section, "acls"))
		json_object_object_add(p, "acls", copy_of(list_of(section, "acls")));
	if (list_of(section, "grants"))
		json_object_object_add(p, "grants", copy_of(list_of(section, "grants")));
	return fb_strdupf("// Written by pmoves-firstboot (headscale step) for Headscale 0.29: change its config, not this file.\n%s\n",
			  json_object_to_json_string_ext(p, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								    JSON_C_TO_STRING_NOSLASHESCAPE));
}

static char *key_path(json_object *key)
{
	return fb_strdupf(KEY_DIR "/%s.key", fb_json_str(key, "name", "?"));
}

/* The IDs of the user Headscale runs as (its package makes it), from the tree's /etc/passwd;
 * root's when there is none (Headscale installed by hand, running as root). */
static void service_ids(uid_t *ret_uid, gid_t *ret_gid)
{
	_cleanup_free_ char *text = NULL;
	*ret_uid = 0, *ret_gid = 0;
	if (fb_read("/etc/passwd", 16u << 20, &text, NULL) < 0)
		return;
	static const char name[] = SERVICE_USER ":";
	for (char *line = text; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n')) {
		unsigned long uid, gid;
		char *p, *e;
		if (strncmp(line, name, sizeof(name) - 1) || !(p = strchr(line + sizeof(name) - 1, ':')))
			continue;
		uid = strtoul(p + 1, &e, 10);
		if (e == p + 1 || *e != ':')
			return;
		p = e;
		gid = strtoul(p + 1, &e, 10);
		if (e == p + 1 || *e != ':' || uid >= INT32_MAX || gid >= INT32_MAX)
			return;
		*ret_uid = (uid_t)uid, *ret_gid = (gid_t)gid;
		return;
	}
}

/* ---- the step ---- */

/* 1: the TLS files are there as configured; 0: not; -errno. Without the key in the config
 * (scrubbed from device.json after an ok run), the key file there is taken as it is. */
static int tls_done(json_object *section)
{
	json_object *tls = list_of(section, "tls");
	if (!tls)
		return 0;
	if (fb_json_has(tls, "acme"))
		return 1;
	const char *cert = fb_json_str(tls, "cert", ""), *key = fb_json_str(tls, "key", NULL);
	uid_t uid;
	gid_t gid;
	service_ids(&uid, &gid);
	int r = fb_file_matches(CERT_FILE, cert, strlen(cert), 0644, 0, 0);
	if (r <= 0)
		return r;
	return key ? fb_file_matches(TLS_KEY_FILE, key, strlen(key), 0600, uid, gid) : fb_exists(TLS_KEY_FILE);
}

static int files_done(json_object *section)
{
	_cleanup_free_ char *cfg = config_text(section), *pol = policy_text(section);
	if (!cfg || !pol)
		return -ENOMEM;
	int r = tls_done(section);
	if (r > 0)
		r = fb_file_is(CONFIG_FILE, cfg, strlen(cfg));
	return r <= 0 ? r : fb_file_is(POLICY_FILE, pol, strlen(pol));
}

static int keys_done(json_object *section)
{
	json_object *keys = list_of(section, "keys");
	for (size_t i = 0; keys && i < json_object_array_length(keys); i++) {
		_cleanup_free_ char *p = key_path(json_object_array_get_idx(keys, i));
		if (!p)
			return -ENOMEM;
		if (fb_exists(p) != 1)
			return 0;
	}
	return 1;
}

/* Done: the files are as configured and, on the running system, the keys made and the server
 * enabled and running. On a tree users and keys are left to the machine: never done. */
static int headscale_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	int r = files_done(section);
	if (r <= 0 || !fb_live())
		return r <= 0 ? r : 0;
	if ((r = keys_done(section)) <= 0 || (r = fb_unit_enabled("headscale.service")) <= 0)
		return r < 0 ? 0 : r;
	r = fb_unit_active("headscale.service");
	return r < 0 ? 0 : r;
}

/* The server's users, `headscale users list -o json`: an array of {id, name}, or null when
 * there is none (Go's encoding of an empty list). -EAGAIN: it exits non-zero (not up yet). */
static int users_now(json_object **ret)
{
	char *argv[] = { "headscale", "users", "list", "-o", "json", NULL };
	_cleanup_free_ char *out = NULL;
	int r = fb_run_capture(argv, &out);
	if (r != 0)
		return r < 0 ? r : -EAGAIN;
	_cleanup_(fb_json_putp) json_object *o = out ? json_tokener_parse(out) : NULL;
	const char *text = out ? out + strspn(out, " \t\r\n") : "";
	if (!o && !strncmp(text, "null", 4) && !text[4 + strspn(text + 4, " \t\r\n")])
		o = json_object_new_array();
	if (!o || !json_object_is_type(o, json_type_array))
		return -EBADMSG;
	*ret = TAKE_PTR(o);
	return 0;
}

/* The numeric ID of user NAME in USERS (from users_now), or 0. */
static uint64_t user_id(json_object *users, const char *name)
{
	for (size_t i = 0; users && i < json_object_array_length(users); i++) {
		json_object *u = json_object_array_get_idx(users, i), *id;
		uint64_t n;
		if (!STREQ(fb_json_str(u, "name", ""), name) || !json_object_object_get_ex(u, "id", &id))
			continue;
		if (json_object_is_type(id, json_type_int) && json_object_get_int64(id) > 0)
			return (uint64_t)json_object_get_int64(id);
		if (json_object_is_type(id, json_type_string) && parse_u64(json_object_get_string(id), &n) == 0)
			return n;
	}
	return 0;
}

/* KEY made with `headscale preauthkeys create ... -o json`, the key written 0600 to its file.
 * A dry run prints the command and makes nothing (its output would be a real key). */
static int make_key(json_object *key, json_object *users, char **ret_msg)
{
	json_object *v;
	_cleanup_strv_ char **argv = NULL;
	const char *name = fb_json_str(key, "name", "?"), *user = fb_json_str(key, "user", NULL);
	uint64_t id = user ? user_id(users, user) : 0;
	_cleanup_free_ char *path = key_path(key), *tags = NULL,
			    *ids = id ? fb_strdupf("%" PRIu64, id) : fb_strdupf("<ID of '%s'>", user ? user : "");
	if (user && id == 0 && !fb_dry_run()) {
		*ret_msg = fb_strdupf("key '%s': user '%s' is not on the Headscale server ('headscale users list')", name, user);
		return -ENOENT;
	}
	if (json_object_object_get_ex(key, "tags", &v) && json_object_array_length(v)) {
		_cleanup_strv_ char **t = NULL;
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (strv_push(&t, json_object_get_string(json_object_array_get_idx(v, i))) < 0)
				return -ENOMEM;
		tags = strv_join(t, ",");
		if (!tags)
			return -ENOMEM;
	}
	if (!path || !ids)
		return -ENOMEM;
	/* 0.28 and later take the user's numeric ID; a tagged key needs none (its nodes are owned
	 * by their tags), the user is then only recorded as its maker. */
	const char *args[] = { "headscale", "preauthkeys", "create", user ? "--user" : NULL, user ? ids : NULL,
			       json_object_object_get_ex(key, "reusable", &v) && json_object_get_boolean(v) ? "--reusable" : NULL,
			       json_object_object_get_ex(key, "ephemeral", &v) && json_object_get_boolean(v) ? "--ephemeral" : NULL,
			       "--expiration", fb_json_str(key, "expiration", "720h"), tags ? "--tags" : NULL, tags, "-o", "json" };
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		if (args[i] && strv_push(&argv, args[i]) < 0)
			return -ENOMEM;
	if (fb_dry_run()) {
		fb_run(argv);
		return 0;
	}
	_cleanup_free_ char *out = NULL, *text = NULL;
	int r = fb_run_capture(argv, &out);
	if (r != 0) {
		*ret_msg = fb_strdupf("key '%s': 'headscale preauthkeys create%s%s' exited with %d", name, user ? " --user " : "",
				      user ? ids : "", r);
		return -EIO;
	}
	_cleanup_(fb_json_putp) json_object *o = out ? json_tokener_parse(out) : NULL;
	const char *secret = fb_json_str(o, "key", NULL);
	if (secret && *secret && !strpbrk(secret, " \t\r\n"))
		text = fb_strdupf("%s\n", secret);
	if (out)
		explicit_bzero(out, strlen(out));
	if (!text) {
		*ret_msg = fb_strdupf("key '%s': 'headscale preauthkeys create' gave no key", name);
		return -EBADMSG;
	}
	r = fb_write(path, text, strlen(text), 0600, 0, 0);
	explicit_bzero(text, strlen(text));
	if (r < 0)
		*ret_msg = fb_strdupf("cannot write '%s': %s", path, strerror(-r));
	return r;
}

/* The certificate (0644) and the key (0600, the service's: Headscale runs as its own user). */
static int tls_write(json_object *section, char **ret_msg)
{
	json_object *tls = list_of(section, "tls");
	const char *cert = fb_json_str(tls, "cert", NULL), *key = fb_json_str(tls, "key", NULL);
	uid_t uid;
	gid_t gid;
	int r;
	if (!cert)
		return 0; /* ACME: Headscale keeps what it gets in its cache */
	if (!key && fb_exists(TLS_KEY_FILE) != 1) {
		*ret_msg = strdup("no TLS key: 'headscale.tls.key' is not in the config and '" TLS_KEY_FILE "' does not exist");
		return -ENOENT;
	}
	service_ids(&uid, &gid);
	if ((r = fb_write(CERT_FILE, cert, strlen(cert), 0644, 0, 0)) < 0 ||
	    (key && (r = fb_write(TLS_KEY_FILE, key, strlen(key), 0600, uid, gid)) < 0)) {
		*ret_msg = fb_strdupf("cannot write the TLS certificate and key: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* "https on 0.0.0.0:443 with the certificate in /etc/headscale/tls.crt" */
static char *tls_desc(json_object *section)
{
	json_object *acme = list_of(list_of(section, "tls"), "acme");
	_cleanup_free_ char *listen = listen_addr(section);
	char host[254] = "";
	unsigned port;
	server_url_parse(fb_json_str(section, "server_url", ""), host, &port);
	if (!listen)
		return NULL;
	return acme ? fb_strdupf("https on %s with a certificate for '%s' by ACME", listen, fb_json_str(acme, "hostname", host))
		    : fb_strdupf("https on %s with the certificate in " CERT_FILE, listen);
}

static enum fb_result headscale_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	if (!list_of(section, "tls")) {
		*ret_msg = strdup("the hub serves https and 'headscale.tls' is not in the config: give 'cert' and 'key', "
				  "or 'acme' (docs/firstboot.md); nothing written");
		return FB_FAILED;
	}
	_cleanup_free_ char *cfg = config_text(section), *pol = policy_text(section), *desc = tls_desc(section);
	int r;
	if (!cfg || !pol || !desc)
		return FB_FAILED;
	if (tls_write(section, ret_msg) < 0)
		return FB_FAILED;
	if ((r = fb_write(CONFIG_FILE, cfg, strlen(cfg), 0644, 0, 0)) < 0 ||
	    (r = fb_write(POLICY_FILE, pol, strlen(pol), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write the Headscale config: %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_exists(HEADSCALE) != 1) {
		*ret_msg = strdup("config written; Headscale is not installed yet ('" HEADSCALE "': an artifact of kind deb): "
				  "users and keys once it is");
		return FB_PENDING;
	}
	if (fb_unit_enable("headscale.service", true, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_live()) {
		*ret_msg = strdup("config written, headscale enabled; users and keys are made on the running machine");
		return FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("config written, headscale enabled; users and keys once the boot is done");
		return FB_PENDING;
	}

	/* The server takes a moment to open its socket after the start. */
	_cleanup_(fb_json_putp) json_object *have = NULL;
	for (unsigned waited = 0; (r = users_now(&have)) == -EAGAIN && waited < SERVER_WAIT && !fb_dry_run(); waited++) {
		struct timespec ts = { .tv_sec = 1 };
		nanosleep(&ts, NULL);
	}
	if (r < 0 && !fb_dry_run()) {
		*ret_msg = fb_strdupf("Headscale does not answer 'headscale users list' after %d s: %s", SERVER_WAIT,
				      r == -EAGAIN ? "it exits non-zero" : strerror(-r));
		return FB_FAILED;
	}
	json_object *users = list_of(section, "users"), *keys = list_of(section, "keys");
	unsigned made_users = 0, made_keys = 0;
	for (size_t i = 0; users && i < json_object_array_length(users); i++) {
		const char *u = json_object_get_string(json_object_array_get_idx(users, i));
		if (user_id(have, u))
			continue;
		char *argv[] = { "headscale", "users", "create", (char *)u, NULL };
		if ((r = fb_run(argv)) != 0) {
			*ret_msg = fb_strdupf("'headscale users create %s' exited with %d", u, r);
			return FB_FAILED;
		}
		made_users++;
	}
	/* The new users' IDs. */
	if (made_users && !fb_dry_run()) {
		json_object_put(TAKE_PTR(have));
		if ((r = users_now(&have)) < 0) {
			*ret_msg = fb_strdupf("'headscale users list' after making the users: %s",
					      r == -EAGAIN ? "it exits non-zero" : strerror(-r));
			return FB_FAILED;
		}
	}
	_cleanup_strv_ char **files = NULL;
	for (size_t i = 0; keys && i < json_object_array_length(keys); i++) {
		json_object *key = json_object_array_get_idx(keys, i);
		_cleanup_free_ char *p = key_path(key);
		if (!p || strv_push(&files, p) < 0)
			return FB_FAILED;
		if (fb_exists(p) == 1)
			continue;
		if (make_key(key, have, ret_msg) < 0)
			return FB_FAILED;
		made_keys++;
	}
	_cleanup_free_ char *list = files ? strv_join(files, ", ") : strdup("none");
	*ret_msg = fb_strdupf("%s; %u users and %u pre-auth keys made; keys (0600) in %s", desc, made_users, made_keys,
			      list ? list : "?");
	return FB_OK;
}

const struct fb_step step_headscale = {
	.name = "headscale",
	.config_key = "headscale",
	.schema = &headscale_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = headscale_check,
	.apply = headscale_apply,
};
