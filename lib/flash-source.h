/* The image a flash reads: raw, or zstd or xz compressed, read once from start to end. */
#ifndef PMOVES_FLASH_SOURCE_H
#define PMOVES_FLASH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum flash_format { FLASH_RAW, FLASH_ZSTD, FLASH_XZ };

struct flash_source {
	int fd;
	enum flash_format format;
	uint64_t size;      /* the raw image's size (compressed: from the frames' or the index's
			     * record, else counted by one pass before writing) */
	uint64_t file_size; /* the file's own size */
	uint64_t pos;       /* the next byte of the file to read: pread only, so that nothing that
			     * moves the file offset (SEEK_DATA, a second reader) can shift it */
	bool stream;        /* a pipe or a socket: read in order, once (file_size unknown: 0) */
	struct flash_decoder *dec;
};

/* Open PATH (a regular file), tell the format by its first bytes, learn the raw size. 0, or
 * -errno; -EBADMSG: a compressed file that is damaged (its size cannot be read); -EFBIG: a
 * compressed file that does not record its size and decompresses to more than LIMIT bytes
 * (counting stops there);
 * -EMEDIUMTYPE: a qcow2 image; -EPROTONOSUPPORT: a format not read here (gzip, bzip2, lz4,
 * zip), or a name (.zst, .xz, .gz, .bz2) the bytes do not match. *ret_why then says which. */
int flash_source_open(const char *path, uint64_t limit, struct flash_source *ret, const char **ret_why);
/* A stream (a pipe the network install fills) of FORMAT, SIZE bytes once decompressed (its
 * bmap says). FD is taken, closed by flash_source_close. 0 or -ENOMEM. */
int flash_source_open_stream(int fd, enum flash_format format, uint64_t size, struct flash_source *ret);
/* The next bytes of the raw image into BUF, up to LEN; *ret_n 0 at its end. -EBADMSG: the
 * compressed data is damaged. */
int flash_source_read(struct flash_source *s, void *buf, size_t len, size_t *ret_n);
/* Start reading from the beginning again (-ESPIPE for a stream). */
int flash_source_rewind(struct flash_source *s);
void flash_source_close(struct flash_source *s);
const char *flash_format_name(enum flash_format f);

#endif
