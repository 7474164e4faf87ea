/* bmaptool's block map of a sparse image: its data ranges in 4096-byte blocks, each with the
 * SHA-256 of its bytes, and the bmap file (format 2.0) that `bmaptool copy` and our flash read.
 * The ranges are the image's allocated extents as `bmaptool create` finds them, and its text is
 * byte for byte what bmaptool 3.x writes for them.
 *
 * Holes: FIEMAP first, as bmaptool does, then SEEK_DATA/SEEK_HOLE where a file system has no
 * FIEMAP (tmpfs). They differ on unwritten extents: mke2fs zeroes the ext4 journal with
 * fallocate(FALLOC_FL_ZERO_RANGE), which leaves unwritten extents that SEEK_DATA calls holes.
 * Those blocks must be zero on the card (a stale journal of an earlier file system there could
 * be replayed), so they are mapped: written as zeros, as `bmaptool create` maps them.
 *
 * This is the writer's side; bmap-read.h (flash) parses bmap files into its own struct bmap:
 * the names here (struct bmap_blocks, bmap_block_range) stay clear of those. */
#ifndef PMOVES_BMAP_H
#define PMOVES_BMAP_H

#include "hash-file.h"

#include <stddef.h>
#include <stdint.h>

#define BMAP_BLOCK_SIZE 4096u
/* An image whose data is split into more ranges than this is refused (-E2BIG): the bmap of
 * a real disk image has a few thousand. */
#define BMAP_CREATE_MAX_RANGES (1u << 22)

struct bmap_block_range {
	uint64_t first, last; /* blocks, inclusive */
	char sha256[65];      /* of bytes first*4096 .. (last+1)*4096 (or the image's end), hex */
};

struct bmap_blocks {
	uint64_t image_size;  /* bytes */
	uint64_t blocks;      /* the image's blocks: image_size / 4096, rounded up */
	uint64_t mapped;      /* blocks in the ranges */
	size_t n;
	struct bmap_block_range *ranges; /* ascending, disjoint, not adjacent */
};

/* Each data range [start, end) of FD's first SIZE bytes, in order, maximal (extents that touch
 * are one range): FIEMAP's extents (unwritten ones included), else SEEK_DATA/SEEK_HOLE's data,
 * else the whole file. A negative return of FN stops the walk and is returned. */
int image_data_ranges(int fd, uint64_t size, int (*fn)(void *ctx, uint64_t start, uint64_t end), void *ctx);

/* The block map of the regular file FD: its ranges (data rounded out to whole blocks, ranges
 * that then touch merged) and their SHA-256. PROGRESS (may be NULL) sees the bytes hashed
 * of the mapped total; its negative return stops the work. -EINVAL for an empty file. */
int bmap_create(int fd, hash_progress_fn progress, void *ctx, struct bmap_blocks **ret);
/* The bmap file's text (NUL-terminated; *ret_len without the NUL), with its BmapFileChecksum. */
int bmap_format(const struct bmap_blocks *m, char **ret_text, size_t *ret_len);
void bmap_blocks_free(struct bmap_blocks *m);

#endif
