/* The plan: the profile's validated layout plus identifiers derived from NAME/SEED. */
#include "build.h"
#include "hash.h"
#include "util.h"

static int plan_fill(const struct profile *p, const char *seed, struct plan *ret)
{
	struct plan *pl = ret;
	pl->table = table_find(p->disk.table);
	pl->n = p->disk.n_parts;
	if (!pl->table || pl->n > PROFILE_MAX_PARTS)
		return -EINVAL;

	for (size_t i = 0; i < pl->n; i++) {
		const struct part_spec *s = &p->disk.parts[i];
		const struct part_type *t = part_type_find(s->type);
		struct plan_part *pp = &pl->parts[i];
		struct table_entry *e = &pl->entries[i];
		char purpose[64];
		if (!t)
			return -EINVAL;

		pp->spec = s;
		pp->fs = fs_find(s->fs);
		pp->entry = e;
		e->start = s->start;
		e->size = s->size;
		e->name = s->name;
		e->bootable = s->bootable;
		e->mbr_type = t->mbr;
		int r = uuid_parse(part_type_guid(t, p->arch), e->type_guid);
		if (r < 0)
			return r;
#define PURPOSE(what) (snprintf(purpose, sizeof(purpose), what ":%s", s->name), purpose)
		if ((r = uuid_derive(seed, PURPOSE("part-uuid"), e->uuid)) < 0 ||
		    (r = uuid_derive(seed, PURPOSE("fs-uuid"), pp->fs_uuid)) < 0 ||
		    (r = uuid_derive(seed, PURPOSE("hash-seed"), pp->hash_seed)) < 0 ||
		    (r = u32_derive(seed, PURPOSE("fat-serial"), &pp->fat_serial)) < 0)
			return r;
#undef PURPOSE
	}
	pl->layout.disk_size = p->disk.size;
	int r = uuid_derive(seed, "disk-guid", pl->layout.disk_guid);
	if (r < 0 || (r = u32_derive(seed, "mbr-disk-id", &pl->layout.disk_id)) < 0)
		return r;
	pl->layout.n = (unsigned)pl->n;
	pl->layout.e = pl->entries;
	return 0;
}

int plan_make(const struct profile *p, const char *seed, struct plan *ret)
{
	memset(ret, 0, sizeof(*ret));
	int r = plan_fill(p, seed, ret);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}
