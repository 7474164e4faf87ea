/* The config schema and the value checks: field tables, the walk that checks a JSON value
 * against one (fb_schema_check), and the validators more than one section uses. Each step
 * keeps its section's table in its own file (fb-step.h: .schema); fb-config.c puts them
 * together into the top-level schema. Loading and merging the sources is fb-config.c's. */
#ifndef PMOVES_FB_VALID_H
#define PMOVES_FB_VALID_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fb_type {
	FB_T_STRING,
	FB_T_BOOL,
	FB_T_SCALAR,   /* a string or an integer */
	FB_T_OBJECT,   /* fields: NULL-key-terminated list; keys not listed are errors */
	FB_T_ARRAY,    /* fields: the one field every element must match */
	FB_T_MAP,      /* free keys, each of the format; fields: the one field every value matches */
};

enum {
	FB_REQUIRED = 1 << 0,  /* in an object: must be present */
	FB_SECRET = 1 << 1,    /* the value is secret */
	FB_SECRET_IF = 1 << 2, /* secret when its object has "secret": true */
	FB_SECRET_OBJ = 1 << 3, /* array element: with "secret": true the whole element is scrubbed */
	FB_ID = 1 << 4,        /* in an array's element: names the element, for merging sources */
};

/* What a value may be, as data: fb_schema_check() checks it, and `pmoves-firstboot schema`
 * writes it into the JSON Schema as it is ("$defs"), so the validator and the schema cannot
 * drift. The rules a JSON Schema cannot say (URLs through libcurl's parser, CIDR arithmetic,
 * base64, sizes, rules across fields or elements) are the fields' validators (fb_validator),
 * and docs/firstboot.md lists them.
 *
 * A pattern is anchored and written in the common part of POSIX extended regular expressions
 * (regcomp, C locale: bytes) and ECMA-262 (JSON Schema: characters): no \d, \s, \w, '.' as
 * a wildcard, lookaround or back-references; a backslash in a bracket is written twice; ']'
 * never in a bracket (\] outside one); a counted repetition ({m,n}) only of what matches ASCII
 * alone, since regexec counts bytes (MIN and MAX count characters on both sides). Anchored
 * is '^' first and '$' last, and such a pattern takes no newline; or, for text of several
 * lines (PEM), '^' first and no '$' at all: the beginning the text must have.
 *
 * A string conforms when it matches PATTERN, has no match of FORBID (anywhere), has MIN to MAX
 * characters, is one of the enumeration and is not EXCEPT. An integer format takes the
 * integers from LO to HI and no string. A string format takes any integer unless it has an
 * enumeration (FB_T_SCALAR). ALSO is checked first, with its own message. */
struct fb_format {
	const char *name;    /* its "$defs" entry: a-z, 0-9, '_'; one format per name */
	const char *message; /* the problem: a printf format with at most one %s, the value as
			      * fb_show() shows it (an integer in decimal); none for a secret */
	const char *pattern;
	const char *forbid;
	size_t min, max;     /* characters (UTF-8 code points); max 0: no limit */
	const char *const *values;           /* the enumeration: NULL-terminated, or NULL */
	const char *(*value_at)(size_t i);   /* or from a table: the I-th, NULL past the last */
	const char *except;
	bool integer;
	int64_t lo, hi;
	const char *type_message; /* integer: when the value is not an integer (NULL: message) */
	const struct fb_format *also;
};

struct fb_check;
/* A value check after the type check and the format: returns 0, or fb_bad(...). */
typedef int fb_validator(struct fb_check *c, json_object *v);

struct fb_field {
	const char *key;
	enum fb_type type;
	const struct fb_field *fields;
	fb_validator *valid;
	const struct fb_format *format; /* the value's; FB_T_MAP: the keys' */
	unsigned flags;
	size_t max; /* strings: bytes; arrays and maps: elements (0: the defaults) */
};

/* The end of a field list. */
#define FB_FIELDS_END { NULL, 0, NULL, NULL, NULL, 0, 0 }

/* The limits of a field whose max is 0: a string's bytes, an array's or a map's entries. */
#define FB_STRING_MAX 4096
#define FB_LIST_MAX 1024
/* The max of a path's field: PATH_MAX - 1 bytes. */
#define FB_PATH_MAX 4095

/* Check V against F. On failure (-EINVAL) *ret_error (may be NULL) is "SOURCE: .json.path:
 * problem", the first problem found. */
int fb_schema_check(const struct fb_field *f, json_object *v, const char *source, char **ret_error);
/* The same for one source of a config that others complete (fb-config.h): types, formats,
 * limits, unknown keys and the validators of single values; not FB_REQUIRED, nor the
 * validators of objects and arrays (rules across keys and elements), which the merged config
 * must meet. */
int fb_schema_check_part(const struct fb_field *f, json_object *v, const char *source, char **ret_error);
/* The field KEY of a field list, or NULL. */
const struct fb_field *fb_field_find(const struct fb_field *fields, const char *key);

/* S conforms to F (with its ALSO). A pattern regcomp refuses (a bug: the tests compile every
 * one) conforms to nothing. */
bool fb_format_ok(const struct fb_format *f, const char *s);
/* V (a string or an integer) against F: 0, or fb_bad() with F's message. */
int fb_format_check(struct fb_check *c, const struct fb_format *f, json_object *v);
/* The formats of F and of everything under it, each once, into the array *RET (NULL-terminated,
 * caller frees the array): what the JSON Schema's "$defs" has, in the order first met. */
int fb_formats_of(const struct fb_field *f, const struct fb_format ***ret);

/* "SOURCE: .json.path: problem", first problem only; returns -EINVAL. */
int fb_bad(struct fb_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A value for a message: at most 60 bytes, anything unprintable (and ') as '?', and in a value
 * with "://" no user:password or query (whatever is before the last '@', from a '?' or '#'). */
struct fb_shown {
	char s[64];
};
struct fb_shown fb_show(const char *v);
#define FB_SHOW(v) (fb_show(v).s)

/* ---- the formats and value checks several sections use ---- */

extern const struct fb_format fb_fmt_hostname;      /* RFC 1123, 64 characters at most (HOST_NAME_MAX) */
/* A user or group name as shadow-utils takes it: 1 to 32 of a-z, 0-9, '_', '-' (a '$' at the
 * end), starting with a letter or '_'. FB_USER_NAME_RE is its pattern, unanchored. */
extern const struct fb_format fb_fmt_user_name;
#define FB_USER_NAME_RE "[a-z_]([a-z0-9_-]{0,31}|[a-z0-9_-]{0,30}[$])"
extern const struct fb_format fb_fmt_abs_path;      /* "/a/b": no '.', '..', empty components, trailing '/' */
/* fb_fmt_abs_path of [A-Za-z0-9._-] components, none starting with '.': safe in a unit file. */
extern const struct fb_format fb_fmt_unit_path;
extern const struct fb_format fb_fmt_mode;          /* "0644": 3 or 4 octal digits in a string */
extern const struct fb_format fb_fmt_https_url;     /* https://HOST..., no blanks or control characters */
/* "aa:bb:cc:dd:ee:ff" (either case), not a multicast or all-zero address: no interface's. */
extern const struct fb_format fb_fmt_mac;
extern const struct fb_format fb_fmt_tag;           /* a tailnet tag: "tag:" and a-z, 0-9, '-'; 64 at most */
/* An artifact's name (as valid_name(), 64 at most): a file name under the cache; also the apt
 * repositories'. FB_NAME_RE is its pattern, unanchored. */
extern const struct fb_format fb_fmt_artifact_name;
#define FB_NAME_RE "[A-Za-z0-9_][A-Za-z0-9._-]*"
/* A network interface name we put in files and argv: 1 to 15 (IFNAMSIZ - 1) of a-z, A-Z,
 * 0-9, '_', '.', '-', not starting with '.' or '-'. */
extern const struct fb_format fb_fmt_ifname;
extern const struct fb_format fb_fmt_ipv4;          /* dotted quad, no leading zeros (inet_pton) */
/* A pattern's IPv4 byte in decimal, as inet_pton takes it (no leading zero). */
#define FB_IPV4_OCTET "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"

/* S has a control character (below 0x20, or DEL). */
bool fb_has_ctl(const char *s);
/* fb_fmt_user_name */
bool fb_user_name_ok(const char *s);
/* Strict base64 (RFC 4648, padding required). */
int fb_base64_decode(const char *s, uint8_t **ret, size_t *ret_len);
/* fb_fmt_ifname */
bool fb_ifname_ok(const char *s);
/* A fb_fmt_mac address -> lower case into RET; false for anything else. */
bool fb_parse_mac(const char *s, char ret[18]);
/* A dotted-quad IPv4 address, into RET in host byte order. */
bool fb_parse_ipv4(const char *s, uint32_t *ret);

/* After fb_fmt_abs_path (or a format built on it), in a field of max FB_PATH_MAX: each
 * component fits in NAME_MAX bytes, less room for a temp file's suffix. */
fb_validator fb_valid_path_limits;
fb_validator fb_valid_base64;    /* fb_base64_decode() takes it */
/* An artifact's URL (fb_download_url_ok(): https, or http to loopback, by libcurl's URL
 * parser); also the apt repositories' and their keys'. */
fb_validator fb_valid_download_url;

/* OBJ's "mode" (fb_fmt_mode) has no setuid, setgid or sticky bit, unless OBJ has
 * "special_bits": true: else ".mode: '4755' sets the setuid bit: refused unless ...". For
 * the object validators of files and artifacts. */
int fb_valid_special_bits(struct fb_check *c, json_object *obj);

/* The index of the first element of array ARR whose KEY string (KEY NULL: the element, a
 * string) equals an earlier one's (that one's index in *ret_first), or -1 when they are all
 * different. */
long fb_find_duplicate(json_object *arr, const char *key, size_t *ret_first);
/* A directory a step gives to a service user (fb_user_dir()): never in a system directory
 * ("/etc", "/usr", ...) nor a shared one itself ("/var/lib", "/home", "/srv", ...). */
int fb_valid_user_dir(struct fb_check *c, json_object *v);
/* In array ARR, the elements' KEY values are unique: else "WHAT 'VALUE' is listed twice" at
 * the second element. */
int fb_valid_unique(struct fb_check *c, json_object *arr, const char *key, const char *what);

#endif
