/* The first-boot config: sources, merge, strict schema, secrets.
 *
 * Sources, later wins: /etc/pmoves/firstboot.json; pmoves/device.json on the boot partition
 * (/boot/efi, else /boot/firmware); QEMU fw_cfg opt/ai.pmoves/device.json; pmoves.config=URL on
 * the kernel command line. Objects merge recursively; arrays of named elements (users by
 * "name", files by "path", mesh interfaces by "name" or "mac", artifacts by "name": fields
 * marked FB_ID) merge element by element, a new name appended; other arrays and scalars
 * replace. Each source is checked alone for what a part of a config can be checked for (types,
 * formats, limits, unknown keys: messages name the source), then the merged result as a whole
 * (required keys, rules across keys and elements; messages name the sources merged). */
#ifndef PMOVES_FB_CONFIG_H
#define PMOVES_FB_CONFIG_H

#include "fb-valid.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FB_CONFIG_MAX (1024u * 1024u)

/* The top-level schema (an FB_T_OBJECT field): each step's section (fb_step.schema under its
 * config_key) and the keys that are no step's ("steps", "report_url", "finally"). Made on
 * first use; NULL when out of memory. */
const struct fb_field *fb_config_schema(void);

/* The top-level schema as a JSON Schema (draft 2020-12, "$id" FB_SCHEMA_ID): the same tables,
 * their formats as "$defs" (fb-schema.c). NULL when out of memory. */
#define FB_SCHEMA_ID "https://pmoves.invalid/schema/firstboot.schema.json"
json_object *fb_config_json_schema(void);

/* Validate one parsed source; on failure *ret_error is "SOURCE: PATH: problem". */
int fb_config_check(json_object *o, const char *source, char **ret_error);
/* Parse and validate text from SOURCE (a file name, "fw_cfg" or a URL). */
int fb_config_parse(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error);
/* The same for one source that others complete (fb_schema_check_part). */
int fb_config_parse_part(const char *buf, size_t len, const char *source, json_object **ret, char **ret_error);
/* validate FILE...: host paths, not under --root; NULL-terminated. Each checked as a whole
 * config, or with PART as a source; with MERGE, then merged in order (as the machine merges its
 * sources) and the result checked as a whole config. -ENOENT when one is missing. */
int fb_config_validate_files(char *const *paths, bool part, bool merge, char **ret_error);

/* ---- loading ---- */

struct fb_config {
	json_object *merged;   /* valid merged config, or NULL */
	char *error;           /* why not */
	char **sources;        /* the sources used, in order */
	char *device_path;     /* "/boot/efi/pmoves/device.json" or the like, when one was read */
	json_object *device;   /* its content */
	char **secrets;        /* secret strings of the merged config, to redact */
};

/* 0, -EINVAL (invalid: c->error), -EAGAIN (a source could not be fetched: c->error; try on a
 * later run), or another -errno. */
int fb_config_load(struct fb_config *c);
void fb_config_done(struct fb_config *c);

/* Merge OVER into BASE as the sources merge (above). */
int fb_config_merge(json_object *base, json_object *over);
/* A key whose value is secret wherever it is, unless true or false: its name contains
 * auth_key, password, token or credentials. */
bool fb_config_key_is_secret(const char *key);
/* Remove the secret values from O, in place: keys the schema marks secret or whose name
 * contains auth_key, password, token or credentials; array elements marked "secret": true.
 * With RET_SECRETS, collect the removed strings. Returns how many values were removed. */
int fb_config_scrub(json_object *o, char ***ret_secrets);
/* SHA-256 of the merged config without its secrets: what the state file records. */
int fb_config_hash(json_object *o, char ret_hex[65]);
/* The value of "KEY=" on a kernel command line (the last one), malloc'd, or NULL. */
char *fb_cmdline_get(const char *cmdline, const char *key);

#endif
