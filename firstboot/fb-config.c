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

#define STRING_MAX 4096
#define LIST_MAX 1024
#define URL_MAX 2048

static const char *const source_etc = "/etc/pmoves/firstboot.json";
static const char *const source_device[] = { "/boot/efi/pmoves/device.json", "/boot/firmware/pmoves/device.json" };
static const char *const fw_cfg_dir = "/sys/firmware/qemu_fw_cfg";
static const char *const fw_cfg_file = "/sys/firmware/qemu_fw_cfg/by_name/opt/ai.pmoves/device.json/raw";

/* ---- messages ---- */

struct fb_check {
	const char *source;
	char path[512];
	size_t plen;
	char *error;
};

int fb_bad(struct fb_check *c, const char *fmt, ...)
{
	if (c->error)
		return -EINVAL;
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	c->error = c->plen ? fb_strdupf("%s: %s: %s", c->source, c->path, msg) : fb_strdupf("%s: %s", c->source, msg);
	return c->error ? -EINVAL : -ENOMEM;
}

/* A value for a message: at most 60 bytes, anything unprintable as '?'. */
struct shown {
	char s[64];
};
static struct shown show(const char *v)
{
	struct shown r;
	size_t i = 0;
	for (; v[i] && i < 60; i++)
		r.s[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '\'' ? '?' : v[i];
	if (v[i] && i >= 3)
		memcpy(r.s + i - 3, "...", 3);
	r.s[i] = '\0';
	return r;
}
#define SHOW(v) (show(v).s)

static size_t path_push(struct fb_check *c, const char *key, size_t index)
{
	size_t old = c->plen;
	size_t room = sizeof(c->path) - c->plen;
	int n;
	if (!key)
		n = snprintf(c->path + c->plen, room, "[%zu]", index);
	else if (key[0] && strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(key))
		n = snprintf(c->path + c->plen, room, ".%s", key);
	else
		n = snprintf(c->path + c->plen, room, "[\"%s\"]", SHOW(key));
	if (n > 0 && (size_t)n < room)
		c->plen += (size_t)n;
	return old;
}

static void path_pop(struct fb_check *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

/* ---- value checks ---- */

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int valid_hostname(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t len = strlen(s);
	bool ok = len >= 1 && len <= 64; /* HOST_NAME_MAX: the kernel holds the whole name */
	for (const char *label = s; ok;) {
		size_t n = strcspn(label, ".");
		ok = n >= 1 && n <= 63 && label[0] != '-' && label[n - 1] != '-';
		for (size_t i = 0; ok && i < n; i++)
			ok = isascii(label[i]) && (isalnum(label[i]) || label[i] == '-');
		if (!label[n])
			break;
		label += n + 1;
	}
	if (!ok)
		return fb_bad(c, "'%s' is not a valid hostname (RFC 1123: dot-separated labels of 1 to 63 letters, digits and '-', not starting or ending with '-', 64 characters at most)", SHOW(s));
	return 0;
}

static bool user_name_ok(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' ||
		      (s[i] == '$' && i == len - 1)))
			return false;
	return true;
}

static int valid_user_name(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!user_name_ok(s))
		return fb_bad(c, "'%s' is not a valid user or group name (1 to 32 of a-z, 0-9, '_', '-', starting with a letter or '_')", SHOW(s));
	return 0;
}

static int valid_abs_path(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (s[0] != '/' || has_ctl(s))
		return fb_bad(c, "'%s' is not an absolute path", SHOW(s));
	if (strlen(s) >= PATH_MAX)
		return fb_bad(c, "path is longer than %d bytes", PATH_MAX - 1);
	for (const char *p = s + 1;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return fb_bad(c, "'%s' must be a plain absolute path (no '.', '..', empty components or trailing '/')", SHOW(s));
		if (n > NAME_MAX - 24)
			return fb_bad(c, "a component of '%s' is too long", SHOW(s));
		if (!p[n])
			break;
		p += n + 1;
	}
	return 0;
}

static int valid_shell(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (strpbrk(s, ": "))
		return fb_bad(c, "'%s' is not a valid shell (no ':' or spaces)", SHOW(s));
	return valid_abs_path(c, v);
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
	if (has_ctl(s))
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
	return fb_bad(c, "'%s' is not an SSH public key line ('ssh-ed25519 AAAA... comment')", SHOW(s));
}

static int valid_unique(struct fb_check *c, json_object *arr, const char *key, const char *what)
{
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++) {
			json_object *a = json_object_array_get_idx(arr, i), *b = json_object_array_get_idx(arr, j), *x, *y;
			if (json_object_object_get_ex(a, key, &x) && json_object_object_get_ex(b, key, &y) &&
			    STREQ(json_object_get_string(x), json_object_get_string(y))) {
				size_t old = path_push(c, NULL, i);
				int r = fb_bad(c, "%s '%s' is listed twice", what, SHOW(json_object_get_string(x)));
				path_pop(c, old);
				return r;
			}
		}
	return 0;
}

static int valid_users(struct fb_check *c, json_object *v)
{
	return valid_unique(c, v, "name", "user");
}

static int valid_sysctl_key(struct fb_check *c, const char *k)
{
	size_t len = strlen(k);
	if (len < 1 || len > 255 || strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_.-/") != len || k[0] == '.' ||
	    k[0] == '/' || strstr(k, "..") || strstr(k, "//") || strstr(k, "./") || strstr(k, "/."))
		return fb_bad(c, "'%s' is not a sysctl key (a-z, 0-9, '_', '.', '-', '/')", SHOW(k));
	return 0;
}

static int valid_sysctl_value(struct fb_check *c, json_object *v)
{
	if (json_object_is_type(v, json_type_string) && has_ctl(json_object_get_string(v)))
		return fb_bad(c, "a sysctl value is one line without control characters");
	return 0;
}

static int valid_mode(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t len = strlen(s);
	if (len < 3 || len > 4 || strspn(s, "01234567") != len)
		return fb_bad(c, "'%s' is not a file mode (octal in a string, such as \"0644\")", SHOW(s));
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
	return user_name_ok(buf) || (parse_u64(buf, &id) == 0 && id < INT32_MAX);
}

static int valid_owner(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	const char *colon = strchr(s, ':');
	if (!colon || !owner_part_ok(s, (size_t)(colon - s)) || !owner_part_ok(colon + 1, strlen(colon + 1)))
		return fb_bad(c, "'%s' is not an owner ('user:group', names or numbers)", SHOW(s));
	return 0;
}

static int valid_base64(struct fb_check *c, json_object *v)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	if (fb_base64_decode(json_object_get_string(v), &buf, &len) < 0)
		return fb_bad(c, "not valid base64 (RFC 4648, with padding)");
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
	return valid_unique(c, v, "path", "file");
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
		return fb_bad(c, "'%s' is not a systemd unit name (such as 'ssh.service')", SHOW(s));
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
		return fb_bad(c, "'%s' is not a step", SHOW(k));
	return 0;
}

static int valid_https_url(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (strncmp(s, "https://", 8) || !s[8] || s[8] == '/' || strpbrk(s, " \t") || has_ctl(s))
		return fb_bad(c, "'%s' is not an https:// URL", SHOW(s));
	return 0;
}

static int valid_finally(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!STREQ(s, "none") && !STREQ(s, "reboot") && !STREQ(s, "poweroff"))
		return fb_bad(c, "'%s' is not one of 'none', 'reboot', 'poweroff'", SHOW(s));
	return 0;
}

/* ---- the schema table ---- */

#define STR(k, v, fl) { k, FB_T_STRING, NULL, v, NULL, fl, 0 }
#define BOOL(k) { k, FB_T_BOOL, NULL, NULL, NULL, 0, 0 }
#define END { NULL, 0, NULL, NULL, NULL, 0, 0 }

static const struct fb_field user_name_elem = STR(NULL, valid_user_name, 0);
static const struct fb_field ssh_key_elem = { NULL, FB_T_STRING, NULL, valid_ssh_key, NULL, 0, 16384 };
static const struct fb_field user_fields[] = {
	STR("name", valid_user_name, FB_REQUIRED),
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
	STR("path", valid_abs_path, FB_REQUIRED),
	{ "content", FB_T_STRING, NULL, NULL, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	{ "content_base64", FB_T_STRING, NULL, valid_base64, NULL, FB_SECRET_IF, FB_CONFIG_MAX },
	STR("mode", valid_mode, 0),
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
static const struct fb_field growfs_fields[] = { STR("device", valid_abs_path, 0), END };
static const struct fb_field efiboot_fields[] = { STR("device", valid_abs_path, 0), END };
static const struct fb_field ssh_fields[] = { BOOL("rsa"), BOOL("password_authentication"), END };

#define RESERVED(k) { k, FB_T_RESERVED, NULL, NULL, NULL, 0, 0 }

/* One entry per section. A step adds its own here (replacing its RESERVED line). */
static const struct fb_field top_fields[] = {
	STR("hostname", valid_hostname, 0),
	{ "users", FB_T_ARRAY, &user_elem, valid_users, NULL, 0, 256 },
	{ "sysctl", FB_T_MAP, &sysctl_value, NULL, valid_sysctl_key, 0, 0 },
	{ "files", FB_T_ARRAY, &file_elem, valid_files, NULL, 0, 0 },
	{ "units", FB_T_OBJECT, unit_fields, NULL, NULL, 0, 0 },
	{ "steps", FB_T_MAP, &step_value, NULL, valid_step_name, 0, 0 },
	{ "report_url", FB_T_STRING, NULL, valid_https_url, NULL, 0, URL_MAX },
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

static const struct fb_field *field_find(const struct fb_field *fields, const char *key)
{
	for (const struct fb_field *f = fields; f && f->key; f++)
		if (STREQ(f->key, key))
			return f;
	return NULL;
}

/* ---- the walk ---- */

static int check_value(struct fb_check *c, const struct fb_field *f, json_object *v)
{
	json_type t = json_object_get_type(v);
	size_t max = f->max;
	int r = 0;
	switch (f->type) {
	case FB_T_STRING:
	case FB_T_SCALAR:
		if (f->type == FB_T_SCALAR && t == json_type_int)
			break;
		if (t != json_type_string)
			return fb_bad(c, f->type == FB_T_SCALAR ? "must be a string or an integer" : "must be a string");
		if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
			return fb_bad(c, "must not contain a NUL character");
		if (strlen(json_object_get_string(v)) > (max ? max : STRING_MAX))
			return fb_bad(c, "longer than %zu bytes", max ? max : (size_t)STRING_MAX);
		break;
	case FB_T_BOOL:
		if (t != json_type_boolean)
			return fb_bad(c, "must be true or false");
		break;
	case FB_T_RESERVED:
		if (t != json_type_object)
			return fb_bad(c, "must be an object");
		break;
	case FB_T_OBJECT: {
		if (t != json_type_object)
			return fb_bad(c, "must be an object");
		json_object_object_foreach(v, key, val)
		{
			size_t old = path_push(c, key, 0);
			const struct fb_field *sub = field_find(f->fields, key);
			r = sub ? check_value(c, sub, val) : fb_bad(c, "unknown key");
			path_pop(c, old);
			if (r < 0)
				return r;
		}
		for (const struct fb_field *sub = f->fields; sub->key; sub++) {
			if (!(sub->flags & FB_REQUIRED) || json_object_object_get_ex(v, sub->key, NULL))
				continue;
			size_t old = path_push(c, sub->key, 0);
			r = fb_bad(c, "is required");
			path_pop(c, old);
			return r;
		}
		break;
	}
	case FB_T_MAP: {
		if (t != json_type_object)
			return fb_bad(c, "must be an object");
		if ((size_t)json_object_object_length(v) > (max ? max : LIST_MAX))
			return fb_bad(c, "more than %zu entries", max ? max : (size_t)LIST_MAX);
		json_object_object_foreach(v, key, val)
		{
			size_t old = path_push(c, key, 0);
			r = f->valid_key ? f->valid_key(c, key) : 0;
			if (r == 0)
				r = check_value(c, f->fields, val);
			path_pop(c, old);
			if (r < 0)
				return r;
		}
		break;
	}
	case FB_T_ARRAY: {
		if (t != json_type_array)
			return fb_bad(c, "must be an array");
		size_t n = json_object_array_length(v);
		if (n > (max ? max : LIST_MAX))
			return fb_bad(c, "more than %zu elements", max ? max : (size_t)LIST_MAX);
		for (size_t i = 0; i < n; i++) {
			size_t old = path_push(c, NULL, i);
			r = check_value(c, f->fields, json_object_array_get_idx(v, i));
			path_pop(c, old);
			if (r < 0)
				return r;
		}
		break;
	}
	}
	return f->valid ? f->valid(c, v) : 0;
}

int fb_config_check(json_object *o, const char *source, char **ret_error)
{
	struct fb_check c = { .source = source };
	int r = check_value(&c, &fb_config_schema, o);
	if (r < 0 && ret_error)
		*ret_error = TAKE_PTR(c.error);
	free(c.error);
	return r;
}

int fb_config_parse(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error)
{
	struct fb_check c = { .source = source };
	if (strlen(buf) != len || len > INT_MAX) {
		int r = fb_bad(&c, "invalid JSON: the text contains a NUL byte");
		*ret_error = c.error;
		return r;
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	int r = 0;
	if (!o || e != json_tokener_success)
		r = fb_bad(&c, "invalid JSON at byte %zu: %s", off,
			   e == json_tokener_success || e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e));
	else if (buf[off + strspn(buf + off, " \t\r\n")])
		r = fb_bad(&c, "invalid JSON: text after the end at byte %zu", off);
	else if (!json_object_is_type(o, json_type_object))
		r = fb_bad(&c, "the config must be a JSON object");
	else
		r = check_value(&c, &fb_config_schema, o);
	if (r < 0) {
		json_object_put(o);
		*ret_error = TAKE_PTR(c.error);
		return r;
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
					  : f->type == FB_T_OBJECT ? field_find(f->fields, key)
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

int fb_base64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s);
	if (len % 4)
		return -EINVAL;
	uint8_t *out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;
		int pad = 0;
		for (size_t j = 0; j < 4; j++) {
			const char *p = s[i + j] ? strchr(alphabet, s[i + j]) : NULL;
			if (s[i + j] == '=' && i + 4 == len && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				pad++;
				acc <<= 6;
			} else if (p && !pad) {
				acc = acc << 6 | (uint32_t)(p - alphabet);
			} else {
				free(out);
				return -EINVAL;
			}
		}
		out[n++] = (uint8_t)(acc >> 16);
		if (pad < 2)
			out[n++] = (uint8_t)(acc >> 8);
		if (pad < 1)
			out[n++] = (uint8_t)acc;
	}
	*ret = out;
	*ret_len = n;
	return 0;
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
	if (strlen(url) > URL_MAX || has_ctl(url) || (!http && !https))
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
