/* The block map: data ranges from the image's holes, their SHA-256, and bmaptool's text. */
#include "bmap.h"
#include "hash.h"
#include "util.h"

#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define HASH_CHUNK (1u << 20)

/* Collects extents into maximal ranges before handing them on. */
struct merge {
	int (*fn)(void *ctx, uint64_t start, uint64_t end);
	void *ctx;
	uint64_t start, end; /* the range so far; empty when start == end */
};

static int merge_add(struct merge *m, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	if (m->end > m->start && start <= m->end) {
		if (end > m->end)
			m->end = end;
		return 0;
	}
	int r = m->end > m->start ? m->fn(m->ctx, m->start, m->end) : 0;
	m->start = start;
	m->end = end;
	return r;
}

static int merge_flush(struct merge *m) { return m->end > m->start ? m->fn(m->ctx, m->start, m->end) : 0; }

#define FIEMAP_BATCH 256

/* The file system's extents (FIEMAP, synced first, as bmaptool asks for them): -EOPNOTSUPP
 * when it has no FIEMAP. */
static int fiemap_ranges(int fd, uint64_t size, struct merge *m)
{
	size_t bytes = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	_cleanup_free_ struct fiemap *fm = malloc(bytes);
	if (!fm)
		return -ENOMEM;
	uint64_t pos = 0;
	uint32_t flags = FIEMAP_FLAG_SYNC;
	while (pos < size) {
		memset(fm, 0, bytes);
		fm->fm_start = pos;
		fm->fm_length = size - pos;
		fm->fm_flags = flags;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			if (pos == 0 && (errno == EOPNOTSUPP || errno == ENOTTY || errno == EBADR || errno == EINVAL))
				return -EOPNOTSUPP;
			return -errno;
		}
		flags = 0;
		if (fm->fm_mapped_extents == 0)
			break;
		bool last = false;
		uint64_t next = pos;
		for (uint32_t i = 0; i < fm->fm_mapped_extents && i < FIEMAP_BATCH; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];
			if (e->fe_logical > UINT64_MAX - e->fe_length)
				return -EIO;
			uint64_t s = e->fe_logical > pos ? e->fe_logical : pos,
				 end = e->fe_logical + e->fe_length < size ? e->fe_logical + e->fe_length : size;
			int r = merge_add(m, s, end);
			if (r < 0)
				return r;
			if (e->fe_logical + e->fe_length > next)
				next = e->fe_logical + e->fe_length;
			last |= (e->fe_flags & FIEMAP_EXTENT_LAST) != 0;
		}
		if (last)
			break;
		if (next <= pos)
			return -EIO; /* no progress: the file changed under us */
		pos = next;
	}
	return 0;
}

/* The same from lseek(SEEK_DATA, SEEK_HOLE); all of it is data where there is no SEEK_DATA. */
static int seek_ranges(int fd, uint64_t size, struct merge *m)
{
	uint64_t pos = 0;
	while (pos < size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				return 0; /* only holes remain */
			if (errno == EINVAL)
				return merge_add(m, pos, size);
			return -errno;
		}
		if ((uint64_t)data >= size)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		uint64_t end = (uint64_t)hole < size ? (uint64_t)hole : size;
		if (end <= (uint64_t)data)
			return -EIO; /* the file changed under us */
		int r = merge_add(m, (uint64_t)data, end);
		if (r < 0)
			return r;
		pos = end;
	}
	return 0;
}

int image_data_ranges(int fd, uint64_t size, int (*fn)(void *ctx, uint64_t start, uint64_t end), void *ctx)
{
	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	struct merge m = { .fn = fn, .ctx = ctx };
	int r = fiemap_ranges(fd, size, &m);
	if (r == -EOPNOTSUPP)
		r = seek_ranges(fd, size, &m);
	return r < 0 ? r : merge_flush(&m);
}

static size_t ranges_cap(size_t n) { return n < 64 ? 64 : n * 2; }

/* A data range, rounded out to whole blocks; merged with the one before when they touch. */
static int add_range(void *ctx, uint64_t start, uint64_t end)
{
	struct bmap_blocks *m = ctx;
	uint64_t first = start / BMAP_BLOCK_SIZE, last = (end - 1) / BMAP_BLOCK_SIZE;
	if (m->n > 0 && first <= m->ranges[m->n - 1].last + 1) {
		if (last > m->ranges[m->n - 1].last)
			m->ranges[m->n - 1].last = last;
		return 0;
	}
	if (m->n == BMAP_CREATE_MAX_RANGES)
		return -E2BIG;
	/* The array doubles each time n reaches a power of two from 64. */
	if (m->n == 0 || (m->n >= 64 && (m->n & (m->n - 1)) == 0)) {
		struct bmap_block_range *g = reallocarray(m->ranges, ranges_cap(m->n), sizeof(*g));
		if (!g)
			return -ENOMEM;
		m->ranges = g;
	}
	m->ranges[m->n++] = (struct bmap_block_range){ .first = first, .last = last };
	return 0;
}

static int hash_range(int fd, const struct bmap_blocks *m, struct bmap_block_range *rg, uint8_t *buf, uint64_t *done,
		      uint64_t total, hash_progress_fn progress, void *ctx)
{
	uint64_t off = rg->first * BMAP_BLOCK_SIZE, end = (rg->last + 1) * BMAP_BLOCK_SIZE;
	if (end > m->image_size)
		end = m->image_size; /* the last block may be partial: bmaptool hashes what there is */
	struct sha256 s;
	int r = sha256_init(&s);
	while (r == 0 && off < end) {
		size_t n = end - off < HASH_CHUNK ? (size_t)(end - off) : HASH_CHUNK;
		r = pread_full(fd, buf, n, off);
		if (r == 0)
			r = sha256_update(&s, buf, n);
		off += n;
		*done += n;
		if (r == 0 && progress)
			r = progress(ctx, *done, total);
	}
	if (r == 0)
		return sha256_final_hex(&s, rg->sha256);
	sha256_free(&s);
	return r;
}

void bmap_blocks_free(struct bmap_blocks *m)
{
	if (!m)
		return;
	free(m->ranges);
	free(m);
}

static void bmap_blocks_freep(struct bmap_blocks **m) { bmap_blocks_free(*m); }

int bmap_create(int fd, hash_progress_fn progress, void *ctx, struct bmap_blocks **ret)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0)
		return -EINVAL;
	_cleanup_(bmap_blocks_freep) struct bmap_blocks *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->image_size = (uint64_t)st.st_size;
	m->blocks = (m->image_size + BMAP_BLOCK_SIZE - 1) / BMAP_BLOCK_SIZE;
	int r = image_data_ranges(fd, m->image_size, add_range, m);
	if (r < 0)
		return r;
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < m->n; i++) {
		m->mapped += m->ranges[i].last - m->ranges[i].first + 1;
		total += (m->ranges[i].last + 1) * BMAP_BLOCK_SIZE > m->image_size
				 ? m->image_size - m->ranges[i].first * BMAP_BLOCK_SIZE
				 : (m->ranges[i].last - m->ranges[i].first + 1) * BMAP_BLOCK_SIZE;
	}
	_cleanup_free_ uint8_t *buf = malloc(HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		r = hash_range(fd, m, &m->ranges[i], buf, &done, total, progress, ctx);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(m);
	return 0;
}

/* bmaptool's human_size(): "1 byte", "N bytes" under 512, else one decimal of the largest
 * binary unit under 1024, computed by the same floating-point divisions. */
static void human_size(uint64_t size, char out[32])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	if (size == 1) {
		snprintf(out, 32, "1 byte");
		return;
	}
	if (size < 512) {
		snprintf(out, 32, "%u bytes", (unsigned)size);
		return;
	}
	double s = (double)size;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		s /= 1024.0;
		if (s < 1024) {
			snprintf(out, 32, "%.1f %s", s, units[i]);
			return;
		}
	}
	snprintf(out, 32, "%.1f EiB", s);
}

/* bmaptool (BmapCreate.py) writes the header with blanks where the mapped counts go and zeros
 * for the checksum, then overwrites the blanks in place (a longer text runs over what follows
 * them, as a file overwrite does), and the zeros with the SHA-256 of the whole text. */
static const char header[] =
	"<?xml version=\"1.0\" ?>\n"
	"<!-- This file contains the block map for an image file, which is basically\n"
	"     a list of useful (mapped) block numbers in the image file. In other words,\n"
	"     it lists only those blocks which contain data (boot sector, partition\n"
	"     table, file-system metadata, files, directories, extents, etc). These\n"
	"     blocks have to be copied to the target device. The other blocks do not\n"
	"     contain any useful data and do not have to be copied to the target\n"
	"     device.\n"
	"\n"
	"     The block map an optimization which allows to copy or flash the image to\n"
	"     the image quicker than copying of flashing the entire image. This is\n"
	"     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n"
	"     of <BlocksCount> blocks.\n"
	"\n"
	"     Besides the machine-readable data, this file contains useful commentaries\n"
	"     which contain human-readable information like image size, percentage of\n"
	"     mapped data, etc.\n"
	"\n"
	"     The 'version' attribute is the block map file format version in the\n"
	"     'major.minor' format. The version major number is increased whenever an\n"
	"     incompatible block map format change is made. The minor number changes\n"
	"     in case of minor backward-compatible changes. -->\n"
	"\n"
	"<bmap version=\"2.0\">\n"
	"    <!-- Image size in bytes: %s -->\n"
	"    <ImageSize> %" PRIu64 " </ImageSize>\n"
	"\n"
	"    <!-- Size of a block in bytes -->\n"
	"    <BlockSize> %u </BlockSize>\n"
	"\n"
	"    <!-- Count of blocks in the image file -->\n"
	"    <BlocksCount> %" PRIu64 " </BlocksCount>\n"
	"\n"
	"    <!-- Count of mapped blocks: ";

static int patch(char *text, size_t len, size_t pos, const char *s)
{
	size_t n = strlen(s);
	if (pos > len || n > len - pos)
		return -EINVAL;
	memcpy(text + pos, s, n);
	return 0;
}

int bmap_format(const struct bmap_blocks *m, char **ret_text, size_t *ret_len)
{
	char image_human[32], mapped_human[32], blocks_text[24], buf[96];
	human_size(m->image_size, image_human);
	human_size(m->mapped * BMAP_BLOCK_SIZE, mapped_human);
	snprintf(blocks_text, sizeof(blocks_text), "%" PRIu64, m->blocks);

	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, header, image_human, m->image_size, BMAP_BLOCK_SIZE, m->blocks);
	long pos_mapped = ftell(f);
	fprintf(f, "%*s or %*s   -->\n", (int)strlen(image_human), "", (int)strlen("100.0%"), "");
	fprintf(f, "    <MappedBlocksCount> ");
	long pos_count = ftell(f);
	fprintf(f, "%*s </MappedBlocksCount>\n\n", (int)strlen(blocks_text), "");
	fprintf(f, "    <!-- Type of checksum used in this file -->\n"
		   "    <ChecksumType> sha256 </ChecksumType>\n\n"
		   "    <!-- The checksum of this bmap file. When it is calculated, the value of\n"
		   "         the checksum has be zero (all ASCII \"0\" symbols).  -->\n"
		   "    <BmapFileChecksum> ");
	long pos_sum = ftell(f);
	fprintf(f, "%064d </BmapFileChecksum>\n\n", 0);
	fprintf(f, "    <!-- The block map which consists of elements which may either be a\n"
		   "         range of blocks or a single block. The 'chksum' attribute\n"
		   "         (if present) is the checksum of this blocks range. -->\n"
		   "    <BlockMap>\n");
	for (size_t i = 0; i < m->n; i++) {
		const struct bmap_block_range *rg = &m->ranges[i];
		if (rg->first != rg->last)
			fprintf(f, "        <Range chksum=\"%s\"> %" PRIu64 "-%" PRIu64 " </Range>\n", rg->sha256,
				rg->first, rg->last);
		else
			fprintf(f, "        <Range chksum=\"%s\"> %" PRIu64 " </Range>\n", rg->sha256, rg->first);
	}
	fprintf(f, "    </BlockMap>\n</bmap>\n");
	bool failed = ferror(f);
	if (fclose(f) != 0 || failed || pos_mapped < 0 || pos_count < 0 || pos_sum < 0)
		return -ENOMEM;

	double percent = m->blocks ? ((double)m->mapped * 100.0) / (double)m->blocks : 0.0;
	snprintf(buf, sizeof(buf), "%s or %.1f%%", mapped_human, percent);
	int r = patch(text, len, (size_t)pos_mapped, buf);
	snprintf(buf, sizeof(buf), "%" PRIu64, m->mapped);
	if (r == 0)
		r = patch(text, len, (size_t)pos_count, buf);
	char sum[65];
	if (r == 0)
		r = sha256_hex_of(text, len, sum);
	if (r == 0)
		r = patch(text, len, (size_t)pos_sum, sum);
	if (r < 0)
		return r;
	*ret_text = TAKE_PTR(text);
	*ret_len = len;
	return 0;
}
