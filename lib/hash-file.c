#include "hash-file.h"
#include "hash.h"
#include "util.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#define CHUNK (1u << 20)
#define ZEROS (64u << 10)

int file_sha256_init(struct file_sha256 *h, int fd)
{
	*h = (struct file_sha256){ .fd = fd };
	h->ctx = EVP_MD_CTX_new();
	h->buf = malloc(CHUNK);
	h->zeros = calloc(1, ZEROS);
	if (!h->ctx || !h->buf || !h->zeros || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		file_sha256_free(h);
		return -ENOMEM;
	}
	return 0;
}

void file_sha256_free(struct file_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	free(h->buf);
	free(h->zeros);
	h->ctx = NULL;
	h->buf = h->zeros = NULL;
}

/* Progress every 64 MiB through a hole, every MiB through data. */
static int hash_zeros(struct file_sha256 *h, uint64_t to, uint64_t total, hash_progress_fn progress, void *ctx)
{
	uint64_t step_end = h->pos;
	while (h->pos < to) {
		size_t n = to - h->pos < ZEROS ? (size_t)(to - h->pos) : ZEROS;
		if (EVP_DigestUpdate(h->ctx, h->zeros, n) != 1)
			return -EIO;
		h->pos += n;
		if (progress && (h->pos - step_end >= (64u << 20) || h->pos == to)) {
			step_end = h->pos;
			int r = progress(ctx, h->pos, total);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int file_sha256_to(struct file_sha256 *h, uint64_t end, uint64_t total, hash_progress_fn progress, void *ctx)
{
	struct stat st;
	if (fstat(h->fd, &st) < 0)
		return -errno;
	if (end > (uint64_t)st.st_size)
		return -EIO; /* holes are zeros, but past the end there are no bytes to hash */
	while (h->pos < end) {
		off_t data = lseek(h->fd, (off_t)h->pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			data = (off_t)end; /* nothing but hole from here */
		else if (data < 0)
			data = (off_t)h->pos; /* no SEEK_DATA here: read everything */
		int r = hash_zeros(h, (uint64_t)data < end ? (uint64_t)data : end, total, progress, ctx);
		if (r < 0 || h->pos >= end)
			return r;
		off_t hole = lseek(h->fd, (off_t)h->pos, SEEK_HOLE);
		uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		while (h->pos < stop) {
			size_t want = stop - h->pos < CHUNK ? (size_t)(stop - h->pos) : CHUNK;
			ssize_t n = pread(h->fd, h->buf, want, (off_t)h->pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				return -EIO; /* shorter than END */
			if (EVP_DigestUpdate(h->ctx, h->buf, (size_t)n) != 1)
				return -EIO;
			h->pos += (uint64_t)n;
			r = progress ? progress(ctx, h->pos, total) : 0;
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int file_sha256_final(struct file_sha256 *h, char out_hex[65])
{
	uint8_t d[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (EVP_DigestFinal_ex(h->ctx, d, &len) != 1 || len != 32)
		return -EIO;
	sha256_hex(d, out_hex);
	return 0;
}

int sha256_fd_progress(int fd, char out_hex[65], hash_progress_fn progress, void *ctx)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	struct file_sha256 h;
	int r = file_sha256_init(&h, fd);
	if (r == 0)
		r = file_sha256_to(&h, (uint64_t)st.st_size, (uint64_t)st.st_size, progress, ctx);
	if (r == 0)
		r = file_sha256_final(&h, out_hex);
	file_sha256_free(&h);
	return r;
}

int sha256_fd(int fd, char out_hex[65]) { return sha256_fd_progress(fd, out_hex, NULL, NULL); }

int sha256_file(const char *path, char out_hex[65])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return sha256_fd(fd, out_hex);
}
