#include "build.h"
/* placeholder */
const struct output_type out_raw = { "raw", NULL };
