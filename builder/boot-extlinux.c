/* extlinux: /boot/extlinux/extlinux.conf on the root partition, the menu U-Boot's distro boot
 * reads (sysboot), and the one NVIDIA's Jetson boards read: L4TLauncher, the UEFI firmware's
 * loader on Orin (L4T 35 and 36), and U-Boot on the Nano (L4T 32).
 *
 * On the machine, Debian's u-boot-menu keeps the file current: its kernel hooks
 * (/etc/kernel/postinst.d/zz-u-boot-menu and postrm.d) run u-boot-update, which writes the
 * file from /etc/default/u-boot and the fragments in /etc/u-boot-menu/conf.d. The build puts
 * its settings in a fragment of its own (pmoves.conf: the package's conffile stays as shipped)
 * and writes the file exactly as u-boot-update 4.2 (Debian 12) writes it from them, so the
 * first kernel upgrade on the machine writes the same file again, the new kernel first. Each
 * kernel gets its label and a rescue label (single user), the fallback U-Boot tries when the
 * default does not boot.
 *
 * `pmoves-image run` boots the image as a board with U-Boot does: QEMU's virt machine with
 * Debian's U-Boot for it (u-boot-qemu), which reads the file from partition 1. Before that,
 * run reads the file itself and refuses an image whose default label would not boot. */
#include "build.h"
#include "ext4-read.h"
#include "gpt.h"
#include "hash.h"
#include "inspect.h"
#include "log.h"
#include "mbr.h"
#include "util.h"

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/stat.h>

#define CONF_DIR "/boot/extlinux"
#define CONF CONF_DIR "/extlinux.conf"
#define SETTINGS "/etc/u-boot-menu/conf.d/pmoves.conf"
#define UPDATE "/usr/sbin/u-boot-update"
#define FDT_DIR "/usr/lib/linux-image-" /* u-boot-update's U_BOOT_FDT_DIR, the kernel's device trees */
#define TIMEOUT "30"                    /* tenths of a second, as NVIDIA's own extlinux.conf */
#define CONF_MAX (64u << 10)
#define LABELS_MAX 64
#define UBOOT_ARM64 "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

/* ---- profile ---- */

static bool fdt_valid(const char *s)
{
	if (!*s || strlen(s) > 255 || strstr(s, "//"))
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("._+-/", *c)))
			return false;
	for (const char *c = s; *c; c += strcspn(c, "/"), c += *c == '/') /* no "." or ".." component */
		if (c[0] == '.' && (c[1] == '/' || !c[1] || (c[1] == '.' && (c[2] == '/' || !c[2]))))
			return false;
	return s[strlen(s) - 1] != '/';
}

static int extlinux_check(const struct profile *p, struct problems *pr)
{
	const struct part_spec *root = profile_part_by_mount(p, "/");
	if (root != &p->disk.parts[0])
		return problem(pr, ".disk.partitions",
			       "boot loader 'extlinux' needs the root partition (mount \"/\") first: U-Boot reads "
			       "partition 1, and a Jetson's flash layout for an external root puts APP there");
	if (!STREQ(root->fs, "ext4"))
		return problem(pr, ".disk.partitions[0].fs",
			       "boot loader 'extlinux' needs the root filesystem ext4 (what U-Boot and L4TLauncher read), not %s",
			       Q(root->fs));
	if (profile_part_by_mount(p, "/boot"))
		return problem(pr, ".disk.partitions",
			       "boot loader 'extlinux' reads the kernels from the root filesystem's /boot: no partition "
			       "may be mounted there");
	/* u-boot-update derives the rescue label's line with dash's echo, which reads backslashes */
	if (strchr(p->boot.cmdline, '\\'))
		return problem(pr, ".boot.cmdline", "boot loader 'extlinux': the command line may not hold '\\' "
				   "(u-boot-update would change it on the machine)");
	json_object *fdt = json_object_object_get(p->boot.json, "fdt");
	if (fdt && !fdt_valid(json_object_get_string(fdt)))
		return problem(pr, ".boot.fdt",
			       "%s is not a device tree file: a path under the kernel's %sVERSION/ "
			       "(\"nvidia/tegra234-p3768-0000+p3767-0005-nv.dtb\") or an absolute one in the image "
			       "(letters, digits, '.', '_', '+', '-', '/'; no '.' or '..' components)",
			       Q(json_object_get_string(fdt)), FDT_DIR);
	return 0;
}

/* ---- build ---- */

/* Is PATH a directory (DIR) or a regular file in the tree? O_PATH: a FIFO is not opened. */
static bool tree_is(struct build *b, const char *path, bool dir)
{
	_cleanup_close_ int fd = tree_open(b, path, O_PATH, 0);
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && (dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
}

/* S single-quoted for sh. */
static char *sh_quote(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fputc('\'', f);
	for (; *s; s++)
		*s == '\'' ? fputs("'\\''", f) : fputc(*s, f);
	fputc('\'', f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* u-boot-update's fdt line for kernel V: the profile's FDT (NULL: none named), else the
 * kernel's directory of device trees. */
static int fdt_line(struct build *b, const char *fdt, const char *v, char **ret)
{
	_cleanup_free_ char *in_dir = NULL, *dir = NULL, *dtb_v = NULL;
	if (asprintf(&dir, FDT_DIR "%s/", v) < 0 || asprintf(&in_dir, "%s%s", dir, fdt ? fdt : "") < 0 ||
	    asprintf(&dtb_v, "/dtb-%s", v) < 0)
		return -ENOMEM;
	if (fdt) {
		if (*fdt == '/' && tree_is(b, fdt, false))
			return asprintf(ret, "fdt %s", fdt) < 0 ? -ENOMEM : 0;
		if (*fdt != '/' && tree_is(b, in_dir, false))
			return asprintf(ret, "fdt %s", in_dir) < 0 ? -ENOMEM : 0;
		log_error("boot.fdt: the device tree '%s' is not in the image for kernel %s (looked for '%s')", fdt, v,
			  *fdt == '/' ? fdt : in_dir);
		return -ENOENT;
	}
	if (tree_is(b, dir, true))
		return asprintf(ret, "fdtdir %s", dir) < 0 ? -ENOMEM : 0;
	if (tree_is(b, dtb_v, false))
		return asprintf(ret, "fdt %s", dtb_v) < 0 ? -ENOMEM : 0;
	return (*ret = strdup("")) ? 0 : -ENOMEM;
}

/* /boot/dtbo holding overlays would add an fdtoverlays line, which the build does not write. */
static int check_dtbo(struct build *b)
{
	_cleanup_strv_ char **dtbo = NULL;
	int r = tree_list_files(b, "/boot/dtbo", "", ".dtbo", false, &dtbo);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return log_errno(r, "cannot read the image's /boot/dtbo");
	if (dtbo) {
		log_error("the image has device tree overlays in /boot/dtbo, which u-boot-update would list; the "
			  "build does not write them yet");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int render(struct build *b, char **kernels, const char *root, const char *params, const char *fdt,
		  char **ret)
{
	const char *label = b->p->name;
	/* the rescue label's: `echo "$U_BOOT_PARAMETERS" | sed -e 's| quiet||'`, the first only */
	_cleanup_free_ char *rescue = strdup(params);
	if (!rescue)
		return -ENOMEM;
	char *q = strstr(rescue, " quiet");
	if (q)
		memmove(q, q + 6, strlen(q + 6) + 1);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"## " CONF "\n##\n## IMPORTANT WARNING\n##\n"
		"## The configuration of this file is generated automatically.\n"
		"## Do not edit this file manually, use: u-boot-update\n\n"
		"default l0\nmenu title U-Boot menu\nprompt 0\ntimeout " TIMEOUT "\n");
	int r = 0;
	for (size_t i = 0; kernels[i] && r == 0; i++) {
		const char *v = kernels[i];
		_cleanup_free_ char *initrd = NULL, *initrd_v = NULL, *fdt_l = NULL, *kernel = NULL;
		if (asprintf(&initrd_v, "/boot/initrd.img-%s", v) < 0 || asprintf(&kernel, "/boot/vmlinuz-%s", v) < 0) {
			r = -ENOMEM;
			break;
		}
		if (!tree_is(b, kernel, false)) {
			log_error("'%s' in the tree is not a regular file", kernel);
			r = -EINVAL;
			break;
		}
		if (tree_is(b, initrd_v, false))
			r = asprintf(&initrd, "initrd %s", initrd_v) < 0 ? -ENOMEM : 0;
		else
			r = (initrd = strdup(tree_is(b, "/boot/initrd.img", false) ? "initrd /boot/initrd.img" : "")) ? 0 : -ENOMEM;
		if (r == 0)
			r = fdt_line(b, fdt, v, &fdt_l);
		if (r < 0)
			break;
		fprintf(f,
			"\n\nlabel l%zu\n\tmenu label %s %s\n\tlinux /boot/vmlinuz-%s\n\t%s\n\t%s\n\t\n\tappend %s %s"
			"\n\nlabel l%zur\n\tmenu label %s %s (rescue target)\n\tlinux /boot/vmlinuz-%s\n\t%s\n\t%s\n"
			"\tappend %s %s single\n\t",
			i, label, v, v, initrd, fdt_l, root, params, i, label, v, v, initrd, fdt_l, root, rescue);
	}
	fputc('\n', f); /* echo's */
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	return 0;
}

static int extlinux_install(struct build *b)
{
	const struct profile *p = b->p;
	const struct plan_part *pp = &b->plan.parts[0]; /* the root: the check put it first */
	char root[64], guid[37];
	if (STREQ(b->plan.table->name, "gpt")) {
		uuid_format(pp->entry->uuid, guid);
		snprintf(root, sizeof(root), "root=PARTUUID=%s", guid);
	} else
		snprintf(root, sizeof(root), "root=PARTUUID=%08" PRIx32 "-01", b->plan.layout.disk_id);
	if (!tree_is(b, UPDATE, false)) {
		log_error("the image has no '" UPDATE "': add u-boot-menu to rootfs.packages (its kernel hook keeps "
			  CONF " current on the machine)");
		return -ENOENT;
	}
	int r = check_dtbo(b);
	if (r < 0)
		return r;
	json_object *fdt_o = json_object_object_get(p->boot.json, "fdt");
	const char *fdt = fdt_o ? json_object_get_string(fdt_o) : NULL;
	const char *params = *p->boot.cmdline ? p->boot.cmdline : "ro quiet"; /* u-boot-update's default */
	_cleanup_strv_ char **kernels = NULL;
	if ((r = boot_kernels(b, &kernels)) < 0)
		return log_errno(r, "cannot list the kernels in the image's /boot");

	_cleanup_free_ char *conf = NULL, *settings = NULL, *q_label = sh_quote(p->name), *q_root = sh_quote(root),
			    *q_params = sh_quote(params), *q_fdt = fdt ? sh_quote(fdt) : NULL;
	if (!q_label || !q_root || !q_params || (fdt && !q_fdt))
		return -ENOMEM;
	if ((r = render(b, kernels, root, params, fdt, &conf)) < 0)
		return r == -ENOMEM ? log_errno(r, "cannot write " CONF) : r; /* the others are said */
	if (asprintf(&settings,
		     "# Written by pmoves-image (profile %s): what u-boot-update(8) writes " CONF "\n"
		     "# from on this machine, after /etc/default/u-boot. The image was built with the same.\n"
		     "U_BOOT_MENU_LABEL=%s\nU_BOOT_ROOT=%s\nU_BOOT_PARAMETERS=%s\nU_BOOT_TIMEOUT=" TIMEOUT "\n%s%s%s",
		     p->name, q_label, q_root, q_params, fdt ? "U_BOOT_FDT=" : "", fdt ? q_fdt : "", fdt ? "\n" : "") < 0)
		return -ENOMEM;
	const char *dirs[] = { CONF_DIR, "/etc/u-boot-menu/conf.d" };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if ((r = tree_mkdir_p(b, dirs[i], 0755)) < 0)
			return log_errno(r, "cannot create '%s' in the image", dirs[i]);
	if ((r = tree_write_file(b, CONF, conf, strlen(conf), 0644)) < 0 ||
	    (r = tree_write_file(b, SETTINGS, settings, strlen(settings), 0644)) < 0)
		return log_errno(r, "cannot write the extlinux files in the image");
	log_info("boot: extlinux, kernel %s, %s", b->kernel_version, root);
	return 0;
}

/* ---- reading an image's extlinux.conf, as U-Boot's sysboot does ---- */

struct xl_label {
	char *name, *kernel, *initrd, *fdt, *fdtdir, *append;
	unsigned line;
};

struct xl_conf {
	const char *path;  /* in the filesystem */
	char *def;         /* "default NAME", or a label's "menu default" */
	struct xl_label labels[LABELS_MAX];
	size_t n;
};

static void xl_done(struct xl_conf *c)
{
	free(c->def);
	for (size_t i = 0; i < c->n; i++) {
		struct xl_label *l = &c->labels[i];
		free(l->name), free(l->kernel), free(l->initrd), free(l->fdt), free(l->fdtdir), free(l->append);
	}
	*c = (struct xl_conf){ 0 };
}

static int xl_set(char **field, const char *v, size_t n)
{
	free(*field);
	return (*field = strndup(v, n)) ? 0 : -ENOMEM;
}

/* Keywords as U-Boot's parser knows them (without case); what it ignores is ignored here.
 * Logs the line of a file run would not boot. */
static int xl_parse(const char *image, const char *text, struct xl_conf *c)
{
	unsigned n = 0;
	struct xl_label *cur = NULL;
	for (const char *l = text; *l;) {
		size_t len = strcspn(l, "\n");
		const char *line = l, *end = l + len;
		l += len + (l[len] == '\n');
		n++;
		const char *s = line + strspn(line, " \t");
		while (end > s && strchr(" \t\r", end[-1]))
			end--;
		if (s == end || *s == '#')
			continue;
		size_t kw = strcspn(s, " \t\n");
		if (s + kw > end)
			kw = (size_t)(end - s);
		const char *arg = s + kw;
		arg += strspn(arg, " \t");
		if (arg > end)
			arg = end;
		size_t an = (size_t)(end - arg), word = strcspn(arg, " \t\n");
		if (word > an)
			word = an;
#define KW(k) (kw == strlen(k) && !strncasecmp(s, k, kw))
		int r = 0;
		if (KW("include")) {
			log_error("'%s' line %u of '%s': 'include' is not followed by run", c->path, n, image);
			return -EINVAL;
		} else if (KW("default")) {
			r = xl_set(&c->def, arg, word);
		} else if (KW("label")) {
			if (c->n == LABELS_MAX) {
				log_error("'%s' of '%s' has more than %d labels", c->path, image, LABELS_MAX);
				return -EINVAL;
			}
			cur = &c->labels[c->n++];
			cur->line = n;
			r = xl_set(&cur->name, arg, word);
		} else if (KW("menu")) {
			if (cur && an >= 7 && !strncasecmp(arg, "default", 7) && (an == 7 || strchr(" \t", arg[7])))
				r = xl_set(&c->def, cur->name, strlen(cur->name));
		} else if (cur && (KW("kernel") || KW("linux"))) {
			r = xl_set(&cur->kernel, arg, word);
		} else if (cur && KW("initrd")) {
			r = xl_set(&cur->initrd, arg, word);
		} else if (cur && (KW("fdt") || KW("devicetree"))) {
			r = xl_set(&cur->fdt, arg, word);
		} else if (cur && (KW("fdtdir") || KW("devicetreedir"))) {
			r = xl_set(&cur->fdtdir, arg, word);
		} else if (cur && KW("append")) {
			r = xl_set(&cur->append, arg, an);
		}
#undef KW
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct xl_label *xl_default(const struct xl_conf *c)
{
	for (size_t i = 0; c->def && i < c->n; i++)
		if (STREQ(c->labels[i].name, c->def))
			return &c->labels[i];
	return NULL;
}

/* A file the conf names, as U-Boot resolves it: absolute on the partition, or relative to
 * the conf's directory. */
static int xl_path(const struct xl_conf *c, const char *name, char **ret)
{
	if (*name == '/')
		return (*ret = strdup(name)) ? 0 : -ENOMEM;
	const char *slash = strrchr(c->path, '/');
	return asprintf(ret, "%.*s/%s", (int)(slash - c->path), c->path, name) < 0 ? -ENOMEM : 0;
}

/* Is the file the conf names there (a regular file)? */
static bool xl_has(struct ext4_ro *fs, const struct xl_conf *c, const char *name)
{
	_cleanup_free_ char *path = NULL;
	uint64_t size;
	return xl_path(c, name, &path) == 0 && ext4_ro_stat(fs, path, &size) == 0;
}

/* Partition 1 of IMAGE, where U-Boot looks (the first with a bootable flag comes first there;
 * the build sets none): its byte offset, from a GPT or an MBR. */
static int part_one(const char *image, uint64_t *ret)
{
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct gpt_disk g;
	int r = gpt_read(fd, &g);
	if (r == 0) {
		for (unsigned i = 0; i < g.n; i++)
			if (g.part[i].number == 1) {
				*ret = g.part[i].start;
				return 0;
			}
		return -ENODATA;
	}
	struct mbr m;
	if (r != -ENXIO || pread(fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || le16toh(m.signature) != 0xaa55 ||
	    m.part[0].type == 0 || m.part[0].type == 0xee)
		return -ENODATA;
	*ret = (uint64_t)le32toh(m.part[0].first_lba) * 512;
	return 0;
}

/* The extlinux.conf of IMAGE's partition 1, as U-Boot's distro boot looks for it. -ENODATA:
 * none there (not an image of this loader). */
static int xl_load(const char *image, struct ext4_ro **ret_fs, struct xl_conf *c, char **ret_text)
{
	uint64_t off;
	struct ext4_ro *fs = NULL;
	if (part_one(image, &off) < 0 || ext4_ro_open(image, off, &fs) < 0)
		return -ENODATA;
	static const char *const where[] = { "/extlinux/extlinux.conf", CONF };
	int r = -ENODATA;
	for (size_t i = 0; i < ARRAY_SIZE(where) && r == -ENODATA; i++) {
		c->path = where[i];
		r = ext4_ro_read(fs, where[i], CONF_MAX, ret_text, NULL);
		if (r == -ENOENT || r == -EISDIR)
			r = -ENODATA;
		else if (r == -EFBIG)
			log_error("'%s' of '%s' is larger than %u KiB", where[i], image, CONF_MAX >> 10);
		else if (r == -EINVAL)
			log_error("'%s' of '%s' cannot be read from its ext4 filesystem", where[i], image);
	}
	if (r < 0) {
		ext4_ro_close(fs);
		return r == -EFBIG || r == -EINVAL ? -EINVAL : r;
	}
	*ret_fs = fs;
	return 0;
}

/* ---- run ---- */

static int extlinux_qemu(const struct qemu_image *qi, struct qemu_boot *ret)
{
	if (qi->machine && !STREQ(qi->machine, "virt")) {
		log_error("--machine '%s': an extlinux image boots on 'virt' (U-Boot)", qi->machine);
		return -EINVAL;
	}
	struct inspect_image *img = NULL;
	struct ext4_ro *fs = NULL;
	struct xl_conf c = { 0 };
	_cleanup_free_ char *text = NULL;
	int r = xl_load(qi->path, &fs, &c, &text);
	if (r == -ENODATA) {
		log_error("'%s' has no extlinux.conf on an ext4 partition 1, where U-Boot looks (a raw image: "
			  "'qemu-img convert -O raw' a qcow2 one)",
			  qi->path);
		r = -EINVAL;
	}
	if (r == 0)
		r = xl_parse(qi->path, text, &c);
	const struct xl_label *d = r == 0 ? xl_default(&c) : NULL;
	if (r == 0 && !d) {
		log_error("'%s' of '%s' names no default label that it has (default %s)", c.path, qi->path,
			  c.def ? c.def : "(none)");
		r = -EINVAL;
	} else if (r == 0 && !d->kernel) {
		log_error("'%s' of '%s': label '%s' (line %u) names no kernel", c.path, qi->path, d->name, d->line);
		r = -EINVAL;
	}
	const char *files[] = { d ? d->kernel : NULL, d ? d->initrd : NULL, d ? d->fdt : NULL };
	const char *what[] = { "kernel", "initrd", "fdt" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(files); i++)
		if (files[i] && !xl_has(fs, &c, files[i])) {
			log_error("'%s' of '%s': label '%s' (line %u): %s '%s' is not on partition 1", c.path, qi->path,
				  d->name, d->line, what[i], files[i]);
			r = -EINVAL;
		}
	const char *root = NULL;
	size_t rn = 0;
	const struct inspect_part *rp = NULL;
	if (r == 0 && (r = inspect_image(qi->path, &img)) < 0)
		r = -EINVAL; /* said why */
	if (r == 0 && inspect_cmdline_root(img, d->append ? d->append : "", &root, &rn, &rp) == 0 && !rp) {
		log_error("'%s' of '%s': label '%s' (line %u): root=%.*s is no partition of the image", c.path, qi->path,
			  d->name, d->line, (int)rn, root);
		r = -EINVAL;
	}
	if (r == 0)
		log_info("extlinux: %s, label '%s': kernel '%s'%s%s; append %s", c.path, d->name, d->kernel,
			 d->initrd ? ", initrd " : "", d->initrd ? d->initrd : "", d->append ? d->append : "(none)");
	xl_done(&c);
	ext4_ro_close(fs);
	inspect_image_free(img);
	if (r < 0)
		return r;
	*ret = (struct qemu_boot){ .bios = UBOOT_ARM64, .pkg = "u-boot-qemu" };
	return 0;
}

/* ---- inspect ---- */

static bool extlinux_recognises(const char *path)
{
	struct ext4_ro *fs = NULL;
	struct xl_conf c = { 0 };
	_cleanup_free_ char *text = NULL;
	bool yes = xl_load(path, &fs, &c, &text) == 0;
	ext4_ro_close(fs);
	return yes;
}

static int extlinux_inspect(const char *path, const struct inspect_image *img, struct boot_view *v)
{
	struct ext4_ro *fs = NULL;
	struct xl_conf c = { 0 };
	_cleanup_free_ char *text = NULL;
	int r = xl_load(path, &fs, &c, &text);
	if (r == -EINVAL)
		return boot_view_check(v, false, "extlinux.conf on partition 1 cannot be read");
	if (r < 0)
		return r;
	r = boot_view_file(v, "extlinux.conf", text);
	if (r == 0 && (r = xl_parse(path, text, &c)) == -EINVAL)
		r = boot_view_check(v, false, "extlinux.conf has a line run does not follow (include)");
	const struct xl_label *d = xl_default(&c);
	if (r == 0)
		r = boot_view_check(v, d != NULL, "%s's default label %s%s", c.path, c.def ? c.def : "(none)",
				    d ? " is there" : " is not there");
	for (size_t i = 0; r == 0 && i < c.n; i++) {
		const struct xl_label *l = &c.labels[i];
		if (!l->kernel) {
			r = boot_view_check(v, false, "label %s names no kernel", l->name);
			continue;
		}
		const char *files[] = { l->kernel, l->initrd, l->fdt };
		const char *what[] = { "kernel", "initrd", "fdt" };
		for (size_t j = 0; r == 0 && j < ARRAY_SIZE(files); j++) {
			bool has = files[j] && xl_has(fs, &c, files[j]);
			if (files[j])
				r = boot_view_check(v, has, "label %s: %s '%s' is%s on partition 1", l->name, what[j],
						    files[j], has ? "" : " not");
		}
		if (r == 0 && l == d)
			r = boot_view_root(v, img, "the default label", l->append ? l->append : "");
	}
	if (r == -E2BIG)
		r = 0; /* the view is full: the first labels are checked */
	xl_done(&c);
	ext4_ro_close(fs);
	return r;
}

const struct boot_loader boot_extlinux = {
	.name = "extlinux",
	.archs = ARCH_AARCH64,
	.needs = NULL,
	.fdt = true,
	.check = extlinux_check,
	.install = extlinux_install,
	.recognises = extlinux_recognises,
	.qemu = extlinux_qemu,
	.inspect = extlinux_inspect,
};
