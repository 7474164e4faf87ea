/* The disk a network install writes to (fb-disk.h). */
#include "fb-disk.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <strings.h>

/* A sysfs attribute says its size is a page: 64 KiB on some arm64 kernels. */
#define SYS_FILE_MAX (64u * 1024)
/* udev's record of one device: a few hundred bytes, more with many links. */
#define UDEV_DATA_MAX (64u * 1024)

/* Block devices no install goes to: loop devices and RAM disks, optical and floppy drives,
 * device-mapper, md RAID, network block devices, raw flash. */
static const char *const skipped[] = { "loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd", "mtdblock" };

/* Where each identity comes from, the first found winning: udev's database, which names
 * /dev/disk/by-id and by-path and so what people copy from there, then the kernel's own
 * attributes for a disk udev has no record of. */
static const struct source {
	size_t field; /* of struct fb_disk, a char * */
	bool udev;
	const char *name; /* a udev property, or a file under sys/block/NAME */
} sources[] = {
	{ offsetof(struct fb_disk, serial), true, "ID_SERIAL_SHORT" },
	{ offsetof(struct fb_disk, serial), true, "ID_SERIAL" },      /* virtio-blk: udev sets only this */
	{ offsetof(struct fb_disk, serial), false, "serial" },        /* virtio-blk */
	{ offsetof(struct fb_disk, serial), false, "device/serial" }, /* NVMe: the controller's */
	{ offsetof(struct fb_disk, wwn), true, "ID_WWN_WITH_EXTENSION" },
	{ offsetof(struct fb_disk, wwn), true, "ID_WWN" },
	{ offsetof(struct fb_disk, wwn), false, "wwid" },        /* NVMe namespace: "eui.HEX", "nvme.HEX-..." */
	{ offsetof(struct fb_disk, wwn), false, "device/wwid" }, /* SCSI, from VPD page 0x83: "naa.HEX" */
	{ offsetof(struct fb_disk, path), true, "ID_PATH" },
	{ offsetof(struct fb_disk, model), false, "device/model" },
	{ offsetof(struct fb_disk, model), true, "ID_MODEL" },
};

static void disk_done(struct fb_disk *d)
{
	free(d->name);
	free(d->dev);
	free(d->model);
	free(d->serial);
	free(d->wwn);
	free(d->path);
}

void fb_disks_free(struct fb_disk *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		disk_done(&d[i]);
	free(d);
}

/* LEN bytes of S as a value in *RET: trailing spaces and newlines cut (udev cuts them from
 * what it copies; SCSI models and older kernels' NVMe serials are padded with spaces). NULL
 * when empty, longer than FB_DISK_VALUE_MAX or holding anything but printable ASCII: it comes
 * from a device's firmware and reaches the console, where a control character or an 8-bit C1
 * byte (0x9b is CSI to the Linux console) could rewrite what people read, and a rule could not
 * name it anyway. */
static int value_dup(const char *s, size_t len, char **ret)
{
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\n'))
		len--;
	bool ok = len > 0 && len <= FB_DISK_VALUE_MAX;
	for (size_t i = 0; ok && i < len; i++)
		ok = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f;
	char *v = NULL;
	if (ok && !(v = strndup(s, len)))
		return -ENOMEM;
	*ret = v;
	return 0;
}

/* The value of DIR/FILE, NULL when it cannot be read: an attribute the kernel does not have
 * for this kind of disk. */
static int sys_value(const char *dir, const char *file, char **ret)
{
	_cleanup_free_ char *path = strdupf("%s/%s", dir, file), *buf = NULL;
	size_t len;
	if (!path)
		return -ENOMEM;
	int r = read_file_flags(path, O_NOFOLLOW, SYS_FILE_MAX, &buf, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		*ret = NULL;
		return 0;
	}
	return value_dup(buf, len, ret);
}

/* DIR/FILE is "1" (true) or "0" (false); anything else, or no file, is DEFAULT. */
static int sys_flag(const char *dir, const char *file, bool def, bool *ret)
{
	_cleanup_free_ char *v = NULL;
	int r = sys_value(dir, file, &v);
	if (r < 0)
		return r;
	*ret = v && STREQ(v, "0") ? false : v && STREQ(v, "1") ? true : def;
	return 0;
}

/* The property KEY of udev's record DATA (its "E:KEY=VALUE" lines), NULL when it has none. */
static int udev_value(const char *data, const char *key, char **ret)
{
	size_t kl = strlen(key);
	for (const char *line = data; line && *line;) {
		size_t len = strcspn(line, "\n");
		if (len >= 3 + kl && strncmp(line, "E:", 2) == 0 && strncmp(line + 2, key, kl) == 0 && line[2 + kl] == '=')
			return value_dup(line + 3 + kl, len - 3 - kl, ret);
		line += len + (line[len] == '\n');
	}
	*ret = NULL;
	return 0;
}

/* "MAJ:MIN", as sys/block/NAME/dev holds it: it becomes part of a path. */
static bool devno_valid(const char *s)
{
	size_t a = strspn(s, "0123456789"), b = a && a <= 10 && s[a] == ':' ? strspn(s + a + 1, "0123456789") : 0;
	return b && b <= 10 && !s[a + 1 + b];
}

/* udev's record of the disk in DIR (ROOT/run/udev/data/bMAJ:MIN), NULL when there is none
 * (no udev, or not yet settled). */
static int udev_data(const char *root, const char *dir, char **ret)
{
	_cleanup_free_ char *devno = NULL, *path = NULL, *data = NULL;
	int r = sys_value(dir, "dev", &devno);
	if (r < 0)
		return r;
	if (devno && devno_valid(devno)) {
		if (!(path = strdupf("%s/run/udev/data/b%s", root, devno)))
			return -ENOMEM;
		r = read_file_flags(path, O_NOFOLLOW, UDEV_DATA_MAX, &data, NULL);
		if (r == -ENOMEM)
			return r;
	}
	*ret = TAKE_PTR(data);
	return 0;
}

/* The disk NAME under ROOT in *RET: 0, 1 when it is not one to list, -ENOMEM. */
static int disk_read(const char *root, const char *name, struct fb_disk *ret)
{
	_cleanup_(disk_done) struct fb_disk d = { 0 };
	_cleanup_free_ char *dir = strdupf("%s/sys/block/%s", root, name), *size = NULL, *udev = NULL;
	uint64_t sectors;
	bool hidden;
	if (!dir)
		return -ENOMEM;
	int r = sys_value(dir, "size", &size);
	if (r < 0)
		return r;
	/* In 512-byte sectors whatever the disk's logical block size. 0: a card reader or an
	 * optical drive without a medium. */
	if (!size || parse_u64(size, &sectors) < 0 || sectors == 0 || sectors > UINT64_MAX / 512)
		return 1;
	d.size = sectors * 512;
	/* A flag that cannot be read is taken as set: such a disk is then never written to
	 * unless named, and never when it may be read-only. */
	if ((r = sys_flag(dir, "hidden", false, &hidden)) < 0 || (r = sys_flag(dir, "removable", true, &d.removable)) < 0 ||
	    (r = sys_flag(dir, "ro", true, &d.read_only)) < 0)
		return r;
	if (hidden)
		return 1;
	if ((r = udev_data(root, dir, &udev)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(sources); i++) {
		const struct source *s = &sources[i];
		char **field = (char **)((char *)&d + s->field);
		if (*field)
			continue;
		r = s->udev ? udev_value(udev, s->name, field) : sys_value(dir, s->name, field);
		if (r < 0)
			return r;
	}
	if (!(d.name = strdup(name)) || !(d.dev = strdupf("/dev/%s", name)))
		return -ENOMEM;
	*ret = d;
	d = (struct fb_disk){ 0 };
	return 0;
}

static bool skipped_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(skipped); i++)
		if (str_starts_with(name, skipped[i]))
			return true;
	/* It becomes /dev/NAME. (cciss's "cciss!c0d0", /dev/cciss/c0d0, is left out: its
	 * controllers have been driven by hpsa, as sd disks, since Linux 4.14.) */
	return !valid_name(name, 64);
}

static int cmp_disk(const void *a, const void *b)
{
	return strverscmp(((const struct fb_disk *)a)->name, ((const struct fb_disk *)b)->name);
}

struct disks {
	struct fb_disk *d;
	size_t n;
};

static void disks_done(struct disks *l)
{
	fb_disks_free(l->d, l->n);
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

int fb_disks_scan(const char *root, struct fb_disk **ret, size_t *ret_n)
{
	_cleanup_(disks_done) struct disks l = { 0 };
	_cleanup_free_ char *dir = strdupf("%s/sys/block", root);
	if (!dir)
		return -ENOMEM;
	_cleanup_(closedirp) DIR *dd = opendir(dir);
	if (!dd)
		return -errno;
	size_t cap = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(dd);
		if (!de) {
			if (errno)
				return -errno;
			break;
		}
		if (de->d_name[0] == '.' || skipped_name(de->d_name))
			continue;
		if (l.n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct fb_disk *nd = reallocarray(l.d, nc, sizeof(*nd));
			if (!nd)
				return -ENOMEM;
			l.d = nd;
			cap = nc;
		}
		int r = disk_read(root, de->d_name, &l.d[l.n]);
		if (r < 0)
			return r;
		if (r == 0)
			l.n++;
	}
	if (l.n)
		qsort(l.d, l.n, sizeof(*l.d), cmp_disk);
	*ret_n = l.n;
	*ret = TAKE_PTR(l.d);
	l.n = 0;
	return 0;
}

char *fb_disk_describe(const struct fb_disk *d)
{
	char size[24];
	format_size_human(d->size, size);
	return strdupf("%s (%s%s%s%s%s%s%s%s%s%s%s)", d->name, size, d->serial ? ", serial " : "", d->serial ?: "",
		       d->model ? ", " : "", d->model ?: "", d->wwn ? ", wwn " : "", d->wwn ?: "", d->path ? ", path " : "",
		       d->path ?: "", d->removable ? ", removable" : "", d->read_only ? ", read-only" : "");
}

/* What a rule names a disk by. */
static const struct rule_key {
	const char *prefix;
	size_t field; /* of struct fb_disk, a char * */
	bool wwn;
} rule_keys[] = {
	{ "serial:", offsetof(struct fb_disk, serial), false },
	{ "wwn:", offsetof(struct fb_disk, wwn), true },
	{ "path:", offsetof(struct fb_disk, path), false },
};

struct rule {
	const struct rule_key *key;
	const char *value;
};

/* A WWN without its "0x" (udev's form) or "naa." prefix (the kernel's wwid for the same SCSI
 * NAA designator: "naa.5000c500a1b2c3d4" is udev's "0x5000c500a1b2c3d4"). */
static const char *wwn_body(const char *s)
{
	if (strncasecmp(s, "0x", 2) == 0)
		return s + 2;
	if (strncasecmp(s, "naa.", 4) == 0)
		return s + 4;
	return s;
}

static bool rule_matches(const struct fb_disk *d, const void *ctx)
{
	const struct rule *rl = ctx;
	const char *v = *(char *const *)((const char *)d + rl->key->field);
	if (!v)
		return false;
	return rl->key->wwn ? strcasecmp(wwn_body(v), wwn_body(rl->value)) == 0 : STREQ(v, rl->value);
}

static bool candidate(const struct fb_disk *d, const void *ctx)
{
	(void)ctx;
	return !d->removable && !d->read_only;
}

/* The disks of D that KEEP keeps (all with KEEP NULL), described, joined with "; ". */
static char *disks_list(const struct fb_disk *d, size_t n, bool (*keep)(const struct fb_disk *, const void *),
			const void *ctx)
{
	_cleanup_strv_ char **lines = NULL;
	for (size_t i = 0; i < n; i++) {
		if (keep && !keep(&d[i], ctx))
			continue;
		_cleanup_free_ char *line = fb_disk_describe(&d[i]);
		if (!line || strv_push(&lines, line) < 0)
			return NULL;
	}
	return strv_join(lines, "; ");
}

static int fail(char **ret_error, int r, char *msg)
{
	if (!msg)
		return -ENOMEM;
	if (ret_error)
		*ret_error = msg;
	else
		free(msg);
	return r;
}

static int rule_parse(const char *s, struct rule *ret, char **ret_error)
{
	if (strlen(s) > FB_DISK_RULE_MAX)
		return fail(ret_error, -EINVAL, strdupf("the disk rule is longer than %u characters", FB_DISK_RULE_MAX));
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			_cleanup_free_ char *shown = str_printable(s, strlen(s), NULL);
			if (!shown)
				return -ENOMEM;
			return fail(ret_error, -EINVAL,
				    strdupf("the disk rule '%s' has a character that is not printable ASCII", shown));
		}
	for (size_t i = 0; i < ARRAY_SIZE(rule_keys); i++) {
		const struct rule_key *k = &rule_keys[i];
		if (!str_starts_with(s, k->prefix))
			continue;
		const char *v = s + strlen(k->prefix);
		/* The link's whole name too, as people copy it from ls /dev/disk/by-path. */
		if (STREQ(k->prefix, "path:") && str_starts_with(v, "/dev/disk/by-path/"))
			v += strlen("/dev/disk/by-path/");
		if (!*(k->wwn ? wwn_body(v) : v))
			return fail(ret_error, -EINVAL, strdupf("the disk rule '%s' has no value", s));
		*ret = (struct rule){ k, v };
		return 0;
	}
	return fail(ret_error, -EINVAL,
		    strdupf("'%s' is not a disk rule: give serial:VALUE, wwn:VALUE or path:VALUE", s));
}

int fb_disk_pick(const struct fb_disk *d, size_t n, const char *rule, size_t *ret_index, char **ret_error)
{
	bool (*keep)(const struct fb_disk *, const void *) = candidate;
	struct rule rl = { 0 };
	if (rule) {
		int r = rule_parse(rule, &rl, ret_error);
		if (r < 0)
			return r;
		keep = rule_matches;
	}
	size_t found = n, count = 0;
	for (size_t i = 0; i < n; i++)
		if (keep(&d[i], &rl)) {
			if (count++ == 0)
				found = i;
		}
	if (count == 1 && !(rule && d[found].read_only)) {
		*ret_index = found;
		return 0;
	}

	_cleanup_free_ char *all = disks_list(d, n, NULL, NULL), *matching = disks_list(d, n, keep, &rl);
	if (!all || !matching)
		return -ENOMEM;
	if (rule && count == 1)
		return fail(ret_error, -EROFS,
			    strdupf("the disk that '%s' names is read-only: %s; the kernel refuses to write to it (a "
				    "write-protect switch, or a device that cannot be written)",
				    rule, matching));
	if (rule && count == 0)
		return fail(ret_error, -ENODEV,
			    n ? strdupf("no disk matches '%s'; the disks seen: %s", rule, all)
			      : strdupf("no disk matches '%s': there are no disks at all", rule));
	if (rule)
		return fail(ret_error, -ENOTUNIQ,
			    strdupf("more than one disk matches '%s': %s; name one by another of serial:, wwn: or path:",
				    rule, matching));
	if (count == 0)
		return fail(ret_error, -ENODEV,
			    n ? strdupf("no disk to install to: none is both fixed and writable: %s; a removable disk "
					"can be named on the kernel command line with pmoves.disk=serial:S, wwn:W or path:P",
					all)
			      : strdup("no disk to install to: there are no disks at all"));
	return fail(ret_error, -ENOTUNIQ,
		    strdupf("more than one disk to install to: %s; choose one on the kernel command line with "
			    "pmoves.disk=serial:S, wwn:W or path:P",
			    matching));
}
