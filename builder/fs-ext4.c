/* ext4 made by mke2fs -d straight into the disk image at the partition's offset. */
#include "build.h"
#include "hash.h"
#include "log.h"
#include "util.h"

#include <ext2fs/ext2fs.h>
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

static int ext4_make(struct build *b, struct plan_part *pp)
{
	char uuid[37], seed[37], ext[160], blocks[32], epoch[40];
	uuid_format(pp->fs_uuid, uuid);
	uuid_format(pp->hash_seed, seed);
	snprintf(ext, sizeof(ext), "offset=%" PRIu64 ",hash_seed=%s,root_owner=0:0", pp->entry->start, seed);
	snprintf(blocks, sizeof(blocks), "%" PRIu64 "k", pp->entry->size / 1024);
	snprintf(epoch, sizeof(epoch), "E2FSPROGS_FAKE_TIME=%" PRIu64, b->epoch);
	char *argv[20];
	size_t n = 0;
	argv[n++] = "mke2fs";
	argv[n++] = "-q";
	argv[n++] = "-F";
	argv[n++] = "-t";
	argv[n++] = "ext4";
	argv[n++] = "-U";
	argv[n++] = uuid;
	argv[n++] = "-L";
	argv[n++] = (char *)pp->spec->label;
	argv[n++] = "-E";
	argv[n++] = ext;
	if (pp->content) {
		argv[n++] = "-d";
		argv[n++] = pp->content;
	}
	argv[n++] = b->image;
	argv[n++] = blocks;
	argv[n] = NULL;
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
};
