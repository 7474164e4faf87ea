/* The QEMU runner: machine per architecture (arch.h), firmware per boot loader (its record's
 * qemu hook), a KVM probe, and a console watcher that reads QEMU's serial console from a pipe
 * with a deadline. */
#include "qemu.h"
#include "arch.h"
#include "cmd.h"
#include "log.h"
#include "registry.h"
#include "run.h"
#include "util.h"

#include <blkid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#define CONSOLE_LINE_MAX 4096
#define CONFIG_MAX (1u << 20) /* fw_cfg files are read into guest memory: keep them small */
#define TIMEOUT_MAX (7u * 24 * 3600)
#define MEMORY_MIN 64u
#define MEMORY_MAX (1u << 20)
#define CPUS_MAX 64u

/* ---- signals: SIGINT/SIGTERM are blocked except while we wait in ppoll() ---- */

static volatile sig_atomic_t qemu_got_signal;
static const sigset_t *qemu_waitmask; /* mask for ppoll, NULL outside qemu_boot */

static void on_signal(int sig) { qemu_got_signal = sig; }

/* ---- child processes ---- */

struct child {
	pid_t pid;
	int out_fd; /* QEMU's stdout: the serial console */
	int err_fd; /* QEMU's stderr */
};

static void child_exec(const char *path, char *const argv[], int in_fd, int out_fd, int err_fd)
{
	sigset_t empty;
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	if (in_fd < 0)
		in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in_fd < 0 || dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		_exit(127);
	/* Everything else is closed, even descriptors a caller opened without O_CLOEXEC. */
	if (close_range(3, UINT_MAX, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	execv(path, argv);
	_exit(127);
}

static int child_spawn(const char *path, char *const argv[], int in_fd, struct child *ret)
{
	int outp[2], errp[2];
	if (pipe2(outp, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(errp, O_CLOEXEC) < 0) {
		int r = -errno;
		close(outp[0]);
		close(outp[1]);
		return r;
	}
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(outp[0]);
		close(outp[1]);
		close(errp[0]);
		close(errp[1]);
		return r;
	}
	if (pid == 0)
		child_exec(path, argv, in_fd, outp[1], errp[1]);
	close(outp[1]);
	close(errp[1]);
	fcntl(outp[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	*ret = (struct child){ .pid = pid, .out_fd = outp[0], .err_fd = errp[0] };
	return 0;
}

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* SIGTERM (QEMU shuts down cleanly on it), then SIGKILL after the grace period; always reaps.
 * Returns the exit status (0..255, 128+signal). */
static int child_stop(struct child *c)
{
	int status = 0, r = -1;
	if (c->pid > 0) {
		pid_t w;
		while ((w = waitpid(c->pid, &status, WNOHANG)) < 0 && errno == EINTR)
			;
		if (w == c->pid)
			r = status_to_exit(status);
		else {
			kill(c->pid, SIGTERM);
			double deadline = now_seconds() + QEMU_STOP_GRACE;
			for (;;) {
				w = waitpid(c->pid, &status, WNOHANG);
				if (w == c->pid || (w < 0 && errno != EINTR))
					break;
				if (now_seconds() > deadline) {
					kill(c->pid, SIGKILL);
					while ((w = waitpid(c->pid, &status, 0)) < 0 && errno == EINTR)
						;
					break;
				}
				nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
			}
			r = w == c->pid ? status_to_exit(status) : -1;
		}
		c->pid = 0;
	}
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	c->out_fd = c->err_fd = -1;
	return r;
}

/* ---- the console ---- */

struct console {
	regex_t re;
	bool use_re;
	bool echo;          /* copy the raw console to stdout */
	bool forward_err;   /* copy QEMU's stderr to ours */
	int log_fd;         /* raw copy of both, or -1 */
	char line[CONSOLE_LINE_MAX];
	size_t len;
	char *tail[QEMU_TAIL_LINES];
	size_t tail_next, tail_count;
	char *matched;      /* the cleaned line that matched */
	bool partial_checked; /* the current partial line was matched already */
	const char *stop_on_err; /* give up when QEMU's stderr says this */
	bool err_stopped;
	char err[1024];     /* the start of QEMU's stderr */
	size_t err_len;
};

static void write_all(int fd, const char *p, size_t n, bool *ok)
{
	while (n && *ok) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*ok = false; /* a closed stdout or a full disk does not stop the boot */
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

size_t qemu_console_clean(char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0x1b) {
			if (i + 1 >= len)
				break;
			unsigned char k = (unsigned char)s[++i];
			if (k == '[') { /* CSI: parameters, intermediates, one final byte */
				while (i + 1 < len && ((unsigned char)s[i + 1] < 0x40 || (unsigned char)s[i + 1] > 0x7e))
					i++;
				i++;
			} else if (k == ']' || k == 'P' || k == '_' || k == '^') { /* string: to BEL or ST */
				while (++i < len) {
					if (s[i] == '\a')
						break;
					if (s[i] == 0x1b && i + 1 < len && s[i + 1] == '\\') {
						i++;
						break;
					}
				}
			} else if (k >= 0x20 && k <= 0x2f) { /* ESC ( B and friends */
				if (i + 1 < len)
					i++;
			}
			continue;
		}
		if (c == '\b') {
			if (o > 0)
				o--;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			continue;
		s[o++] = (char)c;
	}
	if (o < len)
		s[o] = '\0';
	return o;
}

static void console_tail_push(struct console *con, const char *clean)
{
	char *dup = strdup(clean);
	if (!dup)
		return;
	free(con->tail[con->tail_next]);
	con->tail[con->tail_next] = dup;
	con->tail_next = (con->tail_next + 1) % QEMU_TAIL_LINES;
	if (con->tail_count < QEMU_TAIL_LINES)
		con->tail_count++;
}

/* Clean a copy of the current line and match it; a complete line also goes into the tail. */
static void console_line(struct console *con, bool complete)
{
	char buf[CONSOLE_LINE_MAX + 1];
	memcpy(buf, con->line, con->len);
	size_t n = qemu_console_clean(buf, con->len);
	buf[n] = '\0';
	bool blank = strspn(buf, " \t") == n;
	if (complete) {
		if (!blank)
			console_tail_push(con, buf);
		con->len = 0;
	}
	if (con->use_re && !con->matched && !blank && regexec(&con->re, buf, 0, NULL, 0) == 0)
		con->matched = strdup(buf);
}

static void console_feed(struct console *con, const char *p, size_t n)
{
	bool ok = true;
	if (con->log_fd >= 0)
		write_all(con->log_fd, p, n, &ok);
	if (con->echo) {
		write_all(STDOUT_FILENO, p, n, &con->echo);
	}
	for (size_t i = 0; i < n && !con->matched; i++) {
		if (p[i] == '\n') {
			console_line(con, true);
			continue;
		}
		con->line[con->len++] = p[i];
		if (con->len == sizeof(con->line))
			console_line(con, true);
	}
	con->partial_checked = false;
}

static void console_feed_err(struct console *con, const char *p, size_t n)
{
	bool ok = true;
	if (con->log_fd >= 0)
		write_all(con->log_fd, p, n, &ok);
	if (con->forward_err)
		write_all(STDERR_FILENO, p, n, &ok);
	size_t room = sizeof(con->err) - 1 - con->err_len;
	if (n > room)
		n = room;
	memcpy(con->err + con->err_len, p, n);
	con->err_len += n;
	con->err[con->err_len] = '\0';
	if (con->stop_on_err && strstr(con->err, con->stop_on_err))
		con->err_stopped = true;
}

/* Print the last lines, the partial one included, on stderr. */
static void console_print_tail(struct console *con)
{
	if (con->len > 0) {
		console_line(con, true);
	}
	if (con->tail_count == 0) {
		fprintf(stderr, "(the console printed nothing)\n");
		return;
	}
	fprintf(stderr, "last %zu console lines:\n", con->tail_count);
	size_t start = (con->tail_next + QEMU_TAIL_LINES - con->tail_count) % QEMU_TAIL_LINES;
	for (size_t i = 0; i < con->tail_count; i++)
		fprintf(stderr, "  | %s\n", con->tail[(start + i) % QEMU_TAIL_LINES]);
}

static void console_done(struct console *con)
{
	if (con->use_re)
		regfree(&con->re);
	for (size_t i = 0; i < QEMU_TAIL_LINES; i++)
		free(con->tail[i]);
	free(con->matched);
}

enum watch_outcome { WATCH_MATCH, WATCH_EXITED, WATCH_TIMEOUT, WATCH_SIGNAL, WATCH_ERR_STOP };

/* A partial line (a prompt) is matched once the console has been quiet this long, so that a
 * line arriving in pieces is matched and printed whole. */
#define PARTIAL_QUIET 0.2

/* Read the console until it matches, QEMU exits, the deadline (0: none) passes or a signal
 * arrives. On WATCH_EXITED, ret_status is QEMU's exit status and the child is reaped. */
static int watch(struct child *c, struct console *con, double deadline, enum watch_outcome *ret,
		 int *ret_status)
{
	char buf[65536];
	for (;;) {
		if (qemu_got_signal) {
			*ret = WATCH_SIGNAL;
			return 0;
		}
		if (con->matched) {
			*ret = WATCH_MATCH;
			return 0;
		}
		if (con->err_stopped) {
			*ret = WATCH_ERR_STOP;
			return 0;
		}
		if (c->out_fd < 0 && c->err_fd < 0) {
			/* QEMU closed both pipes: it is exiting. */
			*ret_status = child_stop(c);
			*ret = WATCH_EXITED;
			return 0;
		}
		struct pollfd fds[2];
		nfds_t nfds = 0;
		if (c->out_fd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = c->out_fd, .events = POLLIN };
		if (c->err_fd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = c->err_fd, .events = POLLIN };
		struct timespec ts, *tsp = NULL;
		bool quiet_wait = con->use_re && con->len > 0 && !con->partial_checked;
		if (deadline > 0 || quiet_wait) {
			double left = deadline > 0 ? deadline - now_seconds() : PARTIAL_QUIET;
			if (left <= 0) {
				*ret = WATCH_TIMEOUT;
				return 0;
			}
			if (quiet_wait && left > PARTIAL_QUIET)
				left = PARTIAL_QUIET;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			tsp = &ts;
		}
		int n = ppoll(fds, nfds, tsp, qemu_waitmask);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0 && quiet_wait) {
			con->partial_checked = true;
			console_line(con, false);
			continue;
		}
		for (nfds_t i = 0; i < nfds; i++) {
			if (!fds[i].revents)
				continue;
			ssize_t got = read(fds[i].fd, buf, sizeof(buf));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			bool is_out = fds[i].fd == c->out_fd;
			if (got <= 0) {
				close(fds[i].fd);
				if (is_out)
					c->out_fd = -1;
				else
					c->err_fd = -1;
				continue;
			}
			if (is_out)
				console_feed(con, buf, (size_t)got);
			else
				console_feed_err(con, buf, (size_t)got);
		}
	}
}

/* ---- architecture ---- */

/* The string at OBJ.KEY (KEY may be NULL: at the top) of the manifest.json beside IMAGE, in
 * *ret (malloc'd), and the manifest's path in *ret_path; -ENODATA when there is none. */
static int manifest_string(const char *image, const char *obj, const char *key, char **ret, char **ret_path)
{
	_cleanup_free_ char *copy = strdup(image);
	if (!copy)
		return -ENOMEM;
	char *slash = strrchr(copy, '/');
	const char *dir = ".";
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
	}
	_cleanup_free_ char *path = NULL, *text = NULL;
	if (asprintf(&path, "%s/manifest.json", dir) < 0)
		return -ENOMEM;
	int r = read_file(path, 16u << 20, &text, NULL);
	if (r < 0)
		return r == -ENOENT ? -ENODATA : r;
	json_object *m = json_tokener_parse(text), *o = m, *v = NULL;
	if (!m) {
		log_warn("'%s' is not valid JSON, ignoring", path);
		return -ENODATA;
	}
	r = -ENODATA;
	if ((!obj || json_object_object_get_ex(m, obj, &o)) && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_string))
		r = (*ret = strdup(json_object_get_string(v))) ? 0 : -ENOMEM;
	json_object_put(m);
	if (r == 0)
		*ret_path = TAKE_PTR(path);
	return r;
}

static int arch_from_manifest(const char *image, const char **ret_arch)
{
	_cleanup_free_ char *name = NULL, *path = NULL;
	int r = manifest_string(image, NULL, "arch", &name, &path);
	if (r < 0)
		return r;
	const struct arch *a = arch_find(name);
	if (!a) {
		log_error("'%s': .arch: '%s' cannot be booted (use %s)", path, name, arch_names());
		return -EINVAL;
	}
	*ret_arch = a->name;
	return 0;
}

/* The boot loader of IMAGE: manifest.json's, else the first that recognises the image, else
 * NULL (one the machine's UEFI starts). -EINVAL: the manifest names one this version lacks. */
static int image_loader(const char *image, const struct boot_loader **ret)
{
	_cleanup_free_ char *name = NULL, *path = NULL;
	int r = manifest_string(image, "boot", "loader", &name, &path);
	if (r == -ENODATA) {
		*ret = boot_recognise(image);
		return 0;
	}
	if (r < 0)
		return r;
	if (!(*ret = boot_find(name))) {
		log_error("'%s': .boot.loader: '%s' is not a boot loader this version can boot (%s)", path, name,
			  boot_names());
		return -EINVAL;
	}
	return 0;
}

static void qemu_boot_done(struct qemu_boot *qb)
{
	free(qb->kernel);
	free(qb->initrd);
	free(qb->dtb);
	free(qb->append);
}

static int arch_from_gpt(const char *image, const char **ret_arch)
{
	blkid_probe pr = blkid_new_probe_from_filename(image);
	if (!pr)
		return -ENODATA;
	int r = -ENODATA;
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	blkid_partlist ls = blkid_do_safeprobe(pr) == 0 ? blkid_probe_get_partitions(pr) : NULL;
	int n = ls ? blkid_partlist_numof_partitions(ls) : 0;
	for (int i = 0; i < n && r == -ENODATA; i++) {
		const char *type = blkid_partition_get_type_string(blkid_partlist_get_partition(ls, i));
		const struct arch *a = arch_by_root_type(type);
		if (a) {
			*ret_arch = a->name;
			r = 0;
		}
	}
	blkid_free_probe(pr);
	return r;
}

int qemu_detect_arch(const char *image, const char **ret_arch, const char **ret_how)
{
	const char *arch = NULL;
	int r = arch_from_manifest(image, &arch);
	if (r == 0) {
		*ret_arch = arch;
		*ret_how = "manifest.json";
		return 0;
	}
	if (r != -ENODATA)
		return r;
	r = arch_from_gpt(image, &arch);
	if (r < 0)
		return r;
	*ret_arch = arch;
	*ret_how = "GPT root partition type";
	return 0;
}

/* ---- KVM ---- */

/* The probe firmware, 64 KiB at the top of the first MiB and of 4 GiB. At 0xFFF0 (the reset
 * vector): jmp 0xF000. At 0xF000, assembled from:
 *	mov $0x3f8,%dx; mov $'1',%al; out %al,%dx; cli
 *	lgdtl %cs:0xF070; mov %cr0,%eax; or $1,%eax; mov %eax,%cr0
 *	ljmpl $0x08,$0xFFFFF020
 *   .code32 (0xF020)
 *	mov $0x10,%ax; mov %ax,%ds; mov %ax,%es; mov %ax,%ss; mov $'2',%al; out %al,%dx
 *	fninit; fwait; fld1
 *	mov %cr4,%eax; or $0x600,%eax; mov %eax,%cr4
 *	mov %cr0,%eax; and $~4,%eax; or $2,%eax; mov %eax,%cr0
 *	xorps %xmm0,%xmm0; addps %xmm0,%xmm0
 *	mov $'K',%al; out %al,%dx; 1: hlt; jmp 1b
 *   0xF058: GDT (null, flat 32-bit code, flat data); 0xF070: its pointer.
 * A KVM that cannot run guests here passes the real-mode part and dies at fwait, as OVMF does
 * ("KVM internal error. Suberror: 1", emulation failure). */
static const unsigned char kvm_probe_code[] = {
	0xba, 0xf8, 0x03, 0xb0, 0x31, 0xee, 0xfa, 0x2e, 0x66, 0x0f, 0x01, 0x16, 0x70, 0xf0, 0x0f, 0x20,
	0xc0, 0x66, 0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x20, 0xf0, 0xff, 0xff, 0x08, 0x00,
	0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xb0, 0x32, 0xee, 0xdb, 0xe3, 0x9b,
	0xd9, 0xe8, 0x0f, 0x20, 0xe0, 0x0d, 0x00, 0x06, 0x00, 0x00, 0x0f, 0x22, 0xe0, 0x0f, 0x20, 0xc0,
	0x83, 0xe0, 0xfb, 0x83, 0xc8, 0x02, 0x0f, 0x22, 0xc0, 0x0f, 0x57, 0xc0, 0x0f, 0x58, 0xc0, 0xb0,
	0x4b, 0xee, 0xf4, 0xeb, 0xfd, 0x8d, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0x00, 0x00, 0x00, 0x9b, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00,
	0x17, 0x00, 0x58, 0xf0, 0xff, 0xff,
};

static int make_temp_dir(char **ret)
{
	const char *tmp = getenv("TMPDIR");
	char *path = NULL;
	if (asprintf(&path, "%s/pmoves-run-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		return -ENOMEM;
	if (!mkdtemp(path)) {
		int r = -errno;
		free(path);
		return r;
	}
	*ret = path;
	return 0;
}

static int write_probe(const char *path)
{
	_cleanup_free_ unsigned char *img = calloc(1, 65536);
	if (!img)
		return -ENOMEM;
	memcpy(img + 0xF000, kvm_probe_code, sizeof(kvm_probe_code));
	img[0xFFF0] = 0xe9; /* jmp near 0xF000: rel16 = 0xF000 - 0xFFF3 */
	img[0xFFF1] = 0x0d;
	img[0xFFF2] = 0xf0;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	bool ok = true;
	write_all(fd, (const char *)img, 65536, &ok);
	return ok ? 0 : -EIO;
}

/* QEMU's stderr, first line that says "error", else the first line. */
static void first_error_line(const char *err, char *buf, size_t size)
{
	const char *pick = NULL, *first = NULL;
	for (const char *p = err; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n && !first)
			first = p;
		if (n && !pick && memmem(p, n, "rror", 4))
			pick = p;
		p += n + (e ? 1 : 0);
	}
	if (!pick)
		pick = first;
	buf[0] = '\0';
	if (!pick)
		return;
	size_t n = strcspn(pick, "\n");
	if (n >= size)
		n = size - 1;
	memcpy(buf, pick, n);
	buf[n] = '\0';
}

int qemu_probe_kvm(char **ret_why)
{
	char *why = NULL;
	int works = 0, r;
	_cleanup_close_ int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		r = -errno;
		if (asprintf(&why, "cannot open '/dev/kvm': %s", strerror(-r)) < 0)
			return -ENOMEM;
		*ret_why = why;
		return 0;
	}
	_cleanup_free_ char *qemu = NULL;
	if (find_program("qemu-system-x86_64", &qemu) < 0) {
		if (!(why = strdup("'qemu-system-x86_64' not found")))
			return -ENOMEM;
		*ret_why = why;
		return 0;
	}
	_cleanup_free_ char *dir = NULL, *bios = NULL;
	if ((r = make_temp_dir(&dir)) < 0)
		return r;
	if (asprintf(&bios, "%s/kvm-probe.bin", dir) < 0) {
		rm_rf(dir);
		return -ENOMEM;
	}
	if ((r = write_probe(bios)) < 0) {
		rm_rf(dir);
		return r;
	}
	char *argv[] = { qemu, "-nodefaults", "-machine", "pc", "-accel", "kvm", "-m", "16",
			 "-bios", bios, "-display", "none", "-chardev", "stdio,id=con,signal=off",
			 "-serial", "chardev:con", NULL };
	struct child c;
	if ((r = child_spawn(qemu, argv, -1, &c)) < 0) {
		rm_rf(dir);
		return r;
	}
	struct console con = { .log_fd = -1, .use_re = true, .stop_on_err = "KVM internal error" };
	r = regcomp(&con.re, "K", REG_EXTENDED | REG_NOSUB) == 0 ? 0 : -ENOMEM;
	double t0 = now_seconds();
	enum watch_outcome out = WATCH_TIMEOUT;
	int status = 0;
	if (r == 0)
		r = watch(&c, &con, t0 + QEMU_KVM_PROBE_DEADLINE, &out, &status);
	double took = now_seconds() - t0;
	child_stop(&c);
	rm_rf(dir);

	char seen[CONSOLE_LINE_MAX + 1];
	memcpy(seen, con.line, con.len);
	seen[qemu_console_clean(seen, con.len)] = '\0';
	char err[256];
	first_error_line(con.err, err, sizeof(err));
	if (r == 0 && out == WATCH_SIGNAL)
		r = -EINTR;
	if (r == 0) {
		const char *stage = strchr(seen, '2') ? "at its first FPU/SSE instruction in protected mode"
				    : strchr(seen, '1') ? "before entering protected mode"
							: "before printing anything";
		if (out == WATCH_MATCH) {
			works = 1;
			r = asprintf(&why, "a KVM probe guest ran protected-mode FPU/SSE code in %.1f s", took);
		} else if (out == WATCH_ERR_STOP)
			r = asprintf(&why, "the KVM probe guest failed %s: %s", stage, err);
		else if (out == WATCH_EXITED)
			r = asprintf(&why, "the KVM probe guest stopped %s: QEMU exited with status %d%s%s",
				     stage, status, *err ? ": " : "", err);
		else
			r = asprintf(&why, "the KVM probe guest hung %s (no 'K' within %d s)%s%s", stage,
				     QEMU_KVM_PROBE_DEADLINE, *err ? ": " : "", err);
		r = r < 0 ? -ENOMEM : 0;
	}
	console_done(&con);
	if (r < 0)
		return r;
	*ret_why = why;
	return works;
}

int qemu_pick_accel(const char *want, const char *arch, const char **ret_accel, char **ret_why)
{
	char *why = NULL;
	if (want && STREQ(want, "kvm")) {
		why = strdup("forced by --accel kvm");
		*ret_accel = "kvm";
	} else if (want && STREQ(want, "tcg")) {
		why = strdup("forced by --accel tcg");
		*ret_accel = "tcg";
	} else if (want && !STREQ(want, "auto")) {
		return -EINVAL;
	} else {
		struct utsname u;
		const struct arch *host = uname(&u) == 0 ? arch_find(u.machine) : NULL;
		const struct arch *guest = arch_find(arch);
		if (!guest)
			return -EINVAL;
		if (host != guest) {
			if (asprintf(&why, "%s guest on %s host", guest->name, host ? host->name : u.machine) < 0)
				return -ENOMEM;
			*ret_accel = "tcg";
		} else if (!STREQ(guest->name, "x86_64")) {
			if (asprintf(&why, "no KVM probe for %s hosts yet", guest->name) < 0)
				return -ENOMEM;
			*ret_accel = "tcg";
		} else {
			_cleanup_free_ char *probe = NULL;
			int r = qemu_probe_kvm(&probe);
			if (r < 0)
				return r;
			*ret_accel = r ? "kvm" : "tcg";
			if (asprintf(&why, "%s", probe) < 0)
				return -ENOMEM;
		}
	}
	if (!why)
		return -ENOMEM;
	*ret_why = why;
	return 0;
}

/* ---- options ---- */

static int check_config(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		log_error("config '%s' cannot be read: %s", path, strerror(errno));
		return EXIT_USAGE;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("config '%s' is not a regular file", path);
		return EXIT_USAGE;
	}
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_file(path, CONFIG_MAX, &text, &len);
	if (r < 0) {
		log_error("config '%s' cannot be read: %s%s", path, strerror(-r),
			  r == -EFBIG ? " (at most 1 MiB)" : "");
		return EXIT_USAGE;
	}
	if (len == 0) {
		log_error("config '%s' is empty, expected a JSON object", path);
		return EXIT_USAGE;
	}
	json_tokener *tok = json_tokener_new();
	if (!tok)
		return log_errno(-ENOMEM, "cannot check config '%s'", path), EXIT_FAIL;
	json_object *obj = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t off = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		if (jerr == json_tokener_continue)
			jerr = json_tokener_error_parse_eof;
		size_t line = 1, col = 1;
		for (size_t i = 0; i < off && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else
				col++;
		}
		json_object_put(obj);
		log_error("config '%s' is not valid JSON: %s at line %zu, column %zu", path,
			  json_tokener_error_desc(jerr), line, col);
		return EXIT_USAGE;
	}
	/* Trailing garbage after the object is an error too. */
	size_t end = off;
	while (end < len && strchr(" \t\r\n", text[end]))
		end++;
	bool is_obj = json_object_is_type(obj, json_type_object);
	json_object_put(obj);
	if (end < len) {
		log_error("config '%s' is not valid JSON: unexpected text after the end at byte %zu", path, end);
		return EXIT_USAGE;
	}
	if (!is_obj) {
		log_error("config '%s' is not a JSON object", path);
		return EXIT_USAGE;
	}
	return 0;
}

/* A MAC address a NIC can have: a unicast one (the group bit of its first octet clear). */
static bool mac_unicast(const char *s) { return mac_valid(s) && (hex_digit(s[1]) & 1) == 0; }

static int check_pxe_opts(const struct qemu_opts *o)
{
	if (o->image) {
		log_error("a network boot boots no IMAGE (given '%s')", o->image);
		return EXIT_USAGE;
	}
	if ((o->persist && !o->n_pxe_disks) || o->disk_size || o->machine || o->iommu) {
		log_error("--%s is for booting a disk image, not for a network boot%s",
			  o->persist ? "persist" : o->disk_size ? "disk-size" : o->machine ? "machine" : "iommu",
			  o->persist ? " without --disk" : "");
		return EXIT_USAGE;
	}
	if (o->bios && o->vars) {
		log_error("--vars: a BIOS boot has no firmware variables");
		return EXIT_USAGE;
	}
	if (o->arch && !STREQ(o->arch, "x86_64")) {
		log_error("a network boot is x86_64 only (--arch '%s')", o->arch);
		return EXIT_USAGE;
	}
	if (o->mac && !mac_unicast(o->mac)) {
		log_error("--mac '%s' is not a MAC address (six hex pairs with colons, a unicast one)", o->mac);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < o->n_pxe_disks; i++) {
		struct stat st;
		if (stat(o->pxe_disks[i], &st) < 0 || !S_ISREG(st.st_mode) ||
		    access(o->pxe_disks[i], o->persist ? R_OK | W_OK : R_OK) < 0) {
			log_error("--disk '%s' is not a regular file this user can read%s", o->pxe_disks[i],
				  o->persist ? " and write (--persist)" : "");
			return errno == ENOENT ? EXIT_MISSING : EXIT_USAGE;
		}
	}
	return 0;
}

int qemu_check_opts(const struct qemu_opts *o)
{
	if (o->pxe_url) {
		int r = check_pxe_opts(o);
		if (r)
			return r;
	} else if (!o->image || !*o->image) {
		log_error("missing IMAGE, see 'pmoves-image run --help'");
		return EXIT_USAGE;
	}
	struct stat st;
	if (o->image && stat(o->image, &st) < 0) {
		int e = errno;
		log_error("image '%s' cannot be used: %s", o->image, strerror(e));
		return e == ENOENT ? EXIT_MISSING : EXIT_USAGE;
	}
	if (o->image && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_error("image '%s' is not a regular file or block device", o->image);
		return EXIT_USAGE;
	}
	if (o->image && access(o->image, o->persist ? R_OK | W_OK : R_OK) < 0) {
		log_error("image '%s' cannot be %s: %s", o->image, o->persist ? "written (--persist)" : "read",
			  strerror(errno));
		return EXIT_USAGE;
	}
	if (o->arch && !arch_find(o->arch)) {
		log_error("architecture '%s' is not supported (use x86_64 or aarch64)", o->arch);
		return EXIT_USAGE;
	}
	if (o->accel && !STREQ(o->accel, "auto") && !STREQ(o->accel, "kvm") && !STREQ(o->accel, "tcg")) {
		log_error("accelerator '%s' is not supported (use auto, kvm or tcg)", o->accel);
		return EXIT_USAGE;
	}
	if (o->expect) {
		regex_t re;
		int rc = regcomp(&re, o->expect, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char msg[256];
			regerror(rc, &re, msg, sizeof(msg));
			log_error("--expect '%s' is not a valid regular expression: %s", o->expect, msg);
			return EXIT_USAGE;
		}
		regfree(&re);
	}
	if (o->timeout > TIMEOUT_MAX) {
		log_error("--timeout %u is too long (at most %u seconds)", o->timeout, TIMEOUT_MAX);
		return EXIT_USAGE;
	}
	if (o->memory && (o->memory < MEMORY_MIN || o->memory > MEMORY_MAX)) {
		log_error("--memory %u is out of range (%u..%u MiB)", o->memory, MEMORY_MIN, MEMORY_MAX);
		return EXIT_USAGE;
	}
	if (o->cpus > CPUS_MAX) {
		log_error("--cpus %u is out of range (1..%u)", o->cpus, CPUS_MAX);
		return EXIT_USAGE;
	}
	if (o->config) {
		int r = check_config(o->config);
		if (r)
			return r;
	}
	if (o->vars) {
		struct stat vst;
		if (!*o->vars) {
			log_error("--vars needs a file name");
			return EXIT_USAGE;
		}
		if (stat(o->vars, &vst) == 0) {
			if (!S_ISREG(vst.st_mode)) {
				log_error("firmware variables '%s' is not a regular file", o->vars);
				return EXIT_USAGE;
			}
			if (access(o->vars, R_OK | W_OK) < 0) {
				log_error("firmware variables '%s' cannot be written: %s", o->vars, strerror(errno));
				return EXIT_USAGE;
			}
		} else if (errno != ENOENT) {
			log_error("firmware variables '%s' cannot be used: %s", o->vars, strerror(errno));
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* ---- booting ---- */

/* By its magic, not its name: a raw image named .qcow2 is still raw, and QEMU is told the
 * format so that it never probes a raw image's first bytes. */
static bool image_is_qcow2(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char magic[4];
	return fd >= 0 && pread(fd, magic, 4, 0) == 4 && memcmp(magic, "QFI\xfb", 4) == 0;
}

/* The disk the guest sees: the image, or an overlay on it in the run's directory. */
struct disk {
	char *path;
	const char *format;
	bool snapshot;
};

/* The disk's virtual size: a raw image's or block device's bytes, a qcow2's header field. */
static int disk_size(const char *path, bool qcow2, uint64_t *ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (qcow2) {
		uint8_t be[8];
		if (pread(fd, be, 8, 24) != 8)
			return -EBADMSG;
		uint64_t n = 0;
		for (size_t i = 0; i < 8; i++)
			n = n << 8 | be[i];
		*ret = n;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
	*ret = (uint64_t)st.st_size;
	return 0;
}

/* The disk the guest sees. An SD card's size must be a power of two (QEMU refuses any other)
 * and --disk-size makes the disk larger than the image: both through a qcow2 overlay on the
 * image in DIR, so the image is not written and neither goes with --persist. 0, or an exit
 * status. */
static int disk_plan(const struct qemu_opts *o, const struct qemu_boot *qb, const char *dir, char **ret_path,
		     struct disk *d)
{
	uint64_t size, want;
	int r = disk_size(o->image, STREQ(d->format, "qcow2"), &size);
	if (r < 0)
		return log_errno(r, "cannot read the size of '%s'", o->image), EXIT_FAIL;
	want = o->disk_size ? o->disk_size : size;
	if (want < size) {
		log_error("--disk-size %" PRIu64 " is smaller than the image '%s' (%" PRIu64 " bytes)", want, o->image, size);
		return EXIT_USAGE;
	}
	if (qb->sd && (want & (want - 1)))
		want = UINT64_C(1) << (64 - __builtin_clzll(want));
	if (want == size)
		return 0;
	if (o->persist) {
		if (o->disk_size)
			log_error("--disk-size boots a snapshot of the image: not with --persist (grow the image "
				  "itself: 'truncate -s SIZE %s')", o->image);
		else
			log_error("an SD card is a power of two in size, '%s' is %" PRIu64 " bytes: with --persist "
				  "QEMU writes the image itself, so make it one ('truncate -s %" PRIu64 " %s'), or boot "
				  "without --persist (a snapshot is rounded up)",
				  o->image, size, want, o->image);
		return EXIT_USAGE;
	}
	_cleanup_free_ char *qemu_img = NULL, *abs = NULL, *overlay = NULL, *sz = NULL;
	if (find_program("qemu-img", &qemu_img) < 0) {
		log_error("'qemu-img' not found (install package 'qemu-utils'): it makes the %s overlay",
			  qb->sd ? "SD card's" : "--disk-size");
		return EXIT_MISSING;
	}
	if (!(abs = realpath(o->image, NULL)))
		return log_errno(-errno, "cannot resolve '%s'", o->image), EXIT_FAIL;
	if (asprintf(&overlay, "%s/disk.qcow2", dir) < 0 || asprintf(&sz, "%" PRIu64, want) < 0)
		return log_errno(-ENOMEM, "cannot boot '%s'", o->image), EXIT_FAIL;
	char *argv[] = { qemu_img, "create", "-q", "-f", "qcow2", "-b", abs, "-F", (char *)d->format, overlay, sz, NULL };
	r = run_argv(argv, &(struct run_opts){ .out_fd = STDERR_FILENO });
	if (r != 0) {
		log_error("'qemu-img create' of an overlay on '%s' failed (status %d)", o->image, r);
		return EXIT_FAIL;
	}
	char h[24];
	format_size_human(want, h);
	log_info("disk: %s, a snapshot overlay on '%s'%s", h, o->image,
		 want != (o->disk_size ? o->disk_size : size) ? ", rounded up: an SD card is a power of two in size" : "");
	*ret_path = TAKE_PTR(overlay);
	d->format = "qcow2";
	d->snapshot = false;
	return 0;
}

static int copy_vars(const char *src, const char *dst)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	struct stat st;
	if (fstat(in, &st) < 0)
		return -errno;
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	return copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
}

static int build_argv(const struct qemu_opts *o, const struct arch *a, const struct qemu_boot *qb, const char *qemu,
		      const char *accel, const char *vars, const struct disk *disk, bool interactive, char ***ret)
{
	_cleanup_strv_ char **v = NULL;
	_cleanup_free_ char *img = disk->path ? qemu_opt_escape(disk->path) : NULL, *varse = vars ? qemu_opt_escape(vars) : NULL,
			    *code = qb->code ? qemu_opt_escape(qb->code) : NULL, *cfg = o->config ? qemu_opt_escape(o->config) : NULL;
	if ((disk->path && !img) || (vars && !varse) || (qb->code && !code) || (o->config && !cfg))
		return -ENOMEM;
	const char *cpu = qb->cpu ? qb->cpu : STREQ(accel, "kvm") ? "host" : a->tcg_cpu;
	const char *machine = qb->machine ? qb->machine : a->machine;
	bool x86 = STREQ(a->name, "x86_64");
	if (o->iommu) {
		/* Interrupt remapping needs the split irqchip under KVM; TCG accepts it too. The
		 * CPU says Intel, as a machine with VT-d does (QEMU's default CPU says AMD). */
		machine = x86 ? "q35,kernel-irqchip=split" : "virt,iommu=smmuv3";
		if (x86 && !STREQ(accel, "kvm"))
			cpu = "qemu64,vendor=GenuineIntel";
	}
	int r = 0;
	r = r ?: strv_push(&v, qemu);
	r = r ?: strv_push(&v, "-nodefaults");
	r = r ?: strv_push(&v, "-no-user-config");
	r = r ?: strv_push(&v, "-name");
	r = r ?: strv_push(&v, "pmoves-run");
	r = r ?: strv_push(&v, "-machine");
	r = r ?: strv_push(&v, machine);
	r = r ?: strv_push(&v, "-accel");
	r = r ?: strv_push(&v, accel);
	if (cpu) {
		r = r ?: strv_push(&v, "-cpu");
		r = r ?: strv_push(&v, cpu);
	}
	if (o->iommu && x86) { /* before any other PCI device */
		r = r ?: strv_push(&v, "-device");
		r = r ?: strv_push(&v, "intel-iommu,intremap=on");
	}
	r = r ?: strv_push(&v, "-m");
	r = r ?: strv_pushf(&v, "%u", qb->memory ? qb->memory : o->memory ? o->memory : QEMU_DEFAULT_MEMORY);
	r = r ?: strv_push(&v, "-smp");
	r = r ?: strv_pushf(&v, "%u", qb->cpus ? qb->cpus : o->cpus ? o->cpus : QEMU_DEFAULT_CPUS);
	if (code) {
		r = r ?: strv_push(&v, "-drive");
		r = r ?: strv_pushf(&v, "if=pflash,format=raw,unit=0,readonly=on,file=%s", code);
		r = r ?: strv_push(&v, "-drive");
		r = r ?: strv_pushf(&v, "if=pflash,format=raw,unit=1,file=%s", varse);
	} else if (qb->bios) {
		r = r ?: strv_push(&v, "-bios");
		r = r ?: strv_push(&v, qb->bios);
	} else if (qb->kernel) {
		r = r ?: strv_push(&v, "-kernel");
		r = r ?: strv_push(&v, qb->kernel);
		if (qb->initrd) {
			r = r ?: strv_push(&v, "-initrd");
			r = r ?: strv_push(&v, qb->initrd);
		}
		if (qb->dtb) {
			r = r ?: strv_push(&v, "-dtb");
			r = r ?: strv_push(&v, qb->dtb);
		}
		r = r ?: strv_push(&v, "-append");
		r = r ?: strv_push(&v, qb->append);
	}
	if (img) {
		r = r ?: strv_push(&v, "-drive");
		r = r ?: strv_pushf(&v, "file=%s,format=%s,if=%s%s", img, disk->format, qb->sd ? "sd" : "virtio",
				  disk->snapshot ? ",snapshot=on" : "");
	}
	/* A machine without PCI (the Pi) gets its NICs on USB. */
	const char *nic = qb->usb_net ? "usb-net" : "virtio-net-pci";
	if (o->pxe_url) {
		/* The first boot device: its iPXE ROM (QEMU's own) asks DHCP, which names the URL. */
		_cleanup_free_ char *url = qemu_opt_escape(o->pxe_url);
		if (!url)
			return -ENOMEM;
		r = r ?: strv_push(&v, "-netdev");
		r = r ?: strv_pushf(&v, "user,id=pxe,restrict=off,bootfile=%s", url);
		/* Without disks, it is the first boot device. With disks, the firmware's own order
		 * decides, as on a machine whose blank disk falls through to the network, unless
		 * network_first: a boot order from QEMU (bootindex) makes OVMF delete every boot
		 * entry it does not list, the one an install makes included, so the machine comes
		 * back to the network on every boot. */
		bool first = !o->n_pxe_disks || o->network_first;
		r = r ?: strv_push(&v, "-device");
		r = r ?: strv_pushf(&v, "%s,netdev=pxe%s%s%s", nic, first ? ",bootindex=0" : "", o->mac ? ",mac=" : "",
				  o->mac ? o->mac : "");
		for (size_t i = 0; r == 0 && i < o->n_pxe_disks; i++) {
			_cleanup_free_ char *f = qemu_opt_escape(o->pxe_disks[i]);
			if (!f)
				return -ENOMEM;
			r = r ?: strv_push(&v, "-drive");
			r = r ?: strv_pushf(&v, "file=%s,format=raw,if=none,id=disk%zu%s", f, i + 1,
					  o->persist ? "" : ",snapshot=on");
			r = r ?: strv_push(&v, "-device");
			r = r ?: strv_pushf(&v, "virtio-blk-pci,drive=disk%zu,serial=pmoves-disk%zu", i + 1, i + 1);
		}
	} else {
		r = r ?: strv_push(&v, "-nic");
		r = r ?: strv_pushf(&v, "user,model=%s,restrict=%s", nic, o->net ? "off" : "on");
	}
	for (size_t i = 0; i < o->n_socknet; i++) {
		const struct qemu_socknet *s = &o->socknet[i];
		r = r ?: strv_push(&v, "-netdev");
		r = r ?: strv_pushf(&v, "socket,id=sock%zu,%s=127.0.0.1:%u", i, s->listen ? "listen" : "connect", s->port);
		r = r ?: strv_push(&v, "-device");
		r = r ?: strv_pushf(&v, "%s,netdev=sock%zu,mac=52:54:00:%02x:%02x:%02x", nic, i, s->port >> 8, s->port & 0xff,
				  s->listen ? 1 : 2);
	}
	if (!qb->usb_net) {
		r = r ?: strv_push(&v, "-device");
		r = r ?: strv_push(&v, "virtio-rng-pci");
	}
	if (cfg) {
		r = r ?: strv_push(&v, "-fw_cfg");
		r = r ?: strv_pushf(&v, "name=opt/ai.pmoves/device.json,file=%s", cfg);
	}
	if (o->no_reboot)
		r = r ?: strv_push(&v, "-no-reboot");
	r = r ?: strv_push(&v, "-display");
	r = r ?: strv_push(&v, "none");
	r = r ?: strv_push(&v, "-chardev");
	/* With a terminal on stdin and nobody matching, the user can type into the console, and
	 * Ctrl-C still reaches us (signal=on). */
	r = r ?: strv_push(&v, interactive ? "stdio,id=con,signal=on" : "stdio,id=con,signal=off");
	if (qb->serial && STREQ(qb->serial, "1")) { /* the console is the second UART */
		r = r ?: strv_push(&v, "-serial");
		r = r ?: strv_push(&v, "null");
	}
	r = r ?: strv_push(&v, "-serial");
	r = r ?: strv_push(&v, "chardev:con");
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

struct boot_state {
	char *dir;
	struct qemu_boot qb;
	int log_fd;
	struct sigaction old_int, old_term, old_pipe;
	sigset_t old_mask, wait_mask;
};

static void boot_signals_on(struct boot_state *s)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	qemu_got_signal = 0;
	sigaction(SIGINT, &sa, &s->old_int);
	sigaction(SIGTERM, &sa, &s->old_term);
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &s->old_pipe);
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &s->old_mask);
	s->wait_mask = s->old_mask;
	sigdelset(&s->wait_mask, SIGINT);
	sigdelset(&s->wait_mask, SIGTERM);
	qemu_waitmask = &s->wait_mask;
}

static void boot_signals_off(struct boot_state *s)
{
	qemu_waitmask = NULL;
	/* Unblock first: a signal still pending reaches on_signal, not the old handler. */
	sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
	sigaction(SIGINT, &s->old_int, NULL);
	sigaction(SIGTERM, &s->old_term, NULL);
	sigaction(SIGPIPE, &s->old_pipe, NULL);
}

static int boot(const struct qemu_opts *o, struct boot_state *s)
{
	const struct boot_loader *l = NULL;
	const char *what = o->image ? o->image : "the network boot";
	int r = o->image ? image_loader(o->image, &l) : 0;
	if (r == -EINVAL)
		return EXIT_USAGE;
	if (r < 0)
		return log_errno(r, "cannot tell how to boot '%s'", o->image), EXIT_FAIL;
	const char *arch = o->arch, *how = "--arch";
	if (arch)
		arch = arch_find(arch)->name;
	else if (o->pxe_url)
		arch = "x86_64", how = NULL;
	else if ((r = qemu_detect_arch(o->image, &arch, &how)) == -EINVAL)
		return EXIT_USAGE;
	else if (r < 0 && l && (l->archs & (l->archs - 1)) == 0) { /* a loader for one architecture */
		arch = l->archs == ARCH_AARCH64 ? "aarch64" : "x86_64";
		how = "the boot loader the image has";
	} else if (r < 0) {
		arch = "x86_64";
		how = NULL;
		log_warn("cannot tell the architecture of '%s' (no manifest.json beside it, no DPS root partition "
			 "type), assuming x86_64",
			 o->image);
	}
	const struct arch *a = arch_find(arch);
	if (how)
		log_debug("architecture: %s (from %s)", a->name, how);

	_cleanup_free_ char *qemu = NULL;
	if (find_program(a->qemu, &qemu) < 0) {
		log_error("'%s' not found (install package '%s')", a->qemu, a->qemu_pkg);
		return EXIT_MISSING;
	}
	if ((r = make_temp_dir(&s->dir)) < 0)
		return log_errno(r, "cannot create a temporary directory"), EXIT_FAIL;
	struct qemu_image qi = { .path = o->image, .arch = a, .machine = o->machine, .dir = s->dir };
	if (l && !(l->archs & arch_bit(a))) {
		log_error("'%s' boots with '%s', which cannot boot %s", o->image, l->name, a->name);
		return EXIT_USAGE;
	}
	if (o->pxe_url && o->bios)
		r = 0; /* SeaBIOS, QEMU's default firmware */
	else
		r = l ? l->qemu(&qi, &s->qb) : boot_uefi_qemu(&qi, &s->qb);
	if (r == -EINVAL)
		return EXIT_USAGE;
	if (r == -ENOENT)
		return EXIT_MISSING;
	if (r < 0)
		return log_errno(r, "cannot tell how to boot '%s'", what), EXIT_FAIL;
	const struct qemu_boot *qb = &s->qb;
	const char *files[] = { qb->code, qb->vars, qb->bios };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (files[i] && access(files[i], R_OK) < 0) {
			log_error("firmware '%s' not found (install package '%s')", files[i], qb->pkg);
			return EXIT_MISSING;
		}
	if (o->config && qb->no_fw_cfg) {
		log_error("--config: machine '%s' has no fw_cfg to pass it on: write it to the card as "
			  "pmoves/device.json ('pmoves-image flash --config'), or boot with --machine virt",
			  qb->machine);
		return EXIT_USAGE;
	}
	if (o->vars && !qb->code) {
		log_error("--vars: '%s' boots without UEFI firmware, there are no firmware variables", what);
		return EXIT_USAGE;
	}

	if (o->log) {
		s->log_fd = open(o->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (s->log_fd < 0) {
			log_error("log '%s' cannot be written: %s", o->log, strerror(errno));
			return EXIT_USAGE;
		}
	}

	const char *accel = NULL;
	_cleanup_free_ char *why = NULL;
	r = qemu_pick_accel(qb->machine ? "tcg" : o->accel, a->name, &accel, &why);
	if (r == -EINTR || qemu_got_signal)
		return EXIT_INTERRUPTED;
	if (r < 0)
		return log_errno(r, "cannot choose an accelerator"), EXIT_FAIL;
	log_info("accelerator: %s (%s)", accel, qb->machine ? "an emulated board" : why);

	_cleanup_free_ char *vars = NULL;
	if (o->vars) {
		/* Persistent: created from the template when missing (O_EXCL), then used in place. */
		if (!(vars = strdup(o->vars)))
			return log_errno(-ENOMEM, "cannot boot '%s'", what), EXIT_FAIL;
		r = copy_vars(qb->vars, vars);
		if (r == 0)
			log_info("firmware variables '%s' created from '%s'", vars, qb->vars);
		else if (r != -EEXIST) {
			unlink(vars);
			return log_errno(r, "cannot copy firmware variables '%s' to '%s'", qb->vars, vars), EXIT_FAIL;
		}
	} else if (qb->code) {
		if (asprintf(&vars, "%s/%s", s->dir, strrchr(qb->vars, '/') + 1) < 0)
			return log_errno(-ENOMEM, "cannot boot '%s'", what), EXIT_FAIL;
		if ((r = copy_vars(qb->vars, vars)) < 0)
			return log_errno(r, "cannot copy firmware variables '%s' to '%s'", qb->vars, vars), EXIT_FAIL;
	}

	struct disk disk = { .format = "raw" };
	_cleanup_free_ char *disk_path = NULL;
	if (o->image) {
		disk = (struct disk){ .format = image_is_qcow2(o->image) ? "qcow2" : "raw", .snapshot = !o->persist };
		if ((r = disk_plan(o, qb, s->dir, &disk_path, &disk)) != 0)
			return r;
		disk.path = disk_path ? disk_path : (char *)o->image;
	}

	bool interactive = !o->expect && isatty(STDIN_FILENO);
	_cleanup_strv_ char **argv = NULL;
	if ((r = build_argv(o, a, qb, qemu, accel, vars, &disk, interactive, &argv)) < 0)
		return log_errno(r, "cannot boot '%s'", what), EXIT_FAIL;
	if (log_verbose) {
		_cleanup_free_ char *line = argv_to_string(argv);
		log_info("%s", line ? line : argv[0]);
	}

	struct console con = { .log_fd = s->log_fd, .echo = !o->expect, .forward_err = true };
	if (o->expect) {
		if (regcomp(&con.re, o->expect, REG_EXTENDED | REG_NOSUB) != 0) {
			log_error("--expect '%s' is not a valid regular expression", o->expect);
			return EXIT_USAGE;
		}
		con.use_re = true;
	}
	unsigned timeout = o->timeout ? o->timeout : o->expect ? QEMU_DEFAULT_TIMEOUT : 0;

	struct child c;
	if ((r = child_spawn(qemu, argv, interactive ? STDIN_FILENO : -1, &c)) < 0) {
		console_done(&con);
		return log_errno(r, "cannot start '%s'", qemu), EXIT_FAIL;
	}
	double t0 = now_seconds();
	enum watch_outcome out = WATCH_EXITED;
	int status = 0;
	r = watch(&c, &con, timeout ? t0 + timeout : 0, &out, &status);
	double took = now_seconds() - t0;
	if (r < 0 || out != WATCH_EXITED)
		child_stop(&c);

	int ret;
	if (r < 0) {
		log_errno(r, "cannot watch the console of '%s'", what);
		ret = EXIT_FAIL;
	} else if (out == WATCH_SIGNAL) {
		log_error("interrupted by signal %d, QEMU stopped", (int)qemu_got_signal);
		ret = EXIT_INTERRUPTED;
	} else if (out == WATCH_MATCH) {
		printf("%s\n", con.matched);
		fflush(stdout);
		log_info("console matched '%s' after %.1f s", o->expect, took);
		ret = EXIT_OK;
	} else if (out == WATCH_TIMEOUT) {
		if (o->expect)
			log_error("timed out after %u s waiting for '%s' on the console", timeout, o->expect);
		else
			log_error("timed out after %u s: QEMU stopped", timeout);
		console_print_tail(&con);
		ret = EXIT_FAIL;
	} else if (status == 127 && took < 1) {
		log_error("cannot run '%s'", qemu);
		ret = EXIT_MISSING;
	} else if (o->expect) {
		log_error("QEMU exited with status %d after %.1f s before the console matched '%s'", status,
			  took, o->expect);
		console_print_tail(&con);
		ret = EXIT_FAIL;
	} else if (status != 0) {
		log_error("QEMU exited with status %d after %.1f s", status, took);
		console_print_tail(&con);
		ret = EXIT_FAIL;
	} else
		ret = EXIT_OK;
	console_done(&con);
	return ret;
}

int qemu_boot(const struct qemu_opts *o)
{
	int r = qemu_check_opts(o);
	if (r)
		return r;
	struct boot_state s = { .log_fd = -1 };
	boot_signals_on(&s);
	r = boot(o, &s);
	qemu_boot_done(&s.qb);
	if (s.dir) {
		int k = rm_rf(s.dir);
		if (k < 0)
			log_errno(k, "cannot remove '%s', ignoring", s.dir);
		free(s.dir);
	}
	if (s.log_fd >= 0)
		close(s.log_fd);
	boot_signals_off(&s);
	if (qemu_got_signal)
		r = EXIT_INTERRUPTED;
	return r;
}
