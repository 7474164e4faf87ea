#include "build.h"
/* placeholder */
const struct fs_type fs_vfat = { "vfat", "mkfs.vfat", NULL };
