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
