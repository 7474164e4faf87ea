/* The first-boot config as a JSON Schema (draft 2020-12), written from the tables the validator
 * checks with: the top-level schema (fb_config_schema(): each step's section and the keys that
 * are no step's), its fields, and their formats, which become "$defs". What the fields'
 * validators check in C (fb_validator) is not in it: docs/firstboot.md lists those rules. */
#include "fb-config.h"
#include "util.h"

static json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static json_object *num(int64_t n)
{
	return json_object_new_int64(n);
}

/* "#/$defs/NAME" */
static json_object *ref_to(const struct fb_format *f)
{
	char r[128];
	snprintf(r, sizeof(r), "#/$defs/%s", f->name);
	return str(r);
}

/* {"type": "string", "pattern": P}, P of LEN bytes (it may hold a NUL): what "not" refuses (a
 * "pattern" alone holds for any integer, and its "not" would refuse every one). */
static json_object *string_matching(const char *p, size_t len)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", str("string"));
	json_object_object_add(o, "pattern", json_object_new_string_len(p, (int)len));
	return o;
}

/* A format's "$defs" entry. A string format refuses a NUL character itself (the validator
 * refuses it in every string before any format) and, with a pattern ending in '$', a newline:
 * '$' is the end of the string in ECMA-262 and POSIX, but Python's re (the jsonschema package)
 * lets it match before a final newline. A pattern without '$' is text of several lines
 * (fb-valid.h). The string keywords do not apply to an integer, as the validator's string
 * formats take any integer on a string-or-integer field. */
static json_object *format_schema(const struct fb_format *f)
{
	json_object *o = json_object_new_object();
	if (f->also)
		json_object_object_add(o, "$ref", ref_to(f->also));
	if (f->integer) {
		json_object_object_add(o, "type", str("integer"));
		json_object_object_add(o, "minimum", num(f->lo));
		json_object_object_add(o, "maximum", num(f->hi));
		return o;
	}
	if (f->pattern)
		json_object_object_add(o, "pattern", str(f->pattern));
	if (f->min)
		json_object_object_add(o, "minLength", num((int64_t)f->min));
	if (f->max)
		json_object_object_add(o, "maxLength", num((int64_t)f->max));
	if (f->values || f->value_at) {
		json_object *e = json_object_new_array();
		for (size_t i = 0; f->values && f->values[i]; i++)
			json_object_array_add(e, str(f->values[i]));
		for (size_t i = 0; f->value_at && f->value_at(i); i++)
			json_object_array_add(e, str(f->value_at(i)));
		json_object_object_add(o, "enum", e);
	}
	json_object *not = json_object_new_array();
	bool to_end = f->pattern && f->pattern[strlen(f->pattern) - 1] == '$';
	json_object_array_add(not, to_end ? string_matching("[\0\n]", 4) : string_matching("\0", 1));
	if (f->forbid)
		json_object_array_add(not, string_matching(f->forbid, strlen(f->forbid)));
	if (f->except) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "const", str(f->except));
		json_object_array_add(not, c);
	}
	if (json_object_array_length(not) == 1) {
		json_object_object_add(o, "not", json_object_get(json_object_array_get_idx(not, 0)));
		json_object_put(not);
	} else {
		json_object *any = json_object_new_object();
		json_object_object_add(any, "anyOf", not);
		json_object_object_add(o, "not", any);
	}
	return o;
}

static json_object *field_schema(const struct fb_field *f, const char *key);

/* The keys of an object, required ones, and the secret ones of an element marked "secret". */
static json_object *object_schema(const struct fb_field *fields)
{
	json_object *o = json_object_new_object(), *props = json_object_new_object();
	json_object *req = json_object_new_array(), *secret_if = json_object_new_object();
	json_object_object_add(o, "type", str("object"));
	for (const struct fb_field *f = fields; f && f->key; f++) {
		json_object_object_add(props, f->key, field_schema(f, f->key));
		if (f->flags & FB_REQUIRED)
			json_object_array_add(req, str(f->key));
		if (f->flags & FB_SECRET_IF) {
			json_object *w = json_object_new_object();
			json_object_object_add(w, "writeOnly", json_object_new_boolean(true));
			json_object_object_add(secret_if, f->key, w);
		}
	}
	json_object_object_add(o, "properties", props);
	if (json_object_array_length(req))
		json_object_object_add(o, "required", req);
	else
		json_object_put(req);
	json_object_object_add(o, "additionalProperties", json_object_new_boolean(false));
	if (json_object_object_length(secret_if)) {
		json_object *cond = json_tokener_parse("{ \"properties\": { \"secret\": { \"const\": true } }, \"required\": [ \"secret\" ] }");
		json_object *then = json_object_new_object();
		json_object_object_add(then, "properties", secret_if);
		json_object_object_add(o, "if", cond);
		json_object_object_add(o, "then", then);
	} else
		json_object_put(secret_if);
	return o;
}

/* F under KEY (NULL: an element or a map's value). A secret value is "writeOnly": the same
 * values the engine scrubs by the schema or by the key's name (fb_config_key_is_secret). */
static json_object *field_schema(const struct fb_field *f, const char *key)
{
	json_object *o;
	switch (f->type) {
	case FB_T_OBJECT:
		return object_schema(f->fields);
	case FB_T_BOOL:
		o = json_object_new_object();
		json_object_object_add(o, "type", str("boolean"));
		return o;
	case FB_T_ARRAY:
		o = json_object_new_object();
		json_object_object_add(o, "type", str("array"));
		json_object_object_add(o, "items", field_schema(f->fields, NULL));
		json_object_object_add(o, "maxItems", num((int64_t)(f->max ? f->max : FB_LIST_MAX)));
		return o;
	case FB_T_MAP:
		o = json_object_new_object();
		json_object_object_add(o, "type", str("object"));
		if (f->format) {
			json_object *names = json_object_new_object();
			json_object_object_add(names, "$ref", ref_to(f->format));
			json_object_object_add(o, "propertyNames", names);
		}
		json_object_object_add(o, "additionalProperties", field_schema(f->fields, NULL));
		json_object_object_add(o, "maxProperties", num((int64_t)(f->max ? f->max : FB_LIST_MAX)));
		return o;
	case FB_T_STRING:
	case FB_T_SCALAR:
		break;
	}
	o = json_object_new_object();
	if (f->type == FB_T_STRING)
		json_object_object_add(o, "type", str("string"));
	else {
		json_object *t = json_object_new_array();
		json_object_array_add(t, str("string"));
		json_object_array_add(t, str("integer"));
		json_object_object_add(o, "type", t);
	}
	/* Bytes in the validator, characters here: the same for ASCII (docs/firstboot.md). */
	json_object_object_add(o, "maxLength", num((int64_t)(f->max ? f->max : FB_STRING_MAX)));
	if (f->format)
		json_object_object_add(o, "$ref", ref_to(f->format));
	else
		json_object_object_add(o, "not", string_matching("\0", 1));
	if ((f->flags & FB_SECRET) || (key && fb_config_key_is_secret(key)))
		json_object_object_add(o, "writeOnly", json_object_new_boolean(true));
	return o;
}

json_object *fb_config_json_schema(void)
{
	const struct fb_field *top = fb_config_schema();
	_cleanup_free_ const struct fb_format **formats = NULL;
	if (!top || fb_formats_of(top, &formats) < 0)
		return NULL;
	json_object *s = json_object_new_object();
	json_object_object_add(s, "$schema", str("https://json-schema.org/draft/2020-12/schema"));
	json_object_object_add(s, "$id", str(FB_SCHEMA_ID));
	json_object_object_add(s, "title", str("pmoves-firstboot config (each source on its own: firstboot.json, device.json, "
					       "fw_cfg, pmoves.config=URL)"));
	json_object *body = field_schema(top, NULL);
	json_object_object_foreach(body, k, v)
	{
		json_object_object_add(s, k, json_object_get(v));
	}
	json_object_put(body);
	json_object *defs = json_object_new_object();
	for (const struct fb_format **f = formats; *f; f++)
		json_object_object_add(defs, (*f)->name, format_schema(*f));
	json_object_object_add(s, "$defs", defs);
	return s;
}
