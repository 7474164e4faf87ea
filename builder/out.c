#include "build.h"
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
