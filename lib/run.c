#include "run.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

volatile pid_t run_current_child;

static void exec_no_shell(char *const argv[]) __attribute__((noreturn));

static void child_exec(char *const argv[], const struct run_opts *o, int out_pipe)
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

int run_argv(char *const argv[], const struct run_opts *o)
{
	int pipefd[2] = { -1, -1 };
	bool tee = o && !o->capture && o->tee_fd > 0;
	if (o && (o->capture || tee) && pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;

	pid_t pid = fork();
	if (pid < 0) {
		int r = -errno;
		if (pipefd[0] >= 0) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		return r;
	}
	if (pid == 0)
		child_exec(argv, o, pipefd[1]);
	run_current_child = pid;

	int r = 0;
	if (tee) {
		close(pipefd[1]);
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
		close(pipefd[0]);
		r = 0; /* a failed copy of the output does not fail the command */
	} else if (pipefd[0] >= 0) {
		close(pipefd[1]);
		size_t max = o->capture_max ? o->capture_max : (1u << 20), len = 0, cap = 4096;
		char *buf = malloc(cap);
		while (buf) {
			if (len + 1 == cap) {
				char *nb = cap > max ? NULL : realloc(buf, cap * 2);
				if (!nb) {
					r = cap > max ? -EFBIG : -ENOMEM;
					break;
				}
				buf = nb;
				cap *= 2;
			}
			ssize_t n = read(pipefd[0], buf + len, cap - 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(pipefd[0]);
		if (!buf && r == 0)
			r = -ENOMEM;
		if (buf && len > max)
			r = -EFBIG;
		if (r < 0)
			free(buf);
		else {
			buf[len] = '\0';
			*o->capture = buf;
		}
	}

	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			run_current_child = 0;
			return -errno;
		}
	run_current_child = 0;
	if (r < 0) {
		free(*o->capture);
		*o->capture = NULL;
		return r;
	}
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
