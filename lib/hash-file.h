/* SHA-256 of files through libcrypto, which uses the CPU's SHA instructions (x86 SHA-NI, Armv8
 * crypto extensions) where there are some: multi-gigabyte images, tarballs, downloads. Holes
 * are not read; they hash as zeros. */
#ifndef PMOVES_HASH_FILE_H
#define PMOVES_HASH_FILE_H

#include <stdint.h>

/* Called now and then with the bytes hashed so far and the total; a negative return stops the
 * work and is returned. */
typedef int (*hash_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* A regular file hashed from its start, in as many steps as its caller likes: a file that is
 * still being written can be hashed up to where its bytes are final. */
struct file_sha256 {
	struct evp_md_ctx_st *ctx;
	int fd;
	uint64_t pos; /* bytes hashed so far */
	uint8_t *buf, *zeros;
};

int file_sha256_init(struct file_sha256 *h, int fd);
/* Hash from where the last call stopped up to byte END, which must not be past the file's end
 * (-EIO if the file is shorter). TOTAL is only passed on to PROGRESS. */
int file_sha256_to(struct file_sha256 *h, uint64_t end, uint64_t total, hash_progress_fn progress, void *ctx);
int file_sha256_final(struct file_sha256 *h, char out_hex[65]);
/* Frees what init allocated; the fd stays open. Safe after a failed init and twice. */
void file_sha256_free(struct file_sha256 *h);

/* Digest of a whole regular file. */
int sha256_file(const char *path, char out_hex[65]);
int sha256_fd(int fd, char out_hex[65]);
int sha256_fd_progress(int fd, char out_hex[65], hash_progress_fn progress, void *ctx);

#endif
