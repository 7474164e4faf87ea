#include "run.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

volatile pid_t run_current_child;

static void exec_no_shell(char *const argv[]) __attribute__((noreturn));

static void child_exec(char *const argv[], const struct run_opts *o, int out_pipe, int line_pipe)
{
	sigset_t empty;
	sigemptyset(&empty);
	sigprocmask(SIG_SETMASK, &empty, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);

	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int in = o && o->in_fd > 0 ? o->in_fd : devnull;
	int err = o && o->out_fd > 0 ? o->out_fd : devnull;
	int out = out_pipe >= 0 ? out_pipe : err;
	if (o && out_pipe >= 0 && ((!o->capture && o->tee_fd > 0) || (o->capture && o->capture_stderr)))
		err = out_pipe;
	else if (line_pipe >= 0)
		err = line_pipe;
	if (line_pipe >= 0 && out_pipe < 0)
		out = line_pipe;
	if (in < 0 || out < 0 || err < 0)
		_exit(127);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	if (o && o->cwd && chdir(o->cwd) < 0)
		_exit(127);
	if (o && o->env)
		for (char *const *e = o->env; *e; e++)
			putenv(*e);
	exec_no_shell(argv);
}

/* execvp without its fallback: glibc runs a file the kernel cannot execute (ENOEXEC: no ELF,
 * no "#!") with /bin/sh, so a foreign binary or a data file would be read as a shell script.
 * Here it is exit status 126, as for any file that cannot be executed; 127 when none is found.
 * Called after fork: no allocation, a stack buffer for each candidate. */
static void exec_no_shell(char *const argv[])
{
	if (strchr(argv[0], '/')) {
		execv(argv[0], argv);
		_exit(errno == ENOENT || errno == ENOTDIR ? 127 : 126);
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	size_t name_len = strlen(argv[0]);
	bool denied = false;
	for (const char *p = path, *end; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		size_t dir_len = (size_t)(end - p);
		char full[PATH_MAX];
		if (dir_len == 0 || dir_len + 1 + name_len >= sizeof(full))
			continue;
		memcpy(full, p, dir_len);
		full[dir_len] = '/';
		memcpy(full + dir_len + 1, argv[0], name_len + 1);
		execv(full, argv);
		if (errno == ENOEXEC)
			_exit(126);
		denied = denied || errno == EACCES;
	}
	_exit(denied ? 126 : 127);
}

/* The output handed to o->line, a line at a time. */
struct lines {
	char buf[RUN_LINE_MAX + 1];
	size_t len;
	bool cut;
};

static void lines_feed(struct lines *l, const char *p, size_t n, const struct run_opts *o)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			l->buf[l->len] = '\0';
			o->line(l->buf, l->len, l->cut, o->line_data);
			l->len = 0;
			l->cut = false;
		} else if (l->len < RUN_LINE_MAX) {
			l->buf[l->len++] = p[i];
		} else {
			l->cut = true;
		}
	}
}

/* Read the capture pipe CAP and the line pipe LINE (either may be -1) until both end: the
 * captured bytes into *o->capture; 0 or -errno (-EFBIG: more than capture_max). */
static int drain(int cap, int line, const struct run_opts *o)
{
	size_t max = o->capture_max ? o->capture_max : (1u << 20), len = 0, cap_size = 4096;
	_cleanup_free_ char *buf = cap >= 0 ? malloc(cap_size) : NULL;
	_cleanup_free_ struct lines *l = line >= 0 ? calloc(1, sizeof(*l)) : NULL;
	int r = (cap >= 0 && !buf) || (line >= 0 && !l) ? -ENOMEM : 0;
	struct pollfd fds[2] = { { .fd = cap, .events = POLLIN }, { .fd = line, .events = POLLIN } };
	while (fds[0].fd >= 0 || fds[1].fd >= 0) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = r ? r : -errno;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			char chunk[8192], *dst = chunk;
			size_t room = sizeof(chunk);
			if (i == 0 && buf) {
				if (len + 1 == cap_size) {
					char *nb = cap_size > max ? NULL : realloc(buf, cap_size * 2);
					if (!nb)
						r = r ? r : cap_size > max ? -EFBIG : -ENOMEM;
					else
						buf = nb, cap_size *= 2;
				}
				if (len + 1 < cap_size)
					dst = buf + len, room = cap_size - 1 - len;
			}
			ssize_t n = read(fds[i].fd, dst, room);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fds[i].fd = -1; /* the end; a read error ends it too */
				continue;
			}
			if (i == 1 && l)
				lines_feed(l, chunk, (size_t)n, o);
			else if (i == 0 && dst != chunk)
				len += (size_t)n;
			/* else: past the capture's room, read and dropped so the child never blocks */
		}
	}
	if (l && (l->len || l->cut))
		lines_feed(l, "\n", 1, o);
	if (r == 0 && buf && len > max)
		r = -EFBIG;
	if (r == 0 && buf) {
		buf[len] = '\0';
		*o->capture = TAKE_PTR(buf);
	}
	return r;
}

int run_argv(char *const argv[], const struct run_opts *o)
{
	int pipefd[2] = { -1, -1 }, linefd[2] = { -1, -1 };
	bool tee = o && !o->capture && o->tee_fd > 0;
	if (o && (o->capture || tee) && pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	if (o && o->line && !tee && !(o->capture && o->capture_stderr) && pipe2(linefd, O_CLOEXEC) < 0) {
		int r = -errno;
		if (pipefd[0] >= 0)
			close(pipefd[0]), close(pipefd[1]);
		return r;
	}

	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		for (int i = 0; i < 2; i++) {
			if (pipefd[i] >= 0)
				close(pipefd[i]);
			if (linefd[i] >= 0)
				close(linefd[i]);
		}
		return r;
	}
	if (pid == 0)
		child_exec(argv, o, pipefd[1], linefd[1]);
	run_current_child = pid;
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (linefd[1] >= 0)
		close(linefd[1]);

	int r = 0;
	if (tee) {
		char buf[8192];
		for (;;) {
			ssize_t n = read(pipefd[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (o->out_fd > 0 && write(o->out_fd, buf, (size_t)n) < 0)
				r = -errno;
			if (write(o->tee_fd, buf, (size_t)n) < 0)
				r = -errno;
		}
		r = 0; /* a failed copy of the output does not fail the command */
	} else if (pipefd[0] >= 0 || linefd[0] >= 0) {
		r = drain(pipefd[0], linefd[0], o);
	}
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (linefd[0] >= 0)
		close(linefd[0]);

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			run_current_child = 0;
			if (o && o->capture && r == 0) {
				free(*o->capture);
				*o->capture = NULL;
			}
			return -errno;
		}
	run_current_child = 0;
	if (r < 0)
		return r;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static bool needs_quote(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./=:,+@%", *s))
			return true;
	return false;
}

char *argv_to_string(char *const argv[])
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			fputc(' ', f);
		if (!needs_quote(argv[i])) {
			fputs(argv[i], f);
			continue;
		}
		fputc('\'', f);
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		}
		fputc('\'', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int find_program(const char *prog, char **ret_path)
{
	if (strchr(prog, '/')) {
		if (access(prog, X_OK) < 0)
			return -errno;
		if (ret_path && !(*ret_path = strdup(prog)))
			return -ENOMEM;
		return 0;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *full = NULL;
		if (asprintf(&full, "%s/%s", dir, prog) < 0)
			return -ENOMEM;
		struct stat st;
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
			if (ret_path)
				*ret_path = TAKE_PTR(full);
			return 0;
		}
	}
	return -ENOENT;
}
