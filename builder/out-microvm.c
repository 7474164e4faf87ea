/* NAME.microvm/: the image as a sandbox guest for pmoves-sandbox (docs/sandbox.md):
 *
 *   rootfs.ext4   the root partition's filesystem, its bytes (holes kept): every sandbox runs
 *                 on it, read only, under an overlay in its own memory
 *   vmlinuz       the image's kernel, as QEMU boots it
 *   vmlinux       x86_64: the same kernel uncompressed (an ELF file), as Firecracker boots it,
 *                 taken out of the bzImage's payload (LZ4, as Debian's 6.1 kernels have it;
 *                 xz or zstd)
 *   initrd.img    the sandbox's initramfs: pmoves-sandbox-init as /init, and the modules the
 *                 guest needs for its disks and network (with what they need, from the
 *                 image's modules.dep), listed in load order in /lib/pmoves-sandbox/modules */
#include "build.h"
#include "firstboot-install.h"
#include "initramfs.h"
#include "log.h"
#include "manifest.h"
#include "util.h"

#include <elf.h>
#include <fcntl.h>
#include <lz4.h>
#include <lzma.h>
#include <sys/stat.h>
#include <zstd.h>

#define VMLINUZ_MAX (128u << 20)
#define VMLINUX_MAX (1024u << 20)

/* virtio-mmio's transport, the disks, the network; ext4 and overlay (the sandbox's writable
 * layer over the shared root) when the kernel has them as modules. */
static const char *const guest_modules[] = { "virtio_mmio", "virtio_blk", "virtio_net", "ext4", "overlay" };

static int microvm_check(const struct profile *p, struct problems *pr)
{
	const char *root_fs = NULL;
	for (size_t i = 0; i < p->disk.n_parts; i++) {
		const struct part_spec *ps = &p->disk.parts[i];
		if (ps->mount && STREQ(ps->mount, "/"))
			root_fs = ps->fs;
		else if (ps->mount && !STREQ(ps->type, "esp")) {
			char path[48];
			snprintf(path, sizeof(path), ".disk.partitions[%zu].mount", i);
			return problem(pr, path, "output 'microvm' gives a sandbox the root filesystem only: what '%s' "
					  "holds would be missing from it (keep it on the root partition)", ps->mount);
		}
	}
	if (!root_fs || !STREQ(root_fs, "ext4"))
		return problem(pr, ".disk.partitions", "output 'microvm' needs the root filesystem ('/') to be ext4: "
						      "pmoves-sandbox-init mounts it as such");
	return 0;
}

static int open_in_bundle(const char *dir, const char *name, char **ret_path)
{
	_cleanup_free_ char *path = strdupf("%s/%s", dir, name);
	if (!path)
		return -ENOMEM;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return log_errno(-errno, "cannot create '%s'", path);
	if (ret_path)
		*ret_path = TAKE_PTR(path);
	return fd;
}

static int write_rootfs(struct build *b, const char *dir)
{
	const struct table_entry *root = NULL;
	for (size_t i = 0; i < b->plan.n; i++)
		if (b->plan.parts[i].spec->mount && STREQ(b->plan.parts[i].spec->mount, "/"))
			root = b->plan.parts[i].entry;
	if (!root)
		return -ENOENT;
	_cleanup_close_ int in = open(b->image, O_RDONLY | O_CLOEXEC), out = open_in_bundle(dir, "rootfs.ext4", NULL);
	if (in < 0)
		return log_errno(-errno, "cannot open '%s'", b->image);
	if (out < 0)
		return out;
	int r = copy_sparse(in, (off_t)root->start, out, 0, root->size);
	if (r == 0 && ftruncate(out, (off_t)root->size) < 0)
		r = -errno;
	return r < 0 ? log_errno(r, "cannot copy the root filesystem to '%s/rootfs.ext4'", dir) : 0;
}

/* ---- vmlinux: the bzImage's payload, decompressed ---- */

static int xz_to(const uint8_t *in, size_t len, int out, uint64_t *ret_size)
{
	lzma_stream s = LZMA_STREAM_INIT;
	if (lzma_stream_decoder(&s, 256u << 20, 0) != LZMA_OK) /* a kernel's needs a few MiB */
		return -ENOMEM;
	static uint8_t buf[1 << 20];
	s.next_in = in, s.avail_in = len;
	int r = 0;
	for (lzma_ret ret = LZMA_OK; ret == LZMA_OK && r == 0;) {
		s.next_out = buf, s.avail_out = sizeof(buf);
		ret = lzma_code(&s, LZMA_FINISH);
		if (ret != LZMA_OK && ret != LZMA_STREAM_END)
			r = -EBADMSG;
		else if (*ret_size + (sizeof(buf) - s.avail_out) > VMLINUX_MAX)
			r = -EFBIG;
		else if (write_full(out, buf, sizeof(buf) - s.avail_out) < 0)
			r = -errno;
		else
			*ret_size += sizeof(buf) - s.avail_out;
	}
	lzma_end(&s);
	return r;
}

static int zstd_to(const uint8_t *in, size_t len, int out, uint64_t *ret_size)
{
	ZSTD_DStream *z = ZSTD_createDStream();
	if (!z || ZSTD_isError(ZSTD_initDStream(z))) {
		ZSTD_freeDStream(z);
		return -ENOMEM;
	}
	static uint8_t buf[1 << 20];
	ZSTD_inBuffer ib = { in, len, 0 };
	int r = 0;
	for (size_t left = 1; left != 0 && r == 0;) {
		ZSTD_outBuffer ob = { buf, sizeof(buf), 0 };
		left = ZSTD_decompressStream(z, &ob, &ib);
		if (ZSTD_isError(left) || (left != 0 && ib.pos == ib.size && ob.pos == 0))
			r = -EBADMSG;
		else if (*ret_size + ob.pos > VMLINUX_MAX)
			r = -EFBIG;
		else if (write_full(out, buf, ob.pos) < 0)
			r = -errno;
		else
			*ret_size += ob.pos;
	}
	ZSTD_freeDStream(z);
	return r;
}

/* LZ4's legacy frame, as the kernel's build makes it ("lz4 -l", then the uncompressed size
 * appended): the magic, then blocks, each its compressed size (le32) and at most 8 MiB once
 * decompressed; the magic again starts another frame. */
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int lz4_to(const uint8_t *in, size_t len, int out, uint64_t *ret_size)
{
	if (len < 4 || le32(in) != LZ4_LEGACY_MAGIC)
		return -EBADMSG;
	_cleanup_free_ char *buf = malloc(LZ4_LEGACY_BLOCK);
	if (!buf)
		return -ENOMEM;
	for (size_t pos = 4; len - pos >= 4;) {
		uint32_t c = le32(in + pos);
		if (c == LZ4_LEGACY_MAGIC) {
			pos += 4;
			continue;
		}
		if (c > len - pos - 4 || c > INT32_MAX) {
			if (len - pos == 4) /* the uncompressed size, appended after the frame */
				break;
			return -EBADMSG;
		}
		pos += 4;
		int n = LZ4_decompress_safe((const char *)in + pos, buf, (int)c, LZ4_LEGACY_BLOCK);
		if (n < 0)
			return -EBADMSG;
		if (*ret_size + (uint64_t)n > VMLINUX_MAX)
			return -EFBIG;
		if (write_full(out, buf, (size_t)n) < 0)
			return -errno;
		*ret_size += (uint64_t)n;
		pos += c;
	}
	return 0;
}

/* The x86 boot protocol (Documentation/arch/x86/boot.rst): the setup header's "HdrS" at 0x202,
 * its version at 0x206 (payload_offset and payload_length from 2.08 on), the number of setup
 * sectors at 0x1f1 (0 means 4); the payload's offset counts from the protected-mode code,
 * which follows the setup sectors and the boot sector. */
static int write_vmlinux(const char *dir, const char *vmlinuz_rel, const uint8_t *k, size_t len)
{
	int r;
	if (len < 0x250 || memcmp(k + 0x202, "HdrS", 4) || (k[0x206] | k[0x207] << 8) < 0x208) {
		log_error("'%s' in the image is not a bzImage of boot protocol 2.08 or later: cannot take vmlinux out of it",
			  vmlinuz_rel);
		return -EINVAL;
	}
	uint64_t setup = (uint64_t)((k[0x1f1] ? k[0x1f1] : 4) + 1) * 512;
	uint64_t off = setup + (k[0x248] | k[0x249] << 8 | k[0x24a] << 16 | (uint64_t)k[0x24b] << 24);
	uint64_t plen = k[0x24c] | k[0x24d] << 8 | k[0x24e] << 16 | (uint64_t)k[0x24f] << 24;
	if (off > len || plen > len - off || plen < 6) {
		log_error("'%s' in the image: its payload (%" PRIu64 " bytes at %" PRIu64 ") lies outside the file's %zu bytes",
			  vmlinuz_rel, plen, off, len);
		return -EINVAL;
	}
	const uint8_t *p = k + off;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int out = open_in_bundle(dir, "vmlinux", &path);
	if (out < 0)
		return out;
	uint64_t size = 0;
	if (le32(p) == LZ4_LEGACY_MAGIC)
		r = lz4_to(p, plen, out, &size);
	else if (!memcmp(p, "\xfd" "7zXZ\0", 6))
		r = xz_to(p, plen, out, &size);
	else if (!memcmp(p, "\x28\xb5\x2f\xfd", 4))
		r = zstd_to(p, plen, out, &size);
	else {
		log_error("'%s' in the image: its payload is compressed with none of LZ4, xz and zstd "
			  "(magic %02x %02x %02x %02x): cannot take vmlinux out of it",
			  vmlinuz_rel, p[0], p[1], p[2], p[3]);
		return -ENOTSUP;
	}
	if (r < 0)
		return log_errno(r, "cannot decompress the kernel of '%s' into '%s'", vmlinuz_rel, path);
	Elf64_Ehdr eh;
	if (size < sizeof(eh) || pread_full(out, &eh, sizeof(eh), 0) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_machine != EM_X86_64) {
		log_error("the kernel decompressed from '%s' is not an x86_64 ELF file", vmlinuz_rel);
		return -EINVAL;
	}
	log_info("outputs: microvm: vmlinux, %" PRIu64 " bytes, from %s", size, vmlinuz_rel);
	return 0;
}

static int write_initrd(struct build *b, const char *dir)
{
	_cleanup_free_ char *payload = NULL, *init = NULL, *path = strdupf("%s/initrd.img", dir);
	if (!path)
		return -ENOMEM;
	int r = firstboot_payload_dir(b->p->arch, &payload);
	if (r == 0 && !(init = strdupf("%s/pmoves-sandbox-init", payload)))
		r = -ENOMEM;
	if (r == 0 && access(init, X_OK) < 0)
		r = -ENOENT;
	if (r < 0) {
		log_error("pmoves-sandbox-init for %s is not built: output 'microvm' puts it in the initramfs (make)",
			  b->p->arch->name);
		return r;
	}
	struct initramfs ir;
	struct modules_dep md = { 0 };
	r = initramfs_open(&ir, b, path, "lib/pmoves-sandbox");
	if (r < 0)
		return r;
	static const char *const dirs[] = { "dev", "proc", "sys", "lib", "lib/pmoves-sandbox" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++)
		r = initramfs_dir(&ir, dirs[i]);
	if (r == 0)
		r = initramfs_host_file(&ir, init, "init", 0755);
	if (r == 0)
		r = modules_dep_load(b, &md);
	if (r == 0)
		r = initramfs_modules(&ir, &md, guest_modules, ARRAY_SIZE(guest_modules), "modules",
				      "a sandbox's disks and network need it");
	modules_dep_free(&md);
	return initramfs_close(&ir, r);
}

static int microvm_write(struct build *b, const struct output_ctx *o)
{
	(void)o;
	_cleanup_free_ char *name = strdupf("%s.microvm", b->p->name), *dir = NULL, *vmlinuz = NULL;
	if (!name || !(dir = strdupf("%s/%s", b->tmp_dir, name)) || !(vmlinuz = strdupf("/boot/vmlinuz-%s", b->kernel_version)))
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0)
		return log_errno(-errno, "cannot create '%s'", dir);
	bool x86 = STREQ(b->p->arch->name, "x86_64");
	int r = write_rootfs(b, dir);
	/* The kernel, read once: copied as it is, and on x86_64 decompressed. */
	_cleanup_free_ char *k = NULL;
	size_t len = 0;
	if (r == 0) {
		_cleanup_close_ int in = tree_open(b, vmlinuz, O_RDONLY | O_NONBLOCK, 0);
		struct stat st;
		r = in < 0 ? in : fstat(in, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : read_fd(in, VMLINUZ_MAX, &k, &len);
		if (r < 0)
			log_errno(r, "cannot read '%s' in the image as a regular file of at most 128 MiB", vmlinuz);
	}
	if (r == 0) {
		_cleanup_close_ int out = open_in_bundle(dir, "vmlinuz", NULL);
		r = out < 0 ? out : write_full(out, k, len) < 0 ? log_errno(-errno, "cannot write '%s/vmlinuz'", dir) : 0;
	}
	if (r == 0 && x86)
		r = write_vmlinux(dir, vmlinuz, (const uint8_t *)k, len);
	if (r == 0)
		r = write_initrd(b, dir);
	static const char *const files[] = { "rootfs.ext4", "vmlinuz", "initrd.img", "vmlinux" };
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(files) - !x86; i++) {
		_cleanup_free_ char *rel = strdupf("%s/%s", name, files[i]);
		r = rel ? manifest_add_artifact(b, rel, "microvm", NULL) : -ENOMEM;
	}
	return r;
}

const struct output_type out_microvm = {
	.name = "microvm",
	.flags = OUT_READS_TREE,
	.check = microvm_check,
	.write = microvm_write,
};
