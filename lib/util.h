/* Small helpers shared by pmoves-image and pmoves-firstboot. No logging here. */
#ifndef PMOVES_UTIL_H
#define PMOVES_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define STREQ(a, b) (strcmp((a), (b)) == 0)

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void strvfreep(char ***v);

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_ _cleanup_(strvfreep)

/* Hand ownership out of a cleanup variable. */
#define TAKE_PTR(p)                        \
	({                                 \
		__typeof__(p) _p_ = (p);   \
		(p) = NULL;                \
		_p_;                       \
	})
#define TAKE_FD(fd)              \
	({                       \
		int _fd_ = (fd); \
		(fd) = -1;       \
		_fd_;            \
	})

/* NULL-terminated string vectors. */
void strv_free(char **v);
size_t strv_length(char *const *v);
int strv_push(char ***v, const char *s);
/* strv_push of a printf-formatted string (an argv word with a number or a path in it). */
int strv_pushf(char ***v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool strv_contains(char *const *v, const char *s);
/* The strings joined with SEP (malloc'd), or NULL on failure; "" for an empty list. */
char *strv_join(char *const *v, const char *sep);
void strv_sort(char **v);
static inline void strvfreep(char ***v) { strv_free(*v); }

/* Numbers: the whole string must be a number that fits; -EINVAL or -ERANGE otherwise. */
int parse_u64(const char *s, uint64_t *ret);
/* "512", "512K", "256M", "4G", "1T" (powers of 1024; "KiB"/"MiB" accepted too). */
int parse_size(const char *s, uint64_t *ret);
/* 4 GiB -> "4G", 1536 MiB -> "1536M": the largest unit that divides exactly. */
void format_size(uint64_t bytes, char buf[static 24]);
/* 1.5 GiB -> "1.5 GiB", for people. */
void format_size_human(uint64_t bytes, char buf[static 24]);

static inline bool is_aligned(uint64_t v, uint64_t a) { return v % a == 0; }
static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Files. */
/* DIR is on a tmpfs with NEED bytes free, and the memory to back them: MemAvailable at least
 * NEED plus 512 MiB, so that filling it does not push the system into swap. */
bool tmpfs_has_room(const char *dir, uint64_t need);
/* S as a value in QEMU's option syntax: its commas doubled. */
char *qemu_opt_escape(const char *s);
int mkdir_p(const char *path, mode_t mode);
int rm_rf(const char *path);
/* The whole of FD or of PATH (a regular file) as a NUL-terminated buffer of at most MAX bytes
 * (-EFBIG past that). */
int read_fd(int fd, size_t max, char **ret_buf, size_t *ret_len);
int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
/* read_file with FLAGS added to open()'s (O_NOFOLLOW for a path from an image). Both open with
 * O_NONBLOCK and refuse what is not a regular file (-EINVAL) before reading: a FIFO or a device
 * never blocks them; a file over MAX is refused by its size (-EFBIG). Every file the builder
 * reads from a user or an image goes through them. */
int read_file_flags(const char *path, int flags, size_t max, char **ret_buf, size_t *ret_len);
/* A new file beside PATH, "PATH.tmp-XXXXXX" with a random suffix, opened read-write with
 * O_EXCL (so nothing planted at a name is followed or written through) and MODE (never wider):
 * its fd, and its name in *RET_TMP. */
int open_temp_beside(const char *path, mode_t mode, char **ret_tmp);
/* Write a new temp file beside PATH (random name, O_EXCL: nothing planted is followed or
 * written through; never more than MODE), fsync, rename over PATH, fsync the directory. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);

/* A temp file from open_temp_beside, complete, into place: FD (closed in any case) set to
 * exactly MODE and fsynced, TMP renamed over PATH, the directory fsynced; on failure TMP is
 * removed. write_file_atomic ends so; the outputs streamed to a file (out-file.c) too. */
int rename_temp(int fd, const char *tmp, const char *path, mode_t mode);
/* The whole buffer written at FD's position (a pipe, a socket), or -errno: -EPIPE when the
 * reader has gone (with SIGPIPE ignored, else the signal comes first). */
int write_full(int fd, const void *buf, size_t len);
/* The whole buffer at OFF, or -errno (-EIO when the file ends first). */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* pwrite_full that also says how many bytes reached FD, the error or not. */
int pwrite_counted(int fd, const void *buf, size_t len, uint64_t off, size_t *ret_done);
int copy_fd_range(int in, off_t in_off, int out, off_t out_off, uint64_t len);
/* Like copy_fd_range but only the data regions (SEEK_DATA/SEEK_HOLE); holes stay holes. */
int copy_sparse(int in, off_t in_off, int out, off_t out_off, uint64_t len);

/* Monotonic seconds, for stage timing. */
double now_seconds(void);

/* A formatted string, malloc'd; NULL when out of memory. */
char *strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Append NAME to a list for messages in BUF: "a, b" ('a', 'b' when QUOTED); cut short if BUF
 * is full. */
void names_add(char *buf, size_t size, const char *name, bool quoted);
/* Strings from profiles and configs. */
/* A copy of LEN bytes of S (NULL: "") safe for a terminal: control characters (C0 but those
 * in KEEP, such as "\t", DEL, C1) and the bidirectional overrides and isolates, each byte as
 * \xNN, and each byte that is not UTF-8; valid UTF-8 kept. Every text from a file, an image or
 * a config that either program prints goes through it. NULL when out of memory. */
char *str_printable(const char *s, size_t len, const char *keep);
/* JSON text (as json-c writes it: C0 controls already escaped) with what str_printable escapes
 * also escaped, as JSON does: DEL, the C1 controls and the bidirectional controls as \uXXXX, a
 * byte that is not UTF-8 as \ufffd. The same JSON (but for those bytes), safe for a terminal. */
char *json_text_printable(const char *json);
bool str_has_control(const char *s);          /* a byte < 0x20 or DEL */
bool str_has_space_or_control(const char *s); /* also a space */
bool str_starts_with(const char *s, const char *prefix);

/* Names that reach argv or a path: [A-Za-z0-9._-], not starting with '.' or '-', 1..max chars. */
bool valid_name(const char *s, size_t max);
/* The value of a hex digit, or -1. */
int hex_digit(char c);
/* "52:54:00:12:34:56": six pairs of hex digits (either case) with colons. */
bool mac_valid(const char *s);

struct open_how;
/* openat2(2) (Linux 5.6) of PATH under DIRFD with HOW, tried again while it fails with EAGAIN:
 * with RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel refuses a ".." it could not check against
 * a rename or a mount made meanwhile, and leaves the retry to the caller (a booting system
 * mounts a lot: a sysfs path through symlinks with ".." in them meets it). The fd, or -errno
 * (-ENOSYS: no openat2). */
int openat2_retry(int dirfd, const char *path, const struct open_how *how);

#endif
