/* What a flash target is, and whether it may be written: the safety rules of
 * `pmoves-image flash`, read from sysfs, mountinfo and /proc/swaps under a root directory
 * ("" for this machine; tests give fixture trees). Nothing prints. */
#ifndef PMOVES_FLASH_DEVICE_H
#define PMOVES_FLASH_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct flash_dev {
	char name[64];      /* the kernel's name: sdb, mmcblk0, nvme0n1, loop3 */
	char disk[64];      /* a partition: its disk's name; else "" */
	dev_t devno;
	uint64_t size;      /* bytes */
	bool ro, removable, partition;
	char model[128];    /* "" when sysfs has none */
	char transport[16]; /* usb, mmc, nvme, sata, virtio, loop, or "" */
	char mmc_type[8];   /* mmcblk: "SD" or "MMC" (soldered eMMC) */
};

/* Read sysfs under ROOT about block device DEVNO. -ENOENT: sysfs does not know it. */
int flash_dev_probe(const char *root, dev_t devno, struct flash_dev *ret);

/* The rules, in this order: a partition; the disk holding /, /boot, /boot/efi or /usr; a
 * partition (or something built on it) mounted, or used as swap; a partition held (LVM, MD,
 * dm-crypt); read-only; smaller than IMAGE_SIZE; not a card or stick (USB, removable, or an
 * SD card on an MMC host) unless FORCE. 0: it may be written; -EPERM: refused, the reason in
 * *ret_why (malloc'd, one line, without the device's path); other -errno: cannot tell. */
int flash_dev_check(const char *root, const struct flash_dev *d, uint64_t image_size, bool force, char **ret_why);

/* Is D a card or a stick (what flash writes without --force)? */
bool flash_dev_is_card(const struct flash_dev *d);

#endif
