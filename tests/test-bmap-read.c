/* The bmap reader: a bmap from the real `bmaptool create` read back (ranges = the image's data,
 * checksums = the data's), then hostile bmaps, each refused with a reason. */
#include "bmap-read.h"
#include "hash.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>

#define HEAD "<?xml version=\"1.0\" ?>\n<!-- <MappedBlocksCount> in a comment is not an element -->\n"

static void refused(const char *xml, const char *want, const char *what)
{
	struct bmap b = { 0 };
	char *why = NULL;
	int r = bmap_parse(xml, strlen(xml), &b, &why);
	if (!tap_ok(r < 0 && why && strstr(why, want), "refused: %s", what))
		tap_diag("r=%d why='%s', want '%s'", r, why ? why : "(null)", want);
	free(why);
	bmap_done(&b);
}

/* A bmap 2.0 without BmapFileChecksum: ImageSize, blocks of 4096, RANGES. */
static char *doc(uint64_t size, uint64_t blocks, uint64_t mapped, const char *ranges)
{
	return strdupf(HEAD "<bmap version=\"2.0\">\n<ImageSize> %" PRIu64 " </ImageSize>\n<BlockSize> 4096 </BlockSize>\n"
			    "<BlocksCount> %" PRIu64 " </BlocksCount>\n<MappedBlocksCount> %" PRIu64 " </MappedBlocksCount>\n"
			    "<ChecksumType> sha256 </ChecksumType>\n<BlockMap>\n%s</BlockMap>\n</bmap>\n",
		       size, blocks, mapped, ranges);
}

int main(void)
{
	char dir[] = "/tmp/test-bmap-XXXXXX";
	if (!mkdtemp(dir))
		tap_skip_all("cannot create a temp dir");
	tap_plan(20);

	/* the real thing: data at 0, 1 MiB+512 and the last 100 bytes of a 10 MiB + 100 image */
	_cleanup_free_ char *img = strdupf("%s/img", dir), *bmp = strdupf("%s/img.bmap", dir);
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char data[8192];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + 1);
	if (fd < 0 || ftruncate(fd, 10 * 1048576 + 100) < 0 || pwrite_full(fd, data, 4096, 0) < 0 ||
	    pwrite_full(fd, data, 512, 1048576 + 512) < 0 || pwrite_full(fd, data, 100, 10 * 1048576) < 0)
		tap_skip_all("cannot make an image");
	close(fd);
	_cleanup_free_ char *path = NULL;
	if (find_program("bmaptool", &path) < 0) {
		for (int i = 0; i < 7; i++)
			tap_skip("bmaptool create", "bmaptool is not installed (make deps)");
	} else {
		int r = run_argv((char *[]){ "bmaptool", "create", "-o", bmp, img, NULL }, &(struct run_opts){ 0 });
		tap_is_int(r, 0, "bmaptool create");
		struct bmap b = { 0 };
		char *why = NULL;
		r = bmap_load(bmp, &b, &why);
		tap_ok(r == 0, "bmaptool's bmap is read%s%s", why ? ": " : "", why ? why : "");
		tap_ok(b.n == 3 && b.range[0].start == 0 && b.range[0].len == 4096 && b.range[1].start == 1048576 &&
			       b.range[1].len == 4096 && b.range[2].start == 10 * 1048576 && b.range[2].len == 100,
		       "ranges: the image's data blocks, the last one cut at ImageSize");
		tap_ok(b.mapped_bytes == 4096 + 4096 + 100 && b.image_size == 10 * 1048576 + 100, "mapped bytes and ImageSize");
		uint8_t d[32];
		memset(data + 4096, 0, 4096);
		char blk[4096] = { 0 };
		memcpy(blk + 512, data, 512);
		bool sums = b.n == 3 && b.range[0].has_sha256 && sha256_of(data, 4096, d) == 0 && memcmp(d, b.range[0].sha256, 32) == 0 &&
			    sha256_of(blk, 4096, d) == 0 && memcmp(d, b.range[1].sha256, 32) == 0 &&
			    sha256_of(data, 100, d) == 0 && memcmp(d, b.range[2].sha256, 32) == 0;
		tap_ok(sums, "each range's SHA-256 is the data's");
		bmap_done(&b);
		free(why);
		why = NULL;
		/* one digit of a range's checksum changed: BmapFileChecksum no longer matches */
		_cleanup_free_ char *text = NULL;
		size_t len;
		read_file(bmp, 1 << 20, &text, &len);
		char *at = text ? strstr(text, "chksum=\"") : NULL;
		if (at)
			at[8] = at[8] == '0' ? '1' : '0';
		r = text ? bmap_parse(text, len, &b, &why) : -1;
		tap_ok(r == -EBADMSG && why && strstr(why, "BmapFileChecksum does not match"), "a changed bmap: BmapFileChecksum refuses it");
		free(why);
		bmap_done(&b);
		why = NULL;
		at = text ? strstr(text, "<BmapFileChecksum>") : NULL;
		if (at)
			at[19] = at[19] == 'a' ? 'b' : 'a';
		r = text ? bmap_parse(text, len, &b, &why) : -1;
		tap_ok(r == -EBADMSG, "a changed BmapFileChecksum: refused");
		free(why);
		bmap_done(&b);
	}

	_cleanup_free_ char *good = doc(40960, 10, 4, "<Range chksum=\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"> 0-1 </Range>\n<Range> 5 </Range><Range>9</Range>\n");
	struct bmap b = { 0 };
	char *why = NULL;
	int r = bmap_parse(good, strlen(good), &b, &why);
	tap_ok(r == 0 && b.n == 3 && b.range[0].has_sha256 && !b.range[1].has_sha256 && b.range[2].start == 9 * 4096,
	       "a written bmap: ranges with and without chksum, single blocks%s%s", why ? ": " : "", why ? why : "");
	bmap_done(&b);
	free(why);

	_cleanup_free_ char *past = doc(40960, 10, 2, "<Range> 9-10 </Range>\n");
	refused(past, "past the image's 10 blocks", "a range past the image");
	_cleanup_free_ char *over = doc(40960, 10, 5, "<Range> 0-3 </Range>\n<Range> 3 </Range>\n");
	refused(over, "overlap or come before", "overlapping ranges");
	_cleanup_free_ char *unsorted = doc(40960, 10, 2, "<Range> 5 </Range>\n<Range> 2 </Range>\n");
	refused(unsorted, "overlap or come before", "unsorted ranges");
	_cleanup_free_ char *backward = doc(40960, 10, 2, "<Range> 5-4 </Range>\n");
	refused(backward, "first block 5 after last 4", "a range backwards");
	_cleanup_free_ char *huge = doc(40960, 10, 1, "<Range> 18446744073709551616 </Range>\n");
	refused(huge, "not FIRST-LAST", "a block number past 64 bits");
	_cleanup_free_ char *wrap = doc(UINT64_MAX, 10, 1, "<Range> 0 </Range>\n");
	refused(wrap, "past 64 PiB", "an ImageSize whose blocks would overflow");
	_cleanup_free_ char *count = doc(40960, 10, 3, "<Range> 0 </Range>\n");
	refused(count, "the ranges hold 1 blocks, MappedBlocksCount says 3", "MappedBlocksCount not the ranges' sum");
	_cleanup_free_ char *blocks = doc(40961, 10, 1, "<Range> 0 </Range>\n");
	refused(blocks, "BlocksCount 10 does not match ImageSize 40961", "BlocksCount not ImageSize's");
	_cleanup_free_ char *sum = doc(40960, 10, 1, "<Range chksum=\"abc\"> 0 </Range>\n");
	refused(sum, "not a SHA-256", "a short chksum");
	refused(HEAD "<bmap version=\"3.0\"><ImageSize>1</ImageSize></bmap>", "newer than 2.x", "format version 3.0");
	refused(HEAD "<bmap version=\"2.0\">\n<ImageSize> 4096 </ImageSize>\n<BlockSize> 0 </BlockSize>\n<BlocksCount> 1 </BlocksCount>\n"
		     "<MappedBlocksCount> 1 </MappedBlocksCount>\n<BlockMap><Range>0</Range></BlockMap></bmap>",
		"BlockSize 0", "BlockSize 0");
	refused(HEAD "<bmap version=\"2.0\">\n<ImageSize> 4096 </ImageSize>\n<BlockMap></BlockMap></bmap>", "no BlockSize before BlockMap",
		"a missing header element");
	rm_rf(dir);
	return tap_done();
}
