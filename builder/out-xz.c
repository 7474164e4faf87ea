/* NAME.img.xz: the image compressed with xz (liblzma's multithreaded encoder, one thread per
 * online CPU), streamed from the raw image (holes are not read) into a temp file renamed when
 * complete. 0600 like the image: it holds the same bytes, first-boot secrets included.
 *
 * Preset 1: on base-debian (2 GiB, 0.8 GiB of data) on 2 cores `xz -T0` takes about 45 s for
 * 232 MB at preset 1, 120 s at 3 and 195 s at 6 (the default) for 209 MB: 10 % smaller for
 * four times the time of every build that asks for it. Who wants the smallest download uses
 * zst, or recompresses. */
#include "build.h"
#include "log.h"
#include "out-file.h"
#include "util.h"

#include <lzma.h>

#define XZ_PRESET 1
#define XZ_OUT (1u << 20)

struct xz {
	lzma_stream s;
	struct out_file *f;
	uint8_t *out;
};

static int xz_error(lzma_ret ret)
{
	log_error("xz: liblzma error %d", (int)ret);
	return ret == LZMA_MEM_ERROR ? -ENOMEM : -EIO;
}

/* Compress BUF (with FINISH: end the stream) and write what comes out. */
static int xz_feed(struct xz *x, const void *buf, size_t len, lzma_action action)
{
	x->s.next_in = buf;
	x->s.avail_in = len;
	for (;;) {
		x->s.next_out = x->out;
		x->s.avail_out = XZ_OUT;
		lzma_ret ret = lzma_code(&x->s, action);
		if (ret != LZMA_OK && ret != LZMA_STREAM_END)
			return xz_error(ret);
		int r = out_file_write(x->f, x->out, XZ_OUT - x->s.avail_out);
		if (r < 0)
			return r;
		if (action == LZMA_FINISH ? ret == LZMA_STREAM_END : x->s.avail_in == 0)
			return 0;
	}
}

static int xz_chunk(void *ctx, const void *buf, size_t len) { return xz_feed(ctx, buf, len, LZMA_RUN); }

static int xz_compress(int fd, uint64_t size, const char *name, struct out_file *f)
{
	struct xz x = { .s = LZMA_STREAM_INIT, .f = f, .out = malloc(XZ_OUT) };
	lzma_mt mt = { .threads = out_threads(), .preset = XZ_PRESET, .check = LZMA_CHECK_CRC64 };
	lzma_ret ret;
	int r = 0;
	if (!x.out) {
		r = -ENOMEM;
		goto out;
	}
	ret = lzma_stream_encoder_mt(&x.s, &mt);
	if (ret != LZMA_OK) {
		r = xz_error(ret);
		goto out;
	}
	r = image_stream(fd, size, name, xz_chunk, &x);
	if (r == 0)
		r = xz_feed(&x, NULL, 0, LZMA_FINISH);
out:
	lzma_end(&x.s);
	free(x.out);
	return r;
}

static int xz_write(struct build *b, const struct output_ctx *o)
{
	(void)o;
	return out_compressed(b, "xz", xz_compress);
}

const struct output_type out_xz = {
	.name = "xz",
	.write = xz_write,
};
