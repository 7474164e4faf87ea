/* GUID Partition Table (UEFI 2.10, chapter 5): the writer of new tables (protective MBR,
 * primary and backup headers and entry arrays). The on-disk structs, the reader and the
 * grow functions the first boot needs are in lib/gpt.c. Nothing here prints; errors are -errno. */
#include "gpt.h"
#include "mbr.h"
#include "table.h"
#include "hash.h"
#include "util.h"

#include <endian.h>
#include <stddef.h>

static int name_to_utf16(const char *name, uint16_t out[GPT_NAME_UNITS])
{
	memset(out, 0, GPT_NAME_UNITS * sizeof(uint16_t));
	if (!name)
		return 0;
	size_t len = strlen(name);
	if (len > GPT_NAME_UNITS)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c > 0x7e) /* printable ASCII only */
			return -EINVAL;
		out[i] = htole16(c);
	}
	return 0;
}

static int gpt_validate(const struct table_layout *l)
{
	if (!l || (l->n > 0 && !l->e))
		return -EINVAL;
	if (l->n > GPT_ENTRIES)
		return -EINVAL;
	if (l->disk_size % SECTOR != 0 || l->disk_size > table_gpt.max_disk_size)
		return -EINVAL;
	if (gpt_guid_is_null(l->disk_guid))
		return -EINVAL;
	uint64_t sectors = l->disk_size / SECTOR;
	/* Room for PMBR, both headers, both arrays and at least one usable sector. */
	if (sectors < 2 * (1 + GPT_ARRAY_SECTORS) + 2)
		return -EINVAL;
	uint64_t first = GPT_FIRST_USABLE, last = sectors - 1 - 1 - GPT_ARRAY_SECTORS;
	uint64_t prev_end = first; /* first free LBA after the previous entry */
	for (unsigned i = 0; i < l->n; i++) {
		const struct table_entry *e = &l->e[i];
		uint16_t name[GPT_NAME_UNITS];
		if (e->start % SECTOR != 0 || e->size % SECTOR != 0 || e->size == 0)
			return -EINVAL;
		uint64_t s = e->start / SECTOR, n = e->size / SECTOR;
		if (s < prev_end || s > last || n > last - s + 1)
			return -EINVAL; /* unsorted, overlapping or outside the usable range */
		prev_end = s + n;
		if (gpt_guid_is_null(e->type_guid) || gpt_guid_is_null(e->uuid))
			return -EINVAL; /* a null type marks an unused entry; a null GUID is no GUID */
		for (unsigned j = 0; j < i; j++)
			if (memcmp(l->e[j].uuid, e->uuid, 16) == 0)
				return -EINVAL;
		if (memcmp(e->uuid, l->disk_guid, 16) == 0)
			return -EINVAL;
		if (name_to_utf16(e->name, name) < 0)
			return -EINVAL;
	}
	return 0;
}

static void gpt_fill_entries(const struct table_layout *l, struct gpt_entry *a)
{
	memset(a, 0, GPT_ENTRIES * sizeof(*a));
	for (unsigned i = 0; i < l->n; i++) {
		const struct table_entry *e = &l->e[i];
		gpt_guid_swap(e->type_guid, a[i].type_guid);
		gpt_guid_swap(e->uuid, a[i].unique_guid);
		a[i].starting_lba = htole64(e->start / SECTOR);
		a[i].ending_lba = htole64((e->start + e->size) / SECTOR - 1);
		a[i].attributes = htole64(e->bootable ? GPT_ATTR_LEGACY_BOOT : 0);
		uint16_t name[GPT_NAME_UNITS];
		(void)name_to_utf16(e->name, name); /* checked by gpt_validate */
		memcpy(a[i].name, name, sizeof(name));
	}
}

/* Both headers from the same fields; only my/alternate LBA and the array's LBA differ. */
static void gpt_fill_header(uint8_t sector_buf[SECTOR], uint64_t my_lba, uint64_t alt_lba,
			    uint64_t array_lba, uint64_t last_usable, const uint8_t disk_guid[16],
			    uint32_t array_crc)
{
	struct gpt_header h = {
		.revision = htole32(GPT_REVISION),
		.header_size = htole32(sizeof(struct gpt_header)),
		.my_lba = htole64(my_lba),
		.alternate_lba = htole64(alt_lba),
		.first_usable_lba = htole64(GPT_FIRST_USABLE),
		.last_usable_lba = htole64(last_usable),
		.partition_entry_lba = htole64(array_lba),
		.num_partition_entries = htole32(GPT_ENTRIES),
		.size_of_partition_entry = htole32(GPT_ENTRY_SIZE),
		.partition_entry_array_crc32 = htole32(array_crc),
	};
	memcpy(h.signature, GPT_SIGNATURE, 8);
	gpt_guid_swap(disk_guid, h.disk_guid);
	memset(sector_buf, 0, SECTOR); /* the rest of the header's block is reserved, zero */
	memcpy(sector_buf, &h, sizeof(h));
	uint32_t crc = htole32(gpt_header_crc(sector_buf, sizeof(h)));
	memcpy(sector_buf + offsetof(struct gpt_header, header_crc32), &crc, 4);
}

static int gpt_write(int fd, const struct table_layout *l)
{
	int r = gpt_validate(l);
	if (r < 0)
		return r;

	uint64_t last_lba = l->disk_size / SECTOR - 1;
	uint64_t backup_array_lba = last_lba - GPT_ARRAY_SECTORS;
	uint64_t last_usable = backup_array_lba - 1;

	_cleanup_free_ struct gpt_entry *array = calloc(GPT_ENTRIES, sizeof(*array));
	if (!array)
		return -ENOMEM;
	gpt_fill_entries(l, array);
	uint32_t array_crc = crc32_ieee(0, array, GPT_ENTRIES * sizeof(*array));

	uint8_t primary[SECTOR], backup[SECTOR];
	gpt_fill_header(primary, 1, last_lba, 2, last_usable, l->disk_guid, array_crc);
	gpt_fill_header(backup, last_lba, 1, backup_array_lba, last_usable, l->disk_guid, array_crc);

	/* Only the table's bytes of LBA 0: boot code (bytes 0..439) stays as it is. The UEFI
	 * spec wants the disk signature unused (zero) on a protective MBR. */
	struct mbr mbr = { .signature = htole16(0xaa55) };
	gpt_pmbr_record(last_lba, &mbr.part[0]);
	const size_t mbr_off = offsetof(struct mbr, disk_signature);

	/* Write order (as libfdisk's gpt_write() does it, following UEFI): backup array, backup
	 * header, primary array, primary header, protective MBR. A crash part-way then leaves
	 * either the old primary or a new primary whose backup is already complete, never a
	 * valid new primary pointing at a missing backup. The order is only durable with a
	 * barrier; image files do not need one, gpt_relocate_backup (live disks) syncs. */
	uint64_t array_bytes = GPT_ENTRIES * sizeof(*array);
	if ((r = pwrite_full(fd, array, array_bytes, backup_array_lba * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, backup, SECTOR, last_lba * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, array, array_bytes, 2 * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, primary, SECTOR, 1 * SECTOR)) < 0 ||
	    (r = pwrite_full(fd, (uint8_t *)&mbr + mbr_off, SECTOR - mbr_off, mbr_off)) < 0)
		return r;
	return 0;
}

/* The first usable LBA is 34 by format; head_reserved (1 MiB) is where the planner starts
 * the first partition, for alignment. */
const struct table_type table_gpt = {
	.name = "gpt",
	.max_parts = GPT_ENTRIES,
	.head_reserved = ALIGN_BYTES,
	.tail_reserved = (1 + GPT_ARRAY_SECTORS) * SECTOR,
	.max_disk_size = UINT64_C(1) << 60,
	.write = gpt_write,
};
