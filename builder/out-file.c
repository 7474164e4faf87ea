/* Output files written under a temp name and renamed when complete; the image streamed. */
#include "out-file.h"
#include "bmap.h"
#include "log.h"
#include "manifest.h"
#include "progress.h"
#include "util.h"

#include <fcntl.h>
#include <sys/stat.h>

#define CHUNK (1u << 20)

int out_file_open(struct build *b, const char *name, mode_t mode, struct out_file *ret)
{
	*ret = (struct out_file){ .fd = -1, .mode = mode };
	if (asprintf(&ret->path, "%s/%s", b->tmp_dir, name) < 0) {
		ret->path = NULL;
		return -ENOMEM;
	}
	int r = sha256_init(&ret->sha);
	if (r < 0)
		return r;
	r = open_temp_beside(ret->path, mode, &ret->tmp);
	if (r < 0)
		return r;
	ret->fd = r;
	return 0;
}

int out_file_write(struct out_file *f, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int r = sha256_update(&f->sha, buf, len);
	if (r < 0)
		return r;
	for (size_t left = len; left > 0;) {
		ssize_t n = write(f->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		left -= (size_t)n;
	}
	f->written += len;
	return 0;
}

int out_file_commit(struct out_file *f, char ret_sha256[65])
{
	char hex[65];
	int r = sha256_final_hex(&f->sha, hex);
	if (r < 0)
		return r;
	r = rename_temp(TAKE_FD(f->fd), f->tmp, f->path, f->mode);
	/* Renamed, or removed by rename_temp: the temp name is not ours any more. */
	free(f->tmp);
	f->tmp = NULL;
	if (r < 0)
		return r;
	if (ret_sha256)
		memcpy(ret_sha256, hex, sizeof(hex));
	return 0;
}

void out_file_done(struct out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp)
		unlink(f->tmp);
	free(f->tmp);
	free(f->path);
	f->tmp = f->path = NULL;
	sha256_free(&f->sha);
}

struct stream {
	int fd;
	uint64_t size, pos;
	uint8_t *buf;
	struct progress pr;
	int (*fn)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

static const uint8_t zeros[CHUNK];

/* Bytes pos..END: zeros when HOLE, else read. */
static int stream_to(struct stream *s, uint64_t end, bool hole)
{
	while (s->pos < end) {
		size_t n = end - s->pos < CHUNK ? (size_t)(end - s->pos) : CHUNK;
		int r = hole ? 0 : pread_full(s->fd, s->buf, n, s->pos);
		if (r == 0)
			r = s->fn(s->ctx, hole ? zeros : s->buf, n);
		if (r < 0)
			return r;
		s->pos += n;
		progress_update(&s->pr, s->pos, s->size);
		if (build_interrupted())
			return -EINTR;
	}
	return 0;
}

static int stream_range(void *ctx, uint64_t start, uint64_t end)
{
	struct stream *s = ctx;
	int r = stream_to(s, start, true);
	return r < 0 ? r : stream_to(s, end, false);
}

int image_stream(int fd, uint64_t size, const char *what, int (*fn)(void *ctx, const void *buf, size_t len),
		 void *ctx)
{
	_cleanup_free_ uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	struct stream s = { .fd = fd, .size = size, .buf = buf, .fn = fn, .ctx = ctx };
	progress_start(&s.pr, what);
	int r = image_data_ranges(fd, size, stream_range, &s);
	if (r == 0)
		r = stream_to(&s, size, true); /* the holes at the end */
	progress_end(&s.pr);
	return r;
}

unsigned out_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

int out_compressed_as(struct build *b, const char *name,
		      int (*compress)(int fd, uint64_t size, const char *name, struct out_file *f), char ret_sha256[65])
{
	_cleanup_close_ int fd = open(b->image, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return log_errno(-errno, "cannot open '%s'", b->image);
	_cleanup_(out_file_done) struct out_file f = { .fd = -1 };
	int r = out_file_open(b, name, 0600, &f);
	if (r == 0)
		r = compress(fd, (uint64_t)st.st_size, name, &f);
	if (r == 0)
		r = out_file_commit(&f, ret_sha256);
	if (r == -EINTR)
		return r;
	return r < 0 ? log_errno(r, "cannot write '%s/%s'", b->tmp_dir, name) : 0;
}

int out_compressed(struct build *b, const char *suffix,
		   int (*compress)(int fd, uint64_t size, const char *name, struct out_file *f))
{
	_cleanup_free_ char *name = strdupf("%s.img.%s", b->p->name, suffix);
	char sha[65];
	if (!name)
		return -ENOMEM;
	int r = out_compressed_as(b, name, compress, sha);
	return r < 0 ? r : manifest_add_artifact(b, name, suffix, sha);
}
