/* hostname: /etc/hostname, the 127.0.1.1 line of /etc/hosts, and the running kernel's. */
#include "fb-hosts.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

/* "hostname": a string, RFC 1123. */
static const struct fb_field hostname_schema = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_hostname, 0, 0 };

static const char *hostname_of(json_object *section)
{
	return json_object_get_string(section);
}

static int hostname_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	const char *name = hostname_of(section);
	_cleanup_free_ char *want = fb_strdupf("%s\n", name), *hosts = NULL, *kernel = NULL;
	if (!want)
		return -ENOMEM;
	int r = fb_file_is("/etc/hostname", want, strlen(want));
	if (r <= 0)
		return r;
	r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	_cleanup_free_ char *hosts_want = fb_hosts_loopback_name(hosts, name);
	if (!hosts_want)
		return -ENOMEM;
	if (!STREQ(hosts, hosts_want))
		return 0;
	if (fb_live() && fb_read("/proc/sys/kernel/hostname", 256, &kernel, NULL) == 0) {
		kernel[strcspn(kernel, "\n")] = '\0';
		return STREQ(kernel, name);
	}
	return 1;
}

static enum fb_result hostname_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	const char *name = hostname_of(section);
	_cleanup_free_ char *text = fb_strdupf("%s\n", name), *hosts = NULL;
	int r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
	if (r < 0 && r != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '/etc/hosts': %s", strerror(-r));
		return FB_FAILED;
	}
	_cleanup_free_ char *hosts_new = fb_hosts_loopback_name(hosts, name);
	if (!text || !hosts_new)
		return FB_FAILED;
	if ((r = fb_write("/etc/hostname", text, strlen(text), 0644, 0, 0)) < 0 ||
	    (r = fb_write("/etc/hosts", hosts_new, strlen(hosts_new), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '/etc/hostname' and '/etc/hosts': %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_live()) {
		char *argv[] = { "hostname", (char *)name, NULL };
		r = fb_run(argv);
		if (r != 0) {
			*ret_msg = fb_strdupf("'hostname %s' exited with %d", name, r);
			return FB_FAILED;
		}
	}
	*ret_msg = fb_strdupf("%s", name);
	return FB_OK;
}

const struct fb_step step_hostname = {
	.name = "hostname",
	.config_key = "hostname",
	.schema = &hostname_schema,
	.needs_config = true,
	.required = false,
	.check = hostname_check,
	.dry_run_apply = true,
	.apply = hostname_apply,
};
