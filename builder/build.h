/* The build pipeline: profile -> plan -> rootfs -> tree -> filesystems -> disk -> outputs.
 * Every stage reads only what the stage before produced. */
#ifndef PMOVES_BUILD_H
#define PMOVES_BUILD_H

#include "profile.h"
#include "table.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

struct plan_part {
	const struct part_spec *spec;
	struct table_entry entry;  /* start, size, type, uuid, name */
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

struct build {
	const struct profile *p;
	const char *seed;       /* identifiers derive from profile name + seed */
	uint64_t epoch;         /* SOURCE_DATE_EPOCH, or the rootfs tarball's mtime */
	bool refresh;           /* rebuild the cached rootfs */
	char *out_dir;          /* DIR/NAME, the final place */
	char *tmp_dir;          /* DIR/.tmp-NAME-PID, renamed to out_dir at the end */
	char *work_dir;         /* scratch space outside tmp_dir's outputs: tmp_dir/work */
	char *tree;             /* staging tree: the target's root */
	char *image;            /* tmp_dir/NAME.img */
	char *rootfs_tar;       /* the rootfs tarball (in the cache, or the profile's file) */
	int log_fd;             /* build.log */
	struct plan plan;
	json_object *manifest;
};

/* Run a program for the build: its output goes to build.log (and the terminal with -v).
 * Returns 0, or a negative errno / positive exit status after logging what failed. */
int build_run(struct build *b, char *const argv[]);
/* The same with extra environment entries. */
int build_run_env(struct build *b, char *const argv[], char *const env[]);

/* Path under the tree: tree + "/" + rel (rel may start with '/'). Caller frees. */
char *build_tree_path(const struct build *b, const char *rel);

/* Stages, in order (build.c drives them). */
int plan_make(const struct profile *p, const char *seed, struct plan *ret);
int rootfs_get(struct build *b);   /* sets b->rootfs_tar */
int tree_make(struct build *b);    /* extract, overlays, generated files; sets b->tree */
int fs_make_all(struct build *b);  /* every partition's filesystem, written into b->image */
int outputs_write(struct build *b);

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
