/* What the fuzz harnesses (tests/fuzz/NAME.c) share. Each harness defines
 * LLVMFuzzerInitialize (called once, before any input: temp directories, environment) and
 * LLVMFuzzerTestOneInput (one input; must not leak, must not keep state that changes what the
 * next input does). Two programs call them: libFuzzer (`make fuzz`, clang) and our replay
 * driver tests/fuzz/replay.c (`make check`, any compiler). docs/fuzzing.md describes each
 * harness and its input format. */
#ifndef PMOVES_FUZZ_H
#define PMOVES_FUZZ_H

#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs made of several files (a profile and its parents, config sources, an image's head
 * and tail) separate them with a line "%%". */
#define FUZZ_SEP "\n%%\n"
#define FUZZ_SEP_LEN 4u

struct fuzz_part {
	const uint8_t *data;
	size_t len;
};

/* Split DATA at FUZZ_SEP into at most MAX parts (the last one keeps the rest, separators
 * included). Returns how many: at least 1. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, size_t max)
{
	size_t n = 0;
	while (n + 1 < max) {
		const uint8_t *sep = memmem(data, size, FUZZ_SEP, FUZZ_SEP_LEN);
		if (!sep)
			break;
		parts[n++] = (struct fuzz_part){ data, (size_t)(sep - data) };
		size -= (size_t)(sep - data) + FUZZ_SEP_LEN;
		data = sep + FUZZ_SEP_LEN;
	}
	parts[n++] = (struct fuzz_part){ data, size };
	return n;
}

/* FUZZ_VERBOSE=1: harnesses say on stderr what they made of each input. */
static inline bool fuzz_verbose(void)
{
	const char *v = getenv("FUZZ_VERBOSE");
	return v && STREQ(v, "1");
}

static inline void fuzz_die(const char *what, int r)
{
	fprintf(stderr, "fuzz harness: %s: %s\n", what, strerror(r < 0 ? -r : r));
	abort();
}

/* BUF (PATH_MAX bytes) = the path FMT makes; too long a path ends the program. */
static inline void __attribute__((format(printf, 2, 3))) fuzz_pathf(char *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		fuzz_die("path too long", ENAMETOOLONG);
}

static char fuzz_tmp[PATH_MAX];
static pid_t fuzz_tmp_owner;

static inline void fuzz_tmp_remove(void)
{
	/* Forked children (the replay driver's) leave it to the parent. */
	if (fuzz_tmp[0] && getpid() == fuzz_tmp_owner)
		rm_rf(fuzz_tmp);
}

/* A private directory for this process, made once and removed at exit:
 * $TMPDIR/pmoves-fuzz-XXXXXX, as an absolute path. */
static inline const char *fuzz_tmpdir(void)
{
	if (fuzz_tmp[0])
		return fuzz_tmp;
	const char *t = getenv("TMPDIR");
	fuzz_pathf(fuzz_tmp, "%s/pmoves-fuzz-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(fuzz_tmp))
		fuzz_die("cannot make a temp directory", errno);
	/* Absolute: it is a --root for pmoves-firstboot's functions. */
	char abs[PATH_MAX];
	if (!realpath(fuzz_tmp, abs))
		fuzz_die(fuzz_tmp, errno);
	memcpy(fuzz_tmp, abs, sizeof(abs));
	fuzz_tmp_owner = getpid();
	atexit(fuzz_tmp_remove);
	return fuzz_tmp;
}

/* The source tree (profiles/, tests/fuzz/): $PMOVES_SRCDIR, else the current directory (make
 * runs from the top of the tree), as an absolute path. */
static inline const char *fuzz_srcdir(void)
{
	static char buf[PATH_MAX];
	const char *s = getenv("PMOVES_SRCDIR");
	if (!buf[0] && !realpath(s && *s ? s : ".", buf))
		fuzz_die("cannot resolve the source directory (PMOVES_SRCDIR)", errno);
	return buf;
}

/* DIR/NAME holds exactly BUF (parent directories made as needed). */
static inline void fuzz_write(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[PATH_MAX];
	fuzz_pathf(path, "%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	int r = mkdir_p(path, 0755);
	if (r < 0)
		fuzz_die(path, r);
	*slash = '/';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		fuzz_die(path, errno);
	if (len && (r = pwrite_full(fd, buf, len, 0)) < 0)
		fuzz_die(path, r);
	close(fd);
}

/* DIR/NAME is not there. */
static inline void fuzz_unlink(const char *dir, const char *name)
{
	char path[PATH_MAX];
	fuzz_pathf(path, "%s/%s", dir, name);
	if (unlink(path) < 0 && errno != ENOENT)
		fuzz_die(path, errno);
}

/* Disk images: the input is HEAD [%% TAIL [%% MORE]]; the image is FUZZ_IMAGE_SIZE (4 MiB) of
 * zeros (sparse) with HEAD at its start and TAIL at its end (the backup GPT's place), each cut
 * to the image size. Small inputs describe a whole disk: the protective MBR, a GPT with a short
 * entry array, a filesystem's superblock inside the head. */
#define FUZZ_IMAGE_SIZE (4u * 1024u * 1024u)

static inline void fuzz_image_fill(int fd, const struct fuzz_part *head, const struct fuzz_part *tail)
{
	int r;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, FUZZ_IMAGE_SIZE) < 0)
		fuzz_die("cannot size the image", errno);
	if (head && head->len &&
	    (r = pwrite_full(fd, head->data, head->len < FUZZ_IMAGE_SIZE ? head->len : FUZZ_IMAGE_SIZE, 0)) < 0)
		fuzz_die("cannot write the image", r);
	if (tail && tail->len) {
		size_t n = tail->len < FUZZ_IMAGE_SIZE ? tail->len : FUZZ_IMAGE_SIZE;
		if ((r = pwrite_full(fd, tail->data + tail->len - n, n, FUZZ_IMAGE_SIZE - n)) < 0)
			fuzz_die("cannot write the image", r);
	}
}

#endif
