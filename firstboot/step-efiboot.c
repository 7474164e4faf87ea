/* efiboot: report the Secure Boot state, and make sure the firmware has a Boot#### entry for
 * this disk's ESP loader; skipped on machines without UEFI (no /sys/firmware/efi).
 *
 * The variables are read and written through efivarfs (ROOT/sys/firmware/efi/efivars: each
 * file is 4 attribute bytes then the value), and the EFI_LOAD_OPTION and its device path are
 * parsed and built here (UEFI 2.10, 3.1.3 and 10.3), rather than with libefiboot or
 * efibootmgr: nothing more to ship in the image, and tests run on fixture trees of real byte
 * layouts. An entry matches when its device path has an HD() node whose partition GUID is the
 * ESP's and a File() node naming the loader (compared without regard to case), and it is in
 * BootOrder. A new entry, "PMOVES", is HD(N,GPT,GUID,START,SIZE)/File(LOADER), the short form
 * efibootmgr writes, put first in BootOrder.
 *
 * The ESP is the partition mounted on /boot/efi (ROOT/proc/self/mountinfo), or the first
 * partition of EFI System type on "efiboot": {"device": PATH} (a disk or an image file). The
 * loader is \EFI\systemd\systemd-boot<arch>.efi when the ESP has it, else the removable-media
 * path \EFI\BOOT\BOOT<ARCH>.EFI. */
#include "fb-step.h"
#include "firstboot.h"
#include "gpt.h"
#include "util.h"

#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define EFIVARS "/sys/firmware/efi/efivars"
#define GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c" /* EFI_GLOBAL_VARIABLE */
#define ESP_MOUNT "/boot/efi"
#define ENTRY_NAME "PMOVES"
#define VAR_MAX (64u * 1024u)
#define EFIVARFS_MAGIC 0xde5e81e4
#define ATTR_NV_BS_RT 0x7u
#define LOAD_OPTION_ACTIVE 0x1u

#if defined(__x86_64__)
#define ARCH_LOWER "x64"
#define ARCH_UPPER "X64"
#elif defined(__aarch64__)
#define ARCH_LOWER "aa64"
#define ARCH_UPPER "AA64"
#elif defined(__i386__)
#define ARCH_LOWER "ia32"
#define ARCH_UPPER "IA32"
#else
#define ARCH_LOWER "unknown"
#define ARCH_UPPER "UNKNOWN"
#endif

/* "efiboot": {"device": PATH}, optional: the disk or image file with the ESP, when not the
 * mounted one. */
static const struct fb_field efiboot_fields[] = {
	{ "device", FB_T_STRING, NULL, fb_valid_abs_path, NULL, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field efiboot_schema = { NULL, FB_T_OBJECT, efiboot_fields, NULL, NULL, 0, 0 };

static const uint8_t esp_type[16] = { 0xc1, 0x2a, 0x73, 0x28, 0xf8, 0x1f, 0x11, 0xd2,
				      0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

struct esp {
	unsigned partno;
	uint64_t start_lba, size_lba;
	uint8_t guid_disk[16]; /* the partition GUID as on disk (mixed-endian), as HD() holds it */
	char loader[64];       /* "\EFI\BOOT\BOOTX64.EFI" */
	char loader_fs[64];    /* the same under ESP_MOUNT: "/EFI/BOOT/BOOTX64.EFI" */
};

/* A variable's value (after the 4 attribute bytes). -ENOENT when missing. */
static int var_read(const char *name, uint8_t **ret, size_t *ret_len)
{
	_cleanup_free_ char *path = fb_strdupf(EFIVARS "/%s-" GLOBAL_GUID, name), *buf = NULL;
	size_t len;
	if (!path)
		return -ENOMEM;
	int r = fb_read(path, VAR_MAX, &buf, &len);
	if (r < 0)
		return r;
	if (len < 4)
		return -EBADMSG;
	uint8_t *v = malloc(len - 4 + 1);
	if (!v)
		return -ENOMEM;
	memcpy(v, buf + 4, len - 4);
	*ret = v;
	*ret_len = len - 4;
	return 0;
}

/* Write NAME with attributes NV|BS|RT. On efivarfs a variable is replaced by one write() of
 * attributes and value (no rename there), after clearing the immutable flag the kernel sets on
 * existing variables; elsewhere (a tree) the file is replaced atomically. */
static int var_write(const char *name, const uint8_t *val, size_t len)
{
	_cleanup_free_ char *path = fb_strdupf(EFIVARS "/%s-" GLOBAL_GUID, name);
	_cleanup_free_ uint8_t *buf = malloc(len + 4);
	if (!path || !buf)
		return -ENOMEM;
	uint32_t attr = htole32(ATTR_NV_BS_RT);
	memcpy(buf, &attr, 4);
	memcpy(buf + 4, val, len);
	_cleanup_close_ int dfd = fb_open(EFIVARS, O_RDONLY | O_DIRECTORY, 0);
	struct statfs sfs;
	if (dfd < 0)
		return dfd;
	if (fstatfs(dfd, &sfs) < 0)
		return -errno;
	if ((unsigned long)sfs.f_type != EFIVARFS_MAGIC)
		return fb_write(path, buf, len + 4, 0644, (uid_t)-1, (gid_t)-1);
	const char *base = strrchr(path, '/') + 1;
	_cleanup_close_ int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int flags;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
		flags &= ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
			return -errno;
	}
	ssize_t n = write(fd, buf, len + 4);
	if (n < 0)
		return -errno;
	return (size_t)n == len + 4 ? 0 : -EIO;
}

/* "enabled", "disabled", "setup mode" or "not supported". */
static const char *secure_boot_state(void)
{
	_cleanup_free_ uint8_t *sb = NULL, *setup = NULL;
	size_t n, m;
	if (var_read("SecureBoot", &sb, &n) < 0 || n != 1)
		return "not supported";
	if (var_read("SetupMode", &setup, &m) == 0 && m == 1 && setup[0] == 1)
		return "setup mode";
	return sb[0] == 1 ? "enabled" : "disabled";
}

/* ---- load options ---- */

struct load_option {
	uint32_t attributes;
	char desc[128];     /* ASCII; others as '?' */
	bool has_hd;
	uint8_t hd_guid[16];
	char file[128];     /* the File() node, ASCII */
};

/* UTF-16LE, NUL-terminated within MAX bytes, to ASCII. Returns the bytes used (with the NUL)
 * or 0 when not terminated. */
static size_t utf16_ascii(const uint8_t *p, size_t max, char *out, size_t out_size)
{
	size_t i = 0, o = 0;
	for (; i + 1 < max; i += 2) {
		uint16_t c = (uint16_t)(p[i] | p[i + 1] << 8);
		if (c == 0) {
			out[o] = '\0';
			return i + 2;
		}
		if (o + 1 < out_size)
			out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	return 0;
}

/* Parse an EFI_LOAD_OPTION: attributes, description, and the HD() and File() nodes of the
 * first device path. -EBADMSG when malformed. */
static int load_option_parse(const uint8_t *v, size_t len, struct load_option *ret)
{
	struct load_option o = { 0 };
	if (len < 6)
		return -EBADMSG;
	o.attributes = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
	size_t fpl = (size_t)(v[4] | v[5] << 8);
	size_t d = utf16_ascii(v + 6, len - 6, o.desc, sizeof(o.desc));
	if (d == 0 || fpl > len - 6 - d)
		return -EBADMSG;
	const uint8_t *p = v + 6 + d, *end = p + fpl;
	while (p + 4 <= end) {
		uint8_t type = p[0], sub = p[1];
		size_t nl = (size_t)(p[2] | p[3] << 8);
		if (nl < 4 || nl > (size_t)(end - p))
			return -EBADMSG;
		if (type == 0x7f && sub == 0xff)
			break; /* end of the (first) path */
		if (type == 4 && sub == 1 && nl == 42 && p[41] == 2) { /* HD(), GUID signature */
			o.has_hd = true;
			memcpy(o.hd_guid, p + 24, 16);
		} else if (type == 4 && sub == 4) {
			if (!utf16_ascii(p + 4, nl - 4, o.file, sizeof(o.file)))
				return -EBADMSG;
		}
		p += nl;
	}
	*ret = o;
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32));
}

/* EFI_LOAD_OPTION "PMOVES": HD(...)/File(LOADER)/End. */
static size_t load_option_build(const struct esp *e, uint8_t *out, size_t out_size)
{
	size_t dl = (strlen(ENTRY_NAME) + 1) * 2, fl = (strlen(e->loader) + 1) * 2;
	size_t fpl = 42 + 4 + fl + 4, total = 6 + dl + fpl;
	if (total > out_size || fpl > UINT16_MAX)
		return 0;
	memset(out, 0, total);
	put32(out, LOAD_OPTION_ACTIVE);
	put16(out + 4, (uint16_t)fpl);
	uint8_t *p = out + 6;
	for (const char *s = ENTRY_NAME; *s; s++, p += 2)
		put16(p, (uint8_t)*s);
	p += 2;
	p[0] = 4, p[1] = 1; /* media, hard drive */
	put16(p + 2, 42);
	put32(p + 4, e->partno);
	put64(p + 8, e->start_lba);
	put64(p + 16, e->size_lba);
	memcpy(p + 24, e->guid_disk, 16);
	p[40] = 2; /* partition format: GPT */
	p[41] = 2; /* signature type: GUID */
	p += 42;
	p[0] = 4, p[1] = 4; /* media, file path */
	put16(p + 2, (uint16_t)(4 + fl));
	p += 4;
	for (const char *s = e->loader; *s; s++, p += 2)
		put16(p, (uint8_t)*s);
	p += 2;
	p[0] = 0x7f, p[1] = 0xff; /* end of the path */
	put16(p + 2, 4);
	return total;
}

/* ---- the ESP ---- */

static int find_esp(json_object *section, struct esp *ret, char **ret_msg)
{
	_cleanup_(fb_blockdev_done) struct fb_blockdev d = { 0 };
	json_object *v;
	int r;
	if (section && json_object_object_get_ex(section, "device", &v)) {
		r = fb_blockdev_of_path(json_object_get_string(v), &d, ret_msg);
	} else {
		r = fb_blockdev_of_mount(ESP_MOUNT, &d, ret_msg);
		if (r == 0) {
			*ret_msg = strdup("no ESP mounted on '" ESP_MOUNT "'");
			return 0;
		}
	}
	if (r < 0)
		return r;
	_cleanup_close_ int fd = fb_open(d.disk, O_RDONLY, 0);
	if (fd < 0) {
		*ret_msg = fb_strdupf("cannot open '%s': %s", d.disk, strerror(-fd));
		return fd;
	}
	_cleanup_free_ struct gpt_disk *g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	r = gpt_read(fd, g);
	if (r == -ENXIO) {
		*ret_msg = fb_strdupf("'%s' has no GPT: no boot entry made", d.disk);
		return 0;
	}
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read the GPT of '%s': %s", d.disk, strerror(-r));
		return r;
	}
	const struct gpt_part *p = NULL;
	for (unsigned i = 0; i < g->n && !p; i++)
		if (d.partno ? g->part[i].number == d.partno : memcmp(g->part[i].type_guid, esp_type, 16) == 0)
			p = &g->part[i];
	if (!p) {
		*ret_msg = fb_strdupf("no EFI System partition on '%s'", d.disk);
		return 0;
	}
	struct esp e = { .partno = p->number, .start_lba = p->start / GPT_SECTOR, .size_lba = p->size / GPT_SECTOR };
	gpt_guid_swap(p->uuid, e.guid_disk);
	static const char *const loaders[] = { "/EFI/systemd/systemd-boot" ARCH_LOWER ".efi",
					       "/EFI/BOOT/BOOT" ARCH_UPPER ".EFI" };
	const char *pick = loaders[ARRAY_SIZE(loaders) - 1];
	for (size_t i = 0; i < ARRAY_SIZE(loaders); i++) {
		_cleanup_free_ char *path = fb_strdupf(ESP_MOUNT "%s", loaders[i]);
		if (path && fb_exists(path) > 0) {
			pick = loaders[i];
			break;
		}
	}
	snprintf(e.loader_fs, sizeof(e.loader_fs), "%s", pick);
	snprintf(e.loader, sizeof(e.loader), "%s", pick);
	for (char *c = e.loader; *c; c++)
		if (*c == '/')
			*c = '\\';
	*ret = e;
	return 1;
}

/* ---- entries ---- */

struct entries {
	uint16_t order[512];
	size_t n_order;
	int match;      /* the number of an entry for our loader, or -1 */
	bool used[0x10000 / 8 * 8]; /* Boot#### numbers taken */
};

static bool in_order(const struct entries *en, unsigned num)
{
	for (size_t i = 0; i < en->n_order; i++)
		if (en->order[i] == num)
			return true;
	return false;
}

static int hexnum(const char *s, unsigned *ret)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int entries_load(const struct esp *e, struct entries *en)
{
	_cleanup_free_ uint8_t *order = NULL;
	size_t len;
	memset(en, 0, sizeof(*en));
	en->match = -1;
	int r = var_read("BootOrder", &order, &len);
	if (r < 0 && r != -ENOENT)
		return r;
	for (size_t i = 0; r == 0 && i + 1 < len && en->n_order < ARRAY_SIZE(en->order); i += 2)
		en->order[en->n_order++] = (uint16_t)(order[i] | order[i + 1] << 8);

	_cleanup_close_ int dfd = fb_open(EFIVARS, O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return dfd;
	DIR *dir = fdopendir(dfd);
	if (!dir)
		return -errno;
	dfd = -1;
	struct dirent *de;
	/* Boot####-GUID: 4 upper-case hex digits. */
	while ((de = readdir(dir))) {
		unsigned num;
		if (strlen(de->d_name) != 8 + 1 + 36 || strncmp(de->d_name, "Boot", 4) || de->d_name[8] != '-' ||
		    !STREQ(de->d_name + 9, GLOBAL_GUID) || hexnum(de->d_name + 4, &num) < 0)
			continue;
		en->used[num] = true;
		char name[9];
		memcpy(name, de->d_name, 8);
		name[8] = '\0';
		_cleanup_free_ uint8_t *v = NULL;
		struct load_option o;
		if (var_read(name, &v, &len) < 0 || load_option_parse(v, len, &o) < 0)
			continue; /* someone else's malformed entry: not ours to judge */
		if (!o.has_hd || memcmp(o.hd_guid, e->guid_disk, 16) || strcasecmp(o.file, e->loader))
			continue;
		/* Prefer an entry already in BootOrder. */
		if (en->match < 0 || (!in_order(en, (unsigned)en->match) && in_order(en, num)))
			en->match = (int)num;
	}
	closedir(dir);
	return 0;
}

static bool efi_machine(void)
{
	return fb_exists("/sys/firmware/efi") > 0;
}

static int efiboot_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	if (!efi_machine()) {
		*ret_msg = strdup("not a UEFI machine");
		return 1;
	}
	struct esp e;
	int r = find_esp(section, &e, ret_msg);
	if (r == 0) {
		char *why = *ret_msg;
		*ret_msg = fb_strdupf("Secure Boot %s; %s", secure_boot_state(), why ? why : "no ESP");
		free(why);
		return 1;
	}
	if (r < 0)
		return r;
	static struct entries en;
	if ((r = entries_load(&e, &en)) < 0) {
		*ret_msg = fb_strdupf("cannot read the boot entries: %s", strerror(-r));
		return r;
	}
	if (en.match < 0 || !in_order(&en, (unsigned)en.match))
		return 0;
	*ret_msg = fb_strdupf("Secure Boot %s; Boot%04X is '%s' on partition %u", secure_boot_state(), (unsigned)en.match,
			      e.loader, e.partno);
	return 1;
}

static enum fb_result efiboot_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct esp e;
	int r = find_esp(section, &e, ret_msg);
	if (r <= 0)
		return r == 0 ? FB_OK : FB_FAILED;
	static struct entries en;
	if ((r = entries_load(&e, &en)) < 0) {
		*ret_msg = fb_strdupf("cannot read the boot entries: %s", strerror(-r));
		return FB_FAILED;
	}
	/* The entry first, then BootOrder: a cut between leaves an entry that the next run finds
	 * and puts in the order. */
	bool made = false;
	unsigned num = 0;
	if (en.match >= 0) {
		num = (unsigned)en.match;
	} else {
		while (num < 0x10000 && en.used[num])
			num++;
		uint8_t opt[512];
		size_t len = load_option_build(&e, opt, sizeof(opt));
		char name[16];
		if (num >= 0x10000 || len == 0) {
			*ret_msg = strdup("no free Boot#### number");
			return FB_FAILED;
		}
		snprintf(name, sizeof(name), "Boot%04X", num & 0xffffu);
		if ((r = var_write(name, opt, len)) < 0) {
			*ret_msg = fb_strdupf("cannot write the EFI variable '%s': %s", name, strerror(-r));
			return FB_FAILED;
		}
		made = true;
	}
	if (!in_order(&en, num)) {
		uint8_t order[2 * (ARRAY_SIZE(en.order) + 1)];
		size_t n = 0;
		put16(order, (uint16_t)num);
		n = 2;
		for (size_t i = 0; i < en.n_order && i < ARRAY_SIZE(en.order); i++, n += 2)
			put16(order + n, en.order[i]);
		if ((r = var_write("BootOrder", order, n)) < 0) {
			*ret_msg = fb_strdupf("cannot write the EFI variable 'BootOrder': %s", strerror(-r));
			return FB_FAILED;
		}
	}
	*ret_msg = fb_strdupf("Secure Boot %s; Boot%04X %s for '%s' on partition %u, first in BootOrder",
			      secure_boot_state(), num, made ? "'" ENTRY_NAME "' made" : "found", e.loader, e.partno);
	return FB_OK;
}

const struct fb_step step_efiboot = {
	.name = "efiboot",
	.config_key = "efiboot",
	.schema = &efiboot_schema,
	.needs_config = false,
	.required = false,
	.check = efiboot_check,
	.apply = efiboot_apply,
};
