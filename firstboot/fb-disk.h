/* The disk a network install writes to: the machine's whole disks as the kernel and udev see
 * them, and the one a rule from the kernel command line (pmoves.disk=) names, or the only one
 * it can be without a rule. Runs in the initramfs, after udev has settled: its database gives
 * the names people see under /dev/disk/by-id and /dev/disk/by-path. */
#ifndef PMOVES_FB_DISK_H
#define PMOVES_FB_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fb_disk {
	char *name;    /* "vda", "sda", "nvme0n1" */
	char *dev;     /* "/dev/vda" (as the running system names it, whatever ROOT was) */
	uint64_t size; /* bytes */
	bool removable, read_only;
	/* NULL when unknown. Printable ASCII only (a value with anything else is unknown), at most
	 * FB_DISK_VALUE_MAX bytes, trailing spaces cut. serial: udev's ID_SERIAL_SHORT or
	 * ID_SERIAL, else the kernel's (virtio-blk, NVMe); wwn: ID_WWN_WITH_EXTENSION or ID_WWN,
	 * else the kernel's wwid (NVMe "eui.HEX", SCSI "naa.HEX"); path: udev's ID_PATH
	 * ("pci-0000:00:04.0", the name under /dev/disk/by-path); model: the kernel's, else
	 * udev's ID_MODEL. */
	char *model, *serial, *wwn, *path;
};

#define FB_DISK_VALUE_MAX 256
#define FB_DISK_RULE_MAX 256

/* The whole disks under ROOT ("" for the real system; tests pass a directory with a fake
 * sys/block and run/udev/data), sorted by name (vda before vdb, nvme2n1 before nvme10n1).
 * Not disks to install to, and left out: loop, ram, zram, sr, fd, dm-, md, nbd and mtdblock
 * devices, hidden ones (an NVMe multipath's paths), those of size 0 (no medium) or whose size
 * cannot be read, and names that are not plain file names. A removable or ro flag that cannot
 * be read counts as set. 0 (*RET NULL when there are none), -ENOMEM, or -errno when
 * ROOT/sys/block cannot be read. */
int fb_disks_scan(const char *root, struct fb_disk **ret, size_t *ret_n);
void fb_disks_free(struct fb_disk *d, size_t n);

/* The disk RULE names, or with RULE NULL the only candidate: the one disk neither removable
 * nor read-only. A rule is "serial:VALUE", "wwn:VALUE" or "path:VALUE" (VALUE also as
 * "/dev/disk/by-path/VALUE"), matched exactly; a wwn ignores case and a "0x" prefix, and the
 * kernel's "naa.X" is udev's "0xX". A rule must name exactly one disk; a removable one may be
 * named, a read-only one is refused. 0 with *RET_INDEX; or with one message in *RET_ERROR
 * (malloc'd, no newline; may be NULL): -ENODEV (no candidate, no match), -ENOTUNIQ (more than
 * one), -EINVAL (not a rule: no known prefix, no value, over FB_DISK_RULE_MAX characters,
 * a character that is not printable ASCII), -EROFS (the disk named is read-only); -ENOMEM
 * without a message. */
int fb_disk_pick(const struct fb_disk *d, size_t n, const char *rule, size_t *ret_index, char **ret_error);

/* One line describing D for people: "vda (8.0 GiB, serial pmoves-a, QEMU HARDDISK)", then
 * "wwn W", "path P", "removable", "read-only" when they apply (malloc'd; NULL on ENOMEM). */
char *fb_disk_describe(const struct fb_disk *d);

#endif
