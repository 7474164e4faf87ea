/* The lists of plug-in records. A new kind is its file and one line in its list here; the
 * order of a list is the order messages name its kinds in. */
#include "registry.h"
#include "arch.h"
#include "log.h"
#include "util.h"

#define ROOTFS_SOURCES(X) \
	X(rootfs_mmdebstrap) \
	X(rootfs_tarball)

#define FILESYSTEMS(X) \
	X(fs_ext4)     \
	X(fs_vfat)

#define BOOT_LOADERS(X)     \
	X(boot_systemd_boot) \
	X(boot_raspi) \
	X(boot_extlinux) \
	X(boot_direct)

#define OUTPUTS(X) \
	X(out_raw)     \
	X(out_bmap)    \
	X(out_zst)     \
	X(out_xz)      \
	X(out_qcow2)   \
	X(out_pxe)     \
	X(out_microvm)

/* Each list: the records' declarations, then the table of their addresses. */
#define DECLARE(rec) extern const struct RECORD rec;
#define ADDRESS(rec) &rec,

#define RECORD rootfs_source
ROOTFS_SOURCES(DECLARE)
static const struct rootfs_source *const rootfs_sources[] = { ROOTFS_SOURCES(ADDRESS) };
#undef RECORD
#define RECORD fs_type
FILESYSTEMS(DECLARE)
static const struct fs_type *const filesystems[] = { FILESYSTEMS(ADDRESS) };
#undef RECORD
#define RECORD boot_loader
BOOT_LOADERS(DECLARE)
static const struct boot_loader *const boot_loaders[] = { BOOT_LOADERS(ADDRESS) };
#undef RECORD
#define RECORD output_type
OUTPUTS(DECLARE)
static const struct output_type *const outputs[] = { OUTPUTS(ADDRESS) };
#undef RECORD

/* Every record starts with its name. */
#define FIND(table, name)                                      \
	do {                                                   \
		for (size_t i_ = 0; name && i_ < ARRAY_SIZE(table); i_++) \
			if (STREQ(table[i_]->name, name))      \
				return table[i_];              \
		return NULL;                                   \
	} while (0)

/* "'a', 'b'" into a static buffer, made once. */
#define NAMES(table)                                                       \
	do {                                                               \
		static char buf_[256];                                     \
		if (!*buf_)                                                \
			for (size_t i_ = 0; i_ < ARRAY_SIZE(table); i_++)  \
				names_add(buf_, sizeof(buf_), table[i_]->name, true); \
		return buf_;                                               \
	} while (0)

const struct rootfs_source *rootfs_source_find(const char *name) { FIND(rootfs_sources, name); }
const struct fs_type *fs_find(const char *name) { FIND(filesystems, name); }
const struct boot_loader *boot_find(const char *name) { FIND(boot_loaders, name); }
const struct output_type *output_find(const char *name) { FIND(outputs, name); }

/* The name of the I-th record, NULL past the last. */
#define AT(table, i) return (i) < ARRAY_SIZE(table) ? table[i]->name : NULL

const char *rootfs_source_at(size_t i) { AT(rootfs_sources, i); }
const char *fs_at(size_t i) { AT(filesystems, i); }
const char *boot_at(size_t i) { AT(boot_loaders, i); }
const char *output_at(size_t i) { AT(outputs, i); }

const char *rootfs_source_names(void) { NAMES(rootfs_sources); }
const char *fs_names(void) { NAMES(filesystems); }
const char *boot_names(void) { NAMES(boot_loaders); }
const char *output_names(void) { NAMES(outputs); }

int boot_uefi_qemu(const struct qemu_image *img, struct qemu_boot *ret)
{
	if (img->machine) {
		log_error("--machine '%s': '%s' boots under UEFI on the architecture's machine only", img->machine,
			  img->path);
		return -EINVAL;
	}
	const struct arch *a = img->arch;
	*ret = (struct qemu_boot){ .code = a->uefi_code, .vars = a->uefi_vars, .pkg = a->uefi_pkg };
	return 0;
}

int boot_inspect(const char *path, const struct inspect_image *img, struct boot_view *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(boot_loaders); i++) {
		if (!boot_loaders[i]->inspect)
			continue;
		*ret = (struct boot_view){ .loader = boot_loaders[i]->name };
		int r = boot_loaders[i]->inspect(path, img, ret);
		if (r != -ENODATA)
			return r;
		boot_view_done(ret);
	}
	return -ENODATA;
}

void boot_view_done(struct boot_view *v)
{
	for (size_t i = 0; i < v->n_files; i++)
		free(v->files[i].text);
	for (size_t i = 0; i < v->n_checks; i++)
		free(v->checks[i].what);
	*v = (struct boot_view){ 0 };
}

const struct boot_loader *boot_recognise(const char *path)
{
	for (size_t i = 0; i < ARRAY_SIZE(boot_loaders); i++)
		if (boot_loaders[i]->recognises && boot_loaders[i]->recognises(path))
			return boot_loaders[i];
	return NULL;
}
