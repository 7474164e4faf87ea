/* MBR ("dos") partition table: up to four primary partitions, 32-bit LBAs. The Raspberry Pi
 * firmware reads only this. Nothing here prints; errors are -errno. */
#include "mbr.h"
#include "table.h"
#include "util.h"

#include <endian.h>
#include <stddef.h>

static int mbr_validate(const struct table_layout *l)
{
	if (!l || (l->n > 0 && !l->e))
		return -EINVAL;
	if (l->n > table_mbr.max_parts)
		return -EINVAL;
	/* A DOS label cannot describe more than 2^32 - 1 sectors; fdisk refuses such disks too. */
	if (l->disk_size % SECTOR != 0 || l->disk_size < 2 * SECTOR ||
	    l->disk_size > table_mbr.max_disk_size)
		return -EINVAL;
	uint64_t sectors = l->disk_size / SECTOR;
	uint64_t prev_end = 1; /* LBA 0 is the MBR itself */
	for (unsigned i = 0; i < l->n; i++) {
		const struct table_entry *e = &l->e[i];
		if (e->start % SECTOR != 0 || e->size % SECTOR != 0 || e->size == 0)
			return -EINVAL;
		uint64_t s = e->start / SECTOR, n = e->size / SECTOR;
		if (s < prev_end || s >= sectors || n > sectors - s)
			return -EINVAL; /* unsorted, overlapping or past the end of the disk */
		if (s > UINT32_MAX || n > UINT32_MAX)
			return -EINVAL;
		prev_end = s + n;
		/* 0x00 marks an empty slot, 0xEE a GPT's protective record, 0x05/0x0f/0x85 an
		 * extended partition we do not write the chain for. */
		if (e->mbr_type == 0x00 || e->mbr_type == 0xee || e->mbr_type == 0x05 ||
		    e->mbr_type == 0x0f || e->mbr_type == 0x85)
			return -EINVAL;
	}
	return 0;
}

static int mbr_write(int fd, const struct table_layout *l)
{
	int r = mbr_validate(l);
	if (r < 0)
		return r;

	struct mbr m = {
		.disk_signature = htole32(l->disk_id),
		.signature = htole16(0xaa55),
	};
	for (unsigned i = 0; i < l->n; i++) {
		const struct table_entry *e = &l->e[i];
		uint64_t s = e->start / SECTOR, n = e->size / SECTOR;
		struct mbr_part *p = &m.part[i];
		p->status = e->bootable ? 0x80 : 0x00;
		(void)mbr_lba_chs(s, p->first_chs);
		p->type = e->mbr_type;
		(void)mbr_lba_chs(s + n - 1, p->last_chs);
		p->first_lba = htole32((uint32_t)s);
		p->sectors = htole32((uint32_t)n);
	}

	/* From the disk signature on: the boot code area (bytes 0..439) is left as it is, so a
	 * boot loader put there before keeps working. */
	const size_t off = offsetof(struct mbr, disk_signature);
	const uint8_t *p = (const uint8_t *)&m + off;
	size_t len = sizeof(m) - off;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)(sizeof(m) - len));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w, len -= (size_t)w;
	}
	return 0;
}

/* LBA 1 on is usable by format; head_reserved (1 MiB) is where the planner starts the first
 * partition, for alignment. */
const struct table_type table_mbr = {
	.name = "mbr",
	.max_parts = 4,
	.head_reserved = ALIGN_BYTES,
	.tail_reserved = 0,
	.max_disk_size = UINT64_C(0xffffffff) * SECTOR,
	.type_byte = true,
	.write = mbr_write,
};
