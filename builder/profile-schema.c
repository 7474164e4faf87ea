/* The profile schema as tables (profile-schema.h), checked by profile.c and written as a JSON
 * Schema by `pmoves-image schema`. */
#include "profile-schema.h"
#include "profile.h"
#include "registry.h"
#include "util.h"

#include <regex.h>

#define SIZE_UNITS "(B|K|KiB|M|MiB|G|GiB|T|TiB)?"
/* One path component of a mount point: not empty, not "." or "..", no '/', '\', space or
 * control character. */
#define COMP_CHAR "[^/\\\\\x01-\x20\x7f]"
#define COMP_FIRST "[^/\\\\.\x01-\x20\x7f]"
#define HOST_LABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

enum {
	FMT_NAME,
	FMT_DESCRIPTION,
	FMT_ARCH,
	FMT_SOURCE,
	FMT_TABLE,
	FMT_SIZE,
	FMT_SIZE_FILL,
	FMT_SIZE_AUTO,
	FMT_PART_NAME,
	FMT_PART_TYPE,
	FMT_FS,
	FMT_MOUNT,
	FMT_LABEL,
	FMT_LOADER,
	FMT_CMDLINE,
	FMT_OUTPUT,
	FMT_HOSTNAME,
	FMT_INITRAMFS_CATEGORY,
	FMT_KMOD,
	FMT_COUNT,
};

static const struct format formats[FMT_COUNT] = {
	[FMT_NAME] = { "name", "^[A-Za-z0-9_][A-Za-z0-9._-]*$",
		       "a name (letters, digits, '.', '_', '-'; not starting with '.' or '-')", 64, NULL, NULL, NULL },
	[FMT_DESCRIPTION] = { "description", "^[^\x01-\x1f\x7f]*$", "one line of text (no control characters)", 200,
			      NULL, NULL, NULL },
	[FMT_ARCH] = { "arch", NULL, NULL, 0, arch_at, NULL, "architecture" },
	[FMT_SOURCE] = { "rootfs_source", NULL, NULL, 0, rootfs_source_at, NULL, "rootfs source" },
	[FMT_TABLE] = { "table", NULL, NULL, 0, table_at, NULL, "partition table" },
	[FMT_SIZE] = { "size", "^[0-9]+" SIZE_UNITS "$", "a size (use 1M, 512M, 4G)", 0, NULL, NULL, NULL },
	[FMT_SIZE_FILL] = { "size_or_fill", "^([0-9]+" SIZE_UNITS "|fill)$", "a size (use 512M, 4G, or \"fill\")", 0,
			    NULL, NULL, NULL },
	[FMT_SIZE_AUTO] = { "size_or_auto", "^([0-9]+" SIZE_UNITS "|auto)$", "a size (use 2G, 4G, or \"auto\")", 0,
			    NULL, NULL, NULL },
	[FMT_PART_NAME] = { "partition_name", "^[A-Za-z0-9_-]+$",
			    "a partition name (letters, digits, '_', '-'; 1 to 36 characters)",
			    36, NULL, NULL, NULL },
	[FMT_PART_TYPE] = { "partition_type", NULL, NULL, 0, part_type_at, NULL, "partition type" },
	[FMT_FS] = { "filesystem", NULL, NULL, 0, fs_at, "none", "filesystem" },
	[FMT_MOUNT] = { "mount_point",
			"^(/|(/(" COMP_FIRST COMP_CHAR "*|\\." "[^/\\\\.\x01-\x20\x7f]" COMP_CHAR "*|\\.\\." COMP_CHAR "+))+)$",
			"a mount point (an absolute path without empty, '.' or '..' components, a trailing '/', "
			"spaces, control characters or '\\')",
			255, NULL, NULL, NULL },
	[FMT_LABEL] = { "label", "^[ -~]+$", "a label (printable ASCII, not empty)", 64, NULL, NULL, NULL },
	[FMT_LOADER] = { "boot_loader", NULL, NULL, 0, boot_at, NULL, "boot loader" },
	[FMT_CMDLINE] = { "cmdline", "^[^\x01-\x1f\x7f]*$", "one line (no newline or control characters)", 4096, NULL,
			  NULL, NULL },
	[FMT_OUTPUT] = { "output", NULL, NULL, 0, output_at, NULL, "output" },
	/* 64: the kernel's limit, and pmoves-firstboot's */
	[FMT_HOSTNAME] = { "hostname", "^" HOST_LABEL "(\\." HOST_LABEL ")*$",
			   "a hostname (labels of letters, digits and '-', at most 63 each, 64 in all)", 64, NULL, NULL,
			   NULL },
	[FMT_INITRAMFS_CATEGORY] = { "initramfs_category", NULL, NULL, 0, initramfs_category_at, NULL,
				     "initramfs-tools module category" },
	/* 55: the kernel's MODULE_NAME_LEN less its NUL */
	[FMT_KMOD] = { "kernel_module", "^[A-Za-z0-9_-]+$", "a kernel module name (letters, digits, '_', '-')", 55, NULL,
		       NULL, NULL },
};

#define F(k, t, ...) { .key = k, .type = t, __VA_ARGS__ }
#define F_STR(k, fmt, ...) F(k, json_type_string, .format = (fmt), __VA_ARGS__)
#define F_STRV(k, fmt, ...) F(k, json_type_array, .elem = json_type_string, .format = (fmt), __VA_ARGS__)
#define F_END { .key = NULL }

static const struct field part_fields[] = {
	F_STR("name", &formats[FMT_PART_NAME], .required = true),
	F_STR("type", &formats[FMT_PART_TYPE], .required = true),
	F_STR("size", &formats[FMT_SIZE_FILL], .required = true),
	F_STR("start", &formats[FMT_SIZE]),
	F_STR("fs", &formats[FMT_FS]),
	F_STR("mount", &formats[FMT_MOUNT]),
	F_STR("label", &formats[FMT_LABEL]),
	F("bootable", json_type_boolean),
	F_END,
};

/* mmdebstrap's rootfs.apt_sources[] (apt-sources.c checks the values). */
static const struct field apt_source_fields[] = {
	F_STR("name", NULL, .required = true),
	F_STR("url", NULL, .required = true),
	F_STR("suite", NULL, .required = true),
	F_STRV("components", NULL, .required = true, .min_items = 1, .max_items = 32),
	F_STR("key", NULL, .required = true),
	F_STR("fingerprint", NULL, .required = true),
	F_STR("release_sha256", NULL, .required = true),
	F_END,
};

/* mmdebstrap's rootfs.npm[] (npm-trees.c checks the values). */
static const struct field npm_fields[] = {
	F_STR("name", NULL, .required = true),
	F_STR("prefix", NULL, .required = true),
	F_STRV("build_from_source", NULL, .unique = true),
	F_END,
};

/* The keys of every rootfs source: each source's record checks its own (registry.h). */
static const struct field rootfs_fields[] = {
	F_STR("source", &formats[FMT_SOURCE]),
	F_STR("suite", NULL),
	F_STR("mirror", NULL),
	F_STR("variant", NULL),
	F_STRV("components", NULL),
	F_STRV("packages", NULL),
	F_STRV("packages_add", NULL, .adds_to = "packages"),
	F_STRV("initramfs_modules", &formats[FMT_KMOD], .min_items = 1, .max_items = 512, .unique = true),
	F_STRV("initramfs_categories", &formats[FMT_INITRAMFS_CATEGORY], .min_items = 1, .unique = true),
	F_STR("path", NULL),
	F_STR("url", NULL),
	F_STR("sha256", NULL),
	F("apt_sources", json_type_array, .elem = json_type_object, .sub = apt_source_fields, .max_items = 8),
	F("npm", json_type_array, .elem = json_type_object, .sub = npm_fields, .max_items = 8),
	F_END,
};

static const struct field disk_fields[] = {
	F_STR("table", &formats[FMT_TABLE]),
	F_STR("size", &formats[FMT_SIZE_AUTO]),
	F_STR("margin", &formats[FMT_SIZE]),
	F("partitions", json_type_array, .elem = json_type_object, .sub = part_fields, .min_items = 1,
	  .max_items = PROFILE_MAX_PARTS),
	F_END,
};

static const struct field boot_fields[] = {
	F_STR("loader", &formats[FMT_LOADER]),
	F_STR("cmdline", &formats[FMT_CMDLINE]),
	F_STRV("config", NULL, .max_items = 64),
	F_STR("fdt", NULL),
	F_END,
};

/* "hostname" is the builder's too (/etc/hostname in the image); pmoves-firstboot's own schema
 * checks the whole section (firstboot_validate). */
static const struct field firstboot_fields[] = {
	F_STR("hostname", &formats[FMT_HOSTNAME]),
	F("artifacts", json_type_null,
	  .refused = "artifacts are listed at the top level of a profile (\"artifacts\"), not in \"firstboot\""),
	F_END,
};

/* Checked in full by pmoves-firstboot's schema once copied into "firstboot" (profile.c's
 * check_artifacts); "bake" is the builder's. */
static const struct field artifact_fields[] = {
	F_STR("name", NULL),
	F_STR("url", NULL),
	F_STR("sha256", NULL),
	F_STR("kind", NULL),
	F_STR("target", NULL),
	F_STR("mode", NULL),
	F_STRV("run", NULL),
	F("timeout", json_type_int),
	F("attempts", json_type_int),
	F("bake", json_type_boolean),
	F_STR("version", NULL),
	F_STR("note", NULL),
	F_END,
};

const struct field profile_fields[] = {
	F_STR("name", &formats[FMT_NAME]),
	F_STR("extends", &formats[FMT_NAME]),
	F_STR("description", &formats[FMT_DESCRIPTION]),
	F_STR("arch", &formats[FMT_ARCH]),
	F("rootfs", json_type_object, .sub = rootfs_fields),
	F("disk", json_type_object, .sub = disk_fields),
	F("boot", json_type_object, .sub = boot_fields),
	F_STRV("overlays", &formats[FMT_NAME], .max_items = 64, .unique = true),
	F_STRV("overlays_add", &formats[FMT_NAME], .adds_to = "overlays"),
	F_STRV("outputs", &formats[FMT_OUTPUT], .min_items = 1, .max_items = 32, .unique = true),
	F("firstboot", json_type_object, .sub = firstboot_fields, .open = true),
	F("artifacts", json_type_array, .elem = json_type_object, .sub = artifact_fields, .max_items = 256),
	/* A local Ollama store to bake firstboot.ollama's models from (ollama-bake.c). */
	F_STR("ollama_store", NULL),
	/* Pinokio launchers to bake: names under pinokio/, or paths (pinokio-apps.c). */
	F_STRV("pinokio_apps", NULL, .max_items = 32, .unique = true),
	/* A profile with output "microvm" baked in for pmoves-sandbox (sandbox-bake.c). */
	F_STR("sandbox_guest", &formats[FMT_NAME]),
	F_END,
};

const struct format *profile_format_at(size_t i)
{
	return i < FMT_COUNT ? &formats[i] : NULL;
}

const struct field *field_find(const struct field *fields, const char *key)
{
	for (const struct field *f = fields; f && f->key; f++)
		if (STREQ(f->key, key))
			return f;
	return NULL;
}

/* ---- checking ---- */

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Each pattern compiled once, when first used. */
static int pattern_match(const struct format *f, const char *s)
{
	static regex_t compiled[FMT_COUNT];
	static bool ready[FMT_COUNT];
	size_t i = (size_t)(f - formats);
	if (i >= FMT_COUNT)
		return -EINVAL;
	if (!ready[i]) {
		if (regcomp(&compiled[i], f->pattern, REG_EXTENDED | REG_NOSUB) != 0)
			return -EINVAL; /* a bug in the table above: test-profile compiles every one */
		ready[i] = true;
	}
	return regexec(&compiled[i], s, 0, NULL, 0) == 0;
}

int format_check(const struct format *f, const char *s, char **ret_msg)
{
	int r = 0;
	if (f->enum_at) {
		bool known = f->also && STREQ(s, f->also);
		for (size_t i = 0; !known && f->enum_at(i); i++)
			known = STREQ(s, f->enum_at(i));
		if (known)
			return 0;
		char list[512] = "";
		for (size_t i = 0; f->enum_at(i); i++)
			names_add(list, sizeof(list), f->enum_at(i), true);
		r = asprintf(ret_msg, "unknown %s %s (known: %s%s%s%s)", f->what, Q(s), list, f->also ? ", or \"" : "",
			     f->also ? f->also : "", f->also ? "\"" : "");
	} else if (f->max_chars && utf8_chars(s) > f->max_chars) {
		r = asprintf(ret_msg, "too long: %zu characters, at most %zu", utf8_chars(s), f->max_chars);
	} else if (f->pattern) {
		int m = pattern_match(f, s);
		if (m < 0)
			return m;
		if (m)
			return 0;
		r = asprintf(ret_msg, "%s is not %s", Q(s), f->rule);
	} else
		return 0;
	return r < 0 ? -ENOMEM : -EINVAL;
}

/* ---- the JSON Schema ---- */

#define SCHEMA_BASE "https://pmoves.invalid/schema/"

static json_object *str(const char *s) { return json_object_new_string(s); }

/* JSON Schema's "type" for a json-c type. */
static const char *type_of(json_type t)
{
	switch (t) {
	case json_type_string:
		return "string";
	case json_type_boolean:
		return "boolean";
	case json_type_int:
		return "integer";
	case json_type_double:
		return "number";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_null:
		break;
	}
	return "null";
}

/* A string: no NUL character (refused by the validator in every string), and the format. A
 * format's pattern also says "no newline" on its own: its '$' is the end of the string in
 * ECMA-262 and POSIX, but Python's re (the jsonschema package) lets it match before a final
 * newline. */
static json_object *format_schema(const struct format *f)
{
	json_object *o = json_object_new_object(), *not = json_object_new_object();
	json_object_object_add(o, "type", str("string"));
	json_object_object_add(not, "pattern", f && f->pattern ? json_object_new_string_len("[\0\n]", 4)
							       : json_object_new_string_len("\0", 1));
	json_object_object_add(o, "not", not);
	if (!f)
		return o;
	if (f->pattern)
		json_object_object_add(o, "pattern", str(f->pattern));
	if (f->max_chars)
		json_object_object_add(o, "maxLength", json_object_new_int64((int64_t)f->max_chars));
	if (f->enum_at) {
		json_object *e = json_object_new_array();
		for (size_t i = 0; f->enum_at(i); i++)
			json_object_array_add(e, str(f->enum_at(i)));
		if (f->also)
			json_object_array_add(e, str(f->also));
		json_object_object_add(o, "enum", e);
	}
	return o;
}

static json_object *value_schema(json_type type, const struct field *sub, bool open, const struct format *fmt);

static json_object *ref_or_string(const struct format *f)
{
	if (!f)
		return format_schema(NULL);
	char ref[96];
	snprintf(ref, sizeof(ref), "#/$defs/%s", f->name);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "$ref", str(ref));
	return o;
}

static json_object *field_schema(const struct field *f)
{
	if (f->refused)
		return json_object_new_boolean(false);
	if (f->type == json_type_string)
		return ref_or_string(f->format);
	if (f->type != json_type_array)
		return value_schema(f->type, f->sub, f->open, NULL);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", str("array"));
	json_object_object_add(o, "items", f->elem == json_type_string ? ref_or_string(f->format)
								       : value_schema(f->elem, f->sub, false, NULL));
	if (f->min_items)
		json_object_object_add(o, "minItems", json_object_new_int64((int64_t)f->min_items));
	if (f->max_items)
		json_object_object_add(o, "maxItems", json_object_new_int64((int64_t)f->max_items));
	if (f->unique)
		json_object_object_add(o, "uniqueItems", json_object_new_boolean(true));
	return o;
}

static json_object *value_schema(json_type type, const struct field *sub, bool open, const struct format *fmt)
{
	if (type == json_type_string)
		return format_schema(fmt);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", str(type_of(type)));
	if (type != json_type_object)
		return o;
	json_object *props = json_object_new_object(), *req = json_object_new_array();
	for (const struct field *f = sub; f && f->key; f++) {
		json_object_object_add(props, f->key, field_schema(f));
		if (f->required)
			json_object_array_add(req, str(f->key));
	}
	json_object_object_add(o, "properties", props);
	if (json_object_array_length(req))
		json_object_object_add(o, "required", req);
	else
		json_object_put(req);
	json_object_object_add(o, "additionalProperties", json_object_new_boolean(open));
	return o;
}

json_object *profile_json_schema(json_object *firstboot)
{
	json_object *s = value_schema(json_type_object, profile_fields, false, NULL);
	json_object *top = json_object_new_object(), *defs = json_object_new_object();
	json_object_object_add(top, "$schema", str("https://json-schema.org/draft/2020-12/schema"));
	json_object_object_add(top, "$id", str(SCHEMA_BASE "profile.schema.json"));
	json_object_object_add(top, "title", str("pmoves-image profile (one file; \"extends\" merges files)"));
	json_object_object_foreach(s, key, val)
	{
		json_object_object_add(top, key, json_object_get(val));
	}
	json_object_put(s);
	/* A file that extends none is the whole profile: it has the disk and its partitions, and
	 * its "firstboot" is a whole config. The embedded schema keeps its own $id, so its
	 * "#/$defs/..." references resolve inside it. */
	json_object *cond = json_tokener_parse("{ \"if\": { \"not\": { \"required\": [ \"extends\" ] } },"
					       "  \"then\": { \"required\": [ \"disk\" ], \"properties\": { \"disk\":"
					       "    { \"required\": [ \"size\", \"partitions\" ] } } } }");
	if (firstboot) {
		json_object *then = json_object_object_get(cond, "then");
		json_object *props = json_object_object_get(then, "properties"), *ref = json_object_new_object();
		json_object_object_add(ref, "$ref", str("#/$defs/firstboot_config"));
		json_object_object_add(props, "firstboot", ref);
		json_object_object_del(firstboot, "$schema");
		json_object_object_add(defs, "firstboot_config", firstboot);
	}
	json_object_object_foreach(cond, ckey, cval)
	{
		json_object_object_add(top, ckey, json_object_get(cval));
	}
	json_object_put(cond);
	for (size_t i = 0; i < FMT_COUNT; i++)
		json_object_object_add(defs, formats[i].name, format_schema(&formats[i]));
	json_object_object_add(top, "$defs", defs);
	return top;
}
