/* The first-boot config: read each source, check it alone against the schema table, merge,
 * check the result again. Nothing is applied from a config that fails any of this. */
#include "fb-config.h"
#include "fb-fetch.h"
#include "fb-step.h"
#include "firstboot.h"
#include "hash.h"
#include "util.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>

#define URL_MAX 2048

static const char *const source_etc = "/etc/pmoves/firstboot.json";
static const char *const source_device[] = { "/boot/efi/pmoves/device.json", "/boot/firmware/pmoves/device.json" };
static const char *const fw_cfg_dir = "/sys/firmware/qemu_fw_cfg";
static const char *const fw_cfg_file = "/sys/firmware/qemu_fw_cfg/by_name/opt/ai.pmoves/device.json/raw";

/* ---- value checks ---- */

static int valid_shell(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (strpbrk(s, ": "))
		return fb_bad(c, "'%s' is not a valid shell (no ':' or spaces)", FB_SHOW(s));
	return fb_valid_abs_path(c, v);
}

/* Secret: the message never shows the value. */
static int valid_crypt(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t len = strlen(s), dollars = 0;
	bool ok = len >= 10 && len <= 512 && s[0] == '$';
	for (size_t i = 0; ok && i < len; i++) {
		ok = isascii(s[i]) && (isalnum(s[i]) || strchr("./$=,+-", s[i]));
		dollars += s[i] == '$';
	}
	if (!ok || dollars < 3)
		return fb_bad(c, "not a crypt(3) hash such as '$y$...' from 'mkpasswd -m yescrypt' (clear-text passwords are refused; value not shown)");
	return 0;
}

static int valid_ssh_key(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (fb_has_ctl(s))
		return fb_bad(c, "an SSH key is one line without control characters");
	/* Options may come first; the key is "TYPE BASE64 [comment]". */
	for (const char *p = s; *p; p += strcspn(p, " "), p += strspn(p, " ")) {
		if (strncmp(p, "ssh-", 4) && strncmp(p, "ecdsa-sha2-", 11) && strncmp(p, "sk-", 3))
			continue;
		const char *blob = p + strcspn(p, " ");
		blob += strspn(blob, " ");
		size_t n = strcspn(blob, " ");
		if (n >= 16 && strspn(blob, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") >= n)
			return 0;
	}
	return fb_bad(c, "'%s' is not an SSH public key line ('ssh-ed25519 AAAA... comment')", FB_SHOW(s));
}

static int valid_users(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, "name", "user");
}

static int valid_sysctl_key(struct fb_check *c, const char *k)
{
	size_t len = strlen(k);
	if (len < 1 || len > 255 || strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_.-/") != len || k[0] == '.' ||
	    k[0] == '/' || strstr(k, "..") || strstr(k, "//") || strstr(k, "./") || strstr(k, "/."))
		return fb_bad(c, "'%s' is not a sysctl key (a-z, 0-9, '_', '.', '-', '/')", FB_SHOW(k));
	return 0;
}

static int valid_sysctl_value(struct fb_check *c, json_object *v)
{
	if (json_object_is_type(v, json_type_string) && fb_has_ctl(json_object_get_string(v)))
		return fb_bad(c, "a sysctl value is one line without control characters");
	return 0;
}

static bool owner_part_ok(const char *s, size_t n)
{
	char buf[40];
	uint64_t id;
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return fb_user_name_ok(buf) || (parse_u64(buf, &id) == 0 && id < INT32_MAX);
}

static int valid_owner(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	const char *colon = strchr(s, ':');
	if (!colon || !owner_part_ok(s, (size_t)(colon - s)) || !owner_part_ok(colon + 1, strlen(colon + 1)))
		return fb_bad(c, "'%s' is not an owner ('user:group', names or numbers)", FB_SHOW(s));
	return 0;
}

static int valid_file(struct fb_check *c, json_object *v)
{
	json_object *x;
	bool text = json_object_object_get_ex(v, "content", NULL);
	bool b64 = json_object_object_get_ex(v, "content_base64", NULL);
	if (text == b64)
		return fb_bad(c, text ? "'content' and 'content_base64' are both given: one only"
				      : "'content' or 'content_base64' is required");
	if (json_object_object_get_ex(v, "secret", &x) && json_object_get_boolean(x)) {
		unsigned long mode = 0644;
		if (json_object_object_get_ex(v, "mode", &x))
			mode = strtoul(json_object_get_string(x), NULL, 8);
		else
			mode = 0600;
		if (mode & 077)
			return fb_bad(c, "a secret file must not be readable by group or others (mode \"0600\" or \"0400\")");
	}
	return 0;
}

static int valid_files(struct fb_check *c, json_object *v)
{
	return fb_valid_unique(c, v, "path", "file");
}

static int valid_unit(struct fb_check *c, json_object *v)
{
	static const char *const suffixes[] = { ".service", ".socket", ".timer", ".target", ".mount",
						".automount", ".path", ".swap", ".slice" };
	const char *s = json_object_get_string(v);
	size_t len = strlen(s);
	bool ok = len >= 3 && len <= 255 && s[0] != '-' && s[0] != '.' &&
		  strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.@\\-") == len;
	bool suffix = false;
	for (size_t i = 0; ok && i < ARRAY_SIZE(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);
		suffix |= len > sl && STREQ(s + len - sl, suffixes[i]);
	}
	if (!ok || !suffix)
		return fb_bad(c, "'%s' is not a systemd unit name (such as 'ssh.service')", FB_SHOW(s));
	return 0;
}

static const char *const reserved_steps[] = { "growfs", "users", "ssh", "efiboot" };

static bool step_known(const char *name)
{
	for (size_t i = 0; i < fb_steps_count; i++)
		if (STREQ(fb_steps[i]->name, name))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(reserved_steps); i++)
		if (STREQ(reserved_steps[i], name))
			return true;
	return false;
}

static int valid_step_name(struct fb_check *c, const char *k)
{
	if (!step_known(k))
		return fb_bad(c, "'%s' is not a step", FB_SHOW(k));
	return 0;
}

static int valid_finally(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!STREQ(s, "none") && !STREQ(s, "reboot") && !STREQ(s, "poweroff"))
		return fb_bad(c, "'%s' is not one of 'none', 'reboot', 'poweroff'", FB_SHOW(s));
	return 0;
}

/* ---- the schema table ---- */

#define STR(k, v, fl) { k, FB_T_STRING, NULL, v, NULL, fl, 0 }
#define BOOL(k) { k, FB_T_BOOL, NULL, NULL, NULL, 0, 0 }
#define END { NULL, 0, NULL, NULL, NULL, 0, 0 }

static const struct fb_field user_name_elem = STR(NULL, fb_valid_user_name, 0);
static const struct fb_field ssh_key_elem = { NULL, FB_T_STRING, NULL, valid_ssh_key, NULL, 0, 16384 };
static const struct fb_field user_fields[] = {
	STR("name", fb_valid_user_name, FB_REQUIRED),
	{ "groups", FB_T_ARRAY, &user_name_elem, NULL, NULL, 0, 64 },
	STR("shell", valid_shell, 0),
	STR("password_hash", valid_crypt, FB_SECRET),
	{ "ssh_authorized_keys", FB_T_ARRAY, &ssh_key_elem, NULL, NULL, 0, 256 },
	BOOL("sudo"),
	END,
};
static const struct fb_field user_elem = { NULL, FB_T_OBJECT, user_fields, NULL, NULL, 0, 0 };

static const struct fb_field sysctl_value = { NULL, FB_T_SCALAR, NULL, valid_sysctl_value, NULL, 0, 0 };

static const struct fb_field file_fields[] = {
	STR("path", fb_valid_abs_path, FB_REQUIRED),
	{ "content", FB_T_STRING, NULL, NULL, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	{ "content_base64", FB_T_STRING, NULL, fb_valid_base64, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	STR("mode", fb_valid_mode, 0),
	STR("owner", valid_owner, 0),
	BOOL("secret"),
	END,
};
static const struct fb_field file_elem = { NULL, FB_T_OBJECT, file_fields, valid_file, NULL, FB_SECRET_OBJ, 0 };

static const struct fb_field unit_elem = STR(NULL, valid_unit, 0);
static const struct fb_field unit_fields[] = {
	{ "enable", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "disable", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "start", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "mask", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	END,
};

static const struct fb_field step_fields[] = { BOOL("enabled"), BOOL("required"), END };
static const struct fb_field step_value = { NULL, FB_T_OBJECT, step_fields, NULL, NULL, 0, 0 };

/* growfs and efiboot: "device", a partition, disk or image file, when not the mounted one. */
static const struct fb_field growfs_fields[] = { STR("device", fb_valid_abs_path, 0), END };
static const struct fb_field efiboot_fields[] = { STR("device", fb_valid_abs_path, 0), END };
static const struct fb_field ssh_fields[] = { BOOL("rsa"), BOOL("password_authentication"), END };

#define RESERVED(k) { k, FB_T_RESERVED, NULL, NULL, NULL, 0, 0 }

/* One entry per section. A step adds its own here (replacing its RESERVED line). */
static const struct fb_field top_fields[] = {
	STR("hostname", fb_valid_hostname, 0),
	{ "users", FB_T_ARRAY, &user_elem, valid_users, NULL, 0, 256 },
	{ "sysctl", FB_T_MAP, &sysctl_value, NULL, valid_sysctl_key, 0, 0 },
	{ "files", FB_T_ARRAY, &file_elem, valid_files, NULL, 0, 0 },
	{ "units", FB_T_OBJECT, unit_fields, NULL, NULL, 0, 0 },
	{ "steps", FB_T_MAP, &step_value, NULL, valid_step_name, 0, 0 },
	{ "report_url", FB_T_STRING, NULL, fb_valid_https_url, NULL, 0, URL_MAX },
	STR("finally", valid_finally, 0),
	{ "growfs", FB_T_OBJECT, growfs_fields, NULL, NULL, 0, 0 },
	{ "ssh", FB_T_OBJECT, ssh_fields, NULL, NULL, 0, 0 },
	{ "efiboot", FB_T_OBJECT, efiboot_fields, NULL, NULL, 0, 0 },
	{ "iommu", FB_T_OBJECT, fb_iommu_fields, NULL, NULL, 0, 0 },
	{ "proxmox", FB_T_OBJECT, fb_proxmox_fields, NULL, NULL, 0, 0 },
	{ "tailnet", FB_T_OBJECT, fb_tailnet_fields, NULL, NULL, 0, 0 },
	{ "headscale", FB_T_OBJECT, fb_headscale_fields, NULL, NULL, 0, 0 },
	{ "tunnel", FB_T_OBJECT, fb_tunnel_fields, NULL, NULL, 0, 0 },
	{ "rustdesk", FB_T_OBJECT, fb_rustdesk_fields, NULL, NULL, 0, 0 },
	{ "artifacts", FB_T_ARRAY, &fb_artifact_elem, fb_artifacts_valid, NULL, 0, 256 },
	{ "apt_repositories", FB_T_ARRAY, &fb_apt_repository_elem, fb_apt_repositories_valid, NULL, 0, 64 },
	{ "mesh", FB_T_OBJECT, fb_mesh_fields, NULL, NULL, 0, 0 },
	{ "gateway", FB_T_OBJECT, fb_gateway_fields, fb_gateway_valid, NULL, 0, 0 },
	END,
};

const struct fb_field fb_config_schema = { NULL, FB_T_OBJECT, top_fields, NULL, NULL, 0, 0 };

int fb_config_check(json_object *o, const char *source, char **ret_error)
{
	return fb_schema_check(&fb_config_schema, o, source, ret_error);
}

int fb_config_parse(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error)
{
	if (strlen(buf) != len || len > INT_MAX) {
		*ret_error = fb_strdupf("%s: invalid JSON: the text contains a NUL byte", source);
		return *ret_error ? -EINVAL : -ENOMEM;
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	char *error = NULL;
	int r = -EINVAL;
	if (!o || e != json_tokener_success)
		error = fb_strdupf("%s: invalid JSON at byte %zu: %s", source, off,
				   e == json_tokener_success || e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e));
	else if (buf[off + strspn(buf + off, " \t\r\n")])
		error = fb_strdupf("%s: invalid JSON: text after the end at byte %zu", source, off);
	else if (!json_object_is_type(o, json_type_object))
		error = fb_strdupf("%s: the config must be a JSON object", source);
	else
		r = fb_schema_check(&fb_config_schema, o, source, &error);
	if (r < 0) {
		json_object_put(o);
		*ret_error = error;
		return error ? r : -ENOMEM;
	}
	*ret = o;
	return 0;
}

int fb_config_validate_file(const char *path, char **ret_error)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_file(path, FB_CONFIG_MAX, &buf, &len);
	if (r == -EFBIG)
		*ret_error = fb_strdupf("%s: larger than 1 MiB", path);
	else if (r < 0)
		*ret_error = fb_strdupf("cannot read '%s': %s", path, strerror(-r));
	if (r < 0)
		return r;
	json_object *o = NULL;
	r = fb_config_parse(buf, len, path, &o, ret_error);
	json_object_put(o);
	return r;
}

/* ---- merge, secrets, hash ---- */

int fb_config_merge(json_object *base, json_object *over)
{
	json_object_object_foreach(over, key, val)
	{
		json_object *b;
		if (json_object_object_get_ex(base, key, &b) && json_object_is_type(b, json_type_object) &&
		    json_object_is_type(val, json_type_object)) {
			int r = fb_config_merge(b, val);
			if (r < 0)
				return r;
			continue;
		}
		json_object *copy = NULL;
		if (val && json_object_deep_copy(val, &copy, NULL) < 0)
			return -ENOMEM;
		if (json_object_object_add(base, key, copy) < 0) {
			json_object_put(copy);
			return -ENOMEM;
		}
	}
	return 0;
}

static bool key_is_secret(const char *k)
{
	return strstr(k, "auth_key") || strstr(k, "password") || strstr(k, "token") || strstr(k, "credentials");
}

static int collect(json_object *v, char ***secrets)
{
	if (!secrets || !v)
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		return strlen(s) >= 4 ? strv_push(secrets, s) : 0;
	}
	if (json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			int r = collect(json_object_array_get_idx(v, i), secrets);
			if (r < 0)
				return r;
		}
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			int r = collect(val, secrets);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* F: what the schema says about O, or NULL (reserved sections: key names only). */
static int scrub(json_object *o, const struct fb_field *f, char ***secrets)
{
	int n = 0, r;
	if (json_object_is_type(o, json_type_array)) {
		const struct fb_field *ef = f && f->type == FB_T_ARRAY ? f->fields : NULL;
		for (size_t i = json_object_array_length(o); i-- > 0;) {
			json_object *e = json_object_array_get_idx(o, i), *s;
			r = scrub(e, ef, secrets);
			if (r < 0)
				return r;
			n += r;
			if (ef && (ef->flags & FB_SECRET_OBJ) && json_object_object_get_ex(e, "secret", &s) &&
			    json_object_get_boolean(s)) {
				json_object_array_del_idx(o, i, 1);
				n++;
			}
		}
		return n;
	}
	if (!json_object_is_type(o, json_type_object))
		return 0;
	json_object *s;
	bool secret_obj = json_object_object_get_ex(o, "secret", &s) && json_object_get_boolean(s);
	_cleanup_strv_ char **drop = NULL;
	json_object_object_foreach(o, key, val)
	{
		const struct fb_field *sf = !f ? NULL
					  : f->type == FB_T_OBJECT ? fb_field_find(f->fields, key)
					  : f->type == FB_T_MAP ? f->fields
								: NULL;
		/* A true/false is never a secret ("password_authentication": false). */
		bool secret = (key_is_secret(key) && !json_object_is_type(val, json_type_boolean)) ||
			      (sf && (sf->flags & FB_SECRET)) ||
			      (sf && (sf->flags & FB_SECRET_IF) && secret_obj);
		if (secret) {
			if ((r = collect(val, secrets)) < 0 || (r = strv_push(&drop, key)) < 0)
				return r;
			continue;
		}
		r = scrub(val, sf, secrets);
		if (r < 0)
			return r;
		n += r;
	}
	for (char **k = drop; k && *k; k++, n++)
		json_object_object_del(o, *k);
	return n;
}

int fb_config_scrub(json_object *o, char ***ret_secrets)
{
	return scrub(o, &fb_config_schema, ret_secrets);
}

int fb_config_hash(json_object *o, char ret_hex[65])
{
	json_object *copy = NULL;
	if (json_object_deep_copy(o, &copy, NULL) < 0)
		return -ENOMEM;
	int r = fb_config_scrub(copy, NULL);
	if (r >= 0) {
		const char *s = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN);
		struct sha256 h;
		uint8_t d[32];
		sha256_init(&h);
		sha256_update(&h, s, strlen(s));
		sha256_final(&h, d);
		sha256_hex(d, ret_hex);
		r = 0;
	}
	json_object_put(copy);
	return r;
}

/* ---- loading ---- */

/* Read, parse and check ABS under the root, and merge it; *ret_o (borrowed) gets the parsed
 * source. 0 and nothing done when the file does not exist. */
static int load_file(struct fb_config *c, json_object *merged, const char *abs, const char *source, json_object **ret_o)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = fb_read(abs, FB_CONFIG_MAX, &buf, &len);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r == -EFBIG)
		c->error = fb_strdupf("%s: larger than 1 MiB", source);
	else if (r < 0)
		c->error = fb_strdupf("%s: cannot read: %s", source, strerror(-r));
	if (r < 0)
		return c->error ? -EINVAL : -ENOMEM;
	json_object *o = NULL;
	r = fb_config_parse(buf, len, source, &o, &c->error);
	explicit_bzero(buf, len);
	if (r < 0)
		return r;
	r = fb_config_merge(merged, o);
	if (r == 0)
		r = strv_push(&c->sources, source);
	if (r == 0 && ret_o)
		*ret_o = json_object_get(o);
	json_object_put(o);
	return r;
}

/* The value of "KEY=" on the kernel command line (the last one), or NULL. */
static char *cmdline_get(const char *cmdline, const char *key)
{
	char *found = NULL;
	size_t klen = strlen(key);
	for (const char *p = cmdline; *p;) {
		p += strspn(p, " \t\n");
		size_t n = strcspn(p, " \t\n");
		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=') {
			free(found);
			found = strndup(p + klen + 1, n - klen - 1);
		}
		p += n;
	}
	return found;
}

static int load_url(struct fb_config *c, json_object *merged)
{
	_cleanup_free_ char *cmdline = NULL, *url = NULL, *pin = NULL, *shown = NULL, *buf = NULL, *err = NULL;
	int r = fb_read("/proc/cmdline", 64 * 1024, &cmdline, NULL);
	if (r < 0)
		return 0; /* no /proc/cmdline (a tree without it): no URL */
	url = cmdline_get(cmdline, "pmoves.config");
	if (!url)
		return 0;
	pin = cmdline_get(cmdline, "pmoves.config_sha256");
	/* The source's name leaves out a query string, which may carry a token. */
	shown = strndup(url, strcspn(url, "?#"));
	if (!shown)
		return -ENOMEM;
	bool http = !strncmp(url, "http://", 7), https = !strncmp(url, "https://", 8);
	if (strlen(url) > URL_MAX || fb_has_ctl(url) || (!http && !https))
		c->error = fb_strdupf("%s: pmoves.config is not an https:// or http:// URL", shown);
	else if (pin && (strlen(pin) != 64 || strspn(pin, "0123456789abcdef") != 64))
		c->error = fb_strdupf("%s: pmoves.config_sha256 is not 64 lower-case hex digits", shown);
	else if (http && !pin)
		c->error = fb_strdupf("%s: an http:// config URL needs pmoves.config_sha256=HEX on the kernel command line", shown);
	if (c->error)
		return -EINVAL;
	size_t len;
	r = fb_fetch(url, FB_CONFIG_MAX, &buf, &len, &err);
	if (r < 0) {
		c->error = fb_strdupf("%s: cannot fetch: %s", shown, err ? err : strerror(-r));
		return c->error ? -EAGAIN : -ENOMEM;
	}
	if (pin) {
		struct sha256 h;
		uint8_t d[32];
		char hex[65];
		sha256_init(&h);
		sha256_update(&h, buf, len);
		sha256_final(&h, d);
		sha256_hex(d, hex);
		if (!STREQ(hex, pin)) {
			c->error = fb_strdupf("%s: SHA-256 is %s, the kernel command line pins %s", shown, hex, pin);
			return -EINVAL;
		}
	}
	json_object *o = NULL;
	r = fb_config_parse(buf, len, shown, &o, &c->error);
	explicit_bzero(buf, len);
	if (r < 0)
		return r;
	r = fb_config_merge(merged, o);
	json_object_put(o);
	return r < 0 ? r : strv_push(&c->sources, shown);
}

int fb_config_load(struct fb_config *c)
{
	json_object *merged = json_object_new_object();
	if (!merged)
		return -ENOMEM;
	int r = load_file(c, merged, source_etc, source_etc, NULL);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(source_device); i++) {
		if (fb_exists(source_device[i]) <= 0)
			continue;
		r = load_file(c, merged, source_device[i], source_device[i], &c->device);
		if (r == 0 && c->device && !(c->device_path = strdup(source_device[i])))
			r = -ENOMEM;
		break;
	}
	if (r == 0 && fb_exists(fw_cfg_dir) == 0 && fb_live()) {
		char *argv[] = { "modprobe", "qemu_fw_cfg", NULL };
		fb_run(argv); /* no fw_cfg (not QEMU, or no module): no source */
	}
	if (r == 0)
		r = load_file(c, merged, fw_cfg_file, "fw_cfg", NULL);
	if (r == 0)
		r = load_url(c, merged);
	if (r == 0)
		r = fb_config_check(merged, "merged config", &c->error);
	if (r == 0) {
		json_object *copy = NULL;
		if (json_object_deep_copy(merged, &copy, NULL) < 0)
			r = -ENOMEM;
		else
			r = fb_config_scrub(copy, &c->secrets);
		json_object_put(copy);
	}
	if (r < 0) {
		json_object_put(merged);
		return r;
	}
	c->merged = merged;
	return 0;
}

void fb_config_done(struct fb_config *c)
{
	json_object_put(c->merged);
	json_object_put(c->device);
	free(c->error);
	free(c->device_path);
	strv_free(c->sources);
	for (char **s = c->secrets; s && *s; s++)
		explicit_bzero(*s, strlen(*s));
	strv_free(c->secrets);
	memset(c, 0, sizeof(*c));
}
