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

static int vfat_make(struct build *b, struct plan_part *pp)
{
	_cleanup_free_ char *img = NULL, *scratch = NULL, *epoch = NULL;
	char kib[32], serial[16], label[16];
	if (asprintf(&img, "%s/fs-%s.fat", b->work_dir, pp->spec->name) < 0 ||
	    asprintf(&scratch, "%s/fat-scratch-%s", b->work_dir, pp->spec->name) < 0 ||
	    asprintf(&epoch, "SOURCE_DATE_EPOCH=%" PRIu64, b->epoch) < 0)
		return -ENOMEM;
	snprintf(kib, sizeof(kib), "%" PRIu64, pp->entry->size / 1024);
	snprintf(serial, sizeof(serial), "%08" PRIX32, pp->fat_serial);
	size_t i = 0;
	for (; pp->spec->label[i] && i < 11; i++)
		label[i] = (char)toupper((unsigned char)pp->spec->label[i]);
	label[i] = '\0';

	/* FAT32 as UEFI asks of an ESP, once the partition is large enough for it. */
	bool fat32 = pp->entry->size >= 64ull << 20;
	char *argv[12];
	size_t n = 0;
	argv[n++] = "mkfs.vfat";
	argv[n++] = "--invariant"; /* else the label's directory entry gets the current time */
	argv[n++] = "-C";
	argv[n++] = img;
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
	int r = build_run_env(b, argv, env);
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
};
