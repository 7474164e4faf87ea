#include "build.h"
#include "image-hash.h"
#include "log.h"
#include "util.h"

extern const struct fs_type fs_ext4, fs_vfat;
static const struct fs_type *const fs_types[] = { &fs_ext4, &fs_vfat };

const struct fs_type *fs_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fs_types); i++)
		if (STREQ(fs_types[i]->name, name))
			return fs_types[i];
	return NULL;
}

int fs_make_all(struct build *b)
{
	int r = tree_split(b);
	if (r < 0)
		return r;
	for (size_t i = 0; i < b->plan.n; i++) {
		struct plan_part *pp = &b->plan.parts[i];
		const struct fs_type *t = fs_find(pp->spec->fs);
		if (!t)
			continue; /* "none": the partition stays empty */
		double t0 = now_seconds();
		r = t->make(b, pp);
		if (r < 0)
			return log_errno(r, "cannot make the %s filesystem of partition '%s'", t->name, pp->spec->name);
		log_info("filesystems: %s on '%s' in %.2f s", t->name, pp->spec->name, now_seconds() - t0);
		image_hash_part_done(b, i);
	}
	return 0;
}
