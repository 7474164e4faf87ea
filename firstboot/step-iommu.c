/* iommu: IOMMU on, and the GPUs to pass through bound to vfio-pci at boot.
 *
 * Detect (all read under the root: the tests use fixture trees of real sysfs/proc layouts):
 *   - the CPU vendor (/proc/cpuinfo vendor_id), the running kernel (/proc/sys/kernel/osrelease)
 *     and the installed ones (/lib/modules/VERSION);
 *   - the boot loader and its command-line file (fb_boot_detect(): proxmox-boot-tool,
 *     systemd-boot, GRUB);
 *   - the GPUs: "devices" from the config (PCI addresses or vendor:device IDs), else every
 *     NVIDIA display controller (vendor 0x10de, class 0x03xxxx), plus every other function of
 *     their slots (HDMI audio; the USB-C and UCSI functions of Turing cards);
 *   - IOMMU groups (/sys/kernel/iommu_groups) and each function's group and driver;
 *   - each selected function's modalias, and the modules.alias of every kernel here.
 * Apply, in the kernel's current terms:
 *   - "intel_iommu=on iommu=pt" on Intel, "iommu=pt" on AMD (amd_iommu=on is not a value the
 *     kernel knows; AMD-Vi is on by default), merged into the loader's command line
 *     (fb_cmdline_merge(): a flag with the same name is replaced), and the loader refreshed;
 *   - vfio-pci given the IDs of every selected function, and loaded before every driver that
 *     would claim one of them (the modules whose modules.alias patterns match its modalias:
 *     soft dependencies, below); no driver blacklisted (below);
 *     vfio, vfio_iommu_type1, vfio_pci loaded at boot and in the initramfs,
 *     plus vfio_virqfd only when every kernel here is older than 6.2 (it was merged into vfio
 *     then, and listing a missing module breaks initramfs builds); the initramfs rebuilt;
 *   - a reboot.
 * Verify after the reboot: the flags in /proc/cmdline, IOMMU groups present, every selected
 * function bound to vfio-pci. IOMMU still off means it is off in the firmware: the step fails
 * with that advice (the run is degraded; the engine does not apply it again, so no reboot
 * loop). A group that holds devices outside the GPU (other than PCI bridges) is reported: the
 * card needs another slot or those devices passed through too. No ACS override, ever.
 *
 * No GPU: skipped and nothing written, unless "without_gpu": true (a host that gets its GPU
 * later, and the QEMU test): then only the IOMMU flags. */
#include "fb-boot.h"
#include "fb-fileset.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>

#define PCI_DEVICES "/sys/bus/pci/devices"
#define IOMMU_GROUPS "/sys/kernel/iommu_groups"
#define INITRAMFS_MODULES "/etc/initramfs-tools/modules"
#define VFIO_CONF "/etc/modprobe.d/pmoves-vfio.conf"
/* Written by earlier versions (nouveau and nvidiafb blacklisted): removed, see OLD_BLACKLIST. */
#define OLD_BLACKLIST_CONF "/etc/modprobe.d/pmoves-blacklist-nouveau.conf"
#define MODULES_CONF "/etc/modules-load.d/pmoves-vfio.conf"
#define BLOCK_BEGIN "# pmoves-firstboot iommu: begin\n"
#define BLOCK_END "# pmoves-firstboot iommu: end\n"
#define HEADER "# Written by pmoves-firstboot (iommu step): change its config, not this file.\n"
#define MAX_FUNCTIONS 4096
#define MAX_KERNELS 64
#define NVIDIA 0x10deu
#define MODULES_ALIAS_MAX (64u << 20) /* Debian's 6.12 has 1.4 MB */
#define MAX_SOFTDEPS 64
#define MODULE_NAME_MAX 56 /* the kernel's MODULE_NAME_LEN, with the NUL */

/* ---- config schema (the step record's .schema) ---- */

static bool parse_hex(const char *s, size_t n, unsigned max, unsigned *ret)
{
	unsigned v = 0;
	if (n == 0 || n > 8)
		return false;
	for (size_t i = 0; i < n; i++) {
		int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0'
			: s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
			: s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10
						     : -1;
		if (d < 0)
			return false;
		v = v * 16 + (unsigned)d;
	}
	if (v > max)
		return false;
	*ret = v;
	return true;
}

/* "DDDD:BB:DD.F" or "BB:DD.F" -> the canonical "dddd:bb:dd.f". */
static bool parse_pci_addr(const char *s, char ret[13])
{
	unsigned dom = 0, bus, dev, fn;
	size_t len = strlen(s);
	if (len == 12) {
		if (s[4] != ':' || !parse_hex(s, 4, 0xffff, &dom))
			return false;
		s += 5, len -= 5;
	}
	if (len != 7 || s[2] != ':' || s[5] != '.' || !parse_hex(s, 2, 0xff, &bus) || !parse_hex(s + 3, 2, 0x1f, &dev) ||
	    !parse_hex(s + 6, 1, 7, &fn))
		return false;
	snprintf(ret, 13, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return true;
}

/* "vvvv:dddd" */
static bool parse_pci_id(const char *s, unsigned *ret_vendor, unsigned *ret_device)
{
	return strlen(s) == 9 && s[4] == ':' && parse_hex(s, 4, 0xffff, ret_vendor) &&
	       parse_hex(s + 5, 4, 0xffff, ret_device);
}

/* What parse_pci_addr() and parse_pci_id() read. */
#define HEX "[0-9A-Fa-f]"
static const struct fb_format fmt_device = {
	.name = "pci_device",
	.message = "'%s' is neither a PCI address ('0000:01:00.0') nor a vendor:device ID ('10de:2204')",
	.pattern = "^((" HEX "{4}:)?" HEX "{2}:[01]" HEX "\\.[0-7]|" HEX "{4}:" HEX "{4})$",
};

static const struct fb_field device_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_device, 0, 0 };
static const struct fb_field iommu_fields[] = {
	{ "devices", FB_T_ARRAY, &device_elem, NULL, NULL, 0, 64 },
	{ "without_gpu", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field iommu_schema = { NULL, FB_T_OBJECT, iommu_fields, NULL, NULL, 0, 0 };

/* ---- detection ---- */

enum cpu { CPU_OTHER, CPU_INTEL, CPU_AMD };

struct pci_fn {
	char addr[13]; /* "0000:01:00.0"; the first 10 characters are the slot */
	unsigned vendor, device, class;
	long group; /* -1: none */
	char driver[64];
	bool selected;
};

struct host {
	enum cpu cpu;
	char kernel[65];
	bool virqfd;        /* every kernel here is older than 6.2 */
	char **module_dirs; /* every name under /lib/modules */
	char **kernels;     /* installed: names under /lib/modules with /boot/vmlinuz-NAME */
	struct fb_boot boot; /* the loader, and the file its command line (the flags) is in */
	struct pci_fn *fn;
	size_t n_fn;
	size_t n_gpus;      /* selected functions that are GPUs (or named in the config) */
	size_t n_groups;
	char *proc_cmdline;
	bool without_gpu;
};

static void host_done(struct host *h)
{
	strv_free(h->module_dirs);
	strv_free(h->kernels);
	free(h->fn);
	free(h->proc_cmdline);
}

/* The last component of the symlink DIR/NAME ("../../../bus/pci/drivers/vfio-pci" ->
 * "vfio-pci"); "" when there is no such link. */
static int link_base(const char *dir, const char *name, char *buf, size_t size)
{
	buf[0] = '\0';
	_cleanup_close_ int fd = fb_open(dir, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	char target[PATH_MAX];
	ssize_t n = readlinkat(fd, name, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= size)
		return -ENAMETOOLONG;
	memcpy(buf, base, strlen(base) + 1);
	return 0;
}

static DIR *open_dir(const char *abs)
{
	int fd = fb_open(abs, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

static int hex_file(const char *addr, const char *name, unsigned max, unsigned *ret)
{
	char path[128], buf[32];
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", addr, name);
	int r = fb_read_line(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (strncmp(buf, "0x", 2) || !parse_hex(buf + 2, strlen(buf + 2), max, ret))
		return -EINVAL;
	return 0;
}

static int cmp_fn(const void *a, const void *b)
{
	return strcmp(((const struct pci_fn *)a)->addr, ((const struct pci_fn *)b)->addr);
}

static int scan_pci(struct host *h, char **ret_msg)
{
	DIR *d = open_dir(PCI_DEVICES);
	if (!d)
		return 0; /* no PCI bus (or no sysfs) */
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		char addr[13];
		if (de->d_name[0] == '.')
			continue;
		if (strlen(de->d_name) != 12 || !parse_pci_addr(de->d_name, addr) || strcmp(addr, de->d_name)) {
			*ret_msg = fb_strdupf("'%s/%.32s' is not a PCI address", PCI_DEVICES, de->d_name);
			r = -EINVAL;
			break;
		}
		if (h->n_fn == MAX_FUNCTIONS) {
			*ret_msg = fb_strdupf("more than %d PCI functions in '%s'", MAX_FUNCTIONS, PCI_DEVICES);
			r = -E2BIG;
			break;
		}
		if (h->n_fn % 64 == 0) {
			struct pci_fn *n = reallocarray(h->fn, h->n_fn + 64, sizeof(*n));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			h->fn = n;
		}
		struct pci_fn *f = &h->fn[h->n_fn];
		memset(f, 0, sizeof(*f));
		memcpy(f->addr, addr, sizeof(addr));
		if ((r = hex_file(addr, "vendor", 0xffff, &f->vendor)) < 0 ||
		    (r = hex_file(addr, "device", 0xffff, &f->device)) < 0 ||
		    (r = hex_file(addr, "class", 0xffffff, &f->class)) < 0) {
			*ret_msg = fb_strdupf("cannot read the IDs of PCI function '%s': %s", addr, strerror(-r));
			break;
		}
		char dir[64], group[32];
		snprintf(dir, sizeof(dir), PCI_DEVICES "/%s", addr);
		uint64_t g;
		f->group = -1;
		if ((r = link_base(dir, "iommu_group", group, sizeof(group))) < 0 ||
		    (r = link_base(dir, "driver", f->driver, sizeof(f->driver))) < 0) {
			*ret_msg = fb_strdupf("cannot read the links of PCI function '%s': %s", addr, strerror(-r));
			break;
		}
		if (group[0] && parse_u64(group, &g) == 0 && g < 1000000)
			f->group = (long)g;
		h->n_fn++;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (h->n_fn)
		qsort(h->fn, h->n_fn, sizeof(*h->fn), cmp_fn);
	return 0;
}

static bool is_gpu(const struct pci_fn *f)
{
	return f->vendor == NVIDIA && (f->class >> 16) == 0x03;
}

static bool is_bridge(const struct pci_fn *f)
{
	return (f->class >> 8) == 0x0604;
}

static bool same_slot(const struct pci_fn *a, const struct pci_fn *b)
{
	return strncmp(a->addr, b->addr, 10) == 0;
}

static int select_functions(struct host *h, json_object *section, char **ret_msg)
{
	json_object *list;
	if (json_object_object_get_ex(section, "devices", &list)) {
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			const char *s = json_object_get_string(json_object_array_get_idx(list, i));
			char addr[13];
			unsigned vendor = 0, device = 0;
			bool by_addr = parse_pci_addr(s, addr);
			if (!by_addr && !parse_pci_id(s, &vendor, &device))
				return -EINVAL; /* the schema checked it */
			size_t found = 0;
			for (size_t k = 0; k < h->n_fn; k++) {
				struct pci_fn *f = &h->fn[k];
				if (by_addr ? STREQ(f->addr, addr) : f->vendor == vendor && f->device == device) {
					f->selected = true;
					found++;
				}
			}
			if (!found) {
				*ret_msg = fb_strdupf("no PCI device '%s' on this machine (config iommu.devices)", s);
				return -ENODEV;
			}
		}
	} else
		for (size_t k = 0; k < h->n_fn; k++)
			h->fn[k].selected = is_gpu(&h->fn[k]);
	for (size_t k = 0; k < h->n_fn; k++)
		h->n_gpus += h->fn[k].selected;
	/* Every function of a selected slot goes with it. */
	for (size_t k = 0; k < h->n_fn; k++)
		for (size_t j = 0; j < h->n_fn && !h->fn[k].selected; j++)
			if (h->fn[j].selected && same_slot(&h->fn[j], &h->fn[k]) && !is_bridge(&h->fn[k]))
				h->fn[k].selected = true;
	return 0;
}

/* "6.1.0-27-amd64" -> 6, 1. */
static bool kernel_older_than_6_2(const char *v)
{
	uint64_t maj = 0, min = 0;
	char *end;
	errno = 0;
	maj = strtoull(v, &end, 10);
	if (end == v || *end != '.')
		return false;
	const char *m = end + 1;
	min = strtoull(m, &end, 10);
	if (end == m)
		return false;
	return maj < 6 || (maj == 6 && min < 2);
}

/* A kernel release, as a name under /lib/modules: valid_name()'s characters and '+', which
 * Debian's releases have had since 6.x ("6.12.95+deb12-amd64"). */
static bool valid_kernel_name(const char *s)
{
	char buf[65];
	size_t n = strlen(s);
	if (n >= sizeof(buf))
		return false;
	for (size_t i = 0; i <= n; i++)
		buf[i] = s[i] == '+' ? '_' : s[i];
	return valid_name(buf, 64);
}

static int scan_kernels(struct host *h)
{
	h->virqfd = kernel_older_than_6_2(h->kernel);
	DIR *d = open_dir("/lib/modules");
	if (!d)
		return 0;
	struct dirent *de;
	int r = 0;
	size_t n = 0;
	while ((de = readdir(d)) && r == 0) {
		if (de->d_name[0] == '.' || !valid_kernel_name(de->d_name))
			continue;
		if (++n > MAX_KERNELS) {
			r = -E2BIG;
			break;
		}
		h->virqfd &= kernel_older_than_6_2(de->d_name);
		char vmlinuz[128];
		snprintf(vmlinuz, sizeof(vmlinuz), "/boot/vmlinuz-%.64s", de->d_name);
		r = strv_push(&h->module_dirs, de->d_name);
		if (r == 0 && fb_exists(vmlinuz) == 1)
			r = strv_push(&h->kernels, de->d_name);
	}
	closedir(d);
	if (r == 0 && h->module_dirs)
		strv_sort(h->module_dirs);
	if (r == 0 && h->kernels)
		strv_sort(h->kernels);
	return r;
}

static int count_groups(struct host *h)
{
	DIR *d = open_dir(IOMMU_GROUPS);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			h->n_groups++;
	closedir(d);
	return 0;
}

static enum cpu cpu_vendor(void)
{
	/* The first processor's block is enough; cpuinfo of a big machine is megabytes. */
	char buf[8192];
	_cleanup_close_ int fd = fb_open("/proc/cpuinfo", O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0 || fb_fd_regular(fd, "/proc/cpuinfo", NULL) < 0)
		return CPU_OTHER;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return CPU_OTHER;
	buf[n] = '\0';
	for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "vendor_id", 9))
			continue;
		char *colon = strchr(line, ':');
		if (!colon)
			break;
		colon += 1 + strspn(colon + 1, " \t");
		if (!strncmp(colon, "GenuineIntel", 12))
			return CPU_INTEL;
		if (!strncmp(colon, "AuthenticAMD", 12) || !strncmp(colon, "HygonGenuine", 12))
			return CPU_AMD;
		break;
	}
	return CPU_OTHER;
}

static int detect(struct host *h, json_object *section, char **ret_msg)
{
	json_object *v;
	h->without_gpu = json_object_object_get_ex(section, "without_gpu", &v) && json_object_get_boolean(v);
	h->cpu = cpu_vendor();
	if (fb_read_line("/proc/sys/kernel/osrelease", h->kernel, sizeof(h->kernel)) < 0)
		h->kernel[0] = '\0';
	int r = scan_kernels(h);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot list the kernels in '/lib/modules': %s", strerror(-r));
		return r;
	}
	h->boot = fb_boot_detect();
	if ((r = scan_pci(h, ret_msg)) < 0 || (r = select_functions(h, section, ret_msg)) < 0)
		return r;
	count_groups(h);
	if ((r = fb_read("/proc/cmdline", 64 * 1024, &h->proc_cmdline, NULL)) < 0)
		h->proc_cmdline = strdup("");
	return h->proc_cmdline ? 0 : -ENOMEM;
}

/* ---- what to write ---- */

/* The flags for this CPU into RET, NULL-terminated; how many. */
static size_t cpu_flags(const struct host *h, const char *ret[3])
{
	size_t n = 0;
	if (h->cpu == CPU_INTEL)
		ret[n++] = "intel_iommu=on";
	if (h->cpu == CPU_INTEL || h->cpu == CPU_AMD)
		ret[n++] = "iommu=pt";
	ret[n] = NULL;
	return n;
}

/* The loader's command-line file with the flags: 0, -ENOENT (no file), -EINVAL (not one to
 * edit), -errno. */
static int cmdline_file_text(const struct host *h, char **ret)
{
	const char *flags[3];
	cpu_flags(h, flags);
	_cleanup_free_ char *old = NULL;
	size_t old_len = 0;
	int r = fb_read(h->boot.cmdline_file, 64 * 1024, &old, &old_len);
	if (r < 0)
		return r;
	return fb_boot_cmdline_text(&h->boot, old, old_len, flags, NULL, ret);
}

/* The selected functions' IDs, "10de:2204,10de:1aef", each once. */
static char *vfio_ids(const struct host *h)
{
	_cleanup_strv_ char **ids = NULL;
	for (size_t k = 0; k < h->n_fn; k++) {
		if (!h->fn[k].selected)
			continue;
		char id[10];
		snprintf(id, sizeof(id), "%04x:%04x", h->fn[k].vendor, h->fn[k].device);
		if (!strv_contains(ids, id) && strv_push(&ids, id) < 0)
			return NULL;
	}
	if (!ids)
		return strdup("");
	strv_sort(ids);
	return strv_join(ids, ",");
}

/* ---- the drivers vfio-pci must come before ----
 *
 * udev has a PCI function's driver loaded by asking modprobe for the function's modalias, and
 * modprobe loads the modules whose patterns in modules.alias (written by depmod from each
 * module's device table) match it, as fnmatch(3) does. So the drivers that could take a
 * selected function are exactly the modules whose patterns match its modalias, whatever the
 * vendor: amdgpu or radeon, i915 or xe, nouveau, nvidia once DKMS built it, snd_hda_intel,
 * xhci_pci. Each gets "softdep MODULE pre: vfio-pci": modprobe loads vfio-pci first, vfio-pci
 * takes the IDs it is given as it loads, and the driver finds the function taken. The kernel
 * of the next boot is not known here (a Proxmox host has Debian's and Proxmox's) and modprobe.d
 * serves every kernel, so the patterns of every kernel under /lib/modules count; a softdep for
 * a module some kernel lacks is never used by it. */

/* The modalias of the function at ADDR, as the kernel hands it to modprobe
 * ("pci:v000010DEd00002204sv00001458sd0000403Bbc03sc00i00"). */
static int read_modalias(const char *addr, char *buf, size_t size)
{
	char path[128];
	snprintf(path, sizeof(path), PCI_DEVICES "/%s/modalias", addr);
	int r = fb_read_line(path, buf, size);
	if (r < 0)
		return r;
	size_t n = strlen(buf);
	if (n <= 4 || n + 1 >= size || strncmp(buf, "pci:", 4))
		return -EINVAL;
	for (size_t i = 4; i < n; i++)
		if (!isalnum((unsigned char)buf[i]))
			return -EINVAL;
	return 0;
}

/* NAME from modules.alias as modprobe.d names it, into RET: '-' and '_' are the same in module
 * names, and depmod writes '_'. false: not a module name. */
static bool module_name(const char *name, char ret[MODULE_NAME_MAX])
{
	size_t n = strlen(name);
	if (n == 0 || n >= MODULE_NAME_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		if (c && !isalnum((unsigned char)c) && c != '_' && c != '-')
			return false;
		ret[i] = c == '-' ? '_' : c;
	}
	return true;
}

/* The next word of *P (words are separated by blanks), terminated in place; NULL at the end. */
static char *next_word(char **p)
{
	char *s = *p + strspn(*p, " \t");
	if (!*s)
		return NULL;
	char *e = s + strcspn(s, " \t");
	if (*e)
		*e++ = '\0';
	*p = e;
	return s;
}

/* Add to *MODS (each once, never vfio_pci itself) the modules whose patterns in KVER's
 * modules.alias match one of MODALIASES: 0, -ENOENT (no modules.alias), or -errno with
 * *ret_msg set. */
static int match_aliases(const char *kver, char *const *modaliases, char ***mods, char **ret_msg)
{
	_cleanup_free_ char *path = fb_strdupf("/lib/modules/%s/modules.alias", kver), *text = NULL;
	size_t len = 0;
	if (!path)
		return -ENOMEM;
	int r = fb_read(path, MODULES_ALIAS_MAX, &text, &len);
	if (r == -ENOENT)
		return r;
	if (r == 0 && memchr(text, '\0', len))
		r = -EINVAL;
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", path,
				      r == -EINVAL ? "not a text file" : r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
		return r;
	}
	size_t lineno = 0;
	for (char *line = text, *end = text + len, *next; line < end; line = next) {
		next = line + strcspn(line, "\n");
		if (next < end)
			*next++ = '\0';
		lineno++;
		char *p = line, *kw = next_word(&p), *pattern = kw ? next_word(&p) : NULL, *mod = pattern ? next_word(&p) : NULL;
		if (!mod || !STREQ(kw, "alias"))
			continue; /* comments, blank lines, and what is not an alias */
		bool match = false;
		for (char *const *m = modaliases; m && *m && !match; m++)
			match = fnmatch(pattern, *m, 0) == 0;
		if (!match)
			continue;
		char name[MODULE_NAME_MAX];
		if (!module_name(mod, name)) {
			*ret_msg = str_has_control(mod) ? fb_strdupf("'%s' line %zu: the module name has control characters", path, lineno)
							: fb_strdupf("'%s' line %zu: '%.64s' is not a module name", path, lineno, mod);
			return -EINVAL;
		}
		if (STREQ(name, "vfio_pci") || strv_contains(*mods, name))
			continue;
		if (strv_length(*mods) == MAX_SOFTDEPS) {
			*ret_msg = fb_strdupf("more than %d modules match the selected PCI functions ('%s')", MAX_SOFTDEPS, path);
			return -E2BIG;
		}
		if ((r = strv_push(mods, name)) < 0)
			return r;
	}
	return 0;
}

/* The modules to load after vfio-pci, sorted (NULL: none). A kernel that can boot (it has
 * /boot/vmlinuz-VERSION) without a modules.alias is an error: its drivers cannot be told. */
static int softdep_modules(const struct host *h, char ***ret, char **ret_msg)
{
	_cleanup_strv_ char **modaliases = NULL, **mods = NULL;
	int r;
	for (size_t k = 0; k < h->n_fn; k++) {
		char modalias[128];
		if (!h->fn[k].selected)
			continue;
		if ((r = read_modalias(h->fn[k].addr, modalias, sizeof(modalias))) < 0) {
			*ret_msg = fb_strdupf("cannot read the modalias of PCI function '%s': %s", h->fn[k].addr,
					      r == -EINVAL ? "not a PCI modalias" : strerror(-r));
			return r;
		}
		if ((r = strv_push(&modaliases, modalias)) < 0)
			return r;
	}
	size_t files = 0;
	for (char **k = h->module_dirs; k && *k; k++) {
		r = match_aliases(*k, modaliases, &mods, ret_msg);
		if (r == -ENOENT && !strv_contains(h->kernels, *k))
			continue; /* what a removed kernel left behind */
		if (r == -ENOENT) {
			*ret_msg = fb_strdupf("'/lib/modules/%s/modules.alias' is missing: the drivers to load after vfio-pci "
					      "cannot be told (run 'depmod %s')",
					      *k, *k);
			return r;
		}
		if (r < 0)
			return r;
		files++;
	}
	if (!files) {
		*ret_msg = strdup("no kernel in '/lib/modules' has a 'modules.alias': the drivers to load after vfio-pci cannot be told");
		return -ENOENT;
	}
	if (mods)
		strv_sort(mods);
	*ret = TAKE_PTR(mods);
	return 0;
}

/* No blacklist. vfio-pci is loaded before any driver that matches a selected function: from
 * the initramfs and modules-load.d, and by modprobe itself through the softdeps whenever one of
 * those drivers is asked for (udev's coldplug, in the initramfs too, which carries modprobe.d).
 * It takes the selected IDs as it loads, and a driver loaded after it finds those functions
 * bound and leaves them. A blacklist would add nothing for them, and it would keep the driver
 * from every other device that needs it: the host's own GPU on nouveau, amdgpu, i915 or xe, its
 * sound on snd_hda_intel, its USB on xhci_pci. (It would not stop a driver built into the
 * kernel either: modprobe.d acts on modules only.) Earlier versions blacklisted nouveau and
 * nvidiafb, and set nouveau modeset=0, for every NVIDIA passthrough: that file is removed when
 * it is still there as they wrote it. */
#define OLD_BLACKLIST HEADER "blacklist nouveau\nblacklist nvidiafb\noptions nouveau modeset=0\n"

/* 1: OLD_BLACKLIST_CONF is there as an earlier version wrote it; 0: not; -errno. */
static int old_blacklist(void)
{
	int r = fb_file_is(OLD_BLACKLIST_CONF, OLD_BLACKLIST, strlen(OLD_BLACKLIST));
	return r == -ENOENT ? 0 : r;
}

static char *vfio_conf(const struct host *h, char *const *softdeps)
{
	_cleanup_free_ char *ids = vfio_ids(h);
	if (!ids)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputs(HEADER, f);
	fprintf(f, "options vfio-pci ids=%s\n", ids);
	for (char *const *m = softdeps; m && *m; m++)
		fprintf(f, "softdep %s pre: vfio-pci\n", *m);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static const char *modules_list(const struct host *h)
{
	return h->virqfd ? "vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n" : "vfio\nvfio_iommu_type1\nvfio_pci\n";
}

/* /etc/initramfs-tools/modules with our block (replaced, or appended). */
static int initramfs_text(const struct host *h, char **ret)
{
	_cleanup_free_ char *old = NULL;
	size_t old_len = 0;
	int r = fb_read(INITRAMFS_MODULES, 1024 * 1024, &old, &old_len);
	if (r == -ENOENT)
		old = strdup(""), r = old ? 0 : -ENOMEM;
	if (r < 0)
		return r;
	if (memchr(old, '\0', old_len))
		return -EINVAL;
	char *b = strstr(old, BLOCK_BEGIN), *e = b ? strstr(b, BLOCK_END) : NULL;
	size_t head = b ? (size_t)(b - old) : strlen(old);
	const char *tail = e ? e + strlen(BLOCK_END) : b ? "" : old + head;
	const char *sep = head > 0 && old[head - 1] != '\n' ? "\n" : "";
	*ret = fb_strdupf("%.*s%s" BLOCK_BEGIN "%s" BLOCK_END "%s", (int)head, old, sep, modules_list(h), tail);
	return *ret ? 0 : -ENOMEM;
}

/* Every file the step writes, with its content, and the modules vfio-pci comes before (when
 * RET_SOFTDEPS is not NULL); a message when it cannot. */
static int wanted_files(const struct host *h, struct fb_file_set *ret, char ***ret_softdeps, char **ret_msg)
{
	_cleanup_strv_ char **softdeps = NULL;
	char *text = NULL;
	int r;
	if (!h->boot.cmdline_file) {
		*ret_msg = strdup("no boot loader configuration found ('" FB_KERNEL_CMDLINE "' for systemd-boot, '" FB_GRUB_DEFAULT
				  "' for GRUB)");
		return -ENOENT;
	}
	if ((r = cmdline_file_text(h, &text)) < 0) {
		*ret_msg = fb_strdupf("cannot edit '%s': %s", h->boot.cmdline_file,
				      r == -EINVAL ? "not a command line this step can edit (quotes?)" : strerror(-r));
		return r;
	}
	if ((r = fb_file_set_add(ret, strdup(h->boot.cmdline_file), text, 0644)) < 0 || !h->n_gpus)
		return r;
	if ((r = softdep_modules(h, &softdeps, ret_msg)) < 0)
		return r;
	if ((r = fb_file_set_add(ret, strdup(VFIO_CONF), vfio_conf(h, softdeps), 0644)) < 0 ||
	    (r = fb_file_set_add(ret, strdup(MODULES_CONF), fb_strdupf(HEADER "%s", modules_list(h)), 0644)) < 0)
		return r;
	if (fb_exists("/etc/initramfs-tools") == 1) {
		if ((r = initramfs_text(h, &text)) < 0) {
			*ret_msg = fb_strdupf("cannot edit '%s': %s", INITRAMFS_MODULES, strerror(-r));
			return r;
		}
		if ((r = fb_file_set_add(ret, strdup(INITRAMFS_MODULES), text, 0644)) < 0)
			return r;
	}
	if (ret_softdeps)
		*ret_softdeps = TAKE_PTR(softdeps);
	return 0;
}

/* ---- what is in effect ---- */

/* The devices and their groups, and groups shared with devices outside the GPU. */
static char *describe(const struct host *h, bool *ret_all_bound, const char **ret_missing_flag)
{
	const char *flags[3];
	size_t nf = cpu_flags(h, flags);
	*ret_missing_flag = NULL;
	for (size_t i = 0; i < nf; i++)
		if (!fb_cmdline_has(h->proc_cmdline, flags[i]) && !*ret_missing_flag)
			*ret_missing_flag = flags[i];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	*ret_all_bound = true;
	if (h->n_groups)
		fprintf(f, "IOMMU on (%zu groups)", h->n_groups);
	else
		fputs("IOMMU off", f);
	size_t shown = 0;
	for (size_t k = 0; k < h->n_fn; k++) {
		const struct pci_fn *g = &h->fn[k];
		if (!g->selected)
			continue;
		bool bound = STREQ(g->driver, "vfio-pci");
		*ret_all_bound &= bound;
		fprintf(f, "%s %s %04x:%04x", shown++ ? "," : ";", g->addr, g->vendor, g->device);
		if (g->group >= 0)
			fprintf(f, " group %ld", g->group);
		fprintf(f, " %s", g->driver[0] ? g->driver : "no driver");
	}
	if (!shown)
		fputs("; no GPU to bind", f);
	/* Devices sharing a group with the GPU but not part of it (bridges do not count). */
	for (size_t k = 0; k < h->n_fn; k++) {
		const struct pci_fn *o = &h->fn[k];
		if (o->selected || o->group < 0 || is_bridge(o))
			continue;
		for (size_t j = 0; j < h->n_fn; j++)
			if (h->fn[j].selected && h->fn[j].group == o->group) {
				fprintf(f, "; WARNING: group %ld also holds %s %04x:%04x, not part of the GPU: "
					   "move the card to another slot or pass that device through too (no ACS override)",
					o->group, o->addr, o->vendor, o->device);
				break;
			}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the step ---- */

static int iommu_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(host_done) struct host h = { 0 };
	int r = detect(&h, section, ret_msg);
	if (r < 0)
		return r;
	if (!h.n_gpus && !h.without_gpu) {
		*ret_msg = strdup("no NVIDIA GPU on this machine: nothing to pass through, nothing written");
		return 1;
	}
	_cleanup_(fb_file_set_done) struct fb_file_set w = { 0 };
	if ((r = wanted_files(&h, &w, NULL, ret_msg)) < 0 || (r = fb_file_set_check(&w)) <= 0)
		return r;
	if ((r = old_blacklist()) != 0)
		return r < 0 ? r : 0;
	bool bound;
	const char *missing;
	_cleanup_free_ char *what = describe(&h, &bound, &missing);
	if (!what)
		return -ENOMEM;
	if (missing || !h.n_groups || !bound)
		return 0;
	*ret_msg = TAKE_PTR(what);
	return 1;
}

static int refresh(const struct host *h, bool initramfs, char **ret_msg)
{
	int r;
	if (initramfs) {
		char *argv[] = { "update-initramfs", "-u", "-k", "all", NULL };
		if ((r = fb_run_target(argv)) != 0) {
			*ret_msg = fb_strdupf("'update-initramfs -u -k all' exited with %d", r);
			return -EIO;
		}
	}
	const char *what = NULL;
	r = fb_boot_refresh(&h->boot, &what);
	if (!what) {
		/* systemd-boot: kernel-install writes each entry with /etc/kernel/cmdline. */
		what = "kernel-install add";
		for (char **k = h->kernels; k && *k && r == 0; k++) {
			_cleanup_free_ char *image = fb_strdupf("/boot/vmlinuz-%s", *k), *initrd = fb_strdupf("/boot/initrd.img-%s", *k);
			if (!image || !initrd)
				return -ENOMEM;
			bool has_initrd = fb_exists(initrd) == 1 || initramfs;
			char *argv[] = { "kernel-install", "add", *k, image, has_initrd ? initrd : NULL, NULL };
			r = fb_run_target(argv);
		}
	}
	if (r != 0) {
		*ret_msg = fb_strdupf("refreshing the boot loader (%s) failed with %d", what, r);
		return -EIO;
	}
	return 0;
}

static enum fb_result iommu_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(host_done) struct host h = { 0 };
	if (detect(&h, section, ret_msg) < 0)
		return FB_FAILED;
	_cleanup_(fb_file_set_done) struct fb_file_set w = { 0 };
	_cleanup_strv_ char **softdeps = NULL;
	if (wanted_files(&h, &w, &softdeps, ret_msg) < 0 || fb_file_set_write(&w, ret_msg) < 0)
		return FB_FAILED;
	/* The initramfs carries modprobe.d: rebuilt when the old blacklist goes too. */
	int old = old_blacklist(), r = old > 0 ? fb_remove(OLD_BLACKLIST_CONF) : old;
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot %s '%s': %s", old < 0 ? "read" : "remove", OLD_BLACKLIST_CONF, strerror(-r));
		return FB_FAILED;
	}
	if (refresh(&h, h.n_gpus > 0 || old > 0, ret_msg) < 0)
		return FB_FAILED;
	const char *flags[3];
	size_t nf = cpu_flags(&h, flags);
	_cleanup_free_ char *ids = h.n_gpus ? vfio_ids(&h) : strdup(""), *before = softdeps ? strv_join(softdeps, ", ") : strdup("");
	if (!ids || !before)
		return FB_FAILED;
	*ret_msg = fb_strdupf("%s%s%s in '%s'%s%s%s%s%s%s; reboot to apply", nf ? flags[0] : "no IOMMU flags for this CPU",
			      nf > 1 ? " " : "", nf > 1 ? flags[1] : "", h.boot.cmdline_file, h.n_gpus ? "; vfio-pci ids=" : "",
			      ids, *before ? " (loaded before " : "", before, *before ? ")" : "",
			      old > 0 ? "; the old blacklist '" OLD_BLACKLIST_CONF "' removed" : "");
	return FB_REBOOT;
}

static int iommu_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_(host_done) struct host h = { 0 };
	int r = detect(&h, section, ret_msg);
	if (r < 0)
		return r;
	bool bound;
	const char *missing;
	_cleanup_free_ char *what = describe(&h, &bound, &missing);
	if (!what)
		return -ENOMEM;
	if (strstr(what, "WARNING"))
		fb_warn("iommu: %s", strstr(what, "WARNING"));
	if (missing) {
		*ret_msg = fb_strdupf("'%s' is not on the kernel command line after the reboot: the boot loader did not "
				      "take '%s'; %s",
				      missing, h.boot.cmdline_file ? h.boot.cmdline_file : "?", what);
		return -EINVAL;
	}
	if (!h.n_groups) {
		*ret_msg = fb_strdupf("IOMMU is off after the reboot although the kernel was told to use it: enable %s in "
				      "the firmware setup, then boot again",
				      h.cpu == CPU_AMD ? "AMD-Vi (IOMMU)" : h.cpu == CPU_INTEL ? "VT-d" : "the IOMMU");
		return -ENXIO;
	}
	if (!bound) {
		*ret_msg = fb_strdupf("not every GPU function is bound to vfio-pci after the reboot: %s", what);
		return -EBUSY;
	}
	*ret_msg = TAKE_PTR(what);
	return 0;
}

const struct fb_step step_iommu = {
	.name = "iommu",
	.config_key = "iommu",
	.schema = &iommu_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = iommu_check,
	.apply = iommu_apply,
	.verify = iommu_verify,
};
