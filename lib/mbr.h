/* The MBR sector as it is on disk: used by the MBR table, by GPT's protective MBR, and by the
 * first boot's "grow the last partition" step. */
#ifndef PMOVES_LIB_MBR_H
#define PMOVES_LIB_MBR_H

#include <stdbool.h>
#include <stdint.h>

struct mbr_part {
	uint8_t status; /* 0x80: active (bootable) */
	uint8_t first_chs[3];
	uint8_t type;
	uint8_t last_chs[3];
	uint32_t first_lba;
	uint32_t sectors;
} __attribute__((packed));
_Static_assert(sizeof(struct mbr_part) == 16, "MBR partition record is 16 bytes");

struct mbr {
	uint8_t boot_code[440];
	uint32_t disk_signature;
	uint16_t copy_protect; /* 0x0000, or 0x5a5a for "copy protected" */
	struct mbr_part part[4];
	uint16_t signature; /* 0xaa55 little-endian: bytes 0x55 0xaa */
} __attribute__((packed));
_Static_assert(sizeof(struct mbr) == 512, "MBR is 512 bytes");

/* CHS address of LBA with the 255 heads / 63 sectors geometry, as the 3 bytes of a partition
 * record; past cylinder 1023 it saturates at 1023/254/63 as fdisk does and returns false.
 * Used by both partition table writers and by pmoves-firstboot. */
static inline bool mbr_lba_chs(uint64_t lba, uint8_t ret_chs[3])
{
	uint64_t c = lba / (255u * 63u);
	unsigned h = (unsigned)(lba / 63u % 255u);
	unsigned s = (unsigned)(lba % 63u) + 1;
	bool exact = c <= 1023u;
	if (!exact)
		c = 1023u, h = 254u, s = 63u;
	/* head; sector in bits 0-5 with cylinder bits 8-9 in bits 6-7; cylinder bits 0-7 */
	ret_chs[0] = (uint8_t)h;
	ret_chs[1] = (uint8_t)(s | ((c >> 2) & 0xc0));
	ret_chs[2] = (uint8_t)(c & 0xff);
	return exact;
}

#endif
