#include "build.h"
#include "util.h"

extern const struct rootfs_source rootfs_mmdebstrap, rootfs_tarball;
static const struct rootfs_source *const rootfs_sources[] = { &rootfs_mmdebstrap, &rootfs_tarball };

const struct rootfs_source *rootfs_source_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rootfs_sources); i++)
		if (STREQ(rootfs_sources[i]->name, name))
			return rootfs_sources[i];
	return NULL;
}
