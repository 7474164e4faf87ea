/* The filesystems stage: each partition's filesystem, made by its record (fs-<name>.c). */
#include "build.h"
#include "image-hash.h"
#include "log.h"
#include "stages.h"
#include "util.h"

int stage_filesystems(struct build *b)
{
	for (size_t i = 0; i < b->plan.n; i++) {
		struct plan_part *pp = &b->plan.parts[i];
		if (pp->fs) { /* without one ("none") the partition stays empty */
			double t0 = now_seconds();
			int r = pp->fs->make(b, pp);
			if (r < 0)
				return log_errno(r, "cannot make the %s filesystem of partition '%s'", pp->fs->name,
						 pp->spec->name);
			log_info("filesystems: %s on '%s' in %.2f s", pp->fs->name, pp->spec->name, now_seconds() - t0);
		}
		image_hash_part_done(b, i);
	}
	return 0;
}
