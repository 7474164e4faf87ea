/* Reading bmaptool's block maps (XML format 1.x and 2.0): which byte ranges of an image hold
 * data, and each range's SHA-256. Every number in the file is checked; nothing prints. */
#ifndef PMOVES_BMAP_READ_H
#define PMOVES_BMAP_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most ranges a bmap may hold (a fragmented 1 TB image has far fewer). */
#define BMAP_MAX_RANGES (4u << 20)
#define BMAP_MAX_FILE (256u << 20)

struct bmap_range {
	uint64_t start, len; /* bytes; the last range may end inside its last block */
	bool has_sha256;
	uint8_t sha256[32];
};

struct bmap {
	uint64_t image_size, block_size, blocks, mapped_blocks;
	uint64_t mapped_bytes; /* the ranges' bytes (the last block counted to ImageSize) */
	size_t n;
	struct bmap_range *range; /* sorted, not overlapping, all inside image_size */
};

/* Parse the bmap in TEXT (LEN bytes). 0, or -EBADMSG (not a bmap, a bad number, ranges past
 * the image, unsorted, overlapping, counts that do not add up, a wrong BmapFileChecksum),
 * -EOPNOTSUPP (a format version after 2.x), -E2BIG (more than BMAP_MAX_RANGES), -ENOMEM; on
 * a problem *ret_error says which (malloc'd, one line). */
int bmap_parse(const char *text, size_t len, struct bmap *ret, char **ret_error);
/* bmap_parse of the file PATH (a regular file of at most BMAP_MAX_FILE bytes). */
int bmap_load(const char *path, struct bmap *ret, char **ret_error);
void bmap_done(struct bmap *b);

#endif
