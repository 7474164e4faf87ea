/* The root every path lives under, and the one runner for external commands. */
#include "fb-report.h"
#include "firstboot.h"
#include "run.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static char *root_dir;
static int root_fd = -1;
static bool no_openat2; /* root "/" on a kernel without openat2: plain openat */
static double run_seconds;
static bool dry_run;

void fb_dry_run_set(bool on)
{
	dry_run = on;
}

bool fb_dry_run(void)
{
	return dry_run;
}

int fb_root_set(const char *root)
{
	if (!root || root[0] != '/' || strlen(root) >= PATH_MAX / 2)
		return -EINVAL;
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* "/x/" and "/x" are the same tree; "/" stays "/". */
	size_t len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		len--;
	/* Every path under a tree is resolved by openat2(RESOLVE_IN_ROOT) (Linux 5.6): without
	 * it there is no way to keep a symlink in the tree from leading out of it, so no tree.
	 * The running system's own root needs no confining: there, without openat2 (an older
	 * kernel such as L4T 32's 4.9, or qemu-user), paths are opened as they are. */
	struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	long probe = syscall(SYS_openat2, fd, ".", &how, sizeof(how));
	bool plain = probe < 0 && errno == ENOSYS && len == 1;
	if (probe < 0 && !plain) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (probe >= 0)
		close((int)probe);
	char *dup = strndup(root, len);
	if (!dup) {
		close(fd);
		return -ENOMEM;
	}
	if (root_fd >= 0)
		close(root_fd);
	free(root_dir);
	root_dir = dup;
	root_fd = fd;
	no_openat2 = plain;
	return 0;
}

const char *fb_root(void)
{
	return root_dir ? root_dir : "/";
}

bool fb_live(void)
{
	if (STREQ(fb_root(), "/"))
		return true;
	/* Test hook: a fixture tree taken for the running system, which is safe only because
	 * every command then goes to the stand-in runner. */
	const char *live = getenv("PMOVES_FIRSTBOOT_LIVE"), *runner = getenv("PMOVES_FIRSTBOOT_RUNNER");
	return live && STREQ(live, "1") && runner && *runner;
}

static int ensure_root(void)
{
	return root_fd >= 0 ? 0 : fb_root_set("/");
}

/* ABS relative to the root directory: "/etc/x" -> "etc/x", "/" -> ".". */
static const char *rel(const char *abs)
{
	while (*abs == '/')
		abs++;
	return *abs ? abs : ".";
}

int fb_open(const char *abs, int flags, mode_t mode)
{
	if (!abs || abs[0] != '/')
		return -EINVAL;
	int r = ensure_root();
	if (r < 0)
		return r;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	if (!no_openat2)
		return openat2_retry(root_fd, rel(abs), &how);
	int fd = openat(root_fd, rel(abs), (int)how.flags, (mode_t)how.mode);
	return fd < 0 ? -errno : fd;
}

char *fb_fd_path(int fd, const char *abs, bool inherit)
{
	if (STREQ(fb_root(), "/"))
		return strdup(abs);
	if (inherit && fcntl(fd, F_SETFD, 0) < 0)
		return NULL;
	size_t n = strlen(abs);
	return fb_strdupf("/proc/self/fd/%d%s", fd, n > 1 && abs[n - 1] == '/' ? "/" : "");
}

void fb_sync(void)
{
	if (ensure_root() == 0)
		syncfs(root_fd);
}

int fb_read(const char *abs, size_t max, char **ret_buf, size_t *ret_len)
{
	return fb_read_file(abs, max, ret_buf, ret_len, NULL); /* fb-read.c: regular files only */
}

int fb_read_line(const char *abs, char *buf, size_t size)
{
	if (size < 2)
		return -EINVAL;
	_cleanup_close_ int fd = fb_open(abs, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return fd;
	int r = fb_fd_regular(fd, abs, NULL);
	if (r < 0)
		return r;
	ssize_t n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int fb_exists(const char *abs)
{
	int fd = fb_open(abs, O_PATH | O_NOFOLLOW, 0);
	if (fd == -ENOENT || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	close(fd);
	return 1;
}

/* 1: what is left to read of FD is exactly BUF; 0: not; -errno. */
static int fd_holds(int fd, const void *buf, size_t len)
{
	_cleanup_free_ char *have = NULL;
	size_t hlen;
	int r = read_fd(fd, len, &have, &hlen);
	if (r == -EFBIG)
		return 0;
	if (r < 0)
		return r;
	r = hlen == len && memcmp(have, buf, len) == 0;
	explicit_bzero(have, hlen);
	return r;
}

int fb_file_is(const char *abs, const void *buf, size_t len)
{
	_cleanup_close_ int fd = fb_open(abs, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	int r = fb_fd_regular(fd, abs, NULL);
	if (r == -EISDIR || r == -EINVAL)
		return 0; /* not a regular file: not one holding BUF */
	return r < 0 ? r : fd_holds(fd, buf, len);
}

int fb_file_matches(const char *abs, const void *buf, size_t len, mode_t mode, uid_t uid, gid_t gid)
{
	_cleanup_close_ int fd = fb_open(abs, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
	struct stat st;
	if (fd == -ENOENT || fd == -ELOOP || fd == -ENOTDIR)
		return 0;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != (mode & 07777) || (uint64_t)st.st_size != len ||
	    (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid)))
		return 0;
	return fd_holds(fd, buf, len);
}

/* The directory ABS (a copy the caller may cut), created with its parents if missing. */
static int open_dir_create(char *abs, int depth)
{
	int fd = fb_open(abs, O_RDONLY | O_DIRECTORY, 0);
	if (fd != -ENOENT || depth > 64)
		return fd;
	char *slash = strrchr(abs, '/');
	if (!slash || slash[1] == '\0')
		return -ENOENT;
	char *base = slash + 1;
	_cleanup_close_ int pfd = -1;
	if (slash == abs) {
		pfd = fb_open("/", O_RDONLY | O_DIRECTORY, 0);
	} else {
		*slash = '\0';
		pfd = open_dir_create(abs, depth + 1);
		*slash = '/';
	}
	if (pfd < 0)
		return pfd;
	if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int fb_open_dir(const char *abs, bool create)
{
	if (!abs || abs[0] != '/' || strlen(abs) >= PATH_MAX)
		return -EINVAL;
	if (!create)
		return fb_open(abs, O_RDONLY | O_DIRECTORY, 0);
	_cleanup_free_ char *copy = strdup(abs);
	if (!copy)
		return -ENOMEM;
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	return open_dir_create(copy, 0);
}

int fb_user_dir(const char *abs, uid_t uid, gid_t gid, mode_t mode)
{
	if (!abs || abs[0] != '/' || strlen(abs) >= PATH_MAX)
		return -EINVAL;
	_cleanup_free_ char *copy = strdup(abs);
	int fd = fb_open("/", O_RDONLY | O_DIRECTORY, 0);
	if (!copy || fd < 0) {
		if (fd >= 0)
			close(fd);
		return copy ? fd : -ENOMEM;
	}
	/* One component at a time, never through a link: a user may have replaced a part of the
	 * path they own with one, to have root give them what it leads to. */
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (STREQ(c, ".") || STREQ(c, "..")) {
			close(fd);
			return -EINVAL;
		}
		if (mkdirat(fd, c, 0755) < 0 && errno != EEXIST) {
			int r = -errno;
			close(fd);
			return r;
		}
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int r = -errno;
		struct stat lst; /* O_DIRECTORY says ENOTDIR for a link: say what it is */
		if (next < 0 && fstatat(fd, c, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))
			r = -ELOOP;
		close(fd);
		if (next < 0)
			return r;
		fd = next;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != uid) || fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
		int r = (st.st_uid != 0 && st.st_uid != uid) ? -EPERM : -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Dry run: the file's name, mode and content as it would be written, one line of it per
 * line, control characters but tabs escaped (str_printable): an escape sequence or a carriage
 * return cannot hide a line from the person reading the plan. Content of a file that only its
 * owner may read is not shown: it may be a secret. */
static void print_write(const char *abs, const char *buf, size_t len, mode_t mode)
{
	bool text = memchr(buf, '\0', len) == NULL;
	if (!(mode & 044 && text)) {
		fb_would("write %s (mode %04o, %zu bytes), content not shown (%s)", abs, (unsigned)mode, len,
			 text ? "readable by its owner only" : "binary");
		return;
	}
	fb_would("write %s (mode %04o, %zu bytes):", abs, (unsigned)mode, len);
	for (size_t i = 0; i < len;) {
		size_t n = 0;
		while (i + n < len && buf[i + n] != '\n')
			n++;
		_cleanup_free_ char *line = str_printable(buf + i, n, "\t");
		printf("  | %s\n", line ? line : "(out of memory)");
		i += n + 1;
	}
	fflush(stdout);
}

int fb_write(const char *abs, const void *buf, size_t len, mode_t mode, uid_t uid, gid_t gid)
{
	if (!abs || abs[0] != '/' || strlen(abs) >= PATH_MAX)
		return -EINVAL;
	if (dry_run) {
		print_write(abs, buf, len, mode);
		return 0;
	}
	_cleanup_free_ char *dir = strdup(abs);
	if (!dir)
		return -ENOMEM;
	char *slash = strrchr(dir, '/');
	const char *base = abs + (slash - dir) + 1;
	if (!*base || STREQ(base, ".") || STREQ(base, "..") || strlen(base) > NAME_MAX - 24)
		return -EINVAL;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	_cleanup_close_ int dfd = open_dir_create(dir, 0);
	if (dfd < 0)
		return dfd;

	char tmp[NAME_MAX + 1];
	int n = snprintf(tmp, sizeof(tmp), ".%s.fbtmp-%d", base, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	/* Created 0600: a secret is never readable by others, not even for a moment. */
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) == 0) /* left by a crash */
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = write_all(fd, buf, len);
	if (r == 0 && uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp, dfd, base) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return r;
	}
	fsync(dfd);
	return 0;
}

int fb_remove(const char *abs)
{
	if (!abs || abs[0] != '/' || strlen(abs) >= PATH_MAX)
		return -EINVAL;
	if (dry_run) {
		fb_would("remove %s", abs);
		return 0;
	}
	const char *slash = strrchr(abs, '/'), *base = slash + 1;
	if (!*base || STREQ(base, ".") || STREQ(base, ".."))
		return -EINVAL;
	_cleanup_free_ char *dir = slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
	if (!dir)
		return -ENOMEM;
	_cleanup_close_ int dfd = fb_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (dfd == -ENOENT || dfd == -ENOTDIR)
		return 0;
	if (dfd < 0)
		return dfd;
	if (unlinkat(dfd, base, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	fsync(dfd);
	return 0;
}

/* ---- runner ---- */

int fb_run_capture(char *const argv[], char **ret_out)
{
	const char *stand_in = getenv("PMOVES_FIRSTBOOT_RUNNER");
	size_t n = strv_length(argv);
	if (n == 0 || n > 1000)
		return -EINVAL;
	_cleanup_free_ char **full = calloc(n + 2, sizeof(char *));
	if (!full)
		return -ENOMEM;
	size_t k = 0;
	if (stand_in && *stand_in)
		full[k++] = (char *)stand_in;
	for (size_t i = 0; i < n; i++)
		full[k++] = argv[i];
	if (dry_run && !ret_out) {
		_cleanup_free_ char *line = argv_to_string(argv);
		fb_would("run %s", line ? line : argv[0]);
		return 0;
	}
	if (fb_verbose) {
		_cleanup_free_ char *line = argv_to_string(argv);
		fb_debug("running %s", line ? line : argv[0]);
	}
	/* The program's output, but what is captured, goes through the console filter: it may
	 * hold a secret it was given, or control characters. */
	struct run_opts o = { .capture = ret_out, .line = fb_output_line, .line_data = argv[0] };
	fflush(stdout);
	double t0 = now_seconds();
	int r = run_argv(full, &o);
	run_seconds += now_seconds() - t0;
	return r;
}

int fb_run(char *const argv[])
{
	return fb_run_capture(argv, NULL);
}

double fb_run_seconds(void)
{
	return run_seconds;
}

