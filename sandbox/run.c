/* A sandbox's life: made on a tmpfs, audited, run under its backend's VMM as the sandbox user
 * for at most its time to live, read, wiped, audited again. Nothing of it outlives it but two
 * lines in the audit log. */
#include <dirent.h>
#include <ftw.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <pwd.h>
#include <signal.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "sbx-io.h"
#include "sbx.h"
#include "util.h"

static void iso_time(struct timespec t, char out[32])
{
	struct tm tm;
	gmtime_r(&t.tv_sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03ldZ", t.tv_nsec / 1000000);
}

/* The audit log: root's, written by root only, appended a whole line at a time. A log another
 * user could write is refused: it would prove nothing. */
static int audit_open(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	*strrchr(dir, '/') = 0;
	if (dir[0] && mkdir_p(dir, 0750) < 0)
		return log_errno(-errno, "%s", dir);
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0)
		return log_errno(-errno, "audit log %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		close(fd);
		log_error("audit log %s: must be a regular file of root's that no one else can write", path);
		return -EPERM;
	}
	return fd;
}

static int audit(int fd, const char *line)
{
	if (write_full(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
		return log_errno(-errno, "writing the audit log");
	return 0;
}

/* The destroy line, END the time it is written. */
static int audit_destroy(int fd, const char *id, const char *spec, const char *start, const char *end,
			 const char *status, uint64_t discarded)
{
	_cleanup_free_ char *line = strdupf("%s destroy id=%s spec=%s start=%s end=%s status=%s bytes_discarded=%" PRIu64
					    "\n", end, id, spec, start, end, status, discarded);
	return line ? audit(fd, line) : -ENOMEM;
}

static int make_file(const struct sbx *s, const char *path, int *ret_fd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchown(fd, s->uid, s->gid) < 0) {
		int r = log_errno(-errno, "%s", path);
		if (fd >= 0)
			close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int make_empty(const struct sbx *s, const char *path)
{
	int fd;
	int r = make_file(s, path, &fd);
	if (r == 0)
		close(fd);
	return r;
}

/* The guest's root: the one image every sandbox shares, read only (the guest writes to an
 * overlay in its own memory). The VMM opens it as the sandbox user. */
static int check_root(const struct sbx *s)
{
	const char *path = s->cfg->rootfs;
	struct stat st;
	if (stat(path, &st) < 0)
		return log_errno(-errno, "guest root %s", path);
	if (!S_ISREG(st.st_mode)) {
		log_error("guest root %s: not a regular file", path);
		return -EINVAL;
	}
	if (!(st.st_mode & S_IROTH) && !(st.st_uid == s->uid && (st.st_mode & S_IRUSR)) &&
	    !(st.st_gid == s->gid && (st.st_mode & S_IRGRP))) {
		log_error("guest root %s: the VMM (uid %u) cannot read it (mode %03o): it must be readable by all", path,
			  (unsigned)s->uid, (unsigned)(st.st_mode & 0777));
		return -EACCES;
	}
	return 0;
}

static int add(char *buf, size_t *len, const char *key, const char *value)
{
	size_t n = strlen(key) + strlen(value) + 1;
	if (*len + n > SBX_REQ_MAX - SBX_HEAD_SIZE)
		return -E2BIG;
	snprintf(buf + SBX_HEAD_SIZE + *len, n, "%s%s", key, value);
	*len += n;
	return 0;
}

static int make_io(const struct sbx *s, const struct sbx_backend *b)
{
	/* As far as it is written: the guest may fill its output. */
	uint64_t size = SBX_RES_OFF + SBX_RES_HEAD + s->cfg->output_max;
	if (!tmpfs_has_room(s->cfg->state_dir, size)) {
		log_error("state_dir %s has no room for another sandbox (%" PRIu64 " MiB)", s->cfg->state_dir, size >> 20);
		return -ENOSPC;
	}
	_cleanup_close_ int fd = -1;
	int r = make_file(s, s->io, &fd);
	if (r < 0)
		return r;
	_cleanup_free_ char *req = calloc(1, SBX_REQ_MAX);
	size_t len = 0;
	if (!req)
		return -ENOMEM;
	for (char **a = s->spec->command; *a && r == 0; a++)
		r = add(req, &len, "arg=", *a);
	if (r == 0)
		r = add(req, &len, "halt=", b->halt);
	if (r == 0 && s->tap[0]) {
		r = add(req, &len, "addr=", s->addr);
		if (r == 0)
			r = add(req, &len, "gw=", s->gw);
		if (r == 0 && s->cfg->dns)
			r = add(req, &len, "dns=", s->cfg->dns);
	}
	if (r < 0) {
		log_error("the command is too long for the guest's request (64 KiB)");
		return r;
	}
	memcpy(req, SBX_REQ_MAGIC, 8);
	sbx_le32_put((uint8_t *)req + 8, (uint32_t)len);
	if (pwrite_full(fd, req, SBX_REQ_MAX, 0) < 0 ||
	    ftruncate(fd, (off_t)size) < 0)
		return log_errno(-errno, "%s", s->io);
	return 0;
}

enum end { END_EXITED, END_EXPIRED, END_STOPPED, END_FLOODED };

/* The larger of the guest's console and the VMM's log: what a guest that writes to its
 * console without end would fill the tmpfs with. */
static uint64_t logs_size(const char *const logs[2])
{
	uint64_t most = 0;
	struct stat st;
	for (size_t i = 0; i < 2; i++)
		if (stat(logs[i], &st) == 0 && (uint64_t)st.st_size > most)
			most = (uint64_t)st.st_size;
	return most;
}

/* Wait for the VMM, for at most the time to live; a TERM, INT or HUP to us stops it too, and
 * so do its logs growing past MAX bytes (looked at every second). */
static enum end wait_vmm(pid_t pid, unsigned ttl_s, const char *const logs[2], uint64_t max, int *ret_status,
			 int *ret_sig)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD), sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT), sigaddset(&set, SIGHUP);
	double deadline = now_seconds() + ttl_s;
	enum end how = END_EXITED;
	for (;;) {
		if (waitpid(pid, ret_status, WNOHANG) == pid)
			return how;
		double left = deadline - now_seconds();
		if (how == END_EXITED && left <= 0) {
			how = END_EXPIRED;
			kill(pid, SIGKILL);
		}
		double wait = left > 1 || left <= 0 ? 1 : left;
		struct timespec t = { .tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9) };
		int sig = sigtimedwait(&set, NULL, &t);
		if (sig > 0 && sig != SIGCHLD && how == END_EXITED) {
			how = END_STOPPED;
			*ret_sig = sig;
			kill(pid, SIGKILL);
		} else if (how == END_EXITED && logs_size(logs) > max) {
			how = END_FLOODED;
			kill(pid, SIGKILL);
		}
	}
}

/* What the sandbox's files take, each file once however many links it has (a jail links the
 * disks): the bytes its destruction discards. */
static uint64_t discard_bytes;
static struct { dev_t dev; ino_t ino; } discard_seen[64];
static size_t discard_n;

static int discard_count(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path, (void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (st->st_nlink > 1) {
		for (size_t i = 0; i < discard_n; i++)
			if (discard_seen[i].dev == st->st_dev && discard_seen[i].ino == st->st_ino)
				return 0;
		if (discard_n < ARRAY_SIZE(discard_seen))
			discard_seen[discard_n].dev = st->st_dev, discard_seen[discard_n++].ino = st->st_ino;
	}
	discard_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static uint64_t dir_bytes(const char *path)
{
	discard_bytes = 0, discard_n = 0;
	nftw(path, discard_count, 16, FTW_PHYS | FTW_MOUNT);
	return discard_bytes;
}

/* The end of a file, for an error message: what the VMM or the guest's console said last. */
static void show_tail(const char *what, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	char buf[2048];
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return;
	size_t len = st.st_size > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)st.st_size;
	if (pread_full(fd, buf, len, (uint64_t)st.st_size - len) < 0)
		return;
	_cleanup_free_ char *p = str_printable(buf, len, "\n\t");
	if (p)
		fprintf(stderr, "--- %s (its end) ---\n%s\n---\n", what, p);
}

struct result {
	bool have;
	uint32_t kind, value, dropped;
	char *out;
	size_t len;
};

static int read_result(const struct sbx *s, struct result *res)
{
	_cleanup_close_ int fd = open(s->io, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	uint8_t h[SBX_RES_HEAD];
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_errno(-errno, "%s", s->io);
	if (!S_ISREG(st.st_mode)) {
		log_error("%s: not a regular file", s->io);
		return -EBADMSG;
	}
	if (pread_full(fd, h, sizeof(h), SBX_RES_OFF) < 0)
		return log_errno(-errno, "%s", s->io);
	if (memcmp(h, SBX_RES_MAGIC, 8))
		return 0;
	uint32_t kind = sbx_le32_get(h + 8), len = sbx_le32_get(h + 16);
	if (kind < SBX_EXITED || kind > SBX_NOINIT || len > s->cfg->output_max) {
		log_error("%s: the guest's result is malformed (kind %u, %u bytes of output)", s->id, kind, len);
		return -EBADMSG;
	}
	res->out = malloc((size_t)len + 1);
	if (!res->out)
		return -ENOMEM;
	if (pread_full(fd, res->out, len, SBX_RES_OFF + SBX_RES_HEAD) < 0)
		return log_errno(-errno, "%s", s->io);
	res->out[len] = 0;
	res->len = len;
	res->kind = kind, res->value = sbx_le32_get(h + 12), res->dropped = sbx_le32_get(h + 20);
	res->have = true;
	return 0;
}

/* The VMM: its own session, stdin /dev/null, stdout and stderr to LOG_FD, no other descriptor
 * but the tap, the sandbox user's credentials (unless the backend drops them itself), no new
 * privileges, killed when the launcher dies. */
static pid_t start_vmm(const struct sbx *s, const struct sbx_backend *b, char **argv, int log_fd, const sigset_t *old)
{
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	gid_t groups[1] = { s->kvm_gid };
	if (setsid() < 0 || null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0 ||
	    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 || (s->tap_fd >= 0 && fcntl(s->tap_fd, F_SETFD, 0) < 0) ||
	    (!b->drops_privileges && (setgroups(s->kvm_gid != (gid_t)-1 ? 1 : 0, groups) < 0 || setgid(s->gid) < 0 ||
				      setuid(s->uid) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)) ||
	    /* After the credentials change, which clears it (a jailer's own change clears it
	     * again: there the launcher's unit is what stops the jail with it). */
	    prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || chdir(s->dir) < 0 ||
	    sigprocmask(SIG_SETMASK, old, NULL) < 0) {
		dprintf(2, "pmoves-sandbox: setting up the VMM: %s\n", strerror(errno));
		_exit(SBX_EXIT_FAILED);
	}
	execvp(argv[0], argv);
	dprintf(2, "pmoves-sandbox: %s: %s\n", argv[0], strerror(errno));
	_exit(SBX_EXIT_FAILED);
}

/* The undertaker: a child of the launcher's, root, in a process group of its own and with the
 * launcher's signals blocked, waiting on a socket only the launcher writes to (a socket: the
 * launcher's write never raises SIGPIPE if the undertaker was killed first). The launcher
 * writes a byte once it has ended the sandbox itself, and the undertaker exits. If the pipe
 * closes without it, the launcher was killed: the undertaker kills the VMM (through a pidfd:
 * no pid can be reused under it) and returns 1, to end the sandbox in the launcher's place.
 * It holds what the launcher held (the audit log, the address's and the id's locks), so
 * neither is handed out again before it is done. A VMM whose jailer changed its user lost
 * its parent-death signal, and a killed launcher left its files and taps: this is for both.
 * In the launcher: 0, *RET_FD the pipe's end to write. */
static int undertaker(pid_t vmm, int *ret_fd, pid_t *ret_pid)
{
	int p[2], pidfd = (int)syscall(SYS_pidfd_open, vmm, 0);
	if (pidfd < 0)
		return log_errno(-errno, "pidfd_open");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
		close(pidfd);
		return log_errno(-errno, "socketpair");
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(pidfd), close(p[0]), close(p[1]);
		return log_errno(-errno, "fork");
	}
	if (pid > 0) {
		close(pidfd), close(p[0]);
		*ret_fd = p[1], *ret_pid = pid;
		return 0;
	}
	close(p[1]);
	setpgid(0, 0);
	signal(SIGPIPE, SIG_IGN); /* whoever read the launcher's output may be gone too */
	char c;
	ssize_t n;
	while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (n == 1)
		_exit(0);
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	/* Until it is gone, however long: its id and address are not free before. */
	while (poll(&(struct pollfd){ .fd = pidfd, .events = POLLIN }, 1, -1) < 0 && errno == EINTR)
		;
	close(pidfd), close(p[0]);
	return 1;
}

static int user_ids(struct sbx *s)
{
	struct passwd *pw = getpwnam(s->cfg->user);
	if (!pw) {
		log_error("user '%s' does not exist (the sandbox step makes it)", s->cfg->user);
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		log_error("user '%s' is root: the VMM runs as an unprivileged user", s->cfg->user);
		return -EPERM;
	}
	s->uid = pw->pw_uid, s->gid = pw->pw_gid;
	struct group *g = getgrnam("kvm");
	s->kvm_gid = g ? g->gr_gid : (gid_t)-1;
	return 0;
}

/* A free id of the pool for this sandbox's VMM (its uid and its gid), held by a lock on
 * STATE_DIR/uid/ID for as long as the launcher lives: no two running VMMs share one, so a VMM
 * that a guest broke out of reaches no other sandbox's files, processes or tap. */
static int pool_id(struct sbx *s)
{
	const struct sbx_config *c = s->cfg;
	if (!c->uid_count)
		return 0;
	_cleanup_free_ char *dir = strdupf("%s/uid", c->state_dir);
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "%s", dir);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return log_errno(-errno, "%s", dir);
	for (uint32_t i = 0; i < c->uid_count; i++) {
		uid_t id = c->uid_first + i;
		char name[16];
		snprintf(name, sizeof(name), "%u", (unsigned)id);
		int fd = openat(dfd, name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return log_errno(-errno, "%s/%s", dir, name);
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			if (errno == EWOULDBLOCK)
				continue;
			return log_errno(-errno, "locking %s/%s", dir, name);
		}
		struct passwd *pw = getpwuid(id);
		struct group *g = pw ? NULL : getgrgid(id);
		if (pw || g) {
			close(fd);
			log_error("id %u of 'uids' belongs to the %s '%s': the sandboxes' ids must be no account's or group's",
				  (unsigned)id, pw ? "user" : "group", pw ? pw->pw_name : g->gr_name);
			return -EEXIST;
		}
		s->uid = id, s->gid = id;
		s->uid_lock = fd;
		return 0;
	}
	log_error("every id of 'uids' (%" PRIu32 ") is a running sandbox's", c->uid_count);
	return -EBUSY;
}

static int state_dir(const struct sbx_config *c)
{
	struct statfs f;
	if (mkdir_p(c->state_dir, 0711) < 0)
		return log_errno(-errno, "%s", c->state_dir);
	if (statfs(c->state_dir, &f) < 0)
		return log_errno(-errno, "%s", c->state_dir);
	if (f.f_type != TMPFS_MAGIC && f.f_type != RAMFS_MAGIC) {
		log_error("state_dir %s is not a tmpfs: a sandbox's data must never reach a disk", c->state_dir);
		return -EXDEV;
	}
	return 0;
}

static void print_json(const struct sbx *s, const char *backend, const char *status, int code, const struct result *res,
		       const char *start, const char *end, uint64_t discarded)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(s->id));
	json_object_object_add(o, "spec_sha256", json_object_new_string(s->spec->sha256));
	json_object_object_add(o, "backend", json_object_new_string(backend));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "exit_code", json_object_new_int(code));
	if (res->have && res->kind == SBX_EXITED)
		json_object_object_add(o, "exit_status", json_object_new_int((int)res->value));
	if (res->have && res->kind == SBX_SIGNALED)
		json_object_object_add(o, "signal", json_object_new_int((int)res->value));
	json_object_object_add(o, "output", res->have ? json_object_new_string_len(res->out, (int)res->len) : NULL);
	json_object_object_add(o, "output_dropped", json_object_new_int64(res->have ? res->dropped : 0));
	json_object_object_add(o, "start", json_object_new_string(start));
	json_object_object_add(o, "end", json_object_new_string(end));
	json_object_object_add(o, "bytes_discarded", json_object_new_int64((int64_t)discarded));
	/* The output is the guest's: C1 controls and bytes that are not UTF-8 escaped too. */
	_cleanup_free_ char *text = json_text_printable(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
											       JSON_C_TO_STRING_NOSLASHESCAPE));
	printf("%s\n", text ? text : "null");
	json_object_put(o);
}

/* S's directory, made as STATE_DIR/.new-ID, locked, then renamed: its lock fd. */
static int make_dir_locked(const struct sbx *s)
{
	_cleanup_free_ char *tmp = strdupf("%s/.new-%s", s->cfg->state_dir, s->id);
	if (!tmp)
		return -ENOMEM;
	if (mkdir(tmp, 0711) < 0)
		return log_errno(-errno, "%s", tmp);
	int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0 || rename(tmp, s->dir) < 0) {
		int r = log_errno(-errno, "%s", tmp);
		if (fd >= 0)
			close(fd);
		rmdir(tmp);
		return r;
	}
	return fd;
}

/* DIR/sandbox, root's: what ending the sandbox needs if its launcher and undertaker are both
 * killed (sweep), a "key=value" line each. */
#define RECORD_MAX 4096
static int write_record(const struct sbx *s, const struct sbx_backend *b, const char *start)
{
	_cleanup_free_ char *path = strdupf("%s/sandbox", s->dir);
	_cleanup_free_ char *text = strdupf("backend=%s\nspec=%s\nstart=%s\ntap=%s\nmac=%s\naddr=%s\ncgroup=%s\n", b->name,
					    s->spec->sha256, start, s->tap, s->tap[0] ? s->mac : "", s->tap[0] ? s->addr : "",
					    s->cgroup ? s->cgroup : "");
	if (!path || !text)
		return -ENOMEM;
	if (strlen(text) >= RECORD_MAX) {
		log_error("%s: its record would be too long", s->id);
		return -E2BIG;
	}
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, text, strlen(text)) < 0)
		return log_errno(-errno, "%s", path);
	return 0;
}

/* KEY's value in a record, copied into OUT (SIZE bytes): "" when it is missing or too long. */
static void record_get(const char *rec, const char *key, char *out, size_t size)
{
	out[0] = 0;
	size_t k = strlen(key);
	for (const char *p = rec; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, k) && p[k] == '=') {
			size_t n = strcspn(p + k + 1, "\n");
			if (n < size)
				memcpy(out, p + k + 1, n), out[n] = 0;
			return;
		}
}

/* The VMM still running in a jail's cgroup is killed (cgroup.kill), and waited for: until
 * cgroup.events says "populated 0" (cgroup.procs empties before the processes have quite
 * gone, and the cgroup cannot be removed until they have). */
static void kill_cgroup(const char *cg)
{
	_cleanup_free_ char *kill = strdupf("%s/cgroup.kill", cg), *events = strdupf("%s/cgroup.events", cg);
	_cleanup_close_ int fd = kill ? open(kill, O_WRONLY | O_CLOEXEC) : -1;
	if (fd < 0 || write(fd, "1", 1) != 1 || !events)
		return;
	for (int i = 0; i < 100; i++) {
		_cleanup_free_ char *text = NULL;
		if (read_file(events, 4096, &text, NULL) < 0 || strstr(text, "populated 0"))
			return;
		usleep(50000);
	}
}

/* A sandbox directory no launcher holds: its launcher and its undertaker were both killed
 * (`systemctl kill -s KILL`, the OOM killer). It is ended now as the undertaker would have:
 * its VMM (a jail's cgroup still running), its tap and binding, its files, and audited
 * abandoned. */
static void sweep_one(const struct sbx_config *cfg, int audit_fd, int dfd, const char *name)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
		return; /* alive */
	struct sbx s = { .cfg = cfg, .tap_fd = -1, .addr_lock = -1, .uid_lock = -1 };
	snprintf(s.id, sizeof(s.id), "%.20s", name); /* "sbx-" and 16 hex digits: checked */
	s.dir = strdupf("%s/%s", cfg->state_dir, name);
	char backend[32], spec[65], start[32], cgroup[512];
	_cleanup_free_ char *rec = NULL;
	struct stat st;
	_cleanup_close_ int rfd = openat(fd, "sandbox", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (rfd >= 0 && fstat(rfd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && st.st_size < RECORD_MAX &&
	    (rec = calloc(1, RECORD_MAX)) && pread(rfd, rec, RECORD_MAX - 1, 0) < 0)
		rec[0] = 0;
	record_get(rec, "backend", backend, sizeof(backend));
	record_get(rec, "spec", spec, sizeof(spec));
	record_get(rec, "start", start, sizeof(start));
	record_get(rec, "cgroup", cgroup, sizeof(cgroup));
	record_get(rec, "tap", s.tap, sizeof(s.tap));
	record_get(rec, "mac", s.mac, sizeof(s.mac));
	record_get(rec, "addr", s.addr, sizeof(s.addr));
	const char *leaf = strrchr(cgroup, '/');
	if (cgroup[0] == '/' && !strstr(cgroup, "/../") && STREQ(leaf + 1, s.id)) /* the jail's own */
		kill_cgroup(cgroup), s.cgroup = strdup(cgroup);
	s.bound = s.tap[0] && s.mac[0] && s.addr[0];
	/* Killed before the record was written: a named tap has the id's name. */
	if (!s.tap[0])
		sbx_net_tap_name(s.id, s.tap);
	if (!strncmp(s.tap, "sbx", 3) && (s.bound || sbx_net_link_exists(s.tap)))
		sbx_net_detach(&s);
	const struct sbx_backend *b = sbx_backend_find(backend);
	if (b && b->cleanup)
		b->cleanup(&s);
	uint64_t discarded = s.dir ? dir_bytes(s.dir) : 0;
	if (s.dir && rm_rf(s.dir) < 0)
		log_errno(-errno, "removing %s", s.dir);
	struct timespec t;
	char end[32];
	clock_gettime(CLOCK_REALTIME, &t);
	iso_time(t, end);
	audit_destroy(audit_fd, s.id, spec[0] ? spec : "-", start[0] ? start : "-", end, "abandoned", discarded);
	log_warn("%s: its launcher was killed with its undertaker: what it left is removed (abandoned)", s.id);
	free(s.dir), free(s.cgroup);
}

static void sweep(const struct sbx_config *cfg, int audit_fd)
{
	DIR *d = opendir(cfg->state_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		bool fresh = !strncmp(e->d_name, ".new-", 5); /* killed before it was named: empty */
		const char *id = e->d_name + (fresh ? 5 : 0);
		if (strncmp(id, "sbx-", 4) || strlen(id) != 20 || strspn(id + 4, "0123456789abcdef") != 16)
			continue;
		if (!fresh) {
			sweep_one(cfg, audit_fd, dirfd(d), e->d_name);
			continue;
		}
		/* Not one another launcher has just made and is about to lock: a minute old. */
		struct stat st;
		_cleanup_close_ int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_mtime + 60 < time(NULL) && flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	if (d)
		closedir(d);
}

int sbx_run(const struct sbx_config *cfg, const struct sbx_spec *spec, bool json)
{
	if (geteuid() != 0) {
		log_error("run needs root: it makes taps and writes the audit log, then runs the VMM as '%s'", cfg->user);
		return SBX_EXIT_FAILED;
	}
	const char *why = NULL;
	const struct sbx_backend *b = sbx_backend_pick(cfg, &why);
	if (!b) {
		log_error("no backend can run here: %s", why);
		return SBX_EXIT_FAILED;
	}
	struct sbx s = { .cfg = cfg, .spec = spec, .tap_fd = -1, .addr_lock = -1, .uid_lock = -1 };
	uint8_t rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return log_errno(-errno, "getrandom"), SBX_EXIT_FAILED;
	snprintf(s.id, sizeof(s.id), "sbx-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5], rnd[6], rnd[7]);
	int audit_fd = -1, log_fd = -1, code = SBX_EXIT_FAILED, status = 0, sig = 0, done_fd = -1, dir_lock = -1, r;
	_cleanup_free_ char *vmm_log = NULL, *line = NULL;
	_cleanup_strv_ char **argv = NULL;
	struct result res = { 0 };
	struct timespec t0, t1;
	char start[32], end[32];
	bool audited = false, made = false;
	const char *what = "failed";
	pid_t pid, undertaker_pid = -1;
	enum end how;
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD), sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT), sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	clock_gettime(CLOCK_REALTIME, &t0);
	iso_time(t0, start);

	/* What a killed launcher left is ended first: its VMM gone before its id is taken again. */
	if (user_ids(&s) < 0 || state_dir(cfg) < 0 || (audit_fd = audit_open(cfg->audit_log)) < 0)
		goto out;
	sweep(cfg, audit_fd);
	if (pool_id(&s) < 0)
		goto out;
	s.dir = strdupf("%s/%s", cfg->state_dir, s.id);
	s.io = strdupf("%s/io.img", s.dir ? s.dir : "");
	s.console = strdupf("%s/console.log", s.dir ? s.dir : "");
	vmm_log = strdupf("%s/vmm.log", s.dir ? s.dir : "");
	if (!s.dir || !s.io || !s.console || !vmm_log)
		goto out;
	/* Root's, so that the VMM's user can change none of its names: what root reads back and
	 * removes here is what root made. The user's are the files in it. Made under another
	 * name and locked before it takes its own: a directory named sbx-* that no one holds
	 * locked is one whose launcher is gone (sweep). */
	if ((dir_lock = make_dir_locked(&s)) < 0)
		goto out;
	made = true;
	line = strdupf("%s create id=%s spec=%s backend=%s vcpus=%u memory_mib=%u ttl_s=%u network=%s uid=%u\n", start,
		       s.id, spec->sha256, b->name, spec->vcpus, spec->memory_mib, spec->ttl_s,
		       spec->network && cfg->bridge[0] ? "yes" : "no", (unsigned)s.uid);
	if (!line || audit(audit_fd, line) < 0)
		goto out;
	audited = true;
	log_info("%s: creating (%s, %u vCPU, %u MiB, %u s to live)", s.id, b->name, spec->vcpus, spec->memory_mib,
		 spec->ttl_s);
	if (check_root(&s) < 0 || (spec->network && cfg->bridge[0] && sbx_net_attach(&s, b->named_tap) < 0) ||
	    make_io(&s, b) < 0 || make_file(&s, vmm_log, &log_fd) < 0 || make_empty(&s, s.console) < 0 ||
	    (b->prepare && b->prepare(&s) < 0) ||
	    b->argv(&s, &argv) < 0 || write_record(&s, b, start) < 0)
		goto out;
	pid = start_vmm(&s, b, argv, log_fd, &old);
	if (pid < 0) {
		log_errno(-errno, "fork");
		goto out;
	}
	sbx_net_handed_over(&s); /* the VMM holds the tap now; our copy would keep it after the VMM */
	if ((r = undertaker(pid, &done_fd, &undertaker_pid)) != 0) {
		if (r < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		} else { /* the undertaker, the launcher gone */
			what = "abandoned";
			json = false;
		}
		goto out;
	}
	how = wait_vmm(pid, spec->ttl_s, (const char *const[2]){ s.console, vmm_log }, cfg->console_max, &status, &sig);
	if (how == END_FLOODED) {
		log_error("%s: its console or the VMM's log grew past console_max (%" PRIu64 " bytes): destroyed", s.id,
			  cfg->console_max);
		show_tail("guest console", s.console);
	} else if (how == END_EXPIRED) {
		what = "expired", code = SBX_EXIT_EXPIRED;
		log_error("%s: its time to live (%u s) ran out: destroyed", s.id, spec->ttl_s);
		if (log_verbose)
			show_tail("guest console", s.console);
	} else if (how == END_STOPPED) {
		what = "stopped", code = 128 + sig;
		log_error("%s: stopped by %s", s.id, strsignal(sig));
	} else if (read_result(&s, &res) < 0 || !res.have) {
		log_error("%s: the guest ended without a result (VMM %s %d)", s.id,
			  WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		show_tail("VMM", vmm_log);
		show_tail("guest console", s.console);
	} else if (res.kind == SBX_EXITED) {
		what = "exited", code = (int)(res.value & 0xff);
	} else if (res.kind == SBX_SIGNALED) {
		what = "signaled", code = 128 + (int)(res.value & 0x7f);
	} else if (res.kind == SBX_NOEXEC) {
		what = "noexec", code = res.value == ENOENT ? 127 : SBX_EXIT_NOEXEC;
	} else {
		log_error("%s: the guest could not set itself up: %s", s.id, res.out);
		show_tail("guest console", s.console);
	}
out:;
	uint64_t discarded = 0;
	if (log_fd >= 0)
		close(log_fd);
	sbx_net_detach(&s);
	if (made && b->cleanup)
		b->cleanup(&s);
	if (made) {
		discarded = s.dir ? dir_bytes(s.dir) : 0;
		if (rm_rf(s.dir) < 0)
			log_errno(-errno, "removing %s", s.dir);
	}
	clock_gettime(CLOCK_REALTIME, &t1);
	iso_time(t1, end);
	if (audited) {
		char st[32];
		if (STREQ(what, "exited") || STREQ(what, "signaled") || STREQ(what, "noexec"))
			snprintf(st, sizeof(st), "%s:%u", what, res.value);
		else
			snprintf(st, sizeof(st), "%s", what);
		if (audit_destroy(audit_fd, s.id, spec->sha256, start, end, st, discarded) < 0)
			code = SBX_EXIT_FAILED;
	}
	if (dir_lock >= 0)
		close(dir_lock);
	if (done_fd >= 0) {
		(void)!send(done_fd, "", 1, MSG_NOSIGNAL);
		close(done_fd);
		waitpid(undertaker_pid, NULL, 0);
	}
	if (audit_fd >= 0)
		close(audit_fd);
	if (s.uid_lock >= 0)
		close(s.uid_lock); /* after its files are gone: the id is free again */
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (json && audited)
		print_json(&s, b->name, what, code, &res, start, end, discarded);
	else if (res.have) {
		fwrite(res.out, 1, res.len, stdout);
		fflush(stdout);
	}
	if (res.have && res.dropped)
		log_warn("%s: %u bytes of output beyond output_max were dropped", s.id, res.dropped);
	if (audited)
		log_info("%s: destroyed after %.1f s: %s, exit code %d, %" PRIu64 " bytes discarded", s.id, secs, what, code,
			 discarded);
	free(res.out);
	free(s.dir), free(s.io), free(s.console), free(s.jail), free(s.cgroup);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return code;
}
