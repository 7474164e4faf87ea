#include "build.h"
/* placeholder */
const struct rootfs_source rootfs_tarball = { "tarball", NULL };
