/* efiboot: report the Secure Boot state, and make sure the firmware has a Boot#### entry for
 * this disk's ESP loader; skipped on machines without UEFI (no /sys/firmware/efi).
 *
 * The variables go through libefivar (its efivarfs backend: ROOT/sys/firmware/efi/efivars/),
 * and the entry is built by libefiboot's load-option builder from libefivar's device-path node
 * builders, HD() and File(). Both are loaded when the step first needs them (efi_load): libefivar
 * chooses its backend and reads EFIVARFS_PATH as it is loaded, so the path under --root must be
 * in the environment before that, which a library linked into the program (loaded before main)
 * cannot have.
 * libefiboot's own device-path builder (efi_generate_file_device_path) is not used: it finds
 * the disk through sysfs and the block device, so it cannot describe an image file or a
 * fixture tree; the HD() node here takes the partition from the disk's GPT instead, which is
 * what that builder reads too. An entry matches when its device path has an HD() node whose
 * partition GUID is the ESP's and a File() node naming the loader (compared without regard to
 * case), and it is in BootOrder. A new entry, "PMOVES", is HD(N,GPT,GUID,START,SIZE)/
 * File(LOADER), the short form efibootmgr writes, put first in BootOrder.
 *
 * The ESP is the partition mounted on /boot/efi (ROOT/proc/self/mountinfo), or the first
 * partition of EFI System type on "efiboot": {"device": PATH} (a disk or an image file). The
 * loader is \EFI\systemd\systemd-boot<arch>.efi when the ESP has it, else the removable-media
 * path \EFI\BOOT\BOOT<ARCH>.EFI. */
#include "fb-step.h"
#include "firstboot.h"
#include "gpt.h"
#include "util.h"

#include <dlfcn.h>
#include <efivar/efiboot.h>
#include <efivar/efivar.h>
#include <fcntl.h>
#include <strings.h>

#define EFIVARS "/sys/firmware/efi/efivars"
#define ESP_MOUNT "/boot/efi"
#define ENTRY_NAME "PMOVES"
#define ATTR_NV_BS_RT (EFI_VARIABLE_NON_VOLATILE | EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS)
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
	{ "device", FB_T_STRING, NULL, fb_valid_path_limits, &fb_fmt_abs_path, 0, FB_PATH_MAX },
	FB_FIELDS_END,
};
static const struct fb_field efiboot_schema = { NULL, FB_T_OBJECT, efiboot_fields, NULL, NULL, 0, 0 };

struct esp {
	unsigned partno;
	uint64_t start_lba, size_lba;
	uint8_t guid_disk[16]; /* the partition GUID as on disk (mixed-endian), as HD() holds it */
	char loader[64];       /* "\EFI\BOOT\BOOTX64.EFI" */
	char loader_fs[64];    /* the same under ESP_MOUNT: "/EFI/BOOT/BOOTX64.EFI" */
};

/* ---- libefivar and libefiboot ---- */

#define EFI_LIBRARY "libefiboot.so.1" /* and libefivar.so.1, which it needs */

static struct {
	void *handle;
	__typeof__(efi_get_variable) *get_variable;
	__typeof__(efi_set_variable) *set_variable;
	__typeof__(efi_get_next_variable_name) *get_next_variable_name;
	__typeof__(efidp_make_hd) *make_hd;
	__typeof__(efidp_make_file) *make_file;
	__typeof__(efidp_make_generic) *make_generic;
	__typeof__(efi_loadopt_create) *loadopt_create;
	__typeof__(efi_loadopt_is_valid) *loadopt_is_valid;
	__typeof__(efi_loadopt_path) *loadopt_path;
	__typeof__(efi_loadopt_pathlen) *loadopt_pathlen;
} efi;

/* Load them, once, for the root: its efivarfs directory, and the efivarfs backend only (the
 * older sysfs interface would be the host's, not the root's). On a tree libefivar gets the
 * directory opened inside the root, as /proc/self/fd/N/: it writes variables by path, and
 * ROOT + path would follow a symlink in the tree out of it (to the host's own efivars). The
 * directory stays open while the program runs. */
static int efi_load(char **ret_msg)
{
	static int vars_fd = -1;
	if (efi.handle)
		return 0;
	if (vars_fd < 0 && !STREQ(fb_root(), "/")) {
		vars_fd = fb_open_dir(EFIVARS, false);
		if (vars_fd < 0) {
			int r = vars_fd;
			*ret_msg = fb_strdupf("cannot open '" EFIVARS "' in the root: %s", strerror(-r));
			vars_fd = -1;
			return r;
		}
	}
	_cleanup_free_ char *dir = fb_fd_path(vars_fd, EFIVARS "/", false);
	if (!dir)
		return -ENOMEM;
	if (setenv("LIBEFIVAR_OPS", "efivarfs", 1) < 0 || setenv("EFIVARFS_PATH", dir, 1) < 0)
		return -errno;
	void *h = dlopen(EFI_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		*ret_msg = fb_strdupf("cannot load " EFI_LIBRARY ": %s", dlerror());
		return -ENOENT;
	}
#define SYM(field, name) (*(void **)&efi.field = dlsym(h, name))
	if (!SYM(get_variable, "efi_get_variable") || !SYM(set_variable, "efi_set_variable") ||
	    !SYM(get_next_variable_name, "efi_get_next_variable_name") || !SYM(make_hd, "efidp_make_hd") ||
	    !SYM(make_file, "efidp_make_file") || !SYM(make_generic, "efidp_make_generic") ||
	    !SYM(loadopt_create, "efi_loadopt_create") || !SYM(loadopt_is_valid, "efi_loadopt_is_valid") ||
	    !SYM(loadopt_path, "efi_loadopt_path") || !SYM(loadopt_pathlen, "efi_loadopt_pathlen")) {
		*ret_msg = fb_strdupf(EFI_LIBRARY " lacks a function: %s", dlerror());
		dlclose(h);
		efi = (__typeof__(efi)){ 0 };
		return -ENOENT;
	}
#undef SYM
	efi.handle = h;
	return 0;
}

/* A variable of the global GUID: its value. -ENOENT when missing. */
static int var_read(const char *name, uint8_t **ret, size_t *ret_len)
{
	uint8_t *data = NULL;
	size_t len = 0;
	uint32_t attrs;
	errno = 0;
	if (efi.get_variable(EFI_GLOBAL_GUID, name, &data, &len, &attrs) < 0)
		return errno ? -errno : -EIO;
	*ret = data;
	*ret_len = len;
	return 0;
}

/* NAME with attributes NV|BS|RT: on efivarfs one write of attributes and value replaces it
 * (libefivar clears the immutable flag the kernel sets first). */
static int var_write(const char *name, const uint8_t *val, size_t len)
{
	errno = 0;
	if (efi.set_variable(EFI_GLOBAL_GUID, name, (uint8_t *)val, len, ATTR_NV_BS_RT, 0644) < 0)
		return errno ? -errno : -EIO;
	return 0;
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

/* An EFI_LOAD_OPTION's first device path: the partition GUID of its HD() node (GPT signature)
 * and its File() node, as ASCII. -EBADMSG when libefiboot finds it malformed. */
struct load_option {
	bool has_hd;
	uint8_t hd_guid[16];
	char file[128];
};

static int load_option_parse(uint8_t *v, size_t len, struct load_option *ret)
{
	struct load_option o = { 0 };
	efi_load_option *opt = (efi_load_option *)v;
	if (!efi.loadopt_is_valid(opt, len))
		return -EBADMSG;
	const_efidp dn = efi.loadopt_path(opt, (ssize_t)len);
	ssize_t left = efi.loadopt_pathlen(opt, (ssize_t)len);
	while (dn && left >= 4) {
		ssize_t sz = efidp_node_size(dn);
		if (sz < 4 || sz > left)
			return -EBADMSG;
		if (efidp_type(dn) == EFIDP_END_TYPE)
			break; /* end of the (first) path */
		if (efidp_type(dn) == EFIDP_MEDIA_TYPE && efidp_subtype(dn) == EFIDP_MEDIA_HD &&
		    sz == (ssize_t)sizeof(efidp_hd) && dn->hd.signature_type == EFIDP_HD_SIGNATURE_GUID) {
			o.has_hd = true;
			memcpy(o.hd_guid, dn->hd.signature, 16);
		} else if (efidp_type(dn) == EFIDP_MEDIA_TYPE && efidp_subtype(dn) == EFIDP_MEDIA_FILE) {
			/* UCS-2, NUL-terminated within the node: its ASCII, others as '?'. */
			const uint8_t *p = (const uint8_t *)dn + 4;
			size_t n = (size_t)sz - 4, o_len = 0;
			bool ended = false;
			for (size_t i = 0; i + 1 < n && !ended; i += 2) {
				uint16_t c = (uint16_t)(p[i] | p[i + 1] << 8);
				ended = c == 0;
				if (!ended && o_len + 1 < sizeof(o.file))
					o.file[o_len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
			}
			if (!ended)
				return -EBADMSG;
			o.file[o_len] = '\0';
		}
		left -= sz;
		dn = (const_efidp)((const uint8_t *)dn + sz);
	}
	*ret = o;
	return 0;
}

/* EFI_LOAD_OPTION "PMOVES": HD(...)/File(LOADER)/End, into OUT; its size, or -errno. */
static ssize_t load_option_build(const struct esp *e, uint8_t *out, size_t out_size)
{
	uint8_t dp[512];
	ssize_t n = 0, k;
	k = efi.make_hd(dp, sizeof(dp), e->partno, e->start_lba, e->size_lba, (uint8_t *)e->guid_disk,
			  EFIDP_HD_FORMAT_GPT, EFIDP_HD_SIGNATURE_GUID);
	if (k > 0) {
		n += k;
		k = efi.make_file(dp + n, (ssize_t)sizeof(dp) - n, (char *)e->loader);
	}
	if (k > 0) {
		n += k;
		k = efi.make_generic(dp + n, (ssize_t)sizeof(dp) - n, EFIDP_END_TYPE, EFIDP_END_ENTIRE,
				     sizeof(efidp_header));
	}
	if (k <= 0)
		return -EINVAL;
	n += k;
	ssize_t len = efi.loadopt_create(out, (ssize_t)out_size, LOAD_OPTION_ACTIVE, (efidp)dp, n,
					 (unsigned char *)ENTRY_NAME, NULL, 0);
	return len > 0 ? len : -EINVAL;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

/* ---- the ESP ---- */

/* The ESP: the first EFI System partition of DEVICE, or (DEVICE NULL) the one mounted on
 * ESP_MOUNT; its loader looked for in ESP_DIR, where it is mounted. 1, 0 (none: *ret_msg says
 * why) or -errno. */
static int find_esp(const char *device, const char *esp_dir, struct esp *ret, char **ret_msg)
{
	_cleanup_(fb_blockdev_done) struct fb_blockdev d = { 0 };
	int r;
	if (device) {
		r = fb_blockdev_of_path(device, &d, ret_msg);
	} else {
		r = fb_blockdev_of_mount(ESP_MOUNT, &d, ret_msg);
		if (r == 0) {
			*ret_msg = strdup("no ESP mounted on '" ESP_MOUNT "'");
			return 0;
		}
	}
	if (r < 0)
		return r;
	_cleanup_close_ int fd = fb_blockdev_open(&d, O_RDONLY, ret_msg);
	if (fd < 0)
		return fd;
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
		if (d.partno ? g->part[i].number == d.partno : memcmp(g->part[i].type_guid, gpt_type_esp, 16) == 0)
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
		_cleanup_free_ char *path = fb_strdupf("%s%s", esp_dir, loaders[i]);
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

static const char *device_of(json_object *section)
{
	json_object *v;
	return section && json_object_object_get_ex(section, "device", &v) ? json_object_get_string(v) : NULL;
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

	/* Boot####: 4 upper-case hex digits, of the global GUID. libefivar's listing keeps its
	 * place between calls: it is always read to its end. */
	efi_guid_t *guid = NULL, global = EFI_GLOBAL_GUID;
	char *name = NULL;
	int more;
	while ((more = efi.get_next_variable_name(&guid, &name)) > 0) {
		unsigned num;
		if (strlen(name) != 8 || strncmp(name, "Boot", 4) || hexnum(name + 4, &num) < 0 ||
		    memcmp(guid, &global, sizeof(global)) != 0)
			continue;
		en->used[num] = true;
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
	return more < 0 ? (errno ? -errno : -EIO) : 0;
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
	int r = efi_load(ret_msg);
	if (r < 0)
		return r;
	struct esp e;
	r = find_esp(device_of(section), ESP_MOUNT, &e, ret_msg);
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

/* An entry for E's loader (found, or made), first in BootOrder; with NEXT also BootNext: the
 * next boot starts it whatever the order. */
static int entry_ensure(const struct esp *e, bool next, char **ret_msg)
{
	static struct entries en;
	int r = entries_load(e, &en);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read the boot entries: %s", strerror(-r));
		return r;
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
		uint8_t opt[1024];
		ssize_t len = load_option_build(e, opt, sizeof(opt));
		char name[16];
		if (num >= 0x10000 || len <= 0) {
			*ret_msg = strdup(len <= 0 ? "cannot build the boot entry" : "no free Boot#### number");
			return -EINVAL;
		}
		snprintf(name, sizeof(name), "Boot%04X", num & 0xffffu);
		if ((r = var_write(name, opt, (size_t)len)) < 0) {
			*ret_msg = fb_strdupf("cannot write the EFI variable '%s': %s", name, strerror(-r));
			return r;
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
			return r;
		}
	}
	uint8_t nextv[2];
	put16(nextv, (uint16_t)num);
	if (next && (r = var_write("BootNext", nextv, sizeof(nextv))) < 0) {
		*ret_msg = fb_strdupf("cannot write the EFI variable 'BootNext': %s", strerror(-r));
		return r;
	}
	*ret_msg = fb_strdupf("Secure Boot %s; Boot%04X %s for '%s' on partition %u, first in BootOrder%s",
			      secure_boot_state(), num, made ? "'" ENTRY_NAME "' made" : "found", e->loader, e->partno,
			      next ? " and BootNext" : "");
	return 0;
}

static enum fb_result efiboot_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	struct esp e;
	int r = efi_load(ret_msg);
	if (r < 0)
		return FB_FAILED;
	r = find_esp(device_of(section), ESP_MOUNT, &e, ret_msg);
	if (r <= 0)
		return r == 0 ? FB_OK : FB_FAILED;
	return entry_ensure(&e, false, ret_msg) < 0 ? FB_FAILED : FB_OK;
}

int fb_efiboot_install(const char *disk, const char *esp_dir, char **ret_msg)
{
	struct esp e;
	int r = efi_load(ret_msg);
	if (r < 0)
		return r;
	r = find_esp(disk, esp_dir, &e, ret_msg);
	if (r == 0)
		return -ENOENT;
	return r < 0 ? r : entry_ensure(&e, true, ret_msg);
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
