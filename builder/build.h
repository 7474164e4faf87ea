/* The build pipeline: profile -> plan -> stages (build-run.c lists them) -> outputs. Every stage
 * reads only what the stages before it produced. */
#ifndef PMOVES_BUILD_H
#define PMOVES_BUILD_H

#include "profile.h"
#include "registry.h"
#include "table.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct plan_part {
	const struct part_spec *spec;
	const struct fs_type *fs;  /* its filesystem, or NULL ("none": left empty) */
	struct table_entry *entry; /* in plan.entries: start, size, type, uuid, name */
	/* Derived from the seed; each filesystem uses what it has: */
	uint8_t fs_uuid[16];       /* a UUID (ext4) */
	uint8_t hash_seed[16];     /* a directory hash seed (ext4) */
	uint32_t fat_serial;       /* a volume serial (FAT) */
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
struct build_remover;

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
	struct build_remover *remover; /* removes work_dir on the other core (build-run.c) */
	bool tmp_dir_made;      /* tmp_dir is ours: removed unless the build was published */
	bool published;         /* tmp_dir became out_dir */
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

/* The plan: the profile's layout and the identifiers derived from SEED (plan.c). */
int plan_make(const struct profile *p, const char *seed, struct plan *ret);

/* Makes work_dir and sets tree (the tree stage calls it). */
int build_work_dir(struct build *b);
/* Does any of the profile's outputs have FLAG (OUT_*)? */
bool build_outputs_want(const struct build *b, unsigned flag);

/* Files inside the staging tree, resolved as if the tree were "/" (openat2 RESOLVE_IN_ROOT), so
 * a hostile rootfs cannot make the builder write outside it. REL is absolute in the target. */
int tree_open(struct build *b, const char *rel, int flags, mode_t mode);
int tree_mkdir_p(struct build *b, const char *rel, mode_t mode);
int tree_write_file(struct build *b, const char *rel, const void *data, size_t len, mode_t mode);
/* FROM (a regular file) copied to TO; every failure but FROM missing (-ENOENT, for the caller
 * to word) is reported here, naming the file. */
int tree_copy_file(struct build *b, const char *from_rel, const char *to_rel, mode_t mode);
/* "UUID" of the root filesystem as fstab and the kernel command line name it. */
const char *tree_root_fs_id(const struct build *b, char out[40]);
/* The kernel command line for boot loaders: "root=UUID=<root fs> <the profile's cmdline>". */
int boot_cmdline(struct build *b, char **ret);

#endif
