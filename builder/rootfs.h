/* The rootfs cache shared by the rootfs sources. */
#ifndef PMOVES_ROOTFS_H
#define PMOVES_ROOTFS_H

#include "build.h"

/* $XDG_CACHE_HOME/pmoves-image, or ~/.cache/pmoves-image; created if missing. */
int rootfs_cache_dir(char **ret);
/* DIR/KEY.lock, held (flock, exclusive): one build of a cache entry at a time; a second build
 * of the same entry waits, saying so, and then finds it in the cache. rootfs_cache_unlock()
 * removes the file and lets go: the cache keeps no lock files. */
struct cache_lock {
	int fd;
	char *path;
};
int rootfs_cache_lock(const char *dir, const char *key, struct cache_lock *ret);
void rootfs_cache_unlock(struct cache_lock *l);
/* Content address of the profile's rootfs: sha256 of its canonical JSON, the architecture and
 * the packages the builder adds (EXTRA, NULL-terminated, may be NULL). */
int rootfs_cache_key(const struct profile *p, char *const *extra, char ret_hex[65]);
/* JSON text with object keys sorted at every depth. Caller frees. */
char *json_canonical(json_object *o);

#endif
