/* A provisioning step: one file step-<name>.c exporting one record, listed once in fb-steps.c.
 *
 * The engine calls, for a step that is enabled and configured:
 *   check  -> 1: the effect is already there (the step ends "skipped", "already done"), or
 *             there is nothing for the step to do here (*ret_msg says why: "not a UEFI machine");
 *             0: not yet; -errno: cannot tell (the step fails, message in *ret_msg).
 *   apply  -> OK, PENDING (something it needs, e.g. the network, is missing: retry on a later
 *             run), REBOOT (done, takes effect after a reboot: the engine saves state and
 *             reboots, the next run verifies), DEGRADED (done and working, but with less than
 *             the config asks for, which no later run can change, e.g. no GPU: the step's state
 *             is "degraded", *ret_msg says what is missing, and the run ends degraded),
 *             FAILED. May set *ret_msg (malloc'd).
 *   verify -> after apply OK, and on the run after a REBOOT: 0 the effect is there, 1 there but
 *             degraded (as apply's DEGRADED), -errno not (the step fails). NULL: apply's result
 *             is trusted.
 * check must be cheap, read-only and correct after a crash at any point of apply: it is how
 * the engine tells, after a power cut, whether an interrupted apply finished.
 * Messages never contain secret values: they are printed and kept in status.json. */
#ifndef PMOVES_FB_STEP_H
#define PMOVES_FB_STEP_H

#include "fb-valid.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

enum fb_result { FB_OK, FB_PENDING, FB_REBOOT, FB_FAILED, FB_DEGRADED };

/* _cleanup_(fb_json_putp) json_object *o */
static inline void fb_json_putp(json_object **o)
{
	json_object_put(*o);
}

/* The string at KEY of object O (O may be NULL), or DEF. */
static inline const char *fb_json_str(json_object *o, const char *key, const char *def)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : def;
}

/* O (may be NULL) has KEY. */
static inline bool fb_json_has(json_object *o, const char *key)
{
	return o && json_object_object_get_ex(o, key, NULL);
}

/* The integer at KEY of object O (O may be NULL), or DEF. */
static inline int64_t fb_json_int(json_object *o, const char *key, int64_t def)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : def;
}

struct fb_ctx {
	json_object *config; /* the whole merged, valid config */
};

struct fb_step {
	const char *name;       /* [a-z0-9-]: used in console lines, state.json, config "steps" */
	const char *config_key; /* the top-level config section passed as SECTION, or NULL */
	/* The section's schema: its type, its fields, validator and limits (the key is
	 * config_key). Steps that read one section (the proxmox ones) point at the same. The
	 * top-level schema is made of these and the keys that are no step's (fb-config.c). */
	const struct fb_field *schema;
	bool needs_config;      /* "skipped" ("not configured") when the section is absent */
	bool required;          /* default of steps.<name>.required: a failure stops the run */
	bool dry_run_apply;     /* every change apply makes goes through fb_write() and fb_run():
				 * run --dry-run calls apply to print them (firstboot.h) */
	int (*check)(const struct fb_ctx *c, json_object *section, char **ret_msg);
	enum fb_result (*apply)(const struct fb_ctx *c, json_object *section, char **ret_msg);
	int (*verify)(const struct fb_ctx *c, json_object *section, char **ret_msg);
};

/* fb-steps.c: the steps in the order they run. */
extern const struct fb_step *const fb_steps[];
extern const size_t fb_steps_count;

/* Block devices, for growfs and efiboot (step-growfs.c). Paths are as on the target. */
struct fb_blockdev {
	char *disk;      /* "/dev/vda", or an image file */
	char *part_dev;  /* "/dev/vda2", or NULL (a whole disk or an image file was given) */
	unsigned partno; /* 1-based; 0: not a partition */
};
void fb_blockdev_done(struct fb_blockdev *d);
/* MAJ:MIN through ROOT/sys/dev/block: name, partition number, disk. */
int fb_blockdev_from_devnum(unsigned maj, unsigned min, struct fb_blockdev *ret, char **ret_msg);
/* A block device node or an image file (the disk itself). */
int fb_blockdev_of_path(const char *dev, struct fb_blockdev *ret, char **ret_msg);
/* The device mounted on MOUNTPOINT (ROOT/proc/self/mountinfo): 1, or 0 when there is none
 * (no mountinfo, nothing mounted there, or a filesystem without a device). */
int fb_blockdev_of_mount(const char *mountpoint, struct fb_blockdev *ret, char **ret_msg);
/* D's disk opened with FLAGS (O_RDONLY, O_RDWR): an fd, or -errno with *ret_msg set. Checked on
 * the fd it returns: a block device or a regular file, never a FIFO waited on (whatever the
 * name has become since it was looked up). */
int fb_blockdev_open(const struct fb_blockdev *d, int flags, char **ret_msg);

#endif
