#include "table.h"
#include "util.h"

#include <strings.h>

static const struct table_type *const tables[] = { &table_gpt, &table_mbr };

const struct table_type *table_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++)
		if (STREQ(tables[i]->name, name))
			return tables[i];
	return NULL;
}

const char *table_at(size_t i)
{
	return i < ARRAY_SIZE(tables) ? tables[i]->name : NULL;
}

const char *table_names(void)
{
	static char buf[64];
	if (!*buf)
		for (size_t i = 0; i < ARRAY_SIZE(tables); i++)
			names_add(buf, sizeof(buf), tables[i]->name, true);
	return buf;
}

/* GPT types from the Discoverable Partitions Specification (UAPI group). */
static const struct part_type part_types[] = {
	{ "esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", 0xef },
	{ "xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172", 0xea },
	{ "root", NULL, 0x83 },
	{ "linux", "0fc63daf-8483-4772-8e79-3d69d8477de4", 0x83 },
	{ "home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", 0x83 },
	{ "srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", 0x83 },
	{ "var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", 0x83 },
	{ "swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", 0x82 },
	/* FAT data partition, as the Raspberry Pi firmware wants its boot partition (MBR 0x0c). */
	{ "firmware", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x0c },
};

const struct part_type *part_type_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(part_types); i++)
		if (STREQ(part_types[i].name, name))
			return &part_types[i];
	return NULL;
}

const char *part_type_at(size_t i)
{
	return i < ARRAY_SIZE(part_types) ? part_types[i].name : NULL;
}

const char *part_type_guid(const struct part_type *t, const struct arch *a)
{
	return t->gpt ? t->gpt : a->root_type;
}

const struct part_type *part_type_from_guid(const char *guid, const struct arch **ret_arch)
{
	if (!guid)
		return NULL;
	*ret_arch = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(part_types); i++) {
		if (part_types[i].gpt && strcasecmp(part_types[i].gpt, guid) == 0)
			return &part_types[i];
		if (!part_types[i].gpt && (*ret_arch = arch_by_root_type(guid)))
			return &part_types[i];
	}
	return NULL;
}

const char *part_type_names(void)
{
	static char buf[256];
	if (!*buf)
		for (size_t i = 0; i < ARRAY_SIZE(part_types); i++)
			names_add(buf, sizeof(buf), part_types[i].name, true);
	return buf;
}
