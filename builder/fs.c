#include "build.h"
#include "util.h"

extern const struct fs_type fs_ext4, fs_vfat;
static const struct fs_type *const fs_types[] = { &fs_ext4, &fs_vfat };

const struct fs_type *fs_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fs_types); i++)
		if (STREQ(fs_types[i]->name, name))
			return fs_types[i];
	return NULL;
}
