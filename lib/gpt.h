/* GUID Partition Table on-disk format (UEFI 2.10, chapter 5), and reading, moving the backup
 * and resizing a partition of an existing table: what both the builder (table-gpt.c writes
 * new tables) and pmoves-firstboot (grows the disk on first boot) need. Nothing prints;
 * errors are -errno. */
#ifndef PMOVES_LIB_GPT_H
#define PMOVES_LIB_GPT_H

#include <stdbool.h>
#include <stdint.h>

#define GPT_SECTOR 512u
#define GPT_SIGNATURE "EFI PART"
#define GPT_REVISION 0x00010000u
#define GPT_ENTRIES 128u
#define GPT_ENTRY_SIZE 128u
#define GPT_ARRAY_SECTORS (GPT_ENTRIES * GPT_ENTRY_SIZE / GPT_SECTOR) /* 32 */
#define GPT_FIRST_USABLE (2 + GPT_ARRAY_SECTORS)                      /* LBA 34 */
#define GPT_NAME_UNITS 36u
#define GPT_ATTR_LEGACY_BOOT (UINT64_C(1) << 2)

struct gpt_header {
	char signature[8];
	uint32_t revision;
	uint32_t header_size;
	uint32_t header_crc32;
	uint32_t reserved;
	uint64_t my_lba;
	uint64_t alternate_lba;
	uint64_t first_usable_lba;
	uint64_t last_usable_lba;
	uint8_t disk_guid[16];
	uint64_t partition_entry_lba;
	uint32_t num_partition_entries;
	uint32_t size_of_partition_entry;
	uint32_t partition_entry_array_crc32;
} __attribute__((packed));
_Static_assert(sizeof(struct gpt_header) == 92, "GPT header is 92 bytes");

struct gpt_entry {
	uint8_t type_guid[16];
	uint8_t unique_guid[16];
	uint64_t starting_lba;
	uint64_t ending_lba; /* inclusive */
	uint64_t attributes;
	uint16_t name[GPT_NAME_UNITS]; /* UTF-16LE */
} __attribute__((packed));
_Static_assert(sizeof(struct gpt_entry) == 128, "GPT entry is 128 bytes");

/* The EFI System partition's type, C12A7328-F81F-11D2-BA4B-00A0C93EC93B, in text order (as
 * gpt_part.type_guid holds it). */
extern const uint8_t gpt_type_esp[16];

/* GUIDs: the text (and uuid_parse) order is big-endian; on disk the first three fields are
 * little-endian ("mixed-endian"). The conversion is its own inverse. */
void gpt_guid_swap(const uint8_t in[16], uint8_t out[16]);
bool gpt_guid_is_null(const uint8_t g[16]);
/* Header CRC: over HEADER_SIZE bytes (at most GPT_SECTOR) of SECTOR_BUF with the CRC field
 * zeroed. */
uint32_t gpt_header_crc(const uint8_t *sector_buf, uint32_t header_size);

struct mbr_part;
/* The protective MBR's one record: type 0xEE from LBA 1 over the whole disk, or as much of
 * it as 32 bits can say. End CHS is the last LBA's, or 0xFFFFFF when CHS cannot express it. */
void gpt_pmbr_record(uint64_t last_lba, struct mbr_part *r);

/* GPT read back from a disk, for the first boot's "grow the disk" step. */
struct gpt_part {
	unsigned number;        /* 1-based slot in the entry array (the kernel's partition number) */
	uint64_t start;         /* bytes */
	uint64_t size;          /* bytes */
	uint8_t type_guid[16];  /* big-endian text order, as in table_entry */
	uint8_t uuid[16];
	uint64_t attributes;    /* bit 2: legacy BIOS bootable */
	char name[37];          /* ASCII; other UTF-16 units read as '?' */
};

struct gpt_disk {
	uint8_t disk_guid[16];
	uint64_t first_usable_lba, last_usable_lba;
	uint64_t alternate_lba; /* the backup header's LBA: the disk's last LBA when in place */
	uint32_t num_entries;   /* slots in the entry array */
	unsigned n;             /* used slots, in array order */
	struct gpt_part part[128];
};

/* Read the primary GPT (header and entry array, both CRCs checked). -ENXIO: no GPT signature;
 * -EBADMSG: a damaged or inconsistent table; -E2BIG: more than 128 partitions in use. */
int gpt_read(int fd, struct gpt_disk *ret);

/* Move the backup entry array and header to the end of a disk that is now NEW_DISK_SIZE bytes
 * (a grown image or SD card), update the primary header's last usable LBA and backup pointer
 * and the protective MBR's size, and wipe the old backup header. Syncs between steps so that
 * power loss leaves a valid table. 0 also when already in place; -EINVAL if the size is not
 * a sector multiple or would cut into a partition. */
int gpt_relocate_backup(int fd, uint64_t new_disk_size);

/* Set partition NUMBER's (struct gpt_part.number) size to NEW_SIZE bytes, keeping its start,
 * in both copies of the table (backup first, synced). To fill the disk after
 * gpt_relocate_backup: new_size = (last_usable_lba + 1) * GPT_SECTOR - start. 0 also when it
 * already has that size; -ENOENT: no such partition; -EINVAL: not a sector multiple, past
 * the last usable LBA or over another partition; -EBADMSG: a damaged or mismatched copy. */
int gpt_resize_partition(int fd, unsigned number, uint64_t new_size);

#endif
