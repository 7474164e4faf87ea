/* The raw image's SHA-256, computed while the image is being made. */
#ifndef PMOVES_IMAGE_HASH_H
#define PMOVES_IMAGE_HASH_H

#include "build.h"

/* After the partition table is written: a thread starts hashing b->image from its first byte up
 * to the first partition whose filesystem is not made yet. */
int image_hash_start(struct build *b);
/* Partition I (plan order) is final: the thread may hash through it. */
void image_hash_part_done(struct build *b, size_t i);
/* Wait for the whole image's digest (every partition must be done), showing progress. */
int image_hash_finish(struct build *b, char out_hex[65]);
/* Stop and free the thread, if any, without a digest (failed or interrupted builds). */
void image_hash_stop(struct build *b);

#endif
