/* headscale: the fleet's control server (the headscale-hub profile, VM 102).
 *
 *   - /etc/headscale/config.yaml in the format of Headscale 0.23 (server_url, listen
 *     addresses, sqlite database, IP prefixes, DERP map, MagicDNS), and the policy it names,
 *     /etc/headscale/acl.hujson: tagOwners for tag:core, tag:ci, tag:mesh and tag:edge (owned
 *     by the first user), autoApprovers so the mesh subnet routes (10.42.0.0/24 unless the
 *     config says otherwise) of tag:mesh nodes and exit nodes of tag:edge need no manual
 *     approval, and the ACLs (everyone on the tailnet reaches everyone, unless "acls" says
 *     otherwise);
 *   - headscale.service enabled and started (the unit comes with Headscale's package: an
 *     artifact of kind deb, see docs/firstboot.md);
 *   - on the running machine: the users the config lists (`headscale users create`), and for
 *     each of "keys" a pre-auth key (`headscale preauthkeys create ... -o json`), written 0600
 *     to /var/lib/pmoves/headscale/NAME.key. Messages name the files, never the keys. A key
 *     file that exists is kept: keys are made once.
 * On a tree (--root) the files are written and the unit enabled; users and keys are made on
 * the machine (pending). */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <json-c/json.h>
#include <time.h>

#define CONFIG_FILE "/etc/headscale/config.yaml"
#define POLICY_FILE "/etc/headscale/acl.hujson"
#define KEY_DIR "/var/lib/pmoves/headscale"
#define HEADSCALE "/usr/bin/headscale"
#define DEFAULT_MESH "10.42.0.0/24"
#define SERVER_WAIT 30 /* seconds for the server to answer after a start */

/* ---- schema ---- */

static const struct fb_format fmt_name = {
	.name = "headscale_name",
	.message = "'%s' is not a user or key name (lower-case letters, digits, '-')",
	.pattern = "^[a-z0-9][a-z0-9-]*$",
	.max = 63,
};

static const struct fb_format fmt_url = {
	.name = "headscale_url",
	.message = "'%s' is not an https:// URL",
	.pattern = "^https://[^/ \t\r\n\"'][^ \t\r\n\"']*$",
};

/* HOST:PORT, the host of hex digits, '.', ':' and brackets ("[::]:8080"), the port 1 to 65535. */
static const struct fb_format fmt_listen = {
	.name = "listen_address",
	.message = "'%s' is not an address and port ('0.0.0.0:8080')",
	.pattern = "^([0-9A-Fa-f.:]|\\[|\\])+:0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
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

static const struct fb_format fmt_domain = {
	.name = "headscale_domain",
	.message = "'%s' is not a domain name",
	.pattern = "^[a-z0-9][a-z0-9.-]*$",
	.max = 253,
};

static const struct fb_format fmt_ip = {
	.name = "headscale_ip",
	.message = "'%s' is not an IP address",
	.pattern = "^[0-9A-Fa-f.:]{2,45}$",
};

static const struct fb_field name_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_name, 0, 0 };
static const struct fb_field tag_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_tag, 0, 0 };
static const struct fb_field url_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_url, 0, 512 };
static const struct fb_field ip_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_ip, 0, 64 };
static const struct fb_field key_fields[] = {
	{ "name", FB_T_STRING, NULL, NULL, &fmt_name, FB_REQUIRED, 0 },
	{ "user", FB_T_STRING, NULL, NULL, &fmt_name, FB_REQUIRED, 0 },
	{ "reusable", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "ephemeral", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "expiration", FB_T_STRING, NULL, NULL, &fmt_duration, 0, 0 },
	{ "tags", FB_T_ARRAY, &tag_elem, NULL, NULL, 0, 16 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field key_elem = { NULL, FB_T_OBJECT, key_fields, NULL, NULL, 0, 0 };
/* An ACL rule as Headscale 0.23 reads one (its policy.ACL: action, proto, src, dst). The names
 * in src and dst go into the policy as they are: Headscale checks them when it loads it. */
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

/* Printable ASCII but space, '"' and '\' (written without '\' and ']' in a bracket: see
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
static const struct fb_field headscale_fields[] = {
	{ "server_url", FB_T_STRING, NULL, NULL, &fmt_url, FB_REQUIRED, 512 },
	{ "listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "metrics_listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "grpc_listen_addr", FB_T_STRING, NULL, NULL, &fmt_listen, 0, 0 },
	{ "prefix_v4", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "prefix_v6", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "base_domain", FB_T_STRING, NULL, NULL, &fmt_domain, 0, 0 },
	{ "nameservers", FB_T_ARRAY, &ip_elem, NULL, NULL, 0, 8 },
	{ "derp_urls", FB_T_ARRAY, &url_elem, NULL, NULL, 0, 8 },
	{ "mesh_subnet", FB_T_STRING, NULL, NULL, &fmt_prefix, 0, 0 },
	{ "users", FB_T_ARRAY, &name_elem, NULL, NULL, 0, 64 },
	{ "keys", FB_T_ARRAY, &key_elem, NULL, NULL, 0, 64 },
	{ "acls", FB_T_ARRAY, &acl_elem, NULL, NULL, 0, 256 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field headscale_schema = { NULL, FB_T_OBJECT, headscale_fields, NULL, NULL, 0, 0 };

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

static char *config_text(json_object *section)
{
	static const char *const derp[] = { "https://controlplane.tailscale.com/derpmap/default", NULL };
	static const char *const dns[] = { "1.1.1.1", "9.9.9.9", NULL };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f,
		"# Written by pmoves-firstboot (headscale step) for Headscale 0.23: change its config, not this file.\n"
		"server_url: %s\n"
		"listen_addr: %s\n"
		"metrics_listen_addr: %s\n"
		"grpc_listen_addr: %s\n"
		"grpc_allow_insecure: false\n"
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
		fb_json_str(section, "server_url", ""), fb_json_str(section, "listen_addr", "0.0.0.0:8080"),
		fb_json_str(section, "metrics_listen_addr", "127.0.0.1:9090"), fb_json_str(section, "grpc_listen_addr", "127.0.0.1:50443"),
		fb_json_str(section, "prefix_v4", "100.64.0.0/10"), fb_json_str(section, "prefix_v6", "fd7a:115c:a1e0::/48"));
	yaml_list(f, "    ", list_of(section, "derp_urls"), derp);
	fprintf(f,
		"  paths: []\n"
		"  auto_update_enabled: true\n"
		"  update_frequency: 24h\n"
		"disable_check_updates: true\n"
		"ephemeral_node_inactivity_timeout: 30m\n"
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

static char *policy_text(json_object *section)
{
	json_object *users = list_of(section, "users"), *acls = list_of(section, "acls");
	const char *owner = users && json_object_array_length(users) ? json_object_get_string(json_object_array_get_idx(users, 0)) : NULL;
	_cleanup_(fb_json_putp) json_object *p = json_object_new_object();
	json_object *owners = json_object_new_object(), *approvers = json_object_new_object(),
		    *routes = json_object_new_object(), *mesh = json_object_new_array(), *exit = json_object_new_array();
	if (!p || !owners || !approvers || !routes || !mesh || !exit) {
		json_object_put(owners), json_object_put(approvers), json_object_put(routes), json_object_put(mesh), json_object_put(exit);
		return NULL;
	}
	static const char *const tags[] = { "tag:core", "tag:ci", "tag:mesh", "tag:edge" };
	for (size_t i = 0; i < ARRAY_SIZE(tags); i++) {
		json_object *o = json_object_new_array();
		if (owner)
			json_object_array_add(o, json_object_new_string(owner));
		json_object_object_add(owners, tags[i], o);
	}
	json_object_object_add(p, "tagOwners", owners);
	json_object_array_add(mesh, json_object_new_string("tag:mesh"));
	json_object_object_add(routes, fb_json_str(section, "mesh_subnet", DEFAULT_MESH), mesh);
	json_object_object_add(approvers, "routes", routes);
	json_object_array_add(exit, json_object_new_string("tag:edge"));
	json_object_object_add(approvers, "exitNode", exit);
	json_object_object_add(p, "autoApprovers", approvers);
	json_object *a = NULL;
	if (acls)
		json_object_deep_copy(acls, &a, NULL);
	else {
		json_object *rule = json_object_new_object(), *src = json_object_new_array(), *dst = json_object_new_array();
		json_object_object_add(rule, "action", json_object_new_string("accept"));
		json_object_array_add(src, json_object_new_string("*"));
		json_object_array_add(dst, json_object_new_string("*:*"));
		json_object_object_add(rule, "src", src);
		json_object_object_add(rule, "dst", dst);
		a = json_object_new_array();
		json_object_array_add(a, rule);
	}
	json_object_object_add(p, "acls", a);
	return fb_strdupf("// Written by pmoves-firstboot (headscale step): change its config, not this file.\n%s\n",
			  json_object_to_json_string_ext(p, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								    JSON_C_TO_STRING_NOSLASHESCAPE));
}

static char *key_path(json_object *key)
{
	json_object *n;
	json_object_object_get_ex(key, "name", &n);
	return fb_strdupf(KEY_DIR "/%s.key", json_object_get_string(n));
}

/* ---- the step ---- */

static int files_done(json_object *section)
{
	_cleanup_free_ char *cfg = config_text(section), *pol = policy_text(section);
	if (!cfg || !pol)
		return -ENOMEM;
	int r = fb_file_is(CONFIG_FILE, cfg, strlen(cfg));
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

static int headscale_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	int r = files_done(section);
	if (r <= 0 || !fb_live())
		return r <= 0 ? r : 0;
	return keys_done(section);
}

/* The server answers `headscale users list -o json`: the users' names. */
static int users_now(char ***ret)
{
	char *argv[] = { "headscale", "users", "list", "-o", "json", NULL };
	_cleanup_free_ char *out = NULL;
	int r = fb_run_capture(argv, &out);
	if (r != 0)
		return r < 0 ? r : -EAGAIN;
	_cleanup_(fb_json_putp) json_object *o = out ? json_tokener_parse(out) : NULL;
	if (!o || !json_object_is_type(o, json_type_array))
		return -EBADMSG;
	_cleanup_strv_ char **names = NULL;
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		json_object *n;
		if (json_object_object_get_ex(json_object_array_get_idx(o, i), "name", &n) &&
		    (r = strv_push(&names, json_object_get_string(n))) < 0)
			return r;
	}
	*ret = names ? TAKE_PTR(names) : calloc(1, sizeof(char *));
	return *ret ? 0 : -ENOMEM;
}

static int make_key(json_object *key, char **ret_msg)
{
	json_object *v;
	_cleanup_strv_ char **argv = NULL;
	const char *user = (json_object_object_get_ex(key, "user", &v), json_object_get_string(v));
	_cleanup_free_ char *path = key_path(key), *exp = fb_strdupf("%s", "720h"), *tags = NULL;
	if (json_object_object_get_ex(key, "expiration", &v)) {
		free(exp);
		exp = strdup(json_object_get_string(v));
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
	if (!path || !exp)
		return -ENOMEM;
	const char *args[] = { "headscale", "preauthkeys", "create", "--user", user,
			       json_object_object_get_ex(key, "reusable", &v) && json_object_get_boolean(v) ? "--reusable" : NULL,
			       json_object_object_get_ex(key, "ephemeral", &v) && json_object_get_boolean(v) ? "--ephemeral" : NULL,
			       "--expiration", exp, tags ? "--tags" : NULL, tags, "-o", "json" };
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		if (args[i] && strv_push(&argv, args[i]) < 0)
			return -ENOMEM;
	_cleanup_free_ char *out = NULL;
	int r = fb_run_capture(argv, &out);
	if (r != 0) {
		*ret_msg = fb_strdupf("'headscale preauthkeys create --user %s' exited with %d", user, r);
		return -EIO;
	}
	_cleanup_(fb_json_putp) json_object *o = out ? json_tokener_parse(out) : NULL;
	json_object *k;
	const char *secret = o && json_object_object_get_ex(o, "key", &k) ? json_object_get_string(k) : NULL;
	if (!secret || !*secret || strpbrk(secret, " \t\r\n")) {
		*ret_msg = fb_strdupf("'headscale preauthkeys create --user %s' gave no key", user);
		return -EBADMSG;
	}
	_cleanup_free_ char *text = fb_strdupf("%s\n", secret);
	explicit_bzero(out, strlen(out));
	if (!text)
		return -ENOMEM;
	r = fb_write(path, text, strlen(text), 0600, 0, 0);
	explicit_bzero(text, strlen(text));
	if (r < 0)
		*ret_msg = fb_strdupf("cannot write '%s': %s", path, strerror(-r));
	return r;
}

static enum fb_result headscale_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_free_ char *cfg = config_text(section), *pol = policy_text(section);
	int r;
	if (!cfg || !pol)
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
	_cleanup_strv_ char **have = NULL;
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
		if (strv_contains(have, u))
			continue;
		char *argv[] = { "headscale", "users", "create", (char *)u, NULL };
		if ((r = fb_run(argv)) != 0) {
			*ret_msg = fb_strdupf("'headscale users create %s' exited with %d", u, r);
			return FB_FAILED;
		}
		made_users++;
	}
	_cleanup_strv_ char **files = NULL;
	for (size_t i = 0; keys && i < json_object_array_length(keys); i++) {
		json_object *key = json_object_array_get_idx(keys, i);
		_cleanup_free_ char *p = key_path(key);
		if (!p || strv_push(&files, p) < 0)
			return FB_FAILED;
		if (fb_exists(p) == 1)
			continue;
		if (make_key(key, ret_msg) < 0)
			return FB_FAILED;
		made_keys++;
	}
	_cleanup_free_ char *list = files ? strv_join(files, ", ") : strdup("none");
	*ret_msg = fb_strdupf("%u users and %u pre-auth keys made; keys (0600) in %s", made_users, made_keys, list ? list : "?");
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
