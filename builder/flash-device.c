/* The safety rules of flash, from what the kernel says: ROOT/sys/dev/block/MAJ:MIN (the
 * device's sysfs directory: size, ro, removable, partition, holders/, slaves/, device/type of
 * an MMC card), ROOT/proc/self/mountinfo and ROOT/proc/swaps. The transport is read from the
 * sysfs path as lsblk does without udev: a USB device has a usbN bus on its way to the root. */
#include "flash-device.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define MAX_DEPTH 8

static int path_of(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_of(char **ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(ret, fmt, ap);
	va_end(ap);
	return n < 0 ? -ENOMEM : 0;
}

/* One line of a sysfs attribute, trimmed; "" when missing. */
static void attr(const char *dir, const char *name, char *buf, size_t size)
{
	_cleanup_free_ char *p = NULL, *text = NULL;
	size_t len;
	buf[0] = '\0';
	if (path_of(&p, "%s/%s", dir, name) < 0 || read_file(p, 4096, &text, &len) < 0)
		return;
	char *s = text;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strcspn(s, "\n");
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	snprintf(buf, size, "%.*s", (int)n, s);
}

static bool attr_exists(const char *dir, const char *name)
{
	_cleanup_free_ char *p = NULL;
	return path_of(&p, "%s/%s", dir, name) == 0 && access(p, F_OK) == 0;
}

/* The sysfs directory of DEVNO, resolved. */
static int sys_dir(const char *root, dev_t devno, char **ret)
{
	_cleanup_free_ char *link = NULL;
	if (path_of(&link, "%s/sys/dev/block/%u:%u", root, major(devno), minor(devno)) < 0)
		return -ENOMEM;
	char *r = realpath(link, NULL);
	if (!r)
		return -errno;
	*ret = r;
	return 0;
}

/* The device number of NAME (sys/class/block/NAME/dev). */
static int devno_of_name(const char *root, const char *name, dev_t *ret)
{
	_cleanup_free_ char *dir = NULL;
	char dev[32];
	unsigned ma, mi;
	char extra;
	if (!valid_name(name, 63))
		return -EINVAL;
	if (path_of(&dir, "%s/sys/class/block/%s", root, name) < 0)
		return -ENOMEM;
	attr(dir, "dev", dev, sizeof(dev));
	if (sscanf(dev, "%u:%u%c", &ma, &mi, &extra) != 2)
		return -ENOENT;
	*ret = makedev(ma, mi);
	return 0;
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

int flash_dev_probe(const char *root, dev_t devno, struct flash_dev *ret)
{
	_cleanup_free_ char *dir = NULL;
	int r = sys_dir(root, devno, &dir);
	if (r < 0)
		return r;
	struct flash_dev d = { .devno = devno };
	snprintf(d.name, sizeof(d.name), "%s", base(dir));
	char v[64];
	uint64_t sectors = 0;
	attr(dir, "size", v, sizeof(v));
	if (parse_u64(v, &sectors) < 0 || sectors > UINT64_MAX / 512)
		return -EBADMSG;
	d.size = sectors * 512; /* sysfs counts 512-byte sectors whatever the block size */
	attr(dir, "ro", v, sizeof(v));
	d.ro = STREQ(v, "1");
	d.partition = attr_exists(dir, "partition");
	if (d.partition) {
		char *slash = strrchr(dir, '/');
		*slash = '\0';
		snprintf(d.disk, sizeof(d.disk), "%s", base(dir));
		*slash = '/';
	}
	attr(dir, "removable", v, sizeof(v));
	d.removable = STREQ(v, "1");
	attr(dir, "device/model", d.model, sizeof(d.model));
	if (!*d.model)
		attr(dir, "device/name", d.model, sizeof(d.model)); /* MMC cards */
	const char *n = d.partition ? d.disk : d.name;
	const char *t = str_starts_with(n, "nvme")	? "nvme"
			: str_starts_with(n, "mmcblk")	? "mmc"
			: str_starts_with(n, "loop")	? "loop"
			: strstr(dir, "/usb")		? "usb"
			: strstr(dir, "/virtio")	? "virtio"
			: strstr(dir, "/ata")		? "sata"
							: "";
	snprintf(d.transport, sizeof(d.transport), "%s", t);
	if (STREQ(t, "mmc"))
		attr(dir, "device/type", d.mmc_type, sizeof(d.mmc_type));
	*ret = d;
	return 0;
}

bool flash_dev_is_card(const struct flash_dev *d)
{
	return STREQ(d->transport, "usb") || d->removable || (STREQ(d->transport, "mmc") && STREQ(d->mmc_type, "SD"));
}

/* Is the block device DEVNO the disk DISK, one of its partitions, or built on one of them
 * (a device mapper or MD device whose slaves lead there)? *ret_name: DEVNO's name. */
static bool on_disk(const char *root, dev_t devno, const char *disk, int depth, char *ret_name, size_t size)
{
	_cleanup_free_ char *dir = NULL;
	if (depth > MAX_DEPTH || sys_dir(root, devno, &dir) < 0)
		return false;
	if (ret_name)
		snprintf(ret_name, size, "%s", base(dir));
	if (STREQ(base(dir), disk))
		return true;
	if (attr_exists(dir, "partition")) {
		char *slash = strrchr(dir, '/');
		*slash = '\0';
		return STREQ(base(dir), disk);
	}
	_cleanup_free_ char *slaves = NULL;
	if (path_of(&slaves, "%s/slaves", dir) < 0)
		return false;
	DIR *dd = opendir(slaves);
	bool found = false;
	struct dirent *e;
	while (dd && !found && (e = readdir(dd))) {
		dev_t s;
		if (e->d_name[0] != '.' && devno_of_name(root, e->d_name, &s) == 0)
			found = on_disk(root, s, disk, depth + 1, NULL, 0);
	}
	if (dd)
		closedir(dd);
	return found;
}

/* A mount's device: its major:minor, or for a file system that reports an anonymous one
 * (btrfs: 0:N), its source when that is /dev/NAME. */
static bool mount_devno(const char *root, unsigned ma, unsigned mi, const char *source, dev_t *ret)
{
	if (ma != 0) {
		*ret = makedev(ma, mi);
		return true;
	}
	return str_starts_with(source, "/dev/") && devno_of_name(root, base(source), ret) == 0;
}

static int refuse(char **ret_why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(char **ret_why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(ret_why, fmt, ap);
	va_end(ap);
	return n < 0 ? -ENOMEM : -EPERM;
}

static const char *const system_mounts[] = { "/", "/boot", "/boot/efi", "/usr" };

/* mountinfo: the running system's mounts on the disk, then any mount on it. */
static int check_mounts(const char *root, const struct flash_dev *d, char **ret_why)
{
	_cleanup_free_ char *p = NULL, *text = NULL;
	size_t len;
	if (path_of(&p, "%s/proc/self/mountinfo", root) < 0)
		return -ENOMEM;
	/* procfs files have no size: read_file reads to the end */
	int r = read_file(p, 16u << 20, &text, &len);
	if (r < 0)
		return r;
	for (int pass = 0; pass < 2; pass++) {
		_cleanup_free_ char *copy = strdup(text);
		if (!copy)
			return -ENOMEM;
		for (char *line = copy, *next; line && *line; line = next) {
			if ((next = strchr(line, '\n')))
				*next++ = '\0';
			unsigned ma, mi;
			char mnt[PATH_MAX], fstype[64], source[PATH_MAX];
			const char *sep = strstr(line, " - ");
			if (!sep || sscanf(line, "%*u %*u %u:%u %*s %4095s", &ma, &mi, mnt) != 3 ||
			    sscanf(sep + 3, "%63s %4095s", fstype, source) != 2)
				continue;
			bool sys = false;
			for (size_t i = 0; i < ARRAY_SIZE(system_mounts); i++)
				sys = sys || STREQ(mnt, system_mounts[i]);
			if (pass == 0 && !sys)
				continue;
			dev_t dn;
			char name[64] = "";
			if (!mount_devno(root, ma, mi, source, &dn) || !on_disk(root, dn, d->name, 0, name, sizeof(name)))
				continue;
			if (pass == 0)
				return refuse(ret_why, "it holds the running system ('%s' is on '%s')", mnt, name);
			return refuse(ret_why, "'%s' on it is mounted on '%s' (unmount it first)", name, mnt);
		}
	}
	return 0;
}

static int check_swaps(const char *root, const struct flash_dev *d, char **ret_why)
{
	_cleanup_free_ char *p = NULL, *text = NULL;
	size_t len;
	if (path_of(&p, "%s/proc/swaps", root) < 0)
		return -ENOMEM;
	int r = read_file(p, 1u << 20, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (char *line = text, *next; line && *line; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = '\0';
		char file[PATH_MAX];
		dev_t dn;
		char name[64] = "";
		if (sscanf(line, "%4095s", file) != 1 || !str_starts_with(file, "/dev/") ||
		    devno_of_name(root, base(file), &dn) < 0)
			continue;
		if (on_disk(root, dn, d->name, 0, name, sizeof(name)))
			return refuse(ret_why, "'%s' on it is used as swap (swapoff it first)", name);
	}
	return 0;
}

/* Anything in DIR/holders: a device mapper (LVM, dm-crypt) or MD array on it. */
static int check_holders_of(const char *dir, const char *what, char **ret_why)
{
	_cleanup_free_ char *h = NULL;
	if (path_of(&h, "%s/holders", dir) < 0)
		return -ENOMEM;
	DIR *dd = opendir(h);
	if (!dd)
		return 0;
	struct dirent *e;
	int r = 0;
	while (r == 0 && (e = readdir(dd)))
		if (e->d_name[0] != '.')
			r = refuse(ret_why, "'%s' is held by '%s' (LVM, MD RAID or dm-crypt: stop it first)", what, e->d_name);
	closedir(dd);
	return r;
}

static int check_holders(const char *root, const struct flash_dev *d, char **ret_why)
{
	_cleanup_free_ char *dir = NULL;
	int r = sys_dir(root, d->devno, &dir);
	if (r < 0)
		return r;
	r = check_holders_of(dir, d->name, ret_why);
	DIR *dd = opendir(dir);
	struct dirent *e;
	while (r == 0 && dd && (e = readdir(dd))) {
		_cleanup_free_ char *sub = NULL;
		if (e->d_name[0] == '.' || path_of(&sub, "%s/%s", dir, e->d_name) < 0 || !attr_exists(sub, "partition"))
			continue;
		r = check_holders_of(sub, e->d_name, ret_why);
	}
	if (dd)
		closedir(dd);
	return r;
}

int flash_dev_check(const char *root, const struct flash_dev *d, uint64_t image_size, bool force, char **ret_why)
{
	char a[24], b[24];
	if (d->partition)
		return refuse(ret_why, "it is partition '%s' of disk '%s': give the whole disk ('/dev/%s')", d->name,
			      d->disk, d->disk);
	int r = check_mounts(root, d, ret_why);
	if (r == 0)
		r = check_swaps(root, d, ret_why);
	if (r == 0)
		r = check_holders(root, d, ret_why);
	if (r < 0)
		return r;
	if (d->ro)
		return refuse(ret_why, "it is read-only (a card's lock switch?)");
	if (d->size < image_size) {
		format_size_human(d->size, a);
		format_size_human(image_size, b);
		return refuse(ret_why, "it is smaller than the image (%s < %s)", a, b);
	}
	if (force || flash_dev_is_card(d))
		return 0;
	if (STREQ(d->transport, "mmc") && STREQ(d->mmc_type, "MMC"))
		return refuse(ret_why, "it is a soldered eMMC (type MMC), a system disk candidate: --force writes it anyway");
	return refuse(ret_why, "it is not a card or stick (transport '%s', not removable): --force writes it anyway",
		      *d->transport ? d->transport : "unknown");
}
