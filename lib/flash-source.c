/* Raw, zstd (libzstd, streaming) and xz (liblzma, multi-threaded streaming) images, read
 * sequentially: decompressed while the flash writes, never a second copy on disk. */
#include "flash-source.h"
#include "util.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <zstd.h>

#define IN_BUF (1u << 20)

struct flash_decoder {
	ZSTD_DStream *zs;
	lzma_stream xz;
	bool xz_init;
	uint8_t *in;
	size_t in_len, in_pos;
	bool in_eof, done;
	size_t zhint; /* zstd's last answer: 0 when a frame just ended */
};

const char *flash_format_name(enum flash_format f)
{
	return f == FLASH_ZSTD ? "zstd" : f == FLASH_XZ ? "xz" : "raw";
}

static void decoder_free(struct flash_decoder *d)
{
	if (!d)
		return;
	ZSTD_freeDStream(d->zs);
	if (d->xz_init)
		lzma_end(&d->xz);
	free(d->in);
	free(d);
}

static int decoder_start(struct flash_source *s)
{
	decoder_free(s->dec);
	s->dec = NULL;
	s->pos = 0;
	if (s->format == FLASH_RAW)
		return 0;
	struct flash_decoder *d = calloc(1, sizeof(*d));
	if (!d || !(d->in = malloc(IN_BUF))) {
		decoder_free(d);
		return -ENOMEM;
	}
	s->dec = d;
	if (s->format == FLASH_ZSTD)
		return (d->zs = ZSTD_createDStream()) && !ZSTD_isError(ZSTD_initDStream(d->zs)) ? 0 : -ENOMEM;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	lzma_mt mt = { .threads = cpus > 0 && cpus < 64 ? (uint32_t)cpus : 1, .flags = LZMA_CONCATENATED,
		       .memlimit_threading = UINT64_C(1) << 30, .memlimit_stop = UINT64_MAX };
	d->xz = (lzma_stream)LZMA_STREAM_INIT;
	if (lzma_stream_decoder_mt(&d->xz, &mt) != LZMA_OK)
		return -ENOMEM;
	d->xz_init = true;
	return 0;
}

/* Up to LEN bytes at the source's position: pread from a file, read from a stream. */
static ssize_t source_read(struct flash_source *s, void *buf, size_t len)
{
	ssize_t n;
	while ((n = s->stream ? read(s->fd, buf, len) : pread(s->fd, buf, len, (off_t)s->pos)) < 0 && errno == EINTR)
		;
	return n;
}

static int fill(struct flash_source *s)
{
	struct flash_decoder *d = s->dec;
	if (d->in_pos < d->in_len || d->in_eof)
		return 0;
	ssize_t n = source_read(s, d->in, IN_BUF);
	if (n < 0)
		return -errno;
	s->pos += (uint64_t)n;
	d->in_len = (size_t)n, d->in_pos = 0, d->in_eof = n == 0;
	return 0;
}

int flash_source_read(struct flash_source *s, void *buf, size_t len, size_t *ret_n)
{
	size_t got = 0;
	if (s->format == FLASH_RAW) {
		while (got < len) {
			ssize_t n = source_read(s, (char *)buf + got, len - got);
			if (n < 0)
				return -errno;
			if (n == 0)
				break;
			got += (size_t)n;
			s->pos += (uint64_t)n;
		}
		*ret_n = got;
		return 0;
	}
	struct flash_decoder *d = s->dec;
	while (got < len && !d->done) {
		int r = fill(s);
		if (r < 0)
			return r;
		if (s->format == FLASH_ZSTD) {
			ZSTD_inBuffer in = { d->in, d->in_len, d->in_pos };
			ZSTD_outBuffer out = { buf, len, got };
			size_t z = ZSTD_decompressStream(d->zs, &out, &in);
			if (ZSTD_isError(z))
				return -EBADMSG;
			bool progress = in.pos != d->in_pos || out.pos != got;
			d->in_pos = in.pos, got = out.pos;
			if (progress)
				d->zhint = z;
			else if (d->in_eof) {
				if (d->zhint != 0) /* a frame cut short */
					return -EBADMSG;
				d->done = true;
			}
		} else {
			d->xz.next_in = d->in + d->in_pos;
			d->xz.avail_in = d->in_len - d->in_pos;
			d->xz.next_out = (uint8_t *)buf + got;
			d->xz.avail_out = len - got;
			lzma_ret x = lzma_code(&d->xz, d->in_eof ? LZMA_FINISH : LZMA_RUN);
			d->in_pos = d->in_len - d->xz.avail_in;
			got = len - d->xz.avail_out;
			if (x == LZMA_STREAM_END)
				d->done = true;
			else if (x != LZMA_OK)
				return -EBADMSG;
		}
	}
	*ret_n = got;
	return 0;
}

int flash_source_rewind(struct flash_source *s)
{
	return s->stream ? -ESPIPE : decoder_start(s);
}

int flash_source_open_stream(int fd, enum flash_format format, uint64_t size, struct flash_source *ret)
{
	struct flash_source s = { .fd = fd, .format = format, .size = size, .stream = true };
	int r = decoder_start(&s);
	if (r < 0) {
		flash_source_close(&s);
		return r;
	}
	*ret = s;
	return 0;
}

/* zstd: the frames' content sizes (all of them must say). */
static int zstd_size(int fd, uint64_t file_size, uint64_t *ret)
{
	void *map = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	/* frame by frame, with the stable API: each frame's content size, skippable frames 0 */
	const uint8_t *p = map;
	uint64_t left = file_size, total = 0;
	int r = 0;
	while (left > 0 && r == 0) {
		unsigned long long c = ZSTD_getFrameContentSize(p, left);
		size_t fl = ZSTD_findFrameCompressedSize(p, left);
		if (c == ZSTD_CONTENTSIZE_ERROR || ZSTD_isError(fl) || fl == 0)
			r = -EBADMSG;
		else if (c == ZSTD_CONTENTSIZE_UNKNOWN)
			r = -ENODATA;
		else if (__builtin_add_overflow(total, c, &total))
			r = -EBADMSG;
		else
			p += fl, left -= fl;
	}
	munmap(map, file_size);
	if (r < 0)
		return r;
	unsigned long long n = total;
	*ret = n;
	return 0;
}

/* xz: the uncompressed size from the streams' indexes, read from the end of the file. */
static int xz_size(int fd, uint64_t file_size, uint64_t *ret)
{
	lzma_stream st = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	if (lzma_file_info_decoder(&st, &idx, UINT64_MAX, file_size) != LZMA_OK)
		return -ENOMEM;
	_cleanup_free_ uint8_t *buf = malloc(IN_BUF);
	int r = buf ? -EBADMSG : -ENOMEM;
	uint64_t pos = 0;
	while (buf) {
		ssize_t n = pread(fd, buf, IN_BUF, (off_t)pos);
		if (n < 0) {
			r = -errno;
			break;
		}
		st.next_in = buf, st.avail_in = (size_t)n;
		lzma_ret x = lzma_code(&st, n == 0 ? LZMA_FINISH : LZMA_RUN);
		pos += (uint64_t)n - st.avail_in;
		if (x == LZMA_SEEK_NEEDED) {
			pos = st.seek_pos;
			continue;
		}
		if (x == LZMA_STREAM_END) {
			*ret = lzma_index_uncompressed_size(idx);
			r = 0;
			break;
		}
		if (x != LZMA_OK || n == 0)
			break;
	}
	lzma_end(&st);
	if (idx)
		lzma_index_end(idx, NULL);
	return r;
}

/* A compressed image that does not record its size: decompress it once, counting, and stop
 * past LIMIT (a few bytes of zstd can stand for petabytes). */
static int count_size(struct flash_source *s, uint64_t limit, uint64_t *ret)
{
	_cleanup_free_ char *buf = malloc(IN_BUF * 4);
	if (!buf)
		return -ENOMEM;
	uint64_t total = 0;
	size_t n;
	int r;
	while ((r = flash_source_read(s, buf, IN_BUF * 4, &n)) == 0 && n > 0)
		if ((total += n) > limit)
			return -EFBIG;
	if (r < 0)
		return r;
	*ret = total;
	return flash_source_rewind(s);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t l = strlen(s), k = strlen(suffix);
	return l > k && STREQ(s + l - k, suffix);
}

/* The format of a file starting with MAGIC, or why it is refused (*ret_why, static text). */
static int sniff(const char *path, const uint8_t magic[6], enum flash_format *ret, const char **ret_why)
{
	static const struct {
		const char *magic;
		size_t len;
		const char *why;
	} other[] = {
		{ "QFI\xfb", 4, "is a qcow2 image" },
		{ "\x1f\x8b", 2, "is gzip compressed" },
		{ "BZh", 3, "is bzip2 compressed" },
		{ "\x04\x22\x4d\x18", 4, "is lz4 compressed" },
		{ "PK\x03\x04", 4, "is a zip archive" },
	};
	enum flash_format f = FLASH_RAW;
	uint32_t m = (uint32_t)magic[0] | (uint32_t)magic[1] << 8 | (uint32_t)magic[2] << 16 | (uint32_t)magic[3] << 24;
	/* a zstd frame, or a skippable frame (0x184D2A50-5F: pzstd puts one first) */
	if (m == 0xFD2FB528u || (m & 0xFFFFFFF0u) == 0x184D2A50u)
		f = FLASH_ZSTD;
	else if (memcmp(magic, "\xfd" "7zXZ\0", 6) == 0)
		f = FLASH_XZ;
	for (size_t i = 0; f == FLASH_RAW && i < ARRAY_SIZE(other); i++)
		if (memcmp(magic, other[i].magic, other[i].len) == 0) {
			*ret_why = other[i].why;
			return i == 0 ? -EMEDIUMTYPE : -EPROTONOSUPPORT;
		}
	/* a name that promises a format the bytes do not have: a damaged or mislabelled file */
	if ((ends_with(path, ".zst") && f != FLASH_ZSTD) || (ends_with(path, ".xz") && f != FLASH_XZ)) {
		*ret_why = ends_with(path, ".zst") ? "is named .zst but is not zstd" : "is named .xz but is not xz";
		return -EPROTONOSUPPORT;
	}
	if (ends_with(path, ".gz") || ends_with(path, ".bz2")) {
		*ret_why = ends_with(path, ".gz") ? "is named .gz but is not gzip" : "is named .bz2 but is not bzip2";
		return -EPROTONOSUPPORT;
	}
	*ret = f;
	return 0;
}

int flash_source_open(const char *path, uint64_t limit, struct flash_source *ret, const char **ret_why)
{
	struct flash_source s = { .fd = open(path, O_RDONLY | O_CLOEXEC) };
	if (s.fd < 0)
		return -errno;
	struct stat st;
	int r = fstat(s.fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	uint8_t magic[6] = { 0 };
	if (r == 0 && pread(s.fd, magic, sizeof(magic), 0) < 0)
		r = -errno;
	if (r == 0)
		r = sniff(path, magic, &s.format, ret_why);
	if (r < 0) {
		close(s.fd);
		return r;
	}
	s.file_size = (uint64_t)st.st_size;
	s.size = s.file_size;
	if (s.format == FLASH_ZSTD)
		r = zstd_size(s.fd, s.file_size, &s.size);
	else if (s.format == FLASH_XZ)
		r = xz_size(s.fd, s.file_size, &s.size);
	if (r == 0 || r == -ENODATA) {
		int r2 = decoder_start(&s);
		r = r2 < 0 ? r2 : r == -ENODATA ? count_size(&s, limit, &s.size) : 0;
	}
	if (r < 0) {
		flash_source_close(&s);
		return r;
	}
	posix_fadvise(s.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	*ret = s;
	return 0;
}

void flash_source_close(struct flash_source *s)
{
	decoder_free(s->dec);
	s->dec = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
