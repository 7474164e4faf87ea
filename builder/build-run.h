/* Entry point of a whole build, used by `pmoves-image build` and the tests. */
#ifndef PMOVES_BUILD_RUN_H
#define PMOVES_BUILD_RUN_H

#include "profile.h"

#include <stdbool.h>

struct build_opts {
	const char *out_base; /* images/ */
	const char *seed;     /* NULL: the profile name */
	bool refresh;
};

/* Returns an exit status (cmd.h): 0, EXIT_FAIL, EXIT_MISSING or EXIT_INTERRUPTED. */
int build_profile(const struct profile *p, const struct build_opts *o);

#endif
