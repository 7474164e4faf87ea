/* The boot stage: the kernel the image boots, then the boot loader's files (boot-<name>.c). */
#include "build.h"
#include "log.h"
#include "stages.h"
#include "util.h"


int boot_kernels(struct build *b, char ***ret)
{
	_cleanup_strv_ char **v = NULL;
	int r = tree_list_files(b, "/boot", "vmlinuz-", "", false, &v);
	if (r < 0)
		return r;
	size_t n = 0;
	for (; v && v[n]; n++)
		memmove(v[n], v[n] + 8, strlen(v[n] + 8) + 1);
	for (size_t i = 1; i < n; i++) /* a handful of names */
		for (size_t j = i; j > 0 && strverscmp(v[j - 1], v[j]) < 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*ret = TAKE_PTR(v);
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
	_cleanup_strv_ char **kernels = NULL;
	int r = boot_kernels(b, &kernels);
	if (r == 0 && !kernels)
		r = -ENOENT;
	if (r == 0 && !(b->kernel_version = strdup(kernels[0])))
		r = -ENOMEM;
	if (r == -ENOENT) {
		log_error("the root filesystem has no kernel in /boot (add a linux-image package to rootfs.packages)");
		return r;
	}
	if (r < 0)
		return log_errno(r, "cannot look for the kernel in the image's /boot");
	return l->install(b);
}
