/* The outputs stage: each of the profile's outputs written by its record (out-<name>.c). */
#include "build.h"
#include "image-hash.h"
#include "log.h"
#include "stages.h"
#include "util.h"

bool build_outputs_want(const struct build *b, unsigned flag)
{
	for (size_t i = 0; b->p->outputs && b->p->outputs[i]; i++) {
		const struct output_type *o = output_find(b->p->outputs[i]);
		if (o && (o->flags & flag))
			return true;
	}
	return false;
}

int stage_outputs(struct build *b)
{
	char digest[65] = "";
	struct output_ctx ctx = { .digest = NULL };
	for (size_t i = 0; b->p->outputs && b->p->outputs[i]; i++) {
		const struct output_type *o = output_find(b->p->outputs[i]);
		int r;
		if ((o->flags & OUT_DIGEST) && !ctx.digest) {
			/* Computed since the disk stage (image-hash.c): waited for once. */
			r = image_hash_finish(b, digest);
			if (r < 0)
				return r;
			ctx.digest = digest;
		}
		double t0 = now_seconds();
		r = o->write(b, &ctx);
		if (r < 0)
			return log_errno(r, "cannot write output '%s'", o->name);
		log_info("outputs: %s in %.2f s", o->name, now_seconds() - t0);
	}
	/* A profile without "raw" gets what it names and nothing more. */
	if (!build_outputs_want(b, OUT_IS_IMAGE) && unlink(b->image) < 0)
		return log_errno(-errno, "cannot remove '%s'", b->image);
	return 0;
}
