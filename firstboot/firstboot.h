/* pmoves-firstboot: the root every path lives under, the one runner for external commands,
 * and messages. docs/firstboot.md is the user's reference. */
#ifndef PMOVES_FIRSTBOOT_H
#define PMOVES_FIRSTBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FB_NAME "pmoves-firstboot"

/* Exit status of every command. */
enum {
	FB_EXIT_OK = 0,
	FB_EXIT_FAILED = 1, /* a step failed, or the run is degraded or pending */
	FB_EXIT_USAGE = 2,  /* bad usage or invalid config */
	FB_EXIT_MISSING = 3,
	FB_EXIT_TIMEOUT = 4, /* status --wait --timeout: the run had not ended in time */
};

/* ---- the root (fb-root.c) ----
 * Every path the program touches is absolute as on the target ("/etc/hostname") and is
 * resolved inside ROOT by fb_open() (openat2 RESOLVE_IN_ROOT: a symlink in the tree, absolute
 * or "../..", cannot lead outside it); files are made and renamed with *at() calls relative to
 * directories opened so. There is deliberately no "ROOT + path" string: an external program
 * given one would follow the tree's symlinks from the host's root. External programs reach the
 * tree either chrooted into it (fb_run_target(): the tree's own programs) or through a file or
 * directory opened here and handed over as /proc/self/fd/N (fb_fd_path()).
 * fb_root_set() fails with -ENOSYS on a kernel without openat2 (before 5.6). */
int fb_root_set(const char *root);
const char *fb_root(void);
/* Make what was written under the root durable (syncfs): external commands such as ssh-keygen
 * and systemctl do not fsync, and a power cut must not leave their files empty. */
void fb_sync(void);
/* Root is "/": commands that change the running system (hostname, sysctl, systemctl start,
 * reboot, modprobe) are run only then. Test hook: with PMOVES_FIRSTBOOT_LIVE=1 and a
 * PMOVES_FIRSTBOOT_RUNNER, a --root tree is taken for the running system (every command goes
 * to the stand-in runner), so tests reach the paths of a live machine. */
bool fb_live(void);
int fb_open(const char *abs, int flags, mode_t mode);
/* The directory ABS opened inside the root (read-only); with CREATE it and its missing parents
 * are made first, 0755 root:root. -errno: -ENOTDIR or -ELOOP for a symlink that leads nowhere
 * inside the root. */
int fb_open_dir(const char *abs, bool create);
/* A directory a step gives to a user (a home, a store): ABS and its missing parents made
 * (0755 root:root) and opened one component at a time through no symbolic link (-ELOOP: the
 * user may have put one in a part they own, to have root hand over what it leads to), then
 * owned by UID:GID with MODE; -EPERM when it belongs to someone else than root and UID. Its
 * fd, or -errno. */
int fb_user_dir(const char *abs, uid_t uid, gid_t gid, mode_t mode);
/* The path an external program is given for FD, the file or directory ABS opened inside the
 * root: ABS itself when the root is "/", else "/proc/self/fd/N" (a trailing '/' of ABS kept),
 * which reaches exactly what FD is, whatever symlinks the tree holds. With INHERIT, FD is made
 * to survive exec (close it after the program ran). NULL on failure. */
char *fb_fd_path(int fd, const char *abs, bool inherit);
int fb_read(const char *abs, size_t max, char **ret_buf, size_t *ret_len);
/* The first line of a small file (sysfs, /proc) into BUF, without its newline; what does not
 * fit is cut. */
int fb_read_line(const char *abs, char *buf, size_t size);
/* 1 exists (anything, symlinks not followed for the last component), 0 not, or -errno. */
int fb_exists(const char *abs);
/* Atomic replace: temp file in the same directory, fchown (uid (uid_t)-1: leave), fchmod,
 * fsync, rename, fsync the directory. Missing parent directories are created 0755 root:root. */
int fb_write(const char *abs, const void *buf, size_t len, mode_t mode, uid_t uid, gid_t gid);

/* Remove the file (not a directory) ABS: unlinkat in its directory, opened inside the root
 * like fb_open(), which is then synced. 0 also when it is not there. Dry run: prints "would
 * remove ABS" instead. */
int fb_remove(const char *abs);

/* 1: ABS is a regular file holding exactly BUF; 0: not (or missing); -errno. */
int fb_file_is(const char *abs, const void *buf, size_t len);
/* 1: ABS is a regular file (the last component not a symlink) holding exactly BUF, with the
 * permission bits MODE and, unless UID is (uid_t)-1, owned by UID:GID; 0: not (or missing);
 * -errno. */
int fb_file_matches(const char *abs, const void *buf, size_t len, mode_t mode, uid_t uid, gid_t gid);

/* ---- reading files (fb-read.c) ----
 * Every file read from a config, a tree or the command line is opened with O_NONBLOCK (the open
 * of a FIFO would wait for a writer), checked to be a regular file (a FIFO, a device, a socket
 * or a directory is refused at once: reading one can block forever or never end), then read
 * with O_NONBLOCK cleared, at most MAX bytes. fb_read(), fb_read_line() and fb_file_is() go
 * through it. The results: 0; -EISDIR (a directory), -EINVAL (another file that is not a
 * regular one), -EFBIG (larger than MAX: read_fd() stops one byte past it), -errno.
 * *ret_error (may be NULL) is the message: "'NAME' is not a regular file (a FIFO)", "'NAME'
 * is larger than 1 MiB", "cannot read 'NAME': why". */
/* "a FIFO", "a directory", "a character device", ... for the file type in MODE. */
const char *fb_file_type(mode_t mode);
/* FD (opened O_NONBLOCK) is a regular file: then O_NONBLOCK is cleared. */
int fb_fd_regular(int fd, const char *name, char **ret_error);
/* The whole of FD (opened O_NONBLOCK) as a NUL-terminated buffer; NAME for messages. */
int fb_read_fd(int fd, const char *name, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);
/* ABS under the root. */
int fb_read_file(const char *abs, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);
/* PATH on the host, not under the root: validate's FILE. */
int fb_read_host(const char *path, size_t max, char **ret_buf, size_t *ret_len, char **ret_error);

/* Dry run (run --dry-run): fb_write() prints the path, mode and content instead of writing
 * (content hidden when the mode lets only the owner read it), and fb_run() prints the command
 * instead of running it. fb_run_capture() with an output still runs: a command whose output is
 * read is a query, and steps use it only for queries. */
void fb_dry_run_set(bool on);
bool fb_dry_run(void);

/* ---- the runner (fb-root.c) ----
 * Every external command goes through fb_run(): argv, never a shell. Test hook: with
 * PMOVES_FIRSTBOOT_RUNNER=PROG in the environment, PROG is run with the real argv appended.
 * The result is the exit status (0..255, 128+signal) or -errno. The child's output goes to our
 * stderr (the journal) unless captured. */
int fb_run(char *const argv[]);
int fb_run_capture(char *const argv[], char **ret_out);
/* ARGV as a program of the target: run as it is on the running system, as `chroot ROOT ARGV`
 * on a tree (fb-sys.c): the program is the tree's, and every path it is given or follows
 * resolves inside the tree. What programs that write into the tree by path are run with. */
int fb_run_target(char *const argv[]);
int fb_run_target_capture(char *const argv[], char **ret_out);
/* apt-get -y with the config files' defaults kept (--force-confdef, --force-confold), then
 * VERB and WORDS, on the target (fb_run_target), noninteractive. The exit status or -errno. */
int fb_apt(const char *verb, char *const *words);
/* dpkg --configure -a on the target: an apt run cut short (a power cut, a timeout) leaves dpkg
 * "interrupted", and every later apt-get refuses to run until it is finished. 0, or -EIO with
 * *ret_msg set. */
int fb_dpkg_finish(char **ret_msg);
/* The packages dpkg's status file (/var/lib/dpkg/status) lists as installed; NULL for none. */
int fb_installed_packages(char ***ret);
/* The message for ARGV's result R when it is not 0: "'ARGV' exited with R", or "cannot run
 * 'ARGV': why" for -errno. Caller frees. */
char *fb_run_error(char *const argv[], int r);
/* Run ARGV; when it does not exit 0, *ret_msg is fb_run_error()'s and the result -EIO (or
 * -errno). */
int fb_run_msg(char *const argv[], char **ret_msg);

/* ---- systemd (fb-sys.c) ----
 * Unit files (enable, disable, mask, is-enabled) are the tree's with --root=ROOT, the running
 * system's otherwise; units themselves (start, restart, stop, reload) exist only on the
 * running system. UNITS: a NULL-terminated list, or NULL for none. */

/* The argv `systemctl --root=ROOT VERB UNIT...` on a tree, `systemctl --quiet VERB UNIT...` on
 * the running system: for the verbs that act on unit files. */
int fb_systemctl_argv(const char *verb, char *const *units, char ***ret);
/* The argv `systemctl --no-block VERB UNIT...`, for the running system: queued, never waited
 * for (the boot's run comes before sysinit.target, and a unit with default dependencies waits
 * for it: waiting here would deadlock the boot). */
int fb_systemctl_live_argv(const char *verb, char *const *units, char ***ret);
/* Those run: the exit status, or -errno. fb_systemctl_live() runs nothing on a tree (0). */
int fb_systemctl(const char *verb, char *const *units);
int fb_systemctl_live(const char *verb, char *const *units);
/* STATE, a word `systemctl is-enabled` prints, is one of the enabled ones (fb-sys.c says
 * which, and why). */
bool fb_unit_state_enabled(const char *state);
/* 1: UNIT is enabled (`systemctl is-enabled`, on the tree or the running system); 0: not;
 * -errno (-ENOENT: no systemctl). */
int fb_unit_enabled(const char *unit);
/* 1: UNIT is active on the running system (`systemctl is-active` exits 0); 0: not; -errno. */
int fb_unit_active(const char *unit);
/* 1: UNIT runs as a step that set it up wants it: enabled (fb_unit_enabled()) and, on the
 * running system, active (fb_unit_active(); a tree has nothing running); 0: not; -errno. What
 * a step's check asks of the services it enables and starts: files and programs in place are
 * not enough (a program installed after the run that wrote the files was never started). */
int fb_unit_running(const char *unit);
/* systemctl enable UNIT (--root=ROOT on a tree), and with START, `systemctl --no-block
 * restart` it on the running system (queued: it may start only after this boot's run). 0, or
 * -errno with *ret_msg set. */
int fb_unit_enable(const char *unit, bool start, char **ret_msg);
/* The running system is still booting (`systemctl is-system-running`: initializing or
 * starting): the first run of a boot comes before sysinit.target, so services and the network
 * are not up. Steps that need them end pending then; the timer runs them after the boot. */
bool fb_system_booting(void);
/* Seconds spent waiting for external commands since the program started. */
double fb_run_seconds(void);

/* ---- accounts (fb-sys.c) ----
 * The ID of the first N bytes of NAME (a name, or a number taken as it is) in DB, the tree's
 * "/etc/passwd" or "/etc/group" (field 3 of its line; not getpwnam: the tree may not be the
 * running system): 0, -ESRCH (no such entry), -EINVAL, -errno. */
int fb_lookup_id(const char *db, const char *name, size_t n, unsigned *ret);
/* FD (a directory) and everything under it, DEPTH levels down, owned by UID:GID; symlinks
 * themselves (never followed). A file with more than one link that is not UID's already is
 * refused (-EPERM): it may be a hard link to a file of the system's. */
int fb_chown_tree(int fd, uid_t uid, gid_t gid, unsigned depth);
/* A step's system user: TEXT written to PATH (a sysusers.d file), then systemd-sysusers on the
 * target. 0, or -errno with *ret_msg. */
int fb_sysusers(const char *path, const char *text, char **ret_msg);
/* USER's IDs, as systemd-sysusers made them (the tree's /etc/passwd and /etc/group): 0, or
 * -errno with *ret_msg. */
int fb_user_ids(const char *user, unsigned *ret_uid, unsigned *ret_gid, char **ret_msg);

/* ---- messages (fb-report.c) ----
 * Errors go to stderr as "pmoves-firstboot: problem" with names in single quotes. */
extern int fb_verbose;
void fb_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fb_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fb_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Dry run: "pmoves-firstboot: would TEXT" on stdout, TEXT through the secret filter of
 * fb_redact() with every control character escaped (newlines and tabs too: \x0a, \x09). */
void fb_would(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* URL as messages and the plan show it: without user:password, query and fragment
 * (lib/download.h's url_shown()), or as it is when it has none of them. Caller frees; NULL on
 * ENOMEM. */
char *fb_url_shown(const char *url);

/* Message helper: asprintf that returns NULL on failure. */
#define fb_strdupf strdupf /* lib/util.h */

#endif
