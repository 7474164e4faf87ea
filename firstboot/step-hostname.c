/* hostname: /etc/hostname, the 127.0.1.1 line of /etc/hosts, and the running kernel's. */
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

/* "hostname": a string, RFC 1123. */
static const struct fb_field hostname_schema = { NULL, FB_T_STRING, NULL, fb_valid_hostname, NULL, 0, 0 };

static const char *hostname_of(json_object *section)
{
	return json_object_get_string(section);
}

/* /etc/hosts with one "127.0.1.1 NAME [SHORT]" line: the first such line replaced, later ones
 * dropped, or the line added after 127.0.0.1's (or at the end). */
static char *hosts_text(const char *old, const char *name)
{
	const char *dot = strchr(name, '.');
	_cleanup_free_ char *line = dot ? fb_strdupf("127.0.1.1\t%s %.*s\n", name, (int)(dot - name), name)
					: fb_strdupf("127.0.1.1\t%s\n", name);
	if (!line)
		return NULL;
	if (!old)
		return fb_strdupf("127.0.0.1\tlocalhost\n%s::1\t\tlocalhost ip6-localhost ip6-loopback\n", line);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool placed = false;
	for (const char *p = old; *p;) {
		size_t n = strcspn(p, "\n");
		bool ours = !strncmp(p, "127.0.1.1", 9) && n > 9 && (p[9] == ' ' || p[9] == '\t');
		if (ours && !placed)
			fputs(line, f);
		else if (!ours)
			fprintf(f, "%.*s\n", (int)n, p);
		placed |= ours;
		if (!placed && !strncmp(p, "127.0.0.1", 9)) {
			fputs(line, f);
			placed = true;
		}
		p += n + (p[n] == '\n');
	}
	if (!placed)
		fputs(line, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
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
	_cleanup_free_ char *hosts_want = hosts_text(hosts, name);
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
	_cleanup_free_ char *hosts_new = hosts_text(hosts, name);
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
