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

/* GPT types from the Discoverable Partitions Specification (UAPI group). */
static const struct part_type part_types[] = {
	{ "esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", 0xef },
	{ "xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172", "bc13c2ff-59e6-4262-a352-b275fd6f7172", 0xea },
	{ "root", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "b921b045-1df0-41c3-af44-4c6f280d3fae", 0x83 },
	{ "linux", "0fc63daf-8483-4772-8e79-3d69d8477de4", "0fc63daf-8483-4772-8e79-3d69d8477de4", 0x83 },
	{ "home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", "933ac7e1-2eb4-4f13-b844-0e14e2aef915", 0x83 },
	{ "srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8", 0x83 },
	{ "var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", 0x83 },
	{ "swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", 0x82 },
	/* FAT data partition, as the Raspberry Pi firmware wants its boot partition (MBR 0x0c). */
	{ "firmware", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", 0x0c },
};

const struct part_type *part_type_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(part_types); i++)
		if (STREQ(part_types[i].name, name))
			return &part_types[i];
	return NULL;
}

const struct part_type *part_type_from_guid(const char *guid)
{
	if (!guid)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(part_types); i++)
		if (strcasecmp(part_types[i].gpt_x86_64, guid) == 0 ||
		    strcasecmp(part_types[i].gpt_aarch64, guid) == 0)
			return &part_types[i];
	return NULL;
}

const char *part_type_names(void)
{
	return "esp, xbootldr, root, linux, home, srv, var, swap, firmware";
}
