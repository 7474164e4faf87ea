/* The first-boot config: read each source, check it alone against the schema table, merge,
 * check the result again. Nothing is applied from a config that fails any of this. */
#include "fb-config.h"
#include "fb-fetch.h"
#include "fb-step.h"
#include "firstboot.h"
#include "hash.h"
#include "util.h"

#include <limits.h>

#define URL_MAX 2048

static const char *const source_etc = "/etc/pmoves/firstboot.json";
static const char *const source_device[] = { "/boot/efi/pmoves/device.json", "/boot/firmware/pmoves/device.json" };
static const char *const fw_cfg_dir = "/sys/firmware/qemu_fw_cfg";
static const char *const fw_cfg_file = "/sys/firmware/qemu_fw_cfg/by_name/opt/ai.pmoves/device.json/raw";

/* ---- the schema: the keys that are no step's, and each step's section ---- */

static const char *step_name_at(size_t i)
{
	return i < fb_steps_count ? fb_steps[i]->name : NULL;
}

static const struct fb_format fmt_step_name = {
	.name = "step_name",
	.message = "'%s' is not a step",
	.value_at = step_name_at,
};

static const struct fb_format fmt_finally = {
	.name = "finally",
	.message = "'%s' is not one of 'none', 'reboot', 'poweroff'",
	.values = (const char *const[]){ "none", "reboot", "poweroff", NULL },
};

static const struct fb_field step_fields[] = {
	{ "enabled", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "required", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field step_value = { NULL, FB_T_OBJECT, step_fields, NULL, NULL, 0, 0 };

/* The top-level keys that belong to no step: which steps run, where the report goes, what
 * happens at the end of the run. */
static const struct fb_field run_fields[] = {
	{ "steps", FB_T_MAP, &step_value, NULL, &fmt_step_name, 0, 0 },
	{ "report_url", FB_T_STRING, NULL, NULL, &fb_fmt_https_url, 0, URL_MAX },
	{ "finally", FB_T_STRING, NULL, NULL, &fmt_finally, 0, 0 },
};

const struct fb_field *fb_config_schema(void)
{
	static struct fb_field schema, *fields;
	if (fields)
		return &schema;
	/* Each step's section under its config_key, once (steps may share one), then ours. */
	struct fb_field *f = calloc(fb_steps_count + ARRAY_SIZE(run_fields) + 1, sizeof(*f));
	if (!f)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < fb_steps_count; i++) {
		const struct fb_step *s = fb_steps[i];
		if (!s->config_key || !s->schema || fb_field_find(f, s->config_key))
			continue;
		f[n] = *s->schema;
		f[n++].key = s->config_key;
	}
	for (size_t i = 0; i < ARRAY_SIZE(run_fields); i++)
		f[n++] = run_fields[i];
	fields = f;
	schema = (struct fb_field){ NULL, FB_T_OBJECT, fields, NULL, NULL, 0, 0 };
	return &schema;
}

int fb_config_check(json_object *o, const char *source, char **ret_error)
{
	const struct fb_field *schema = fb_config_schema();
	return schema ? fb_schema_check(schema, o, source, ret_error) : -ENOMEM;
}

static int parse(const char *buf, size_t len, const char *source, bool part, json_object **ret, char **ret_error)
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
	const struct fb_field *schema;
	int r = -EINVAL;
	if (!o || e != json_tokener_success)
		error = fb_strdupf("%s: invalid JSON at byte %zu: %s", source, off,
				   e == json_tokener_success || e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e));
	else if (buf[off + strspn(buf + off, " \t\r\n")])
		error = fb_strdupf("%s: invalid JSON: text after the end at byte %zu", source, off);
	else if (!json_object_is_type(o, json_type_object))
		error = fb_strdupf("%s: the config must be a JSON object", source);
	else if (!part)
		r = fb_config_check(o, source, &error);
	else if (!(schema = fb_config_schema()))
		r = -ENOMEM;
	else
		r = fb_schema_check_part(schema, o, source, &error);
	if (r < 0) {
		json_object_put(o);
		*ret_error = error;
		return error ? r : -ENOMEM;
	}
	*ret = o;
	return 0;
}

int fb_config_parse(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error)
{
	return parse(buf, len, source, false, ret, ret_error);
}

int fb_config_parse_part(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error)
{
	return parse(buf, len, source, true, ret, ret_error);
}

/* "merged config (A + B + C)": what messages about the merge of these sources name. */
static char *sources_label(char *const *sources)
{
	_cleanup_free_ char *names = strv_join(sources, " + ");
	return names ? fb_strdupf("merged config (%s)", names) : NULL;
}

int fb_config_validate_files(char *const *paths, bool part, bool merge, char **ret_error)
{
	json_object *merged = merge ? json_object_new_object() : NULL;
	if (merge && !merged)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; r == 0 && paths[i]; i++) {
		_cleanup_free_ char *buf = NULL;
		size_t len;
		/* A FIFO or a device is refused at once, not waited on. */
		r = fb_read_host(paths[i], FB_CONFIG_MAX, &buf, &len, ret_error);
		if (r < 0)
			break;
		json_object *o = NULL;
		r = part ? fb_config_parse_part(buf, len, paths[i], &o, ret_error)
			 : fb_config_parse(buf, len, paths[i], &o, ret_error);
		explicit_bzero(buf, len);
		if (r == 0 && merge)
			r = fb_config_merge(merged, o);
		json_object_put(o);
	}
	if (r == 0 && merge) {
		_cleanup_free_ char *label = sources_label(paths);
		r = label ? fb_config_check(merged, label, ret_error) : -ENOMEM;
	}
	json_object_put(merged);
	return r;
}

/* ---- merge, secrets, hash ---- */

/* The field of KEY in an object or map described by F (NULL: unknown). */
static const struct fb_field *member(const struct fb_field *f, const char *key)
{
	if (!f)
		return NULL;
	return f->type == FB_T_OBJECT ? fb_field_find(f->fields, key) : f->type == FB_T_MAP ? f->fields : NULL;
}

static int merge(const struct fb_field *f, json_object *base, json_object *over);

/* The element of BASE that E names (by the first key of EF marked FB_ID that E has), or NULL. */
static json_object *same_element(const struct fb_field *ef, json_object *base, json_object *e)
{
	if (!ef || ef->type != FB_T_OBJECT || !json_object_is_type(e, json_type_object))
		return NULL;
	for (const struct fb_field *k = ef->fields; k->key; k++) {
		json_object *id, *other;
		if (!(k->flags & FB_ID) || !json_object_object_get_ex(e, k->key, &id))
			continue;
		for (size_t i = 0; i < json_object_array_length(base); i++) {
			json_object *x = json_object_array_get_idx(base, i);
			if (json_object_is_type(x, json_type_object) && json_object_object_get_ex(x, k->key, &other) &&
			    json_object_equal(id, other))
				return x;
		}
		return NULL;
	}
	return NULL;
}

static bool has_id(const struct fb_field *ef)
{
	for (const struct fb_field *k = ef && ef->type == FB_T_OBJECT ? ef->fields : NULL; k && k->key; k++)
		if (k->flags & FB_ID)
			return true;
	return false;
}

/* An array of named elements (its element's fields have FB_ID): each element of OVER merges
 * into BASE's element of the same name, or is appended. */
static int merge_named(const struct fb_field *ef, json_object *base, json_object *over)
{
	for (size_t i = 0; i < json_object_array_length(over); i++) {
		json_object *e = json_object_array_get_idx(over, i), *x = same_element(ef, base, e), *copy = NULL;
		if (x) {
			int r = merge(ef, x, e);
			if (r < 0)
				return r;
			continue;
		}
		if (json_object_deep_copy(e, &copy, NULL) < 0)
			return -ENOMEM;
		if (json_object_array_add(base, copy) < 0) {
			json_object_put(copy);
			return -ENOMEM;
		}
	}
	return 0;
}

static int merge(const struct fb_field *f, json_object *base, json_object *over)
{
	json_object_object_foreach(over, key, val)
	{
		const struct fb_field *sub = member(f, key);
		json_object *b;
		if (json_object_object_get_ex(base, key, &b)) {
			if (json_object_is_type(b, json_type_object) && json_object_is_type(val, json_type_object)) {
				int r = merge(sub, b, val);
				if (r < 0)
					return r;
				continue;
			}
			if (sub && sub->type == FB_T_ARRAY && has_id(sub->fields) && json_object_is_type(b, json_type_array) &&
			    json_object_is_type(val, json_type_array)) {
				int r = merge_named(sub->fields, b, val);
				if (r < 0)
					return r;
				continue;
			}
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

int fb_config_merge(json_object *base, json_object *over)
{
	const struct fb_field *schema = fb_config_schema();
	return schema ? merge(schema, base, over) : -ENOMEM;
}

bool fb_config_key_is_secret(const char *k)
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

/* F: what the schema says about O, or NULL (key names only). */
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
		bool secret = (fb_config_key_is_secret(key) && !json_object_is_type(val, json_type_boolean)) ||
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
	const struct fb_field *schema = fb_config_schema();
	return schema ? scrub(o, schema, ret_secrets) : -ENOMEM;
}

int fb_config_hash(json_object *o, char ret_hex[65])
{
	json_object *copy = NULL;
	if (json_object_deep_copy(o, &copy, NULL) < 0)
		return -ENOMEM;
	int r = fb_config_scrub(copy, NULL);
	if (r >= 0) {
		const char *s = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN);
		r = sha256_hex_of(s, strlen(s), ret_hex);
	}
	json_object_put(copy);
	return r;
}

/* The parts of a URL in S that could hold a credential, as secrets for the output filter:
 * its user:password and password (from "://" to the authority's last '@'), its query (after the first '?'
 * that follows, to a '#') and its fragment (after the '#'), each when at least 4 bytes long. Messages and the plan
 * show URLs without them (fb_url_shown()); this catches the places that show a value whole,
 * such as a command line with --login-server=URL. */
static int url_secrets(const char *s, char ***secrets)
{
	const char *auth = strstr(s, "://");
	if (!auth)
		return 0;
	auth += 3;
	/* user:password ends at the last '@' of the authority ("https://registry/@scope/pkg" has
	 * none). */
	const char *at = memrchr(auth, '@', strcspn(auth, "/?#")), *host = at ? at + 1 : auth, *query = strchr(host, '?'),
		   *frag = strchr(query ? query : host, '#');
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	struct {
		const char *p;
		size_t n;
	} parts[] = { { auth, at ? (size_t)(at - auth) : 0 },
		      { colon ? colon + 1 : "", colon ? (size_t)(at - colon - 1) : 0 },
		      { query ? query + 1 : "", query ? (frag ? (size_t)(frag - query - 1) : strlen(query + 1)) : 0 },
		      { frag ? frag + 1 : "", frag ? strlen(frag + 1) : 0 } };
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		if (parts[i].n < 4)
			continue;
		_cleanup_free_ char *part = strndup(parts[i].p, parts[i].n);
		int r = part ? strv_push(secrets, part) : -ENOMEM;
		if (r < 0)
			return r;
	}
	return 0;
}

static int url_secrets_in(json_object *v, char ***secrets)
{
	int r = 0;
	if (json_object_is_type(v, json_type_string))
		return url_secrets(json_object_get_string(v), secrets);
	if (json_object_is_type(v, json_type_array))
		for (size_t i = 0; r == 0 && i < json_object_array_length(v); i++)
			r = url_secrets_in(json_object_array_get_idx(v, i), secrets);
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			(void)key;
			if (r == 0)
				r = url_secrets_in(val, secrets);
		}
	}
	return r;
}

/* ---- loading ---- */

/* Read, parse and check ABS under the root, and merge it; *ret_o (borrowed) gets the parsed
 * source. 0 and nothing done when the file does not exist. */
static int load_file(struct fb_config *c, json_object *merged, const char *abs, const char *source, json_object **ret_o)
{
	_cleanup_free_ char *buf = NULL, *err = NULL;
	size_t len;
	int r = fb_read_file(abs, FB_CONFIG_MAX, &buf, &len, &err);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	/* A FIFO or a device is refused at once: "SOURCE: 'PATH' is not a regular file (a FIFO)". */
	if (r < 0)
		c->error = fb_strdupf("%s: %s", source, err ? err : strerror(-r));
	if (r < 0)
		return c->error ? -EINVAL : -ENOMEM;
	json_object *o = NULL;
	r = fb_config_parse_part(buf, len, source, &o, &c->error);
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

char *fb_cmdline_get(const char *cmdline, const char *key)
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
	url = fb_cmdline_get(cmdline, "pmoves.config");
	if (!url)
		return 0;
	pin = fb_cmdline_get(cmdline, "pmoves.config_sha256");
	if ((r = url_secrets(url, &c->secrets)) < 0)
		return r;
	/* The source's name leaves out user:password and a query string, which may carry a
	 * token: it is printed and kept in status.json. */
	shown = url_shown(url);
	if (!shown)
		return -ENOMEM;
	bool http = !strncmp(url, "http://", 7);
	if (strlen(url) > URL_MAX || fb_has_ctl(url) || url_check(url, URL_PINNED, NULL) < 0)
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
		c->error = err ? TAKE_PTR(err) : fb_strdupf("%s: cannot fetch: %s", shown, strerror(-r));
		return c->error ? -EAGAIN : -ENOMEM;
	}
	if (pin) {
		char hex[65];
		if ((r = sha256_hex_of(buf, len, hex)) < 0)
			return r;
		if (!STREQ(hex, pin)) {
			c->error = fb_strdupf("%s: SHA-256 is %s, the kernel command line pins %s", shown, hex, pin);
			return -EINVAL;
		}
	}
	json_object *o = NULL;
	r = fb_config_parse_part(buf, len, shown, &o, &c->error);
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
	if (r == 0) {
		_cleanup_free_ char *label = sources_label(c->sources);
		r = label ? fb_config_check(merged, label, &c->error) : -ENOMEM;
	}
	if (r == 0) {
		json_object *copy = NULL;
		if (json_object_deep_copy(merged, &copy, NULL) < 0)
			r = -ENOMEM;
		else
			r = fb_config_scrub(copy, &c->secrets);
		json_object_put(copy);
	}
	if (r >= 0)
		r = url_secrets_in(merged, &c->secrets);
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
