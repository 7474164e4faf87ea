/* ext4 made by mke2fs -d straight into the disk image at the partition's offset. */
#include "build.h"
#include "hash.h"
#include "log.h"
#include "util.h"

#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <inttypes.h>

/* mke2fs copies ctime and atime from the staging files, which are the time of extraction.
 * Clamp every inode's times to the build's epoch so the same inputs give the same bytes. */
static int normalize_times(struct build *b, const struct plan_part *pp)
{
	char opts[64];
	snprintf(opts, sizeof(opts), "offset=%" PRIu64, pp->entry->start);
	ext2_filsys fs = NULL;
	errcode_t e = ext2fs_open2(b->image, opts, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (e) {
		log_error("cannot open the ext4 filesystem of '%s': %s", pp->spec->name, error_message(e));
		return -EIO;
	}
	fs->now = (time_t)b->epoch; /* the superblock's write time, set on close */
	int isize = EXT2_INODE_SIZE(fs->super), r = 0;
	ext2_inode_scan scan = NULL;
	struct ext2_inode_large *in = calloc(1, (size_t)isize);
	uint32_t t = (uint32_t)b->epoch;
	ext2_ino_t ino;
	if (!in || ext2fs_open_inode_scan(fs, 0, &scan)) {
		r = -ENOMEM;
		goto out;
	}
	while (!(e = ext2fs_get_next_inode_full(scan, &ino, (struct ext2_inode *)in, isize)) && ino) {
		if (!in->i_links_count)
			continue;
		if (in->i_mtime > t)
			in->i_mtime = t;
		in->i_atime = in->i_ctime = in->i_mtime;
		if (isize > EXT2_GOOD_OLD_INODE_SIZE && in->i_extra_isize >= 24) {
			in->i_atime_extra = in->i_ctime_extra = in->i_mtime_extra = 0;
			in->i_crtime = in->i_mtime;
			in->i_crtime_extra = 0;
		}
		e = ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)in, isize);
		if (e)
			break;
	}
	if (e) {
		log_error("cannot update inodes of '%s': %s", pp->spec->name, error_message(e));
		r = -EIO;
	}
out:
	if (scan)
		ext2fs_close_inode_scan(scan);
	free(in);
	e = ext2fs_close_free(&fs);
	if (e && r == 0) {
		log_error("cannot write the ext4 filesystem of '%s': %s", pp->spec->name, error_message(e));
		r = -EIO;
	}
	return r;
}

/* ---- "size": "auto" ---- */

/* A directory: entries of 8 bytes and the name rounded up to 4, "." and ".." 12 each; a block
 * keeps 12 bytes for its checksum and an entry (at most 263 bytes) does not cross blocks, so
 * count three quarters of it. A directory of more than 4 blocks grows a block at a time while
 * files are written between (mke2fs -d): a block per extent, an extent block per 340. */
static uint64_t ext4_dir_blocks(uint64_t n, uint64_t name_bytes, uint64_t block)
{
	uint64_t usable = (block - 12) * 3 / 4;
	uint64_t blocks = (24 + 11 * n + name_bytes + usable - 1) / usable;
	return blocks > 4 ? blocks + blocks / 340 + 1 : blocks;
}

/* A file's data; past 4 extents (an extent is at most 32768 blocks, and group metadata cuts
 * runs) its map needs blocks of its own: one per 340 extents, generously one per 64 MiB. */
static uint64_t ext4_file_blocks(uint64_t size, uint64_t block)
{
	uint64_t data = size / block + (size % block != 0);
	return data > 4 * 4096 ? data + 1 + data / 16384 : data;
}

static const struct fs_rules ext4_rules = {
	.block = 4096,
	.symlink_inline = 60, /* a shorter target is kept in the inode */
	.file_blocks = ext4_file_blocks,
	.dir_blocks = ext4_dir_blocks,
};

/* The geometry mke2fs gives a filesystem of SIZE bytes, asked of mke2fs itself: an empty one
 * made in the scratch file PATH with the options ext4_make uses, read back. */
struct ext4_geometry {
	uint64_t block, groups, free_blocks, reserved, inodes, free_inodes;
};

/* mke2fs's command line for PP: the real one with its identifiers and content, or (UUID
 * NULL) a probe of the same geometry with none. */
static void ext4_argv(const struct plan_part *pp, const char *uuid, const char *ext, const char *target,
		      const char *blocks, char *argv[static 20])
{
	size_t n = 0;
	argv[n++] = "mke2fs";
	argv[n++] = "-q";
	argv[n++] = "-F";
	argv[n++] = "-t";
	argv[n++] = "ext4";
	/* Made to be grown to the device: the geometry of an ordinary disk's filesystem (4 KiB
	 * blocks, an inode per 16 KiB), not of a small one (mke2fs picks 1 KiB blocks under 512
	 * MiB), so both the image and the grown filesystem get it. */
	if (pp->grows) {
		argv[n++] = "-T";
		argv[n++] = "default";
	}
	if (uuid) {
		argv[n++] = "-U";
		argv[n++] = (char *)uuid;
		argv[n++] = "-L";
		argv[n++] = (char *)pp->spec->label;
	}
	argv[n++] = "-E";
	argv[n++] = (char *)ext;
	if (uuid && pp->content) {
		argv[n++] = "-d";
		argv[n++] = pp->content;
	}
	argv[n++] = (char *)target;
	argv[n++] = (char *)blocks;
	argv[n] = NULL;
}

static int ext4_geometry(struct build *b, const struct plan_part *pp, const char *path, uint64_t size,
			 struct ext4_geometry *ret)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return log_errno(-errno, "cannot create '%s'", path);
	if (ftruncate(fd, (off_t)size) < 0)
		return log_errno(-errno, "cannot size '%s'", path);
	char blocks[32];
	snprintf(blocks, sizeof(blocks), "%" PRIu64 "k", size / 1024);
	struct plan_part probe = *pp;
	probe.grows = true;
	char *argv[20];
	/* lazy_*_init write no zeroes; they change no count. */
	ext4_argv(&probe, NULL, "lazy_itable_init=1,lazy_journal_init=1,nodiscard", path, blocks, argv);
	char *env[] = { "E2FSPROGS_SKIP_PROGRESS=1", NULL };
	int r = build_run_env(b, argv, env);
	if (r < 0)
		return r;
	ext2_filsys fs = NULL;
	errcode_t e = ext2fs_open2(path, NULL, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (e) {
		log_error("cannot read the ext4 filesystem mke2fs made in '%s': %s", path, error_message(e));
		return -EIO;
	}
	*ret = (struct ext4_geometry){
		.block = fs->blocksize,
		.groups = fs->group_desc_count,
		.free_blocks = ext2fs_free_blocks_count(fs->super),
		.reserved = ext2fs_r_blocks_count(fs->super),
		.inodes = fs->super->s_inodes_count,
		.free_inodes = fs->super->s_free_inodes_count,
	};
	ext2fs_close_free(&fs);
	return 0;
}

/* The content's blocks, the blocks a near-full filesystem's files may need for their extent
 * maps where group metadata cuts them (two per group), an extended attribute block per inode
 * that has any, and the margin; a multiple of 1 MiB. */
static uint64_t ext4_want_blocks(const struct fs_usage *u, uint64_t groups, uint64_t margin, uint64_t block)
{
	return u->blocks + 2 * groups + u->xattr_inodes + 16 + (margin + block - 1) / block;
}

/* Try sizes from an estimate upward: at each, mke2fs says what is free; grow by what is
 * missing until the content, the margin and the root reserve fit, and the inodes. */
static int ext4_auto_size(struct build *b, const struct plan_part *pp, uint64_t margin, uint64_t *ret_size)
{
	_cleanup_free_ char *scratch = NULL;
	if (asprintf(&scratch, "%s/fs-size-%s.ext4", b->work_dir, pp->spec->name) < 0)
		return -ENOMEM;
	struct fs_rules rules = ext4_rules;
	struct fs_usage u;
	int r = fs_measure(pp->content, &rules, &u);
	if (r < 0)
		return log_errno(r, "cannot measure the files of partition '%s'", pp->spec->name);
	uint64_t size, est;
	/* From below: the content and the margin; mke2fs then says what its metadata and the
	 * root reserve take, and the loop adds that. */
	if (__builtin_mul_overflow(u.blocks, rules.block, &est) || __builtin_add_overflow(est, margin, &est) ||
	    est > (UINT64_C(1) << 60))
		return -EFBIG;
	size = align_up(est + 1, ALIGN_BYTES);
	for (int i = 0; i < 12; i++) {
		struct ext4_geometry g = { 0 };
		if ((r = ext4_geometry(b, pp, scratch, size, &g)) < 0)
			break;
		if (g.block != rules.block) { /* another mke2fs.conf: measure in its blocks */
			rules.block = g.block;
			if ((r = fs_measure(pp->content, &rules, &u)) < 0)
				break;
			continue;
		}
		uint64_t want = ext4_want_blocks(&u, g.groups, margin, g.block);
		if (want > (UINT64_C(1) << 60) / g.block) {
			r = -EFBIG;
			break;
		}
		uint64_t have = g.free_blocks > g.reserved ? g.free_blocks - g.reserved : 0;
		uint64_t more = 0;
		if (want > have) /* the reserve and the metadata grow with the size: 1/16 more */
			more = (want - have) * g.block + (want - have) * g.block / 16;
		if (u.inodes > g.free_inodes) {
			uint64_t per_inode = g.inodes ? size / g.inodes : size, need;
			if (__builtin_mul_overflow(u.inodes - g.free_inodes, per_inode, &need) || need > (UINT64_C(1) << 60)) {
				r = -EFBIG;
				break;
			}
			more = need + need / 16 > more ? need + need / 16 : more;
		}
		if (!more) {
			log_info("size: '%s' holds %" PRIu64 " inodes in %" PRIu64 " blocks of %" PRIu64 " bytes (measured, bounded above) after %d tries",
				 pp->spec->name, u.inodes, u.blocks, g.block, i + 1);
			unlink(scratch);
			*ret_size = size;
			return 0;
		}
		if (__builtin_add_overflow(size, more + ALIGN_BYTES - 1, &size) || size > (UINT64_C(1) << 60)) {
			r = -EFBIG;
			break;
		}
		size = size / ALIGN_BYTES * ALIGN_BYTES;
	}
	unlink(scratch);
	if (r == 0)
		log_error("partition '%s' was still too small for its files after 12 sizes, giving up", pp->spec->name);
	return r < 0 ? r : -E2BIG;
}

static int ext4_make(struct build *b, struct plan_part *pp)
{
	char uuid[37], seed[37], ext[160], blocks[32], epoch[40];
	uuid_format(pp->fs_uuid, uuid);
	uuid_format(pp->hash_seed, seed);
	snprintf(ext, sizeof(ext), "offset=%" PRIu64 ",hash_seed=%s,root_owner=0:0", pp->entry->start, seed);
	snprintf(blocks, sizeof(blocks), "%" PRIu64 "k", pp->entry->size / 1024);
	snprintf(epoch, sizeof(epoch), "E2FSPROGS_FAKE_TIME=%" PRIu64, b->epoch);
	char *argv[20];
	ext4_argv(pp, uuid, ext, b->image, blocks, argv);
	/* LC_ALL=C: mke2fs -d adds files in alphasort() order, which follows the locale. */
	char *env[] = { epoch, "LC_ALL=C", "E2FSPROGS_SKIP_PROGRESS=1", NULL };
	int r = build_run_env(b, argv, env);
	if (r < 0)
		return r;
	return normalize_times(b, pp);
}

static void ext4_id(const struct plan_part *pp, char out[40])
{
	uuid_format(pp->fs_uuid, out);
}

const struct fs_type fs_ext4 = {
	.name = "ext4",
	.tool = "mke2fs",
	.label_max = 16,
	.label_chars = NULL,
	.fstab_type = "ext4",
	.root_options = "errors=remount-ro",
	.mount_options = "defaults,nofail",
	.fs_id = ext4_id,
	.make = ext4_make,
	.auto_size = ext4_auto_size,
};
