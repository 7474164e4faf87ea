/* Profiles: JSON files describing one kind of machine, resolved and validated strictly. */
#ifndef PMOVES_PROFILE_H
#define PMOVES_PROFILE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

struct arch;

#define PROFILE_MAX_PARTS 16
#define PROFILE_MAX_EXTENDS 16 /* depth of an "extends" chain */
/* "disk": {"size": "auto"} without a "margin": room for the first boot's state, logs and
 * packages before growfs, and for an image used at its own size (docs/profiles.md). */
#define PROFILE_AUTO_MARGIN "256M"

struct part_spec {
	const char *name;  /* GPT partition name: [A-Za-z0-9_-], at most 36 chars */
	const char *type;  /* a name from part_types[] in table.c: esp, root, linux, swap, ... */
	const char *fs;    /* a filesystem (registry.h), or "none" */
	const char *mount; /* absolute path in the target, or NULL */
	const char *label; /* filesystem label; defaults to name */
	bool fill;         /* takes the rest of the disk */
	bool bootable;     /* MBR active flag */
	/* Final layout, in bytes, filled in by validation: */
	uint64_t start;
	uint64_t size;
};

struct profile {
	json_object *json;  /* the resolved profile: after extends and defaults; owns the strings below */
	char *path;         /* the file it came from */
	char *guest_path;   /* "sandbox_guest" resolved: the guest profile's file, or NULL */
	const char *name;
	const char *description;
	const struct arch *arch; /* arch.h */

	struct {
		const char *source;  /* a rootfs source (registry.h); the other keys are its own */
		const char *suite, *mirror, *variant;
		const char **components; /* NULL-terminated, pointers into json */
		const char **packages;
		const char *path, *url, *sha256; /* tarball and directory sources */
		json_object *json;   /* the rootfs section: its canonical text keys the cache */
	} rootfs;

	struct {
		const char *table;   /* "gpt" or "mbr" */
		uint64_t size;       /* bytes; 0 with auto_size: known once the content is (plan.c) */
		bool auto_size;      /* "size": "auto": the "fill" partition is sized from its files */
		uint64_t margin;     /* with auto_size: bytes left free on it beyond its files */
		size_t n_parts;
		struct part_spec parts[PROFILE_MAX_PARTS];
	} disk;

	struct {
		const char *loader;  /* a boot loader (registry.h) */
		const char *cmdline;
		json_object *json;   /* the boot section: "config" is the loader's (its record checks it) */
	} boot;

	const char **overlays;
	const char **outputs;
	json_object *firstboot; /* may be NULL */
	const char *hostname;   /* firstboot.hostname, or the profile name */
};

/* Where profiles, overlays, npm trees (npm-trees.h) and the fleet's Pinokio scripts live:
 * $PMOVES_DATADIR, else ./profiles (./overlays, ...) beside the current directory when it
 * exists, else the installed data directory. */
const char *profile_dir(void);
const char *overlay_dir(void);
const char *npm_dir(void);
const char *pinokio_dir(void);

/* Load NAME (looked up in profile_dir()) or FILE (a path containing '/' or ending in .json),
 * resolve "extends", apply defaults and validate everything. On a problem returns -EINVAL and a
 * message "FILE: .json.path: what is wrong" in *ret_error (caller frees). */
int profile_load(const char *name_or_path, struct profile **ret, char **ret_error);
void profile_free(struct profile *p);

/* Names of the profiles in profile_dir(), sorted. */
int profile_list(char ***ret_names);

/* Partition that is mounted at MOUNT, or NULL. */
const struct part_spec *profile_part_by_mount(const struct profile *p, const char *mount);
/* The first partition of TYPE ("esp"), or NULL. */
const struct part_spec *profile_part_by_type(const struct profile *p, const char *type);

#endif
