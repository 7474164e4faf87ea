/* Run external programs from an argv array: never through a shell. */
#ifndef PMOVES_RUN_H
#define PMOVES_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define RUN_LINE_MAX 16384

struct run_opts {
	/* File descriptors <= 0 mean "not set", so a zero-initialised run_opts is safe. */
	int out_fd;          /* child's stdout and stderr go here; not set: /dev/null */
	int tee_fd;          /* with no capture: the output is also copied here */
	int in_fd;           /* child's stdin; not set: /dev/null */
	char **capture;      /* if set: stdout captured into a NUL-terminated malloc'd buffer */
	bool capture_stderr; /* with capture: stderr too */
	size_t capture_max;  /* cap on captured bytes (default 1 MiB); more is an error (-EFBIG) */
	/* If set (not with tee_fd): the child's output that is not captured, stdout and stderr, is
	 * read line by line and handed here instead of going to out_fd: each line without its
	 * newline, LEN bytes (NUL bytes kept) and a NUL after them, at most RUN_LINE_MAX bytes (CUT:
	 * the rest of a longer line was dropped, up to its newline). */
	void (*line)(char *s, size_t len, bool cut, void *data);
	void *line_data;
	char *const *env;    /* extra "NAME=value" entries, NULL-terminated, or NULL */
	const char *cwd;     /* working directory, or NULL */
};

/* Returns the exit status (0..255), 128+signal when killed, or -errno when it could not start.
 * Exit status 127 means the program was not found, 126 that it cannot be executed (a file the
 * kernel does not run, such as another architecture's binary without binfmt: never handed to a
 * shell, as execvp would). */
int run_argv(char *const argv[], const struct run_opts *o);

/* Join argv for a log line, quoting words that need it. Caller frees. */
char *argv_to_string(char *const argv[]);

/* Is PROG on PATH (or an executable path)? */
int find_program(const char *prog, char **ret_path);


/* The child run_argv is waiting for, or 0: a signal handler may forward a signal to it. */
extern volatile pid_t run_current_child;

#endif
