/* make check's replay of a fuzz corpus: build/tests/fuzz-replay-NAME.t runs harness NAME
 * (tests/fuzz/NAME.c, built with the normal compiler, no libFuzzer) on every file of
 * tests/fuzz/NAME/: the seeds, the inputs fuzzing found interesting, and every crash found
 * (crash-*, kept as regression tests). One TAP line per file; each input runs in its own child
 * with a time limit, so a crash or a hang is that file's "not ok" with the end of its output.
 *
 * Usage: fuzz-replay-NAME.t [FILE...]: the given files instead of the corpus (to reproduce).
 * With FUZZ_VERBOSE=1 the harness's messages (what it made of each input) go to stderr. */
#include "fuzz.h"
#include "tap.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#define INPUT_MAX (4u << 20)
#define SECONDS_MAX 30 /* per input: a hang is a failure */
#define LOG_TAIL 3000  /* bytes of a failed input's output shown */

/* Interrupted (Ctrl-C, prove killed): the child is killed and the temp directories removed. */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = sig;
}

static int select_input(const struct dirent *e)
{
	return e->d_name[0] != '.' && !STREQ(e->d_name, "README");
}

/* The harness on the input at PATH, in a child: 0 ok, else a TAP diagnostic was printed. */
static int replay(const char *path, const char *log)
{
	char *buf = NULL;
	size_t len = 0;
	int r = read_file(path, INPUT_MAX, &buf, &len);
	if (r < 0) {
		tap_diag("cannot read '%s': %s", path, strerror(-r));
		return r;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		free(buf);
		return -errno;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || (!fuzz_verbose() && dup2(fd, 2) < 0))
			_exit(125);
		alarm(SECONDS_MAX);
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		/* exit, not _exit: under SANITIZE=1 LeakSanitizer checks at exit (the temp
		 * directories are removed by their owner, the parent, only). */
		exit(0);
	}
	free(buf);
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
		if (stop)
			kill(pid, SIGKILL);
	}
	if (stop)
		return -EINTR;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		tap_diag("'%s': no result after %d seconds", path, SECONDS_MAX);
	else if (WIFSIGNALED(status))
		tap_diag("'%s': killed by signal %d (%s)", path, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		tap_diag("'%s': exit status %d", path, WEXITSTATUS(status));
	char *out = NULL;
	size_t olen = 0;
	if (read_file(log, 1u << 20, &out, &olen) == 0 && olen) {
		const char *s = olen > LOG_TAIL ? out + olen - LOG_TAIL : out;
		for (char *line = strtok((char *)s, "\n"); line; line = strtok(NULL, "\n"))
			tap_diag("  %s", line);
	}
	free(out);
	return -EIO;
}

int main(int argc, char **argv)
{
	/* fuzz-replay-NAME.t: harness NAME, corpus tests/fuzz/NAME/. */
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char name[64];
	size_t blen = strlen(base);
	if (strncmp(base, "fuzz-replay-", 12) != 0 || blen < 15 || blen - 14 >= sizeof(name) ||
	    !STREQ(base + blen - 2, ".t")) {
		printf("Bail out! '%s': the program must be called fuzz-replay-NAME.t\n", base);
		return 1;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(blen - 14), base + 12);

	char dir[PATH_MAX];
	fuzz_pathf(dir, "%s/tests/fuzz/%s", fuzz_srcdir(), name);
	struct dirent **list = NULL;
	int n = 0;
	if (argc < 2) {
		n = scandir(dir, &list, select_input, alphasort);
		if (n < 0) {
			printf("Bail out! cannot read the corpus '%s': %s (run from the top of the tree or set PMOVES_SRCDIR)\n",
			       dir, strerror(errno));
			return 1;
		}
		if (n == 0) {
			printf("Bail out! the corpus '%s' is empty\n", dir);
			return 1;
		}
	}

	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: waitpid returns */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	LLVMFuzzerInitialize(&argc, &argv);
	char log[PATH_MAX];
	fuzz_pathf(log, "%s/replay.log", fuzz_tmpdir());
	tap_plan(argc < 2 ? n : argc - 1);
	for (int i = 0; i < (argc < 2 ? n : argc - 1); i++) {
		char path[PATH_MAX];
		if (argc < 2)
			fuzz_pathf(path, "%s/%s", dir, list[i]->d_name);
		else
			fuzz_pathf(path, "%s", argv[i + 1]);
		int r = replay(path, log);
		if (stop) {
			printf("Bail out! interrupted by signal %d\n", (int)stop);
			exit(128 + stop); /* atexit: the temp directories go */
		}
		tap_ok(r == 0, "%s: %s", name, argc < 2 ? list[i]->d_name : path);
		if (argc < 2)
			free(list[i]);
	}
	free(list);
	return tap_done();
}
