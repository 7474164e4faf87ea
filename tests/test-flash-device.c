/* flash's safety rules on fixtures: a fake /sys (the kernel's layout: sys/dev/block/MAJ:MIN
 * and sys/class/block/NAME linking into sys/devices/...) and /proc/self/mountinfo and
 * /proc/swaps of a machine with a SATA system disk, and the devices a user may plug in. No
 * real device is looked at: every path is under the fixture's root. */
#include "flash-device.h"
#include "tap.h"
#include "util.h"

#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
	char p[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	if (mkdir_p(p, 0755) < 0)
		abort();
	*slash = '/';
	if (write_file_atomic(p, text, strlen(text), 0644) < 0)
		abort();
}

static void link_to(const char *rel, const char *target)
{
	char p[PATH_MAX * 2], t[PATH_MAX * 2];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	snprintf(t, sizeof(t), "%s/%s", root, target);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	if (mkdir_p(p, 0755) < 0)
		abort();
	*slash = '/';
	if (symlink(t, p) < 0)
		abort();
}

/* A block device at sys/devices/DIR (its last component the name), MAJ:MIN, SIZE sectors. */
static void dev(const char *dir, unsigned ma, unsigned mi, const char *sectors, const char *removable)
{
	char rel[PATH_MAX], v[64];
	const char *name = strrchr(dir, '/') + 1;
	snprintf(rel, sizeof(rel), "sys/devices/%s/size", dir);
	put(rel, sectors);
	snprintf(rel, sizeof(rel), "sys/devices/%s/ro", dir);
	put(rel, "0\n");
	snprintf(v, sizeof(v), "%u:%u\n", ma, mi);
	snprintf(rel, sizeof(rel), "sys/devices/%s/dev", dir);
	put(rel, v);
	if (removable) {
		snprintf(rel, sizeof(rel), "sys/devices/%s/removable", dir);
		put(rel, removable);
	} else {
		snprintf(rel, sizeof(rel), "sys/devices/%s/partition", dir);
		put(rel, "1\n");
	}
	char d[PATH_MAX], target[PATH_MAX];
	snprintf(target, sizeof(target), "sys/devices/%s", dir);
	snprintf(d, sizeof(d), "sys/dev/block/%u:%u", ma, mi);
	link_to(d, target);
	snprintf(d, sizeof(d), "sys/class/block/%s", name);
	link_to(d, target);
}

static void attr_put(const char *dir, const char *name, const char *text)
{
	char rel[PATH_MAX];
	snprintf(rel, sizeof(rel), "sys/devices/%s/%s", dir, name);
	put(rel, text);
}

#define PCI "pci0000:00/0000:00:14.0/"
#define USB(n) PCI "usb1/1-" #n "/1-" #n ":1.0/host" #n "/target" #n ":0:0/" #n ":0:0:0/block/"
#define GB16 "31116288\n" /* 16 GB in sectors */

static void machine(void)
{
	/* The system: a SATA SSD, ESP on sda1, / on LVM on sda2 (dm-0), /usr on sda3 */
	const char *sata = PCI "ata1/host0/target0:0:0/0:0:0:0/block/sda";
	dev(sata, 8, 0, "1000215216\n", "0\n");
	attr_put(sata, "device/model", "Samsung SSD 870\n");
	dev(PCI "ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1", 8, 1, "1048576\n", NULL);
	dev(PCI "ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2", 8, 2, "900000000\n", NULL);
	dev("virtual/block/dm-0", 253, 0, "900000000\n", "0\n");
	put("sys/devices/virtual/block/dm-0/slaves/sda2", "");
	put("sys/devices/" PCI "ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2/holders/dm-0", "");
	/* a second SATA disk, no file system in use */
	dev(PCI "ata2/host1/target1:0:0/1:0:0:0/block/sdd", 8, 48, "1953525168\n", "0\n");
	/* NVMe */
	dev(PCI "0000:3d:00.0/nvme/nvme0/nvme0n1", 259, 0, "1000215216\n", "0\n");
	attr_put(PCI "0000:3d:00.0/nvme/nvme0/nvme0n1", "device/model", "WD Blue SN570\n");
	/* USB stick (removable), with a partition */
	dev(USB(6) "sdb", 8, 16, GB16, "1\n");
	attr_put(USB(6) "sdb", "device/model", "Ultra Fit\n");
	dev(USB(6) "sdb/sdb1", 8, 17, "31000000\n", NULL);
	/* SD card in a USB reader: removable too */
	dev(USB(7) "sdc", 8, 32, GB16, "1\n");
	attr_put(USB(7) "sdc", "device/model", "SD/MMC Reader\n");
	/* a USB SSD that says it is not removable: USB transport makes it a stick */
	dev(USB(8) "sde", 8, 64, GB16, "0\n");
	/* SD card in the MMC slot: removable 0, device/type SD */
	dev("platform/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0", 179, 0, GB16, "0\n");
	attr_put("platform/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0", "device/type", "SD\n");
	attr_put("platform/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0", "device/name", "SC16G\n");
	/* soldered eMMC: device/type MMC */
	dev("platform/fe330000.mmc/mmc_host/mmc1/mmc1:0001/block/mmcblk1", 179, 32, GB16, "0\n");
	attr_put("platform/fe330000.mmc/mmc_host/mmc1/mmc1:0001/block/mmcblk1", "device/type", "MMC\n");
	/* USB sticks in use: a partition mounted, one used as swap, one held by dm-crypt, one
	 * holding /boot, one read-only, one too small */
	dev(USB(9) "sdf", 8, 80, GB16, "1\n");
	dev(USB(9) "sdf/sdf1", 8, 81, "31000000\n", NULL);
	dev(USB(10) "sdg", 8, 96, GB16, "1\n");
	dev(USB(10) "sdg/sdg2", 8, 98, "31000000\n", NULL);
	dev(USB(11) "sdh", 8, 112, GB16, "1\n");
	dev(USB(11) "sdh/sdh1", 8, 113, "31000000\n", NULL);
	put("sys/devices/" USB(11) "sdh/sdh1/holders/dm-1", "");
	dev("virtual/block/dm-1", 253, 1, "31000000\n", "0\n");
	put("sys/devices/virtual/block/dm-1/slaves/sdh1", "");
	dev(USB(12) "sdi", 8, 128, GB16, "1\n");
	dev(USB(12) "sdi/sdi1", 8, 129, "1000000\n", NULL);
	dev(USB(13) "sdj", 8, 144, GB16, "1\n");
	attr_put(USB(13) "sdj", "ro", "1\n");
	dev(USB(14) "sdk", 8, 160, "2048\n", "1\n"); /* 1 MiB */
	/* a btrfs on the NVMe's twin, reported as 0:N with its source */
	put("proc/self/mountinfo",
	    "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n"
	    "23 22 0:21 / /proc rw shared:2 - proc proc rw\n"
	    "24 22 8:1 / /boot/efi rw,relatime shared:3 - vfat /dev/sda1 rw\n"
	    "25 22 0:45 / /srv rw,relatime shared:4 - btrfs /dev/sdi1 rw\n"
	    "26 22 8:81 / /media/user/STICK rw,nosuid shared:5 - vfat /dev/sdf1 rw\n"
	    "27 22 0:46 /boot /boot rw shared:6 - btrfs /dev/sdi1 rw\n");
	put("proc/swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
			  "/dev/sdg2                               partition\t15500000\t0\t\t-2\n"
			  "/swapfile                               file\t\t1048572\t\t0\t\t-3\n");
}

static void probe(unsigned ma, unsigned mi, struct flash_dev *d)
{
	if (flash_dev_probe(root, makedev(ma, mi), d) < 0) {
		tap_diag("cannot probe %u:%u", ma, mi);
		*d = (struct flash_dev){ 0 };
	}
}

static void detect(unsigned ma, unsigned mi, const char *transport, bool card, const char *what)
{
	struct flash_dev d;
	probe(ma, mi, &d);
	if (!tap_ok(STREQ(d.transport, transport) && flash_dev_is_card(&d) == card, "detect %s: transport '%s', %s",
		    what, transport, card ? "a card or stick" : "not a card or stick"))
		tap_diag("got transport '%s', removable %d, type '%s'", d.transport, d.removable, d.mmc_type);
}

/* The rules on MA:MI for an image of 1 GiB: WANT NULL = allowed, else a part of the reason. */
static void rule(unsigned ma, unsigned mi, bool force, const char *want, const char *what)
{
	struct flash_dev d;
	probe(ma, mi, &d);
	char *why = NULL;
	int r = flash_dev_check(root, &d, UINT64_C(1) << 30, force, &why);
	if (!want)
		tap_ok(r == 0, "%s: allowed%s", what, why ? "" : "");
	else
		tap_ok(r == -EPERM && why && strstr(why, want), "%s: refused, '%s'", what, want);
	if (why)
		tap_diag("%s", why);
	free(why);
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/test-flash-device-XXXXXX");
	if (!mkdtemp(root))
		tap_skip_all("cannot create a temp dir");
	machine();
	tap_plan(30);

	detect(8, 16, "usb", true, "USB stick");
	detect(8, 32, "usb", true, "SD card in a USB reader");
	detect(8, 64, "usb", true, "USB disk that is not removable");
	detect(179, 0, "mmc", true, "SD card in an MMC slot (mmcblk, type SD)");
	detect(179, 32, "mmc", false, "soldered eMMC (mmcblk, type MMC)");
	detect(259, 0, "nvme", false, "NVMe disk");
	detect(8, 48, "sata", false, "SATA disk");
	struct flash_dev d;
	probe(8, 16, &d);
	tap_ok(STREQ(d.model, "Ultra Fit") && d.size == UINT64_C(31116288) * 512 && d.removable && !d.partition,
	       "probe: model, size in bytes, removable");
	probe(179, 0, &d);
	tap_is_str(d.model, "SC16G", "probe: an MMC card's name is its model");

	rule(8, 16, false, NULL, "USB stick");
	rule(8, 32, false, NULL, "SD card in a USB reader");
	rule(179, 0, false, NULL, "SD card in an MMC slot");
	rule(179, 32, false, "soldered eMMC", "eMMC without --force");
	rule(179, 32, true, NULL, "eMMC with --force");
	rule(259, 0, false, "not a card or stick (transport 'nvme'", "NVMe without --force");
	rule(259, 0, true, NULL, "NVMe with --force");
	rule(8, 48, false, "not a card or stick (transport 'sata'", "SATA disk without --force");
	rule(8, 0, true, "holds the running system ('/' is on 'dm-0')", "system disk (/ on LVM on it), even with --force");
	rule(8, 1, true, "partition 'sda1' of disk 'sda'", "a partition");
	rule(8, 17, false, "partition 'sdb1' of disk 'sdb': give the whole disk ('/dev/sdb')", "a stick's partition");
	rule(8, 80, true, "'sdf1' on it is mounted on '/media/user/STICK'", "a stick with a mounted partition");
	rule(8, 96, true, "'sdg2' on it is used as swap", "a stick used as swap");
	rule(8, 112, true, "'sdh1' is held by 'dm-1'", "a stick held by dm-crypt");
	rule(8, 128, true, "holds the running system ('/boot' is on 'sdi1')", "/boot on a stick (btrfs, 0:N)");
	rule(8, 144, false, "read-only", "a read-only card");
	rule(8, 160, false, "smaller than the image (1.0 MiB < 1.0 GiB)", "a card smaller than the image");

	/* the system disk check reads mountinfo: without the root mount it is only held */
	put("proc/self/mountinfo", "24 22 8:1 / /boot/efi rw,relatime shared:3 - vfat /dev/sda1 rw\n");
	rule(8, 0, true, "holds the running system ('/boot/efi' is on 'sda1')", "system disk by its ESP");
	put("proc/self/mountinfo", "1 0 8:2 / /mnt rw - ext4 /dev/sda2 rw\n");
	rule(8, 0, true, "'sda2' on it is mounted on '/mnt'", "a SATA disk with a mounted partition");
	put("proc/self/mountinfo", "");
	rule(8, 0, true, "'sda2' is held by 'dm-0'", "a disk whose partition is held, nothing mounted");
	tap_ok(flash_dev_probe(root, makedev(8, 200), &d) == -ENOENT, "a device sysfs does not know: -ENOENT");

	rm_rf(root);
	return tap_done();
}
