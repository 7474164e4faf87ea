/* The raw disk image: the build's own NAME.img, sparse, flushed and listed with its checksum,
 * which image-hash.c has been computing since the partition table was written. */
#include "build.h"
#include "log.h"
#include "manifest.h"
#include "util.h"

#include <fcntl.h>

static int raw_write(struct build *b, const struct output_ctx *o)
{
	_cleanup_close_ int fd = open(b->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return log_errno(-errno, "cannot flush '%s'", b->image);
	_cleanup_free_ char *name = NULL;
	if (asprintf(&name, "%s.img", b->p->name) < 0)
		return -ENOMEM;
	return manifest_add_artifact(b, name, "raw", o->digest);
}

const struct output_type out_raw = {
	.name = "raw",
	.flags = OUT_DIGEST | OUT_IS_IMAGE,
	.write = raw_write,
};
