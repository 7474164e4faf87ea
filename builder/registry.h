/* The builder's plug-in records: rootfs sources, filesystems, boot loaders and outputs (the
 * partition tables are in table.h). A kind is one file (rootfs-<name>.c, fs-<name>.c,
 * boot-<name>.c, out-<name>.c) exporting one record, and one line in its list in registry.c.
 * The record carries everything particular to its kind: its profile checks, its tools, its
 * hooks. profile.c and the stages use the records and never name a kind.
 *
 * This header is the profile layer's view of the records: the hooks that run during a build
 * take a struct build (build.h), which the profile layer never looks into. */
#ifndef PMOVES_REGISTRY_H
#define PMOVES_REGISTRY_H

#include "arch.h"
#include "table.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct build;
struct plan_part;
struct profile;

/* ---- reporting problems of a profile (profile.c) ---- */

/* Where a check reports: profile.c's resolution context, which knows the file each value came
 * from. */
struct problems;
/* "FILE: PATH: message" for the value at PATH (".disk.partitions[1].fs"); returns -EINVAL. */
int problem(struct problems *pr, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A value quoted for a message, JSON-escaped and cut at about 60 bytes: Q(s) in a call's
 * arguments. */
struct quoted {
	char s[160];
};
struct quoted quote(const char *s);
#define Q(str_) (quote(str_).s)
/* The JSON array of strings A at PATH: at most MAX of them (WHAT names them), each VALID
 * ("... is not RULE"), none twice. */
int check_str_list(struct problems *pr, const char *path, json_object *a, size_t max, const char *what,
		   bool (*valid)(const char *), const char *rule);

/* ---- rootfs sources: rootfs-<name>.c ---- */

struct rootfs_source {
	const char *name;
	/* JSON object: values of its keys that a profile leaves out (NULL: none). */
	const char *defaults;
	/* Its keys of the profile's "rootfs" section, beyond "source", checked on the resolved
	 * profile (the other sources' keys are refused by it when it cannot use them). */
	int (*check)(const struct profile *p, struct problems *pr);
	/* A tarball of the root filesystem into *ret_tar (malloc'd path). */
	int (*get)(struct build *b, char **ret_tar);
};

/* ---- filesystems: fs-<name>.c ---- */

struct fs_type {
	const char *name;         /* "fs" in a profile's partition */
	const char *tool;         /* the program that makes it, for messages */
	/* Labels: at most label_max bytes (0: the filesystem has none, the label is not used);
	 * label_chars: the characters allowed besides ASCII letters and digits (NULL: any
	 * printable ASCII), described by label_rule for messages; label_upper: stored in upper
	 * case (FAT), so the profile says what the disk will. */
	size_t label_max;
	const char *label_chars;
	const char *label_rule;
	bool label_upper;
	/* /etc/fstab: the type, the options when mounted at "/" (NULL: it cannot hold the root
	 * filesystem) and elsewhere. */
	const char *fstab_type;
	const char *root_options;
	const char *mount_options;
	/* The identifier fstab and the kernel name it by, "UUID=<this>": from the plan's derived
	 * values (build.h), written into OUT. */
	void (*fs_id)(const struct plan_part *pp, char out[40]);
	/* Write the filesystem of PP, holding the files of its content directory (may be NULL),
	 * at its offset in the image. */
	int (*make)(struct build *b, struct plan_part *pp);
	/* For "size": "auto" (NULL: this filesystem cannot be sized so): in *RET_SIZE the bytes
	 * of a partition that holds the files of PP's content directory (may be NULL) with
	 * MARGIN bytes left free for users, its own overhead included, a multiple of 1 MiB.
	 * The same files give the same size: only their sizes, names and links count. make()
	 * then makes PP (pp->grows set) so that it fits. */
	int (*auto_size)(struct build *b, const struct plan_part *pp, uint64_t margin, uint64_t *ret_size);
};

/* ---- boot loaders: boot-<name>.c ---- */

/* A partition a boot loader needs: of this type, with this filesystem, mounted (the loader
 * installs files through the mount point; mount_hint names the usual one). */
struct boot_part {
	const char *type;
	const char *fs;
	const char *mount_hint;
};

/* How `pmoves-image run` starts an image of a boot loader, filled by the loader's qemu hook:
 * under firmware QEMU runs (code and the variables template for its pflash drives, from
 * package pkg: UEFI), or directly from the kernel, initrd, device tree and command line the
 * hook took out of the image into its directory, as the machine's own boot firmware would
 * (the Raspberry Pi's is not emulated). */
struct qemu_boot {
	const char *code, *vars, *pkg;       /* firmware boot; code NULL: a direct boot */
	const char *bios;     /* or firmware without variables, QEMU's -bios (U-Boot), from pkg */
	char *kernel, *initrd, *dtb, *append; /* direct boot (initrd, dtb may be NULL); freed by run */
	const char *machine;   /* QEMU's machine; NULL: the architecture's (q35, virt) */
	const char *cpu;       /* NULL: the architecture's */
	const char *serial;    /* which of the machine's UARTs is the console: "0" the first, "1"
				* the second (the first then goes nowhere); NULL: the first */
	bool sd;               /* the disk is the machine's SD card: QEMU wants a power of two */
	bool usb_net;          /* NICs are usb-net: the machine has no PCI */
	bool no_fw_cfg;        /* the machine has no fw_cfg (run --config cannot pass a file) */
	unsigned memory;       /* MiB, fixed by the machine; 0: any */
	unsigned cpus;         /* fixed by the machine; 0: any */
};

/* The image `run` boots, for a loader's qemu hook. */
struct qemu_image {
	const char *path;
	const struct arch *arch;
	const char *machine;   /* run --machine: NULL (the loader's choice) or a name it knows */
	const char *dir;       /* a private directory for what the hook takes out of the image */
};

/* What `pmoves-image inspect` shows of a boot loader's own files in an image: each file's name
 * and text (made printable), and checks that they agree with the image (the files they name
 * are there, the root they name is a partition of it). */
#define BOOT_VIEW_FILES 4
#define BOOT_VIEW_CHECKS 32
struct boot_view {
	const char *loader;
	size_t n_files, n_checks;
	struct {
		const char *name;
		char *text;
	} files[BOOT_VIEW_FILES];
	struct {
		char *what;
		bool ok;
	} checks[BOOT_VIEW_CHECKS];
};

struct inspect_image;

struct boot_loader {
	const char *name;
	unsigned archs;            /* ARCH_* bits it can boot */
	const char *table;         /* the partition table it needs, or NULL for any */
	const struct boot_part *needs; /* the partitions it needs, ended by one with type NULL */
	bool uefi_only;            /* machines boot it by UEFI only: the network install refuses a
				    * machine that netbooted by BIOS */
	bool fdt;                  /* takes "boot.fdt", the device tree the board boots with */
	const char *config_file;   /* where "boot.config" lines go (the loader's own config file);
				    * NULL: it takes none */
	int (*check)(const struct profile *p, struct problems *pr); /* optional: more rules */
	/* Its files into the staging tree (b->kernel_version is set: the newest kernel in /boot). */
	int (*install)(struct build *b);
	/* Optional: is the image at PATH one of its kind, told by the image itself (for `run` on
	 * an image without its manifest.json)? */
	bool (*recognises)(const char *path);
	/* How `pmoves-image run` boots an image of it. Logs what is wrong; -EINVAL: the image
	 * cannot boot as it is (a broken config, a missing file), -ENOENT: a tool is missing. */
	int (*qemu)(const struct qemu_image *img, struct qemu_boot *ret);
	/* Optional: its files in IMG (at PATH) and their checks, for `inspect`; -ENODATA when the
	 * image is not one of its kind (told by the image, not its manifest). */
	int (*inspect)(const char *path, const struct inspect_image *img, struct boot_view *ret);
};

/* The first boot loader that recognises the image at PATH, or NULL. */
const struct boot_loader *boot_recognise(const char *path);
/* The first boot loader that recognises the image (its inspect hook): -ENODATA when none. */
int boot_inspect(const char *path, const struct inspect_image *img, struct boot_view *ret);
void boot_view_done(struct boot_view *v);

/* For loaders that the machine's UEFI starts: its firmware; no --machine. */
int boot_uefi_qemu(const struct qemu_image *img, struct qemu_boot *ret);

/* ---- outputs: out-<name>.c ---- */

enum {
	OUT_DIGEST = 1u << 0,     /* wants the raw image's SHA-256, computed while it is made */
	OUT_READS_TREE = 1u << 1, /* reads the staging tree: it is kept until the output is written */
	OUT_IS_IMAGE = 1u << 2,   /* is the raw image itself: without one, the image is removed once
	                           * the profile's outputs are written from it */
};

struct output_ctx {
	const char *digest;       /* with OUT_DIGEST: the raw image's SHA-256, hex */
};

struct output_type {
	const char *name;
	unsigned flags;           /* OUT_* */
	int (*check)(const struct profile *p, struct problems *pr); /* optional */
	int (*write)(struct build *b, const struct output_ctx *o);
};

/* ---- lookups (registry.c) ---- */

const struct rootfs_source *rootfs_source_find(const char *name);
const struct fs_type *fs_find(const char *name);
const struct boot_loader *boot_find(const char *name);
const struct output_type *output_find(const char *name);
/* The name of the I-th record of a list, NULL past the last: enumerations for the profile
 * schema (profile-schema.c). */
const char *rootfs_source_at(size_t i);
const char *fs_at(size_t i);
const char *boot_at(size_t i);
const char *output_at(size_t i);
/* initramfs-tools' module categories, for mmdebstrap's rootfs.initramfs_modules
 * (rootfs-mmdebstrap.c). */
const char *initramfs_category_at(size_t i);
/* The names of a list, "'ext4', 'vfat'", for messages. */
const char *rootfs_source_names(void);
const char *fs_names(void);
const char *boot_names(void);
const char *output_names(void);

#endif
