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
	bool grows;                /* sized from its content ("size": "auto"): made to be grown */
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
	json_object *sandbox_guest; /* the baked sandbox guest (sandbox-bake.c), for manifest.json */
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
/* The same, its output on the terminal too, each line after PREFIX: for a program whose own
 * output is the progress of long work (a build inside the build). */
int build_run_shown(struct build *b, char *const argv[], const char *prefix);

/* Set by SIGINT/SIGTERM/SIGHUP during a build: long loops check it and stop. */
bool build_interrupted(void);

/* Path under the tree: tree + "/" + rel (rel may start with '/'). Caller frees. */
char *build_tree_path(const struct build *b, const char *rel);

/* The plan: the profile's layout and the identifiers derived from SEED (plan.c). */
int plan_make(const struct profile *p, const char *seed, struct plan *ret);

/* What a directory tree's files take on a filesystem (fs.c), for the records' auto_size hooks.
 * Only what the files are counts (sizes, names, link targets, hard links, extended
 * attributes), never how the host stored them: the same files give the same numbers on
 * tmpfs or ext4. The filesystem's rules: */
struct fs_rules {
	uint64_t block;                 /* its allocation unit, bytes */
	uint64_t symlink_inline;        /* a symlink target shorter than this takes no block */
	/* blocks of a file of SIZE bytes (data and the filesystem's own map of it) */
	uint64_t (*file_blocks)(uint64_t size, uint64_t block);
	/* blocks of a directory of N entries whose names are NAME_BYTES long in all */
	uint64_t (*dir_blocks)(uint64_t n, uint64_t name_bytes, uint64_t block);
};
struct fs_usage {
	uint64_t inodes;       /* below the top directory; a hard-linked file once */
	uint64_t blocks;       /* files, long symlinks, directories (the top one too) */
	uint64_t xattr_inodes; /* inodes with extended attributes */
	uint64_t top_blocks;   /* of which the top directory's */
};
/* DIR's usage under RULES (DIR may be NULL: an empty filesystem's root). -EFBIG on overflow,
 * -ELOOP past 256 levels. */
int fs_measure(const char *dir, const struct fs_rules *rules, struct fs_usage *ret);

/* "size": "auto": the partition that holds SIZE bytes (its record's auto_size) becomes the
 * "fill" partition PP's size, and the disk ends after it, rounded up to 1 MiB. -EFBIG when the
 * table cannot hold that disk. */
int plan_set_auto_size(struct plan *pl, struct plan_part *pp, uint64_t size);

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
/* Copy the directory SRC (fd, outside the tree) into the tree at REL: files, directories and
 * symbolic links (anything else is refused), all root's, modes kept, times at most the epoch.
 * WHAT names the source in messages ("overlay 'NAME': ..."). */
int tree_copy_dir(struct build *b, const char *what, int src, const char *rel);
/* The entries of DIR (REGULAR_ONLY: its regular files) whose names start with PREFIX and end
 * with SUFFIX, and are longer than PREFIX, sorted by name (the build does not depend on the
 * directory's order); NULL when none. -ENOENT: DIR is missing. */
int tree_list_files(struct build *b, const char *dir, const char *prefix, const char *suffix, bool regular_only,
		    char ***ret);
/* The kernel versions of the tree's /boot/vmlinuz-VERSION, newest first (by version), whatever
 * their type: a loader that uses one checks it is a regular file, and says so when not. */
int boot_kernels(struct build *b, char ***ret);
/* SONAME where the image's dynamic loader would find it (its multiarch directories first):
 * 0 and the path in the tree in *ret_rel, or -ENOENT. */
int tree_find_library(struct build *b, const char *soname, char **ret_rel);
/* "UUID" of the root filesystem as fstab and the kernel command line name it. */
const char *tree_root_fs_id(const struct build *b, char out[40]);
/* The kernel command line for boot loaders: "root=UUID=<root fs> <the profile's cmdline>". */
int boot_cmdline(struct build *b, char **ret);

#endif
