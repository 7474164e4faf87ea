/* The disk stage: the image file, sized, with its partition table (table-<name>.c). */
#include "build.h"
#include "image-hash.h"
#include "log.h"
#include "stages.h"
#include "util.h"

#include <fcntl.h>

int stage_disk(struct build *b)
{
	/* 0600: the image holds the profile's secrets (/etc/pmoves/firstboot.json). */
	_cleanup_close_ int fd = open(b->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_errno(-errno, "cannot create '%s'", b->image);
	if (ftruncate(fd, (off_t)b->plan.layout.disk_size) < 0)
		return log_errno(-errno, "cannot size '%s'", b->image);
	int r = b->plan.table->write(fd, &b->plan.layout);
	if (r < 0)
		return log_errno(r, "cannot write the %s partition table", b->plan.table->name);
	/* An output wants the image's checksum: it starts now, on the other core (image-hash.c). */
	if (build_outputs_want(b, OUT_DIGEST))
		return image_hash_start(b);
	return 0;
}
