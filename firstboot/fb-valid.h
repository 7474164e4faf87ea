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
	FB_T_MAP,      /* free keys checked by valid_key; fields: the one field every value matches */
};

enum {
	FB_REQUIRED = 1 << 0,  /* in an object: must be present */
	FB_SECRET = 1 << 1,    /* the value is secret */
	FB_SECRET_IF = 1 << 2, /* secret when its object has "secret": true */
	FB_SECRET_OBJ = 1 << 3, /* array element: with "secret": true the whole element is scrubbed */
};

struct fb_check;
/* A value check after the type check: returns 0, or fb_bad(...). */
typedef int fb_validator(struct fb_check *c, json_object *v);

struct fb_field {
	const char *key;
	enum fb_type type;
	const struct fb_field *fields;
	fb_validator *valid;
	int (*valid_key)(struct fb_check *c, const char *key); /* FB_T_MAP */
	unsigned flags;
	size_t max; /* strings: bytes; arrays and maps: elements (0: the defaults) */
};

/* The end of a field list. */
#define FB_FIELDS_END { NULL, 0, NULL, NULL, NULL, 0, 0 }

/* Check V against F. On failure (-EINVAL) *ret_error (may be NULL) is "SOURCE: .json.path:
 * problem", the first problem found. */
int fb_schema_check(const struct fb_field *f, json_object *v, const char *source, char **ret_error);
/* The field KEY of a field list, or NULL. */
const struct fb_field *fb_field_find(const struct fb_field *fields, const char *key);

/* "SOURCE: .json.path: problem", first problem only; returns -EINVAL. */
int fb_bad(struct fb_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A value for a message: at most 60 bytes, anything unprintable (and ') as '?'. */
struct fb_shown {
	char s[64];
};
struct fb_shown fb_show(const char *v);
#define FB_SHOW(v) (fb_show(v).s)

/* ---- value checks ---- */

/* S has a control character (below 0x20, or DEL). */
bool fb_has_ctl(const char *s);
/* A user or group name as shadow-utils takes it: 1 to 32 of a-z, 0-9, '_', '-' (a '$' at the
 * end), starting with a letter or '_'. */
bool fb_user_name_ok(const char *s);
/* Strict base64 (RFC 4648, padding required). */
int fb_base64_decode(const char *s, uint8_t **ret, size_t *ret_len);
/* A network interface name we put in files and argv: 1 to 15 (IFNAMSIZ - 1) of a-z, A-Z,
 * 0-9, '_', '.', '-', not starting with '.' or '-'. */
bool fb_ifname_ok(const char *s);
/* "aa:bb:cc:dd:ee:ff" (either case) -> lower case into RET; false for anything else, and for
 * a multicast or all-zero address, which is no interface's. */
bool fb_parse_mac(const char *s, char ret[18]);
/* A dotted-quad IPv4 address, into RET in host byte order. */
bool fb_parse_ipv4(const char *s, uint32_t *ret);

fb_validator fb_valid_hostname;  /* RFC 1123, 64 characters at most (HOST_NAME_MAX) */
fb_validator fb_valid_user_name; /* fb_user_name_ok() */
fb_validator fb_valid_abs_path;  /* "/a/b": no '.', '..', empty components, trailing '/' */
fb_validator fb_valid_mode;      /* "0644": 3 or 4 octal digits in a string */
fb_validator fb_valid_base64;    /* fb_base64_decode() takes it */
fb_validator fb_valid_https_url; /* https://HOST..., no blanks or control characters */
fb_validator fb_valid_mac;       /* fb_parse_mac() */
fb_validator fb_valid_tag;       /* a tailnet tag: "tag:" and a-z, 0-9, '-'; 64 at most */
/* An artifact's URL (fb_download_url_ok(): https, or http to loopback); also the apt
 * repositories' and their keys'. */
fb_validator fb_valid_download_url;
/* An artifact's name (valid_name(), 64 at most): a file name under the cache; also the apt
 * repositories'. */
fb_validator fb_valid_artifact_name;

/* The index of the first element of array ARR whose KEY string equals an earlier one's (that
 * one's index in *ret_first), or -1 when they are all different. */
long fb_find_duplicate(json_object *arr, const char *key, size_t *ret_first);
/* In array ARR, the elements' KEY values are unique: else "WHAT 'VALUE' is listed twice" at
 * the second element. */
int fb_valid_unique(struct fb_check *c, json_object *arr, const char *key, const char *what);

#endif
