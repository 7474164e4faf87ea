#include "table.h"
/* placeholder */
const struct table_type table_gpt = { "gpt", 128, 1 << 20, 33 * 512, 1ull << 60, 0 };
