/* Root filesystem from mmdebstrap, cached as a tarball under its content address. */
#include "hash.h"
#include "firstboot-install.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <sys/stat.h>

static const char *host_debian_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#else
	return "";
#endif
}

static int check_foreign(const char *debian_arch, const char *arch)
{
	if (STREQ(debian_arch, host_debian_arch()))
		return 0;
	_cleanup_free_ char *path = NULL, *state = NULL;
	if (asprintf(&path, "/proc/sys/fs/binfmt_misc/qemu-%s", arch) < 0)
		return -ENOMEM;
	if (read_file(path, 4096, &state, NULL) < 0 || strncmp(state, "enabled", 7) != 0) {
		log_error("building a %s root filesystem on this machine needs qemu-user through binfmt_misc: "
			  "install qemu-user-static binfmt-support arch-test, then run "
			  "'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc' and "
			  "'update-binfmts --enable qemu-%s'",
			  debian_arch, arch);
		return -ENOENT;
	}
	return 0;
}

static int join(const char **v, char **ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; v && v[i]; i++)
		fprintf(f, "%s%s", i ? "," : "", v[i]);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}

static int mmdebstrap_get(struct build *b, char **ret_tar)
{
	const struct profile *p = b->p;
	char key[65];
	_cleanup_free_ char *dir = NULL, *tar = NULL, *tmp = NULL, *meta = NULL;
	_cleanup_strv_ char **extra = NULL;
	/* The libraries pmoves-firstboot needs go into every image. */
	int r = firstboot_packages(p->arch, &extra);
	if (r < 0)
		return r;
	r = rootfs_cache_key(p, extra, key);
	if (r < 0)
		return r;
	r = rootfs_cache_dir(&dir);
	if (r < 0)
		return log_errno(r, "cannot create the rootfs cache directory (set XDG_CACHE_HOME or HOME)");
	if (asprintf(&tar, "%s/%s.tar", dir, key) < 0 || asprintf(&tmp, "%s.tmp-%d", tar, (int)getpid()) < 0 ||
	    asprintf(&meta, "%s/%s.json", dir, key) < 0)
		return -ENOMEM;

	struct stat st;
	if (!b->refresh && stat(tar, &st) == 0 && S_ISREG(st.st_mode)) {
		log_info("rootfs: using the cached '%s'", tar);
		*ret_tar = TAKE_PTR(tar);
		return 0;
	}
	r = check_foreign(p->debian_arch, p->arch);
	if (r < 0)
		return r;

	_cleanup_free_ char *variant = NULL, *archs = NULL, *comps = NULL, *include = NULL, *components = NULL,
			   *packages = NULL;
	_cleanup_free_ const char **all = calloc(strv_length((char **)p->rootfs.packages) + strv_length(extra) + 1,
						 sizeof(char *));
	if (!all)
		return -ENOMEM;
	size_t na = 0;
	for (size_t i = 0; p->rootfs.packages && p->rootfs.packages[i]; i++)
		all[na++] = p->rootfs.packages[i];
	for (size_t i = 0; extra[i]; i++)
		all[na++] = extra[i];
	if (join(p->rootfs.components, &components) < 0 || join(all, &packages) < 0)
		return -ENOMEM;
	if (asprintf(&variant, "--variant=%s", p->rootfs.variant) < 0 ||
	    asprintf(&archs, "--architectures=%s", p->debian_arch) < 0 ||
	    asprintf(&comps, "--components=%s", components) < 0 || asprintf(&include, "--include=%s", packages) < 0)
		return -ENOMEM;
	char *argv[10];
	size_t n = 0;
	argv[n++] = "mmdebstrap";
	argv[n++] = "--format=tar";
	argv[n++] = variant;
	argv[n++] = archs;
	argv[n++] = comps;
	if (*packages)
		argv[n++] = include;
	argv[n++] = (char *)p->rootfs.suite;
	argv[n++] = tmp;
	argv[n++] = (char *)p->rootfs.mirror;
	argv[n] = NULL;
	log_info("rootfs: running mmdebstrap for %s %s (about a minute for the host's architecture, "
		 "much longer for a foreign one)",
		 p->rootfs.suite, p->debian_arch);
	r = build_run(b, argv);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	if (rename(tmp, tar) < 0) {
		r = -errno;
		unlink(tmp);
		return log_errno(r, "cannot rename '%s'", tmp);
	}
	/* For people looking into the cache: what this tarball is. */
	_cleanup_free_ char *text = json_canonical(p->rootfs.json);
	if (text)
		write_file_atomic(meta, text, strlen(text), 0644);
	*ret_tar = TAKE_PTR(tar);
	return 0;
}

const struct rootfs_source rootfs_mmdebstrap = { "mmdebstrap", mmdebstrap_get };
