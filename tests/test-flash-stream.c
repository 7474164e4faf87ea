/* The flash engine fed by a stream (the network install's path): a zstd image through a pipe,
 * laid out by its bmap, written to a file with its head held back until the caller's check. */
#include "bmap-read.h"
#include "bmap.h"
#include "flash.h"
#include "tap.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <zstd.h>

#define MiB (1024u * 1024)
#define IMG_SIZE (3 * MiB + 4096)
#define HOLD MiB

static uint8_t *image;       /* the raw image */
static void *zimg;           /* it, zstd */
static size_t zlen;

struct feed {
	int fd;
	const uint8_t *buf;
	size_t len;
};

static void *feeder(void *arg)
{
	struct feed *f = arg;
	for (size_t off = 0; off < f->len;) {
		ssize_t n = write(f->fd, f->buf + off, f->len - off > 65536 ? 65536 : f->len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(f->fd);
	return NULL;
}

/* What before_head saw: the target's head still zeros, the rest already there. */
struct check {
	const char *target;
	int answer;
	bool called, head_zero, rest_written;
};

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int before_head(void *ctx)
{
	struct check *c = ctx;
	c->called = true;
	uint8_t *buf = malloc(IMG_SIZE);
	int fd = open(c->target, O_RDONLY | O_CLOEXEC);
	if (buf && fd >= 0 && pread_full(fd, buf, IMG_SIZE, 0) == 0) {
		c->head_zero = all_zero(buf, HOLD);
		c->rest_written = memcmp(buf + HOLD, image + HOLD, IMG_SIZE - HOLD) == 0;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return c->answer;
}

/* Write ZBUF (ZN bytes of zstd) to a fresh TARGET through a pipe, with BM; *ret_buf: what the
 * target holds after. */
static int run(const char *target, const void *zbuf, size_t zn, const struct bmap *bm, struct check *c, uint8_t **ret_buf)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	struct feed f = { .fd = p[1], .buf = zbuf, .len = zn };
	pthread_t th;
	pthread_create(&th, NULL, feeder, &f);
	struct flash_image img;
	int r = flash_image_open_stream(p[0], FLASH_ZSTD, "image.img.zst", "image.bmap", bm, &img);
	int tfd = open(target, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct flash_target t = { .path = target, .fd = tfd, .dev_size = 0 };
	struct flash_opts o = { .verify = true, .hold_head = HOLD, .before_head = before_head, .ctx = c };
	if (r == 0)
		r = flash_write(&img, &t, 1, &o);
	if (r == 0)
		r = t.verify == FLASH_VERIFY_OK ? 0 : -EIO;
	flash_image_close(&img); /* closes the read end: the feeder stops */
	pthread_join(th, NULL);
	free(t.why);
	*ret_buf = malloc(IMG_SIZE);
	memset(*ret_buf, 0xAA, IMG_SIZE);
	if (*ret_buf && pread_full(tfd, *ret_buf, IMG_SIZE, 0) < 0)
		memset(*ret_buf, 0xAA, IMG_SIZE);
	close(tfd);
	return r;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	char dir[] = "/tmp/pmoves-flash-stream-XXXXXX";
	if (!mkdtemp(dir))
		tap_skip_all("cannot create a temp dir");
	tap_plan(12);

	/* data in the head, at 1.5 MiB and in the last block; zeros elsewhere */
	image = calloc(1, IMG_SIZE);
	for (size_t i = 0; i < 8192; i++)
		image[512 + i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 0; i < 65536; i++)
		image[MiB + MiB / 2 + i] = (uint8_t)(i * 13 + 5);
	for (size_t i = 0; i < 4096; i++)
		image[3 * MiB + i] = (uint8_t)(i + 3);
	char raw[256];
	snprintf(raw, sizeof(raw), "%s/image.img", dir);
	int fd = open(raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ftruncate(fd, IMG_SIZE);
	pwrite_full(fd, image, 4096 * 3, 0);
	pwrite_full(fd, image + MiB + MiB / 2, 65536, MiB + MiB / 2);
	pwrite_full(fd, image + 3 * MiB, 4096, 3 * MiB);
	struct bmap_blocks *blocks = NULL;
	char *text = NULL, *why = NULL;
	size_t tlen = 0;
	struct bmap bm = { 0 };
	int r = bmap_create(fd, NULL, NULL, &blocks);
	if (r == 0)
		r = bmap_format(blocks, &text, &tlen);
	if (r == 0)
		r = bmap_parse(text, tlen, &bm, &why);
	close(fd);
	tap_ok(r == 0 && bm.n == 3, "the image's bmap: three ranges (%s)", why ? why : "");
	zimg = malloc(ZSTD_compressBound(IMG_SIZE));
	zlen = ZSTD_compress(zimg, ZSTD_compressBound(IMG_SIZE), image, IMG_SIZE, 3);
	tap_ok(!ZSTD_isError(zlen), "the image compressed");

	char target[256];
	snprintf(target, sizeof(target), "%s/disk", dir);
	uint8_t *got = NULL;

	/* the check passes: the whole image, verified */
	struct check c = { .target = target, .answer = 0 };
	r = run(target, zimg, zlen, &bm, &c, &got);
	tap_is_int(r, 0, "a good stream is written and verified");
	tap_ok(c.called && c.head_zero && c.rest_written,
	       "before the check: everything written but the head, which reads zeros");
	tap_ok(got && memcmp(got, image, IMG_SIZE) == 0, "after: the target is the image, head included");
	free(got);

	/* the check fails: everything but the head written, the head zeros */
	c = (struct check){ .target = target, .answer = -EBADMSG };
	r = run(target, zimg, zlen, &bm, &c, &got);
	tap_is_int(r, -EBADMSG, "a failed check: flash_write returns its error");
	tap_ok(got && all_zero(got, HOLD), "a failed check: the head is zeros");
	tap_ok(got && memcmp(got + HOLD, image + HOLD, IMG_SIZE - HOLD) == 0, "a failed check: the rest is written");
	free(got);

	/* a stream whose second range differs from the bmap: stops there */
	uint8_t *bad = malloc(IMG_SIZE);
	memcpy(bad, image, IMG_SIZE);
	bad[MiB + MiB / 2 + 100] ^= 0xFF;
	void *zbad = malloc(ZSTD_compressBound(IMG_SIZE));
	size_t zbadlen = ZSTD_compress(zbad, ZSTD_compressBound(IMG_SIZE), bad, IMG_SIZE, 3);
	c = (struct check){ .target = target, .answer = 0 };
	r = run(target, zbad, zbadlen, &bm, &c, &got);
	tap_ok(r < 0 && !c.called, "a stream that is not the bmap's image fails before the check (%d)", r);
	tap_ok(got && all_zero(got, HOLD), "... the head is zeros");
	tap_ok(got && all_zero(got + 3 * MiB, 4096), "... nothing past the bad range is written");

	/* a stream cut short */
	c = (struct check){ .target = target, .answer = 0 };
	free(got);
	r = run(target, zimg, zlen / 2, &bm, &c, &got);
	tap_ok(r < 0 && !c.called && got && all_zero(got, HOLD), "a stream cut short fails, the head zeros (%d)", r);
	free(got);
	free(bad);
	free(zbad);
	free(zimg);
	free(image);
	free(text);
	free(why);
	bmap_done(&bm);
	bmap_blocks_free(blocks);
	unlink(target);
	unlink(raw);
	rmdir(dir);
	return tap_done();
}
