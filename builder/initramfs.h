/* An initramfs archive (cpio "newc", as the kernel unpacks it) written from the build's tree:
 * the network boot's second half (out-pxe.c) and a sandbox guest's whole one (out-microvm.c).
 * Every entry is root's, dated the build's epoch. Each call logs what went wrong. */
#ifndef PMOVES_INITRAMFS_H
#define PMOVES_INITRAMFS_H

#include "build.h"

#include <stddef.h>
#include <sys/types.h>

struct initramfs {
	struct build *b;
	struct archive *a;
	char *path;     /* the archive's file */
	char *mod_dir;  /* where modules go in the archive, e.g. "pmoves/modules" */
	char **modules; /* the module files in it (base names) */
};

int initramfs_open(struct initramfs *ir, struct build *b, const char *path, const char *mod_dir);
/* Finish the archive (R: what went before; the archive is closed either way) and free. */
int initramfs_close(struct initramfs *ir, int r);

int initramfs_dir(struct initramfs *ir, const char *path);
int initramfs_data(struct initramfs *ir, const char *path, const void *buf, size_t len, mode_t perm);
/* The regular file REL of the tree (symlinks followed inside it, at most 256 MiB) as PATH. */
int initramfs_tree_file(struct initramfs *ir, const char *rel, const char *path, mode_t perm);
/* The host's regular file FROM (at most 256 MiB) as PATH. */
int initramfs_host_file(struct initramfs *ir, const char *from, const char *path, mode_t perm);

/* The image's modules.dep and modules.builtin for the build's kernel. */
struct modules_dep {
	const char *kver;
	char *kdir, *dep, *builtin; /* NUL-terminated lines */
	size_t dep_len, builtin_len;
};
int modules_dep_load(struct build *b, struct modules_dep *ret);
void modules_dep_free(struct modules_dep *md);

/* SET's N modules with what they need, dependencies first, into MOD_DIR, and the file
 * MOD_DIR/LIST_NAME naming them (base names, a line each) in the order to load them. One the
 * kernel has built in needs nothing; one it has neither way is an error naming WHY it is needed. */
int initramfs_modules(struct initramfs *ir, const struct modules_dep *md, const char *const *set, size_t n,
		      const char *list_name, const char *why);

#endif
