/* The plan: the profile's validated layout plus identifiers derived from NAME/SEED. */
#include "build.h"
#include "hash.h"
#include "log.h"
#include "stages.h"
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

int plan_set_auto_size(struct plan *pl, struct plan_part *pp, uint64_t size)
{
	const struct table_type *t = pl->table;
	uint64_t end, disk;
	if (size == 0 || !is_aligned(size, ALIGN_BYTES) || __builtin_add_overflow(pp->entry->start, size, &end) ||
	    __builtin_add_overflow(end, t->tail_reserved + ALIGN_BYTES - 1, &disk))
		return -EFBIG;
	disk = disk / ALIGN_BYTES * ALIGN_BYTES;
	if (disk > t->max_disk_size)
		return -EFBIG;
	pp->entry->size = size;
	pp->grows = true;
	pl->layout.disk_size = disk;
	return 0;
}

/* "size": "auto": once each partition's files are split out of the tree, the "fill" partition's
 * filesystem record says how large it must be to hold them with the profile's margin free,
 * and the disk ends after it. The disk stage then writes the table. */
int stage_size(struct build *b)
{
	const struct profile *p = b->p;
	if (!p->disk.auto_size)
		return 0;
	struct plan_part *pp = NULL;
	for (size_t i = 0; i < b->plan.n && !pp; i++)
		if (b->plan.parts[i].spec->fill)
			pp = &b->plan.parts[i];
	if (!pp || !pp->fs || !pp->fs->auto_size)
		return -EINVAL; /* the profile's validation makes sure of both */
	uint64_t size = 0;
	int r = pp->fs->auto_size(b, pp, p->disk.margin, &size);
	if (r < 0)
		return log_errno(r, "cannot size partition '%s' from its files", pp->spec->name);
	char a[24], m[24], d[24];
	format_size_human(size, a);
	r = plan_set_auto_size(&b->plan, pp, size);
	if (r < 0) {
		format_size(b->plan.table->max_disk_size, d);
		log_error("partition '%s' needs %s for its files, more than a '%s' disk holds (%s)", pp->spec->name, a,
			  b->plan.table->name, d);
		return r;
	}
	format_size_human(p->disk.margin, m);
	format_size_human(b->plan.layout.disk_size, d);
	log_info("size: partition '%s' is %s (its files, the %s overhead and a margin of %s), the disk %s",
		 pp->spec->name, a, pp->fs->name, m, d);
	return 0;
}
