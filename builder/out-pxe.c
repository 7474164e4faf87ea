/* NAME.pxe/: the image as a network-boot bundle (README, "Network boot"), static files any web
 * server can serve and `pmoves-image serve` serves for a lab:
 *
 *   boot.ipxe          the iPXE script: kernel, both initramfs halves, the kernel command line
 *                      with the live root's URL and SHA-256
 *   vmlinuz            the image's kernel
 *   initrd.img         the image's own initramfs (initramfs-tools: its drivers, udev, ipconfig)
 *   netboot.cpio       appended to it by the kernel (a second initramfs archive): the boot script
 *                      scripts/pmoves (boot=pmoves), pmoves-firstboot with the libraries it
 *                      links, and the kernel modules the live root needs (squashfs, overlay,
 *                      loop, and what they depend on) under /pmoves, apart from the first half's
 *                      files so that nothing of it is replaced
 *   root.squashfs      the image's root filesystem, for the live mode
 *   undionly.kpxe      iPXE for BIOS PXE ROMs, ipxe.efi for UEFI ones (Debian's package ipxe):
 *   ipxe.efi           chainloaded by TFTP from a plain PXE ROM
 *   dnsmasq.conf       an example: proxy-DHCP beside an existing DHCP server, or full DHCP
 *
 * The live mode: the machine's initramfs brings up the network (initramfs-tools'
 * configure_networking, on the NIC iPXE booted from: BOOTIF), then `pmoves-firstboot netboot
 * live` downloads root.squashfs into RAM, checks it against the pinned SHA-256 and mounts it
 * under a RAM overlay (firstboot/fb-netboot.c). x86_64 only: the iPXE binaries are Debian's. */
#include "bmap.h"
#include "build.h"
#include "elf-needs.h"
#include "firstboot-install.h"
#include "initramfs.h"
#include "hash-file.h"
#include "log.h"
#include "manifest.h"
#include "out-file.h"
#include "run.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#define IPXE_DIR "/usr/lib/ipxe"
#define FIRSTBOOT_BIN "/usr/bin/pmoves-firstboot"
#define CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define MAX_LIBS 128

/* Kernel modules the network boot loads, if the kernel has them as modules: what the live root
 * mounts with, and the ESP's file system (the install writes device.json there); then, on a
 * UEFI machine only (it refuses to load elsewhere), efivarfs, for the install's boot entry. */
static const char *const netboot_modules[] = { "loop", "squashfs", "overlay", "fat", "vfat", "nls_cp437", "nls_ascii" };
static const char *const efi_modules[] = { "efivarfs" };
/* Debian's iPXE builds, chainloaded from a plain PXE ROM. */
static const char *const ipxe_files[] = { "undionly.kpxe", "ipxe.efi" };

struct bundle {
	struct build *b;
	char *dir;          /* tmp_dir/NAME.pxe */
	char *name;         /* NAME.pxe */
	struct initramfs ir; /* netboot.cpio, while it is written */
	char *ldso;          /* the dynamic loader's soname */
};

static int pxe_check(const struct profile *p, struct problems *pr)
{
	if (!STREQ(p->arch->name, "x86_64"))
		return problem(pr, ".outputs", "output 'pxe' is for x86_64 profiles: its iPXE binaries (Debian's "
					"package ipxe) are x86, and %s network boot is not supported yet",
			p->arch->name);
	/* root.squashfs is the root filesystem's tree: what other partitions hold would be
	 * missing from the live system. The ESP is the firmware's, not the system's. */
	for (size_t i = 0; i < p->disk.n_parts; i++) {
		const struct part_spec *ps = &p->disk.parts[i];
		if (ps->mount && !STREQ(ps->mount, "/") && !STREQ(ps->type, "esp")) {
			char path[48];
			snprintf(path, sizeof(path), ".disk.partitions[%zu].mount", i);
			return problem(pr, path, "output 'pxe' makes the live root of the root filesystem only: what "
					  "'%s' holds would be missing from it (keep it on the root partition)",
				ps->mount);
		}
	}
	/* The command line goes into boot.ipxe's kernel line, where iPXE expands ${...} and splits
	 * at || and &&. */
	if (strpbrk(p->boot.cmdline, "$|&\"'\\"))
		return problem(pr, ".boot.cmdline", "output 'pxe' puts the command line in an iPXE script: it cannot "
					     "hold $ | & \" ' or \\");
	return 0;
}

/* ---- netboot.cpio ---- */

/* pmoves-firstboot and every library it links, and they link, as the image has them, and the
 * ones it loads itself for the install's boot entry (libefiboot, step-efiboot.c). */
static int add_firstboot(struct bundle *nb)
{
	_cleanup_strv_ char **queue = NULL;
	size_t done = 0;
	int r = 0;
	for (size_t i = 0; r == 0 && firstboot_loaded_libraries[i]; i++)
		r = strv_push(&queue, firstboot_loaded_libraries[i]);
	for (const char *rel = FIRSTBOOT_BIN; rel && r == 0; rel = done < strv_length(queue) ? queue[done++] : NULL) {
		_cleanup_free_ char *lib_rel = NULL;
		const char *soname = strcmp(rel, FIRSTBOOT_BIN) ? rel : NULL;
		/* A name from the image becomes a path in the archive, which the kernel unpacks as
		 * it is: a file name, nothing else. */
		if (soname && !valid_name(soname, 255)) {
			_cleanup_free_ char *shown = str_printable(soname, strlen(soname), NULL);
			log_error("pmoves-firstboot in the image needs '%s', which is not a library's file name",
				  shown ? shown : "?");
			return -EINVAL;
		}
		if (soname && (r = tree_find_library(nb->b, soname, &lib_rel)) < 0)
			return log_errno(r, "the image has no '%s', which pmoves-firstboot needs", soname);
		const char *file = soname ? lib_rel : FIRSTBOOT_BIN;
		_cleanup_close_ int fd = tree_open(nb->b, file, O_RDONLY | O_NONBLOCK, 0);
		if (fd < 0)
			return log_errno(fd, "cannot open '%s' in the image", file);
		char proc[40];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		struct elf_needs n = { 0 };
		r = elf_read_needs(proc, &n);
		if (r < 0)
			return log_errno(r, "cannot read '%s' in the image as an ELF file", file);
		for (size_t i = 0; r == 0 && n.needed[i]; i++)
			if (!strv_contains(queue, n.needed[i]))
				r = strv_length(queue) >= MAX_LIBS ? -E2BIG : strv_push(&queue, n.needed[i]);
		elf_needs_free(&n);
		if (r < 0)
			return log_errno(r, "cannot follow the libraries of '%s'", file);
		_cleanup_free_ char *path = soname ? strdupf("pmoves/lib/%s", soname) : strdup("pmoves/bin/pmoves-firstboot");
		if (!path)
			return -ENOMEM;
		r = initramfs_tree_file(&nb->ir, file, path, 0755);
		if (r == 0 && soname && str_starts_with(soname, "ld-linux") && !nb->ldso && !(nb->ldso = strdup(soname)))
			r = -ENOMEM;
	}
	if (r == 0 && !nb->ldso) {
		log_error("pmoves-firstboot in the image links no dynamic loader (ld-linux*): cannot run it from the initramfs");
		return -ENOEXEC;
	}
	return r;
}

static int add_modules(struct bundle *nb)
{
	struct modules_dep md;
	int r = modules_dep_load(nb->b, &md);
	if (r == 0)
		r = initramfs_modules(&nb->ir, &md, netboot_modules, ARRAY_SIZE(netboot_modules), "order",
				      "a network boot mounts its live root, or the installed disk's ESP, with it");
	if (r == 0)
		r = initramfs_modules(&nb->ir, &md, efi_modules, ARRAY_SIZE(efi_modules), "order.efi",
				      "the network install makes the installed disk's UEFI boot entry with it");
	modules_dep_free(&md);
	return r;
}

static int add_script(struct bundle *nb)
{
	_cleanup_free_ char *text = strdupf(
		"# initramfs-tools' boot script for boot=pmoves: a PMOVES network boot, live or install,\n"
		"# written by pmoves-image's output 'pxe'. /init has sourced scripts/functions, local\n"
		"# and nfs; mount_top, mount_premount and mount_bottom stay nfs's.\n"
		"\n"
		"pmoves_netboot()\n"
		"{\n"
		"\tSSL_CERT_FILE=/pmoves/ca-certificates.crt /pmoves/lib/%s --library-path /pmoves/lib \\\n"
		"\t\t/pmoves/bin/pmoves-firstboot netboot \"$@\"\n"
		"}\n"
		"\n"
		"mountroot()\n"
		"{\n"
		"\tconfigure_networking\n"
		"\t# initramfs-tools writes no resolv.conf: the DNS server DHCP gave, for a server's name\n"
		"\tfor conf in /run/net-*.conf; do [ -f \"$conf\" ] && . \"$conf\"; done\n"
		"\tif [ -n \"${IPV4DNS0:-}\" ] && [ \"$IPV4DNS0\" != 0.0.0.0 ]; then\n"
		"\t\techo \"nameserver $IPV4DNS0\" >/etc/resolv.conf\n"
		"\tfi\n"
		"\t# pmoves.mode=live: the root in RAM; install: the disk written, then a reboot into it\n"
		"\twait_for_udev 10 # the disks named, for an install\n"
		"\tpmoves_netboot --mount \"${rootmnt}\" || panic \"pmoves: the network boot stopped (above)\"\n"
		"}\n",
		nb->ldso);
	return text ? initramfs_data(&nb->ir, "scripts/pmoves", text, strlen(text), 0644) : -ENOMEM;
}

static int write_cpio(struct bundle *nb)
{
	_cleanup_free_ char *path = strdupf("%s/netboot.cpio", nb->dir);
	if (!path)
		return -ENOMEM;
	int r = initramfs_open(&nb->ir, nb->b, path, "pmoves/modules");
	static const char *const dirs[] = { "scripts", "pmoves", "pmoves/bin", "pmoves/lib", "pmoves/modules" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++)
		r = initramfs_dir(&nb->ir, dirs[i]);
	if (r == 0)
		r = add_firstboot(nb);
	if (r == 0)
		r = add_modules(nb);
	if (r == 0)
		r = add_script(nb);
	/* The CA bundle, for a root served over https, when the image has one. */
	if (r == 0) {
		int fd = tree_open(nb->b, CA_BUNDLE, O_RDONLY | O_NONBLOCK, 0);
		if (fd >= 0) {
			close(fd);
			r = initramfs_tree_file(&nb->ir, CA_BUNDLE, "pmoves/ca-certificates.crt", 0644);
		}
	}
	return nb->ir.a ? initramfs_close(&nb->ir, r) : r;
}

/* ---- the other files ---- */

static int copy_host_file(struct bundle *nb, const char *from, const char *name, mode_t mode)
{
	_cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (in < 0 && errno == ENOENT) {
		log_error("'%s' not found: output 'pxe' needs it (install package 'ipxe', or run 'make deps')", from);
		return -ENOENT;
	}
	if (in < 0 || fstat(in, &st) < 0)
		return log_errno(-errno, "cannot read '%s'", from);
	_cleanup_(out_file_done) struct out_file f = { .fd = -1 };
	_cleanup_free_ char *rel = strdupf("%s/%s", nb->name, name);
	if (!rel)
		return -ENOMEM;
	int r = out_file_open(nb->b, rel, mode, &f);
	if (r == 0)
		r = copy_fd_range(in, 0, f.fd, 0, (uint64_t)st.st_size);
	if (r == 0)
		r = out_file_commit(&f, NULL);
	return r < 0 ? log_errno(r, "cannot copy '%s' to '%s'", from, rel) : 0;
}

/* REL of the tree as NAME in the bundle, with zeros after it up to a multiple of ALIGN bytes. */
static int copy_tree_file(struct bundle *nb, const char *rel, const char *name, unsigned align)
{
	_cleanup_free_ char *to = strdupf("%s/%s", nb->dir, name);
	_cleanup_close_ int in = tree_open(nb->b, rel, O_RDONLY | O_NONBLOCK, 0);
	struct stat st;
	if (!to)
		return -ENOMEM;
	if (in == -ENOENT) {
		log_error("the image has no '%s': output 'pxe' boots the image's kernel with its initramfs "
			  "(initramfs-tools makes it)",
			  rel);
		return in;
	}
	if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
		return log_errno(in < 0 ? in : -EINVAL, "cannot read '%s' in the image", rel);
	_cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (out < 0)
		return log_errno(-errno, "cannot create '%s'", to);
	int r = copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
	static const char zeros[8];
	size_t pad = (size_t)(align - (uint64_t)st.st_size % align) % align;
	if (r == 0 && pad)
		r = pwrite_full(out, zeros, pad, (uint64_t)st.st_size);
	return r < 0 ? log_errno(r, "cannot copy '%s' to '%s'", rel, to) : 0;
}

static int write_squashfs(struct bundle *nb, char sha[65])
{
	struct build *b = nb->b;
	_cleanup_free_ char *out = strdupf("%s/root.squashfs", nb->dir), *prog = NULL;
	char epoch[24], cpus[12];
	if (!out)
		return -ENOMEM;
	if (find_program("mksquashfs", &prog) < 0) {
		log_error("'mksquashfs' not found: output 'pxe' needs it (install package 'squashfs-tools', or run 'make deps')");
		return -ENOENT;
	}
	snprintf(epoch, sizeof(epoch), "%" PRIu64, b->epoch);
	snprintf(cpus, sizeof(cpus), "%u", out_threads());
	/* The times: SOURCE_DATE_EPOCH (b->epoch) when it is set, which mksquashfs reads itself
	 * (the creation time, and later file times clamped to it) and then refuses -mkfs-time and
	 * -all-time beside; else the rootfs's time, every file's. */
	char *argv[] = { "mksquashfs", b->tree, out, "-noappend", "-comp", "zstd", "-processors", cpus,
			 "-no-progress", "-quiet", "-mkfs-time", epoch, "-all-time", epoch, NULL };
	if (b->epoch_fixed)
		argv[10] = NULL;
	int r = build_run(b, argv);
	if (r != 0)
		return r < 0 ? r : -EIO; /* build_run said why */
	r = sha256_file(out, sha);
	return r < 0 ? log_errno(r, "cannot read '%s'", out) : 0;
}

/* TEXT (malloc'd, may be NULL: out of memory) as NAME in the bundle, freed. */
static int write_text(struct bundle *nb, const char *name, char *text)
{
	_cleanup_free_ char *t = text, *path = strdupf("%s/%s", nb->dir, name);
	if (!path || !t)
		return -ENOMEM;
	int r = write_file_atomic(path, t, strlen(t), 0644);
	return r < 0 ? log_errno(r, "cannot write '%s'", path) : 0;
}

/* image.img.zst (0600: the image's bytes) and image.bmap, for the install; their SHA-256s. */
static int write_install_image(struct bundle *nb, char zsha[65], char bsha[65])
{
	struct build *b = nb->b;
	_cleanup_free_ char *zrel = strdupf("%s/image.img.zst", nb->name), *bpath = strdupf("%s/image.bmap", nb->dir);
	_cleanup_free_ char *text = NULL;
	struct bmap_blocks *m = NULL;
	size_t len = 0;
	if (!zrel || !bpath)
		return -ENOMEM;
	int r = out_compressed_as(b, zrel, out_zst_compress, zsha);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(b->image, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "cannot open '%s'", b->image);
	r = bmap_create(fd, NULL, NULL, &m);
	if (r == 0)
		r = bmap_format(m, &text, &len);
	bmap_blocks_free(m);
	if (r == 0)
		r = sha256_hex_of(text, len, bsha);
	if (r == 0)
		r = write_file_atomic(bpath, text, len, 0644);
	return r < 0 ? log_errno(r, "cannot write '%s'", bpath) : 0;
}

static int write_ipxe_script(struct bundle *nb, const char *sha, const char *zsha, const char *bsha)
{
	const struct profile *p = nb->b->p;
	return write_text(nb, "boot.ipxe", strdupf(
		"#!ipxe\n"
		"# PMOVES network boot of '%s', made by pmoves-image's output 'pxe'.\n"
		"# 'pmoves-image serve' sets pmoves-base to the address this script was fetched from;\n"
		"# served by another web server, set the bundle's URL (ending in /) on the next line.\n"
		"isset ${pmoves-base} || set pmoves-base http://${next-server}:8080/\n"
		"# This machine's own script, if the server has one for its MAC (serve --inventory): it\n"
		"# sets pmoves-machine, pmoves-config (its config's URL and SHA-256) and pmoves-mode,\n"
		"# then runs this.\n"
		"isset ${pmoves-machine} || chain --autofree ${pmoves-base}machine/${netX/mac:hexhyp}.ipxe ||\n"
		"# live: the root in RAM, nothing written; install: the image written to the machine's disk.\n"
		"isset ${pmoves-mode} || set pmoves-mode live\n"
		"echo PMOVES: %s, ${pmoves-mode}, from ${pmoves-base}\n"
		"kernel ${pmoves-base}vmlinuz initrd=initrd.img initrd=netboot.cpio boot=pmoves ip=dhcp "
		"BOOTIF=01-${netX/mac:hexhyp} pmoves.mode=${pmoves-mode} "
		"pmoves.root=${pmoves-base}root.squashfs pmoves.root_sha256=%s "
		"pmoves.image=${pmoves-base}image.img.zst pmoves.image_sha256=%s "
		"pmoves.bmap=${pmoves-base}image.bmap pmoves.bmap_sha256=%s pmoves.image_firmware=%s "
		"${pmoves-disk} ${pmoves-config}%s%s\n"
		"initrd ${pmoves-base}initrd.img\n"
		"initrd ${pmoves-base}netboot.cpio\n"
		"boot\n",
		p->name, p->name, sha, zsha, bsha, boot_find(p->boot.loader) && boot_find(p->boot.loader)->uefi_only ? "uefi" : "any", *p->boot.cmdline ? " " : "",
		p->boot.cmdline));
}

static int write_dnsmasq(struct bundle *nb)
{
	return write_text(nb, "dnsmasq.conf", strdupf(
		"# dnsmasq lines for booting '%s' over the network: plain PXE ROMs get iPXE by TFTP from\n"
		"# this directory, iPXE (DHCP option 175) gets boot.ipxe from 'pmoves-image serve' (port\n"
		"# 8080). Replace /srv/%s with where this directory is, 192.168.1.10 with the serving\n"
		"# machine's address and 192.168.1.0 with the LAN. Keep one of the two variants.\n"
		"enable-tftp\n"
		"tftp-root=/srv/%s\n"
		"dhcp-match=set:ipxe,175\n"
		"dhcp-match=set:efi64,option:client-arch,7\n"
		"dhcp-match=set:efi64,option:client-arch,9\n"
		"\n"
		"# (a) proxy-DHCP: the LAN's DHCP server keeps handing out addresses, dnsmasq adds the boot file.\n"
		"dhcp-range=192.168.1.0,proxy\n"
		"pxe-service=tag:!ipxe,x86PC,\"PMOVES (BIOS)\",undionly.kpxe\n"
		"pxe-service=tag:!ipxe,X86-64_EFI,\"PMOVES (UEFI)\",ipxe.efi\n"
		"dhcp-boot=tag:ipxe,http://192.168.1.10:8080/boot.ipxe\n"
		"\n"
		"# (b) full DHCP: dnsmasq is the LAN's DHCP server.\n"
		"#dhcp-range=192.168.1.100,192.168.1.199,12h\n"
		"#dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe\n"
		"#dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi\n"
		"#dhcp-boot=tag:ipxe,http://192.168.1.10:8080/boot.ipxe\n",
		nb->b->p->name, nb->name, nb->name));
}

static int pxe_write(struct build *b, const struct output_ctx *o)
{
	(void)o;
	struct bundle nb = { .b = b };
	_cleanup_free_ char *name = strdupf("%s.pxe", b->p->name), *dir = NULL, *kernel = NULL, *initrd = NULL;
	if (!name || !(dir = strdupf("%s/%s", b->tmp_dir, name)) ||
	    !(kernel = strdupf("/boot/vmlinuz-%s", b->kernel_version)) ||
	    !(initrd = strdupf("/boot/initrd.img-%s", b->kernel_version)))
		return -ENOMEM;
	nb.dir = dir;
	nb.name = name;
	if (mkdir(dir, 0755) < 0)
		return log_errno(-errno, "cannot create '%s'", dir);
	char sha[65];
	int r = copy_tree_file(&nb, kernel, "vmlinuz", 1);
	/* The kernel reads an archive of the initramfs only at a multiple of 4 bytes; iPXE
	 * aligns the initrds it gives a BIOS kernel, the EFI stub puts them end to end. */
	if (r == 0)
		r = copy_tree_file(&nb, initrd, "initrd.img", 4);
	if (r == 0)
		r = write_cpio(&nb);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(ipxe_files); i++) {
		_cleanup_free_ char *from = strdupf("%s/%s", IPXE_DIR, ipxe_files[i]);
		r = from ? copy_host_file(&nb, from, ipxe_files[i], 0644) : -ENOMEM;
	}
	if (r == 0)
		r = write_squashfs(&nb, sha);
	char zsha[65], bsha[65];
	if (r == 0)
		r = write_install_image(&nb, zsha, bsha);
	if (r == 0)
		r = write_ipxe_script(&nb, sha, zsha, bsha);
	if (r == 0)
		r = write_dnsmasq(&nb);
	free(nb.ldso);
	if (r < 0)
		return r;
	static const char *const files[] = { "boot.ipxe",	"vmlinuz",    "initrd.img", "netboot.cpio",
					      "root.squashfs", "image.img.zst", "image.bmap", "ipxe.efi",
					      "undionly.kpxe", "dnsmasq.conf" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *rel = strdupf("%s/%s", name, files[i]);
		const char *known = STREQ(files[i], "root.squashfs")   ? sha
				    : STREQ(files[i], "image.img.zst") ? zsha
				    : STREQ(files[i], "image.bmap")    ? bsha
								       : NULL;
		r = rel ? manifest_add_artifact(b, rel, "pxe", known) : -ENOMEM;
	}
	return r;
}

const struct output_type out_pxe = {
	.name = "pxe",
	.flags = OUT_READS_TREE,
	.check = pxe_check,
	.write = pxe_write,
};
