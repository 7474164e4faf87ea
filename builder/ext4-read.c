/* Files of an ext4 filesystem in an image, with libext2fs (ext4-read.h). */
#include "ext4-read.h"
#include "util.h"

#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

struct ext4_ro {
	ext2_filsys fs;
};

int ext4_ro_open(const char *image, uint64_t offset, struct ext4_ro **ret)
{
	char opts[64];
	snprintf(opts, sizeof(opts), "offset=%" PRIu64, offset);
	struct ext4_ro *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	if (ext2fs_open2(image, opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &f->fs) != 0) {
		free(f);
		return -EBADMSG;
	}
	*ret = f;
	return 0;
}

void ext4_ro_close(struct ext4_ro *f)
{
	if (!f)
		return;
	ext2fs_close_free(&f->fs);
	free(f);
}

static int lookup(struct ext4_ro *f, const char *path, ext2_ino_t *ino, struct ext2_inode *in)
{
	if (*path != '/')
		return -EINVAL;
	errcode_t e = ext2fs_namei_follow(f->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
	if (e == EXT2_ET_FILE_NOT_FOUND || e == EXT2_ET_NO_DIRECTORY || e == ENOENT || e == ENOTDIR)
		return -ENOENT;
	if (e)
		return -EINVAL; /* a symlink loop, a broken directory */
	if (ext2fs_read_inode(f->fs, *ino, in) != 0)
		return -EINVAL;
	if (LINUX_S_ISDIR(in->i_mode))
		return -EISDIR;
	return LINUX_S_ISREG(in->i_mode) ? 0 : -EINVAL;
}

int ext4_ro_stat(struct ext4_ro *f, const char *path, uint64_t *ret_size)
{
	ext2_ino_t ino;
	struct ext2_inode in;
	int r = lookup(f, path, &ino, &in);
	if (r == 0)
		*ret_size = EXT2_I_SIZE(&in);
	return r;
}

int ext4_ro_read(struct ext4_ro *f, const char *path, size_t max, char **ret, size_t *ret_len)
{
	ext2_ino_t ino;
	struct ext2_inode in;
	int r = lookup(f, path, &ino, &in);
	if (r < 0)
		return r;
	uint64_t size = EXT2_I_SIZE(&in);
	if (size > max)
		return -EFBIG;
	_cleanup_free_ char *buf = malloc((size_t)size + 1);
	ext2_file_t file = NULL;
	if (!buf)
		return -ENOMEM;
	if (ext2fs_file_open(f->fs, ino, 0, &file) != 0)
		return -EINVAL;
	size_t got = 0;
	while (got < size) {
		unsigned n = 0, want = (unsigned)(size - got > (1u << 20) ? (1u << 20) : size - got);
		if (ext2fs_file_read(file, buf + got, want, &n) != 0 || n == 0)
			break;
		got += n;
	}
	ext2fs_file_close(file);
	if (got != size)
		return -EINVAL;
	buf[got] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = got;
	return 0;
}
