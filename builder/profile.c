/* Profiles: read JSON files, resolve "extends", add defaults, validate strictly, and fill
 * struct profile. docs/profiles.md is the user's reference for every key checked here.
 *
 * Stages, in order, each stopping at the first problem:
 *   1. per file: read (<= 1 MiB), parse, schema check (unknown keys, wrong types) naming that file
 *   2. follow "extends" (child directory first, then profile_dir()), detecting cycles by realpath
 *   3. merge root ancestor first: objects merge recursively, arrays and scalars replace
 *   4. defaults, then canonical key order (what `show` prints and what keys the rootfs cache)
 *   5. values, layout and cross checks on the resolved profile, naming the file a value came from */
#include "profile.h"
#include "profile-schema.h"
#include "registry.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>

#ifndef PMOVES_DATADIR
#define PMOVES_DATADIR "/usr/local/share/pmoves-image"
#endif

#define PROFILE_FILE_MAX (1024u * 1024u)
#define NAME_MAX_LEN 64
#define DESCRIPTION_MAX 200
#define CMDLINE_MAX 4096
#define MOUNT_MAX 255
#define MAX_OVERLAYS 64
#define MAX_OUTPUTS 32
#define MIN_DISK_SIZE (2u * 1024u * 1024u)
#define MIB (1024u * 1024u)

/* ---- where things live ---- */

static const char *data_subdir(char *buf, size_t size, const char *sub)
{
	const char *env = getenv("PMOVES_DATADIR");
	struct stat st;
	int n;
	if (env && *env)
		n = snprintf(buf, size, "%s/%s", env, sub);
	else if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
		n = snprintf(buf, size, "%s", sub);
	else
		n = snprintf(buf, size, "%s/%s", PMOVES_DATADIR, sub);
	if (n < 0 || (size_t)n >= size)
		buf[0] = '\0'; /* too long to be a directory: finds nothing */
	return buf;
}

const char *profile_dir(void)
{
	static char buf[PATH_MAX];
	return data_subdir(buf, sizeof(buf), "profiles");
}

const char *overlay_dir(void)
{
	static char buf[PATH_MAX];
	return data_subdir(buf, sizeof(buf), "overlays");
}

const char *npm_dir(void)
{
	static char buf[PATH_MAX];
	return data_subdir(buf, sizeof(buf), "npm");
}

const char *pinokio_dir(void)
{
	static char buf[PATH_MAX];
	return data_subdir(buf, sizeof(buf), "pinokio");
}

static const char *type_name(json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
	case json_type_int:
		return "a number";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "something else";
}

/* ---- context and messages ---- */

struct pfile {
	char *display; /* the path as the user gave it, or as it was found */
	char *real;    /* realpath(), for cycle detection */
	json_object *json;
};

/* Which file gave each element of an array that "_add" keys extend (merge_into), so that a
 * problem with an element names the file that added it. */
struct added {
	char *path;   /* ".rootfs.packages" */
	size_t n;
	size_t *from; /* per element: its file, an index into files[] */
};

struct problems {
	struct pfile files[PROFILE_MAX_EXTENDS + 1]; /* [0] is the file asked for, then its parents */
	size_t n;
	char *error;
	json_object *resolved;
	struct added added[8];
	size_t n_added;
};

static void ctx_done(struct problems *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->files[i].display);
		free(c->files[i].real);
		json_object_put(c->files[i].json);
	}
	free(c->error);
	json_object_put(c->resolved);
	for (size_t i = 0; i < c->n_added; i++) {
		free(c->added[i].path);
		free(c->added[i].from);
	}
}

/* "FILE: PATH: problem" (PATH may be NULL), once per load: the first problem wins. */
static int vfail(struct problems *c, int r, const char *file, const char *path, const char *fmt, va_list ap)
{
	if (c->error)
		return r;
	_cleanup_free_ char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return -ENOMEM;
	int n = path && *path ? asprintf(&c->error, "%s: %s: %s", file, path, msg)
			      : asprintf(&c->error, "%s: %s", file, msg);
	if (n < 0) {
		c->error = NULL;
		return -ENOMEM;
	}
	return r;
}

static int __attribute__((format(printf, 5, 6)))
fail_file(struct problems *c, int r, const char *file, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	r = vfail(c, r, file, path, fmt, ap);
	va_end(ap);
	return r;
}

struct quoted quote(const char *s)
{
	struct quoted q = { "" };
	char cut[64];
	size_t n = strlen(s);
	bool more = n > 60;
	if (more) {
		n = 60;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--; /* not inside a UTF-8 sequence */
	}
	memcpy(cut, s, n);
	cut[n] = '\0';
	json_object *o = json_object_new_string(cut);
	const char *j = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE) : "\"?\"";
	snprintf(q.s, sizeof(q.s), "%s%s", j, more ? "..." : "");
	json_object_put(o);
	return q;
}

/* Path components: ".key" for plain keys, ["key"] for anything else, "[i]" for indexes. */
static char *path_key(const char *base, const char *key)
{
	bool plain = *key != '\0' && strlen(key) <= 60;
	for (const char *k = key; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
		      *k == '_' || *k == '-'))
			plain = false;
	char *p = NULL;
	int n = plain ? asprintf(&p, "%s.%s", base, key) : asprintf(&p, "%s[%s]", base, Q(key));
	return n < 0 ? NULL : p;
}

static char *path_index(const char *base, size_t i)
{
	char *p = NULL;
	return asprintf(&p, "%s[%zu]", base, i) < 0 ? NULL : p;
}

/* The file a resolved value at PATH came from: the nearest file (child first) that has the
 * value, or that has an array above it (arrays replace, so it owns everything beneath);
 * defaults belong to the file asked for. */
static json_object *file_lookup(json_object *o, const char *path, bool *ret_array_above)
{
	const char *p = path;
	*ret_array_above = false;
	while (o && *p) {
		if (json_object_is_type(o, json_type_array))
			*ret_array_above = true;
		if (*p == '.') {
			p++;
			size_t len = strcspn(p, ".[");
			char key[64];
			if (len >= sizeof(key) || !json_object_is_type(o, json_type_object))
				return NULL;
			memcpy(key, p, len);
			key[len] = '\0';
			o = json_object_object_get(o, key);
			p += len;
		} else if (*p == '[') {
			char *end;
			unsigned long i = strtoul(p + 1, &end, 10);
			if (*end != ']' || !json_object_is_type(o, json_type_array) ||
			    i >= json_object_array_length(o))
				return NULL;
			o = json_object_array_get_idx(o, i);
			p = end + 1;
		} else
			return NULL;
	}
	return o;
}

static const char *origin(struct problems *c, const char *path)
{
	for (size_t i = 0; i < c->n_added; i++) {
		const struct added *a = &c->added[i];
		size_t len = strlen(a->path);
		char *end;
		if (strncmp(path, a->path, len) != 0 || path[len] != '[')
			continue;
		unsigned long k = strtoul(path + len + 1, &end, 10);
		if (*end == ']' && k < a->n)
			return c->files[a->from[k]].display;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (i > 0 && (STREQ(path, ".name") || !strncmp(path, ".name.", 6)))
			break; /* "name" is never inherited */
		bool array_above;
		if (file_lookup(c->files[i].json, path, &array_above) || array_above)
			return c->files[i].display;
	}
	return c->files[0].display;
}

/* A problem with a resolved value at PATH, named after the file it came from. */
static int __attribute__((format(printf, 3, 4))) bad(struct problems *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfail(c, -EINVAL, origin(c, path), path, fmt, ap);
	va_end(ap);
	return r;
}

int problem(struct problems *pr, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfail(pr, -EINVAL, origin(pr, path), path, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- stage 1: one file ---- */

static void line_col(const char *buf, size_t off, size_t *ret_line, size_t *ret_col)
{
	size_t line = 1, col = 1;
	for (size_t i = 0; i < off && buf[i]; i++) {
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	*ret_line = line;
	*ret_col = col;
}

static int parse_json(struct problems *c, const char *file, const char *buf, size_t len, json_object **ret)
{
	if (strlen(buf) != len)
		return fail_file(c, -EINVAL, file, NULL, "invalid JSON: the file contains a NUL byte");
	if (len > INT_MAX)
		return fail_file(c, -EINVAL, file, NULL, "file is too large");
	size_t skip = strspn(buf, " \t\r\n");
	if (skip == len)
		return fail_file(c, -EINVAL, file, NULL, "file is empty (a profile is a JSON object)");

	json_tokener *tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	size_t line, col;
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		const char *what = jerr == json_tokener_continue ? "unexpected end of file"
								 : json_tokener_error_desc(jerr);
		/* The tokener stops at the character it could not take. */
		size_t at = jerr == json_tokener_continue || end > len ? len : end;
		line_col(buf, at, &line, &col);
		return fail_file(c, -EINVAL, file, NULL, "invalid JSON at line %zu, column %zu: %s", line, col,
				 what);
	}
	end += strspn(buf + end, " \t\r\n");
	if (end < len) {
		json_object_put(o);
		line_col(buf, end, &line, &col);
		return fail_file(c, -EINVAL, file, NULL,
				 "invalid JSON at line %zu, column %zu: text after the end of the object", line,
				 col);
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_type t = json_object_get_type(o);
		json_object_put(o);
		return fail_file(c, -EINVAL, file, NULL, "the top level must be a JSON object, not %s",
				 type_name(t));
	}
	*ret = o;
	return 0;
}

static int check_fields(struct problems *c, const char *file, const char *path, json_object *o,
			const struct field *fields, bool open);

static int check_value(struct problems *c, const char *file, const char *path, json_object *v, const struct field *f)
{
	if (f->refused)
		return 0; /* reported with its own message on the resolved profile (check_formats) */
	if (!json_object_is_type(v, f->type))
		return fail_file(c, -EINVAL, file, path, "expected %s, got %s", type_name(f->type),
				 type_name(json_object_get_type(v)));
	if (f->type == json_type_string && strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return fail_file(c, -EINVAL, file, path, "the string contains a NUL character");
	if (f->type == json_type_object)
		return check_fields(c, file, path, v, f->sub, f->open);
	if (f->type != json_type_array)
		return 0;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		_cleanup_free_ char *p = path_index(path, i);
		if (!p)
			return -ENOMEM;
		if (!json_object_is_type(e, f->elem))
			return fail_file(c, -EINVAL, file, p, "expected %s, got %s", type_name(f->elem),
					 type_name(json_object_get_type(e)));
		if (f->elem == json_type_string &&
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e))
			return fail_file(c, -EINVAL, file, p, "the string contains a NUL character");
		if (f->elem == json_type_object) {
			int r = check_fields(c, file, p, e, f->sub, false);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int check_fields(struct problems *c, const char *file, const char *path, json_object *o,
			const struct field *fields, bool open)
{
	json_object_object_foreach(o, key, val)
	{
		_cleanup_free_ char *p = path_key(path, key);
		if (!p)
			return -ENOMEM;
		const struct field *f = field_find(fields, key);
		if (!f) {
			if (open)
				continue;
			char known[256] = "";
			size_t len = 0;
			for (const struct field *k = fields; k->key; k++) {
				int n = snprintf(known + len, sizeof(known) - len, "%s%s", len ? ", " : "", k->key);
				if (n < 0 || (size_t)n >= sizeof(known) - len)
					break;
				len += (size_t)n;
			}
			return fail_file(c, -EINVAL, file, p, "unknown key (known keys: %s)", known);
		}
		int r = check_value(c, file, p, val, f);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Read, parse and schema-check one file; it becomes c->files[c->n]. */
static int load_file(struct problems *c, const char *display)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;
	/* Before opening: a FIFO would block the open. */
	if (stat(display, &st) == 0 && !S_ISREG(st.st_mode))
		return fail_file(c, -EINVAL, display, NULL, "not a regular file");
	int r = read_file(display, PROFILE_FILE_MAX, &buf, &len);
	if (r == -EFBIG)
		return fail_file(c, -EINVAL, display, NULL, "file is larger than 1 MiB");
	if (r == -EINVAL || r == -EISDIR)
		return fail_file(c, -EINVAL, display, NULL, "not a regular file");
	if (r == -ENOENT)
		return fail_file(c, r, display, NULL, "no such file");
	if (r < 0)
		return fail_file(c, r, display, NULL, "cannot read: %s", strerror(-r));

	struct pfile *f = &c->files[c->n];
	*f = (struct pfile){ 0 };
	c->n++; /* ctx_done() frees whatever is filled in */
	if (!(f->display = strdup(display)))
		return -ENOMEM;
	if (!(f->real = realpath(display, NULL)))
		return fail_file(c, -errno, display, NULL, "cannot resolve path: %s", strerror(errno));
	r = parse_json(c, display, buf, len, &f->json);
	if (r < 0)
		return r;
	return check_fields(c, display, "", f->json, profile_fields, false);
}

/* ---- stage 2: extends ---- */

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int load_chain(struct problems *c, const char *display)
{
	int r = load_file(c, display);
	if (r < 0)
		return r;
	for (;;) {
		struct pfile *child = &c->files[c->n - 1];
		json_object *ext = json_object_object_get(child->json, "extends");
		if (!ext)
			return 0;
		const char *parent = json_object_get_string(ext);
		if (!valid_name(parent, NAME_MAX_LEN))
			return fail_file(c, -EINVAL, child->display, ".extends",
					 "%s is not a profile name (letters, digits, '.', '_', '-')", Q(parent));
		if (c->n > PROFILE_MAX_EXTENDS)
			return fail_file(c, -EINVAL, child->display, ".extends",
					 "extends chain is deeper than %d profiles", PROFILE_MAX_EXTENDS);

		const char *suffix = strlen(parent) > 5 && STREQ(parent + strlen(parent) - 5, ".json") ? "" : ".json";
		const char *slash = strrchr(child->display, '/');
		int dirlen = slash ? (int)(slash - child->display + 1) : 0;
		_cleanup_free_ char *beside = NULL, *in_dir = NULL;
		if (asprintf(&beside, "%.*s%s%s", dirlen, child->display, parent, suffix) < 0)
			return -ENOMEM;
		if (asprintf(&in_dir, "%s/%s%s", profile_dir(), parent, suffix) < 0)
			return -ENOMEM;
		const char *found = file_exists(beside) ? beside : file_exists(in_dir) ? in_dir : NULL;
		if (!found)
			return fail_file(c, -EINVAL, child->display, ".extends",
					 "parent profile '%s' not found (looked for '%s' and '%s')", parent, beside,
					 in_dir);

		_cleanup_free_ char *real = realpath(found, NULL);
		if (!real)
			return fail_file(c, -errno, found, NULL, "cannot resolve path: %s", strerror(errno));
		for (size_t i = 0; i < c->n; i++) {
			if (!STREQ(c->files[i].real, real))
				continue;
			char chain[1024] = "";
			size_t len = 0;
			for (size_t k = 0; k <= c->n; k++) {
				const char *name = k < c->n ? c->files[k].display : found;
				int n = snprintf(chain + len, sizeof(chain) - len, "%s'%s'", k ? " -> " : "", name);
				if (n < 0 || (size_t)n >= sizeof(chain) - len)
					break;
				len += (size_t)n;
			}
			return fail_file(c, -EINVAL, child->display, ".extends", "extends cycle: %s", chain);
		}
		r = load_file(c, found);
		if (r < 0)
			return r;
	}
}

/* ---- stage 3: merge ---- */

/* The record of the array at PATH, made with its first N elements from FILE when missing (or
 * when RESET: the file replaced the array). */
static struct added *added_at(struct problems *c, const char *path, size_t n, size_t file, bool reset)
{
	struct added *a = NULL;
	for (size_t i = 0; i < c->n_added && !a; i++)
		if (STREQ(c->added[i].path, path))
			a = &c->added[i];
	if (!a) {
		if (c->n_added == ARRAY_SIZE(c->added))
			return NULL;
		a = &c->added[c->n_added];
		*a = (struct added){ .path = strdup(path) };
		if (!a->path)
			return NULL;
		c->n_added++;
		reset = true;
	}
	if (reset) {
		size_t *from = realloc(a->from, (n ? n : 1) * sizeof(size_t));
		if (!from)
			return NULL;
		for (size_t i = 0; i < n; i++)
			from[i] = file;
		a->from = from;
		a->n = n;
	}
	return a;
}

/* Is KEY an array that an "_add" key among FIELDS extends? */
static bool add_target(const struct field *fields, const char *key)
{
	for (const struct field *f = fields; f && f->key; f++)
		if (f->adds_to && STREQ(f->adds_to, key))
			return true;
	return false;
}

/* SRC's strings appended to DST[TO] (made when missing), each once, recorded as FILE's. */
static int add_strings(struct problems *c, size_t file, json_object *dst, const char *to, json_object *src,
		       const char *path)
{
	json_object *arr = json_object_object_get(dst, to);
	if (!json_object_is_type(arr, json_type_array)) {
		arr = json_object_new_array();
		if (!arr || json_object_object_add(dst, to, arr) < 0) {
			json_object_put(arr);
			return -ENOMEM;
		}
	}
	_cleanup_free_ char *p = path_key(path, to);
	struct added *a = p ? added_at(c, p, json_object_array_length(arr), file, false) : NULL;
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < json_object_array_length(src); i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(src, i));
		bool have = false;
		for (size_t k = 0; k < json_object_array_length(arr) && !have; k++)
			have = STREQ(s, json_object_get_string(json_object_array_get_idx(arr, k)));
		if (have)
			continue;
		size_t *from = realloc(a->from, (a->n + 1) * sizeof(size_t));
		if (!from)
			return -ENOMEM;
		a->from = from;
		if (json_object_array_add(arr, json_object_new_string(s)) < 0)
			return -ENOMEM;
		a->from[a->n++] = file;
	}
	return 0;
}

/* SRC (files[FILE]'s object at PATH, whose keys are FIELDS) into DST: objects merge, other
 * values replace, then "_add" arrays extend what DST has. */
static int merge_into(struct problems *c, size_t file, json_object *dst, json_object *src,
		      const struct field *fields, const char *path, bool top, bool keep_name)
{
	for (int adds = 0; adds < 2; adds++) {
		json_object_object_foreach(src, key, val)
		{
			if (top && (STREQ(key, "extends") || (!keep_name && STREQ(key, "name"))))
				continue;
			const struct field *f = fields ? field_find(fields, key) : NULL;
			if ((f && f->adds_to) != (adds == 1))
				continue;
			int r;
			if (adds) {
				if ((r = add_strings(c, file, dst, f->adds_to, val, path)) < 0)
					return r;
				continue;
			}
			_cleanup_free_ char *p = path_key(path, key);
			if (!p)
				return -ENOMEM;
			json_object *old = json_object_object_get(dst, key);
			if (json_object_is_type(old, json_type_object) && json_object_is_type(val, json_type_object)) {
				if ((r = merge_into(c, file, old, val, f ? f->sub : NULL, p, false, true)) < 0)
					return r;
				continue;
			}
			json_object *copy = NULL;
			if (json_object_deep_copy(val, &copy, NULL) < 0)
				return -ENOMEM;
			if (json_object_object_add(dst, key, copy) < 0) {
				json_object_put(copy);
				return -ENOMEM;
			}
			if (add_target(fields, key) && json_object_is_type(copy, json_type_array) &&
			    !added_at(c, p, json_object_array_length(copy), file, true))
				return -ENOMEM;
		}
	}
	return 0;
}

static int add_default(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_get_ex(o, key, NULL)) {
		json_object_put(v);
		return 0;
	}
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static json_object *child_object(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);
	if (v)
		return v;
	v = json_object_new_object();
	if (v && json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static const char *str_at(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);
	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int basename_noext(const char *path, char **ret)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strlen(b);
	if (n > 5 && STREQ(b + n - 5, ".json"))
		n -= 5;
	char *s = strndup(b, n);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

static int apply_defaults(struct problems *c, json_object *o)
{
	int r;
	if (!json_object_object_get_ex(o, "name", NULL)) {
		_cleanup_free_ char *name = NULL;
		r = basename_noext(c->files[0].display, &name);
		if (r < 0)
			return r;
		if ((r = add_default(o, "name", json_object_new_string(name))) < 0)
			return r;
	}
	if ((r = add_default(o, "arch", json_object_new_string("x86_64"))) < 0)
		return r;

	json_object *rootfs = child_object(o, "rootfs");
	if (!rootfs)
		return -ENOMEM;
	if ((r = add_default(rootfs, "source", json_object_new_string("mmdebstrap"))) < 0)
		return r;
	/* The source's own defaults (an unknown source is reported by validation). */
	const struct rootfs_source *src = rootfs_source_find(str_at(rootfs, "source"));
	if (src && src->defaults) {
		json_object *d = json_tokener_parse(src->defaults);
		if (!d)
			return -ENOMEM;
		json_object_object_foreach(d, key, val)
		{
			if ((r = add_default(rootfs, key, json_object_get(val))) < 0)
				break;
		}
		json_object_put(d);
		if (r < 0)
			return r;
	}

	/* "disk" is required: validation reports it missing. */
	json_object *disk = json_object_object_get(o, "disk");
	if (disk) {
		if ((r = add_default(disk, "table", json_object_new_string("gpt"))) < 0)
			return r;
		const char *size = str_at(disk, "size");
		if (size && STREQ(size, "auto") &&
		    (r = add_default(disk, "margin", json_object_new_string(PROFILE_AUTO_MARGIN))) < 0)
			return r;
		json_object *parts = json_object_object_get(disk, "partitions");
		size_t n = parts ? json_object_array_length(parts) : 0;
		for (size_t i = 0; i < n; i++) {
			json_object *part = json_object_array_get_idx(parts, i);
			const char *pname = str_at(part, "name");
			if ((r = add_default(part, "fs", json_object_new_string("none"))) < 0 ||
			    (pname && (r = add_default(part, "label", json_object_new_string(pname))) < 0) ||
			    (r = add_default(part, "bootable", json_object_new_boolean(false))) < 0)
				return r;
		}
	}

	json_object *boot = child_object(o, "boot");
	if (!boot)
		return -ENOMEM;
	json_object *outputs = json_object_new_array();
	if (outputs && json_object_array_add(outputs, json_object_new_string("raw")) < 0) {
		json_object_put(outputs);
		outputs = NULL;
	}
	if ((r = add_default(boot, "loader", json_object_new_string("systemd-boot"))) < 0 ||
	    (r = add_default(boot, "cmdline", json_object_new_string(""))) < 0 ||
	    (r = add_default(o, "overlays", json_object_new_array())) < 0 ||
	    (r = add_default(o, "outputs", outputs)) < 0)
		return r;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of V with object keys in schema order; keys outside the schema (open objects) follow,
 * sorted, so the text is the same however the files were written. Leaves are shared. */
static json_object *canonical(json_object *v, const struct field *fields, bool open)
{
	if (json_object_is_type(v, json_type_array)) {
		json_object *a = json_object_new_array();
		size_t n = json_object_array_length(v);
		for (size_t i = 0; a && i < n; i++) {
			json_object *e = canonical(json_object_array_get_idx(v, i), fields, open);
			if (!e || json_object_array_add(a, e) < 0) {
				json_object_put(e);
				json_object_put(a);
				return NULL;
			}
		}
		return a;
	}
	if (!json_object_is_type(v, json_type_object))
		return json_object_get(v);

	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	for (const struct field *f = fields; f && f->key; f++) {
		json_object *sub = json_object_object_get(v, f->key);
		if (!sub)
			continue;
		json_object *cs = canonical(sub, f->sub, f->open);
		if (!cs || json_object_object_add(o, f->key, cs) < 0) {
			json_object_put(cs);
			json_object_put(o);
			return NULL;
		}
	}
	if (!fields || open) {
		size_t n = 0, k = 0;
		json_object_object_foreach(v, key0, val0)
		{
			(void)key0;
			(void)val0;
			n++;
		}
		_cleanup_free_ const char **keys = calloc(n ? n : 1, sizeof(char *));
		if (!keys) {
			json_object_put(o);
			return NULL;
		}
		json_object_object_foreach(v, key, val)
		{
			(void)val;
			if (!fields || !field_find(fields, key))
				keys[k++] = key;
		}
		qsort(keys, k, sizeof(char *), key_cmp);
		for (size_t i = 0; i < k; i++) {
			json_object *cs = canonical(json_object_object_get(v, keys[i]), NULL, true);
			if (!cs || json_object_object_add(o, keys[i], cs) < 0) {
				json_object_put(cs);
				json_object_put(o);
				return NULL;
			}
		}
	}
	return o;
}

/* ---- stage 5: values ---- */

static int strv_from_array(json_object *a, const char ***ret)
{
	size_t n = a ? json_object_array_length(a) : 0;
	const char **v = calloc(n + 1, sizeof(char *));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = json_object_get_string(json_object_array_get_idx(a, i));
	*ret = v;
	return 0;
}

/* "SIZE" (a size by its format: check_formats) into bytes; PATH names it in messages. */
static int check_size(struct problems *c, const char *path, const char *s, uint64_t *ret)
{
	uint64_t v;
	if (parse_size(s, &v) < 0)
		return bad(c, path, "%s is too large", Q(s));
	if (v == 0)
		return bad(c, path, "%s: the size must be larger than 0", Q(s));
	if (!is_aligned(v, SECTOR))
		return bad(c, path, "%s is not a multiple of %u bytes", Q(s), SECTOR);
	*ret = v;
	return 0;
}

int check_str_list(struct problems *c, const char *path, json_object *a, size_t max, const char *what,
		   bool (*valid)(const char *), const char *rule)
{
	size_t n = json_object_array_length(a);
	if (n > max)
		return bad(c, path, "%zu %s, at most %zu are allowed", n, what, max);
	for (size_t i = 0; i < n; i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(a, i));
		char p[160];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (!valid(s))
			return bad(c, p, "%s is not %s", Q(s), rule);
		for (size_t k = 0; k < i; k++)
			if (STREQ(s, json_object_get_string(json_object_array_get_idx(a, k))))
				return bad(c, p, "%s is listed twice", Q(s));
	}
	return 0;
}

/* ---- stage 5: the structural rules of profile-schema.c, on the resolved profile ---- */

static int check_formats(struct problems *c, const char *path, json_object *o, const struct field *fields);

static int check_string(struct problems *c, const char *path, const char *s, const struct format *f)
{
	_cleanup_free_ char *msg = NULL;
	int r = f ? format_check(f, s, &msg) : 0;
	if (r == -EINVAL)
		return bad(c, path, "%s", msg);
	return r;
}

static int check_array(struct problems *c, const char *path, json_object *a, const struct field *f)
{
	size_t n = json_object_array_length(a);
	if (n < f->min_items)
		return bad(c, path, "empty: at least %zu needed", f->min_items);
	if (f->max_items && n > f->max_items)
		return bad(c, path, "%zu elements, at most %zu are allowed", n, f->max_items);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		_cleanup_free_ char *p = path_index(path, i);
		if (!p)
			return -ENOMEM;
		int r = f->elem == json_type_string ? check_string(c, p, json_object_get_string(e), f->format)
						    : f->elem == json_type_object ? check_formats(c, p, e, f->sub) : 0;
		if (r < 0)
			return r;
		for (size_t k = 0; f->unique && k < i; k++)
			if (json_object_equal(e, json_object_array_get_idx(a, k)))
				return bad(c, p, "%s is listed twice",
					   json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
	}
	return 0;
}

/* Every value of O (at PATH) by its field's rules, in the table's order; required keys. */
static int check_formats(struct problems *c, const char *path, json_object *o, const struct field *fields)
{
	for (const struct field *f = fields; f && f->key; f++) {
		json_object *v = json_object_object_get(o, f->key);
		_cleanup_free_ char *p = path_key(path, f->key);
		if (!p)
			return -ENOMEM;
		int r = 0;
		if (!v && f->required)
			return bad(c, path, "missing \"%s\"", f->key);
		if (!v)
			continue;
		if (f->refused)
			return bad(c, p, "%s", f->refused);
		if (f->type == json_type_string)
			r = check_string(c, p, json_object_get_string(v), f->format);
		else if (f->type == json_type_array)
			r = check_array(c, p, v, f);
		else if (f->type == json_type_object)
			r = check_formats(c, p, v, f->sub);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- stage 5: values the tables cannot judge, layout and cross checks ---- */

/* The top level's values, valid by their formats (check_formats). */
static void fill_top(json_object *o, struct profile *p)
{
	p->name = str_at(o, "name");
	p->description = str_at(o, "description");
	p->arch = arch_find(str_at(o, "arch"));
	json_object *boot = json_object_object_get(o, "boot");
	p->boot.loader = str_at(boot, "loader");
	p->boot.cmdline = str_at(boot, "cmdline");
	p->boot.json = boot;
}

static int check_rootfs(struct problems *c, json_object *o, struct profile *p)
{
	json_object *rootfs = json_object_object_get(o, "rootfs");
	p->rootfs.json = rootfs;
	p->rootfs.source = str_at(rootfs, "source");
	p->rootfs.suite = str_at(rootfs, "suite");
	p->rootfs.mirror = str_at(rootfs, "mirror");
	p->rootfs.variant = str_at(rootfs, "variant");
	p->rootfs.path = str_at(rootfs, "path");
	p->rootfs.url = str_at(rootfs, "url");
	p->rootfs.sha256 = str_at(rootfs, "sha256");
	int r;
	if ((r = strv_from_array(json_object_object_get(rootfs, "components"), &p->rootfs.components)) < 0 ||
	    (r = strv_from_array(json_object_object_get(rootfs, "packages"), &p->rootfs.packages)) < 0)
		return r;

	const struct rootfs_source *src = rootfs_source_find(p->rootfs.source);
	return src->check ? src->check(p, c) : 0;
}

/* The label by the rules of its filesystem's record (printable ASCII, at most 64 bytes:
 * check_formats). */
static int check_label(struct problems *c, const char *path, json_object *label_obj, const struct fs_type *fs)
{
	const char *label = json_object_get_string(label_obj);
	size_t n = strlen(label);
	if (!fs || !fs->label_max) /* no filesystem, or one without labels: nothing to store */
		return 0;
	if (n > fs->label_max)
		return bad(c, path, "%s is longer than %zu bytes, the %s limit", Q(label), fs->label_max, fs->name);
	char up[256];
	for (size_t i = 0; i <= n; i++) {
		char ch = label[i];
		up[i] = fs->label_upper && ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
		if (ch && fs->label_chars && !isalnum((unsigned char)ch) && !strchr(fs->label_chars, ch))
			return bad(c, path, "%s: a %s label is %s only", Q(label), fs->name, fs->label_rule);
	}
	/* Stored as it will be on disk, so part_spec.label is what the filesystem is given. */
	if (fs->label_upper && json_object_set_string(label_obj, up) == 0)
		return -ENOMEM;
	return 0;
}

struct part_raw {
	const char *size_text;
	const char *start_text;
	uint64_t size, start;
};

static int check_partition(struct problems *c, json_object *part, size_t i, struct profile *p, struct part_raw *raw)
{
	struct part_spec *s = &p->disk.parts[i];
	char base[64], path[96];
	int r;
	snprintf(base, sizeof(base), ".disk.partitions[%zu]", i);
#define AT(key) (snprintf(path, sizeof(path), "%s.%s", base, key), path)

	s->name = str_at(part, "name");
	for (size_t k = 0; k < i; k++)
		if (STREQ(p->disk.parts[k].name, s->name))
			return bad(c, AT("name"), "partition name '%s' is used twice (partitions %zu and %zu)", s->name,
				   k, i);

	s->type = str_at(part, "type");
	raw->size_text = str_at(part, "size");
	if (STREQ(raw->size_text, "fill"))
		s->fill = true;
	else if ((r = check_size(c, AT("size"), raw->size_text, &raw->size)) < 0)
		return r;

	raw->start_text = str_at(part, "start");
	if (raw->start_text) {
		r = parse_size(raw->start_text, &raw->start);
		if (r < 0)
			return bad(c, AT("start"), "%s is too large", Q(raw->start_text));
		if (!is_aligned(raw->start, ALIGN_BYTES))
			return bad(c, AT("start"), "%s is not a multiple of 1 MiB", Q(raw->start_text));
	}

	s->fs = str_at(part, "fs");
	const struct fs_type *fs = fs_find(s->fs); /* NULL: "none" */

	s->mount = str_at(part, "mount");
	if (s->mount) {
		for (size_t k = 0; k < i; k++)
			if (p->disk.parts[k].mount && STREQ(p->disk.parts[k].mount, s->mount))
				return bad(c, AT("mount"), "'%s' is mounted twice (partitions '%s' and '%s')", s->mount,
					   p->disk.parts[k].name, s->name);
		if (!fs)
			return bad(c, AT("mount"), "partition '%s' is mounted at '%s' but has no \"fs\"", s->name,
				   s->mount);
		if (STREQ(s->mount, "/") && !fs->root_options)
			return bad(c, AT("fs"), "%s cannot hold the root filesystem", Q(s->fs));
	}

	if ((r = check_label(c, AT("label"), json_object_object_get(part, "label"), fs)) < 0)
		return r;
	s->label = str_at(part, "label");
	s->bootable = json_object_get_boolean(json_object_object_get(part, "bootable"));
#undef AT
	return 0;
}

/* "size": "auto" sizes the "fill" partition from the files it holds: it needs one, with a
 * filesystem whose record can tell the size its files take (registry.h: auto_size). */
static int check_auto(struct problems *c, const struct profile *p)
{
	char path[96];
	for (size_t i = 0; i < p->disk.n_parts; i++) {
		const struct part_spec *s = &p->disk.parts[i];
		if (!s->fill)
			continue;
		const struct fs_type *fs = fs_find(s->fs);
		snprintf(path, sizeof(path), ".disk.partitions[%zu].fs", i);
		if (!fs)
			return bad(c, path, "\"size\": \"auto\" sizes the \"fill\" partition '%s' from its files, but it has no filesystem",
				   s->name);
		if (!fs->auto_size)
			return bad(c, path, "\"size\": \"auto\" sizes the \"fill\" partition '%s' from its files, but '%s' cannot be sized so",
				   s->name, fs->name);
		return 0;
	}
	return bad(c, ".disk.size", "\"auto\" needs a partition with \"size\": \"fill\" (the one sized from its files)");
}

static int check_disk(struct problems *c, json_object *o, struct profile *p)
{
	json_object *disk = json_object_object_get(o, "disk");
	if (!disk)
		return bad(c, ".disk", "missing (every profile needs a disk with its partitions)");

	p->disk.table = str_at(disk, "table");
	const struct table_type *t = table_find(p->disk.table);
	const char *size = str_at(disk, "size");
	if (!size)
		return bad(c, ".disk", "missing \"size\" (use 4G, for example)");
	int r;
	char buf[24];
	p->disk.auto_size = STREQ(size, "auto");
	if (!p->disk.auto_size) {
		if ((r = check_size(c, ".disk.size", size, &p->disk.size)) < 0)
			return r;
		if (p->disk.size < MIN_DISK_SIZE)
			return bad(c, ".disk.size", "%s is too small: a disk is at least 2M", Q(size));
		if (p->disk.size > t->max_disk_size) {
			format_size(t->max_disk_size, buf);
			return bad(c, ".disk.size", "%s is larger than a '%s' table allows (%s)", Q(size), t->name, buf);
		}
		if (p->disk.size <= t->head_reserved + t->tail_reserved + ALIGN_BYTES)
			return bad(c, ".disk.size", "%s leaves no room for partitions next to the '%s' table", Q(size),
				   t->name);
	}
	/* The margin is checked whatever the size: a profile may extend an auto-sized one and
	 * set a size of its own, and it cannot remove the margin it inherits. */
	const char *margin = str_at(disk, "margin");
	if (margin && parse_size(margin, &p->disk.margin) < 0)
		return bad(c, ".disk.margin", "%s is too large", Q(margin));
	if (p->disk.margin > t->max_disk_size) {
		format_size(t->max_disk_size, buf);
		return bad(c, ".disk.margin", "%s is larger than a '%s' table allows (%s)", Q(margin), t->name, buf);
	}

	json_object *parts = json_object_object_get(disk, "partitions");
	if (!parts)
		return bad(c, ".disk", "missing \"partitions\"");
	size_t n = json_object_array_length(parts);
	size_t max = t->max_parts < PROFILE_MAX_PARTS ? t->max_parts : PROFILE_MAX_PARTS;
	if (n > max)
		return bad(c, ".disk.partitions", "%zu partitions, but the '%s' table holds at most %zu", n,
			   t->name, max);

	struct part_raw raw[PROFILE_MAX_PARTS] = { 0 };
	for (size_t i = 0; i < n; i++)
		if ((r = check_partition(c, json_object_array_get_idx(parts, i), i, p, &raw[i])) < 0)
			return r;
	p->disk.n_parts = n;

	/* Layout: in array order, each after the previous one, aligned to 1 MiB. */
	char path[96];
	for (size_t i = 0, first_fill = SIZE_MAX; i < n; i++) {
		if (!p->disk.parts[i].fill)
			continue;
		if (first_fill != SIZE_MAX) {
			snprintf(path, sizeof(path), ".disk.partitions[%zu].size", i);
			return bad(c, path, "two \"fill\" partitions, '%s' and '%s': only one can take the rest of the disk",
				   p->disk.parts[first_fill].name, p->disk.parts[i].name);
		}
		first_fill = i;
	}
	/* "auto": the disk ends after the "fill" partition, which gets its size from its files in
	 * the build (plan.c); here the other partitions need only fit the table. */
	const uint64_t first = t->head_reserved,
		       limit = (p->disk.auto_size ? t->max_disk_size : p->disk.size) - t->tail_reserved;
	uint64_t prev_end = first;
	char a[24], b[24];
	for (size_t i = 0; i < n; i++) {
		struct part_spec *s = &p->disk.parts[i];
		if (raw[i].start_text) {
			snprintf(path, sizeof(path), ".disk.partitions[%zu].start", i);
			if (raw[i].start < first) {
				format_size_human(first, a);
				return bad(c, path, "partition '%s' starts before the first usable byte at %s (the '%s' table is there)",
					   s->name, a, t->name);
			}
			if (raw[i].start < prev_end) {
				format_size_human(prev_end, a);
				return bad(c, path, "partition '%s' overlaps partition '%s', which ends at %s", s->name,
					   p->disk.parts[i - 1].name, a);
			}
			s->start = raw[i].start;
		} else
			s->start = align_up(prev_end, ALIGN_BYTES);

		snprintf(path, sizeof(path), ".disk.partitions[%zu].size", i);
		format_size(p->disk.auto_size ? t->max_disk_size : p->disk.size, b);
		if (s->start >= limit) {
			format_size_human(s->start, a);
			return bad(c, path, "partition '%s' does not fit the disk: it starts at %s, past the end of the %s disk",
				   s->name, a, b);
		}
		if (s->fill) {
			if (i + 1 < n)
				return bad(c, path, "\"fill\" is only allowed for the last partition ('%s' is followed by '%s')",
					   s->name, p->disk.parts[i + 1].name);
			if (limit - s->start < ALIGN_BYTES) {
				format_size_human(limit - s->start, a);
				return bad(c, path, "\"fill\" leaves only %s for partition '%s' (at least 1 MiB is needed)",
					   a, s->name);
			}
			s->size = p->disk.auto_size ? 0 : limit - s->start; /* auto: the build's plan sizes it */
		} else {
			s->size = raw[i].size;
			if (s->size > limit - s->start) {
				format_size_human(s->size - (limit - s->start), a);
				return bad(c, path, "partition '%s' does not fit the %s disk: it is %s too large", s->name,
					   b, a);
			}
		}
		prev_end = s->start + s->size;
	}
	return p->disk.auto_size ? check_auto(c, p) : 0;
}

static int check_lists(struct problems *c, json_object *o, struct profile *p)
{
	json_object *overlays = json_object_object_get(o, "overlays");
	int r;
	size_t n = json_object_array_length(overlays);
	for (size_t i = 0; i < n; i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(overlays, i));
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", overlay_dir(), name) < 0)
			return -ENOMEM;
		struct stat st;
		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			char path[64];
			snprintf(path, sizeof(path), ".overlays[%zu]", i);
			return bad(c, path, "overlay '%s' not found (no directory '%s')", name, dir);
		}
	}

	json_object *outputs = json_object_object_get(o, "outputs");
	if ((r = strv_from_array(overlays, &p->overlays)) < 0 || (r = strv_from_array(outputs, &p->outputs)) < 0)
		return r;

	p->firstboot = json_object_object_get(o, "firstboot");
	const char *hostname = str_at(p->firstboot, "hostname");
	p->hostname = hostname ? hostname : p->name;
	return 0;
}

/* The profile's "artifacts" go to the machine as firstboot.artifacts (so pmoves-firstboot
 * validates and installs them); "bake": true ones are also downloaded by the build
 * (builder/artifacts.c). Given in one place only. */
static int check_artifacts(struct problems *c, json_object *o, struct profile *p)
{
	json_object *arts = json_object_object_get(o, "artifacts");
	if (!arts)
		return 0;
	if (json_object_array_length(arts) > 256)
		return bad(c, ".artifacts", "more than 256 artifacts");
	if (!p->firstboot) {
		json_object *fb = json_object_new_object();
		if (!fb || json_object_object_add(o, "firstboot", fb) < 0) {
			json_object_put(fb);
			return -ENOMEM;
		}
		p->firstboot = fb;
	}
	if (json_object_object_add(p->firstboot, "artifacts", json_object_get(arts)) < 0) {
		json_object_put(arts);
		return -ENOMEM;
	}
	return 0;
}

/* "sandbox_guest": a profile (beside the file that names it, then in profile_dir()) for the
 * same architecture, with output "microvm" and no guest of its own; sandbox-bake.c builds it.
 * Loaded here, so that validate, show and build refuse a wrong one before anything is built. */
static int guest_depth; /* loading a guest: its own "sandbox_guest" is refused, not followed */

static int check_guest(struct problems *c, struct profile *p)
{
	const char *name = str_at(p->json, "sandbox_guest");
	if (!name)
		return 0;
	if (guest_depth > 0)
		return bad(c, ".sandbox_guest", "a sandbox guest has no \"sandbox_guest\" of its own");
	const char *from = origin(c, ".sandbox_guest"), *slash = strrchr(from, '/');
	_cleanup_free_ char *beside = NULL, *in_dir = NULL, *err = NULL;
	if (asprintf(&beside, "%.*s%s.json", slash ? (int)(slash - from + 1) : 0, from, name) < 0 ||
	    asprintf(&in_dir, "%s/%s.json", profile_dir(), name) < 0)
		return -ENOMEM;
	const char *found = file_exists(beside) ? beside : file_exists(in_dir) ? in_dir : NULL;
	if (!found)
		return bad(c, ".sandbox_guest", "profile '%s' not found (looked for '%s' and '%s')", name, beside, in_dir);
	struct profile *g = NULL;
	guest_depth++;
	int r = profile_load(found, &g, &err);
	guest_depth--;
	if (r < 0)
		return r == -ENOMEM ? r : bad(c, ".sandbox_guest", "profile '%s': %s", name, err ? err : strerror(-r));
	const char *why = g->arch != p->arch ? "is for another architecture"
			  : !strv_contains((char **)g->outputs, "microvm") ? "has no output \"microvm\""
									   : NULL;
	profile_free(g);
	if (why)
		return bad(c, ".sandbox_guest", "profile '%s' (%s) %s: a sandbox guest is a microvm for %s", name, found, why,
			    p->arch->name);
	if (!(p->guest_path = strdup(found)))
		return -ENOMEM;
	return 0;
}

/* A partition the boot loader needs: of its type, with its filesystem, mounted. */
static int check_boot_part(struct problems *c, const struct profile *p, const struct boot_loader *l,
			   const struct boot_part *need)
{
	char path[64];
	for (size_t i = 0; i < p->disk.n_parts; i++) {
		const struct part_spec *s = &p->disk.parts[i];
		if (!STREQ(s->type, need->type))
			continue;
		if (!STREQ(s->fs, need->fs)) {
			snprintf(path, sizeof(path), ".disk.partitions[%zu].fs", i);
			return bad(c, path, "boot loader '%s' needs the \"%s\" partition '%s' to have fs \"%s\"", l->name,
				   need->type, s->name, need->fs);
		}
		if (!s->mount) {
			snprintf(path, sizeof(path), ".disk.partitions[%zu]", i);
			return bad(c, path, "boot loader '%s' needs the \"%s\" partition '%s' mounted (give it a \"mount\", e.g. %s)",
				   l->name, need->type, s->name, need->mount_hint);
		}
		return 0;
	}
	return bad(c, ".disk.partitions", "boot loader '%s' needs a partition of type \"%s\" with fs \"%s\"", l->name,
		   need->type, need->fs);
}

/* Rules across sections: the records' own (the boot loader's, the outputs'). */
static int check_cross(struct problems *c, struct profile *p)
{
	if (!profile_part_by_mount(p, "/"))
		return bad(c, ".disk.partitions", "no partition is mounted at \"/\"");

	const struct boot_loader *l = boot_find(p->boot.loader);
	if (!(l->archs & arch_bit(p->arch)))
		return bad(c, ".boot.loader", "'%s' cannot boot %s", l->name, p->arch->name);
	if (json_object_object_get_ex(p->boot.json, "config", NULL) && !l->config_file)
		return bad(c, ".boot.config", "boot loader '%s' takes no lines for a config file of its own", l->name);
	if (json_object_object_get_ex(p->boot.json, "fdt", NULL) && !l->fdt)
		return bad(c, ".boot.fdt", "boot loader '%s' takes no device tree (\"fdt\")", l->name);
	if (l->table && !STREQ(l->table, p->disk.table))
		return bad(c, ".disk.table", "boot loader '%s' needs a '%s' partition table, not '%s'", l->name,
			   l->table, p->disk.table);
	int r;
	for (const struct boot_part *need = l->needs; need && need->type; need++)
		if ((r = check_boot_part(c, p, l, need)) < 0)
			return r;
	if (l->check && (r = l->check(p, c)) < 0)
		return r;
	for (size_t i = 0; p->outputs[i]; i++) {
		const struct output_type *o = output_find(p->outputs[i]);
		if (o->check && (r = o->check(p, c)) < 0)
			return r;
	}
	return 0;
}

/* ---- the API ---- */

void profile_free(struct profile *p)
{
	if (!p)
		return;
	json_object_put(p->json);
	free(p->path);
	free(p->guest_path);
	free(p->rootfs.components);
	free(p->rootfs.packages);
	free(p->overlays);
	free(p->outputs);
	free(p);
}

static void profile_freep(struct profile **p)
{
	profile_free(*p);
}

static int resolve(struct problems *c, const char *display, struct profile *p)
{
	int r = load_chain(c, display);
	if (r < 0)
		return r;

	json_object *merged = json_object_new_object();
	if (!merged)
		return -ENOMEM;
	c->resolved = merged;
	for (size_t i = c->n; i-- > 0;)
		if ((r = merge_into(c, i, merged, c->files[i].json, profile_fields, "", true, i == 0)) < 0)
			return r;
	if ((r = apply_defaults(c, merged)) < 0)
		return r;
	p->json = canonical(merged, profile_fields, false);
	if (!p->json)
		return -ENOMEM;

	if ((r = check_formats(c, "", p->json, profile_fields)) < 0)
		return r;
	fill_top(p->json, p);
	if ((r = check_rootfs(c, p->json, p)) < 0 || (r = check_disk(c, p->json, p)) < 0 ||
	    (r = check_lists(c, p->json, p)) < 0 || (r = check_artifacts(c, p->json, p)) < 0 ||
	    (r = check_cross(c, p)) < 0 || (r = check_guest(c, p)) < 0)
		return r;
	return 0;
}

int profile_load(const char *name_or_path, struct profile **ret, char **ret_error)
{
	struct problems c = { .n = 0 };
	_cleanup_(profile_freep) struct profile *p = NULL;
	_cleanup_free_ char *display = NULL;
	int r;

	size_t len = strlen(name_or_path);
	if (strchr(name_or_path, '/') || (len >= 5 && STREQ(name_or_path + len - 5, ".json"))) {
		display = strdup(name_or_path);
		if (!display)
			return -ENOMEM;
	} else if (!valid_name(name_or_path, NAME_MAX_LEN)) {
		r = fail_file(&c, -EINVAL, name_or_path, NULL,
			      "not a profile name (letters, digits, '.', '_', '-'; or give a path to a .json file)");
		goto out;
	} else if (asprintf(&display, "%s/%s.json", profile_dir(), name_or_path) < 0)
		return -ENOMEM;

	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	r = resolve(&c, display, p);
	if (r < 0)
		goto out;
	p->path = TAKE_PTR(display);
	*ret = TAKE_PTR(p);
	r = 0;
out:
	if (r < 0 && ret_error) {
		if (!c.error && r == -ENOMEM)
			c.error = strdup("out of memory");
		*ret_error = TAKE_PTR(c.error);
	}
	ctx_done(&c);
	return r;
}

const struct part_spec *profile_part_by_mount(const struct profile *p, const char *mount)
{
	for (size_t i = 0; i < p->disk.n_parts; i++)
		if (p->disk.parts[i].mount && STREQ(p->disk.parts[i].mount, mount))
			return &p->disk.parts[i];
	return NULL;
}

const struct part_spec *profile_part_by_type(const struct profile *p, const char *type)
{
	for (size_t i = 0; i < p->disk.n_parts; i++)
		if (STREQ(p->disk.parts[i].type, type))
			return &p->disk.parts[i];
	return NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int profile_list(char ***ret_names)
{
	_cleanup_strv_ char **names = NULL;
	DIR *d = opendir(profile_dir());
	if (!d)
		return -errno;
	struct dirent *de;
	int r = 0;
	errno = 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] == '.' || n <= 5 || !STREQ(de->d_name + n - 5, ".json"))
			continue;
		_cleanup_free_ char *name = strndup(de->d_name, n - 5);
		if (!name || strv_push(&names, name) < 0) {
			r = -ENOMEM;
			break;
		}
		errno = 0;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0)
		return r;
	if (!names && !(names = calloc(1, sizeof(char *))))
		return -ENOMEM;
	qsort(names, strv_length(names), sizeof(char *), name_cmp);
	*ret_names = TAKE_PTR(names);
	return 0;
}
