#include "build.h"
#include "log.h"
#include "util.h"

extern const struct output_type out_raw;
static const struct output_type *const output_types[] = { &out_raw };

const struct output_type *output_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(output_types); i++)
		if (STREQ(output_types[i]->name, name))
			return output_types[i];
	return NULL;
}

int outputs_write(struct build *b)
{
	for (size_t i = 0; b->p->outputs && b->p->outputs[i]; i++) {
		const struct output_type *o = output_find(b->p->outputs[i]);
		int r = o->write(b);
		if (r < 0)
			return log_errno(r, "cannot write output '%s'", o->name);
	}
	return 0;
}
