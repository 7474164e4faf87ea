/* The flash engine. The calling thread reads the image once into a ring of buffers; each
 * target has a thread that writes every buffer the reader published, at its offset. The
 * reader reuses a buffer when every target still writing has passed it, so the slowest
 * target sets the pace and nothing is read twice. Writes are O_DIRECT where the device
 * takes it (aligned to its logical block size), buffered otherwise; fsync at the end. Then
 * each target is read back with O_DIRECT and every range's SHA-256 compared. */
#include "bmap.h"
#include "flash.h"
#include "hash.h"
#include "log.h"
#include "run.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define CHUNK (4u << 20)  /* one buffer: large writes */
#define RING 8u           /* buffers in flight */
#define ZBLOCK 4096u      /* compressed without a bmap: all-zero blocks of this size are skipped */
/* Segments of one buffer: a bmap with 512-byte blocks may map every other block. */
#define MAX_SEG (CHUNK / 512u)

struct seg {
	uint64_t off; /* in the image and on the target */
	uint32_t boff, len;
};

struct slot {
	uint8_t *buf;
	struct seg seg[MAX_SEG];
	size_t nseg;
};

struct flash_ring {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot slot[RING];
	uint64_t produced; /* slots published so far */
	bool eof, abort, interrupted;
	struct flash_target *t;
	size_t n;
};

/* ---- the image and its ranges ---- */

static int range_add(struct flash_image *img, uint64_t start, uint64_t len, struct flash_range **ret)
{
	if (img->n_range == img->cap_range) {
		size_t cap = img->cap_range ? img->cap_range * 2 : 64;
		struct flash_range *r = reallocarray(img->range, cap, sizeof(*r));
		if (!r)
			return -ENOMEM;
		img->range = r, img->cap_range = cap;
	}
	struct flash_range *r = &img->range[img->n_range++];
	*r = (struct flash_range){ .start = start, .len = len };
	if (ret)
		*ret = r;
	return 0;
}

/* The raw image's data ranges, widened to whole ZBLOCKs and merged. */
/* One data range of the raw image, rounded out to ZBLOCK and merged with the last one when
 * they touch. */
static int add_data_range(void *ctx, uint64_t start, uint64_t end)
{
	struct flash_image *img = ctx;
	uint64_t s = start / ZBLOCK * ZBLOCK, e = align_up(end, ZBLOCK);
	if (e > img->size)
		e = img->size;
	struct flash_range *last = img->n_range ? &img->range[img->n_range - 1] : NULL;
	if (last && s <= last->start + last->len) {
		if (e > last->start + last->len)
			last->len = e - last->start;
		return 0;
	}
	return range_add(img, s, e - s, NULL);
}

/* A raw image without a bmap: its data ranges as `bmaptool create` finds them (FIEMAP, so the
 * unwritten extents mke2fs leaves where it zeroed the journal are written too; SEEK_DATA where
 * there is no FIEMAP; else all of it), shared with the bmap output (bmap.c). */
static int ranges_from_holes(struct flash_image *img)
{
	return image_data_ranges(img->src.fd, img->size, add_data_range, img);
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* IMAGE.bmap, or the bmap of the name without .zst/.xz. */
static int find_bmap(const char *image, enum flash_format f, char **ret)
{
	_cleanup_free_ char *p = strdupf("%s.bmap", image);
	if (!p)
		return -ENOMEM;
	if (file_exists(p)) {
		*ret = TAKE_PTR(p);
		return 0;
	}
	size_t l = strlen(image);
	const char *ext = f == FLASH_ZSTD ? ".zst" : f == FLASH_XZ ? ".xz" : NULL;
	if (ext && l > strlen(ext) && STREQ(image + l - strlen(ext), ext)) {
		free(p);
		p = strdupf("%.*s.bmap", (int)(l - strlen(ext)), image);
		if (!p)
			return -ENOMEM;
		if (file_exists(p)) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

/* The bmap's ranges, with their digests where it has them. */
static int ranges_from_bmap(struct flash_image *img, const struct bmap *bm)
{
	for (size_t i = 0; i < bm->n; i++) {
		struct flash_range *fr;
		int r = range_add(img, bm->range[i].start, bm->range[i].len, &fr);
		if (r < 0)
			return r;
		if (bm->range[i].has_sha256) {
			memcpy(fr->sha256, bm->range[i].sha256, 32);
			fr->from_bmap = true;
		}
	}
	img->mapped = bm->mapped_bytes, img->mapped_known = true;
	return 0;
}

int flash_image_open_stream(int fd, enum flash_format format, const char *name, const char *bmap_name,
			    const struct bmap *bm, struct flash_image *ret)
{
	struct flash_image img = { .path = name, .size = bm->image_size, .bmap_path = strdup(bmap_name) };
	int r = flash_source_open_stream(fd, format, bm->image_size, &img.src);
	if (r < 0) {
		free(img.bmap_path);
		return r;
	}
	r = img.bmap_path ? ranges_from_bmap(&img, bm) : -ENOMEM;
	if (r < 0) {
		flash_image_close(&img);
		return r;
	}
	*ret = img;
	return 0;
}

int flash_image_open(const char *image, const char *bmap_path, uint64_t limit, struct flash_image *ret)
{
	struct flash_image img = { .path = image };
	struct bmap bm = { 0 };
	_cleanup_free_ char *why = NULL;
	const char *what = NULL;
	int r = flash_source_open(image, limit, &img.src, &what);
	if (r < 0) {
		char sz[24];
		format_size_human(limit, sz);
		if (r == -EPROTONOSUPPORT)
			log_error("image '%s' refused: it %s (flash reads raw, zstd and xz images)", image, what);
		else if (r == -EBADMSG)
			log_error("cannot read image '%s': its compressed data is damaged", image);
		else if (r == -EINVAL)
			log_error("image '%s' is not a regular file", image);
		else if (r == -EFBIG)
			log_error("image '%s' does not record its size and decompresses to more than %s, more than "
				  "any target holds", image, sz);
		else if (r == -EMEDIUMTYPE)
			log_error("image '%s' is a qcow2 image: flash writes raw images, raw.zst or raw.xz "
				  "('qemu-img convert -O raw' makes one)", image);
		else
			log_errno(r, "cannot open image '%s'", image);
		return r;
	}
	img.size = img.src.size;
	if (bmap_path)
		img.bmap_path = strdup(bmap_path);
	else if (find_bmap(image, img.src.format, &img.bmap_path) == -ENOMEM)
		r = -ENOMEM;
	if (r == 0 && bmap_path && !img.bmap_path)
		r = -ENOMEM;
	if (r == 0 && img.bmap_path) {
		r = bmap_load(img.bmap_path, &bm, &why);
		if (r < 0)
			log_error("bmap '%s' refused: %s", img.bmap_path, why ? why : strerror(-r));
		else if (bm.image_size != img.size) {
			log_error("bmap '%s' is for an image of %" PRIu64 " bytes, '%s' is %" PRIu64 " bytes", img.bmap_path,
				  bm.image_size, image, img.size);
			r = -EBADMSG;
		}
		if (r == 0)
			r = ranges_from_bmap(&img, &bm);
		bmap_done(&bm);
	} else if (r == 0 && img.src.format == FLASH_RAW) {
		r = ranges_from_holes(&img);
		for (size_t i = 0; r == 0 && i < img.n_range; i++)
			img.mapped += img.range[i].len;
		img.mapped_known = true;
	}
	if (r < 0) {
		flash_image_close(&img);
		return r;
	}
	*ret = img;
	return 0;
}

void flash_image_close(struct flash_image *img)
{
	flash_source_close(&img->src);
	free(img->bmap_path);
	free(img->range);
	*img = (struct flash_image){ .src.fd = -1 };
}

/* ---- progress ---- */

struct meter {
	bool tty;
	double t0, last;
	int last_pct;
	const char *what;
};

static void meter_show(struct meter *m, uint64_t done, uint64_t total, bool final)
{
	double now = now_seconds();
	int pct = total ? (int)(done * 100 / total) : 100;
	if (!final && (m->tty ? now - m->last < 0.25 : pct / 10 == m->last_pct / 10))
		return;
	if (final && !m->tty && pct == m->last_pct)
		return;
	m->last = now, m->last_pct = pct;
	double secs = now - m->t0, rate = secs > 0 ? done / secs : 0;
	char d[24], t[24], rs[24], left[32] = "";
	format_size_human(done, d);
	format_size_human(total, t);
	format_size_human((uint64_t)rate, rs);
	if (rate > 0 && total > done)
		snprintf(left, sizeof(left), ", %.0f s left", (total - done) / rate);
	if (m->tty)
		fprintf(stderr, "\r  %s %3d%% %s of %s, %s/s%s\033[K%s", m->what, pct, d, t, rs, left, final ? "\n" : "");
	else
		fprintf(stderr, "%s: %d%% (%s of %s, %s/s%s)\n", m->what, pct, d, t, rs, left);
}

/* ---- targets ---- */

static void target_fail(struct flash_target *t, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void target_fail(struct flash_target *t, int r, const char *fmt, ...)
{
	if (t->error)
		return;
	va_list ap;
	char *msg = NULL;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	t->error = r < 0 ? r : -EIO;
	t->why = msg ? strdupf("%s: %s", msg, strerror(-t->error)) : NULL;
	free(msg);
}

/* Zeros over [0, LEN) of the target that are certain to read back as zeros, without writing
 * them: FALLOC_FL_PUNCH_HOLE on a block device is the kernel's zeroout without its fallback
 * (WRITE ZEROES, or a discard the device guarantees to read back as zeros), on a file a
 * hole; else FALLOC_FL_ZERO_RANGE on a file. False where neither is done (most USB sticks,
 * ramfs): the caller then writes the zeros itself. */
static bool target_zero(struct flash_target *t, uint64_t len)
{
	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)len) == 0)
		return true;
	log_debug("'%s': cannot zero without writing (%s)", t->path, strerror(errno));
	return !t->is_blk && fallocate(t->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, (off_t)len) == 0;
}

/* Open the O_DIRECT twin; make the target as large as the image. Without a bmap, what the
 * image does not write must read back as zeros: zeroed says whether that is done. With a
 * bmap the unmapped ranges are free space (as for bmaptool): a discard, where it works, lets
 * the device erase them. */
static int target_prepare(struct flash_target *t, const struct flash_image *img)
{
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", t->fd);
	t->dfd = open(self, O_RDWR | O_DIRECT | O_CLOEXEC);
	t->align = 512;
	t->zeroed = false;
	if (t->is_blk) {
		int ss = 0;
		if (ioctl(t->fd, BLKSSZGET, &ss) == 0 && ss >= 512 && ss <= 65536)
			t->align = (unsigned)ss;
		uint64_t end = align_up(img->size, t->align);
		uint64_t range[2] = { 0, end <= t->dev_size ? end : img->size / t->align * t->align };
		if (!img->bmap_path)
			t->zeroed = range[1] >= img->size && target_zero(t, range[1]);
		else if (range[1] && ioctl(t->fd, BLKDISCARD, range) < 0 && errno != EOPNOTSUPP && errno != ENOTTY)
			log_debug("'%s': discard failed (%s), ignoring", t->path, strerror(errno));
		return 0;
	}
	if (t->dev_size < img->size) {
		if (ftruncate(t->fd, (off_t)img->size) < 0)
			return -errno;
		t->dev_size = img->size;
	}
	t->zeroed = target_zero(t, img->size);
	return 0;
}

/* Counts in t->written what reached the target, a partial write included. */
static int write_seg(struct flash_target *t, const uint8_t *buf, const struct seg *s)
{
	size_t done;
	int r;
	if (t->dfd >= 0 && s->off % t->align == 0 && s->len % t->align == 0 && s->boff % 4096 == 0) {
		r = pwrite_counted(t->dfd, buf + s->boff, s->len, s->off, &done);
		if (r != -EINVAL) {
			t->written += done;
			return r;
		}
		/* O_DIRECT refused after all (a file system that opens but does not do it): the
		 * whole segment again, buffered */
		close(t->dfd);
		t->dfd = -1;
	}
	r = pwrite_counted(t->fd, buf + s->boff, s->len, s->off, &done);
	t->written += done;
	return r;
}

static void *target_writer(void *arg)
{
	struct flash_target *t = arg;
	struct flash_ring *g = t->ring;
	double t0 = now_seconds();
	pthread_mutex_lock(&g->mu);
	for (;;) {
		while (t->next_seq >= g->produced && !g->eof && !g->abort)
			pthread_cond_wait(&g->cv, &g->mu);
		if (g->abort || t->next_seq >= g->produced)
			break;
		struct slot *s = &g->slot[t->next_seq % RING];
		pthread_mutex_unlock(&g->mu);
		int r = 0;
		for (size_t i = 0; r == 0 && i < s->nseg; i++) {
			r = write_seg(t, s->buf, &s->seg[i]);
			if (r < 0)
				target_fail(t, r, "writing %" PRIu32 " bytes at byte %" PRIu64 " failed", s->seg[i].len,
					    s->seg[i].off);
		}
		pthread_mutex_lock(&g->mu);
		t->next_seq = r < 0 ? UINT64_MAX : t->next_seq + 1; /* failed: the reader no longer waits for it */
		pthread_cond_broadcast(&g->cv);
		if (r < 0)
			break;
	}
	bool abort = g->abort, interrupted = g->interrupted;
	pthread_mutex_unlock(&g->mu);
	if (!t->error && abort)
		target_fail(t, interrupted ? -EINTR : -EIO, interrupted ? "partly written" : "the image could not be read");
	if (!t->error && (fsync(t->fd) < 0 || (t->dfd >= 0 && fsync(t->dfd) < 0)))
		target_fail(t, -errno, "fsync failed");
	t->write_seconds = now_seconds() - t0;
	return NULL;
}

/* BUF over the target's first LEN bytes, on the device when this returns. */
static void head_put(struct flash_target *t, const uint8_t *buf, uint64_t len, const char *what)
{
	int r = pwrite_full(t->fd, buf, len, 0);
	if (r == 0 && fsync(t->fd) < 0)
		r = -errno;
	if (r < 0)
		target_fail(t, r, "%s its first %" PRIu64 " bytes failed", what, len);
}

/* ---- the reader ---- */

struct reader {
	struct flash_image *img;
	struct flash_ring *g;
	struct meter m;
	uint64_t done, total;
	struct sha256 h;     /* the current range's */
	size_t ri;           /* bmap/holes: the current range; compressed without bmap: ranges so far */
	bool open;           /* compressed without bmap: a range is being extended */
	bool skip_zero;      /* without a bmap: every target reads zeros where nothing is written */
	bool (*cancelled)(void);
	char *error;
	uint8_t *head;       /* hold_head: the image's first bytes, kept until the end */
	uint64_t hold;
};

static bool reader_cancelled(const struct reader *rd)
{
	return rd->cancelled && rd->cancelled();
}

/* A slot to fill: wait until every target still writing is past its last use. */
static struct slot *slot_get(struct reader *rd)
{
	struct flash_ring *g = rd->g;
	pthread_mutex_lock(&g->mu);
	for (;;) {
		uint64_t min = UINT64_MAX;
		for (size_t i = 0; i < g->n; i++)
			if (g->t[i].next_seq < min)
				min = g->t[i].next_seq;
		if (min == UINT64_MAX || g->produced < min + RING)
			break;
		pthread_cond_wait(&g->cv, &g->mu);
	}
	struct slot *s = &g->slot[g->produced % RING];
	pthread_mutex_unlock(&g->mu);
	s->nseg = 0;
	return s;
}

static bool all_failed(struct flash_ring *g)
{
	pthread_mutex_lock(&g->mu);
	bool all = true;
	for (size_t i = 0; i < g->n; i++)
		all = all && g->t[i].next_seq == UINT64_MAX;
	pthread_mutex_unlock(&g->mu);
	return all;
}

/* The segments' bytes below rd->hold go to rd->head instead of the targets. */
static void hold_head(struct reader *rd, struct slot *s)
{
	size_t k = 0;
	for (size_t i = 0; i < s->nseg; i++) {
		struct seg sg = s->seg[i];
		if (sg.off < rd->hold) {
			uint32_t n = (uint32_t)(rd->hold - sg.off < sg.len ? rd->hold - sg.off : sg.len);
			memcpy(rd->head + sg.off, s->buf + sg.boff, n);
			sg.off += n, sg.boff += n, sg.len -= n;
		}
		if (sg.len)
			s->seg[k++] = sg;
	}
	s->nseg = k;
}

static void slot_publish(struct reader *rd, struct slot *s)
{
	if (rd->hold)
		hold_head(rd, s);
	if (!s->nseg)
		return;
	for (size_t i = 0; i < s->nseg; i++)
		rd->done += s->seg[i].len;
	pthread_mutex_lock(&rd->g->mu);
	rd->g->produced++;
	pthread_cond_broadcast(&rd->g->cv);
	pthread_mutex_unlock(&rd->g->mu);
	meter_show(&rd->m, rd->done, rd->total, false);
}

/* The current range is complete: its digest checked against the bmap's, or kept. */
static int range_end(struct reader *rd, struct flash_range *fr, size_t index)
{
	uint8_t d[32];
	int r = sha256_final(&rd->h, d);
	if (r < 0)
		return r;
	if (fr->from_bmap && memcmp(d, fr->sha256, 32) != 0) {
		rd->error = strdupf("image '%s' does not match its bmap '%s' in range %zu (bytes %" PRIu64 "-%" PRIu64
				    "): the image or the bmap changed",
				    rd->img->path, rd->img->bmap_path, index + 1, fr->start, fr->start + fr->len - 1);
		return -EBADMSG;
	}
	memcpy(fr->sha256, d, 32);
	return 0;
}

static int hash_seg(struct reader *rd, const struct slot *s, const struct seg *sg)
{
	return sha256_update(&rd->h, s->buf + sg->boff, sg->len);
}

/* A raw image with ranges: read each range in CHUNK pieces. */
static int read_raw(struct reader *rd)
{
	struct flash_image *img = rd->img;
	for (size_t i = 0; i < img->n_range; i++) {
		struct flash_range *fr = &img->range[i];
		int r = sha256_init(&rd->h);
		for (uint64_t pos = fr->start; r == 0 && pos < fr->start + fr->len;) {
			if (reader_cancelled(rd))
				return -EINTR;
			struct slot *s = slot_get(rd);
			uint32_t n = (uint32_t)(fr->start + fr->len - pos < CHUNK ? fr->start + fr->len - pos : CHUNK);
			r = pread_full(img->src.fd, s->buf, n, pos);
			if (r < 0) {
				rd->error = strdupf("cannot read image '%s' at byte %" PRIu64 ": %s", img->path, pos, strerror(-r));
				break;
			}
			s->seg[0] = (struct seg){ .off = pos, .boff = 0, .len = n };
			s->nseg = 1;
			r = hash_seg(rd, s, &s->seg[0]);
			slot_publish(rd, s);
			pos += n;
			if (all_failed(rd->g))
				return 0;
		}
		if (r == 0)
			r = range_end(rd, fr, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Compressed, with a bmap: the decompressed chunk at POS cut to the mapped ranges. */
static int cut_mapped(struct reader *rd, struct slot *s, uint64_t pos, size_t n)
{
	struct flash_image *img = rd->img;
	while (rd->ri < img->n_range) {
		struct flash_range *fr = &img->range[rd->ri];
		uint64_t a = fr->start > pos ? fr->start : pos, e = fr->start + fr->len;
		if (a >= pos + n)
			break;
		uint64_t b = e < pos + n ? e : pos + n;
		if (s->nseg == MAX_SEG)
			return -E2BIG; /* cannot happen: a range is at least one block, 512 bytes or more */
		if (a == fr->start) {
			int r = sha256_init(&rd->h);
			if (r < 0)
				return r;
		}
		struct seg *sg = &s->seg[s->nseg++];
		*sg = (struct seg){ .off = a, .boff = (uint32_t)(a - pos), .len = (uint32_t)(b - a) };
		int r = hash_seg(rd, s, sg);
		if (r < 0)
			return r;
		if (b < e)
			break;
		r = range_end(rd, fr, rd->ri++);
		if (r < 0)
			return r;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Compressed, without a bmap: the blocks that are not all zeros, as ranges found here. */
static int cut_nonzero(struct reader *rd, struct slot *s, uint64_t pos, size_t n)
{
	struct flash_image *img = rd->img;
	for (size_t b = 0; b < n; b += ZBLOCK) {
		size_t len = n - b < ZBLOCK ? n - b : ZBLOCK;
		int r = 0;
		if (rd->skip_zero && all_zero(s->buf + b, len)) {
			if (rd->open) {
				rd->open = false;
				r = range_end(rd, &img->range[img->n_range - 1], img->n_range - 1);
			}
			if (r < 0)
				return r;
			continue;
		}
		if (!rd->open) {
			r = range_add(img, pos + b, 0, NULL);
			if (r == 0)
				r = sha256_init(&rd->h);
			if (r < 0)
				return r;
			rd->open = true;
		}
		img->range[img->n_range - 1].len += len;
		struct seg *last = s->nseg ? &s->seg[s->nseg - 1] : NULL;
		if (last && last->off + last->len == pos + b)
			last->len += (uint32_t)len;
		else
			s->seg[s->nseg++] = (struct seg){ .off = pos + b, .boff = (uint32_t)b, .len = (uint32_t)len };
		r = sha256_update(&rd->h, s->buf + b, len);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_stream(struct reader *rd)
{
	struct flash_image *img = rd->img;
	bool mapped = img->mapped_known;
	uint64_t pos = 0;
	for (;;) {
		if (reader_cancelled(rd))
			return -EINTR;
		struct slot *s = slot_get(rd);
		size_t n = 0, got;
		int r = 0;
		while (n < CHUNK && (r = flash_source_read(&img->src, s->buf + n, CHUNK - n, &got)) == 0 && got > 0)
			n += got;
		if (r < 0) {
			rd->error = strdupf("cannot read image '%s' after %" PRIu64 " bytes: %s", img->path, pos + n,
					    r == -EBADMSG ? "its compressed data is damaged" : strerror(-r));
			return r;
		}
		if (pos + n > img->size) {
			rd->error = strdupf("image '%s' holds more than the %" PRIu64 " bytes its %s says", img->path,
					    img->size, img->bmap_path ? "bmap" : "header");
			return -EBADMSG;
		}
		r = mapped ? cut_mapped(rd, s, pos, n) : cut_nonzero(rd, s, pos, n);
		if (r < 0)
			return r;
		slot_publish(rd, s);
		if (!mapped)
			rd->done = pos + n; /* the meter counts the image read */
		pos += n;
		if (n < CHUNK || all_failed(rd->g))
			break;
	}
	if (pos != img->size && !all_failed(rd->g)) {
		rd->error = strdupf("image '%s' ends after %" PRIu64 " bytes, its %s says %" PRIu64, img->path, pos,
				    img->bmap_path ? "bmap" : "header", img->size);
		return -EBADMSG;
	}
	if (!mapped && rd->open) {
		rd->open = false;
		int r = range_end(rd, &img->range[img->n_range - 1], img->n_range - 1);
		if (r < 0)
			return r;
	}
	if (!mapped) {
		img->mapped = 0;
		for (size_t i = 0; i < img->n_range; i++)
			img->mapped += img->range[i].len;
		img->mapped_known = true;
	}
	return 0;
}

/* ---- verify ----
 * Per target, two threads: one reads the device back (O_DIRECT) into a small ring, the other
 * hashes what was read, range by range, so that reading and hashing overlap. */

#define VRING 4u

struct vitem {
	size_t ri;    /* the range */
	uint64_t pos; /* where the buffer was read */
	size_t n;
	int r;        /* the read's result */
};

struct verifier {
	struct flash_target *t;
	const struct flash_image *img;
	pthread_t thread, reader;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[VRING];
	struct vitem item[VRING];
	uint64_t produced, consumed;
	bool done, stop;
	bool (*cancelled)(void);
};

static int read_back(struct flash_target *t, uint8_t *buf, uint64_t off, size_t len)
{
	if (t->dfd >= 0 && off % t->align == 0 && len % t->align == 0) {
		int r = pread_full(t->dfd, buf, len, off);
		if (r != -EINVAL)
			return r;
	}
	/* Not aligned, or no O_DIRECT: drop the cached pages first, so the device is read. */
	posix_fadvise(t->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
	return pread_full(t->fd, buf, len, off);
}

/* Whole logical blocks around range FR, inside the device. */
static void window(const struct flash_target *t, const struct flash_range *fr, uint64_t *ret_a, uint64_t *ret_e)
{
	uint64_t e = align_up(fr->start + fr->len, t->align);
	*ret_a = fr->start / t->align * t->align;
	*ret_e = e > t->dev_size ? fr->start + fr->len : e;
}

static void *verify_reader(void *arg)
{
	struct verifier *v = arg;
	bool stop = false;
	for (size_t i = 0; i < v->img->n_range && !stop; i++) {
		uint64_t a, e;
		window(v->t, &v->img->range[i], &a, &e);
		for (uint64_t pos = a; pos < e && !stop;) {
			size_t n = e - pos < CHUNK ? (size_t)(e - pos) : CHUNK;
			pthread_mutex_lock(&v->mu);
			while (v->produced - v->consumed == VRING && !v->stop)
				pthread_cond_wait(&v->cv, &v->mu);
			stop = v->stop;
			pthread_mutex_unlock(&v->mu);
			if (stop)
				break;
			size_t k = v->produced % VRING; /* only this thread moves produced */
			bool cancel = v->cancelled && v->cancelled();
			v->item[k] = (struct vitem){ .ri = i, .pos = pos, .n = n,
						     .r = cancel ? -EINTR : read_back(v->t, v->buf[k], pos, n) };
			stop = v->item[k].r < 0;
			pthread_mutex_lock(&v->mu);
			v->produced++;
			pthread_cond_broadcast(&v->cv);
			pthread_mutex_unlock(&v->mu);
			pos += n;
		}
	}
	pthread_mutex_lock(&v->mu);
	v->done = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

/* Range RI's digest against the image's; false (and the target failed) when it differs. */
static bool range_verified(struct verifier *v, size_t ri, struct sha256 *h)
{
	const struct flash_range *fr = &v->img->range[ri];
	uint8_t d[32];
	int r = sha256_final(h, d);
	if (r < 0) {
		target_fail(v->t, r, "verify");
		return false;
	}
	if (memcmp(d, fr->sha256, 32) == 0)
		return true;
	v->t->error = -EIO;
	v->t->why = strdupf("verify failed: range %zu (bytes %" PRIu64 "-%" PRIu64 ") differs from the image", ri + 1,
			    fr->start, fr->start + fr->len - 1);
	return false;
}

/* The hashing half, on what verify_reader read. */
static void verify_hash(struct verifier *v)
{
	size_t cur = SIZE_MAX;
	struct sha256 h = { 0 };
	bool good = true;
	for (;;) {
		pthread_mutex_lock(&v->mu);
		while (v->consumed == v->produced && !v->done)
			pthread_cond_wait(&v->cv, &v->mu);
		bool end = v->consumed == v->produced;
		pthread_mutex_unlock(&v->mu);
		if (end)
			break;
		const struct vitem *it = &v->item[v->consumed % VRING];
		const struct flash_range *fr = &v->img->range[it->ri];
		if (it->r < 0) {
			target_fail(v->t, it->r, "verify: reading range %zu (bytes %" PRIu64 "-%" PRIu64 ") failed", it->ri + 1,
				    fr->start, fr->start + fr->len - 1);
			good = false;
			break;
		}
		if (it->ri != cur) {
			if (cur != SIZE_MAX && !(good = range_verified(v, cur, &h)))
				break;
			int r = sha256_init(&h);
			if (r < 0) {
				target_fail(v->t, r, "verify");
				good = false;
				break;
			}
			cur = it->ri;
		}
		/* the range's bytes in what was read */
		uint64_t ha = it->pos > fr->start ? it->pos : fr->start;
		uint64_t he = it->pos + it->n < fr->start + fr->len ? it->pos + it->n : fr->start + fr->len;
		if (he > ha)
			(void)sha256_update(&h, v->buf[v->consumed % VRING] + (ha - it->pos), he - ha);
		pthread_mutex_lock(&v->mu);
		v->consumed++;
		pthread_cond_broadcast(&v->cv);
		pthread_mutex_unlock(&v->mu);
	}
	if (good && cur != SIZE_MAX)
		good = range_verified(v, cur, &h);
	sha256_free(&h);
	v->t->verify = good ? FLASH_VERIFY_OK : FLASH_VERIFY_FAILED;
}

static void *target_verifier(void *arg)
{
	struct verifier *v = arg;
	double t0 = now_seconds();
	bool ok = true;
	for (size_t i = 0; i < VRING; i++)
		ok = ok && posix_memalign((void **)&v->buf[i], 4096, CHUNK) == 0;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	if (ok && pthread_create(&v->reader, NULL, verify_reader, v) == 0) {
		verify_hash(v);
		pthread_mutex_lock(&v->mu);
		v->stop = true;
		pthread_cond_broadcast(&v->cv);
		pthread_mutex_unlock(&v->mu);
		pthread_join(v->reader, NULL);
	} else {
		target_fail(v->t, -ENOMEM, "cannot start the verify");
		v->t->verify = FLASH_VERIFY_FAILED;
	}
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mu);
	for (size_t i = 0; i < VRING; i++)
		free(v->buf[i]);
	v->t->verify_seconds = now_seconds() - t0;
	return NULL;
}

static int run_hook(const char *hook, struct flash_target *t, size_t n)
{
	_cleanup_strv_ char **argv = NULL;
	int r = strv_push(&argv, hook);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (!t[i].error)
			r = strv_push(&argv, t[i].path);
	if (r < 0)
		return r;
	r = run_argv(argv, &(struct run_opts){ .out_fd = STDERR_FILENO });
	return r == 0 ? 0 : log_errno(r < 0 ? r : -EIO, "test hook '%s' failed (status %d)", hook, r);
}

int flash_write(struct flash_image *img, struct flash_target *t, size_t n, const struct flash_opts *o)
{
	struct flash_ring g = { .t = t, .n = n };
	struct reader rd = { .img = img, .g = &g, .total = img->mapped_known ? img->mapped : img->size,
			     .cancelled = o->cancelled };
	int r = 0;
	size_t started = 0;
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	for (size_t i = 0; i < RING; i++)
		if (posix_memalign((void **)&g.slot[i].buf, 4096, CHUNK) != 0)
			r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		t[i].ring = &g;
		t[i].dfd = -1;
		t[i].verify = o->verify ? FLASH_VERIFY_NOT_RUN : FLASH_VERIFY_OFF;
		int p = target_prepare(&t[i], img);
		if (p < 0) {
			target_fail(&t[i], p, "cannot prepare '%s'", t[i].path);
			t[i].next_seq = UINT64_MAX;
		}
	}
	/* hold_head: zeros over the head before anything else is written, so that no earlier
	 * contents (a partition table) stay bootable beside the half-written new ones */
	rd.hold = o->hold_head < img->size ? o->hold_head : img->size;
	if (r == 0 && rd.hold && !(rd.head = calloc(1, rd.hold)))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && rd.hold && i < n; i++) {
		if (!t[i].error)
			head_put(&t[i], rd.head, rd.hold, "zeroing");
		if (t[i].error)
			t[i].next_seq = UINT64_MAX;
	}
	/* Without a bmap, blocks of zeros are left out only when every target reads zeros there
	 * already; else the whole image is written (and verified). */
	rd.skip_zero = true;
	for (size_t i = 0; r == 0 && i < n; i++)
		rd.skip_zero = rd.skip_zero && (t[i].error || t[i].zeroed);
	if (r == 0 && !img->bmap_path && !rd.skip_zero && img->src.format == FLASH_RAW) {
		img->n_range = 0;
		r = range_add(img, 0, img->size, NULL);
		img->mapped = img->size;
		rd.total = img->size;
	}
	rd.m = (struct meter){ .tty = isatty(STDERR_FILENO) == 1, .t0 = now_seconds(), .last_pct = -10, .what = "writing" };
	for (; r == 0 && started < n; started++)
		if (pthread_create(&t[started].thread, NULL, target_writer, &t[started]) != 0)
			r = -EAGAIN;
	if (r == 0) {
		r = img->src.format == FLASH_RAW && img->mapped_known && !img->src.stream ? read_raw(&rd) : read_stream(&rd);
		sha256_free(&rd.h);
	}
	pthread_mutex_lock(&g.mu);
	g.eof = true;
	if (r < 0)
		g.abort = true;
	g.interrupted = r == -EINTR;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i].thread, NULL);
	if (r == 0)
		meter_show(&rd.m, rd.done, rd.total > rd.done ? rd.total : rd.done, true);
	else if (rd.m.tty)
		fputc('\n', stderr);
	if (rd.error)
		log_error("%s", rd.error);
	else if (r == -EINTR)
		log_error("interrupted: the devices are partly written");
	else if (r < 0)
		log_errno(r, "writing '%s' failed", img->path);
	free(rd.error);
	for (size_t i = 0; i < RING; i++)
		free(g.slot[i].buf);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			target_fail(&t[i], r == -EINTR ? r : -EIO, r == -EINTR ? "partly written" : "the image could not be read");
		free(rd.head);
		return r == -EINTR ? r : -EIO;
	}
	if (rd.hold) {
		int h = o->before_head ? o->before_head(o->ctx) : 0;
		for (size_t i = 0; i < n; i++)
			if (t[i].error)
				continue;
			else if (h < 0)
				target_fail(&t[i], h, "written but for its first %" PRIu64 " bytes, which are zeros", rd.hold);
			else
				head_put(&t[i], rd.head, rd.hold, "writing");
		if (h < 0) {
			free(rd.head);
			return h;
		}
	}

	/* a failing hook fails the run: the test it serves did not happen */
	if (o->verify && o->test_hook && run_hook(o->test_hook, t, n) < 0)
		for (size_t i = 0; i < n; i++)
			target_fail(&t[i], -EIO, "the test hook failed");
	if (o->verify) {
		struct verifier v[n ? n : 1];
		size_t nv = 0;
		fprintf(stderr, "verifying %zu range%s by reading back\n", img->n_range, img->n_range == 1 ? "" : "s");
		for (size_t i = 0; i < n; i++) {
			if (t[i].error)
				continue;
			v[nv] = (struct verifier){ .t = &t[i], .img = img, .cancelled = o->cancelled };
			if (pthread_create(&v[nv].thread, NULL, target_verifier, &v[nv]) != 0)
				target_fail(&t[i], -EAGAIN, "cannot start the verify");
			else
				nv++;
		}
		for (size_t i = 0; i < nv; i++)
			pthread_join(v[i].thread, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		if (t[i].dfd >= 0)
			close(t[i].dfd);
		t[i].dfd = -1;
		if (t[i].error)
			r = -EUCLEAN;
		/* a target that failed after its head was written: no longer bootable */
		if (t[i].error && rd.hold) {
			memset(rd.head, 0, rd.hold);
			if (pwrite_full(t[i].fd, rd.head, rd.hold, 0) == 0)
				(void)fsync(t[i].fd);
		}
	}
	free(rd.head);
	return r;
}
