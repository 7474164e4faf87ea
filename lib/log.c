#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int log_verbose;
int log_fd_extra = -1;
const char *log_program = "pmoves-image";

static void vlog(const char *level, int err, const char *fmt, va_list ap)
{
	char prefix[96] = "";
	if (level)
		snprintf(prefix, sizeof(prefix), "%s: %s: ", log_program, level);
	char msg[4096];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	if (err)
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
	/* Messages quote names and values from profiles, images and tools: whatever they hold
	 * reaches the terminal as text, never as control sequences. */
	char *safe = str_printable(msg, strlen(msg), NULL);
	fprintf(stderr, "%s%s\n", prefix, safe ? safe : "(out of memory)");
	if (log_fd_extra >= 0)
		dprintf(log_fd_extra, "%s%s\n", prefix, safe ? safe : "(out of memory)");
	free(safe);
}

#define LOG_FN(fn, prefix, cond)                       \
	void fn(const char *fmt, ...)                  \
	{                                              \
		if (!(cond))                           \
			return;                        \
		va_list ap;                            \
		va_start(ap, fmt);                     \
		vlog(prefix, 0, fmt, ap);              \
		va_end(ap);                            \
	}

LOG_FN(log_error, "error", 1)
LOG_FN(log_warn, "warning", 1)
LOG_FN(log_info, NULL, 1)
LOG_FN(log_debug, NULL, log_verbose)

int log_errno(int r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog("error", r < 0 ? -r : r, fmt, ap);
	va_end(ap);
	return r;
}
