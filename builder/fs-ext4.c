#include "build.h"
/* placeholder */
const struct fs_type fs_ext4 = { "ext4", "mke2fs", NULL };
