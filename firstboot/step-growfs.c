/* growfs: the root partition and its filesystem fill the disk (an image written to a bigger
 * disk or SD card, a VM disk made bigger).
 *
 * The root device is the one mounted on "/" (ROOT/proc/self/mountinfo gives its major:minor;
 * ROOT/sys/dev/block/MAJ:MIN gives its name, its partition number and, one directory up, its
 * disk), or "growfs": {"device": PATH}: a partition, a whole disk or a disk image file (then
 * its last partition is grown). Then, on the disk:
 *   GPT: the backup header and entries move to the disk's end (gpt_relocate_backup), and the
 *        partition, when it is the last one, grows to the last usable LBA rounded down to 1 MiB;
 *   MBR: the last partition's record grows the same way, within 2^32 sectors;
 * the kernel learns the new size (BLKPG_RESIZE_PARTITION, on block devices), and the
 * filesystem grows online: `resize2fs DEV` for ext2/3/4 through the runner. On an image file
 * that is `resize2fs FILE?offset=START SIZEk` (e2fsprogs' offset syntax), so tests grow a
 * real filesystem without loop devices. The filesystem type comes from libblkid, probing at
 * the partition's offset. Each part is checked before it is done: a cut anywhere and a rerun
 * finish the job (the GPT functions write backup first, with barriers). */
#include "fb-step.h"
#include "firstboot.h"
#include "gpt.h"
#include "mbr.h"
#include "util.h"

#include <blkid.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/blkpg.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MiB (UINT64_C(1) << 20)
#define SLACK MiB /* "fills the disk": ends within this of the last usable byte */

/* "growfs": {"device": PATH}, optional: a partition, disk or image file, when not the one
 * mounted on /. */
static const struct fb_field growfs_fields[] = {
	{ "device", FB_T_STRING, NULL, fb_valid_path_limits, &fb_fmt_abs_path, 0, FB_PATH_MAX },
	FB_FIELDS_END,
};
static const struct fb_field growfs_schema = { NULL, FB_T_OBJECT, growfs_fields, NULL, NULL, 0, 0 };

void fb_blockdev_done(struct fb_blockdev *d)
{
	free(d->disk);
	free(d->part_dev);
	*d = (struct fb_blockdev){ 0 };
}

/* "KEY=value" from a sysfs uevent file. */
static char *uevent_get(const char *abs, const char *key)
{
	_cleanup_free_ char *text = NULL;
	if (fb_read(abs, 64 * 1024, &text, NULL) < 0)
		return NULL;
	size_t k = strlen(key);
	for (char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		if (n > k && !strncmp(p, key, k) && p[k] == '=')
			return strndup(p + k + 1, n - k - 1);
		p += n + (p[n] == '\n');
	}
	return NULL;
}

static bool devname_ok(const char *s)
{
	return s && *s && strlen(s) < 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-!") == strlen(s);
}

/* MAJ:MIN of a block device: its name, partition number and disk from sysfs. */
int fb_blockdev_from_devnum(unsigned maj, unsigned min, struct fb_blockdev *ret, char **ret_msg)
{
	_cleanup_free_ char *base = fb_strdupf("/sys/dev/block/%u:%u", maj, min), *ue = NULL, *pue = NULL,
			   *pn = NULL, *name = NULL, *disk = NULL;
	if (!base || !(ue = fb_strdupf("%s/uevent", base)) || !(pue = fb_strdupf("%s/../uevent", base)) ||
	    !(pn = fb_strdupf("%s/partition", base)))
		return -ENOMEM;
	name = uevent_get(ue, "DEVNAME");
	if (!devname_ok(name)) {
		*ret_msg = fb_strdupf("no block device %u:%u in '/sys/dev/block'", maj, min);
		return -ENODEV;
	}
	_cleanup_free_ char *num = NULL;
	if (fb_read(pn, 64, &num, NULL) < 0) {
		/* A whole disk (no partition table on the root device): nothing to grow here. */
		ret->disk = fb_strdupf("/dev/%s", name);
		return ret->disk ? 0 : -ENOMEM;
	}
	uint64_t v;
	num[strcspn(num, "\n")] = '\0';
	disk = uevent_get(pue, "DEVNAME");
	if (parse_u64(num, &v) < 0 || v == 0 || v > 128 || !devname_ok(disk)) {
		*ret_msg = fb_strdupf("cannot tell the disk of '/dev/%s' from '/sys'", name);
		return -ENODEV;
	}
	ret->partno = (unsigned)v;
	ret->part_dev = fb_strdupf("/dev/%s", name);
	ret->disk = fb_strdupf("/dev/%s", disk);
	return ret->part_dev && ret->disk ? 0 : -ENOMEM;
}

int fb_blockdev_of_mount(const char *mountpoint, struct fb_blockdev *ret, char **ret_msg)
{
	_cleanup_free_ char *text = NULL;
	if (fb_read("/proc/self/mountinfo", 4u << 20, &text, NULL) < 0)
		return 0;
	unsigned maj = 0, min = 0;
	size_t mlen = strlen(mountpoint);
	bool found = false;
	for (char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		char c = p[n];
		p[n] = '\0';
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ...: the last mount there is the one in use;
		 * one without a device (overlay, tmpfs, nfs: major 0) means there is none. */
		const char *f[5];
		size_t k = 0;
		for (const char *q = p; k < 5 && *q; k++) {
			f[k] = q;
			q += strcspn(q, " ");
			q += strspn(q, " ");
		}
		unsigned a, b;
		if (k == 5 && !strncmp(f[4], mountpoint, mlen) && f[4][mlen] == ' ' && sscanf(f[2], "%u:%u", &a, &b) == 2) {
			maj = a, min = b;
			found = a != 0;
		}
		p += n + (c == '\n');
	}
	if (!found)
		return 0;
	struct fb_blockdev d = { 0 };
	int r = fb_blockdev_from_devnum(maj, min, &d, ret_msg);
	if (r < 0)
		return r;
	*ret = d;
	return 1;
}

int fb_blockdev_of_path(const char *dev, struct fb_blockdev *ret, char **ret_msg)
{
	struct fb_blockdev d = { 0 };
	_cleanup_close_ int fd = fb_open(dev, O_PATH, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		*ret_msg = fb_strdupf("cannot open the device '%s': %s", dev, strerror(fd < 0 ? -fd : errno));
		return fd < 0 ? fd : -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		int r = fb_blockdev_from_devnum(major(st.st_rdev), minor(st.st_rdev), &d, ret_msg);
		if (r < 0)
			return r;
	} else if (S_ISREG(st.st_mode)) {
		if (!(d.disk = strdup(dev)))
			return -ENOMEM;
	} else {
		*ret_msg = fb_strdupf("'%s' is not a block device or an image file", dev);
		return -ENOTBLK;
	}
	*ret = d;
	return 0;
}

int fb_blockdev_open(const struct fb_blockdev *d, int flags, char **ret_msg)
{
	int fd = fb_open(d->disk, flags | O_NONBLOCK, 0);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		fd = r;
	}
	if (fd < 0) {
		*ret_msg = fb_strdupf("cannot open '%s': %s", d->disk, strerror(-fd));
		return fd;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		close(fd);
		*ret_msg = fb_strdupf("'%s' is not a block device or an image file", d->disk);
		return -ENOTBLK;
	}
	return fd;
}

/* 1 found, 0 nothing to grow (*ret_msg says why), -errno. */
static int locate(json_object *section, struct fb_blockdev *ret, char **ret_msg)
{
	json_object *v;
	if (section && json_object_object_get_ex(section, "device", &v)) {
		int r = fb_blockdev_of_path(json_object_get_string(v), ret, ret_msg);
		return r < 0 ? r : 1;
	}
	int r = fb_blockdev_of_mount("/", ret, ret_msg);
	if (r == 0 && !*ret_msg)
		*ret_msg = strdup("the root filesystem is not on a block device");
	return r;
}

/* ---- the plan: what is missing ---- */

struct plan {
	bool is_gpt, is_blk;
	uint64_t disk_size;
	unsigned partno;
	uint64_t start, size;  /* the partition now, bytes */
	uint64_t new_size;     /* its size when grown (== size: nothing to do) */
	bool move_backup;      /* GPT backup not at the end */
	char fstype[16];
	uint64_t fs_size;      /* bytes; 0 unknown */
	uint64_t fs_block;
};

static int disk_size(int fd, bool *ret_blk, uint64_t *ret)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*ret_blk = S_ISBLK(st.st_mode);
	if (S_ISREG(st.st_mode)) {
		*ret = (uint64_t)st.st_size / GPT_SECTOR * GPT_SECTOR;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	uint64_t sz;
	if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
		return -errno;
	*ret = sz / GPT_SECTOR * GPT_SECTOR;
	return 0;
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

/* The filesystem in the partition: type by libblkid, size from an ext superblock. */
static void probe_fs(int fd, struct plan *p)
{
	blkid_probe pr = blkid_new_probe();
	if (!pr)
		return;
	const char *type = NULL;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)p->start, (blkid_loff_t)p->size) == 0 &&
	    blkid_probe_enable_superblocks(pr, 1) == 0 && blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE) == 0 &&
	    blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 && type &&
	    strlen(type) < sizeof(p->fstype))
		memcpy(p->fstype, type, strlen(type) + 1);
	blkid_free_probe(pr);
	if (strncmp(p->fstype, "ext", 3))
		return;
	uint8_t sb[1024];
	if (pread_full(fd, sb, sizeof(sb), p->start + 1024) < 0)
		return;
	uint16_t magic;
	uint32_t lo, hi = 0, log, incompat;
	memcpy(&magic, sb + 0x38, 2);
	memcpy(&lo, sb + 0x4, 4);
	memcpy(&log, sb + 0x18, 4);
	memcpy(&incompat, sb + 0x60, 4);
	if (le32toh(incompat) & 0x80) /* 64bit */
		memcpy(&hi, sb + 0x150, 4);
	if (le16toh(magic) != 0xef53 || le32toh(log) > 6)
		return;
	p->fs_block = UINT64_C(1024) << le32toh(log);
	p->fs_size = ((uint64_t)le32toh(hi) << 32 | le32toh(lo)) * p->fs_block;
}

static int plan_gpt(int fd, const struct fb_blockdev *d, struct plan *p, char **ret_msg)
{
	_cleanup_free_ struct gpt_disk *g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	int r = gpt_read(fd, g);
	if (r < 0)
		return r;
	const struct gpt_part *t = NULL;
	for (unsigned i = 0; i < g->n; i++)
		if (d->partno ? g->part[i].number == d->partno : !t || g->part[i].start > t->start)
			t = &g->part[i];
	if (!t) {
		*ret_msg = fb_strdupf("partition %u is not in the GPT of '%s'", d->partno, d->disk);
		return -ENOENT;
	}
	for (unsigned i = 0; i < g->n; i++)
		if (g->part[i].start > t->start) {
			*ret_msg = fb_strdupf("partition %u is not the last one on '%s': not grown", t->number, d->disk);
			return 0;
		}
	uint64_t last_lba = p->disk_size / GPT_SECTOR - 1;
	uint64_t array_sectors = ((uint64_t)g->num_entries * GPT_ENTRY_SIZE + GPT_SECTOR - 1) / GPT_SECTOR;
	if (last_lba < array_sectors + 2 || g->alternate_lba > last_lba) {
		*ret_msg = fb_strdupf("the GPT of '%s' is larger than the disk", d->disk);
		return -EBADMSG;
	}
	uint64_t usable_end = (last_lba - array_sectors) * GPT_SECTOR; /* last usable byte + 1 */
	p->is_gpt = true;
	p->move_backup = g->alternate_lba != last_lba;
	p->partno = t->number;
	p->start = t->start;
	p->size = t->size;
	p->new_size = p->size;
	uint64_t end = align_down(usable_end, MiB);
	if (end > t->start + t->size && usable_end - (t->start + t->size) >= SLACK)
		p->new_size = end - t->start;
	return 1;
}

static int plan_mbr(int fd, const struct fb_blockdev *d, struct plan *p, char **ret_msg)
{
	struct mbr m;
	int r = pread_full(fd, &m, sizeof(m), 0);
	if (r < 0)
		return r;
	if (le16toh(m.signature) != 0xaa55) {
		*ret_msg = fb_strdupf("no partition table on '%s'", d->disk);
		return 0;
	}
	int best = -1;
	for (int i = 0; i < 4; i++) {
		uint64_t s = le32toh(m.part[i].first_lba), n = le32toh(m.part[i].sectors);
		if (m.part[i].type == 0 || n == 0)
			continue;
		if (m.part[i].type == 0xee) {
			*ret_msg = fb_strdupf("'%s' has a damaged GPT: not grown", d->disk);
			return -EBADMSG;
		}
		if (d->partno ? (unsigned)i + 1 == d->partno
			      : best < 0 || s > le32toh(m.part[best].first_lba))
			best = i;
		(void)n;
	}
	if (best < 0) {
		*ret_msg = fb_strdupf("partition %u is not in the MBR of '%s'", d->partno, d->disk);
		return -ENOENT;
	}
	uint64_t s = le32toh(m.part[best].first_lba), n = le32toh(m.part[best].sectors);
	for (int i = 0; i < 4; i++)
		if (i != best && m.part[i].type && le32toh(m.part[i].first_lba) > s) {
			*ret_msg = fb_strdupf("partition %d is not the last one on '%s': not grown", best + 1, d->disk);
			return 0;
		}
	uint8_t t = m.part[best].type;
	if (t == 0x05 || t == 0x0f || t == 0x85) {
		*ret_msg = fb_strdupf("the last partition of '%s' is an extended one: not grown", d->disk);
		return 0;
	}
	/* 32-bit LBAs: the partition may end at sector 2^32 - 1 at most. */
	uint64_t limit = p->disk_size;
	if (limit > (UINT64_C(1) << 32) * GPT_SECTOR)
		limit = (UINT64_C(1) << 32) * GPT_SECTOR - GPT_SECTOR;
	p->partno = (unsigned)best + 1;
	p->start = s * GPT_SECTOR;
	p->size = n * GPT_SECTOR;
	p->new_size = p->size;
	uint64_t end = align_down(limit, MiB);
	if (end > p->start + p->size && limit - (p->start + p->size) >= SLACK)
		p->new_size = end - p->start;
	return 1;
}

/* 1: a plan (P), 0: nothing to grow (*ret_msg why), -errno. */
static int make_plan(int fd, const struct fb_blockdev *d, struct plan *p, char **ret_msg)
{
	*p = (struct plan){ 0 };
	int r = disk_size(fd, &p->is_blk, &p->disk_size);
	if (r < 0)
		return r;
	r = plan_gpt(fd, d, p, ret_msg);
	if (r == -ENXIO)
		r = plan_mbr(fd, d, p, ret_msg);
	if (r == -EBADMSG && !*ret_msg)
		*ret_msg = fb_strdupf("the GPT of '%s' is damaged: not grown", d->disk);
	if (r > 0)
		probe_fs(fd, p);
	return r;
}

static bool fs_fills(const struct plan *p, uint64_t part_size)
{
	if (!p->fs_size)
		return true; /* not a filesystem this step grows */
	return p->fs_size + SLACK > part_size;
}

static int growfs_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(fb_blockdev_done) struct fb_blockdev d = { 0 };
	int r = locate(section, &d, ret_msg);
	if (r <= 0)
		return r == 0 ? 1 : r;
	_cleanup_close_ int fd = fb_blockdev_open(&d, O_RDONLY, ret_msg);
	if (fd < 0)
		return fd;
	struct plan p;
	r = make_plan(fd, &d, &p, ret_msg);
	if (r <= 0)
		return r == 0 ? 1 : r;
	return !p.move_backup && p.new_size == p.size && fs_fills(&p, p.size);
}

/* The kernel's view of the partition: BLKPG_RESIZE_PARTITION on the disk. */
static int tell_kernel(int fd, const struct plan *p)
{
	struct blkpg_partition part = {
		.start = (long long)p->start,
		.length = (long long)p->new_size,
		.pno = (int)p->partno,
	};
	struct blkpg_ioctl_arg arg = {
		.op = BLKPG_RESIZE_PARTITION,
		.datalen = sizeof(part),
		.data = &part,
	};
	return ioctl(fd, BLKPG, &arg) < 0 ? -errno : 0;
}

static int mbr_grow(int fd, const struct plan *p)
{
	struct mbr_part rec;
	uint64_t off = offsetof(struct mbr, part) + (p->partno - 1) * sizeof(rec);
	int r = pread_full(fd, &rec, sizeof(rec), off);
	if (r < 0)
		return r;
	uint64_t sectors = p->new_size / GPT_SECTOR;
	if (sectors > UINT32_MAX)
		return -EFBIG;
	rec.sectors = htole32((uint32_t)sectors);
	if (!mbr_lba_chs(p->start / GPT_SECTOR + sectors - 1, rec.last_chs))
		memset(rec.last_chs, 0xff, 3) /* as fdisk writes past cylinder 1023 */;
	if ((r = pwrite_full(fd, &rec, sizeof(rec), off)) < 0)
		return r;
	return fdatasync(fd) < 0 ? -errno : 0;
}

static enum fb_result growfs_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(fb_blockdev_done) struct fb_blockdev d = { 0 };
	int r = locate(section, &d, ret_msg);
	if (r <= 0)
		return r == 0 ? FB_OK : FB_FAILED;
	_cleanup_close_ int fd = fb_blockdev_open(&d, O_RDWR, ret_msg);
	if (fd < 0)
		return FB_FAILED;
	struct plan p;
	r = make_plan(fd, &d, &p, ret_msg);
	if (r <= 0)
		return r == 0 ? FB_OK : FB_FAILED;
	uint64_t old = p.size;
	if (p.is_gpt && p.move_backup && (r = gpt_relocate_backup(fd, p.disk_size)) < 0) {
		*ret_msg = fb_strdupf("cannot move the backup GPT of '%s' to its end: %s", d.disk, strerror(-r));
		return FB_FAILED;
	}
	if (p.new_size != p.size) {
		r = p.is_gpt ? gpt_resize_partition(fd, p.partno, p.new_size) : mbr_grow(fd, &p);
		if (r < 0) {
			*ret_msg = fb_strdupf("cannot grow partition %u of '%s': %s", p.partno, d.disk, strerror(-r));
			return FB_FAILED;
		}
		if (p.is_blk && (r = tell_kernel(fd, &p)) < 0) {
			*ret_msg = fb_strdupf("cannot tell the kernel the new size of partition %u of '%s': %s", p.partno, d.disk,
					      strerror(-r));
			return FB_FAILED;
		}
	}
	char fsmsg[64] = "";
	if (!fs_fills(&p, p.new_size)) {
		/* resize2fs gets the partition or image opened inside the root (fb_fd_path): given
		 * ROOT + path it would follow a symlink in the tree to a device or file outside. */
		_cleanup_free_ char *part = NULL, *dev = NULL, *size = NULL;
		_cleanup_close_ int pfd = -1;
		if (p.is_blk && d.part_dev) {
			part = strdup(d.part_dev);
		} else if (p.is_blk) {
			/* A whole disk was given: the kernel's name of its partition N, "sda2" or
			 * "nvme0n1p2"/"mmcblk0p2" after a name ending in a digit. */
			size_t n = strlen(d.disk);
			bool digit = n > 0 && d.disk[n - 1] >= '0' && d.disk[n - 1] <= '9';
			part = fb_strdupf("%s%s%u", d.disk, digit ? "p" : "", p.partno);
		}
		if (p.is_blk && part && (pfd = fb_open(part, O_PATH, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot open '%s': %s", part, strerror(-pfd));
			return FB_FAILED;
		}
		if (p.is_blk && part) {
			dev = fb_fd_path(pfd, part, true);
		} else if (!p.is_blk) {
			/* An image file: e2fsprogs opens "FILE?offset=N"; the size must be given. */
			_cleanup_free_ char *file = fb_fd_path(fd, d.disk, true);
			dev = file ? fb_strdupf("%s?offset=%llu", file, (unsigned long long)p.start) : NULL;
			part = fb_strdupf("%s?offset=%llu", d.disk, (unsigned long long)p.start);
			size = fb_strdupf("%lluK", (unsigned long long)(p.new_size / 1024));
		}
		if (!dev || !part || (!p.is_blk && !size))
			return FB_FAILED;
		char *argv[] = { "resize2fs", dev, size, NULL };
		r = fb_run(argv);
		if (r != 0) {
			*ret_msg = r < 0 ? fb_strdupf("cannot run 'resize2fs': %s", strerror(-r))
					 : fb_strdupf("'resize2fs %s' exited with %d", part, r);
			return FB_FAILED;
		}
		/* resize2fs cuts a regular file to the new filesystem's size, not counting the
		 * offset (e2fsprogs resize/main.c): give the image its size back and rewrite the
		 * backup GPT that was at its end. */
		struct stat st;
		if (!p.is_blk && fstat(fd, &st) == 0 && (uint64_t)st.st_size < p.disk_size &&
		    ((r = ftruncate(fd, (off_t)p.disk_size) < 0 ? -errno : 0) < 0 ||
		     (p.is_gpt && (r = gpt_relocate_backup(fd, p.disk_size)) < 0))) {
			*ret_msg = fb_strdupf("cannot restore the size and backup GPT of '%s' after resize2fs: %s", d.disk,
					      strerror(-r));
			return FB_FAILED;
		}
		snprintf(fsmsg, sizeof(fsmsg), ", %s grown", p.fstype);
	} else if (p.fstype[0] && strncmp(p.fstype, "ext", 3)) {
		snprintf(fsmsg, sizeof(fsmsg), ", %s not grown (ext2/3/4 only)", p.fstype);
	}
	char a[24], b[24];
	format_size_human(old, a);
	format_size_human(p.new_size, b);
	*ret_msg = fb_strdupf("partition %u of '%s' %s -> %s%s", p.partno, d.disk, a, b, fsmsg);
	return FB_OK;
}

const struct fb_step step_growfs = {
	.name = "growfs",
	.config_key = "growfs",
	.schema = &growfs_schema,
	.needs_config = false,
	.required = false,
	.check = growfs_check,
	.apply = growfs_apply,
};
