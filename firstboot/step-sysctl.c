/* sysctl: /etc/sysctl.d/90-pmoves.conf, then loaded into the running kernel. */
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#define SYSCTL_FILE "/etc/sysctl.d/90-pmoves.conf"

/* "sysctl": {"KEY": VALUE}, a string or an integer each. A key is words of a-z, 0-9, '_', '-'
 * joined by single '.' or '/' (a trailing one is taken: the kernel's names have none). */
static const struct fb_format fmt_sysctl_key = {
	.name = "sysctl_key",
	.message = "'%s' is not a sysctl key (a-z, 0-9, '_', '.', '-', '/')",
	.pattern = "^[a-z0-9_-]+([./][a-z0-9_-]+)*[./]?$",
	.max = 255,
};

static const struct fb_format fmt_sysctl_value = {
	.name = "sysctl_value",
	.message = "a sysctl value is one line without control characters",
	.pattern = "^[^\x01-\x1f\x7f]*$",
};

/* json-c keeps an integer it cannot hold as the nearest it can, INT64_MIN or (above
 * INT64_MAX) UINT64_MAX, without a word: 99999999999999999999 would be written as
 * 18446744073709551615. Those two are refused as numbers; a string carries any value. */
static int valid_sysctl_value(struct fb_check *c, json_object *v)
{
	if (!json_object_is_type(v, json_type_int))
		return 0;
	if (json_object_get_int64(v) == INT64_MIN || json_object_get_uint64(v) == UINT64_MAX)
		return fb_bad(c, "the number is out of range (-9223372036854775807 to 18446744073709551614): give it as a string");
	return 0;
}

static const struct fb_field sysctl_value = { NULL, FB_T_SCALAR, NULL, valid_sysctl_value, &fmt_sysctl_value, 0, 0 };
static const struct fb_field sysctl_schema = { NULL, FB_T_MAP, &sysctl_value, NULL, &fmt_sysctl_key, 0, 0 };

static char *sysctl_text(json_object *section)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs("# Written by pmoves-firstboot from its config: change the config, not this file.\n", f);
	json_object_object_foreach(section, key, val) fprintf(f, "%s = %s\n", key, json_object_get_string(val));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The running value of KEY equals VALUE (whitespace runs compared as one space). */
static int live_equal(const char *key, const char *value)
{
	_cleanup_free_ char *path = fb_strdupf("/proc/sys/%s", key), *have = NULL;
	if (!path)
		return -ENOMEM;
	if (!strchr(key, '/'))
		for (char *p = path + 10; *p; p++)
			if (*p == '.')
				*p = '/';
	if (fb_read(path, 64 * 1024, &have, NULL) < 0)
		return 0;
	const char *a = have, *b = value;
	for (;;) {
		a += strspn(a, " \t\n");
		b += strspn(b, " \t\n");
		size_t na = strcspn(a, " \t\n"), nb = strcspn(b, " \t\n");
		if (na != nb || strncmp(a, b, na))
			return 0;
		if (!na)
			return 1;
		a += na, b += nb;
	}
}

static int sysctl_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	_cleanup_free_ char *text = sysctl_text(section);
	if (!text)
		return -ENOMEM;
	int r = fb_file_is(SYSCTL_FILE, text, strlen(text));
	if (r <= 0 || !fb_live())
		return r;
	json_object_object_foreach(section, key, val) if ((r = live_equal(key, json_object_get_string(val))) <= 0) return r;
	return 1;
}

static enum fb_result sysctl_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_free_ char *text = sysctl_text(section);
	if (!text)
		return FB_FAILED;
	int r = fb_write(SYSCTL_FILE, text, strlen(text), 0644, 0, 0);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", SYSCTL_FILE, strerror(-r));
		return FB_FAILED;
	}
	if (fb_live()) {
		char *argv[] = { "sysctl", "--quiet", "--system", NULL };
		r = fb_run(argv);
		if (r != 0) {
			*ret_msg = fb_strdupf("'sysctl --system' exited with %d", r);
			return FB_FAILED;
		}
	}
	*ret_msg = fb_strdupf("%d settings in '%s'", json_object_object_length(section), SYSCTL_FILE);
	return FB_OK;
}

const struct fb_step step_sysctl = {
	.name = "sysctl",
	.config_key = "sysctl",
	.schema = &sysctl_schema,
	.needs_config = true,
	.check = sysctl_check,
	.dry_run_apply = true,
	.apply = sysctl_apply,
};
