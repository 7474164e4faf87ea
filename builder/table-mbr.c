#include "table.h"
/* placeholder */
const struct table_type table_mbr = { "mbr", 4, 1 << 20, 0, 0xffffffffull * 512, 0 };
