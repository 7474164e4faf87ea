/* rootfs.npm: Node packages installed into the root filesystem while mmdebstrap builds it, by
 * the image's own npm and Node (a native module is built for the image's Node, not the
 * host's). Each is a directory npm/NAME/ of the data directory holding package.json and a
 * committed package-lock.json: `npm ci` installs exactly what the lockfile pins, every package
 * checked against its integrity hash. The lockfiles are part of the rootfs cache key. */
#ifndef PMOVES_NPM_TREES_H
#define PMOVES_NPM_TREES_H

#include "registry.h"

struct build;

#define NPM_TREES_MAX 8

/* The profile's rootfs.npm, checked: the directories, the lockfiles, their pins, the prefixes,
 * and the packages npm needs (mmdebstrap's check calls it). */
int npm_trees_check(const struct profile *p, struct problems *pr);

/* For the rootfs cache key: "npm NAME PREFIX SHA256(package.json) SHA256(lockfile)" lines, ""
 * when the profile has none (malloc'd, NULL on failure). */
char *npm_trees_key(const struct profile *p);

/* For the build: each tree's package.json and lockfile copied into DIR (mmdebstrap's hooks read
 * them there), and the environment entries for the hook: *RET_ENV "PMOVES_NPM=I:PREFIX:PKG,..."
 * and *RET_DIR "PMOVES_NPM_DIR=DIR/npm" (both NULL when the profile has none). */
int npm_trees_prepare(const struct profile *p, const char *dir, char **ret_env, char **ret_dir);

/* mmdebstrap's hook installing them (with PMOVES_NPM and PMOVES_NPM_DIR set). */
extern const char *const npm_trees_hook;

/* manifest.json's "npm": each tree with its lockfile's SHA-256 and every dependency that
 * package.json names, with the version and integrity the lockfile pins. NULL when none. */
json_object *npm_trees_manifest(const struct profile *p);

#endif
