/* bmap.c and out-file.c's image_stream on sparse files with known holes: the ranges are the
 * blocks the test wrote, each range's SHA-256 is sha256sum's of the range copied out by dd,
 * the text is byte for byte what the real `bmaptool create` writes for the same file, and the
 * stream gives the file's bytes. */
#include "bmap.h"
#include "hash.h"
#include "out-file.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define BS BMAP_BLOCK_SIZE

static char dir[] = "/var/tmp/pmoves-test-bmap-XXXXXX";

static void bail(const char *why)
{
	printf("Bail out! %s\n", why);
	rm_rf(dir);
	exit(1);
}

static void put(int fd, uint64_t off, size_t len, char c)
{
	_cleanup_free_ char *buf = malloc(len);
	if (!buf)
		bail("out of memory");
	memset(buf, c, len);
	for (size_t i = 0; i < len; i += 997)
		buf[i] = (char)(i / 997); /* not all one byte: a range's hash depends on its place */
	if (pwrite_full(fd, buf, len, off) < 0)
		bail("cannot write the fixture");
}

struct expect {
	uint64_t first, last;
};

/* 10 MiB + 512 bytes (the last block is partial): data in blocks 0 (100 bytes), 256-257, 768
 * (one byte in the middle), 1280-1791 (2 MiB), zeroed with FALLOC_FL_ZERO_RANGE at 2048-2175
 * (unwritten extents where the file system has them), and the partial last block 2560. */
static const struct expect layout[] = { { 0, 0 }, { 256, 257 }, { 768, 768 }, { 1280, 1791 }, { 2048, 2175 },
					{ 2560, 2560 } };
#define SIZE (10 * MiB + 512)

/* Returns whether the zeroed range is allocated (unwritten) rather than a hole. */
static bool make_fixture(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)SIZE) < 0)
		bail("cannot create the fixture");
	put(fd, 0, 100, 'h');
	put(fd, 256 * BS, 2 * BS, 'a');
	put(fd, 768 * BS + 1000, 1, 'b');
	put(fd, 1280 * BS, 512 * BS, 'c');
	put(fd, SIZE - 300, 300, 'e');
	return fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 2048 * BS, 128 * BS) == 0;
}

/* sha256sum's digest of blocks FIRST..LAST of PATH copied out by dd. */
static int dd_sha256(const char *path, uint64_t first, uint64_t last, char out[65])
{
	_cleanup_free_ char *piece = strdupf("%s/piece", dir), *in = strdupf("if=%s", path),
			    *of = strdupf("of=%s", piece), *skip = strdupf("skip=%" PRIu64, first),
			    *count = strdupf("count=%" PRIu64, last - first + 1), *sum = NULL;
	if (!piece || !in || !of || !skip || !count)
		return -ENOMEM;
	char *dd[] = { "dd", in, of, "bs=4096", skip, count, "status=none", NULL };
	char *sha[] = { "sha256sum", piece, NULL };
	struct run_opts quiet = { 0 }, capture = { .capture = &sum };
	if (run_argv(dd, &quiet) != 0 || run_argv(sha, &capture) != 0 || !sum || strlen(sum) < 64)
		return -EIO;
	memcpy(out, sum, 64);
	out[64] = '\0';
	return 0;
}

static void check_ranges(const char *what, const char *path, bool zeroed_mapped)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct bmap_blocks *m = NULL;
	int r = fd < 0 ? -errno : bmap_create(fd, NULL, NULL, &m);
	tap_is_int(r, 0, "%s: bmap_create", what);
	if (r < 0)
		return;
	struct expect want[ARRAY_SIZE(layout)];
	size_t n = 0;
	uint64_t mapped = 0;
	for (size_t i = 0; i < ARRAY_SIZE(layout); i++)
		if (zeroed_mapped || layout[i].first != 2048) {
			want[n++] = layout[i];
			mapped += layout[i].last - layout[i].first + 1;
		}
	tap_is_int(m->image_size, SIZE, "%s: image size", what);
	tap_is_int(m->blocks, 2561, "%s: blocks, the partial last one counted", what);
	tap_is_int(m->n, n, "%s: %zu ranges", what, n);
	bool same = m->n == n;
	for (size_t i = 0; same && i < n; i++)
		if (m->ranges[i].first != want[i].first || m->ranges[i].last != want[i].last) {
			tap_diag("range %zu: expected %" PRIu64 "-%" PRIu64 ", got %" PRIu64 "-%" PRIu64, i, want[i].first,
				 want[i].last, m->ranges[i].first, m->ranges[i].last);
			same = false;
		}
	tap_ok(same, "%s: the ranges are the blocks written (%s)", what,
	       zeroed_mapped ? "the zeroed range included" : "no unwritten extents here");
	tap_is_int(m->mapped, mapped, "%s: mapped blocks", what);
	bool sums = m->n == n;
	for (size_t i = 0; sums && i < n; i++) {
		char hex[65];
		if (dd_sha256(path, m->ranges[i].first, m->ranges[i].last, hex) < 0 || !STREQ(hex, m->ranges[i].sha256)) {
			tap_diag("range %zu: sha256sum says %s, bmap %s", i, hex, m->ranges[i].sha256);
			sums = false;
		}
	}
	tap_ok(sums, "%s: each range's sha256 is sha256sum's of the range copied by dd", what);
	bmap_blocks_free(m);
}

/* Our text for PATH against `bmaptool create PATH`'s, byte for byte. */
static void check_bmaptool(const char *what, const char *path, bool have_bmaptool)
{
	if (!have_bmaptool) {
		tap_skip(what, "'bmaptool' is not installed (package bmap-tools, make deps)");
		return;
	}
	_cleanup_free_ char *ref = strdupf("%s/ref.bmap", dir), *want = NULL, *got = NULL;
	size_t want_len = 0, got_len = 0;
	char *argv[] = { "bmaptool", "create", (char *)path, "-o", ref, NULL };
	struct run_opts quiet = { 0 };
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct bmap_blocks *m = NULL;
	if (!ref || run_argv(argv, &quiet) != 0 || read_file(ref, 64 * MiB, &want, &want_len) < 0 || fd < 0 ||
	    bmap_create(fd, NULL, NULL, &m) < 0 || bmap_format(m, &got, &got_len) < 0) {
		tap_ok(0, "%s", what);
		bmap_blocks_free(m);
		return;
	}
	bmap_blocks_free(m);
	bool same = got_len == want_len && memcmp(got, want, got_len) == 0;
	tap_ok(same, "%s", what);
	if (!same) {
		size_t i = 0;
		while (i < got_len && i < want_len && got[i] == want[i])
			i++;
		tap_diag("first difference at byte %zu: bmaptool '%.60s', ours '%.60s'", i, want + i, got + i);
	}
}

struct digest {
	struct sha256 s;
	uint64_t len;
};

static int digest_chunk(void *ctx, const void *buf, size_t len)
{
	struct digest *d = ctx;
	d->len += len;
	return sha256_update(&d->s, buf, len);
}

static int stop_chunk(void *ctx, const void *buf, size_t len)
{
	(void)buf, (void)len;
	return ++*(int *)ctx == 3 ? -ECANCELED : 0;
}

int main(void)
{
	if (!mkdtemp(dir))
		bail("cannot make a temp directory");
	_cleanup_free_ char *path = strdupf("%s/sparse.img", dir), *tiny = strdupf("%s/tiny.img", dir),
			    *holes = strdupf("%s/holes.img", dir), *empty = strdupf("%s/empty.img", dir),
			    *shm_dir = NULL, *shm = NULL, *bmaptool = NULL;
	if (!path || !tiny || !holes || !empty)
		bail("out of memory");
	bool have_bmaptool = find_program("bmaptool", &bmaptool) == 0;
	tap_plan(23);

	bool zeroed = make_fixture(path);
	check_ranges("sparse file", path, zeroed);
	check_bmaptool("sparse file: our bmap is bmaptool create's, byte for byte", path, have_bmaptool);

	/* Without FIEMAP (tmpfs): the same data ranges from SEEK_DATA/SEEK_HOLE. */
	char shm_tmpl[] = "/dev/shm/pmoves-test-bmap-XXXXXX";
	if (mkdtemp(shm_tmpl) && (shm_dir = strdup(shm_tmpl)) && (shm = strdupf("%s/sparse.img", shm_dir))) {
		bool z = make_fixture(shm);
		check_ranges("tmpfs (SEEK_DATA)", shm, z);
		rm_rf(shm_dir);
	} else {
		for (int i = 0; i < 7; i++)
			tap_skip("tmpfs (SEEK_DATA)", "no /dev/shm");
	}

	/* 3000 bytes: one partial block, sizes in bytes and KiB in the comments. */
	{
		_cleanup_close_ int fd = open(tiny, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			bail("cannot create the tiny fixture");
		put(fd, 0, 3000, 't');
	}
	check_bmaptool("one partial block: bmaptool create's text", tiny, have_bmaptool);

	/* Holes only: no range. */
	{
		_cleanup_close_ int fd = open(holes, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		struct bmap_blocks *m = NULL;
		if (fd < 0 || ftruncate(fd, (off_t)(64 * MiB)) < 0)
			bail("cannot create the holes fixture");
		tap_ok(bmap_create(fd, NULL, NULL, &m) == 0 && m->n == 0 && m->mapped == 0 && m->blocks == 16384,
		       "a file of holes only: no range, 16384 blocks");
		bmap_blocks_free(m);
	}
	check_bmaptool("holes only: bmaptool create's text", holes, have_bmaptool);

	{
		_cleanup_close_ int fd = open(empty, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		struct bmap_blocks *m = NULL;
		tap_is_int(fd < 0 ? -errno : bmap_create(fd, NULL, NULL, &m), -EINVAL, "an empty file is refused");
		bmap_blocks_free(m);
	}

	/* image_stream: the file's bytes, holes as zeros. */
	{
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct digest d = { .len = 0 };
		char got[65] = "", want[65] = "";
		int r = fd < 0 ? -errno : sha256_init(&d.s);
		if (r == 0)
			r = image_stream(fd, SIZE, "test", digest_chunk, &d);
		if (r == 0)
			r = sha256_final_hex(&d.s, got);
		else
			sha256_free(&d.s);
		tap_is_int(r, 0, "image_stream reads the sparse file");
		tap_is_int(d.len, SIZE, "image_stream gives every byte, holes included");
		_cleanup_free_ char *sum = NULL;
		char *argv[] = { "sha256sum", path, NULL };
		struct run_opts capture = { .capture = &sum };
		if (run_argv(argv, &capture) == 0 && sum && strlen(sum) >= 64)
			memcpy(want, sum, 64);
		tap_is_str(got, want, "image_stream's bytes hash as sha256sum's of the file");
		int calls = 0;
		tap_is_int(image_stream(fd, SIZE, "test", stop_chunk, &calls), -ECANCELED,
			   "an error of the consumer stops the stream and is returned");
	}

	rm_rf(dir);
	return tap_done();
}
