/* pmoves-firstboot in images: found for the image's architecture, checked against the image's
 * libraries, installed with its units and the profile's config. */
#ifndef PMOVES_FIRSTBOOT_INSTALL_H
#define PMOVES_FIRSTBOOT_INSTALL_H

#include "build.h"

/* Directory holding pmoves-firstboot and its units for ARCH: $PMOVES_FIRSTBOOT_DIR/ARCH, else
 * target/ARCH beside the running pmoves-image (a build tree), else the installed one. */
int firstboot_payload_dir(const char *arch, char **ret);
/* Debian packages holding the shared libraries pmoves-firstboot for ARCH needs. */
int firstboot_packages(const char *arch, char ***ret);
/* The profile's "firstboot" section checked by pmoves-firstboot's own schema; on a problem
 * -EINVAL and "PROFILE: .firstboot.path: problem" in *ret_error. */
int firstboot_validate(const struct profile *p, char **ret_error);
/* Tree stage: binary, units (enabled) and /etc/pmoves/firstboot.json (0600). */
int firstboot_install(struct build *b);

#endif
