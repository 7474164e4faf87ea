/* manifest.json and SHA256SUMS: what went into an image, and the checksums of what came out. */
#ifndef PMOVES_MANIFEST_H
#define PMOVES_MANIFEST_H

#include "build.h"

/* Record an output file (relative to tmp_dir) with its SHA-256 (hex), or NULL to have it
 * checksummed when the manifest is written. */
int manifest_add_artifact(struct build *b, const char *file, const char *kind, const char *sha256);

#endif
