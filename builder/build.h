/* The build pipeline: profile -> plan -> rootfs -> tree -> filesystems -> disk -> outputs.
 * Every stage reads only what the stage before produced. */
#ifndef PMOVES_BUILD_H
#define PMOVES_BUILD_H

#include "profile.h"
#include "table.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct plan_part {
	const struct part_spec *spec;
	struct table_entry *entry; /* in plan.entries: start, size, type, uuid, name */
	uint8_t fs_uuid[16];       /* ext4 UUID */
	uint8_t hash_seed[16];     /* ext4 directory hash seed */
	uint32_t fat_serial;       /* vfat volume ID */
	char *content;             /* directory with this partition's files, or NULL (empty fs) */
};

struct plan {
	const struct table_type *table;
	struct table_layout layout;
	struct table_entry entries[PROFILE_MAX_PARTS];
	size_t n;
	struct plan_part parts[PROFILE_MAX_PARTS];
};

struct image_hash;

struct build {
	const struct profile *p;
	const char *seed;       /* identifiers derive from this: "NAME/SEED" */
	char *seed_buf;
	uint64_t epoch;         /* SOURCE_DATE_EPOCH, or the rootfs tarball's mtime */
	bool epoch_fixed;       /* SOURCE_DATE_EPOCH was set */
	bool refresh;           /* rebuild the cached rootfs */
	char *out_dir;          /* DIR/NAME, the final place */
	char *tmp_dir;          /* DIR/.tmp-NAME-PID, renamed to out_dir at the end */
	char *work_dir;         /* scratch space for the tree and filesystem files (build_work_dir) */
	char *tree;             /* staging tree: the target's root */
	char *image;            /* tmp_dir/NAME.img */
	char *rootfs_tar;       /* the rootfs tarball (in the cache, or the profile's file) */
	int log_fd;             /* build.log */
	int tree_fd;            /* the staging tree, open */
	json_object *packages;  /* {"name": "version"} from the tree's dpkg status */
	char *kernel_version;   /* set by the boot loader stage */
	struct plan plan;
	json_object *artifacts; /* [{file, kind}] from the outputs, checksummed by the manifest */
	json_object *manifest;
	struct image_hash *ihash; /* the raw image's checksum, computed as it is made */
};

/* Run a program for the build: its output goes to build.log (and the terminal with -v).
 * Returns 0, or a negative errno / positive exit status after logging what failed. */
int build_run(struct build *b, char *const argv[]);
/* The same with extra environment entries. */
int build_run_env(struct build *b, char *const argv[], char *const env[]);

/* Set by SIGINT/SIGTERM/SIGHUP during a build: long loops check it and stop. */
bool build_interrupted(void);

/* Path under the tree: tree + "/" + rel (rel may start with '/'). Caller frees. */
char *build_tree_path(const struct build *b, const char *rel);

/* Stages, in order (build.c drives them). */
int plan_make(const struct profile *p, const char *seed, struct plan *ret);
int rootfs_get(struct build *b);   /* sets b->rootfs_tar */
int tree_make(struct build *b);    /* extract, overlays, generated files; sets b->tree */
int build_work_dir(struct build *b); /* makes work_dir and sets tree (the tree stage calls it) */
int tree_split(struct build *b);   /* move each mounted partition's files out of the tree */
int fs_make_all(struct build *b);  /* every partition's filesystem, written into b->image */
int outputs_write(struct build *b);

/* Files inside the staging tree, resolved as if the tree were "/" (openat2 RESOLVE_IN_ROOT), so
 * a hostile rootfs cannot make the builder write outside it. REL is absolute in the target. */
int tree_open(struct build *b, const char *rel, int flags, mode_t mode);
int tree_mkdir_p(struct build *b, const char *rel, mode_t mode);
int tree_write_file(struct build *b, const char *rel, const void *data, size_t len, mode_t mode);
int tree_copy_file(struct build *b, const char *from_rel, const char *to_rel, mode_t mode);
/* "UUID" of the root filesystem as fstab and the kernel command line name it. */
const char *tree_root_fs_id(const struct build *b, char out[40]);

/* One file per filesystem type: fs-<name>.c, listed in fs.c. make() writes the filesystem of
 * PART, holding the files of part->content (may be NULL), at part->entry.start in b->image. */
struct fs_type {
	const char *name;
	const char *tool;    /* program that must be installed, for early checks */
	int (*make)(struct build *b, struct plan_part *part);
};
const struct fs_type *fs_find(const char *name);

/* One file per boot loader: boot-<name>.c, listed in boot.c. install() puts the loader and
 * its configuration into the staging tree. */
enum { ARCH_X86_64 = 1 << 0, ARCH_AARCH64 = 1 << 1 };
struct boot_loader {
	const char *name;
	unsigned archs;       /* ARCH_* the loader can boot */
	bool needs_esp;       /* an "esp" partition with fs vfat is required */
	const char *table;    /* the partition table it needs, or NULL for any */
	int (*install)(struct build *b);
};
const struct boot_loader *boot_find(const char *name);
unsigned arch_bit(const char *arch); /* 0 for an unknown name */
const char *host_arch(void);         /* this machine's, as profiles name it */
const char *arch_triplet(const char *arch); /* "x86_64-linux-gnu", ... */

/* One file per output: out-<name>.c, listed in out.c. */
struct output_type {
	const char *name;
	int (*write)(struct build *b);
};
const struct output_type *output_find(const char *name);

/* One file per rootfs source: rootfs-<name>.c, listed in rootfs.c. get() sets *ret_tar to a
 * tarball of the root filesystem. */
struct rootfs_source {
	const char *name;
	int (*get)(struct build *b, char **ret_tar);
};
const struct rootfs_source *rootfs_source_find(const char *name);

#endif
