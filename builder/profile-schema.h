/* The profile schema: keys, types and the structural rules of values, as tables. The C
 * validator (profile.c) checks profiles against them, and `pmoves-image schema` writes them as a
 * JSON Schema: one source for both. What a JSON Schema cannot say (sizes that must fit, "fill"
 * only last, extends cycles, rules across fields or of one rootfs source or filesystem) is
 * profile.c's and the records' alone; docs/profiles.md lists it. */
#ifndef PMOVES_PROFILE_SCHEMA_H
#define PMOVES_PROFILE_SCHEMA_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* What a string may be. A pattern is anchored and written in the common part of POSIX extended
 * regular expressions (regcomp, C locale) and ECMA-262 (JSON Schema): no \d, \s or lookaround;
 * a backslash in a bracket is written twice. */
struct format {
	const char *name;       /* its "$defs" entry in the JSON Schema */
	const char *pattern;    /* NULL: any string */
	const char *rule;       /* after "... is not ": what the pattern means, for people */
	size_t max_chars;       /* characters (code points); 0: no limit */
	/* An enumeration: the I-th allowed value, NULL past the last; ALSO one more. Unknown
	 * values are reported "unknown WHAT \"x\" (known: ...)". */
	const char *(*enum_at)(size_t i);
	const char *also;
	const char *what;
};

struct field {
	const char *key;
	json_type type;
	const struct field *sub;     /* object: its fields; array of objects: the elements' fields */
	json_type elem;              /* array: type of the elements */
	bool open;                   /* object: keys not listed are passed through unchecked */
	const char *adds_to;         /* array: its elements are added to this sibling array after
				      * what the file inherits (profile.c); it is not in the result */
	const struct format *format; /* a string, or each string of an array */
	bool required;               /* in its object, in every file (partitions replace whole) */
	size_t min_items, max_items; /* arrays; max 0: no limit */
	bool unique;                 /* arrays: no value twice */
	const char *refused;         /* the key may not be here: the message (the schema: false) */
};

/* The I-th format, NULL past the last (the tests check every one against the JSON Schema). */
const struct format *profile_format_at(size_t i);

/* The top level of a profile file. */
extern const struct field profile_fields[];
const struct field *field_find(const struct field *fields, const char *key);

/* S against F: 0 when it conforms; -EINVAL and in *ret_msg what is wrong, without the path
 * (malloc'd); -ENOMEM. */
int format_check(const struct format *f, const char *s, char **ret_msg);

/* The profile schema as a JSON Schema (draft 2020-12): every file of a profile, on its own.
 * FIRSTBOOT, pmoves-firstboot's config schema (taken), is embedded under $defs and checks the
 * "firstboot" section of a file that extends none (a part of a profile may hold half a
 * section, completed by the files it extends). NULL on out of memory. */
json_object *profile_json_schema(json_object *firstboot);

#endif
