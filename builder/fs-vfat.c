/* FAT made by mkfs.vfat -C in its own file, filled with mtools, spliced sparse into the image.
 * (mkfs.vfat --offset into a disk image does not give a usable FAT on our machines.) */
#include "build.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

struct fat_job {
	struct build *b;
	const char *img;    /* the FAT file */
	const char *scratch; /* empty directories to copy, to make FAT directories with fixed times */
	char *env[3];
};

static int cmp_str(const void *a, const void *c) { return strcmp(*(char *const *)a, *(char *const *)c); }

/* Copy directory SRC (host) to ::DST in sorted order, so the FAT's directory order does not depend
 * on the order the host filesystem returns names in. */
static int fat_copy_dir(struct fat_job *j, const char *src, const char *dst)
{
	DIR *d = opendir(src);
	if (!d)
		return log_errno(-errno, "cannot open '%s'", src);
	_cleanup_strv_ char **names = NULL;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d)))
		if (!STREQ(de->d_name, ".") && !STREQ(de->d_name, "..") && (r = strv_push(&names, de->d_name)) < 0)
			break;
	closedir(d);
	if (r < 0)
		return r;
	size_t n = strv_length(names);
	if (n)
		qsort(names, n, sizeof(char *), cmp_str);

	_cleanup_free_ char **files = calloc(n + 8, sizeof(char *));
	_cleanup_strv_ char **paths = NULL, **subdirs = NULL;
	_cleanup_free_ char *target = NULL;
	if (!files || asprintf(&target, "::%s/", dst) < 0)
		return -ENOMEM;
	size_t nf = 0;
	files[nf++] = "mcopy";
	files[nf++] = "-m";
	files[nf++] = "-i";
	files[nf++] = (char *)j->img;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL;
		struct stat st;
		if (asprintf(&path, "%s/%s", src, names[i]) < 0)
			return -ENOMEM;
		if (lstat(path, &st) < 0)
			return log_errno(-errno, "cannot stat '%s'", path);
		if (S_ISDIR(st.st_mode))
			r = strv_push(&subdirs, names[i]);
		else if (S_ISREG(st.st_mode))
			r = strv_push(&paths, path);
		else {
			log_error("'%s' cannot go on a FAT filesystem: only files and directories can", path);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	size_t np = strv_length(paths);
	if (np) {
		_cleanup_free_ char **argv = calloc(np + 6, sizeof(char *));
		if (!argv)
			return -ENOMEM;
		memcpy(argv, files, 4 * sizeof(char *));
		memcpy(argv + 4, paths, np * sizeof(char *));
		argv[4 + np] = target;
		r = build_run_env(j->b, argv, j->env);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; subdirs && subdirs[i]; i++) {
		_cleanup_free_ char *empty = NULL, *from = NULL, *to = NULL;
		if (asprintf(&empty, "%s/%s", j->scratch, subdirs[i]) < 0 || asprintf(&from, "%s/%s", src, subdirs[i]) < 0 ||
		    asprintf(&to, "%s/%s", dst, subdirs[i]) < 0)
			return -ENOMEM;
		if (mkdir(empty, 0755) < 0)
			return log_errno(-errno, "cannot create '%s'", empty);
		struct timespec ts[2] = { { .tv_sec = (time_t)j->b->epoch }, { .tv_sec = (time_t)j->b->epoch } };
		utimensat(AT_FDCWD, empty, ts, 0);
		char *argv[] = { "mcopy", "-s", "-m", "-i", (char *)j->img, empty, target, NULL };
		r = build_run_env(j->b, argv, j->env);
		rmdir(empty);
		if (r < 0)
			return r;
		r = fat_copy_dir(j, from, to);
		if (r < 0)
			return r;
	}
	return 0;
}

/* An empty FAT of SIZE bytes in the new file IMG, made by mkfs.vfat. */
static int vfat_mkfs(struct build *b, const struct plan_part *pp, const char *img, uint64_t size)
{
	_cleanup_free_ char *epoch = NULL;
	char kib[32], serial[16], label[16];
	if (asprintf(&epoch, "SOURCE_DATE_EPOCH=%" PRIu64, b->epoch) < 0)
		return -ENOMEM;
	snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
	snprintf(serial, sizeof(serial), "%08" PRIX32, pp->fat_serial);
	size_t i = 0;
	for (; pp->spec->label[i] && i < 11; i++)
		label[i] = (char)toupper((unsigned char)pp->spec->label[i]);
	label[i] = '\0';

	/* FAT32 as UEFI asks of an ESP, once the partition is large enough for it. */
	bool fat32 = size >= 64ull << 20;
	char *argv[12];
	size_t n = 0;
	argv[n++] = "mkfs.vfat";
	argv[n++] = "--invariant"; /* else the label's directory entry gets the current time */
	argv[n++] = "-C";
	argv[n++] = (char *)img;
	argv[n++] = "-i";
	argv[n++] = serial;
	argv[n++] = "-n";
	argv[n++] = label;
	if (fat32) {
		argv[n++] = "-F";
		argv[n++] = "32";
	}
	argv[n++] = kib; /* the size, in KiB */
	argv[n] = NULL;
	char *env[] = { epoch, NULL };
	return build_run_env(b, argv, env);
}

static int vfat_make(struct build *b, struct plan_part *pp)
{
	_cleanup_free_ char *img = NULL, *scratch = NULL, *epoch = NULL;
	if (asprintf(&img, "%s/fs-%s.fat", b->work_dir, pp->spec->name) < 0 ||
	    asprintf(&scratch, "%s/fat-scratch-%s", b->work_dir, pp->spec->name) < 0 ||
	    asprintf(&epoch, "SOURCE_DATE_EPOCH=%" PRIu64, b->epoch) < 0)
		return -ENOMEM;
	int r = vfat_mkfs(b, pp, img, pp->entry->size);
	if (r < 0)
		return r;

	if (pp->content) {
		if (mkdir(scratch, 0700) < 0)
			return log_errno(-errno, "cannot create '%s'", scratch);
		struct fat_job j = { .b = b, .img = img, .scratch = scratch, .env = { epoch, "MTOOLS_SKIP_CHECK=1", NULL } };
		r = fat_copy_dir(&j, pp->content, "");
		rmdir(scratch);
		if (r < 0)
			return r;
	}

	_cleanup_close_ int in = open(img, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = open(b->image, O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0)
		return log_errno(-errno, "cannot open '%s'", in < 0 ? img : b->image);
	r = copy_sparse(in, 0, out, (off_t)pp->entry->start, pp->entry->size);
	if (r < 0)
		return log_errno(r, "cannot copy the FAT of '%s' into the image", pp->spec->name);
	unlink(img);
	return 0;
}

/* ---- "size": "auto" ---- */

/* A directory: 32-byte entries, "." and ".." and per name a short entry and a long-name entry
 * per 13 characters (counted as bytes: more than enough). */
static uint64_t vfat_dir_blocks(uint64_t n, uint64_t name_bytes, uint64_t cluster)
{
	uint64_t bytes = 32 * (3 + 2 * n + name_bytes / 13);
	return (bytes + cluster - 1) / cluster;
}

static uint64_t vfat_file_blocks(uint64_t size, uint64_t cluster)
{
	return size / cluster + (size % cluster != 0); /* the chain is in the FATs: overhead */
}

/* Clusters free in the empty FAT mkfs.vfat made in FD, and their size, from its boot sector
 * (FAT32's root directory already has its cluster); the bytes of a FAT12/16 root directory,
 * which has a fixed place of its own (0 on FAT32). */
static int vfat_geometry(int fd, uint64_t *ret_cluster, uint64_t *ret_free, uint64_t *ret_root_bytes)
{
	uint8_t bs[512];
	int r = pread_full(fd, bs, sizeof(bs), 0);
	if (r < 0)
		return r;
	uint64_t bps = (uint64_t)bs[11] | (uint64_t)bs[12] << 8, spc = bs[13], reserved = bs[14] | (uint64_t)bs[15] << 8,
		 fats = bs[16], root = bs[17] | (uint64_t)bs[18] << 8, total = bs[19] | (uint64_t)bs[20] << 8,
		 fatsz = bs[22] | (uint64_t)bs[23] << 8;
	if (!total)
		total = bs[32] | (uint64_t)bs[33] << 8 | (uint64_t)bs[34] << 16 | (uint64_t)bs[35] << 24;
	if (!fatsz)
		fatsz = bs[36] | (uint64_t)bs[37] << 8 | (uint64_t)bs[38] << 16 | (uint64_t)bs[39] << 24;
	uint64_t meta = reserved + fats * fatsz + (root * 32 + bps - 1) / (bps ? bps : 1);
	uint64_t clusters = bps >= 512 && spc && meta < total ? (total - meta) / spc : 0;
	if (clusters < 2)
		return -EBADMSG;
	*ret_cluster = bps * spc;
	*ret_free = root ? clusters : clusters - 1;
	*ret_root_bytes = root * 32;
	return 0;
}

/* As for ext4 (fs-ext4.c): from the content and the margin upward, asking mkfs.vfat at each
 * size what is free, until the content's clusters and the margin fit. */
static int vfat_auto_size(struct build *b, const struct plan_part *pp, uint64_t margin, uint64_t *ret_size)
{
	_cleanup_free_ char *scratch = NULL;
	if (asprintf(&scratch, "%s/fs-size-%s.fat", b->work_dir, pp->spec->name) < 0)
		return -ENOMEM;
	struct fs_rules rules = { .block = 4096, .symlink_inline = UINT64_MAX, .file_blocks = vfat_file_blocks,
				  .dir_blocks = vfat_dir_blocks };
	struct fs_usage u;
	int r = fs_measure(pp->content, &rules, &u);
	if (r < 0)
		return log_errno(r, "cannot measure the files of partition '%s'", pp->spec->name);
	uint64_t size;
	if (__builtin_mul_overflow(u.blocks, rules.block, &size) || __builtin_add_overflow(size, margin + 1, &size) ||
	    size > (UINT64_C(1) << 44)) /* FAT32 holds at most 16 TiB */
		return -EFBIG;
	size = align_up(size, ALIGN_BYTES);
	for (int i = 0; i < 16; i++) {
		uint64_t cluster = 0, avail = 0, root = 0;
		unlink(scratch); /* mkfs.vfat -C makes a new file */
		if ((r = vfat_mkfs(b, pp, scratch, size)) < 0)
			break;
		_cleanup_close_ int fd = open(scratch, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || (r = vfat_geometry(fd, &cluster, &avail, &root)) < 0) {
			r = fd < 0 ? -errno : r;
			break;
		}
		if (cluster != rules.block) { /* mkfs.vfat chose another cluster: measure in it */
			rules.block = cluster;
			if ((r = fs_measure(pp->content, &rules, &u)) < 0)
				break;
		}
		uint64_t want = u.blocks + (margin + cluster - 1) / cluster;
		/* A FAT12/16 root directory cannot grow (its label takes an entry): when the top
		 * level's entries do not fit it, FAT32 (vfat_mkfs: from 64 MiB on). */
		if (root && u.top_blocks * cluster > root - 32) {
			if (size >= 64u << 20) {
				r = -ENOSPC; /* cannot be: FAT32 has no such root */
				break;
			}
			size = 64u << 20;
			continue;
		}
		if (want <= avail) {
			unlink(scratch);
			*ret_size = size;
			return 0;
		}
		uint64_t more = (want - avail) * cluster;
		if (__builtin_add_overflow(size, more + more / 16 + ALIGN_BYTES - 1, &size) || size > (UINT64_C(1) << 44)) {
			r = -EFBIG;
			break;
		}
		size = size / ALIGN_BYTES * ALIGN_BYTES;
	}
	unlink(scratch);
	if (r == 0)
		log_error("partition '%s' was still too small for its files after 16 sizes, giving up", pp->spec->name);
	return r < 0 ? r : -E2BIG;
}

/* FAT names a volume by its serial, "XXXX-XXXX". */
static void vfat_id(const struct plan_part *pp, char out[40])
{
	snprintf(out, 40, "%04X-%04X", pp->fat_serial >> 16, pp->fat_serial & 0xffff);
}

const struct fs_type fs_vfat = {
	.name = "vfat",
	.tool = "mkfs.vfat",
	.label_max = 11,
	.label_chars = "_-",
	.label_rule = "letters, digits, '_' and '-'",
	.label_upper = true,
	.fstab_type = "vfat",
	.root_options = NULL, /* no owners, modes or symlinks: not a root filesystem */
	/* Only root reads the ESP and the boot partition; nofail: a machine still boots without. */
	.mount_options = "umask=0077,nofail",
	.fs_id = vfat_id,
	.make = vfat_make,
	.auto_size = vfat_auto_size,
};
