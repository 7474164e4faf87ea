/* The rootfs cache shared by the rootfs sources. */
#ifndef PMOVES_ROOTFS_H
#define PMOVES_ROOTFS_H

#include "build.h"

/* $XDG_CACHE_HOME/pmoves-image, or ~/.cache/pmoves-image; created if missing. */
int rootfs_cache_dir(char **ret);
/* Content address of the profile's rootfs: sha256 of its canonical JSON and architecture. */
int rootfs_cache_key(const struct profile *p, char ret_hex[65]);
/* JSON text with object keys sorted at every depth. Caller frees. */
char *json_canonical(json_object *o);

#endif
