/* Initramfs archives from the build's tree: initramfs.h. */
#include "initramfs.h"
#include "log.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>

#define FILE_MAX (256 << 20)
#define MODULES_DEP_MAX (32u << 20)

int initramfs_open(struct initramfs *ir, struct build *b, const char *path, const char *mod_dir)
{
	*ir = (struct initramfs){ .b = b };
	if (!(ir->path = strdup(path)) || !(ir->mod_dir = strdup(mod_dir)) || !(ir->a = archive_write_new()))
		return initramfs_close(ir, -ENOMEM);
	if (archive_write_set_format_cpio_newc(ir->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(ir->a, 1) != ARCHIVE_OK ||
	    archive_write_open_filename(ir->a, path) != ARCHIVE_OK) {
		log_error("cannot create '%s': %s", path, archive_error_string(ir->a));
		return initramfs_close(ir, -EIO);
	}
	return 0;
}

int initramfs_close(struct initramfs *ir, int r)
{
	if (ir->a) {
		if (archive_write_close(ir->a) != ARCHIVE_OK && r == 0) {
			log_error("cannot write '%s': %s", ir->path, archive_error_string(ir->a));
			r = -EIO;
		}
		archive_write_free(ir->a);
	}
	free(ir->path);
	free(ir->mod_dir);
	strv_free(ir->modules);
	*ir = (struct initramfs){ 0 };
	return r;
}

static int header(struct initramfs *ir, const char *path, mode_t type, mode_t perm, int64_t size)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, size);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_nlink(e, type == AE_IFDIR ? 2 : 1);
	archive_entry_set_mtime(e, (time_t)ir->b->epoch, 0);
	int r = archive_write_header(ir->a, e) == ARCHIVE_OK ? 0 : -EIO;
	archive_entry_free(e);
	if (r < 0)
		log_error("cannot write '%s' into '%s': %s", path, ir->path, archive_error_string(ir->a));
	return r;
}

int initramfs_dir(struct initramfs *ir, const char *path) { return header(ir, path, AE_IFDIR, 0755, 0); }

int initramfs_data(struct initramfs *ir, const char *path, const void *buf, size_t len, mode_t perm)
{
	int r = header(ir, path, AE_IFREG, perm, (int64_t)len);
	if (r == 0 && len && archive_write_data(ir->a, buf, len) != (la_ssize_t)len) {
		log_error("cannot write '%s' into '%s': %s", path, ir->path, archive_error_string(ir->a));
		return -EIO;
	}
	return r;
}

static int from_fd(struct initramfs *ir, int fd, const char *what, const char *path, mode_t perm)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return log_errno(-errno, "cannot read %s", what);
	if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		log_error("%s is not a regular file of at most 256 MiB", what);
		return -EINVAL;
	}
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_fd(fd, (size_t)st.st_size, &buf, &len);
	if (r < 0)
		return log_errno(r, "cannot read %s", what);
	return initramfs_data(ir, path, buf, len, perm);
}

int initramfs_tree_file(struct initramfs *ir, const char *rel, const char *path, mode_t perm)
{
	_cleanup_close_ int fd = tree_open(ir->b, rel, O_RDONLY | O_NONBLOCK, 0);
	_cleanup_free_ char *what = strdupf("'%s' in the image", rel);
	if (fd < 0)
		return log_errno(fd, "cannot open '%s' in the image", rel);
	return what ? from_fd(ir, fd, what, path, perm) : -ENOMEM;
}

int initramfs_host_file(struct initramfs *ir, const char *from, const char *path, mode_t perm)
{
	_cleanup_close_ int fd = open(from, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	_cleanup_free_ char *what = strdupf("'%s'", from);
	if (fd < 0)
		return log_errno(-errno, "cannot open '%s'", from);
	return what ? from_fd(ir, fd, what, path, perm) : -ENOMEM;
}

/* ---- modules ---- */

/* A module's name from its path in modules.dep: "kernel/fs/squashfs/squashfs.ko" -> "squashfs",
 * '-' read as '_' as modprobe does. */
static bool module_is(const char *path, size_t len, const char *name)
{
	const char *base = memrchr(path, '/', len);
	base = base ? base + 1 : path;
	size_t n = len - (size_t)(base - path);
	const char *ko = memmem(base, n, ".ko", 3);
	if (!ko)
		return false;
	n = (size_t)(ko - base);
	if (n != strlen(name))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((base[i] == '-' ? '_' : base[i]) != (name[i] == '-' ? '_' : name[i]))
			return false;
	return true;
}

/* The line of modules.dep (NUL-terminated lines) for NAME, or NULL. */
static char *dep_line(char *dep, size_t len, const char *name)
{
	for (char *p = dep; p < dep + len; p += strlen(p) + 1) {
		char *colon = strchr(p, ':');
		if (colon && module_is(p, (size_t)(colon - p), name))
			return p;
	}
	return NULL;
}

/* The module at PATH (LEN bytes of a modules.dep line) into the archive once, and into ORDER. */
static int add_module(struct initramfs *ir, const char *kdir, const char *path, size_t len, char ***order)
{
	_cleanup_free_ char *rel = strndup(path, len), *from = NULL, *to = NULL;
	if (!rel)
		return -ENOMEM;
	const char *base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	if (strv_contains(*order, base))
		return 0;
	if (strstr(rel, "..") || !valid_name(base, 255))
		return log_errno(-EINVAL, "modules.dep of the image names '%s', which is not a module path", rel);
	if (!strv_contains(ir->modules, base)) {
		if (!(from = strdupf("%s/%s", kdir, rel)) || !(to = strdupf("%s/%s", ir->mod_dir, base)))
			return -ENOMEM;
		int r = initramfs_tree_file(ir, from, to, 0644);
		if (r == 0)
			r = strv_push(&ir->modules, base);
		if (r < 0)
			return r;
	}
	return strv_push(order, base);
}

int initramfs_modules(struct initramfs *ir, const struct modules_dep *md, const char *const *set, size_t n,
		      const char *list_name, const char *why)
{
	_cleanup_strv_ char **order = NULL;
	int r;
	for (size_t m = 0; m < n; m++) {
		char *line = dep_line(md->dep, md->dep_len, set[m]);
		if (!line) {
			bool built_in = false;
			for (char *p = md->builtin; p && p < md->builtin + md->builtin_len; p += strlen(p) + 1)
				built_in = built_in || module_is(p, strlen(p), set[m]);
			if (built_in)
				continue;
			log_error("the image's kernel %s has no module '%s' (%s)", md->kver, set[m], why);
			return -ENOENT;
		}
		char *colon = strchr(line, ':');
		/* modules.dep lists what a module needs in the order modprobe unloads it: the last
		 * one is loaded first. */
		_cleanup_strv_ char **deps = NULL;
		for (char *p = colon + 1; *p;) {
			p += strspn(p, " ");
			size_t k = strcspn(p, " ");
			if (k && (r = add_module(ir, md->kdir, p, k, &deps)) < 0)
				return r;
			p += k;
		}
		for (size_t i = strv_length(deps); i > 0; i--)
			if (!strv_contains(order, deps[i - 1]) && (r = strv_push(&order, deps[i - 1])) < 0)
				return r;
		if ((r = add_module(ir, md->kdir, line, (size_t)(colon - line), &order)) < 0)
			return r;
	}
	_cleanup_free_ char *list = order ? strv_join(order, "\n") : strdup(""),
			    *path = strdupf("%s/%s", ir->mod_dir, list_name);
	_cleanup_free_ char *text = list ? strdupf("%s%s", list, *list ? "\n" : "") : NULL;
	return text && path ? initramfs_data(ir, path, text, strlen(text), 0644) : -ENOMEM;
}

static int read_lines(struct build *b, const char *rel, bool optional, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = tree_open(b, rel, O_RDONLY | O_NONBLOCK, 0);
	int r = fd < 0 ? (fd == -ENOENT && optional ? 0 : fd) : read_fd(fd, MODULES_DEP_MAX, ret, ret_len);
	if (r < 0)
		return log_errno(r, "cannot read '%s' in the image", rel);
	for (size_t i = 0; *ret && i < *ret_len; i++)
		if ((*ret)[i] == '\n')
			(*ret)[i] = '\0';
	return 0;
}

int modules_dep_load(struct build *b, struct modules_dep *md)
{
	*md = (struct modules_dep){ .kver = b->kernel_version };
	_cleanup_free_ char *dep_rel = NULL, *builtin_rel = NULL;
	if (!(md->kdir = strdupf("/lib/modules/%s", md->kver)) || !(dep_rel = strdupf("%s/modules.dep", md->kdir)) ||
	    !(builtin_rel = strdupf("%s/modules.builtin", md->kdir)))
		return -ENOMEM;
	int r = read_lines(b, dep_rel, false, &md->dep, &md->dep_len);
	if (r == 0)
		r = read_lines(b, builtin_rel, true, &md->builtin, &md->builtin_len);
	return r;
}

void modules_dep_free(struct modules_dep *md)
{
	free(md->kdir);
	free(md->dep);
	free(md->builtin);
	*md = (struct modules_dep){ 0 };
}
