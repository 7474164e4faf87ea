/* The MBR sector as it is on disk: used by the MBR table and by GPT's protective MBR. */
#ifndef PMOVES_MBR_H
#define PMOVES_MBR_H

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

#endif
