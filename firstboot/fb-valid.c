/* The schema walk and the value checks shared by the config's sections. */
#include "fb-valid.h"
#include "fb-fetch.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>

#define STRING_MAX 4096
#define LIST_MAX 1024

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

struct fb_shown fb_show(const char *v)
{
	struct fb_shown r;
	size_t i = 0;
	for (; v[i] && i < 60; i++)
		r.s[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '\'' ? '?' : v[i];
	if (v[i] && i >= 3)
		memcpy(r.s + i - 3, "...", 3);
	r.s[i] = '\0';
	return r;
}

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
		n = snprintf(c->path + c->plen, room, "[\"%s\"]", FB_SHOW(key));
	if (n > 0 && (size_t)n < room)
		c->plen += (size_t)n;
	return old;
}

static void path_pop(struct fb_check *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

/* ---- the walk ---- */

const struct fb_field *fb_field_find(const struct fb_field *fields, const char *key)
{
	for (const struct fb_field *f = fields; f && f->key; f++)
		if (STREQ(f->key, key))
			return f;
	return NULL;
}

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
	case FB_T_OBJECT: {
		if (t != json_type_object)
			return fb_bad(c, "must be an object");
		json_object_object_foreach(v, key, val)
		{
			size_t old = path_push(c, key, 0);
			const struct fb_field *sub = fb_field_find(f->fields, key);
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

int fb_schema_check(const struct fb_field *f, json_object *v, const char *source, char **ret_error)
{
	struct fb_check c = { .source = source };
	int r = check_value(&c, f, v);
	if (r < 0 && ret_error)
		*ret_error = TAKE_PTR(c.error);
	free(c.error);
	return r;
}

/* ---- value checks ---- */

bool fb_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int fb_valid_hostname(struct fb_check *c, json_object *v)
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
		return fb_bad(c, "'%s' is not a valid hostname (RFC 1123: dot-separated labels of 1 to 63 letters, digits and '-', not starting or ending with '-', 64 characters at most)", FB_SHOW(s));
	return 0;
}

bool fb_user_name_ok(const char *s)
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

int fb_valid_user_name(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!fb_user_name_ok(s))
		return fb_bad(c, "'%s' is not a valid user or group name (1 to 32 of a-z, 0-9, '_', '-', starting with a letter or '_')", FB_SHOW(s));
	return 0;
}

int fb_valid_abs_path(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (s[0] != '/' || fb_has_ctl(s))
		return fb_bad(c, "'%s' is not an absolute path", FB_SHOW(s));
	if (strlen(s) >= PATH_MAX)
		return fb_bad(c, "path is longer than %d bytes", PATH_MAX - 1);
	for (const char *p = s + 1;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return fb_bad(c, "'%s' must be a plain absolute path (no '.', '..', empty components or trailing '/')", FB_SHOW(s));
		if (n > NAME_MAX - 24)
			return fb_bad(c, "a component of '%s' is too long", FB_SHOW(s));
		if (!p[n])
			break;
		p += n + 1;
	}
	return 0;
}

int fb_valid_mode(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t len = strlen(s);
	if (len < 3 || len > 4 || strspn(s, "01234567") != len)
		return fb_bad(c, "'%s' is not a file mode (octal in a string, such as \"0644\")", FB_SHOW(s));
	return 0;
}

int fb_valid_base64(struct fb_check *c, json_object *v)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	if (fb_base64_decode(json_object_get_string(v), &buf, &len) < 0)
		return fb_bad(c, "not valid base64 (RFC 4648, with padding)");
	return 0;
}

int fb_valid_https_url(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (strncmp(s, "https://", 8) || !s[8] || s[8] == '/' || strpbrk(s, " \t") || fb_has_ctl(s))
		return fb_bad(c, "'%s' is not an https:// URL", FB_SHOW(s));
	return 0;
}

bool fb_ifname_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 15 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n &&
	       s[0] != '.' && s[0] != '-';
}

bool fb_parse_mac(const char *s, char ret[18])
{
	if (strlen(s) != 17)
		return false;
	for (size_t i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
		ret[i] = (char)tolower((unsigned char)s[i]);
	}
	ret[17] = '\0';
	/* The group bit of the first byte: a multicast address is no interface's. */
	return !(strtoul((char[]){ ret[0], ret[1], '\0' }, NULL, 16) & 1) && !STREQ(ret, "00:00:00:00:00:00");
}

int fb_valid_mac(struct fb_check *c, json_object *v)
{
	char mac[18];
	if (!fb_parse_mac(json_object_get_string(v), mac))
		return fb_bad(c, "'%.32s' is not a unicast MAC address ('52:54:00:12:34:56')", json_object_get_string(v));
	return 0;
}

bool fb_parse_ipv4(const char *s, uint32_t *ret)
{
	struct in_addr a;
	if (strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
		return false;
	*ret = ntohl(a.s_addr);
	return true;
}

int fb_valid_tag(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t n = strlen(s);
	if (n < 5 || n > 64 || strncmp(s, "tag:", 4) || strspn(s + 4, "abcdefghijklmnopqrstuvwxyz0123456789-") != n - 4)
		return fb_bad(c, "'%.64s' is not a tag ('tag:' and lower-case letters, digits, '-')", s);
	return 0;
}

int fb_valid_download_url(struct fb_check *c, json_object *v)
{
	if (!fb_download_url_ok(json_object_get_string(v)))
		return fb_bad(c, "'%.64s' is not an https:// URL (http:// only to 127.0.0.1, localhost or [::1])",
			      json_object_get_string(v));
	return 0;
}

int fb_valid_artifact_name(struct fb_check *c, json_object *v)
{
	if (!valid_name(json_object_get_string(v), 64))
		return fb_bad(c, "'%.64s' is not an artifact name (1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-')",
			      json_object_get_string(v));
	return 0;
}

long fb_find_duplicate(json_object *arr, const char *key, size_t *ret_first)
{
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++) {
			json_object *a = json_object_array_get_idx(arr, i), *b = json_object_array_get_idx(arr, j), *x, *y;
			if (json_object_object_get_ex(a, key, &x) && json_object_object_get_ex(b, key, &y) &&
			    json_object_get_string(x) && json_object_get_string(y) &&
			    STREQ(json_object_get_string(x), json_object_get_string(y))) {
				if (ret_first)
					*ret_first = j;
				return (long)i;
			}
		}
	return -1;
}

int fb_valid_unique(struct fb_check *c, json_object *arr, const char *key, const char *what)
{
	long i = fb_find_duplicate(arr, key, NULL);
	if (i < 0)
		return 0;
	size_t old = path_push(c, NULL, (size_t)i);
	const char *v = json_object_get_string(json_object_object_get(json_object_array_get_idx(arr, (size_t)i), key));
	int r = fb_bad(c, "%s '%s' is listed twice", what, FB_SHOW(v));
	path_pop(c, old);
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
