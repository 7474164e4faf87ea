/* The iommu step on fixture trees laid out like real machines: sysfs PCI functions under
 * /sys/devices/pci0000:00/... with the /sys/bus/pci/devices links, modalias, iommu_group and
 * driver links and /sys/kernel/iommu_groups; /proc/cpuinfo, /proc/cmdline, the kernel release;
 * /lib/modules (with lines of Debian's real modules.alias files, tests/fixtures/iommu) and
 * /boot; the boot loader's files. External commands go to the recording stand-in runner. Each
 * case checks the exact files and command lines written. */
#include "test-fb-lib.h"

#include <dirent.h>
#include <json-c/json.h>

#define CONFIG_OFF_OTHERS "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"

struct fn {
	const char *addr, *parent; /* parent: the path under /sys/devices ("pci0000:00/0000:00:01.0") */
	const char *vendor, *device, *class;
	int group; /* -1: no IOMMU group */
	const char *driver;
};

static void symlink_in(const char *root, const char *target, const char *rel)
{
	char *p = t_strf("%s/%s", root, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	mkdir_p(p, 0755);
	*slash = '/';
	unlink(p);
	if (symlink(target, p) < 0)
		abort();
	free(p);
}

/* How many "../" lead from /sys/devices/PARENT/ADDR back to /sys. */
static char *ups(const char *parent)
{
	size_t n = 2; /* devices/ and the function's own directory */
	for (const char *p = parent; *p; p++)
		n += *p == '/';
	n++;
	char *s = calloc(n * 3 + 1, 1);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * 3, "../", 3);
	return s;
}

/* The modalias the kernel makes of the IDs (drivers/pci/pci-sysfs.c), with the subsystem IDs
 * 1458:403b (a Gigabyte board's: the patterns that matter here do not look at them). */
static char *modalias(const struct fn *f)
{
	unsigned long v = strtoul(f->vendor, NULL, 16), d = strtoul(f->device, NULL, 16), c = strtoul(f->class, NULL, 16);
	return t_strf("pci:v%08lXd%08lXsv00001458sd0000403Bbc%02lXsc%02lXi%02lX\n", v, d, c >> 16, (c >> 8) & 0xff, c & 0xff);
}

static void add_fn(const char *root, const struct fn *f)
{
	char *dir = t_strf("sys/devices/%s/%s", f->parent, f->addr);
	char *v = t_strf("%s/vendor", dir), *d = t_strf("%s/device", dir), *c = t_strf("%s/class", dir);
	char *vt = t_strf("%s\n", f->vendor), *dt = t_strf("%s\n", f->device), *ct = t_strf("%s\n", f->class);
	char *ma = t_strf("%s/modalias", dir), *mat = modalias(f);
	t_write(root, v, vt);
	t_write(root, d, dt);
	t_write(root, c, ct);
	t_write(root, ma, mat);
	free(ma), free(mat);
	char *bus = t_strf("../../../devices/%s/%s", f->parent, f->addr), *link = t_strf("sys/bus/pci/devices/%s", f->addr);
	symlink_in(root, bus, link);
	char *up = ups(f->parent);
	if (f->group >= 0) {
		char *g = t_strf("%skernel/iommu_groups/%d", up, f->group), *gl = t_strf("%s/iommu_group", dir);
		symlink_in(root, g, gl);
		char *member = t_strf("sys/kernel/iommu_groups/%d/devices/%s", f->group, f->addr);
		char *mt = t_strf("../../../../devices/%s/%s", f->parent, f->addr);
		symlink_in(root, mt, member);
		free(g), free(gl), free(member), free(mt);
	}
	if (f->driver) {
		char *drv = t_strf("%sbus/pci/drivers/%s", up, f->driver), *dl = t_strf("%s/driver", dir);
		symlink_in(root, drv, dl);
		free(drv), free(dl);
	}
	free(dir), free(v), free(d), free(c), free(vt), free(dt), free(ct), free(bus), free(link), free(up);
}

/* Rebind ADDR to DRIVER, as the next boot would. */
static void set_driver(const char *root, const struct fn *f, const char *driver)
{
	char *up = ups(f->parent), *drv = t_strf("%sbus/pci/drivers/%s", up, driver),
	     *dl = t_strf("sys/devices/%s/%s/driver", f->parent, f->addr);
	symlink_in(root, drv, dl);
	free(up), free(drv), free(dl);
}

/* The fixture modules.alias (tests/fixtures/iommu/NAME): lines of Debian's real ones. */
static char *alias_fixture(const char *name)
{
	const char *src = getenv("PMOVES_SRCDIR") ? getenv("PMOVES_SRCDIR") : ".";
	char *rel = t_strf("tests/fixtures/iommu/%s", name), *text = t_read(src, rel);
	if (!text) {
		printf("Bail out! cannot read '%s/%s' (run from the top of the tree or set PMOVES_SRCDIR)\n", src, rel);
		exit(1);
	}
	free(rel);
	return text;
}

/* An installed kernel: its modules (modules.dep, and modules.alias: Debian's 6.12 lines for a
 * 6.12 kernel, its 6.1 lines for any other), its image and initrd in /boot. */
static void add_kernel(const char *root, const char *kernel)
{
	char *mod = t_strf("lib/modules/%s/modules.dep", kernel), *alias = t_strf("lib/modules/%s/modules.alias", kernel),
	     *vml = t_strf("boot/vmlinuz-%s", kernel), *ird = t_strf("boot/initrd.img-%s", kernel);
	char *text = alias_fixture(strncmp(kernel, "6.12.", 5) ? "modules.alias-6.1" : "modules.alias-6.12");
	t_write(root, mod, "");
	t_write(root, alias, text);
	t_write(root, vml, "kernel");
	t_write(root, ird, "initrd");
	free(mod), free(alias), free(vml), free(ird), free(text);
}

enum vendor { INTEL, AMD };
enum loader { SYSTEMD_BOOT, GRUB, PROXMOX_SDBOOT };

/* A machine: CPU, kernel, loader, PCI functions, config. */
static char *machine(enum vendor cpu, const char *kernel, enum loader loader, const struct fn *fns, size_t n,
		     const char *iommu_config)
{
	char *root = t_tree();
	char *cfg = t_strf("{" CONFIG_OFF_OTHERS ", \"iommu\": %s}", iommu_config);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	t_write(root, "proc/cpuinfo",
		cpu == INTEL ? "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel name\t: Intel(R) Core(TM) i9-10900K CPU @ 3.70GHz\nflags\t\t: fpu vme vmx\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"
			     : "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD Ryzen 9 5950X 16-Core Processor\nflags\t\t: fpu svm\n");
	char *rel = t_strf("%s\n", kernel);
	t_write(root, "proc/sys/kernel/osrelease", rel);
	free(rel);
	add_kernel(root, kernel);
	t_write(root, "etc/initramfs-tools/modules", "# List of modules that you want to include in your initramfs.\n# They will be loaded at boot time in the order below.\n");
	switch (loader) {
	case SYSTEMD_BOOT:
		t_write(root, "etc/kernel/cmdline", "root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw\n");
		t_write(root, "proc/cmdline", "initrd=\\pmoves\\x\\initrd root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw\n");
		t_write(root, "sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", "\x06");
		break;
	case GRUB:
		t_write(root, "etc/default/grub",
			"# If you change this file, run 'update-grub' afterwards to update\n"
			"GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
			"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=soft\"\nGRUB_CMDLINE_LINUX=\"\"\n");
		t_write(root, "proc/cmdline", "BOOT_IMAGE=/boot/vmlinuz root=UUID=1234 ro quiet iommu=soft\n");
		break;
	case PROXMOX_SDBOOT:
		t_write(root, "etc/kernel/proxmox-boot-uuids", "5C2A-1F3B\n");
		t_write(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n");
		t_write(root, "proc/cmdline", "initrd=\\EFI\\proxmox\\x\\initrd.img root=ZFS=rpool/ROOT/pve-1 boot=zfs\n");
		t_write(root, "sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", "\x06");
		break;
	}
	for (size_t i = 0; i < n; i++)
		add_fn(root, &fns[i]);
	return root;
}

static char *calls_of(const char *root)
{
	char *p = t_beside(root, "calls");
	char *text = t_read(p, NULL);
	free(p);
	return text ? text : strdup("");
}

static void clear_calls(const char *root)
{
	char *p = t_beside(root, "calls");
	unlink(p);
	free(p);
}

/* The file is exactly WANT. */
static void file_is(const char *root, const char *rel, const char *want, const char *what)
{
	char *got = t_read(root, rel);
	tap_is_str(got, want, "%s: %s", what, rel);
	free(got);
}

/* The names in ROOT/etc/modprobe.d, sorted, one a line; valid until the next call. */
static const char *modprobe_d(const char *root)
{
	static char buf[1024];
	char *dir = t_strf("%s/etc/modprobe.d", root);
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort);
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.' && len < sizeof(buf))
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\n", list[i]->d_name);
		free(list[i]);
	}
	free(list);
	free(dir);
	return buf;
}

/* The step's state in state.json ("" when there is none); valid until the next call. */
static const char *step_state(const char *root, const char *step)
{
	static char buf[32];
	char *text = t_read(root, "var/lib/pmoves/firstboot/state.json");
	json_object *o = text ? json_tokener_parse(text) : NULL, *steps, *rec, *st;
	buf[0] = '\0';
	if (o && json_object_object_get_ex(o, "steps", &steps) && json_object_object_get_ex(steps, step, &rec) &&
	    json_object_object_get_ex(rec, "state", &st))
		snprintf(buf, sizeof(buf), "%s", json_object_get_string(st));
	json_object_put(o);
	free(text);
	return buf;
}

/* After the reboot: the kernel took CMDLINE, the IOMMU made groups (already in the tree when
 * the functions have one), the functions bound as DRIVERS says. */
static void reboot_into(const char *root, const char *cmdline)
{
	t_write(root, "proc/cmdline", cmdline);
}

#define HDR "# Written by pmoves-firstboot (iommu step): change its config, not this file.\n"
/* What earlier versions wrote for every NVIDIA passthrough. */
#define OLD_BLACKLIST HDR "blacklist nouveau\nblacklist nvidiafb\noptions nouveau modeset=0\n"
#define MODULES HDR "vfio\nvfio_iommu_type1\nvfio_pci\n"
#define MODULES_VIRQFD HDR "vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n"
#define INITRAMFS(list)                                                                            \
	"# List of modules that you want to include in your initramfs.\n# They will be loaded at boot " \
	"time in the order below.\n# pmoves-firstboot iommu: begin\n" list "# pmoves-firstboot iommu: end\n"

/* ---- Intel + RTX 3090 and its audio function, systemd-boot, kernel 6.1 ---- */

static const struct fn rtx3090[] = {
	{ "0000:00:00.0", "pci0000:00", "0x8086", "0x9b43", "0x060000", 0, NULL },
	{ "0000:00:01.0", "pci0000:00", "0x8086", "0x1901", "0x060400", 1, "pcieport" },
	{ "0000:01:00.0", "pci0000:00/0000:00:01.0", "0x10de", "0x2204", "0x030000", 1, "nouveau" },
	{ "0000:01:00.1", "pci0000:00/0000:00:01.0", "0x10de", "0x1aef", "0x040300", 1, "snd_hda_intel" },
	{ "0000:00:17.0", "pci0000:00", "0x8086", "0x06d2", "0x010601", 2, "ahci" },
};

static void test_intel_3090(void)
{
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "intel+3090: the run asks for a reboot (exit 0)");
	tap_contains(r.out, "step=iommu state=reboot intel_iommu=on iommu=pt in '/etc/kernel/cmdline'; vfio-pci ids=10de:1aef,10de:2204 (loaded before nouveau, snd_hda_intel); reboot to apply",
		     "intel+3090: the console says what was set, and the drivers vfio-pci comes before");
	file_is(root, "etc/kernel/cmdline",
		"root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw intel_iommu=on iommu=pt\n",
		"intel+3090: Intel flags appended to the systemd-boot command line");
	file_is(root, "etc/modprobe.d/pmoves-vfio.conf",
		HDR "options vfio-pci ids=10de:1aef,10de:2204\n"
		    "softdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n",
		"intel+3090: vfio-pci takes the GPU and its audio function, before the drivers Debian 6.1's modules.alias "
		"matches them with (no nvidia: it is not installed)");
	tap_is_str(modprobe_d(root), "pmoves-vfio.conf\n",
		   "intel+3090: nothing blacklisted (vfio-pci comes before nouveau by the softdep)");
	file_is(root, "etc/modules-load.d/pmoves-vfio.conf", MODULES_VIRQFD,
		"intel+3090: vfio modules at boot, vfio_virqfd too (6.1 still has it as a module)");
	file_is(root, "etc/initramfs-tools/modules", INITRAMFS("vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n"),
		"intel+3090: vfio modules in the initramfs, the file's own lines kept");
	char *calls = calls_of(root);
	char *want = t_strf("chroot %s update-initramfs -u -k all\n"
			    "chroot %s kernel-install add 6.1.0-27-amd64 /boot/vmlinuz-6.1.0-27-amd64 /boot/initrd.img-6.1.0-27-amd64\n",
			    root, root);
	tap_is_str(calls, want, "intel+3090: initramfs rebuilt, then the systemd-boot entry rewritten by kernel-install");
	free(calls), free(want);
	tap_is_str(step_state(root, "iommu"), "reboot", "intel+3090: state says reboot");
	t_result_free(&r);

	/* The reboot: flags on the command line, both functions on vfio-pci. */
	reboot_into(root, "initrd=\\pmoves\\x\\initrd root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw intel_iommu=on iommu=pt\n");
	set_driver(root, &rtx3090[2], "vfio-pci");
	set_driver(root, &rtx3090[3], "vfio-pci");
	clear_calls(root);
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "intel+3090 after the reboot: done");
	tap_contains(r.out, "step=iommu state=ok IOMMU on (3 groups); 0000:01:00.0 10de:2204 group 1 vfio-pci, 0000:01:00.1 10de:1aef group 1 vfio-pci\n",
		     "intel+3090 after the reboot: each function with its group and driver; the root port in the group is no warning");
	char *c2 = calls_of(root);
	tap_ok(!strstr(c2, "update-initramfs") && !strstr(c2, "kernel-install"), "intel+3090 after the reboot: nothing applied again");
	free(c2);
	t_result_free(&r);

	/* A later run with the same config finds everything in place. */
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	tap_ok(r.status == 0 && strstr(r.out, "step=iommu state=skipped already done"), "intel+3090: a later run skips the step");
	tap_is_str(after, before, "intel+3090: and writes nothing");
	free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- AMD + RTX 2080 (Turing: audio, USB-C, UCSI), GRUB, kernel 5.15 ---- */

static const struct fn rtx2080[] = {
	{ "0000:00:03.1", "pci0000:00", "0x1022", "0x1483", "0x060400", 5, "pcieport" },
	{ "0000:0a:00.0", "pci0000:00/0000:00:03.1", "0x10de", "0x1e87", "0x030000", 5, NULL },
	{ "0000:0a:00.1", "pci0000:00/0000:00:03.1", "0x10de", "0x10f8", "0x040300", 5, "snd_hda_intel" },
	{ "0000:0a:00.2", "pci0000:00/0000:00:03.1", "0x10de", "0x1ad8", "0x0c0330", 5, "xhci_hcd" },
	{ "0000:0a:00.3", "pci0000:00/0000:00:03.1", "0x10de", "0x1ad9", "0x0c8000", 5, "nvidia-gpu" },
};

static void test_amd_2080_grub(void)
{
	char *root = machine(AMD, "5.15.0-91-generic", GRUB, rtx2080, ARRAY_SIZE(rtx2080), "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "amd+2080: reboot asked for");
	file_is(root, "etc/default/grub",
		"# If you change this file, run 'update-grub' afterwards to update\n"
		"GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
		"GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\nGRUB_CMDLINE_LINUX=\"\"\n",
		"amd+2080: iommu=pt replaces iommu=soft in GRUB_CMDLINE_LINUX_DEFAULT, no amd_iommu=on, the rest kept");
	file_is(root, "etc/modprobe.d/pmoves-vfio.conf",
		HDR "options vfio-pci ids=10de:10f8,10de:1ad8,10de:1ad9,10de:1e87\n"
		    "softdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\nsoftdep xhci_pci pre: vfio-pci\n",
		"amd+2080: all four Turing functions to vfio-pci, with soft dependencies for their drivers (USB-C: "
		"xhci_pci by class; UCSI: none in Debian's kernel)");
	file_is(root, "etc/modules-load.d/pmoves-vfio.conf", MODULES_VIRQFD, "amd+2080: vfio_virqfd listed on 5.15");
	file_is(root, "etc/initramfs-tools/modules", INITRAMFS("vfio\nvfio_iommu_type1\nvfio_pci\nvfio_virqfd\n"),
		"amd+2080: and in the initramfs");
	char *calls = calls_of(root);
	char *want = t_strf("chroot %s update-initramfs -u -k all\nchroot %s update-grub\n", root, root);
	tap_is_str(calls, want, "amd+2080: initramfs rebuilt, update-grub");
	free(calls), free(want);
	t_result_free(&r);

	/* The second boot: flags there, groups there, but the audio function kept its driver. */
	reboot_into(root, "BOOT_IMAGE=/boot/vmlinuz root=UUID=1234 ro quiet iommu=pt\n");
	for (size_t i = 1; i < ARRAY_SIZE(rtx2080); i++)
		if (i != 2)
			set_driver(root, &rtx2080[i], "vfio-pci");
	r = t_run(root, NULL);
	tap_is_int(r.status, 1, "amd+2080: a function not on vfio-pci after the reboot fails the step (degraded run, exit 1)");
	tap_contains(r.out, "step=iommu state=failed not every GPU function is bound to vfio-pci after the reboot", "amd+2080: says so");
	tap_contains(r.out, "0000:0a:00.1 10de:10f8 group 5 snd_hda_intel", "amd+2080: names the function and its driver");
	tap_contains(r.out, "done status=degraded", "amd+2080: the run is degraded, not failed");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- AMD + RTX 4090, Proxmox with proxmox-boot-tool (systemd-boot, ZFS), kernel 6.8 ---- */

static const struct fn rtx4090[] = {
	{ "0000:01:00.0", "pci0000:00/0000:00:01.1", "0x10de", "0x2684", "0x030000", 12, "nouveau" },
	{ "0000:01:00.1", "pci0000:00/0000:00:01.1", "0x10de", "0x22ba", "0x040300", 12, "snd_hda_intel" },
	{ "0000:02:00.0", "pci0000:00/0000:00:01.2", "0x144d", "0xa80a", "0x010802", 13, "nvme" },
};

static void test_amd_4090_proxmox(void)
{
	char *root = machine(AMD, "6.8.12-4-pve", PROXMOX_SDBOOT, rtx4090, ARRAY_SIZE(rtx4090), "{}");
	t_write(root, "lib/modules/6.1.0-27-amd64/modules.dep", ""); /* the Debian kernel, still there */
	/* IOMMU already active (AMD-Vi is on by default), the GPU still on nouveau. */
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "amd+4090: IOMMU already active but the GPU not bound: reboot asked for");
	file_is(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n",
		"amd+4090: iommu=pt into proxmox-boot-tool's /etc/kernel/cmdline");
	file_is(root, "etc/modules-load.d/pmoves-vfio.conf", MODULES,
		"amd+4090: no vfio_virqfd with a 6.8 kernel (merged into vfio in 6.2), though a 6.1 one is installed too");
	char *calls = calls_of(root);
	char *want = t_strf("chroot %s update-initramfs -u -k all\nchroot %s proxmox-boot-tool refresh\n", root, root);
	tap_is_str(calls, want, "amd+4090: initramfs rebuilt, proxmox-boot-tool refresh");
	free(calls), free(want);
	tap_ok(!t_exists(root, "etc/default/grub"), "amd+4090: no GRUB file made");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- a kernel release with '+' (Debian's since 6.x: backports, trixie), systemd-boot ---- */

static void test_plus_kernel(void)
{
	char *root = machine(INTEL, "6.12.95+deb12-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "kernel 6.12.95+deb12-amd64: reboot asked for");
	char *calls = calls_of(root);
	char *want = t_strf("chroot %s update-initramfs -u -k all\n"
			    "chroot %s kernel-install add 6.12.95+deb12-amd64 /boot/vmlinuz-6.12.95+deb12-amd64 /boot/initrd.img-6.12.95+deb12-amd64\n",
			    root, root);
	tap_is_str(calls, want, "kernel 6.12.95+deb12-amd64: its systemd-boot entry rewritten by kernel-install");
	free(calls), free(want);
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- two GPUs; a group shared with a device outside the GPU ---- */

static const struct fn two_gpus[] = {
	{ "0000:00:01.0", "pci0000:00", "0x8086", "0x1901", "0x060400", 1, "pcieport" },
	{ "0000:01:00.0", "pci0000:00/0000:00:01.0", "0x10de", "0x2204", "0x030000", 1, "nouveau" },
	{ "0000:01:00.1", "pci0000:00/0000:00:01.0", "0x10de", "0x1aef", "0x040300", 1, "snd_hda_intel" },
	{ "0000:02:00.0", "pci0000:00/0000:00:01.1", "0x10de", "0x2204", "0x030000", 2, "nouveau" },
	{ "0000:02:00.1", "pci0000:00/0000:00:01.1", "0x10de", "0x1aef", "0x040300", 2, "snd_hda_intel" },
	{ "0000:02:00.2", "pci0000:00/0000:00:01.1", "0x8086", "0x15f0", "0x0c0330", -1, "xhci_hcd" },
	{ "0000:00:14.0", "pci0000:00", "0x8086", "0x43ed", "0x0c0330", 2, "xhci_hcd" },
};

static void test_two_gpus(void)
{
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, two_gpus, ARRAY_SIZE(two_gpus), "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "two GPUs: reboot asked for");
	char *conf = t_read(root, "etc/modprobe.d/pmoves-vfio.conf");
	tap_contains(conf, "options vfio-pci ids=10de:1aef,10de:2204,8086:15f0\n",
		     "two GPUs: each ID once; a function of the same slot goes too, whoever made it");
	free(conf);
	t_result_free(&r);

	reboot_into(root, "root=UUID=x rw intel_iommu=on iommu=pt\n");
	for (size_t i = 1; i <= 5; i++)
		set_driver(root, &two_gpus[i], "vfio-pci");
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "two GPUs after the reboot: ok");
	tap_contains(r.out, "0000:01:00.0 10de:2204 group 1 vfio-pci, 0000:01:00.1 10de:1aef group 1 vfio-pci, 0000:02:00.0 10de:2204 group 2 vfio-pci",
		     "two GPUs: every function with its group");
	tap_contains(r.out, "WARNING: group 2 also holds 0000:00:14.0 8086:43ed, not part of the GPU",
		     "two GPUs: a foreign device in a GPU's group is reported");
	tap_ok(!strstr(r.out, "also holds 0000:00:01.0"), "two GPUs: a PCI bridge in the group is not");
	tap_contains(r.err, "iommu: WARNING: group 2", "two GPUs: the warning reaches the journal too");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- no GPU; without_gpu; config-named devices ---- */

static const struct fn no_nvidia[] = {
	{ "0000:00:02.0", "pci0000:00", "0x8086", "0x3e92", "0x030000", 0, "i915" },
	{ "0000:00:17.0", "pci0000:00", "0x8086", "0xa352", "0x010601", 1, "ahci" },
};

static void test_no_gpu(void)
{
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, no_nvidia, ARRAY_SIZE(no_nvidia), "{}");
	char *etc = t_strf("%s/etc", root);
	char *before = t_tree_digest(etc, false);
	struct t_result r = t_run(root, NULL);
	char *after = t_tree_digest(etc, false);
	free(etc);
	tap_contains(r.out, "step=iommu state=skipped no NVIDIA GPU on this machine: nothing to pass through, nothing written",
		     "no GPU: skipped with the reason");
	tap_is_str(after, before, "no GPU: nothing written under /etc");
	char *calls = calls_of(root);
	tap_ok(!strstr(calls, "update-initramfs") && !strstr(calls, "kernel-install"), "no GPU: nothing run");
	free(calls), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);

	/* The Intel iGPU named by address: it is selected, though it is not NVIDIA. */
	root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, no_nvidia, ARRAY_SIZE(no_nvidia), "{\"devices\": [\"00:02.0\"]}");
	r = t_run(root, NULL);
	char *conf = t_read(root, "etc/modprobe.d/pmoves-vfio.conf");
	tap_contains(conf, "options vfio-pci ids=8086:3e92\n", "devices by address: the named function only");
	free(conf);
	t_result_free(&r);
	t_cleanup(root);

	root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, no_nvidia, ARRAY_SIZE(no_nvidia), "{\"devices\": [\"10de:2204\"]}");
	r = t_run(root, NULL);
	tap_is_int(r.status, 1, "a named device that is not there: the step fails");
	tap_contains(r.out, "step=iommu state=failed no PCI device '10de:2204' on this machine (config iommu.devices)",
		     "and says which");
	tap_ok(!t_exists(root, "etc/modprobe.d/pmoves-vfio.conf"), "and writes nothing");
	t_result_free(&r);
	t_cleanup(root);

	/* without_gpu: only the flags. */
	root = machine(AMD, "6.1.0-27-amd64", GRUB, no_nvidia, ARRAY_SIZE(no_nvidia), "{\"without_gpu\": true}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=iommu state=reboot iommu=pt in '/etc/default/grub'; reboot to apply", "without_gpu: flags only");
	tap_ok(!t_exists(root, "etc/modprobe.d/pmoves-vfio.conf") && !t_exists(root, "etc/modprobe.d/pmoves-blacklist-nouveau.conf"),
	       "without_gpu: no vfio or blacklist files");
	char *c = calls_of(root), *want = t_strf("chroot %s update-grub\n", root);
	tap_is_str(c, want, "without_gpu: the loader refreshed, no initramfs rebuild");
	free(c), free(want);
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- IOMMU still off after the reboot ---- */

static void test_iommu_off(void)
{
	struct fn nogroup[] = {
		{ "0000:01:00.0", "pci0000:00/0000:00:01.0", "0x10de", "0x2204", "0x030000", -1, "nouveau" },
		{ "0000:01:00.1", "pci0000:00/0000:00:01.0", "0x10de", "0x1aef", "0x040300", -1, "snd_hda_intel" },
	};
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, nogroup, ARRAY_SIZE(nogroup), "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "iommu off: first run asks for a reboot");
	t_result_free(&r);
	reboot_into(root, "root=UUID=x rw intel_iommu=on iommu=pt\n");
	clear_calls(root);
	r = t_run(root, NULL);
	tap_is_int(r.status, 1, "iommu off after the reboot: exit 1");
	tap_contains(r.out, "step=iommu state=failed IOMMU is off after the reboot although the kernel was told to use it: enable VT-d in the firmware setup",
		     "iommu off: the advice names VT-d");
	tap_contains(r.out, "done status=degraded", "iommu off: the run is degraded");
	tap_is_str(step_state(root, "iommu"), "failed", "iommu off: the step's state is failed, so no later run reboots again");
	char *c = calls_of(root);
	tap_ok(!strstr(c, "reboot") && !strstr(c, "update-initramfs"), "iommu off: no reboot, nothing applied again");
	free(c);
	t_result_free(&r);

	/* The flags did not reach the kernel (the loader was not refreshed). */
	t_cleanup(root);
	root = machine(AMD, "6.1.0-27-amd64", GRUB, nogroup, ARRAY_SIZE(nogroup), "{}");
	r = t_run(root, NULL);
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=iommu state=failed 'iommu=pt' is not on the kernel command line after the reboot",
		     "flags missing after the reboot: said so");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- not NVIDIA: an AMD GPU passed through, the Intel iGPU kept by the host ---- */

static const struct fn amd_rx6800[] = {
	{ "0000:00:00.0", "pci0000:00", "0x8086", "0x4660", "0x060000", 0, NULL },
	{ "0000:00:01.0", "pci0000:00", "0x8086", "0x460d", "0x060400", 1, "pcieport" },
	{ "0000:01:00.0", "pci0000:00/0000:00:01.0", "0x1002", "0x73bf", "0x030000", 1, "amdgpu" },
	{ "0000:01:00.1", "pci0000:00/0000:00:01.0", "0x1002", "0xab28", "0x040300", 1, "snd_hda_intel" },
	{ "0000:00:02.0", "pci0000:00", "0x8086", "0x4680", "0x030000", 2, "i915" },
	{ "0000:00:1f.3", "pci0000:00", "0x8086", "0x7ad0", "0x040300", 3, "snd_hda_intel" },
};

static void test_amd_gpu_intel_host(void)
{
	char *root = machine(INTEL, "6.12.95+deb12-amd64", SYSTEMD_BOOT, amd_rx6800, ARRAY_SIZE(amd_rx6800),
			     "{\"devices\": [\"0000:01:00.0\"]}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "amd gpu: reboot asked for");
	tap_contains(r.out, "step=iommu state=reboot intel_iommu=on iommu=pt in '/etc/kernel/cmdline'; vfio-pci ids=1002:73bf,1002:ab28 "
			    "(loaded before amdgpu, snd_hda_intel); reboot to apply",
		     "amd gpu: the console names the drivers vfio-pci comes before");
	file_is(root, "etc/modprobe.d/pmoves-vfio.conf",
		HDR "options vfio-pci ids=1002:73bf,1002:ab28\nsoftdep amdgpu pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n",
		"amd gpu: the RX 6800 XT and its audio function to vfio-pci, loaded before amdgpu and snd_hda_intel "
		"(Debian 6.12's modules.alias); nothing for the host's i915");
	tap_is_str(modprobe_d(root), "pmoves-vfio.conf\n", "amd gpu: nothing blacklisted, nouveau least of all");
	file_is(root, "etc/modules-load.d/pmoves-vfio.conf", MODULES, "amd gpu: vfio modules at boot");
	t_result_free(&r);

	/* The reboot: the card's functions on vfio-pci, the iGPU and the board's audio still the host's. */
	reboot_into(root, "initrd=\\pmoves\\x\\initrd root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw intel_iommu=on iommu=pt\n");
	set_driver(root, &amd_rx6800[2], "vfio-pci");
	set_driver(root, &amd_rx6800[3], "vfio-pci");
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "amd gpu after the reboot: done");
	tap_contains(r.out, "step=iommu state=ok IOMMU on (4 groups); 0000:01:00.0 1002:73bf group 1 vfio-pci, 0000:01:00.1 1002:ab28 group 1 vfio-pci\n",
		     "amd gpu after the reboot: both functions on vfio-pci, the host's devices not listed");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- not NVIDIA: an Intel Arc passed through, an NVIDIA card kept by the host on nouveau ---- */

static const struct fn arc_a770[] = {
	{ "0000:00:01.1", "pci0000:00", "0x1022", "0x1483", "0x060400", 2, "pcieport" },
	{ "0000:03:00.0", "pci0000:00/0000:00:01.1/0000:01:00.0/0000:02:01.0", "0x8086", "0x56a0", "0x030000", 14, "i915" },
	{ "0000:04:00.0", "pci0000:00/0000:00:01.1/0000:01:00.0/0000:02:04.0", "0x8086", "0x4f90", "0x040300", 15, "snd_hda_intel" },
	{ "0000:0b:00.0", "pci0000:00/0000:00:03.1", "0x10de", "0x1d01", "0x030000", 20, "nouveau" },
	{ "0000:0b:00.1", "pci0000:00/0000:00:03.1", "0x10de", "0x0fb8", "0x040300", 20, "snd_hda_intel" },
};

static void test_intel_gpu_nvidia_host(void)
{
	/* Running Debian's 6.1, with the backports 6.12 installed too: xe is only in 6.12. */
	char *root = machine(AMD, "6.1.0-27-amd64", GRUB, arc_a770, ARRAY_SIZE(arc_a770), "{\"devices\": [\"8086:56a0\", \"8086:4f90\"]}");
	add_kernel(root, "6.12.95+deb12-amd64");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "intel gpu: reboot asked for");
	file_is(root, "etc/modprobe.d/pmoves-vfio.conf",
		HDR "options vfio-pci ids=8086:4f90,8086:56a0\n"
		    "softdep i915 pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\nsoftdep xe pre: vfio-pci\n",
		"intel gpu: the Arc A770 and its audio to vfio-pci, loaded before i915 and snd_hda_intel (both kernels) and xe "
		"(only the 6.12 one has it); nothing for the host's nouveau");
	tap_is_str(modprobe_d(root), "pmoves-vfio.conf\n", "intel gpu: nothing blacklisted: the host keeps nouveau for its GT 1030");
	file_is(root, "etc/modules-load.d/pmoves-vfio.conf", MODULES, "intel gpu: no vfio_virqfd (a 6.12 kernel is installed)");
	char *calls = calls_of(root);
	char *want = t_strf("chroot %s update-initramfs -u -k all\nchroot %s update-grub\n", root, root);
	tap_is_str(calls, want, "intel gpu: initramfs rebuilt, update-grub");
	free(calls), free(want);
	t_result_free(&r);

	reboot_into(root, "BOOT_IMAGE=/boot/vmlinuz root=UUID=1234 ro quiet iommu=pt\n");
	set_driver(root, &arc_a770[1], "vfio-pci");
	set_driver(root, &arc_a770[2], "vfio-pci");
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "intel gpu after the reboot: done");
	tap_contains(r.out, "step=iommu state=ok IOMMU on (4 groups); 0000:03:00.0 8086:56a0 group 14 vfio-pci, 0000:04:00.0 8086:4f90 group 15 vfio-pci\n",
		     "intel gpu after the reboot: the Arc's functions on vfio-pci");
	t_result_free(&r);

	/* A host an earlier version provisioned: its nouveau blacklist is there, as it wrote it.
	 * With a changed config every step is checked again: the blacklist is gone, the
	 * initramfs (which carries modprobe.d) rebuilt, a reboot asked for. */
	t_write(root, "etc/modprobe.d/pmoves-blacklist-nouveau.conf", OLD_BLACKLIST);
	t_write(root, "etc/pmoves/firstboot.json",
		"{" CONFIG_OFF_OTHERS ", \"iommu\": {\"devices\": [\"8086:56a0\", \"8086:4f90\"], \"without_gpu\": false}}");
	clear_calls(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=iommu state=reboot iommu=pt in '/etc/default/grub'; vfio-pci ids=8086:4f90,8086:56a0 (loaded before i915, "
			    "snd_hda_intel, xe); the old blacklist '/etc/modprobe.d/pmoves-blacklist-nouveau.conf' removed; reboot to apply",
		     "old blacklist: the check finds it, apply removes it and says so");
	tap_is_str(modprobe_d(root), "pmoves-vfio.conf\n", "old blacklist: gone");
	calls = calls_of(root);
	want = t_strf("chroot %s update-initramfs -u -k all\nchroot %s update-grub\n", root, root);
	tap_is_str(calls, want, "old blacklist: initramfs rebuilt without it");
	free(calls), free(want);
	t_result_free(&r);

	t_cleanup(root);

	/* A file of that name that is not the one we wrote is the admin's: left alone. */
	root = machine(AMD, "6.1.0-27-amd64", GRUB, arc_a770, ARRAY_SIZE(arc_a770), "{\"devices\": [\"8086:56a0\", \"8086:4f90\"]}");
	t_write(root, "etc/modprobe.d/pmoves-blacklist-nouveau.conf", "blacklist nouveau\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "vfio-pci ids=8086:4f90,8086:56a0 (loaded before i915, snd_hda_intel); reboot to apply",
		     "a blacklist of the admin's: the step applies, says nothing of it");
	file_is(root, "etc/modprobe.d/pmoves-blacklist-nouveau.conf", "blacklist nouveau\n", "a blacklist of the admin's: kept");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- glob patterns in modules.alias, module names, what is not an alias ---- */

/* Made up for this test, against the RTX 3090's modaliases
 * (pci:v000010DEd00002204sv00001458sd0000403Bbc03sc00i00 and the audio function's
 * ...d00001AEF...bc04sc03i00): the glob forms real modules.alias files use ('*', '?', '[...]',
 * as in dmi:*:[bs]vnD[Ee][Ll][Ll]*:* and mdio:0000000000100010010101100001????), matched
 * whole and case-sensitive as modprobe does; a name with '-' as one with '_'; NVIDIA's own
 * driver as its DKMS build registers it. The m_ modules must match, the n_ ones not. */
#define TRICKY_ALIASES                                                                  \
	"# Aliases extracted from modules themselves.\n"                                \
	"alias pci:v000010DEd0000220?sv*sd*bc03sc*i* m_question\n"                      \
	"alias pci:v000010DEd000022[0-4]4sv*sd*bc03sc*i* m_range\n"                     \
	"alias pci:v000010DEd000022[!0]4sv*sd*bc03sc*i* n_negated_range\n"              \
	"alias pci:v000010DEd00002204sv*sd*bc03sc00i00 m_exact\n"                       \
	"alias pci:v000010DEd00002204 n_prefix_only\n"                                  \
	"alias pci:v000010ded00002204sv*sd*bc*sc*i* n_lower_case\n"                     \
	"alias pci:v00008086d000010DEsv*sd*bc*sc*i* n_device_10de\n"                    \
	"alias pci:v0000????d00002204sv*sd*bc03sc00i01* n_prog_if\n"                    \
	"alias pci:v00001234d*sv*sd*bc*sc*i* n/bad/name_that_matches_nothing\n"         \
	"\n"                                                                            \
	"alias pci:v*d*sv*sd*bc04sc03i00* m-dash-name\n"                                \
	"alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"                                  \
	"alias pci:* vfio-pci\n"                                                        \
	"alias pci:v000010DEd*sv*sd*bc03sc00i00* nvidia\n"                              \
	"alias pci:v000010DEd00002204sv*sd*bc*sc*i*\n"                                  \
	"softdep nouveau pre: n_not_an_alias\n"                                         \
	"alias \t pci:v000010DEd00002204sv*sd*bc*sc*i*  \t m_blanks \n"                 \
	"alias pci:v000010DEd00002204sv*sd*bc*sc*i* m_last_line_without_newline"

static void test_alias_patterns(void)
{
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	t_write(root, "lib/modules/6.1.0-27-amd64/modules.alias", TRICKY_ALIASES);
	/* Left behind by a removed kernel (no /boot/vmlinuz): read when it has a modules.alias
	 * (the same module with '_'), passed over when it has none. */
	t_write(root, "lib/modules/6.1.0-26-amd64/modules.alias", "alias pci:v000010DEd*sv*sd*bc04sc03i00* m_dash_name\n");
	t_write(root, "lib/modules/6.1.0-25-amd64/modules.dep", "");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "alias patterns: reboot asked for");
	file_is(root, "etc/modprobe.d/pmoves-vfio.conf",
		HDR "options vfio-pci ids=10de:1aef,10de:2204\n"
		    "softdep m_blanks pre: vfio-pci\nsoftdep m_dash_name pre: vfio-pci\nsoftdep m_exact pre: vfio-pci\n"
		    "softdep m_last_line_without_newline pre: vfio-pci\nsoftdep m_question pre: vfio-pci\n"
		    "softdep m_range pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\n",
		"alias patterns: '?', '[0-4]', an exact pattern, blanks and a last line without newline match; '[!0]', a "
		"prefix, lower case, a vendor ID in the device field do not; m-dash-name once as m_dash_name; vfio_pci "
		"never before itself");
	t_result_free(&r);
	t_cleanup(root);

	/* A pattern that matches with a name that is no module name: the step fails, writes nothing. */
	root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	t_write(root, "lib/modules/6.1.0-27-amd64/modules.alias",
		"alias pci:v000010DEd*sv*sd*bc03sc*i* nouveau\nalias pci:v000010DEd*sv*sd*bc03sc*i* ../evil\n");
	r = t_run(root, NULL);
	tap_is_int(r.status, 1, "alias with a bad module name: the step fails");
	tap_contains(r.out, "step=iommu state=failed '/lib/modules/6.1.0-27-amd64/modules.alias' line 2: '../evil' is not a module name",
		     "alias with a bad module name: says where");
	file_is(root, "etc/kernel/cmdline", "root=UUID=e5a13f75-f307-88e8-ada7-5978ab7cac8d console=tty0 console=ttyS0,115200 rw\n",
		"alias with a bad module name: the command line left as it was");
	tap_ok(!t_exists(root, "etc/modprobe.d/pmoves-vfio.conf"), "alias with a bad module name: no vfio file written");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- what the drivers cannot be told from ---- */

static void test_alias_missing(void)
{
	/* A kernel that can boot without its modules.alias (depmod not run). */
	char *root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	char *p = t_strf("%s/lib/modules/6.1.0-27-amd64/modules.alias", root);
	unlink(p);
	free(p);
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 1, "no modules.alias: the step fails");
	tap_contains(r.out, "step=iommu state=failed '/lib/modules/6.1.0-27-amd64/modules.alias' is missing: the drivers to load "
			    "after vfio-pci cannot be told (run 'depmod 6.1.0-27-amd64')",
		     "no modules.alias: says which and what to do");
	tap_ok(!t_exists(root, "etc/modprobe.d/pmoves-vfio.conf"), "no modules.alias: nothing written");
	char *calls = calls_of(root);
	tap_ok(!strstr(calls, "update-initramfs") && !strstr(calls, "kernel-install"), "no modules.alias: nothing run");
	free(calls);
	t_result_free(&r);
	t_cleanup(root);

	/* A selected function without a modalias. */
	root = machine(INTEL, "6.1.0-27-amd64", SYSTEMD_BOOT, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	t_write(root, "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.1/modalias", "usb:v10DEp1AEF\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=iommu state=failed cannot read the modalias of PCI function '0000:01:00.1': not a PCI modalias",
		     "a modalias that is not a PCI one: the step fails and names the function");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- dry run ---- */

static void test_dry_run(void)
{
	char *root = machine(INTEL, "5.10.0-28-amd64", GRUB, rtx3090, ARRAY_SIZE(rtx3090), "{}");
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	struct t_result r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, false);
	tap_is_int(r.status, 0, "dry run: exit 0");
	tap_is_str(after, before, "dry run: the tree is unchanged");
	tap_contains(r.out, "pmoves-firstboot: plan step=iommu run\n", "dry run: the step would run");
	tap_contains(r.out,
		     "pmoves-firstboot: would write /etc/default/grub (mode 0644, ",
		     "dry run: the GRUB file");
	tap_contains(r.out, "  | GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt intel_iommu=on\"\n",
		     "dry run: with the new line (iommu=soft replaced where it was)");
	tap_contains(r.out,
		     "pmoves-firstboot: would write /etc/modprobe.d/pmoves-vfio.conf (mode 0644, ",
		     "dry run: the vfio file");
	tap_contains(r.out, "  | options vfio-pci ids=10de:1aef,10de:2204\n", "dry run: its content");
	tap_ok(!strstr(r.out, "blacklist"), "dry run: no blacklist");
	tap_contains(r.out, "  | vfio_virqfd\n", "dry run: vfio_virqfd on 5.10");
	char *run = t_strf("pmoves-firstboot: would run chroot %s update-initramfs -u -k all\n"
			   "pmoves-firstboot: would run chroot %s update-grub\n",
			   root, root);
	tap_contains(r.out, run, "dry run: the commands, in order");
	tap_contains(r.out, "pmoves-firstboot: plan step=iommu result would end reboot", "dry run: and the reboot");
	char *c = calls_of(root);
	tap_is_str(c, "", "dry run: no command run");
	free(c), free(run), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_schema(void)
{
	char *root = t_tree();
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"iommu\": {\"devices\": [\"01:00\"]}}", "'01:00' is neither a PCI address" },
		{ "{\"iommu\": {\"devices\": [\"10de:22\"]}}", "'10de:22' is neither" },
		{ "{\"iommu\": {\"devices\": [\"0000:01:20.0\"]}}", "'0000:01:20.0' is neither" },
		{ "{\"iommu\": {\"gpu\": true}}", "gpu" },
		{ "{\"iommu\": {\"without_gpu\": \"yes\"}}", "without_gpu" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t_write(root, "etc/pmoves/firstboot.json", bad[i].cfg);
		char *p = t_strf("%s/etc/pmoves/firstboot.json", root);
		char *argv[] = { "pmoves-firstboot", "validate", p, NULL };
		struct t_result r = t_fb(root, NULL, argv);
		tap_ok(r.status == 2 && r.err && strstr(r.err, bad[i].msg), "schema: %s refused", bad[i].cfg);
		if (r.status != 2 || !r.err || !strstr(r.err, bad[i].msg))
			tap_diag("status %d, stderr: %s", r.status, r.err ? r.err : "");
		t_result_free(&r);
		free(p);
	}
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_intel_3090();
	test_amd_2080_grub();
	test_amd_4090_proxmox();
	test_plus_kernel();
	test_two_gpus();
	test_amd_gpu_intel_host();
	test_intel_gpu_nvidia_host();
	test_alias_patterns();
	test_alias_missing();
	test_no_gpu();
	test_iommu_off();
	test_dry_run();
	test_schema();
	return tap_done();
}
