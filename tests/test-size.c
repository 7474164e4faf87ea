/* Disk size "auto": what a tree's files take (fs_measure), the plan's arithmetic
 * (plan_set_auto_size), and the filesystem records' auto_size hooks for real: the size they
 * give holds the files with the margin free (mke2fs -d and mcopy succeed, e2fsck and the FAT
 * say so), including content that fills the partition (margin 0), and it is close to the
 * content, not a guess far above it. */
#include "build.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#define MiB (UINT64_C(1) << 20)

static char tmp[] = "/tmp/test-size-XXXXXX";

static void bail(const char *why)
{
	printf("Bail out! %s\n", why);
	exit(1);
}

static char *at(const char *rel)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", tmp, rel) < 0)
		bail("out of memory");
	return p;
}

static void file(const char *rel, uint64_t size)
{
	_cleanup_free_ char *p = at(rel);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	if (fd < 0)
		bail("cannot create a file");
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
		if (write(fd, buf, n) != (ssize_t)n)
			bail("cannot write a file");
	}
}

static void dir(const char *rel)
{
	_cleanup_free_ char *p = at(rel);
	if (mkdir_p(p, 0755) < 0)
		bail("cannot create a directory");
}

/* Rules whose numbers are easy to follow: 1000-byte blocks, a directory 1 block plus one per
 * entry plus one per name byte. */
static uint64_t t_file_blocks(uint64_t size, uint64_t block) { return (size + block - 1) / block; }
static uint64_t t_dir_blocks(uint64_t n, uint64_t name_bytes, uint64_t block)
{
	(void)block;
	return 1 + n + name_bytes;
}

static uint64_t t_huge_blocks(uint64_t size, uint64_t block)
{
	(void)size, (void)block;
	return UINT64_C(1) << 63;
}

static void test_measure(void)
{
	dir("m/sub");
	file("m/a", 2500);
	file("m/c", 0);
	file("m/sub/d", 1000);
	_cleanup_free_ char *a = at("m/a"), *b = at("m/b"), *x = at("m/x"), *y = at("m/y"), *c = at("m/c"), *m = at("m");
	if (link(a, b) < 0 || symlink("tgt", x) < 0 || symlink("0123456789abcdef", y) < 0)
		bail("cannot make links");
	bool xattrs = setxattr(c, "user.test", "v", 1, 0) == 0;
	struct fs_rules rules = { .block = 1000, .symlink_inline = 10, .file_blocks = t_file_blocks, .dir_blocks = t_dir_blocks };
	struct fs_usage u = { 0 };
	int r = fs_measure(m, &rules, &u);
	tap_is_int(r, 0, "fs_measure: a tree");
	/* a, c, x, y, sub, sub/d: b is a's second name */
	tap_is_int(u.inodes, 6, "fs_measure: inodes below the top, a hard-linked file once");
	/* a 3, c 0, y 1 (target of 16 >= 10), x 0, d 1; top: 1 + 6 entries + 8 name bytes; sub: 1 + 1 + 1 */
	tap_is_int(u.blocks, 3 + 0 + 1 + 1 + 15 + 3, "fs_measure: data, long symlinks and directories in blocks");
	if (xattrs)
		tap_is_int(u.xattr_inodes, 1, "fs_measure: inodes with extended attributes");
	else
		tap_skip("fs_measure: inodes with extended attributes", "no user xattrs on this filesystem");
	rules.block = 500;
	r = fs_measure(m, &rules, &u);
	tap_ok(r == 0 && u.blocks == 5 + 0 + 1 + 2 + 15 + 3, "fs_measure: in the record's block size (%" PRIu64 ")", u.blocks);
	r = fs_measure(NULL, &rules, &u);
	tap_ok(r == 0 && u.inodes == 0 && u.blocks == 1, "fs_measure: no content is an empty root directory");

	/* A total past 2^64 is refused, not wrapped: three files of 2^63 blocks each. */
	struct fs_rules huge = { .block = 1, .symlink_inline = 10, .file_blocks = t_huge_blocks, .dir_blocks = t_dir_blocks };
	tap_is_int(fs_measure(m, &huge, &u), -EFBIG, "fs_measure: a total past 2^64 is -EFBIG");
}

static void test_plan(void)
{
	struct table_entry e[2] = { { .start = MiB, .size = 256 * MiB }, { .start = 257 * MiB, .size = 0 } };
	struct plan pl = { .table = &table_gpt, .n = 2 };
	pl.parts[1].entry = &e[1];
	int r = plan_set_auto_size(&pl, &pl.parts[1], 100 * MiB);
	tap_ok(r == 0 && e[1].size == 100 * MiB && pl.parts[1].grows, "plan: the fill partition gets the size, made to grow");
	tap_is_int(pl.layout.disk_size, 358 * MiB, "plan: the disk ends after it and the backup GPT, rounded up to 1 MiB");
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], 100 * MiB + 512), -EFBIG, "plan: a size off the 1 MiB grid is refused");
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], 0), -EFBIG, "plan: a size of 0 is refused");
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], UINT64_MAX / MiB * MiB), -EFBIG, "plan: start + size overflowing is refused");
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], UINT64_C(1) << 60), -EFBIG, "plan: past GPT's 2^60 bytes is refused");
	tap_is_int(e[1].size, 100 * MiB, "plan: a refused size changes nothing");
	pl.table = &table_mbr;
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], (UINT64_C(1) << 41) - 256 * MiB), -EFBIG,
		   "plan: past MBR's 2^32 - 1 sectors is refused");
	tap_is_int(plan_set_auto_size(&pl, &pl.parts[1], MiB), 0, "plan: MBR has no tail: 1 MiB after the start");
	tap_is_int(pl.layout.disk_size, 258 * MiB, "plan: ... and the disk ends there");
}

static uint64_t field(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

struct fixture {
	struct build b;
	struct profile p;
	struct part_spec spec;
	struct table_entry e;
	struct plan_part pp;
};

static void fixture(struct fixture *f, const char *fs, const char *content, const char *image)
{
	memset(f, 0, sizeof(*f));
	f->p.name = "t";
	f->spec = (struct part_spec){ .name = "data", .type = "linux", .fs = fs, .label = "DATA", .fill = true };
	f->pp = (struct plan_part){ .spec = &f->spec, .fs = fs_find(fs), .entry = &f->e, .content = (char *)content,
				    .fat_serial = 0x12345678 };
	f->b = (struct build){ .p = &f->p, .log_fd = -1, .tree_fd = -1, .epoch = 1700000000, .work_dir = tmp,
			       .image = (char *)image };
}

/* CONTENT in an ext4 of the size auto_size gives for MARGIN: made for real, checked. */
static void try_ext4(const char *what, const char *content, uint64_t margin)
{
	_cleanup_free_ char *img = at("ext4.img"), *dump = NULL, *fsck = NULL;
	struct fixture f;
	fixture(&f, "ext4", content, img);
	uint64_t size = 0;
	int r = f.pp.fs->auto_size(&f.b, &f.pp, margin, &size);
	tap_ok(r == 0 && size && size % MiB == 0, "ext4 %s: auto_size %d, %" PRIu64 " MiB", what, r, size / MiB);
	if (r < 0)
		return;
	f.e.size = size;
	f.pp.grows = true;
	unlink(img);
	_cleanup_close_ int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		bail("cannot make the image");
	r = f.pp.fs->make(&f.b, &f.pp);
	tap_is_int(r, 0, "ext4 %s: mke2fs -d fits the files in that size", what);
	int rc = run_argv((char *[]){ "e2fsck", "-fn", img, NULL }, &(struct run_opts){ .in_fd = -1, .capture = &fsck });
	tap_ok(rc == 0, "ext4 %s: e2fsck -fn clean", what);
	if (rc)
		tap_diag("%s", fsck ? fsck : "");
	run_argv((char *[]){ "dumpe2fs", "-h", img, NULL }, &(struct run_opts){ .in_fd = -1, .capture = &dump });
	uint64_t bs = field(dump, "Block size:"), freeb = field(dump, "Free blocks:"),
		 rsv = field(dump, "Reserved block count:");
	uint64_t avail = freeb > rsv ? (freeb - rsv) * bs : 0;
	tap_ok(bs == 4096 && avail >= margin, "ext4 %s: 4 KiB blocks, %" PRIu64 " KiB free for users >= the margin %" PRIu64 " KiB",
	       what, avail / 1024, margin / 1024);
	/* Close: what is free beyond the margin is the bound's slack and the 1 MiB rounding. */
	uint64_t slack = avail >= margin ? avail - margin : 0;
	tap_ok(avail >= margin && slack <= 2 * MiB + size / 50, "ext4 %s: %" PRIu64 " KiB free beyond the margin (at most 2 MiB + 2%%)",
	       what, slack / 1024);
}

/* TIGHT: the size is the content's (not raised for another reason: FAT32's root). */
static void try_vfat(const char *what, const char *content, uint64_t margin, bool tight)
{
	_cleanup_free_ char *img = at("vfat.img"), *info = NULL, *dirout = NULL;
	struct fixture f;
	fixture(&f, "vfat", content, img);
	uint64_t size = 0;
	int r = f.pp.fs->auto_size(&f.b, &f.pp, margin, &size);
	tap_ok(r == 0 && size && size % MiB == 0, "vfat %s: auto_size %d, %" PRIu64 " MiB", what, r, size / MiB);
	if (r < 0)
		return;
	f.e.size = size;
	unlink(img);
	_cleanup_close_ int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		bail("cannot make the image");
	r = f.pp.fs->make(&f.b, &f.pp);
	tap_is_int(r, 0, "vfat %s: mcopy fits the files in that size", what);
	int rc = run_argv((char *[]){ "fsck.vfat", "-n", img, NULL }, &(struct run_opts){ .in_fd = -1, .capture = &info });
	tap_ok(rc == 0, "vfat %s: fsck.vfat -n clean", what);
	if (rc)
		tap_diag("%s", info ? info : "");
	setenv("MTOOLS_SKIP_CHECK", "1", 1);
	run_argv((char *[]){ "mdir", "-i", img, "-/", "::", NULL }, &(struct run_opts){ .in_fd = -1, .capture = &dirout });
	/* "   123 456 bytes free": the last line */
	char *line = dirout ? strstr(dirout, "bytes free") : NULL;
	uint64_t avail = 0;
	if (line) {
		char *s = line;
		while (s > dirout && s[-1] != '\n')
			s--;
		for (; s < line; s++)
			if (*s >= '0' && *s <= '9')
				avail = avail * 10 + (uint64_t)(*s - '0');
	}
	if (tight)
		tap_ok(avail >= margin && avail - margin <= 2 * MiB + size / 50,
		       "vfat %s: %" PRIu64 " KiB free, the margin %" PRIu64 " KiB and at most 2 MiB + 2%% more", what,
		       avail / 1024, margin / 1024);
	else
		tap_ok(avail >= margin, "vfat %s: %" PRIu64 " KiB free, at least the margin", what, avail / 1024);
}

/* Content that is hard to fit: many small files and directories, a directory of 3000 long
 * names, symlinks long and short, hard links, a file larger than a block group. */
static void make_content(const char *top, bool fat)
{
	char rel[256];
	for (int d = 0; d < (fat ? 8 : 40); d++) {
		snprintf(rel, sizeof(rel), "%s/d%02d/e", top, d);
		dir(rel);
		for (int i = 0; i < 60; i++) {
			snprintf(rel, sizeof(rel), "%s/d%02d/f%03d", top, d, i);
			file(rel, (uint64_t)(i * 337 % 9000));
		}
	}
	snprintf(rel, sizeof(rel), "%s/wide", top);
	dir(rel);
	/* mtools checks each new name against every one in the directory: fewer for FAT */
	for (int i = 0; i < (fat ? 300 : 3000); i++) {
		snprintf(rel, sizeof(rel), "%s/wide/a-rather-long-file-name-to-fill-directory-blocks-%04d.txt", top, i);
		file(rel, 1);
	}
	snprintf(rel, sizeof(rel), "%s/big", top);
	file(rel, (fat ? 20 : 150) * MiB + 12345);
	if (fat)
		return;
	for (int i = 0; i < 50; i++) {
		_cleanup_free_ char *src = NULL, *l = NULL, *s = NULL;
		if (asprintf(&src, "%s/%s/d00/f%03d", tmp, top, i) < 0 || asprintf(&l, "%s/%s/d01/link%03d", tmp, top, i) < 0 ||
		    asprintf(&s, "%s/%s/d02/sym%03d", tmp, top, i) < 0 || link(src, l) < 0 ||
		    symlink(i % 2 ? "short" : "/a/long/target/path/that/does/not/fit/in/the/inode/itself/at/all", s) < 0)
			bail("cannot make links");
	}
}

int main(void)
{
	if (!mkdtemp(tmp))
		bail("mkdtemp");
	test_measure();
	test_plan();
	if (find_program("mke2fs", NULL) < 0 || find_program("e2fsck", NULL) < 0 || find_program("mkfs.vfat", NULL) < 0 ||
	    find_program("mcopy", NULL) < 0 || find_program("fsck.vfat", NULL) < 0) {
		tap_skip("the filesystems' auto_size for real", "e2fsprogs, dosfstools or mtools not installed");
	} else {
		make_content("c", false);
		_cleanup_free_ char *c = at("c"), *cf = NULL;
		try_ext4("empty, margin 64M", NULL, 64 * MiB);
		try_ext4("content, margin 0 (filled)", c, 0);
		try_ext4("content, margin 100M", c, 100 * MiB);
		make_content("cf", true);
		cf = at("cf");
		try_vfat("content, margin 0 (filled)", cf, 0, true);
		try_vfat("content, margin 20M", cf, 20 * MiB, true);
		/* More names at the top than a FAT16 root directory holds (512 entries): FAT32. */
		_cleanup_free_ char *flat = at("flat");
		dir("flat");
		for (int i = 0; i < 600; i++) {
			char rel[64];
			snprintf(rel, sizeof(rel), "flat/f%04d.txt", i);
			file(rel, 1);
		}
		try_vfat("600 names at the top level, margin 0", flat, 0, false);
	}
	rm_rf(tmp);
	return tap_done();
}
