/* The Raspberry Pi's own boot path. The boot ROM (Pi 3) or EEPROM (Pi 4) reads the first FAT
 * partition of an MBR card; the firmware there (start4.elf) reads config.txt, loads the kernel,
 * the initramfs and the board's device tree and starts the kernel with cmdline.txt.
 *
 * On the device, Debian's raspi-firmware keeps that partition current: its kernel and
 * initramfs hooks (z50-raspi-firmware) copy the newest kernel, initramfs and device trees to
 * /boot/firmware and write config.txt and cmdline.txt from /etc/default/raspi-firmware,
 * /etc/default/raspi-firmware-custom and /etc/default/raspi-extra-cmdline. Those files are the
 * one source of truth: the build writes them from the profile and lays the partition out as
 * the hook does, in the hook's own format, so that the first kernel upgrade on the device
 * writes the same config.txt and cmdline.txt again.
 *
 * `pmoves-image run` does what the Pi's firmware does, on QEMU's raspi3b (Debian 12's QEMU 7.2
 * has no raspi4b) or on virt: it reads config.txt and cmdline.txt from the image and boots
 * the kernel, initramfs and device tree they name. */
#include "build.h"
#include "inspect.h"
#include "log.h"
#include "mbr.h"
#include "run.h"
#include "util.h"

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#define FIRMWARE_MOUNT "/boot/firmware" /* where the hooks write: fixed in them */
#define CONFIG_LINE_MAX 78 /* the limit of the firmware in Debian 12 (newer ones read 98) */
#define CONFIG_TXT_MAX (64u << 10)
#define CMDLINE_TXT_MAX 4096u /* the firmware reads at most this much of cmdline.txt */
/* The consoles the hook puts on the command line: the screen, and the GPIO header's UART,
 * which Debian's device trees make ttyS1 (the mini UART) on the Pi 3 and 4 families. CMA=0:
 * the hook would add cma=64M on a Pi 3 and nothing on a Pi 4 (it looks at the board it runs
 * on); a headless node needs none, and the same card then gets the same line on every board. */
#define CONSOLES "tty0 ttyS1,115200"

static const struct boot_part raspi_needs[] = {
	{ .type = "firmware", .fs = "vfat", .mount_hint = FIRMWARE_MOUNT },
	{ .type = NULL },
};

/* ---- profile: boot.config, lines for config.txt ---- */

static bool config_word(const char *s, size_t n, bool value)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-' || (value && strchr(".:+", s[i]))))
			return false;
	return true;
}

/* PARAM or PARAM=VALUE, comma-separated, from S; FIRST_IS_NAME: the first is a bare name
 * (an overlay's). */
static bool config_params(const char *s, bool first_is_name)
{
	for (bool first = true;; first = false) {
		size_t n = strcspn(s, ",");
		const char *eq = memchr(s, '=', n);
		if (eq && (first && first_is_name))
			return false;
		if (!config_word(s, eq ? (size_t)(eq - s) : n, false) ||
		    (eq && !config_word(eq + 1, n - (size_t)(eq + 1 - s), true)))
			return false;
		if (!s[n])
			return true;
		s += n + 1;
	}
}

/* "dtoverlay=NAME[,PARAM[=VALUE]]..." or "dtparam=PARAM[=VALUE][,...]": what a profile may add to
 * config.txt. Other keys change how the firmware boots the card (kernel=, initramfs,
 * arm_64bit=, os_prefix=, conditional sections) and are the build's to write. */
bool raspi_config_line_valid(const char *line)
{
	if (strlen(line) > CONFIG_LINE_MAX)
		return false;
	if (str_starts_with(line, "dtoverlay="))
		return config_params(line + strlen("dtoverlay="), true);
	if (str_starts_with(line, "dtparam="))
		return config_params(line + strlen("dtparam="), false);
	return false;
}

static int raspi_check(const struct profile *p, struct problems *pr)
{
	const struct part_spec *fw = profile_part_by_type(p, "firmware");
	if (fw != &p->disk.parts[0])
		return problem(pr, ".disk.partitions", "boot loader 'raspi' needs the \"firmware\" partition first: the "
				   "Pi's boot ROM reads the first partition");
	if (!STREQ(fw->mount, FIRMWARE_MOUNT))
		return problem(pr, ".disk.partitions[0].mount",
			       "boot loader 'raspi' needs the firmware partition at \"" FIRMWARE_MOUNT
			       "\" (where raspi-firmware's kernel hooks write), not %s",
			       Q(fw->mount));
	json_object *lines = json_object_object_get(p->boot.json, "config");
	if (!lines)
		return 0;
	return check_str_list(pr, ".boot.config", lines, 64, "lines",
			      raspi_config_line_valid,
			      "a config.txt line \"dtoverlay=NAME[,PARAM[=VALUE]]...\" or \"dtparam=PARAM[=VALUE][,...]\" "
			      "(names of letters, digits, '_' and '-'; values also '.', ':', '+'; at most 78 bytes, the firmware's limit)");
}

/* ---- build ---- */

/* Copies the regular files of FROM whose names start with PREFIX (and end with SUFFIX) to
 * TO; how many into *ret_n. */
static int copy_dir_files(struct build *b, const char *from, const char *prefix, const char *suffix, const char *to,
			  size_t *ret_n)
{
	_cleanup_strv_ char **names = NULL;
	size_t n = 0;
	int r = tree_list_files(b, from, prefix, suffix, true, &names);
	if (r < 0)
		return r;
	for (size_t i = 0; names && names[i]; i++) {
		_cleanup_free_ char *src = NULL, *dst = NULL;
		if (asprintf(&src, "%s/%s", from, names[i]) < 0 || asprintf(&dst, "%s/%s", to, names[i]) < 0)
			return -ENOMEM;
		if ((r = tree_copy_file(b, src, dst, 0644)) < 0)
			return r == -ENOENT ? log_errno(r, "cannot copy '%s' in the image", src) : r;
		n++;
	}
	*ret_n = n;
	return 0;
}

/* The overlay a dtoverlay= line names must be on the firmware partition, or the firmware
 * skips it without a word on the console. */
static int check_overlays(struct build *b)
{
	json_object *lines = json_object_object_get(b->p->boot.json, "config");
	for (size_t i = 0; lines && i < json_object_array_length(lines); i++) {
		const char *l = json_object_get_string(json_object_array_get_idx(lines, i));
		if (!str_starts_with(l, "dtoverlay="))
			continue;
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, FIRMWARE_MOUNT "/overlays/%.*s.dtbo", (int)strcspn(l + 10, ","), l + 10) < 0)
			return -ENOMEM;
		_cleanup_close_ int fd = tree_open(b, path, O_RDONLY, 0);
		if (fd < 0) {
			log_error("boot.config[%zu]: '%s' names an overlay that is not in the image ('%s'): Debian's "
				  "kernel ships none, add it with an overlay directory",
				  i, l, path);
			return -ENOENT;
		}
	}
	return 0;
}

/* config.txt and cmdline.txt exactly as raspi-firmware's z50-raspi-firmware writes them from
 * CUSTOM (raspi-firmware-custom), EXTRA (raspi-extra-cmdline) and the defaults the build
 * writes (its KERNEL="auto", INITRAMFS="auto", CMA=0, arm64). */
static int render(struct build *b, const char *rootpart, const char *custom, const char *extra, char **ret_config,
		  char **ret_cmdline)
{
	const char *kver = b->kernel_version;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"# Do not modify this file!\n#\n"
		"# It is automatically generated upon install or update of either the\n"
		"# firmware or the Linux kernel.\n#\n"
		"# If you need to set boot-time parameters, do so via the\n"
		"# /etc/default/raspi-firmware, /etc/default/raspi-firmware-custom or\n"
		"# /etc/default/raspi-extra-cmdline files.\n\n"
		"# Switch the CPU from ARMv7 into ARMv8 (aarch64) mode\narm_64bit=1\n\n"
		"enable_uart=1\nupstream_kernel=1\n\nkernel=vmlinuz-%s\n"
		"# For details on the initramfs directive, see\n"
		"# https://www.raspberrypi.org/forums/viewtopic.php?f=63&t=10532\n"
		"initramfs initrd.img-%s\n",
		kver, kver);
	if (*custom)
		fprintf(f, "\n# Inserted by /etc/default/raspi-firmware-custom\n%s", custom);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	/* the hook's " console=X" for each of $CONSOLES, then its fixed words; an empty $SET_CMA
	 * and $post_cmdline leave their spaces */
	if (asprintf(ret_cmdline, " console=tty0 console=ttyS1,115200 root=%s rw fsck.repair=yes net.ifnames=0  rootwait %s\n",
		     rootpart, extra) < 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret_config = buf;
	return 0;
}

static int raspi_install(struct build *b)
{
	const struct profile *p = b->p;
	const char *kver = b->kernel_version;
	size_t root = SIZE_MAX;
	for (size_t i = 0; i < b->plan.n; i++)
		if (b->plan.parts[i].spec->mount && STREQ(b->plan.parts[i].spec->mount, "/"))
			root = i;
	if (root == SIZE_MAX)
		return -EINVAL;
	char rootpart[40];
	snprintf(rootpart, sizeof(rootpart), "PARTUUID=%08" PRIx32 "-%02zu", b->plan.layout.disk_id, root + 1);

	size_t n = 0;
	int r = copy_dir_files(b, "/usr/lib/raspi-firmware", "", "", FIRMWARE_MOUNT, &n);
	if (r == -ENOENT || (r == 0 && n == 0)) {
		log_error("the image has no Raspberry Pi boot firmware in '/usr/lib/raspi-firmware': add raspi-firmware "
			  "to rootfs.packages (component non-free-firmware)");
		return -ENOENT;
	}
	if (r < 0)
		return log_errno(r, "cannot copy the Raspberry Pi boot firmware in the image");
	_cleanup_free_ char *dtbs = NULL, *kernel = NULL, *initrd = NULL, *kernel_dst = NULL, *initrd_dst = NULL;
	if (asprintf(&dtbs, "/usr/lib/linux-image-%s/broadcom", kver) < 0 || asprintf(&kernel, "/boot/vmlinuz-%s", kver) < 0 ||
	    asprintf(&initrd, "/boot/initrd.img-%s", kver) < 0 ||
	    asprintf(&kernel_dst, FIRMWARE_MOUNT "/vmlinuz-%s", kver) < 0 ||
	    asprintf(&initrd_dst, FIRMWARE_MOUNT "/initrd.img-%s", kver) < 0)
		return -ENOMEM;
	r = copy_dir_files(b, dtbs, "bcm", ".dtb", FIRMWARE_MOUNT, &n);
	if (r == -ENOENT || (r == 0 && n == 0)) {
		log_error("kernel %s has no Raspberry Pi device trees in '%s' (linux-image-arm64 has them)", kver, dtbs);
		return -ENOENT;
	}
	if (r < 0)
		return r;
	const char *from[] = { kernel, initrd }, *to[] = { kernel_dst, initrd_dst };
	for (size_t i = 0; i < 2; i++) {
		r = tree_copy_file(b, from[i], to[i], 0644);
		if (r == -ENOENT)
			log_error("the image has no '%s'%s", from[i], i ? ": install initramfs-tools" : "");
		if (r < 0)
			return r;
	}
	if ((r = check_overlays(b)) < 0)
		return r;

	_cleanup_free_ char *config = NULL, *cmdline = NULL, *defaults = NULL, *custom = NULL, *extra = NULL;
	/* the profile's lines, as /etc/default/raspi-firmware-custom holds them */
	json_object *lines = json_object_object_get(p->boot.json, "config");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; lines && i < json_object_array_length(lines); i++)
		fprintf(f, "%s\n", json_object_get_string(json_object_array_get_idx(lines, i)));
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	custom = buf;
	if ((r = render(b, rootpart, custom, p->boot.cmdline, &config, &cmdline)) < 0)
		return r;
	if (asprintf(&defaults,
		     "# Written by pmoves-image for profile '%s'. raspi-firmware's kernel and initramfs hooks\n"
		     "# read it and write /boot/firmware/config.txt and cmdline.txt from it (with\n"
		     "# /etc/default/raspi-firmware-custom and /etc/default/raspi-extra-cmdline).\n"
		     "ROOTPART=%s\nCONSOLES=\"" CONSOLES "\"\nCMA=0\n",
		     p->name, rootpart) < 0 ||
	    asprintf(&extra, "%s\n", p->boot.cmdline) < 0)
		return -ENOMEM;
	const struct {
		const char *path, *text;
		bool keep_empty;
	} files[] = {
		{ "/etc/default/raspi-firmware", defaults, true },
		{ "/etc/default/raspi-firmware-custom", custom, false },
		{ "/etc/default/raspi-extra-cmdline", extra, false },
		{ FIRMWARE_MOUNT "/config.txt", config, true },
		{ FIRMWARE_MOUNT "/cmdline.txt", cmdline, true },
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (!files[i].keep_empty && strspn(files[i].text, "\n") == strlen(files[i].text))
			continue;
		if ((r = tree_write_file(b, files[i].path, files[i].text, strlen(files[i].text), 0644)) < 0)
			return log_errno(r, "cannot write '%s' in the image", files[i].path);
	}
	log_info("boot: raspi, kernel %s, root %s", kver, rootpart);
	return 0;
}

/* ---- run: what the Pi's firmware does ---- */

struct pi_machine {
	const char *name;  /* run --machine */
	const char *qemu;  /* QEMU's machine */
	const char *dtb;   /* the device tree the firmware picks with upstream_kernel=1 */
	const char *model; /* [piN] sections that apply */
	const char *console; /* appended to cmdline.txt: NULL, the machine has the Pi's UARTs */
};

static const struct pi_machine pi_machines[] = {
	/* The Pi 3B's UARTs in QEMU: the PL011 first, the mini UART (ttyS1, the console the
	 * hook names) second. 1 GiB and 4 cores are fixed by the board. */
	{ "raspi3b", "raspi3b", "bcm2837-rpi-3-b.dtb", "pi3", NULL },
	/* The same kernel, initramfs and command line on a generic machine with PCI: its only
	 * UART is a PL011, ttyAMA0, added as the last console. */
	{ "virt", NULL, NULL, NULL, "console=ttyAMA0,115200" },
};

/* The first partition's byte offset, when it is FAT (0x0b, 0x0c, 0x0e) on an MBR disk. */
static int firmware_offset(const char *image, uint64_t *ret)
{
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	struct mbr m;
	if (fd < 0)
		return -errno;
	if (pread(fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || le16toh(m.signature) != 0xaa55)
		return -EBADMSG;
	uint8_t t = m.part[0].type;
	if (t != 0x0b && t != 0x0c && t != 0x0e)
		return -EBADMSG;
	*ret = (uint64_t)le32toh(m.part[0].first_lba) * 512;
	return 0;
}

/* A name from config.txt used as a file on the FAT: no directories, no mtools wildcards, no
 * option-looking start. */
static bool fat_name_valid(const char *s)
{
	if (!*s || *s == '-' || *s == '.' || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr("._+-", *s)))
			return false;
	return true;
}

/* NAME from the FAT at OFFSET of IMAGE into DIR/AS (mtools: no mount, no root needed). */
static int fat_get(const char *image, uint64_t offset, const char *name, const char *dir, const char *as, size_t max,
		   char **ret_path)
{
	_cleanup_free_ char *mcopy = NULL, *src = NULL, *dst = NULL, *img = NULL;
	if (find_program("mcopy", &mcopy) < 0) {
		log_error("'mcopy' not found (install package 'mtools'): it reads the Pi image's firmware partition");
		return -ENOENT;
	}
	if (asprintf(&img, "%s@@%" PRIu64, image, offset) < 0 || asprintf(&src, "::%s", name) < 0 ||
	    asprintf(&dst, "%s/%s", dir, as) < 0)
		return -ENOMEM;
	char *argv[] = { mcopy, "-n", "-i", img, src, dst, NULL };
	char *env[] = { "MTOOLS_SKIP_CHECK=1", NULL };
	_cleanup_free_ char *out = NULL;
	int r = run_argv(argv, &(struct run_opts){ .capture = &out, .capture_stderr = true, .env = env });
	struct stat st;
	if (r != 0 || stat(dst, &st) < 0) {
		log_error("'%s' is not on the firmware partition of '%s'", name, image);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		log_error("'%s' on the firmware partition of '%s' is larger than %zu bytes", name, image, max);
		return -EINVAL;
	}
	*ret_path = TAKE_PTR(dst);
	return 0;
}

/* config.txt as the firmware reads it for MODEL: "key=value" lines, "initramfs NAME [...]",
 * '#' comments, [all]/[none]/[piN] sections (other filters never apply here). */
struct pi_config {
	char *kernel, *initramfs, *dtb, *cmdline, *os_prefix;
	bool arm_64bit, upstream;
};

static int set(char **field, const char *v)
{
	free(*field);
	return (*field = strdup(v)) ? 0 : -ENOMEM;
}

static int parse_config(const char *path, const char *text, const char *model, struct pi_config *c)
{
	bool on = true;
	unsigned n = 0;
	for (const char *l = text; *l; ) {
		size_t len = strcspn(l, "\n");
		_cleanup_free_ char *line = strndup(l, len);
		l += len + (l[len] == '\n');
		n++;
		if (!line)
			return -ENOMEM;
		char *s = line + strspn(line, " \t");
		s[strcspn(s, "#\r")] = '\0';
		for (size_t e = strlen(s); e && (s[e - 1] == ' ' || s[e - 1] == '\t'); e--)
			s[e - 1] = '\0';
		if (!*s)
			continue;
		if (*s == '[') {
			on = STREQ(s, "[all]") || (model && strlen(s) == strlen(model) + 2 && !strncmp(s + 1, model, strlen(model)));
			continue;
		}
		if (!on)
			continue;
		char *v = strchr(s, '=');
		int r = 0;
		if (str_starts_with(s, "initramfs ") || str_starts_with(s, "initramfs\t")) {
			char *name = s + 10 + strspn(s + 10, " \t");
			name[strcspn(name, " \t")] = '\0';
			r = set(&c->initramfs, name);
		} else if (!v) {
			log_error("'%s' line %u: '%s' is not \"key=value\"", path, n, s);
			return -EINVAL;
		} else {
			*v++ = '\0';
			if (STREQ(s, "kernel"))
				r = set(&c->kernel, v);
			else if (STREQ(s, "device_tree"))
				r = set(&c->dtb, v);
			else if (STREQ(s, "cmdline"))
				r = set(&c->cmdline, v);
			else if (STREQ(s, "os_prefix"))
				r = set(&c->os_prefix, v);
			else if (STREQ(s, "arm_64bit"))
				c->arm_64bit = STREQ(v, "1");
			else if (STREQ(s, "upstream_kernel"))
				c->upstream = STREQ(v, "1");
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static void pi_config_done(struct pi_config *c)
{
	free(c->kernel);
	free(c->initramfs);
	free(c->dtb);
	free(c->cmdline);
	free(c->os_prefix);
}

/* The files config.txt names on machine M, out of the image into the run's directory. */
static int plan_boot(const struct qemu_image *img, const struct pi_machine *m, uint64_t off, struct pi_config *c,
		     struct qemu_boot *ret)
{
	_cleanup_free_ char *cfg_path = NULL, *cfg = NULL, *cmd_path = NULL, *cmd = NULL;
	int r = fat_get(img->path, off, "config.txt", img->dir, "config.txt", CONFIG_TXT_MAX, &cfg_path);
	if (r == 0)
		r = read_file(cfg_path, CONFIG_TXT_MAX, &cfg, NULL);
	if (r == 0)
		r = parse_config("config.txt", cfg, m->model, c);
	if (r < 0)
		return r;
	if (!c->arm_64bit) {
		log_error("config.txt of '%s' does not set arm_64bit=1: the Pi would start its kernel in 32-bit mode",
			  img->path);
		return -EINVAL;
	}
	if (m->dtb && !c->dtb && !c->upstream) {
		log_error("config.txt of '%s' does not set upstream_kernel=1: the firmware would look for the Raspberry "
			  "Pi kernel's device tree names, which Debian's kernel does not ship",
			  img->path);
		return -EINVAL;
	}
	if (c->os_prefix) {
		log_error("config.txt of '%s': os_prefix is not supported by run", img->path);
		return -EINVAL;
	}
	/* the firmware's defaults: kernel8.img with arm_64bit, cmdline.txt, the board's tree */
	if ((!c->kernel && (r = set(&c->kernel, "kernel8.img")) < 0) ||
	    (!c->cmdline && (r = set(&c->cmdline, "cmdline.txt")) < 0))
		return r;
	const char *dtb = m->dtb ? (c->dtb ? c->dtb : m->dtb) : NULL;
	const char *names[] = { c->kernel, c->initramfs, dtb, c->cmdline };
	const char *what[] = { "kernel", "initramfs", "device_tree", "cmdline" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i] && !fat_name_valid(names[i])) {
			log_error("config.txt of '%s': %s '%s' is not a file name run reads (letters, digits, '.', '_', "
				  "'+', '-')",
				  img->path, what[i], names[i]);
			return -EINVAL;
		}
	if ((r = fat_get(img->path, off, c->kernel, img->dir, "kernel", 256u << 20, &ret->kernel)) < 0 ||
	    (c->initramfs && (r = fat_get(img->path, off, c->initramfs, img->dir, "initrd", 1u << 30, &ret->initrd)) < 0) ||
	    (dtb && (r = fat_get(img->path, off, dtb, img->dir, "dtb", 4u << 20, &ret->dtb)) < 0) ||
	    (r = fat_get(img->path, off, c->cmdline, img->dir, "cmdline.txt", CMDLINE_TXT_MAX, &cmd_path)) < 0 ||
	    (r = read_file(cmd_path, CMDLINE_TXT_MAX, &cmd, NULL)) < 0)
		return r;
	cmd[strcspn(cmd, "\r\n")] = '\0'; /* the firmware reads the first line */
	if (m->console ? asprintf(&ret->append, "%s %s", cmd, m->console) < 0 : !(ret->append = strdup(cmd)))
		return -ENOMEM;
	log_info("raspi: config.txt: kernel '%s', initramfs '%s'%s%s; cmdline.txt:%s", c->kernel,
		 c->initramfs ? c->initramfs : "(none)", dtb ? ", device tree " : "", dtb ? dtb : "", ret->append);
	return 0;
}

static int raspi_qemu(const struct qemu_image *img, struct qemu_boot *ret)
{
	const struct pi_machine *m = &pi_machines[0];
	if (img->machine) {
		m = NULL;
		for (size_t i = 0; i < ARRAY_SIZE(pi_machines) && !m; i++)
			if (STREQ(pi_machines[i].name, img->machine))
				m = &pi_machines[i];
		if (!m) {
			log_error("--machine '%s': a Raspberry Pi image boots on 'raspi3b' or 'virt'", img->machine);
			return -EINVAL;
		}
	}
	uint64_t off = 0;
	if (firmware_offset(img->path, &off) < 0) {
		log_error("'%s' has no FAT firmware partition first on an MBR disk (a raw Raspberry Pi image: "
			  "'qemu-img convert -O raw' a qcow2 one)",
			  img->path);
		return -EINVAL;
	}
	struct pi_config c = { 0 };
	int r = plan_boot(img, m, off, &c, ret);
	pi_config_done(&c);
	if (r < 0)
		return r;
	ret->machine = m->qemu;
	if (m->qemu) { /* the board: its CPU, memory and cores are fixed; no PCI, no fw_cfg */
		ret->sd = true;
		ret->usb_net = true;
		ret->no_fw_cfg = true;
		ret->serial = "1";
		ret->cpu = "cortex-a53";
		ret->memory = 1024;
		ret->cpus = 4;
	}
	return 0;
}

/* ---- inspect: the card's config.txt and cmdline.txt, and whether they agree with it ---- */

/* NAME's bytes from the FAT at OFFSET of IMAGE (mtype), at most MAX; -ENOENT: not there. */
static int fat_read(const char *image, uint64_t offset, const char *name, size_t max, char **ret)
{
	_cleanup_free_ char *prog = NULL, *img = NULL, *src = NULL;
	if (find_program(name ? "mtype" : "mdir", &prog) < 0) {
		log_error("'%s' not found (install package 'mtools')", name ? "mtype" : "mdir");
		return -EOPNOTSUPP;
	}
	if (asprintf(&img, "%s@@%" PRIu64, image, offset) < 0 || asprintf(&src, "::%s", name ? name : "") < 0)
		return -ENOMEM;
	char *argv[] = { prog, name ? "-i" : "-b", name ? img : "-i", name ? src : img, name ? NULL : "::", NULL };
	char *env[] = { "MTOOLS_SKIP_CHECK=1", NULL };
	int r = run_argv(argv, &(struct run_opts){ .capture = ret, .capture_max = max, .env = env });
	if (r == -EFBIG)
		return r;
	if (r != 0) {
		free(*ret);
		*ret = NULL;
		return r < 0 ? r : -ENOENT;
	}
	return 0;
}

static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *l = list; l && *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n'))
		if (str_starts_with(l, "::/") && strncmp(l + 3, name, n) == 0 && (l[3 + n] == '\n' || !l[3 + n]))
			return true;
	return false;
}

/* An MBR whose first partition is a FAT holding config.txt. */
static bool raspi_recognises(const char *path)
{
	uint64_t off = 0;
	_cleanup_free_ char *list = NULL;
	return firmware_offset(path, &off) == 0 && fat_read(path, off, NULL, 1u << 20, &list) == 0 &&
	       listed(list, "config.txt");
}

static int raspi_inspect(const char *path, const struct inspect_image *img, struct boot_view *v)
{
	uint64_t off = 0;
	if (!img->table || !STREQ(img->table, "mbr") || firmware_offset(path, &off) < 0)
		return -ENODATA;
	_cleanup_free_ char *list = NULL, *cfg = NULL, *cmd = NULL;
	int r = fat_read(path, off, NULL, 1u << 20, &list);
	if (r < 0 || !(listed(list, "config.txt") || listed(list, "start4.elf") || listed(list, "bootcode.bin")))
		return r == -EOPNOTSUPP || r == -ENOMEM ? r : -ENODATA; /* a FAT first, not a Pi's */
	r = fat_read(path, off, "config.txt", CONFIG_TXT_MAX, &cfg);
	if (r == 0)
		r = boot_view_file(v, "config.txt", cfg);
	else if ((r = boot_view_check(v, false, "config.txt is %s", r == -EFBIG ? "larger than 64 KiB" : "missing")) == 0)
		return 0;
	if (r < 0)
		return r;
	r = fat_read(path, off, "cmdline.txt", CMDLINE_TXT_MAX, &cmd);
	if (r == 0)
		r = boot_view_file(v, "cmdline.txt", cmd);
	else
		r = boot_view_check(v, false, "cmdline.txt is %s", r == -EFBIG ? "larger than 4 KiB" : "missing");
	if (r < 0)
		return r;

	/* as the firmware of a Pi 4 reads it */
	struct pi_config c = { 0 };
	r = parse_config("config.txt", cfg, "pi4", &c);
	if (r == -EINVAL) /* the line is named above */
		r = boot_view_check(v, false, "config.txt has a line the firmware does not read");
	const char *kernel = c.kernel ? c.kernel : "kernel8.img";
	if (r == 0)
		r = boot_view_check(v, c.arm_64bit, "config.txt %s arm_64bit=1 (a 64-bit kernel)", c.arm_64bit ? "sets" : "does not set");
	if (r == 0)
		r = boot_view_check(v, listed(list, kernel), "kernel '%s' is%s on the firmware partition", kernel,
			       listed(list, kernel) ? "" : " not");
	if (r == 0 && c.initramfs)
		r = boot_view_check(v, listed(list, c.initramfs), "initramfs '%s' is%s on the firmware partition", c.initramfs,
			       listed(list, c.initramfs) ? "" : " not");
	static const char *const fw[] = { "start4.elf", "fixup4.dat" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(fw); i++)
		r = boot_view_check(v, listed(list, fw[i]), "the Pi 4 boot firmware '%s' is%s there", fw[i],
			       listed(list, fw[i]) ? "" : " not");
	static const char *const dtbs[] = { "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dtbs); i++) {
		const char *d = c.dtb ? c.dtb : dtbs[i];
		r = boot_view_check(v, listed(list, d), "device tree '%s' is%s there", d, listed(list, d) ? "" : " not");
		if (c.dtb)
			break;
	}
	if (r == 0 && cmd) {
		size_t nl = strcspn(cmd, "\n");
		r = boot_view_check(v, !cmd[nl] || !cmd[nl + 1], "cmdline.txt is %s", !cmd[nl] || !cmd[nl + 1] ? "one line" : "more than one line (the firmware reads the first)");
		if (r == 0)
			r = boot_view_root(v, img, "cmdline.txt", cmd);
	}
	pi_config_done(&c);
	return r;
}

const struct boot_loader boot_raspi = {
	.name = "raspi",
	.archs = ARCH_AARCH64,
	.table = "mbr",
	.needs = raspi_needs,
	.config_file = "config.txt",
	.check = raspi_check,
	.install = raspi_install,
	.recognises = raspi_recognises,
	.qemu = raspi_qemu,
	.inspect = raspi_inspect,
};
