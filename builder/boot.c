/* The boot stage: the kernel the image boots, then the boot loader's files (boot-<name>.c). */
#include "build.h"
#include "log.h"
#include "stages.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>

/* Newest "vmlinuz-VERSION" in the tree's /boot (by version order). */
static int find_kernel(struct build *b, char **ret_version)
{
	_cleanup_close_ int fd = tree_open(b, "/boot", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1;
	_cleanup_free_ char *best = NULL;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vmlinuz-", 8) != 0 || !de->d_name[8])
			continue;
		if (best && strverscmp(de->d_name + 8, best) <= 0)
			continue;
		free(best);
		if (!(best = strdup(de->d_name + 8))) {
			r = -ENOMEM;
			break;
		}
	}
	closedir(d);
	if (r < 0)
		return r;
	if (!best)
		return -ENOENT;
	*ret_version = TAKE_PTR(best);
	return 0;
}

int boot_cmdline(struct build *b, char **ret)
{
	char rootid[40];
	if (!tree_root_fs_id(b, rootid))
		return -EINVAL;
	const char *extra = b->p->boot.cmdline;
	return asprintf(ret, "root=UUID=%s%s%s", rootid, *extra ? " " : "", extra) < 0 ? -ENOMEM : 0;
}

int stage_boot(struct build *b)
{
	const struct boot_loader *l = boot_find(b->p->boot.loader);
	int r = find_kernel(b, &b->kernel_version);
	if (r == -ENOENT) {
		log_error("the root filesystem has no kernel in /boot (add a linux-image package to rootfs.packages)");
		return r;
	}
	if (r < 0)
		return log_errno(r, "cannot look for the kernel in the image's /boot");
	return l->install(b);
}
