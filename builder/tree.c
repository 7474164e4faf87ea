/* The staging tree: the rootfs tarball extracted, overlays copied in, generated files written. */
#include "build.h"
#include "hash.h"
#include "log.h"
#include "progress.h"
#include "stages.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <time.h>

/* Entry names must stay inside the tree: no absolute paths, no "..". */
static bool safe_relative(const char *name)
{
	if (*name == '/')
		return false;
	for (const char *s = name; *s;) {
		const char *e = strchrnul(s, '/');
		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = *e ? e + 1 : e;
	}
	return true;
}

static int copy_data(struct archive *in, struct archive *out)
{
	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t offset;
		int r = archive_read_data_block(in, &buf, &size, &offset);
		if (r == ARCHIVE_EOF)
			return ARCHIVE_OK;
		if (r < ARCHIVE_WARN)
			return r;
		if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
			return ARCHIVE_FATAL;
	}
}

/* Extracted with names relative to the tree, from inside it: libarchive's symlink checks then
 * walk only the entry's own path components, not the tree's location as well. */
static int extract(struct build *b)
{
	int r = 0, cwd = -1;
	struct progress pr;
	struct archive_entry *e;
	uint64_t entries = 0, total = 0;
	struct stat tst;
	progress_start(&pr, "extracting");
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	if (!in || !out) {
		r = -ENOMEM;
		goto out;
	}
	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	archive_read_support_format_gnutar(in);
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
						    ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR |
						    ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
						    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	archive_write_disk_set_standard_lookup(out);
	if (archive_read_open_filename(in, b->rootfs_tar, 1 << 20) != ARCHIVE_OK) {
		log_error("cannot open rootfs tarball '%s': %s", b->rootfs_tar, archive_error_string(in));
		r = -EIO;
		goto out;
	}
	if (stat(b->rootfs_tar, &tst) == 0)
		total = (uint64_t)tst.st_size;
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(b->tree) < 0) {
		r = log_errno(-errno, "cannot enter '%s'", b->tree);
		goto out;
	}

	for (;;) {
		int ar = archive_read_next_header(in, &e);
		if (ar == ARCHIVE_EOF)
			break;
		if (ar < ARCHIVE_WARN || build_interrupted()) {
			if (!build_interrupted())
				log_error("cannot read '%s': %s", b->rootfs_tar, archive_error_string(in));
			r = build_interrupted() ? -EINTR : -EIO;
			goto out;
		}
		const char *name = archive_entry_pathname(e), *link = archive_entry_hardlink(e);
		if (!name || !safe_relative(name) || (link && !safe_relative(link))) {
			log_error("rootfs tarball '%s' has an entry outside its root: '%s'", b->rootfs_tar,
				  name ? name : "(none)");
			r = -EINVAL;
			goto out;
		}
		ar = archive_write_header(out, e);
		if (ar == ARCHIVE_OK && archive_entry_size(e) > 0)
			ar = copy_data(in, out);
		if (ar >= ARCHIVE_WARN)
			ar = archive_write_finish_entry(out);
		if (ar < ARCHIVE_WARN) {
			log_error("cannot extract '%s': %s", name, archive_error_string(out));
			r = -EIO;
			goto out;
		}
		entries++;
		progress_update(&pr, (uint64_t)archive_filter_bytes(in, -1), total);
	}
	progress_end(&pr);
	if (archive_write_close(out) != ARCHIVE_OK) {
		log_error("cannot finish extracting: %s", archive_error_string(out));
		r = -EIO;
	}
	log_info("tree: %" PRIu64 " entries extracted", entries);
out:
	progress_end(&pr);
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && r == 0)
			r = log_errno(-errno, "cannot return to the working directory");
		close(cwd);
	}
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	return r;
}

/* Open REL inside the tree as if the tree were "/": symlinks cannot lead outside it. */
int tree_open(struct build *b, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	while (*rel == '/')
		rel++;
	return openat2_retry(b->tree_fd, *rel ? rel : ".", &how);
}

int tree_mkdir_p(struct build *b, const char *rel, mode_t mode)
{
	_cleanup_free_ char *p = strdup(rel);
	if (!p)
		return -ENOMEM;
	for (char *s = p;; s++) {
		if (*s != '/' && *s)
			continue;
		char saved = *s;
		*s = '\0';
		if (*p) {
			int fd = tree_open(b, p, O_RDONLY | O_DIRECTORY, 0);
			if (fd == -ENOENT) {
				char *slash = strrchr(p, '/');
				_cleanup_close_ int dfd = -1;
				if (slash) {
					*slash = '\0';
					dfd = tree_open(b, p, O_RDONLY | O_DIRECTORY, 0);
					*slash = '/';
				} else
					dfd = dup(b->tree_fd);
				if (dfd < 0)
					return dfd == -1 ? -errno : dfd;
				if (mkdirat(dfd, slash ? slash + 1 : p, mode) < 0 && errno != EEXIST)
					return -errno;
			} else if (fd < 0)
				return fd;
			else
				close(fd);
		}
		*s = saved;
		if (!saved)
			return 0;
	}
}

/* Split REL into its directory (opened in the tree) and its last component. */
static int tree_open_parent(struct build *b, const char *rel, const char **ret_base)
{
	while (*rel == '/')
		rel++;
	const char *slash = strrchr(rel, '/');
	_cleanup_free_ char *dir = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
	if (!dir)
		return -ENOMEM;
	*ret_base = slash ? slash + 1 : rel;
	if (!**ret_base || STREQ(*ret_base, ".") || STREQ(*ret_base, ".."))
		return -EINVAL;
	return tree_open(b, dir, O_RDONLY | O_DIRECTORY, 0);
}

static void set_times(int fd, const char *name, uint64_t t, int flags)
{
	struct timespec ts[2] = { { .tv_sec = (time_t)t }, { .tv_sec = (time_t)t } };
	utimensat(fd, name, ts, flags);
}

/* Replace REL with a regular file (a symlink there is replaced, not followed). */
int tree_write_file(struct build *b, const char *rel, const void *data, size_t len, mode_t mode)
{
	const char *base;
	_cleanup_free_ char *parent = strdup(rel);
	if (!parent)
		return -ENOMEM;
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		int r = tree_mkdir_p(b, parent, 0755);
		if (r < 0)
			return r;
	}
	_cleanup_close_ int dfd = tree_open_parent(b, rel, &base);
	if (dfd < 0)
		return dfd;
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, ".%s.pmoves-tmp", base) < 0)
		return -ENOMEM;
	unlinkat(dfd, tmp, 0);
	_cleanup_close_ int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0) {
			int r = -errno;
			unlinkat(dfd, tmp, 0);
			return r;
		}
		off += (size_t)n;
	}
	if (fchown(fd, 0, 0) < 0 || fchmod(fd, mode) < 0 || renameat(dfd, tmp, dfd, base) < 0) {
		int r = -errno;
		unlinkat(dfd, tmp, 0);
		return r;
	}
	set_times(dfd, base, b->epoch, AT_SYMLINK_NOFOLLOW);
	return 0;
}

int tree_list_files(struct build *b, const char *dir, const char *prefix, const char *suffix, bool regular_only,
		    char ***ret)
{
	_cleanup_close_ int fd = tree_open(b, dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d)
		return -errno;
	fd = -1;
	_cleanup_strv_ char **names = NULL;
	struct dirent *de;
	int r = 0;
	size_t k = strlen(suffix);
	while (r == 0 && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		struct stat st;
		if (!str_starts_with(de->d_name, prefix) || l < k || l == strlen(prefix) ||
		    !STREQ(de->d_name + l - k, suffix))
			continue;
		if (regular_only && (de->d_type == DT_UNKNOWN
					     ? fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)
					     : de->d_type != DT_REG))
			continue;
		r = strv_push(&names, de->d_name);
	}
	closedir(d);
	if (r < 0)
		return r;
	strv_sort(names);
	*ret = TAKE_PTR(names);
	return 0;
}

int tree_copy_file(struct build *b, const char *from_rel, const char *to_rel, mode_t mode)
{
	_cleanup_close_ int in = tree_open(b, from_rel, O_RDONLY | O_NONBLOCK, 0); /* a FIFO: refused below */
	if (in == -ENOENT)
		return in; /* the caller words a missing file */
	if (in < 0)
		return log_errno(in, "cannot open '%s' in the image", from_rel);
	struct stat st;
	if (fstat(in, &st) < 0)
		return log_errno(-errno, "cannot read '%s' in the image", from_rel);
	if (!S_ISREG(st.st_mode)) {
		log_error("'%s' in the tree is not a regular file", from_rel);
		return -EINVAL;
	}
	const char *base;
	_cleanup_close_ int dfd = tree_open_parent(b, to_rel, &base);
	if (dfd < 0)
		return log_errno(dfd, "cannot open the directory of '%s' in the image", to_rel);
	unlinkat(dfd, base, 0);
	_cleanup_close_ int out = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (out < 0)
		return log_errno(-errno, "cannot create '%s' in the image", to_rel);
	int r = copy_fd_range(in, 0, out, 0, (uint64_t)st.st_size);
	if (r < 0)
		return log_errno(r, "cannot copy '%s' to '%s' in the image", from_rel, to_rel);
	set_times(dfd, base, (uint64_t)st.st_mtime < b->epoch ? (uint64_t)st.st_mtime : b->epoch, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in directory FD, without "." and "..". */
static int list_dir(int fd, char ***ret)
{
	int dup_fd = dup(fd);
	if (dup_fd < 0)
		return -errno;
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return -errno;
	}
	char **v = NULL;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d)))
		if (!STREQ(de->d_name, ".") && !STREQ(de->d_name, "..") && (r = strv_push(&v, de->d_name)) < 0)
			break;
	closedir(d);
	if (r < 0) {
		strv_free(v);
		return r;
	}
	if (v)
		qsort(v, strv_length(v), sizeof(char *), cmp_str);
	*ret = v;
	return 0;
}

int tree_copy_dir(struct build *b, const char *overlay, int src, const char *rel)
{
	_cleanup_strv_ char **names = NULL;
	int r = list_dir(src, &names);
	if (r < 0)
		return r;
	for (size_t i = 0; names && names[i]; i++) {
		const char *name = names[i];
		_cleanup_free_ char *to = NULL;
		if (asprintf(&to, "%s/%s", rel, name) < 0)
			return -ENOMEM;
		struct stat st;
		if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return log_errno(-errno, "%s: cannot stat '%s'", overlay, to);
		mode_t mode = st.st_mode & 07777;
		uint64_t t = (uint64_t)st.st_mtime < b->epoch ? (uint64_t)st.st_mtime : b->epoch;
		if (S_ISDIR(st.st_mode)) {
			r = tree_mkdir_p(b, to, mode);
			_cleanup_close_ int sub = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int dst = r < 0 ? r : tree_open(b, to, O_RDONLY | O_DIRECTORY, 0);
			if (sub < 0 || dst < 0)
				return log_errno(sub < 0 ? -errno : dst, "%s: cannot copy directory '%s'", overlay, to);
			if (fchown(dst, 0, 0) < 0 || fchmod(dst, mode) < 0)
				return log_errno(-errno, "%s: cannot set owner and mode of '%s'", overlay, to);
			r = tree_copy_dir(b, overlay, sub, to);
			if (r < 0)
				return r;
			struct timespec ts[2] = { { .tv_sec = (time_t)t }, { .tv_sec = (time_t)t } };
			futimens(dst, ts);
		} else if (S_ISREG(st.st_mode)) {
			/* O_NONBLOCK and fstat: what was a file at fstatat may be a FIFO now. */
			_cleanup_close_ int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			struct stat now;
			if (in >= 0 && (fstat(in, &now) < 0 || !S_ISREG(now.st_mode) || now.st_size != st.st_size)) {
				log_error("%s: '%s' changed while it was copied", overlay, to);
				return -EAGAIN;
			}
			const char *base;
			_cleanup_close_ int dfd = tree_open_parent(b, to, &base);
			if (in < 0 || dfd < 0)
				return log_errno(in < 0 ? -errno : dfd, "%s: cannot copy '%s'", overlay, to);
			struct stat old;
			if (fstatat(dfd, base, &old, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(old.st_mode)) {
				log_error("%s: '%s' is a file, but the image has a directory there", overlay, to);
				return -EISDIR;
			}
			unlinkat(dfd, base, 0);
			_cleanup_close_ int out = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
			if (out < 0)
				return log_errno(-errno, "%s: cannot create '%s'", overlay, to);
			/* Holes kept: a filesystem image in an overlay or a guest stays sparse. */
			r = copy_sparse(in, 0, out, 0, (uint64_t)st.st_size);
			if (r == 0 && (ftruncate(out, st.st_size) < 0 || fchown(out, 0, 0) < 0 || fchmod(out, mode) < 0))
				r = -errno;
			if (r < 0)
				return log_errno(r, "%s: cannot write '%s'", overlay, to);
			set_times(dfd, base, t, AT_SYMLINK_NOFOLLOW);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
			const char *base;
			_cleanup_close_ int dfd = tree_open_parent(b, to, &base);
			if (n < 0 || dfd < 0)
				return log_errno(n < 0 ? -errno : dfd, "%s: cannot copy link '%s'", overlay, to);
			target[n] = '\0';
			unlinkat(dfd, base, 0);
			if (symlinkat(target, dfd, base) < 0 || fchownat(dfd, base, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
				return log_errno(-errno, "%s: cannot create link '%s'", overlay, to);
			set_times(dfd, base, t, AT_SYMLINK_NOFOLLOW);
		} else {
			log_error("%s: '%s' is not a file, directory or symbolic link", overlay, to);
			return -EINVAL;
		}
	}
	return 0;
}

static int apply_overlays(struct build *b)
{
	for (size_t i = 0; b->p->overlays && b->p->overlays[i]; i++) {
		const char *name = b->p->overlays[i];
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s/%s", overlay_dir(), name) < 0)
			return -ENOMEM;
		_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return log_errno(-errno, "cannot open overlay '%s'", dir);
		_cleanup_free_ char *what = NULL;
		if (asprintf(&what, "overlay '%s'", name) < 0)
			return -ENOMEM;
		int r = tree_copy_dir(b, what, fd, "");
		if (r < 0)
			return r;
		log_info("tree: overlay '%s' copied", name);
	}
	return 0;
}

const char *tree_root_fs_id(const struct build *b, char out[40])
{
	for (size_t i = 0; i < b->plan.n; i++)
		if (b->plan.parts[i].spec->mount && STREQ(b->plan.parts[i].spec->mount, "/")) {
			b->plan.parts[i].fs->fs_id(&b->plan.parts[i], out);
			return out;
		}
	return NULL;
}

static int write_generated(struct build *b)
{
	_cleanup_free_ char *fstab = NULL, *hostname = NULL, *hosts = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&fstab, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "# Generated by pmoves-image for profile '%s'\n", b->p->name);
	for (size_t i = 0; i < b->plan.n; i++) {
		const struct plan_part *pp = &b->plan.parts[i];
		const char *m = pp->spec->mount;
		char id[40];
		if (!m)
			continue; /* the profile check: a mounted partition has a filesystem */
		pp->fs->fs_id(pp, id);
		bool root = STREQ(m, "/");
		fprintf(f, "UUID=%s\t%s\t%s\t%s\t0\t%d\n", id, m, pp->fs->fstab_type,
			root ? pp->fs->root_options : pp->fs->mount_options, root ? 1 : 2);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	if (asprintf(&hostname, "%s\n", b->p->hostname) < 0 ||
	    asprintf(&hosts, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		     b->p->hostname) < 0)
		return -ENOMEM;

	const struct {
		const char *path, *text;
		mode_t mode;
	} files[] = {
		{ "/etc/fstab", fstab, 0644 },
		{ "/etc/hostname", hostname, 0644 },
		{ "/etc/hosts", hosts, 0644 },
		/* Empty: systemd makes a new one at boot, and the boot counts as a first boot. */
		{ "/etc/machine-id", "", 0444 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		int r = tree_write_file(b, files[i].path, files[i].text, strlen(files[i].text), files[i].mode);
		if (r < 0)
			return log_errno(r, "cannot write '%s' in the image", files[i].path);
	}

	/* Never ship secrets: SSH host keys are made on the machine at its first boot. */
	_cleanup_close_ int ssh = tree_open(b, "/etc/ssh", O_RDONLY | O_DIRECTORY, 0);
	if (ssh >= 0) {
		_cleanup_strv_ char **names = NULL;
		int r = list_dir(ssh, &names);
		if (r < 0)
			return r;
		for (size_t i = 0; names && names[i]; i++)
			if (strncmp(names[i], "ssh_host_", 9) == 0 && unlinkat(ssh, names[i], 0) < 0)
				return log_errno(-errno, "cannot remove '/etc/ssh/%s' from the image", names[i]);
		static const char unit[] =
			"[Unit]\n"
			"Description=Generate SSH host keys on the first boot (pmoves-image)\n"
			"Before=ssh.service\n"
			"ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"
			"\n"
			"[Service]\n"
			"Type=oneshot\n"
			/* Ed25519 and ECDSA only: RSA key generation takes minutes on slow boards and
			 * under emulation, and sshd needs just one key. */
			"ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key\n"
			"ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N \"\" -f /etc/ssh/ssh_host_ecdsa_key\n"
			"\n"
			"[Install]\n"
			"WantedBy=ssh.service\n";
		r = tree_write_file(b, "/etc/systemd/system/pmoves-ssh-hostkeys.service", unit, sizeof(unit) - 1, 0644);
		if (r == 0)
			r = tree_mkdir_p(b, "/etc/systemd/system/ssh.service.wants", 0755);
		_cleanup_close_ int wants = r < 0 ? r : tree_open(b, "/etc/systemd/system/ssh.service.wants", O_RDONLY | O_DIRECTORY, 0);
		if (wants < 0)
			return log_errno(wants, "cannot install the SSH host key unit");
		unlinkat(wants, "pmoves-ssh-hostkeys.service", 0);
		if (symlinkat("../pmoves-ssh-hostkeys.service", wants, "pmoves-ssh-hostkeys.service") < 0)
			return log_errno(-errno, "cannot enable the SSH host key unit");
	}
	return 0;
}

/* Installed packages and versions, from dpkg's status file, for the manifest. */
static int read_packages(struct build *b)
{
	/* O_NONBLOCK: the tree comes from a tarball; a FIFO there must not hang the build. */
	_cleanup_close_ int fd = tree_open(b, "/var/lib/dpkg/status", O_RDONLY | O_NONBLOCK, 0);
	b->packages = json_object_new_object();
	if (!b->packages)
		return -ENOMEM;
	if (fd < 0)
		return 0; /* not a Debian tree */
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		log_error("'/var/lib/dpkg/status' in the tree is not a regular file");
		return -EINVAL;
	}
	_cleanup_fclose_ FILE *f = fdopen(fd, "r");
	if (!f)
		return -errno;
	fd = -1;
	_cleanup_free_ char *line = NULL, *pkg = NULL, *ver = NULL;
	size_t cap = 0;
	bool installed = false;
	for (;;) {
		ssize_t n = getline(&line, &cap, f);
		if (n <= 1) { /* blank line or EOF ends a stanza */
			if (pkg && ver && installed)
				json_object_object_add(b->packages, pkg, json_object_new_string(ver));
			free(pkg);
			free(ver);
			pkg = ver = NULL;
			installed = false;
			if (n < 0)
				break;
			continue;
		}
		line[n - 1] = '\0';
		if (strncmp(line, "Package: ", 9) == 0)
			free(pkg), pkg = strdup(line + 9);
		else if (strncmp(line, "Version: ", 9) == 0)
			free(ver), ver = strdup(line + 9);
		else if (strncmp(line, "Status: ", 8) == 0)
			installed = strstr(line, " installed") != NULL;
	}
	return 0;
}

int stage_tree(struct build *b)
{
	int r = build_work_dir(b);
	if (r < 0)
		return r;
	if (mkdir(b->tree, 0755) < 0)
		return log_errno(-errno, "cannot create '%s'", b->tree);
	r = extract(b);
	if (r < 0)
		return r;
	b->tree_fd = open(b->tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->tree_fd < 0)
		return log_errno(-errno, "cannot open '%s'", b->tree);
	r = apply_overlays(b);
	if (r < 0)
		return r;
	r = write_generated(b);
	if (r < 0)
		return r;
	return read_packages(b);
}

static int by_mount_depth(const void *x, const void *y)
{
	const struct plan_part *a = *(struct plan_part *const *)x, *c = *(struct plan_part *const *)y;
	size_t la = strlen(a->spec->mount), lc = strlen(c->spec->mount);
	return la < lc ? 1 : la > lc ? -1 : 0;
}

/* Give each partition its files: the tree's directory at its mount point moves out of the tree
 * (deepest mount first), leaving an empty mount point behind. */
int stage_split(struct build *b)
{
	struct plan_part *order[PROFILE_MAX_PARTS];
	size_t n = 0;
	for (size_t i = 0; i < b->plan.n; i++) {
		struct plan_part *pp = &b->plan.parts[i];
		const char *m = pp->spec->mount;
		if (m && STREQ(m, "/"))
			pp->content = strdup(b->tree);
		else if (m)
			order[n++] = pp;
	}
	qsort(order, n, sizeof(order[0]), by_mount_depth);
	_cleanup_close_ int work = open(b->work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work < 0)
		return -errno;
	for (size_t i = 0; i < n; i++) {
		struct plan_part *pp = order[i];
		_cleanup_free_ char *name = NULL;
		const char *base;
		if (asprintf(&name, "part-%s", pp->spec->name) < 0 || asprintf(&pp->content, "%s/%s", b->work_dir, name) < 0)
			return -ENOMEM;
		int r = tree_mkdir_p(b, pp->spec->mount, 0755);
		_cleanup_close_ int dfd = r < 0 ? r : tree_open_parent(b, pp->spec->mount, &base);
		if (dfd < 0)
			return log_errno(dfd, "cannot prepare mount point '%s' in the image", pp->spec->mount);
		struct stat st;
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
			log_error("mount point '%s' in the image is not a directory", pp->spec->mount);
			return -ENOTDIR;
		}
		if (renameat(dfd, base, work, name) < 0 || mkdirat(dfd, base, st.st_mode & 07777) < 0)
			return log_errno(-errno, "cannot move the files of '%s' out of the root tree", pp->spec->mount);
		set_times(dfd, base, b->epoch, AT_SYMLINK_NOFOLLOW);
	}
	return 0;
}

int tree_find_library(struct build *b, const char *soname, char **ret_rel)
{
	const char *triplet = b->p->arch->triplet;
	const char *fmt[] = { "/usr/lib/%s/%s", "/lib/%s/%s", "/usr/lib/%.0s%s", "/lib/%.0s%s", "/usr/lib64/%.0s%s",
			      "/lib64/%.0s%s" };
	for (size_t i = 0; i < ARRAY_SIZE(fmt); i++) {
		char *rel = NULL;
		if (asprintf(&rel, fmt[i], triplet, soname) < 0)
			return -ENOMEM;
		int fd = tree_open(b, rel, O_RDONLY | O_NONBLOCK, 0); /* a FIFO must not hang the build */
		if (fd >= 0) {
			close(fd);
			*ret_rel = rel;
			return 0;
		}
		free(rel);
	}
	return -ENOENT;
}
