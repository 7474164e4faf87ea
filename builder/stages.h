/* The stages of a build, in the order build-run.c runs them (its stages[] table). Each reads only
 * what the stages before it produced and logs its own errors. */
#ifndef PMOVES_STAGES_H
#define PMOVES_STAGES_H

#include "build.h"

int stage_rootfs(struct build *b);      /* rootfs.c: b->rootfs_tar, and the epoch from it */
int stage_tree(struct build *b);        /* tree.c: the staging tree: rootfs, overlays, generated
					 * files; b->packages */
int stage_firstboot(struct build *b);   /* firstboot-install.c: pmoves-firstboot, its units and
					 * the profile's config */
int stage_artifacts(struct build *b);   /* artifacts.c: baked artifacts into the tree */
int stage_ollama(struct build *b);      /* ollama-bake.c: Ollama models from a local store into
					 * the tree */
int stage_pinokio(struct build *b);     /* pinokio-apps.c: Pinokio launchers into the tree */
int stage_sandbox(struct build *b);     /* sandbox-bake.c: a sandbox guest and pmoves-sandbox into
					 * the tree */
int stage_boot(struct build *b);        /* boot.c: b->kernel_version, the boot loader's files */
int stage_split(struct build *b);       /* tree.c: each mounted partition's files out of the tree */
int stage_size(struct build *b);        /* plan.c: "size": "auto": the fill partition and the disk
					 * sized from the partition's files */
int stage_disk(struct build *b);        /* disk.c: the image file and its partition table */
int stage_filesystems(struct build *b); /* fs.c: every partition's filesystem into the image */
int stage_outputs(struct build *b);     /* out.c: the profile's outputs */
int stage_manifest(struct build *b);    /* manifest.c: manifest.json and SHA256SUMS */

#endif
