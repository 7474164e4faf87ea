/* The rootfs cache shared by the rootfs sources. */
#ifndef PMOVES_ROOTFS_H
#define PMOVES_ROOTFS_H

#include "build.h"

/* $XDG_CACHE_HOME/pmoves-image, or ~/.cache/pmoves-image; created if missing. */
int rootfs_cache_dir(char **ret);
/* Content address of the profile's rootfs: sha256 of its canonical JSON, the architecture and
 * the packages the builder adds (EXTRA, NULL-terminated, may be NULL). */
int rootfs_cache_key(const struct profile *p, char *const *extra, char ret_hex[65]);
/* JSON text with object keys sorted at every depth. Caller frees. */
char *json_canonical(json_object *o);

#endif
