/* pmoves-firstboot in images: found for the image's architecture, checked against the image's
 * libraries, installed with its units and the profile's config. */
#ifndef PMOVES_FIRSTBOOT_INSTALL_H
#define PMOVES_FIRSTBOOT_INSTALL_H

#include "arch.h"
#include "profile.h"

#include <json-c/json.h>

/* Directory holding pmoves-firstboot and its units for A: $PMOVES_FIRSTBOOT_DIR/ARCH, else
 * target/ARCH beside the running pmoves-image (a build tree), else the installed one. */
int firstboot_payload_dir(const struct arch *a, char **ret);
/* Libraries pmoves-firstboot loads itself when a step needs them (dlopen: step-efiboot.c), so
 * not in its NEEDED list; the image must have them all the same. NULL-terminated. */
extern const char *const firstboot_loaded_libraries[];
/* Debian packages holding the shared libraries pmoves-firstboot for A needs. */
int firstboot_packages(const struct arch *a, char ***ret);
/* The profile's "firstboot" section checked by pmoves-firstboot's own schema; on a problem
 * -EINVAL and "PROFILE: .firstboot.path: problem" in *ret_error. */
int firstboot_validate(const struct profile *p, char **ret_error);
/* pmoves-firstboot validate [--part] FILE (this machine's build): 0 valid; -EINVAL with
 * "SHOWN: PREFIX.path: problem" in *ret_error (its messages name FILE: they are turned into
 * the path of the config inside SHOWN, a profile's ".firstboot" or an inventory entry's).
 * PART: FILE is a part of a machine's config that the image's completes (a device.json). */
int firstboot_validate_file(const char *shown, const char *prefix, const char *file, bool part, char **ret_error);
/* profile_load() and firstboot_validate(): what build, validate, show and list all take for a
 * valid profile. No pmoves-firstboot built for this machine: -ENOENT, the reason in
 * *ret_error. */
int firstboot_profile_load(const char *name_or_path, struct profile **ret, char **ret_error);
/* pmoves-firstboot's config schema (pmoves-firstboot schema, this machine's build): 0 and the
 * parsed schema in *ret, or a negative errno, logged. */
int firstboot_schema(json_object **ret);
struct build;
/* BIN (a program of ours built for the image, such as pmoves-sandbox) runs on the image being
 * built: its architecture, the libraries it links (in the tree), its glibc. 0, or -errno
 * logged. */
int firstboot_check_binary(struct build *b, const char *bin);
/* The firstboot stage (stages.h): binary, units (enabled), /etc/pmoves/firstboot.json (0600). */

#endif
