/* Files of an ext4 filesystem inside a disk image, read with libext2fs (no mount, no root):
 * for the boot loaders that look at an image's root filesystem (`run`, `inspect`). The image
 * may be hostile: every size is capped by the caller, paths are looked up as the boot
 * firmware would (symlinks followed inside the filesystem). */
#ifndef PMOVES_EXT4_READ_H
#define PMOVES_EXT4_READ_H

#include <stddef.h>
#include <stdint.h>

struct ext4_ro;

/* The ext4 filesystem at byte OFFSET of IMAGE, read-only: -EBADMSG when there is none. */
int ext4_ro_open(const char *image, uint64_t offset, struct ext4_ro **ret);
void ext4_ro_close(struct ext4_ro *fs);
/* PATH (absolute in the filesystem): 0 and its size when a regular file, -ENOENT when
 * missing, -EISDIR when a directory, -EINVAL when something else. */
int ext4_ro_stat(struct ext4_ro *fs, const char *path, uint64_t *ret_size);
/* PATH's bytes and a NUL after them, at most MAX (-EFBIG past that). */
int ext4_ro_read(struct ext4_ro *fs, const char *path, size_t max, char **ret, size_t *ret_len);

#endif
