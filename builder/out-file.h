/* Output files beside the image (bmap, compressed images, qcow2): each written under a temp
 * name in the build's directory and renamed to its own only when complete, so no partial file
 * ever has an output's name; and the image's bytes streamed to them without reading holes. */
#ifndef PMOVES_OUT_FILE_H
#define PMOVES_OUT_FILE_H

#include "build.h"
#include "hash.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct out_file {
	char *path;        /* tmp_dir/NAME: its final name */
	char *tmp;         /* the temp name beside it, until committed */
	int fd;            /* open for writing, or -1 */
	mode_t mode;
	struct sha256 sha; /* of what out_file_write wrote */
	uint64_t written;
};

/* A new temp file for tmp_dir/NAME (random name, O_EXCL, never wider than MODE). */
int out_file_open(struct build *b, const char *name, mode_t mode, struct out_file *ret);
/* Append LEN bytes, hashing them as they go. */
int out_file_write(struct out_file *f, const void *buf, size_t len);
/* Exactly MODE, fsync, rename to its name. ret_sha256 (may be NULL): the SHA-256 of what
 * out_file_write wrote. */
int out_file_commit(struct out_file *f, char ret_sha256[65]);
/* Close, remove the temp file unless committed, free. Safe after a failed open and twice. */
void out_file_done(struct out_file *f);

/* The SIZE bytes of FD in order, given to FN in chunks of at most 1 MiB; holes are not read
 * but given as zeros. Shows progress as WHAT; stops with -EINTR when the build is interrupted.
 * A negative return of FN stops it and is returned. */
int image_stream(int fd, uint64_t size, const char *what, int (*fn)(void *ctx, const void *buf, size_t len),
		 void *ctx);

/* The image compressed into tmp_dir/NAME (0600: it holds the image's bytes) by COMPRESS, which
 * streams the image's SIZE bytes from FD into F; its SHA-256 into RET_SHA256. Logs. */
int out_compressed_as(struct build *b, const char *name,
		      int (*compress)(int fd, uint64_t size, const char *name, struct out_file *f), char ret_sha256[65]);
/* The image compressed into NAME.img.SUFFIX (0600: it holds the image's bytes) by COMPRESS,
 * which streams the image's SIZE bytes from FD into F; listed in the manifest as SUFFIX. */
int out_compressed(struct build *b, const char *suffix,
		   int (*compress)(int fd, uint64_t size, const char *name, struct out_file *f));

/* The output "zst"'s compressor (out-zst.c), also the network bundle's image (out-pxe.c). */
int out_zst_compress(int fd, uint64_t size, const char *name, struct out_file *f);

/* Online CPUs, at least 1: the compressors' threads. */
unsigned out_threads(void);

#endif
