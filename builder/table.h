/* Partition tables: one file per type (table-gpt.c, table-mbr.c), listed in table.c. */
#ifndef PMOVES_TABLE_H
#define PMOVES_TABLE_H

#include "arch.h"
#include "gpt.h"

#include <stdbool.h>
#include <stdint.h>

#define SECTOR GPT_SECTOR
#define ALIGN_BYTES (1024u * 1024u) /* partitions start on 1 MiB boundaries */

struct table_entry {
	uint64_t start;         /* bytes, multiple of SECTOR */
	uint64_t size;          /* bytes, multiple of SECTOR */
	uint8_t type_guid[16];  /* GPT type, big-endian text order as uuid_parse() gives */
	uint8_t uuid[16];       /* GPT unique partition GUID, same order */
	uint8_t mbr_type;       /* MBR partition type byte */
	bool bootable;          /* MBR active flag; GPT legacy BIOS bootable attribute */
	const char *name;       /* GPT name, ASCII, at most 36 chars */
};

struct table_layout {
	uint64_t disk_size;     /* bytes, multiple of SECTOR */
	uint8_t disk_guid[16];  /* GPT */
	uint32_t disk_id;       /* MBR disk signature */
	unsigned n;
	const struct table_entry *e;
};

struct table_type {
	const char *name;
	unsigned max_parts;
	uint64_t head_reserved;  /* bytes at the start that partitions may not use */
	uint64_t tail_reserved;  /* bytes at the end that partitions may not use */
	uint64_t max_disk_size;  /* bytes */
	bool type_byte;          /* partitions are typed by an MBR type byte (else by a GUID) */
	/* Write the table into FD (a file at least disk_size bytes long). Touches only the
	 * table's own sectors. */
	int (*write)(int fd, const struct table_layout *l);
};

extern const struct table_type table_gpt, table_mbr;
const struct table_type *table_find(const char *name);
const char *table_names(void); /* "'gpt', 'mbr'", for messages */
const char *table_at(size_t i); /* the I-th table's name, NULL past the last */

/* Partition types by name: DPS GPT type GUIDs and MBR type bytes. Returns NULL for an
 * unknown name. */
struct part_type {
	const char *name;
	const char *gpt; /* GUID text; NULL: the architecture's root type (arch.h) */
	uint8_t mbr;
};
const struct part_type *part_type_find(const char *name);
/* The GPT type GUID of T on A, as text. */
const char *part_type_guid(const struct part_type *t, const struct arch *a);
/* The reverse: the type whose GPT GUID (on any architecture) is GUID, compared
 * case-insensitively, and in *ret_arch the architecture when the type depends on it (NULL
 * otherwise). NULL when the GUID is not one of ours. */
const struct part_type *part_type_from_guid(const char *guid, const struct arch **ret_arch);
/* "'esp', 'xbootldr', 'root', ...", for messages. */
const char *part_type_names(void);
const char *part_type_at(size_t i); /* the I-th type's name, NULL past the last */

/* gpt_read, gpt_relocate_backup, gpt_resize_partition and struct gpt_disk: lib/gpt.h. */

#endif
