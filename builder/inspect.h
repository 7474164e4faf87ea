/* What is in a disk image: its partition table and filesystems as libblkid sees them, and how
 * they compare with the manifest.json the build wrote beside it. Used by `pmoves-image inspect`. */
#ifndef PMOVES_INSPECT_H
#define PMOVES_INSPECT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every string below comes from the image; it has been made printable (control bytes and
 * invalid UTF-8 as \xNN), so it is safe for a terminal and for JSON. */
struct inspect_part {
	unsigned number;
	uint64_t start, size;   /* bytes */
	char *type_guid;        /* GPT partition type GUID, lower case; NULL on other tables */
	int mbr_type;           /* MBR partition type byte; -1 on other tables */
	const char *type_name;  /* "esp", "root", "linux", ... when known, else NULL */
	const char *type_arch;  /* "x86_64" or "aarch64" for architecture-specific GPT types */
	char *name;             /* GPT partition name, or NULL */
	char *uuid;             /* GPT partition GUID, MBR "<disk id>-NN", or NULL */
	bool extended;          /* an MBR extended partition: a container, not probed */
	bool beyond_end;        /* start + size is past the end of the image */
	unsigned overlaps;      /* the number of another partition it overlaps (the first), or 0 */
	char *fs;               /* filesystem TYPE, or NULL when none was found */
	char *fs_label, *fs_uuid, *fs_version;
	uint64_t fs_block_size; /* 0 when unknown */
	bool fs_ambiguous;      /* several signatures: libblkid refuses to choose */
};

struct inspect_image {
	char *path;
	uint64_t size;          /* bytes */
	char *table;            /* "gpt", "mbr", or libblkid's name for other tables */
	char *disk_id;          /* GPT disk GUID, MBR "0x12345678", or NULL */
	size_t n_parts;
	struct inspect_part *parts;
	unsigned n_beyond_end;  /* how many partitions have beyond_end set */
	unsigned n_overlapping; /* how many partitions overlap another */
	/* GPT entries in use that libblkid (and Linux) ignore: outside the usable sectors the
	 * header gives, typically past the end of the disk. Not in parts. */
	size_t n_ignored;
	struct inspect_ignored {
		unsigned number;
		uint64_t first_lba, last_lba;  /* as the entry says, inclusive */
		bool beyond_end;
	} *ignored;
	uint64_t first_usable_lba, last_usable_lba; /* from the primary GPT header, when read */
};

/* Problems found in the image itself (beyond the end, overlapping, ignored): exit status 1. */
static inline unsigned inspect_problems(const struct inspect_image *img)
{
	return img->n_beyond_end + img->n_overlapping + (unsigned)img->n_ignored;
}

struct inspect_mismatch {
	unsigned number; /* partition number, 0 for the table */
	char *field;     /* the manifest's key: "uuid", "fs_uuid", ... */
	char *manifest;  /* the manifest's value as text ("(none)" when absent) */
	char *image;     /* the image's value as text ("(none)" when absent) */
};

struct inspect_report {
	bool present;             /* a manifest.json sits beside the image */
	char *path;               /* its path, when present */
	size_t n_checked;
	unsigned *checked;        /* partition numbers compared (0: the table), ascending */
	size_t n_mismatches;
	struct inspect_mismatch *mismatches;
};

/* Probe the image or block device at PATH. Logs its own error messages. Returns 0, -ENOENT
 * when PATH does not exist, -EINVAL when it is neither a regular file nor a block device,
 * -ENODATA when it has no partition table libblkid accepts, or another -errno. */
int inspect_image(const char *path, struct inspect_image **ret);
void inspect_image_free(struct inspect_image *img);

/* Compare IMG with the manifest.json in the image's directory (none there: present = false).
 * Logs its own errors; -EBADMSG when the manifest is not valid JSON of the expected shape. */
int inspect_compare_manifest(const struct inspect_image *img, struct inspect_report **ret);
/* Compare with an already parsed manifest (for tests and other commands). */
int inspect_compare_json(const struct inspect_image *img, struct json_object *manifest,
			 struct inspect_report **ret);
void inspect_report_free(struct inspect_report *rep);

/* Output: text for people, or one JSON object (numbers as numbers). REP may be NULL. */
void inspect_print_text(const struct inspect_image *img, const struct inspect_report *rep, FILE *f);
int inspect_to_json(const struct inspect_image *img, const struct inspect_report *rep,
		    struct json_object **ret);

/* A copy of LEN bytes of S made printable as described above. NULL on out of memory. */
char *inspect_printable(const char *s, size_t len);

/* A boot loader's files and checks (registry.h): printed after the partitions, or added to the
 * JSON object as "boot": {"loader", "files": {NAME: TEXT}, "checks": [{"check", "ok"}]}. */
struct boot_view;
void boot_view_print(const struct boot_view *v, FILE *f);
int boot_view_json(const struct boot_view *v, struct json_object *o);
/* For the loaders' inspect hooks: a check (ok or a problem), its text made printable;
 * -E2BIG when the view has BOOT_VIEW_CHECKS already. */
int boot_view_check(struct boot_view *v, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A file NAME (a static string) of the loader's, TEXT line by line made printable. */
int boot_view_file(struct boot_view *v, const char *name, const char *text);
/* A check that the root= of CMDLINE (from the loader's file WHAT) is a partition of IMG. */
int boot_view_root(struct boot_view *v, const struct inspect_image *img, const char *what, const char *cmdline);

/* The root= word of a kernel command line, ROOT and its length LEN (without "root="), and the
 * partition of IMG it names, or NULL: -ENOENT no root=, -EOPNOTSUPP a device name (not
 * PARTUUID= or UUID=, not looked up). */
int inspect_cmdline_root(const struct inspect_image *img, const char *cmdline, const char **ret_root,
			 size_t *ret_len, const struct inspect_part **ret_part);

#endif
