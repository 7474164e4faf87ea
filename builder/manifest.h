/* manifest.json and SHA256SUMS: what went into an image, and the checksums of what came out. */
#ifndef PMOVES_MANIFEST_H
#define PMOVES_MANIFEST_H

#include "build.h"

/* Record an output file (relative to tmp_dir) to be checksummed. */
int manifest_add_artifact(struct build *b, const char *file, const char *kind);
int manifest_write(struct build *b);

#endif
