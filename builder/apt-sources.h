/* rootfs.apt_sources: apt repositories beyond the Debian mirror that mmdebstrap installs from
 * (NVIDIA's Jetson repositories, a vendor's), each pinned: its signing key by fingerprint, its
 * InRelease by SHA-256, which fixes every package version the repository lists. */
#ifndef PMOVES_APT_SOURCES_H
#define PMOVES_APT_SOURCES_H

#include "registry.h"

struct build;

#define APT_SOURCES_MAX 8

/* The profile's rootfs.apt_sources, checked (mmdebstrap's check calls it). */
int apt_sources_check(const struct profile *p, struct problems *pr);

/* For the build: each source's key read and its fingerprint checked (gpg), and a deb822
 * sources file written into DIR with the key inline (Signed-By), so apt trusts that key for
 * that repository only, during the build and in the image. *RET_FILES: their paths (NULL
 * when the profile has none), for mmdebstrap's mirror arguments; *RET_PINS: the
 * "PMOVES_APT_PINS=NAME:SHA256 ..." environment entry for the pin hook (NULL when none). */
int apt_sources_prepare(struct build *b, const char *dir, char ***ret_files, char **ret_pins);

/* On a cache hit: the sources the cached root filesystem was built from, named in the log as
 * a build names them. */
void apt_sources_log_cached(const struct profile *p);

/* mmdebstrap hooks for them (with PMOVES_APT_PINS set): the pins checked before anything is
 * installed, and the sources of local mirrors (copy://) left out of the image. */
extern const char *const apt_sources_hooks[2];

#endif
