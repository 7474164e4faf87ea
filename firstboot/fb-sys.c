/* Acting on the target system: its programs and its units, on the running machine or on a
 * tree (--root). */
#include "firstboot.h"
#include "run.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

int fb_run_target_capture(char *const argv[], char **ret_out)
{
	if (fb_live())
		return fb_run_capture(argv, ret_out);
	size_t n = strv_length(argv);
	if (n == 0 || n > 1000)
		return -EINVAL;
	_cleanup_free_ char **full = calloc(n + 3, sizeof(char *));
	if (!full)
		return -ENOMEM;
	full[0] = "chroot";
	full[1] = (char *)fb_root();
	memcpy(full + 2, argv, n * sizeof(char *));
	return fb_run_capture(full, ret_out);
}

int fb_run_target(char *const argv[])
{
	return fb_run_target_capture(argv, NULL);
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

char *fb_run_error(char *const argv[], int r)
{
	_cleanup_free_ char *line = argv_to_string(argv);
	return r < 0 ? fb_strdupf("cannot run '%s': %s", line ? line : argv[0], strerror(-r))
		     : fb_strdupf("'%s' exited with %d", line ? line : argv[0], r);
}

int fb_run_msg(char *const argv[], char **ret_msg)
{
	int r = fb_run(argv);
	if (r == 0)
		return 0;
	*ret_msg = fb_run_error(argv, r);
	return r < 0 ? r : -EIO;
}

/* ---- systemd ---- */

/* The states of `systemctl is-enabled` that count as enabled: those for which it exits 0
 * (systemctl(1)). On the running system we ask with --quiet, as for every verb on unit files,
 * and see only that exit status, so on a tree (--root, where the word is printed) the word
 * must be one of the same set, or a tree and a machine would disagree. All are states in which
 * `systemctl enable` has nothing left to do, or can do nothing: enabled; enabled-runtime (by a
 * link in /run; nothing here enables units --runtime); static (no [Install] section: other
 * units pull it in); alias (the name is a link to another unit file, which is what enable
 * would act on); indirect (its Also= units, or another instance of the template, are what is
 * enabled); generated and transient (made by a generator or at run time: `systemctl enable`
 * refuses them). Before this list, the units step left out transient, and mesh and gateway
 * generated and transient too. */
static const char *const enabled_states[] = { "enabled",  "enabled-runtime", "static",   "alias",
					      "indirect", "generated",       "transient" };

bool fb_unit_state_enabled(const char *state)
{
	for (size_t i = 0; state && i < ARRAY_SIZE(enabled_states); i++)
		if (STREQ(state, enabled_states[i]))
			return true;
	return false;
}

static int systemctl_argv(const char *opt, const char *verb, char *const *units, char ***ret)
{
	_cleanup_strv_ char **argv = NULL;
	int r = strv_push(&argv, "systemctl");
	if (r == 0)
		r = strv_push(&argv, opt);
	if (r == 0)
		r = strv_push(&argv, verb);
	for (char *const *u = units; r == 0 && u && *u; u++)
		r = strv_push(&argv, *u);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(argv);
	return 0;
}

int fb_systemctl_argv(const char *verb, char *const *units, char ***ret)
{
	_cleanup_free_ char *root_opt = fb_live() ? NULL : fb_strdupf("--root=%s", fb_root());
	if (!fb_live() && !root_opt)
		return -ENOMEM;
	return systemctl_argv(root_opt ? root_opt : "--quiet", verb, units, ret);
}

int fb_systemctl_live_argv(const char *verb, char *const *units, char ***ret)
{
	return systemctl_argv("--no-block", verb, units, ret);
}

int fb_systemctl(const char *verb, char *const *units)
{
	_cleanup_strv_ char **argv = NULL;
	int r = fb_systemctl_argv(verb, units, &argv);
	return r < 0 ? r : fb_run(argv);
}

int fb_systemctl_live(const char *verb, char *const *units)
{
	_cleanup_strv_ char **argv = NULL;
	if (!fb_live())
		return 0;
	int r = fb_systemctl_live_argv(verb, units, &argv);
	return r < 0 ? r : fb_run(argv);
}

int fb_unit_enabled(const char *unit)
{
	_cleanup_strv_ char **argv = NULL;
	_cleanup_free_ char *out = NULL;
	int r = fb_systemctl_argv("is-enabled", (char *[]){ (char *)unit, NULL }, &argv);
	if (r == 0)
		r = fb_run_capture(argv, &out);
	if (r < 0)
		return r;
	if (r == 127)
		return -ENOENT; /* no systemctl: the runner's exit status when exec fails */
	if (r != 0)
		return 0;
	if (!out)
		return 1; /* nothing printed: --quiet */
	out[strcspn(out, "\n")] = '\0';
	return !out[0] || fb_unit_state_enabled(out);
}

int fb_unit_active(const char *unit)
{
	char *argv[] = { "systemctl", "is-active", (char *)unit, NULL };
	_cleanup_free_ char *out = NULL;
	int r = fb_run_capture(argv, &out);
	return r < 0 ? r : r == 0;
}

int fb_unit_running(const char *unit)
{
	int r = fb_unit_enabled(unit);
	if (r > 0 && fb_live())
		r = fb_unit_active(unit);
	return r;
}

int fb_unit_enable(const char *unit, bool start, char **ret_msg)
{
	char *units[] = { (char *)unit, NULL };
	int r = fb_systemctl("enable", units);
	if (r == 0 && start && fb_live()) {
		r = fb_systemctl_live("restart", units);
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

int fb_lookup_id(const char *db, const char *name, size_t n, unsigned *ret)
{
	char buf[40];
	uint64_t id;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, name, n);
	buf[n] = '\0';
	if (parse_u64(buf, &id) == 0 && id < INT32_MAX) {
		*ret = (unsigned)id;
		return 0;
	}
	_cleanup_free_ char *text = NULL;
	int r = fb_read(db, 16u << 20, &text, NULL);
	if (r < 0)
		return r;
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		char *end = line + len;
		char *f3 = line;
		/* name:x:ID: */
		if (!strncmp(line, buf, n) && line[n] == ':' && (f3 = memchr(line + n + 1, ':', (size_t)(end - line - n - 1)))) {
			char *e;
			unsigned long v = strtoul(f3 + 1, &e, 10);
			if (e > f3 + 1 && *e == ':' && v < INT32_MAX) {
				*ret = (unsigned)v;
				return 0;
			}
		}
		line = *end ? end + 1 : end;
	}
	return -ESRCH;
}

int fb_chown_tree(int fd, uid_t uid, gid_t gid, unsigned depth)
{
	if (fchown(fd, uid, gid) < 0)
		return -errno;
	if (depth == 0)
		return 0;
	int dfd = dup(fd);
	if (dfd < 0)
		return -errno;
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int r = 0;
	for (struct dirent *e; r == 0 && (errno = 0, e = readdir(d));) {
		if (STREQ(e->d_name, ".") || STREQ(e->d_name, ".."))
			continue;
		_cleanup_close_ int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (sub >= 0)
			r = fb_chown_tree(sub, uid, gid, depth - 1);
		else if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && st.st_uid != uid)
			r = -EPERM;
		else if (fchownat(fd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	return r;
}

int fb_sysusers(const char *path, const char *text, char **ret_msg)
{
	int r = fb_write(path, text, strlen(text), 0644, 0, 0);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", path, strerror(-r));
		return r;
	}
	char *argv[] = { "systemd-sysusers", (char *)path, NULL };
	if ((r = fb_run_target(argv)) != 0) {
		*ret_msg = fb_run_error(argv, r);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

int fb_user_ids(const char *user, unsigned *ret_uid, unsigned *ret_gid, char **ret_msg)
{
	int r;
	if ((r = fb_lookup_id("/etc/passwd", user, strlen(user), ret_uid)) < 0 ||
	    (r = fb_lookup_id("/etc/group", user, strlen(user), ret_gid)) < 0)
		*ret_msg = fb_strdupf("systemd-sysusers made no user and group '%s': %s", user, strerror(-r));
	return r;
}
