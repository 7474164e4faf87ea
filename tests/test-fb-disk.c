/* fb-disk: the disks of fake roots laid out as the kernel and udev lay out theirs
 * (sys/block/NAME/{size,removable,ro,hidden,dev,serial,wwid}, device/{model,serial,wwid},
 * run/udev/data/bMAJ:MIN with udev's E: lines), and the disk a rule names or the only
 * candidate. The values are those real devices show: QEMU's virtio and SCSI disks, an NVMe
 * drive (padded serial and model, eui. wwid), a USB stick, a SAS disk behind a RAID
 * controller (NAA-6 WWN with its extension). */
#include "fb-disk.h"
#include "test-fb-lib.h"

static char *tmp;

/* A disk NAME of SECTORS 512-byte sectors; REMOVABLE and RO written when >= 0. */
static void disk(const char *root, const char *name, const char *devno, const char *sectors, int removable, int ro)
{
	char *p = t_strf("sys/block/%s/size", name), *v = t_strf("%s\n", sectors);
	t_write(root, p, v);
	free(p), free(v);
	if (devno) {
		p = t_strf("sys/block/%s/dev", name), v = t_strf("%s\n", devno);
		t_write(root, p, v);
		free(p), free(v);
	}
	if (removable >= 0) {
		p = t_strf("sys/block/%s/removable", name);
		t_write(root, p, removable ? "1\n" : "0\n");
		free(p);
	}
	if (ro >= 0) {
		p = t_strf("sys/block/%s/ro", name);
		t_write(root, p, ro ? "1\n" : "0\n");
		free(p);
	}
}

static void attr(const char *root, const char *name, const char *file, const char *text)
{
	char *p = t_strf("sys/block/%s/%s", name, file);
	t_write(root, p, text);
	free(p);
}

static void udev(const char *root, const char *devno, const char *text)
{
	char *p = t_strf("run/udev/data/b%s", devno);
	t_write(root, p, text);
	free(p);
}

static char *new_root(const char *name)
{
	char *root = t_strf("%s/%s", tmp, name);
	mkdir_p(root, 0755);
	return root;
}

static const struct fb_disk *by_name(const struct fb_disk *d, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (STREQ(d[i].name, name))
			return &d[i];
	return NULL;
}

static char *names(const struct fb_disk *d, size_t n)
{
	char buf[512] = "";
	for (size_t i = 0; i < n; i++)
		names_add(buf, sizeof(buf), d[i].name, false);
	return strdup(buf);
}

/* pick with RULE: its result, the name picked (or "-") in *RET_NAME, the message in *RET_ERR. */
static int pick(const struct fb_disk *d, size_t n, const char *rule, const char **ret_name, char **ret_err)
{
	size_t i = SIZE_MAX;
	*ret_err = NULL;
	int r = fb_disk_pick(d, n, rule, &i, ret_err);
	*ret_name = r == 0 && i < n ? d[i].name : "-";
	return r;
}

static bool has_byte_over_7e_or_control(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return true;
	return false;
}

/* One fixed disk among what is never an install target. */
static void test_single(void)
{
	char *root = new_root("single");
	/* A virtio disk of 8 GiB with udev's record; the kernel's serial has no newline. */
	disk(root, "vda", "254:0", "16777216", 0, 0);
	attr(root, "vda", "serial", "pmoves-a");
	udev(root, "254:0",
	     "S:disk/by-path/virtio-pci-0000:00:04.0\nS:disk/by-id/virtio-pmoves-a\nS:disk/by-path/pci-0000:00:04.0\n"
	     "I:4012345\nE:ID_SERIAL=pmoves-a\nE:ID_PATH=pci-0000:00:04.0\nE:ID_PATH_TAG=pci-0000_00_04_0\n"
	     "G:systemd\nQ:systemd\nV:1\n");
	/* Never candidates, whatever their flags say. */
	disk(root, "loop0", "7:0", "204800", 0, 0);
	disk(root, "sr0", "11:0", "2097152", 1, 0);
	disk(root, "zram0", "252:0", "2097152", 0, 0);
	disk(root, "ram0", "1:0", "8192", 0, 0);
	disk(root, "fd0", "2:0", "2880", 1, 0);
	disk(root, "dm-0", "253:0", "2097152", 0, 0);
	disk(root, "md127", "9:127", "2097152", 0, 0);
	disk(root, "nbd0", "43:0", "2097152", 0, 0);
	disk(root, "mtdblock0", "31:0", "2048", 0, 0);
	disk(root, "vdb", "254:16", "0", 0, 0); /* no medium */
	disk(root, "nvme0c0n1", "259:1", "2097152", 0, 0);
	attr(root, "nvme0c0n1", "hidden", "1\n"); /* a path of an NVMe multipath disk */
	/* Listed, but not candidates: a USB stick, an eMMC boot partition (read-only), and a disk
	 * whose flags cannot be read. */
	disk(root, "sda", "8:0", "30031872", 1, 0);
	attr(root, "sda", "device/model", "DataTraveler 3.0\n");
	udev(root, "8:0",
	     "E:ID_SERIAL=Kingston_DataTraveler_3.0_E0D55EA574F1E3B0A9B4D3E1-0:0\nE:ID_SERIAL_SHORT=E0D55EA574F1E3B0A9B4D3E1\n"
	     "E:ID_PATH_TAG=pci-0000_00_14_0-usb-0_1_1_0-scsi-0_0_0_0\nE:ID_PATH=pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0\n"
	     "E:ID_MODEL=DataTraveler_3.0\n");
	disk(root, "mmcblk0boot0", "179:8", "8192", 0, 1);
	disk(root, "vdz", "254:400", "2097152", -1, -1);
	/* /dev/cciss/c0d0: not a file name under /dev. */
	disk(root, "cciss!c0d0", "104:0", "2097152", 0, 0);

	struct fb_disk *d = NULL;
	size_t n = 0;
	int r = fb_disks_scan(root, &d, &n);
	tap_is_int(r, 0, "scan: a fake root");
	char *list = names(d, n);
	tap_is_str(list, "mmcblk0boot0, sda, vda, vdz",
		   "scan: loop, sr, zram, ram, fd, dm-, md, nbd, mtdblock, size 0, hidden and not file names left out, sorted");
	free(list);
	const struct fb_disk *vda = by_name(d, n, "vda"), *vdz = by_name(d, n, "vdz"), *sda = by_name(d, n, "sda");
	tap_ok(vda && STREQ(vda->dev, "/dev/vda") && vda->size == (UINT64_C(8) << 30) && !vda->removable && !vda->read_only,
	       "scan: vda is /dev/vda, 8 GiB (size in 512-byte sectors), fixed and writable");
	tap_ok(vda && vda->serial && STREQ(vda->serial, "pmoves-a") && vda->path && STREQ(vda->path, "pci-0000:00:04.0") &&
		       !vda->wwn && !vda->model,
	       "scan: vda's serial and path from udev's record, no wwn or model");
	tap_ok(sda && sda->removable && sda->model && STREQ(sda->model, "DataTraveler 3.0"),
	       "scan: sda removable, its model the kernel's (not udev's underscored one)");
	tap_ok(sda && sda->serial && STREQ(sda->serial, "E0D55EA574F1E3B0A9B4D3E1"),
	       "scan: udev's ID_SERIAL_SHORT before its ID_SERIAL");
	tap_ok(vdz && vdz->removable && vdz->read_only, "scan: removable and ro that cannot be read count as set");

	const char *name;
	char *err;
	r = pick(d, n, NULL, &name, &err);
	tap_ok(r == 0 && STREQ(name, "vda"), "pick: the one fixed, writable disk; removable and read-only ones are not candidates");
	if (r)
		tap_diag("%d %s", r, err);
	free(err);
	r = pick(d, n, "serial:E0D55EA574F1E3B0A9B4D3E1", &name, &err);
	tap_ok(r == 0 && STREQ(name, "sda"), "pick: a removable disk named by its serial");
	free(err);
	r = pick(d, n, "path:pci-0000:00:04.0", &name, &err);
	tap_ok(r == 0 && STREQ(name, "vda"), "pick: path: udev's ID_PATH");
	free(err);
	r = pick(d, n, "path:/dev/disk/by-path/pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0", &name, &err);
	tap_ok(r == 0 && STREQ(name, "sda"), "pick: path: as /dev/disk/by-path/VALUE");
	free(err);
	r = pick(d, n, "path:/dev/disk/by-path/pci-0000:00:05.0", &name, &err);
	tap_is_int(r, -ENODEV, "pick: path: of no disk");
	free(err);
	r = pick(d, n, "serial:Kingston_DataTraveler_3.0_E0D55EA574F1E3B0A9B4D3E1-0:0", &name, &err);
	tap_is_int(r, -ENODEV, "pick: udev's long ID_SERIAL is not the serial when it has ID_SERIAL_SHORT");
	free(err);
	r = pick(d, n, "serial:x", &name, &err);
	tap_ok(r == -ENODEV && err && strstr(err, "'serial:x'") && strstr(err, "vda (8.0 GiB") && strstr(err, "sda (") &&
		       strstr(err, "mmcblk0boot0 (") && !strchr(err, '\n'),
	       "pick: no match: the rule and every disk seen in one line");
	tap_diag("%s", err ? err : "(null)");
	free(err);
	r = pick(d, n, "serial:pmoves-a", &name, &err);
	tap_ok(r == 0 && STREQ(name, "vda"), "pick: serial: udev's ID_SERIAL when it has no ID_SERIAL_SHORT (virtio)");
	free(err);
	fb_disks_free(d, n);
	free(root);
}

/* Several fixed disks: refused without a rule; every way of naming one. */
static void test_several(void)
{
	char *root = new_root("several");
	disk(root, "vda", "254:0", "16777216", 0, 0);
	attr(root, "vda", "serial", "pmoves-a");
	/* No udev record: the kernel's serial. */
	disk(root, "vdb", "254:16", "33554432", 0, 0);
	attr(root, "vdb", "serial", "pmoves-b");
	/* NVMe without udev: the serial and model of the controller (padded with spaces as older
	 * kernels show them), the namespace's wwid. */
	disk(root, "nvme2n1", "259:0", "976773168", 0, 0);
	attr(root, "nvme2n1", "wwid", "eui.0025388b91b0a2c5\n");
	attr(root, "nvme2n1", "device/serial", "S466NX0M123456A     \n");
	attr(root, "nvme2n1", "device/model", "Samsung SSD 970 EVO Plus 500GB          \n");
	disk(root, "nvme10n1", "259:10", "976773168", 0, 0);
	/* Not so on a real system: udev's serial and the kernel's differ, to see which is read. */
	disk(root, "vdc", "254:32", "2097152", 0, 0);
	attr(root, "vdc", "serial", "kernel-c");
	udev(root, "254:32", "E:ID_SERIAL=udev-c\n");
	/* SCSI without udev: the wwid from VPD page 0x83. */
	disk(root, "sdc", "8:32", "4194304", 0, 0);
	attr(root, "sdc", "device/wwid", "naa.600508b1001c4d5e\n");
	attr(root, "sdc", "device/model", "QEMU HARDDISK   \n");
	/* A SAS disk behind a RAID controller: udev's NAA-6 WWN and its extension. */
	disk(root, "sdd", "8:48", "1953525168", 0, 0);
	udev(root, "8:48",
	     "E:ID_WWN=0x600508b1001c7a3f\nE:ID_WWN_WITH_EXTENSION=0x600508b1001c7a3f9e8d7c6b5a493827\n"
	     "E:ID_SERIAL=3600508b1001c7a3f9e8d7c6b5a493827\nE:ID_SERIAL_SHORT=600508b1001c7a3f9e8d7c6b5a493827\n"
	     "E:ID_PATH=pci-0000:03:00.0-scsi-0:1:0:0\n");
	/* Read-only (a write-protect switch). */
	disk(root, "sdb", "8:16", "4194304", 0, 1);
	udev(root, "8:16", "E:ID_WWN=0x5000c500a1b2c3d4\nE:ID_SERIAL_SHORT=RO-1\n");

	struct fb_disk *d = NULL;
	size_t n = 0;
	int r = fb_disks_scan(root, &d, &n);
	char *list = names(d, n);
	tap_is_str(list, "nvme2n1, nvme10n1, sdb, sdc, sdd, vda, vdb, vdc", "scan: sorted by name, numbers as numbers");
	tap_is_int(r, 0, "scan: several disks");
	free(list);
	const struct fb_disk *nv = by_name(d, n, "nvme2n1"), *sdd = by_name(d, n, "sdd");
	tap_ok(nv && nv->serial && STREQ(nv->serial, "S466NX0M123456A") && nv->model &&
		       STREQ(nv->model, "Samsung SSD 970 EVO Plus 500GB") && nv->wwn && STREQ(nv->wwn, "eui.0025388b91b0a2c5"),
	       "scan: NVMe serial and model from the controller, trailing spaces cut; wwn from its wwid");
	tap_ok(sdd && sdd->wwn && STREQ(sdd->wwn, "0x600508b1001c7a3f9e8d7c6b5a493827"),
	       "scan: udev's ID_WWN_WITH_EXTENSION before its ID_WWN");

	const char *name;
	char *err;
	r = pick(d, n, NULL, &name, &err);
	tap_ok(r == -ENOTUNIQ && err && strstr(err, "more than one") && strstr(err, "vda (8.0 GiB, serial pmoves-a)") &&
		       strstr(err, "vdb (16.0 GiB, serial pmoves-b)") && strstr(err, "nvme2n1 (") && strstr(err, "sdd (") &&
		       !strstr(err, "sdb (") && strstr(err, "pmoves.disk=serial:S, wwn:W or path:P") && !strchr(err, '\n'),
	       "pick: several candidates refused, each listed (not the read-only one), and how to choose");
	tap_diag("%s", err ? err : "(null)");
	free(err);

	static const struct {
		const char *rule, *want;
	} cases[] = {
		{ "serial:pmoves-b", "vdb" },				      /* sys/block/X/serial */
		{ "serial:udev-c", "vdc" },				      /* udev first */
		{ "serial:S466NX0M123456A", "nvme2n1" },		      /* device/serial */
		{ "wwn:eui.0025388b91b0a2c5", "nvme2n1" },		      /* wwid */
		{ "wwn:EUI.0025388B91B0A2C5", "nvme2n1" },		      /* any case */
		{ "wwn:naa.600508b1001c4d5e", "sdc" },			      /* device/wwid */
		{ "wwn:0x600508b1001c4d5e", "sdc" },			      /* as udev would write it */
		{ "wwn:600508B1001C4D5E", "sdc" },			      /* without 0x, upper case */
		{ "wwn:0x600508b1001c7a3f9e8d7c6b5a493827", "sdd" },	      /* udev's */
		{ "wwn:0X600508B1001C7A3F9E8D7C6B5A493827", "sdd" },	      /* 0X, upper case */
		{ "wwn:600508b1001c7a3f9e8d7c6b5a493827", "sdd" },	      /* without 0x */
		{ "path:pci-0000:03:00.0-scsi-0:1:0:0", "sdd" },
		{ "path:/dev/disk/by-path/pci-0000:03:00.0-scsi-0:1:0:0", "sdd" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		r = pick(d, n, cases[i].rule, &name, &err);
		tap_ok(r == 0 && STREQ(name, cases[i].want), "pick: '%s' names %s", cases[i].rule, cases[i].want);
		if (r)
			tap_diag("%d %s", r, err ? err : "(null)");
		free(err);
	}
	static const char *const none[] = {
		"serial:pmoves-", "serial:PMOVES-B", "serial:kernel-c",
		"wwn:0x600508b1001c7a3f", /* ID_WWN without the extension */
		"wwn:0x0025388b91b0a2c5", "path:pci-0000:03:00.0", "serial:3600508b1001c7a3f9e8d7c6b5a493827",
	};
	for (size_t i = 0; i < ARRAY_SIZE(none); i++) {
		r = pick(d, n, none[i], &name, &err);
		tap_ok(r == -ENODEV && err && strstr(err, none[i]), "pick: '%s' names no disk (exact match)", none[i]);
		free(err);
	}

	r = pick(d, n, "wwn:0x5000c500a1b2c3d4", &name, &err);
	tap_ok(r == -EROFS && err && strstr(err, "read-only") && strstr(err, "sdb (") && strstr(err, "wwn:0x5000c500a1b2c3d4"),
	       "pick: a read-only disk named is refused with the reason");
	tap_diag("%s", err ? err : "(null)");
	free(err);
	fb_disks_free(d, n);
	free(root);
}

/* Identity values from the system are untrusted. */
static void test_hostile(void)
{
	char *root = new_root("hostile");
	disk(root, "vda", "254:0", "2097152", 0, 0);
	attr(root, "vda", "serial", "ok\x1b[2J\x1b]0;owned\a");
	attr(root, "vda", "device/model", "Disk\r\nwith lines\n");
	disk(root, "vdb", "254:16", "2097152", 0, 0);
	udev(root, "254:16", "E:ID_SERIAL=bad\x9b" "31mred\nE:ID_PATH=pci-0000:00:05.0\x7f\nE:ID_WWN=0x\x01" "12\n");
	char *longer = calloc(1, 300);
	memset(longer, 'x', 257);
	disk(root, "vdc", "254:32", "2097152", 0, 0);
	attr(root, "vdc", "serial", longer);
	longer[256] = '\0';
	disk(root, "vdd", "254:48", "2097152", 0, 0);
	attr(root, "vdd", "serial", longer);
	/* The dev file becomes part of a path: only MAJ:MIN is followed. */
	disk(root, "vde", "../../../x", "2097152", 0, 0);
	t_write(root, "run/udev/data/b../.keep", "");
	t_write(root, "run/udev/x", "E:ID_SERIAL=from-outside\n");
	/* A link a rule made (S:), not a property. */
	disk(root, "vdf", "254:80", "2097152", 0, 0);
	udev(root, "254:80", "S:ID_SERIAL=a-link\nE:ID_PATH=pci-0000:00:09.0\n");

	struct fb_disk *d = NULL;
	size_t n = 0;
	int r = fb_disks_scan(root, &d, &n);
	const struct fb_disk *vda = by_name(d, n, "vda"), *vdb = by_name(d, n, "vdb"), *vdc = by_name(d, n, "vdc"),
			     *vdd = by_name(d, n, "vdd"), *vde = by_name(d, n, "vde"), *vdf = by_name(d, n, "vdf");
	tap_ok(r == 0 && vda && !vda->serial && !vda->model, "scan: a serial or model with control characters is unknown");
	tap_ok(vdb && !vdb->serial && !vdb->path && !vdb->wwn, "scan: udev values with a C1 byte, DEL or a control character are unknown");
	tap_ok(vdc && !vdc->serial, "scan: a serial over 256 bytes is unknown");
	tap_ok(vdd && vdd->serial && strlen(vdd->serial) == 256, "scan: a serial of 256 bytes is kept");
	tap_ok(vde && !vde->serial, "scan: a dev file that is not MAJ:MIN is not followed");
	tap_ok(vdf && !vdf->serial && vdf->path, "scan: only udev's E: lines are properties");
	bool clean = true;
	for (size_t i = 0; i < n; i++) {
		char *s = fb_disk_describe(&d[i]);
		clean = clean && s && !has_byte_over_7e_or_control(s);
		free(s);
	}
	tap_ok(clean && n == 6, "describe: nothing but printable ASCII reaches the line");
	const char *name;
	char *err;
	r = pick(d, n, "serial:ok", &name, &err);
	tap_is_int(r, -ENODEV, "pick: a serial with control characters is not matched by its printable start");
	free(err);
	r = pick(d, n, NULL, &name, &err);
	tap_ok(r == -ENOTUNIQ && err && !has_byte_over_7e_or_control(err), "pick: the message is printable ASCII");
	free(err);
	fb_disks_free(d, n);
	free(longer);
	free(root);
}

static void test_rules(void)
{
	struct fb_disk d[] = {
		{ .name = "vda", .dev = "/dev/vda", .size = UINT64_C(8) << 30, .serial = "dup" },
		{ .name = "vdb", .dev = "/dev/vdb", .size = UINT64_C(8) << 30, .serial = "dup" },
	};
	const char *name;
	char *err;
	int r = pick(d, 2, "serial:dup", &name, &err);
	tap_ok(r == -ENOTUNIQ && err && strstr(err, "vda (") && strstr(err, "vdb (") && strstr(err, "'serial:dup'"),
	       "pick: a rule matching two disks is refused, both listed");
	free(err);

	char *long_rule = calloc(1, 300);
	memcpy(long_rule, "serial:", 7);
	memset(long_rule + 7, 'a', 250); /* 257 characters */
	static const char *const bad[] = { "serial:", "wwn:", "wwn:0x", "path:", "path:/dev/disk/by-path/", "foo:bar",
					   "serial", "", "Serial:dup", "label:dup", "serial:a\x1b[2J" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		r = pick(d, 2, bad[i], &name, &err);
		char *shown = str_printable(bad[i], strlen(bad[i]), NULL);
		tap_ok(r == -EINVAL && err && !has_byte_over_7e_or_control(err), "pick: '%s' is not a rule", shown);
		tap_diag("%s", err ? err : "(null)");
		free(shown);
		free(err);
	}
	r = pick(d, 2, long_rule, &name, &err);
	tap_ok(r == -EINVAL && err && strstr(err, "256"), "pick: a rule over 256 characters is refused");
	free(err);
	long_rule[256] = '\0'; /* 256 characters: a rule, of no disk */
	r = pick(d, 2, long_rule, &name, &err);
	tap_is_int(r, -ENODEV, "pick: a rule of 256 characters is taken");
	free(err);
	free(long_rule);

	/* The output parameters are left alone on failure. */
	size_t idx = 77;
	err = NULL;
	r = fb_disk_pick(d, 2, "serial:none", &idx, &err);
	tap_ok(r == -ENODEV && idx == 77, "pick: *ret_index untouched on failure");
	free(err);
}

static void test_none(void)
{
	struct fb_disk d[] = {
		{ .name = "sda", .dev = "/dev/sda", .size = UINT64_C(16) << 30, .removable = true, .serial = "USB1" },
		{ .name = "sdb", .dev = "/dev/sdb", .size = UINT64_C(1) << 30, .read_only = true },
	};
	const char *name;
	char *err;
	int r = pick(d, 2, NULL, &name, &err);
	tap_ok(r == -ENODEV && err && strstr(err, "no disk to install to") && strstr(err, "sda (16.0 GiB, serial USB1, removable)") &&
		       strstr(err, "sdb (1.0 GiB, read-only)"),
	       "pick: no candidate: every disk seen listed");
	tap_diag("%s", err ? err : "(null)");
	free(err);
	r = pick(d, 0, NULL, &name, &err);
	tap_ok(r == -ENODEV && err && strstr(err, "no disk to install to") && strstr(err, "no disks at all"),
	       "pick: no disks at all");
	free(err);
	r = pick(d, 0, "serial:x", &name, &err);
	tap_ok(r == -ENODEV && err && strstr(err, "no disks at all"), "pick: a rule with no disks at all");
	free(err);
	r = fb_disks_scan("/nonexistent-pmoves-root", &(struct fb_disk *){ NULL }, &(size_t){ 0 });
	tap_is_int(r, -ENOENT, "scan: a root without sys/block");
}

static void test_describe(void)
{
	struct fb_disk d = { .name = "vda", .dev = "/dev/vda", .size = UINT64_C(8) << 30, .serial = "pmoves-a",
			     .model = "QEMU HARDDISK" };
	char *s = fb_disk_describe(&d);
	tap_is_str(s, "vda (8.0 GiB, serial pmoves-a, QEMU HARDDISK)", "describe: size, serial, model");
	free(s);
	struct fb_disk e = { .name = "sdb", .dev = "/dev/sdb", .size = 1536u << 20, .wwn = "0x5000c500a1b2c3d4",
			     .path = "pci-0000:00:1f.2-ata-2", .removable = true, .read_only = true };
	s = fb_disk_describe(&e);
	tap_is_str(s, "sdb (1.5 GiB, wwn 0x5000c500a1b2c3d4, path pci-0000:00:1f.2-ata-2, removable, read-only)",
		   "describe: wwn, path and flags; nothing for what is unknown");
	free(s);
}

int main(void)
{
	char tmpl[] = "/tmp/test-fb-disk-XXXXXX";
	if (!mkdtemp(tmpl))
		abort();
	tmp = tmpl;
	test_single();
	test_several();
	test_hostile();
	test_rules();
	test_none();
	test_describe();
	rm_rf(tmp);
	return tap_done();
}
