/* Acting on the target system: its programs and its units, on the running machine or on a
 * tree (--root). */
#include "firstboot.h"
#include "util.h"

int fb_run_target(char *const argv[])
{
	if (fb_live())
		return fb_run(argv);
	size_t n = strv_length(argv);
	if (n == 0 || n > 1000)
		return -EINVAL;
	_cleanup_free_ char **full = calloc(n + 3, sizeof(char *));
	if (!full)
		return -ENOMEM;
	full[0] = "chroot";
	full[1] = (char *)fb_root();
	memcpy(full + 2, argv, n * sizeof(char *));
	return fb_run(full);
}

static void apt_env(void)
{
	setenv("DEBIAN_FRONTEND", "noninteractive", 1);
	setenv("APT_LISTCHANGES_FRONTEND", "none", 1);
}

int fb_apt(const char *verb, char *const *words)
{
	_cleanup_strv_ char **argv = NULL;
	static const char *const head[] = { "apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o",
					    "Dpkg::Options::=--force-confold" };
	int r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(head) && r == 0; i++)
		r = strv_push(&argv, head[i]);
	if (r == 0)
		r = strv_push(&argv, verb);
	for (char *const *w = words; r == 0 && w && *w; w++)
		r = strv_push(&argv, *w);
	if (r < 0)
		return r;
	apt_env();
	return fb_run_target(argv);
}

int fb_dpkg_finish(char **ret_msg)
{
	char *argv[] = { "dpkg", "--configure", "-a", NULL };
	apt_env();
	int r = fb_run_target(argv);
	if (r != 0)
		*ret_msg = fb_strdupf("'dpkg --configure -a' exited with %d", r);
	return r == 0 ? 0 : -EIO;
}

int fb_installed_packages(char ***ret)
{
	_cleanup_free_ char *buf = NULL;
	int r = fb_read("/var/lib/dpkg/status", 256u << 20, &buf, NULL);
	if (r == -ENOENT) {
		*ret = NULL;
		return 0;
	}
	if (r < 0)
		return r;
	_cleanup_strv_ char **list = NULL;
	char pkg[129] = "";
	bool inst = false;
	for (char *p = buf; p && *p;) {
		char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n == 0) { /* end of a paragraph */
			if (inst && pkg[0] && (r = strv_push(&list, pkg)) < 0)
				return r;
			pkg[0] = '\0';
			inst = false;
		} else if (n > 9 && !strncmp(p, "Package: ", 9)) {
			if (n - 9 >= sizeof(pkg))
				return -EINVAL;
			memcpy(pkg, p + 9, n - 9);
			pkg[n - 9] = '\0';
		} else if (n > 8 && !strncmp(p, "Status: ", 8))
			inst = n >= 21 && !strncmp(p + n - 13, " ok installed", 13);
		p = nl ? nl + 1 : NULL;
	}
	if (inst && pkg[0] && (r = strv_push(&list, pkg)) < 0)
		return r;
	*ret = TAKE_PTR(list);
	return 0;
}

bool fb_system_booting(void)
{
	if (!fb_live())
		return false;
	char *argv[] = { "systemctl", "is-system-running", NULL };
	_cleanup_free_ char *out = NULL;
	if (fb_run_capture(argv, &out) < 0 || !out)
		return false;
	out[strcspn(out, "\n")] = '\0';
	return STREQ(out, "initializing") || STREQ(out, "starting");
}

int fb_unit_enable(const char *unit, bool start, char **ret_msg)
{
	_cleanup_free_ char *root_opt = fb_live() ? NULL : fb_strdupf("--root=%s", fb_root());
	char *argv[] = { "systemctl", root_opt ? root_opt : "--quiet", "enable", (char *)unit, NULL };
	int r = fb_run(argv);
	if (r == 0 && start && fb_live()) {
		/* --no-block: during boot we run before sysinit.target, and a unit with default
		 * dependencies waits for it: waiting here would deadlock the boot. */
		char *st[] = { "systemctl", "--no-block", "restart", (char *)unit, NULL };
		r = fb_run(st);
		if (r != 0) {
			*ret_msg = fb_strdupf("'systemctl restart %s' exited with %d", unit, r);
			return -EIO;
		}
	}
	if (r != 0) {
		*ret_msg = fb_strdupf("'systemctl enable %s' exited with %d", unit, r);
		return -EIO;
	}
	return 0;
}
