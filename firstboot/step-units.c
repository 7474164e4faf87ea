/* units: systemctl disable, mask, enable (with --root=ROOT on a tree) and start (running
 * system only, --no-block: units ordered after first boot would wait for us otherwise). */
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

/* "units": {"enable", "disable", "start", "mask": [UNIT...]}: a unit name with its suffix. */
static const struct fb_format fmt_unit = {
	.name = "unit_name",
	.message = "'%s' is not a systemd unit name (such as 'ssh.service')",
	.pattern = "^[A-Za-z0-9:_@\\\\][A-Za-z0-9:_.@\\\\-]*\\.(service|socket|timer|target|mount|automount|path|swap|slice)$",
	.max = 255,
};

static const struct fb_field unit_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_unit, 0, 0 };
static const struct fb_field unit_fields[] = {
	{ "enable", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "disable", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "start", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	{ "mask", FB_T_ARRAY, &unit_elem, NULL, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field units_schema = { NULL, FB_T_OBJECT, unit_fields, NULL, NULL, 0, 0 };

static const struct verb {
	const char *key;   /* config list */
	const char *query; /* is-enabled / is-active */
	const char *const done[4]; /* the states it asks for; none: fb_unit_enabled() says */
} verbs[] = {
	{ "disable", "is-enabled", { "disabled", "static", "", NULL } },
	{ "mask", "is-enabled", { "masked", "masked-runtime", NULL } },
	{ "enable", "is-enabled", { NULL } },
	{ "start", "is-active", { "active", "reloading", "activating", NULL } },
};

static bool verb_live_only(const struct verb *v)
{
	return STREQ(v->key, "start");
}

/* Whether UNIT is already as V wants it. */
static int unit_done(const struct verb *v, const char *unit)
{
	if (!v->done[0])
		return fb_unit_enabled(unit);
	_cleanup_free_ char *root_opt = fb_live() ? NULL : fb_strdupf("--root=%s", fb_root()), *out = NULL;
	char *argv[] = { "systemctl", root_opt ? root_opt : (char *)v->query, root_opt ? (char *)v->query : (char *)unit,
			 root_opt ? (char *)unit : NULL, NULL };
	int r = fb_run_capture(argv, &out);
	if (r < 0)
		return r;
	if (r == 127)
		return -ENOENT;
	out[strcspn(out, "\n")] = '\0';
	for (const char *const *d = v->done; *d; d++)
		if (STREQ(out, *d))
			return 1;
	return 0;
}

/* The units of V not yet done, or NULL when there are none. */
static int pending_units(json_object *section, const struct verb *v, char ***ret)
{
	json_object *list;
	_cleanup_strv_ char **todo = NULL;
	if (!json_object_object_get_ex(section, v->key, &list) || (verb_live_only(v) && !fb_live()))
		return 0;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		const char *unit = json_object_get_string(json_object_array_get_idx(list, i));
		int r = unit_done(v, unit);
		if (r < 0)
			return r;
		if (r == 0 && (r = strv_push(&todo, unit)) < 0)
			return r;
	}
	*ret = TAKE_PTR(todo);
	return 0;
}

static int units_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		_cleanup_strv_ char **todo = NULL;
		int r = pending_units(section, &verbs[i], &todo);
		if (r < 0) {
			*ret_msg = fb_strdupf("cannot run 'systemctl %s': %s", verbs[i].query, strerror(-r));
			return r;
		}
		if (todo)
			return 0;
	}
	return 1;
}

static enum fb_result units_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	unsigned changed = 0;
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		const struct verb *v = &verbs[i];
		_cleanup_strv_ char **todo = NULL;
		int r = pending_units(section, v, &todo);
		if (r == 0 && !todo)
			continue;
		if (r == 0)
			r = verb_live_only(v) ? fb_systemctl_live(v->key, todo) : fb_systemctl(v->key, todo);
		if (r != 0) {
			*ret_msg = r < 0 ? fb_strdupf("cannot run 'systemctl %s': %s", v->key, strerror(-r))
					 : fb_strdupf("'systemctl %s' exited with %d", v->key, r);
			return FB_FAILED;
		}
		changed += (unsigned)strv_length(todo);
	}
	json_object *start;
	bool skipped_start = !fb_live() && json_object_object_get_ex(section, "start", &start);
	*ret_msg = fb_strdupf("%u units changed%s", changed, skipped_start ? ", start left to the running system" : "");
	return FB_OK;
}

const struct fb_step step_units = {
	.name = "units",
	.config_key = "units",
	.schema = &units_schema,
	.needs_config = true,
	.check = units_check,
	.dry_run_apply = true,
	.apply = units_apply,
};
