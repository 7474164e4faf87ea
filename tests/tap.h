/* Minimal TAP producer for C tests (after git's t/unit-tests/test-lib.c). Header-only. */
#ifndef PMOVES_TAP_H
#define PMOVES_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_planned = -1;

static inline void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline void tap_skip(const char *what, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++tap_n, what, why);
	fflush(stdout);
}

#define tap_is_int(got, want, ...)                                                              \
	do {                                                                                     \
		long long g_ = (long long)(got), w_ = (long long)(want);                        \
		if (!tap_ok(g_ == w_, __VA_ARGS__))                                              \
			tap_diag("expected %lld, got %lld", w_, g_);                           \
	} while (0)

#define tap_is_str(got, want, ...)                                                               \
	do {                                                                                      \
		const char *g_ = (got), *w_ = (want);                                             \
		if (!tap_ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                        \
			tap_diag("expected '%s', got '%s'", w_ ? w_ : "(null)", g_ ? g_ : "(null)"); \
	} while (0)

#define tap_contains(hay, needle, ...)                                                         \
	do {                                                                                    \
		const char *h_ = (hay), *n_ = (needle);                                         \
		if (!tap_ok(h_ && n_ && strstr(h_, n_) != NULL, __VA_ARGS__))                   \
			tap_diag("expected to contain '%s', got '%s'", n_, h_ ? h_ : "(null)"); \
	} while (0)

static inline int tap_done(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_n);
	else if (tap_planned != tap_n)
		printf("# planned %d tests but ran %d\n", tap_planned, tap_n);
	return tap_failed || (tap_planned >= 0 && tap_planned != tap_n) ? 1 : 0;
}

#endif
