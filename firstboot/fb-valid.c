/* The schema walk and the value checks shared by the config's sections. */
#include "fb-valid.h"
#include "fb-fetch.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>

_Static_assert(FB_PATH_MAX == PATH_MAX - 1, "FB_PATH_MAX is PATH_MAX - 1");

/* ---- messages ---- */

struct fb_check {
	const char *source;
	bool part; /* fb_schema_check_part */
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

/* V without what a URL's user:password and query may hide, or NULL when it has neither: from
 * "://" to the last '@' after it goes, and from the first '?' or '#' after that. Textual on
 * purpose: the value quoted is often not a valid URL, and whatever part of it a parser would
 * take for the password must not be shown. */
static char *url_stripped(const char *v)
{
	const char *auth = strstr(v, "://");
	if (!auth)
		return NULL;
	auth += 3;
	const char *at = strrchr(auth, '@'), *host = at ? at + 1 : auth, *end = host + strcspn(host, "?#");
	if (!at && !*end)
		return NULL;
	return fb_strdupf("%.*s%.*s", (int)(auth - v), v, (int)(end - host), host);
}

struct fb_shown fb_show(const char *v)
{
	_cleanup_free_ char *stripped = url_stripped(v);
	if (stripped)
		v = stripped;
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

/* ---- formats ---- */

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* 1: S has a match of PATTERN, 0: not, -EINVAL: regcomp refuses it. Patterns are compiled once
 * (they are the formats' string constants, found by address), for the program's one thread. */
static int pattern_match(const char *pattern, const char *s)
{
	static struct {
		const char *pattern;
		regex_t re;
	} cache[128];
	static size_t n;
	regex_t one, *re = NULL;
	for (size_t i = 0; i < n && !re; i++)
		if (cache[i].pattern == pattern)
			re = &cache[i].re;
	if (!re) {
		re = n < ARRAY_SIZE(cache) ? &cache[n].re : &one;
		if (regcomp(re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
			return -EINVAL;
		if (re != &one)
			cache[n++].pattern = pattern;
	}
	int m = regexec(re, s, 0, NULL, 0);
	if (re == &one)
		regfree(&one);
	return m == 0;
}

static bool enumerated(const struct fb_format *f)
{
	return f->values || f->value_at;
}

/* F alone (not its ALSO), as JSON Schema's keywords take a string. */
static bool string_ok(const struct fb_format *f, const char *s)
{
	if (f->integer)
		return false;
	if (enumerated(f)) {
		bool known = false;
		for (size_t i = 0; !known && f->values && f->values[i]; i++)
			known = STREQ(f->values[i], s);
		for (size_t i = 0; !known && f->value_at && f->value_at(i); i++)
			known = STREQ(f->value_at(i), s);
		if (!known)
			return false;
	}
	size_t n = utf8_chars(s);
	if (n < f->min || (f->max && n > f->max))
		return false;
	if (f->pattern && pattern_match(f->pattern, s) != 1)
		return false;
	if (f->forbid && pattern_match(f->forbid, s) != 0)
		return false;
	return !(f->except && STREQ(s, f->except));
}

/* F alone, as JSON Schema's keywords take an integer: the string keywords do not apply to it. */
static bool int_ok(const struct fb_format *f, int64_t x)
{
	return !enumerated(f) && (!f->integer || (x >= f->lo && x <= f->hi));
}

bool fb_format_ok(const struct fb_format *f, const char *s)
{
	return (!f->also || fb_format_ok(f->also, s)) && string_ok(f, s);
}

/* The string S, or with X the integer *X, against F and its ALSO. */
static int check_format(struct fb_check *c, const struct fb_format *f, const char *s, const int64_t *x)
{
	if (f->also) {
		int r = check_format(c, f->also, s, x);
		if (r < 0)
			return r;
	}
	if (x ? int_ok(f, *x) : string_ok(f, s))
		return 0;
	if (!x)
		return fb_bad(c, f->integer && f->type_message ? f->type_message : f->message, FB_SHOW(s));
	char num[24];
	snprintf(num, sizeof(num), "%" PRId64, *x);
	return fb_bad(c, f->message, num);
}

int fb_format_check(struct fb_check *c, const struct fb_format *f, json_object *v)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t x = json_object_get_int64(v);
		return check_format(c, f, NULL, &x);
	}
	return check_format(c, f, json_object_get_string(v), NULL);
}

static int formats_add(const struct fb_format *f, const struct fb_format ***list, size_t *n)
{
	if (!f)
		return 0;
	int r = formats_add(f->also, list, n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < *n; i++)
		if ((*list)[i] == f)
			return 0;
	const struct fb_format **l = realloc(*list, (*n + 2) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	l[(*n)++] = f;
	l[*n] = NULL;
	*list = l;
	return 0;
}

static int formats_walk(const struct fb_field *f, const struct fb_format ***list, size_t *n)
{
	int r = formats_add(f->format, list, n);
	if (r < 0)
		return r;
	if (f->type == FB_T_OBJECT) {
		for (const struct fb_field *sub = f->fields; sub && sub->key; sub++)
			if ((r = formats_walk(sub, list, n)) < 0)
				return r;
	} else if ((f->type == FB_T_ARRAY || f->type == FB_T_MAP) && f->fields)
		r = formats_walk(f->fields, list, n);
	return r;
}

int fb_formats_of(const struct fb_field *f, const struct fb_format ***ret)
{
	const struct fb_format **list = NULL;
	size_t n = 0;
	int r = formats_walk(f, &list, &n);
	if (r == 0 && !list && !(list = calloc(1, sizeof(*list))))
		r = -ENOMEM;
	if (r < 0) {
		free(list);
		return r;
	}
	*ret = list;
	return 0;
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
		if (strlen(json_object_get_string(v)) > (max ? max : FB_STRING_MAX))
			return fb_bad(c, "longer than %zu bytes", max ? max : (size_t)FB_STRING_MAX);
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
		for (const struct fb_field *sub = f->fields; !c->part && sub->key; sub++) {
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
		if ((size_t)json_object_object_length(v) > (max ? max : FB_LIST_MAX))
			return fb_bad(c, "more than %zu entries", max ? max : (size_t)FB_LIST_MAX);
		json_object_object_foreach(v, key, val)
		{
			size_t old = path_push(c, key, 0);
			r = f->format ? check_format(c, f->format, key, NULL) : 0;
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
		if (n > (max ? max : FB_LIST_MAX))
			return fb_bad(c, "more than %zu elements", max ? max : (size_t)FB_LIST_MAX);
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
	/* A map's format is its keys' (above). */
	if (f->format && (f->type == FB_T_STRING || f->type == FB_T_SCALAR) && (r = fb_format_check(c, f->format, v)) < 0)
		return r;
	if (c->part && (f->type == FB_T_OBJECT || f->type == FB_T_ARRAY || f->type == FB_T_MAP))
		return 0;
	return f->valid ? f->valid(c, v) : 0;
}

static int schema_check(const struct fb_field *f, json_object *v, const char *source, bool part, char **ret_error)
{
	struct fb_check c = { .source = source, .part = part };
	int r = check_value(&c, f, v);
	if (r < 0 && ret_error)
		*ret_error = TAKE_PTR(c.error);
	free(c.error);
	return r;
}

int fb_schema_check(const struct fb_field *f, json_object *v, const char *source, char **ret_error)
{
	return schema_check(f, v, source, false, ret_error);
}

int fb_schema_check_part(const struct fb_field *f, json_object *v, const char *source, char **ret_error)
{
	return schema_check(f, v, source, true, ret_error);
}

/* ---- value checks ---- */

bool fb_has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Control characters: below 0x20 (NUL is refused before any format), and DEL. */
#define CTL "\x01-\x1f\x7f"
#define HOST_LABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#define HEX "[0-9A-Fa-f]"

const struct fb_format fb_fmt_hostname = {
	.name = "hostname",
	.message = "'%s' is not a valid hostname (RFC 1123: dot-separated labels of 1 to 63 letters, digits and '-', "
		   "not starting or ending with '-', 64 characters at most)",
	.pattern = "^" HOST_LABEL "(\\." HOST_LABEL ")*$",
	.max = 64, /* HOST_NAME_MAX: the kernel holds the whole name */
};

const struct fb_format fb_fmt_user_name = {
	.name = "user_name",
	.message = "'%s' is not a valid user or group name (1 to 32 of a-z, 0-9, '_', '-', starting with a letter or '_')",
	.pattern = "^" FB_USER_NAME_RE "$",
};

static const struct fb_format fmt_absolute = {
	.name = "absolute_path",
	.message = "'%s' is not an absolute path",
	.pattern = "^/[^" CTL "]*$",
};

/* Components that are not empty, "." or "..". */
const struct fb_format fb_fmt_abs_path = {
	.name = "plain_absolute_path",
	.message = "'%s' must be a plain absolute path (no '.', '..', empty components or trailing '/')",
	.pattern = "^(/([^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+))+$",
	.also = &fmt_absolute,
};

const struct fb_format fb_fmt_unit_path = {
	.name = "unit_path",
	.message = "'%s' must be an absolute path of letters, digits, '.', '_' and '-' components (it goes into a "
		   "systemd unit, which splits at spaces and expands percent signs)",
	.pattern = "^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$",
	.also = &fb_fmt_abs_path,
};

const struct fb_format fb_fmt_mode = {
	.name = "mode",
	.message = "'%s' is not a file mode (octal in a string, such as \"0644\")",
	.pattern = "^[0-7]{3,4}$",
};

const struct fb_format fb_fmt_https_url = {
	.name = "https_url",
	.message = "'%s' is not an https:// URL",
	.pattern = "^https://[^/ " CTL "][^ " CTL "]*$",
};

/* The group bit of the first byte is 0 (a multicast address is no interface's). */
const struct fb_format fb_fmt_mac = {
	.name = "mac",
	.message = "'%s' is not a unicast MAC address ('52:54:00:12:34:56')",
	.pattern = "^" HEX "[02468ACEace](:" HEX HEX "){5}$",
	.except = "00:00:00:00:00:00",
};

const struct fb_format fb_fmt_tag = {
	.name = "tag",
	.message = "'%s' is not a tag ('tag:' and lower-case letters, digits, '-')",
	.pattern = "^tag:[a-z0-9-]+$",
	.max = 64,
};

const struct fb_format fb_fmt_artifact_name = {
	.name = "artifact_name",
	.message = "'%s' is not an artifact name (1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-')",
	.pattern = "^" FB_NAME_RE "$",
	.max = 64,
};

const struct fb_format fb_fmt_ifname = {
	.name = "interface_name",
	.message = "'%s' is not a network interface name (1 to 15 of a-z, A-Z, 0-9, '_', '.', '-')",
	.pattern = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
	.max = 15,
};

const struct fb_format fb_fmt_ipv4 = {
	.name = "ipv4",
	.message = "'%s' is not an IPv4 address",
	.pattern = "^(" FB_IPV4_OCTET "\\.){3}" FB_IPV4_OCTET "$",
};

bool fb_user_name_ok(const char *s)
{
	return fb_format_ok(&fb_fmt_user_name, s);
}

bool fb_ifname_ok(const char *s)
{
	return fb_format_ok(&fb_fmt_ifname, s);
}

bool fb_parse_mac(const char *s, char ret[18])
{
	if (!fb_format_ok(&fb_fmt_mac, s))
		return false;
	for (size_t i = 0; i < 18; i++)
		ret[i] = (char)tolower((unsigned char)s[i]);
	return true;
}

int fb_valid_path_limits(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	for (const char *p = s + 1;; p++) {
		size_t n = strcspn(p, "/");
		if (n > NAME_MAX - 24)
			return fb_bad(c, "a component of '%s' is too long", FB_SHOW(s));
		p += n;
		if (!*p)
			break;
	}
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

bool fb_parse_ipv4(const char *s, uint32_t *ret)
{
	struct in_addr a;
	if (strlen(s) > 15 || inet_pton(AF_INET, s, &a) != 1)
		return false;
	*ret = ntohl(a.s_addr);
	return true;
}

int fb_valid_download_url(struct fb_check *c, json_object *v)
{
	if (!fb_download_url_ok(json_object_get_string(v)))
		return fb_bad(c, "'%s' is not an https:// URL (http:// only to 127.0.0.1, localhost or [::1])",
			      FB_SHOW(json_object_get_string(v)));
	return 0;
}

long fb_find_duplicate(json_object *arr, const char *key, size_t *ret_first)
{
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++) {
			json_object *a = json_object_array_get_idx(arr, i), *b = json_object_array_get_idx(arr, j), *x = a, *y = b;
			if ((!key || (json_object_object_get_ex(a, key, &x) && json_object_object_get_ex(b, key, &y))) &&
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
	json_object *e = json_object_array_get_idx(arr, (size_t)i);
	const char *v = json_object_get_string(key ? json_object_object_get(e, key) : e);
	int r = fb_bad(c, "%s '%s' is listed twice", what, FB_SHOW(v));
	path_pop(c, old);
	return r;
}

int fb_valid_special_bits(struct fb_check *c, json_object *obj)
{
	json_object *m, *allow;
	if (!json_object_object_get_ex(obj, "mode", &m))
		return 0;
	const char *text = json_object_get_string(m);
	unsigned long mode = strtoul(text, NULL, 8);
	if (!(mode & 07000) || (json_object_object_get_ex(obj, "special_bits", &allow) && json_object_get_boolean(allow)))
		return 0;
	const char *names[3];
	size_t n = 0;
	if (mode & 04000)
		names[n++] = "setuid";
	if (mode & 02000)
		names[n++] = "setgid";
	if (mode & 01000)
		names[n++] = "sticky";
	size_t old = path_push(c, "mode", 0);
	int r = fb_bad(c, "'%s' sets the %s%s%s%s%s bit%s: refused unless \"special_bits\": true", FB_SHOW(text), names[0],
		       n > 1 ? (n > 2 ? ", " : " and ") : "", n > 1 ? names[1] : "", n > 2 ? " and " : "", n > 2 ? names[2] : "",
		       n > 1 ? "s" : "");
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

int fb_valid_user_dir(struct fb_check *c, json_object *v)
{
	static const char *const system[] = { "/etc", "/usr", "/boot", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin",
					      "/lib", "/lib32", "/lib64", "/libx32", "/tmp", "/var/tmp", "/var/cache",
					      "/var/log", "/var/spool", "/root", NULL };
	static const char *const shared[] = { "/", "/var", "/var/lib", "/home", "/srv", "/opt", "/mnt", "/media",
					      "/var/lib/pmoves", NULL };
	int r = fb_valid_path_limits(c, v);
	const char *s = json_object_get_string(v);
	for (size_t i = 0; r == 0 && system[i]; i++) {
		size_t n = strlen(system[i]);
		if (!strncmp(s, system[i], n) && (s[n] == '\0' || s[n] == '/'))
			return fb_bad(c, "'%s' is in '%s', the system's: this directory is given to a service user", FB_SHOW(s),
				      system[i]);
	}
	for (size_t i = 0; r == 0 && shared[i]; i++)
		if (STREQ(s, shared[i]))
			return fb_bad(c, "'%s' is shared: a service user gets a directory of its own ('%s/NAME')", FB_SHOW(s),
				      STREQ(s, "/") ? "" : s);
	return r;
}
