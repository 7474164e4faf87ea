/* The flash engine: one read of an image feeding every target at once, only the mapped
 * ranges written, each target verified by reading it back. The safety rules are in
 * flash-device.h; the command in cmd-flash.c. */
#ifndef PMOVES_FLASH_H
#define PMOVES_FLASH_H

#include "bmap-read.h"
#include "flash-source.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A range of the image to write and check: from the bmap, from the raw image's own data
 * ranges (SEEK_DATA), or, for a compressed image without a bmap, its runs of blocks that are
 * not all zeros (found while reading). The SHA-256 is the bmap's, checked against the image
 * as it is read, or computed while reading. */
struct flash_range {
	uint64_t start, len;
	uint8_t sha256[32];
	bool from_bmap;
};

struct flash_image {
	const char *path;
	char *bmap_path; /* NULL: no bmap */
	struct flash_source src;
	uint64_t size;   /* the raw image's bytes */
	uint64_t mapped; /* the bytes to write; compressed without a bmap: known after the write */
	bool mapped_known;
	struct flash_range *range;
	size_t n_range, cap_range;
};

enum flash_verify { FLASH_VERIFY_OFF, FLASH_VERIFY_OK, FLASH_VERIFY_FAILED, FLASH_VERIFY_NOT_RUN };

struct flash_target {
	const char *path;
	int fd;            /* opened by the caller: O_RDWR, O_EXCL for a disk */
	bool is_blk;
	uint64_t dev_size; /* bytes (a regular file: grown to the image's size first) */
	/* results */
	int error;         /* 0, or -errno: this target failed (why says how) */
	char *why;
	uint64_t written;
	double write_seconds, verify_seconds;
	enum flash_verify verify;
	/* the engine's */
	int dfd;           /* the same device opened O_DIRECT, or -1 where refused */
	unsigned align;    /* the alignment O_DIRECT needs: the logical block size */
	bool zeroed;       /* reads back zeros over the image's extent before anything is written */
	uint64_t next_seq;
	struct flash_ring *ring;
	pthread_t thread;
};

struct flash_opts {
	bool verify;
	/* Asked between chunks; true stops the write and the verify: every target fails as
	 * "interrupted" (partly written) and flash_write returns -EINTR. May be NULL. */
	bool (*cancelled)(void);
	/* Hold back the image's first HOLD_HEAD bytes (the partition table): zeros go there before
	 * anything else is written, the image's bytes only once everything else is written and
	 * BEFORE_HEAD (may be NULL) returned 0: a network install checks its download's pin
	 * there. BEFORE_HEAD failing: flash_write returns what it returned, every target written
	 * but for zeros over the head. A target that fails after that (the verify) gets zeros
	 * over its head again. So a half-written target never holds a partition table. */
	uint64_t hold_head;
	int (*before_head)(void *ctx);
	void *ctx;
	/* Test-only (PMOVES_FLASH_TEST_HOOK, docs/flash.md): run as `HOOK DEVICE...` after the
	 * write and before the verify, to change the target in between. */
	const char *test_hook;
};

/* Open IMAGE and its map: BMAP if given, else IMAGE.bmap, else the bmap of the uncompressed
 * name beside it (NAME.img.bmap for NAME.img.zst), else the image's own data ranges. A
 * compressed image that does not record its size is decompressed once to learn it, up to LIMIT
 * bytes (the largest target): -EFBIG beyond. Logs what is wrong; 0 or -errno (-EBADMSG: a bad
 * bmap or a bmap that does not fit the image). */
int flash_image_open(const char *image, const char *bmap, uint64_t limit, struct flash_image *ret);
/* A stream of FORMAT (FD, taken, closed on failure too: a pipe a download fills) laid out by
 * BM, which the caller parsed and checked; NAME and BMAP_NAME name the two in messages (NAME is
 * not copied). */
int flash_image_open_stream(int fd, enum flash_format format, const char *name, const char *bmap_name,
			    const struct bmap *bm, struct flash_image *ret);
void flash_image_close(struct flash_image *img);

/* Write IMG to the N targets at once and verify each. A target that fails gets error and why
 * and does not stop the others. 0 when every target is written (and verified), -EIO when the
 * image itself could not be read (every target failed), -EUCLEAN when some target failed. */
int flash_write(struct flash_image *img, struct flash_target *t, size_t n, const struct flash_opts *o);

#endif
