/* The profile's "artifacts": third-party files pinned by SHA-256. Those with "bake": true are
 * downloaded at build time into the image (/var/cache/pmoves/artifacts/NAME), where
 * pmoves-firstboot's artifacts step finds them and installs them without the network. */
#ifndef PMOVES_ARTIFACTS_H
#define PMOVES_ARTIFACTS_H

#include "build.h"

/* The artifacts stage (stages.h): every baked artifact, from the download cache
 * ($XDG_CACHE_HOME/pmoves-image/artifacts/SHA256) or downloaded and verified into it, copied
 * into the staging tree. */
/* For manifest.json: [{name, url, sha256, kind, version, note, baked, path}] of every artifact
 * of the profile (version and note when given, path when baked). */
json_object *artifacts_manifest(const struct profile *p);

#endif
