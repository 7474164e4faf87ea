/* Messages of pmoves-image (and of the flash engine in pmoves-firstboot): problem first, names in single quotes, no trailing period. */
#ifndef PMOVES_LOG_H
#define PMOVES_LOG_H

#include <stdarg.h>

extern int log_verbose;  /* -v */
extern int log_fd_extra; /* also copy every message here (build.log), or -1 */
extern const char *log_program; /* errors and warnings start "PROGRAM: error: " */

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_error with ": strerror(-r)" appended; returns r so callers can `return log_errno(r, ...)`. */
int log_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
