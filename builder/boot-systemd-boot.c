/* systemd-boot on the ESP, laid out the way the target's own kernel-install expects, so a
 * kernel upgrade on the machine keeps it bootable. */
#include "build.h"
#include "log.h"
#include "util.h"

/* The ESP, a FAT partition mounted in the image (the profile check makes sure of it). */
static const struct boot_part sdboot_needs[] = {
	{ .type = "esp", .fs = "vfat", .mount_hint = "/boot/efi" },
	{ .type = NULL },
};

static int sdboot_install(struct build *b)
{
	const struct profile *p = b->p;
	const struct part_spec *esp = profile_part_by_type(p, sdboot_needs[0].type);
	/* The entry token names the directory of kernels on the ESP; the machine-id is empty until
	 * the first boot, so a fixed token keeps kernel-install and our layout the same. */
	const char *token = "pmoves", *kver = b->kernel_version;
	const char *removable = p->arch->efi_boot;
	char efi_name[32];
	int r;

	snprintf(efi_name, sizeof(efi_name), "systemd-boot%s.efi", p->arch->efi);

	_cleanup_free_ char *src = NULL, *dir_boot = NULL, *dir_sd = NULL, *dir_entries = NULL, *dir_kernel = NULL,
			   *bootx = NULL, *sdx = NULL, *linux_dst = NULL, *initrd_dst = NULL, *kernel_src = NULL,
			   *initrd_src = NULL, *entry_path = NULL, *entry = NULL, *cmdline = NULL, *loader_conf = NULL;
	const char *m = esp->mount;
	r = boot_cmdline(b, &cmdline);
	if (r < 0)
		return r;
	if (asprintf(&src, "/usr/lib/systemd/boot/efi/%s", efi_name) < 0 ||
	    asprintf(&dir_boot, "%s/EFI/BOOT", m) < 0 || asprintf(&dir_sd, "%s/EFI/systemd", m) < 0 ||
	    asprintf(&dir_entries, "%s/loader/entries", m) < 0 || asprintf(&dir_kernel, "%s/%s/%s", m, token, kver) < 0 ||
	    asprintf(&bootx, "%s/%s", dir_boot, removable) < 0 || asprintf(&sdx, "%s/%s", dir_sd, efi_name) < 0 ||
	    asprintf(&kernel_src, "/boot/vmlinuz-%s", kver) < 0 || asprintf(&initrd_src, "/boot/initrd.img-%s", kver) < 0 ||
	    asprintf(&linux_dst, "%s/linux", dir_kernel) < 0 || asprintf(&initrd_dst, "%s/initrd.img-%s", dir_kernel, kver) < 0 ||
	    asprintf(&entry_path, "%s/%s-%s.conf", dir_entries, token, kver) < 0 ||
	    asprintf(&loader_conf, "%s/loader/loader.conf", m) < 0 ||
	    asprintf(&entry,
		     "title      %s (%s)\n"
		     "version    %s\n"
		     "options    %s\n"
		     "linux      /%s/%s/linux\n"
		     "initrd     /%s/%s/initrd.img-%s\n",
		     p->description && *p->description ? p->description : p->name, p->name, kver, cmdline, token, kver,
		     token, kver, kver) < 0)
		return -ENOMEM;

	const char *dirs[] = { dir_boot, dir_sd, dir_entries, dir_kernel };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if ((r = tree_mkdir_p(b, dirs[i], 0755)) < 0)
			return log_errno(r, "cannot create '%s' in the image", dirs[i]);

	const struct {
		const char *from, *to;
	} copies[] = { { src, bootx }, { src, sdx }, { kernel_src, linux_dst }, { initrd_src, initrd_dst } };
	for (size_t i = 0; i < ARRAY_SIZE(copies); i++) {
		r = tree_copy_file(b, copies[i].from, copies[i].to, 0644);
		if (r == -ENOENT && i == 0) {
			log_error("the image has no '%s': add systemd-boot to rootfs.packages", src);
			return r;
		}
		if (r == -ENOENT)
			return log_errno(r, "cannot copy '%s' to '%s' in the image", copies[i].from, copies[i].to);
		if (r < 0)
			return r;
	}

	_cleanup_free_ char *cmdline_nl = NULL;
	if (asprintf(&cmdline_nl, "%s\n", cmdline) < 0)
		return -ENOMEM;
	static const char loader[] = "timeout 0\neditor no\nconsole-mode keep\n";
	const struct {
		const char *path, *text;
	} files[] = {
		{ loader_conf, loader },
		{ entry_path, entry },
		/* What the target's kernel-install uses for later kernels. */
		{ "/etc/kernel/cmdline", cmdline_nl },
		{ "/etc/kernel/entry-token", "pmoves\n" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if ((r = tree_write_file(b, files[i].path, files[i].text, strlen(files[i].text), 0644)) < 0)
			return log_errno(r, "cannot write '%s' in the image", files[i].path);
	log_info("boot: systemd-boot with kernel %s", kver);
	return 0;
}

const struct boot_loader boot_systemd_boot = {
	.name = "systemd-boot",
	.archs = ARCH_X86_64 | ARCH_AARCH64,
	.table = NULL,
	.needs = sdboot_needs,
	.uefi_only = true,
	.install = sdboot_install,
	.qemu = boot_uefi_qemu,
};
