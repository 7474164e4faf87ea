/* Root filesystem from mmdebstrap, cached as a tarball under its content address. */
#include "apt-sources.h"
#include "npm-trees.h"
#include "hash.h"
#include "native-tools.h"
#include "firstboot-install.h"
#include "log.h"
#include "rootfs.h"
#include "util.h"

#include <sys/stat.h>

#define MIRROR_MAX 1024
#define PACKAGE_MAX 128
#define MAX_PACKAGES 4096
#define MAX_COMPONENTS 32

static const char *const variants[] = {
	"extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard",
};

/* What every mmdebstrap build gets besides the profile's choices, for every architecture, so the
 * x86_64 builds the tests run take the path the slow foreign ones do. Why each, and what it
 * costs, is in docs/profiles.md ("How the mmdebstrap root filesystem is made"). */

/* Permanent (mmdebstrap writes them to the image's /etc/dpkg/dpkg.cfg.d/99mmdebstrap): packages
 * installed later on the machine leave the same things out. */
static const char *const dpkg_opts[] = {
	"--dpkgopt=path-exclude=/usr/share/doc/*",
	"--dpkgopt=path-include=/usr/share/doc/*/copyright",
	"--dpkgopt=path-exclude=/usr/share/man/*",
	"--dpkgopt=path-exclude=/usr/share/info/*",
	"--dpkgopt=path-exclude=/usr/share/locale/*",
	"--dpkgopt=path-include=/usr/share/locale/locale.alias",
};

/* Hooks: fixed text, nothing from the profile in it; mmdebstrap runs each with sh -c and the
 * root directory as $1. Build-only settings go in with the first two and come out with the
 * last, which mmdebstrap runs after the last package and before it packs the tarball. */
#define BUILD_DPKG_CFG "/etc/dpkg/dpkg.cfg.d/zz-pmoves-build"
#define INITRAMFS_DIR "/etc/initramfs-tools"
/* Programs that packages run from their maintainer scripts and triggers, diverted to a no-op
 * during the build: update-initramfs and update-ca-certificates do all of their work again
 * each time and are run once at the end; ssh-keygen makes host keys that no image keeps (the
 * tree stage deletes them: each machine makes its own) and is not run at all. */
#define DIVERTED "/usr/sbin/update-initramfs /usr/sbin/update-ca-certificates /usr/bin/ssh-keygen"
#define DIVERTED_SUFFIX ".pmoves-build"
static const char *const hooks[] = {
	/* dpkg without fsync while building: a failed build is thrown away, and the tarball is
	 * read back from the page cache. */
	"--setup-hook=mkdir -p \"$1/etc/dpkg/dpkg.cfg.d\" && echo force-unsafe-io >\"$1" BUILD_DPKG_CFG "\"",
	/* The DIVERTED programs diverted to no-ops before their packages are installed: the
	 * kernel's postinst and the initramfs-tools trigger each make the whole initramfs
	 * otherwise, each time with a few processes per module; ca-certificates' postinst and its
	 * trigger each rebuild /etc/ssl/certs with a few processes per certificate;
	 * openssh-server's postinst makes an RSA key (minutes, half a minute and seconds under
	 * qemu-user). */
	"--essential-hook=for f in " DIVERTED "; do chroot \"$1\" dpkg-divert --quiet --local --rename --divert "
	"\"$f" DIVERTED_SUFFIX "\" --add \"$f\" && printf '#!/bin/sh\\necho \"%s: not run while pmoves-image builds "
	"the root filesystem\" >&2\\n' \"${f##*/}\" >\"$1$f\" && chmod 0755 \"$1$f\" || exit 1; done",
	/* With the profile's rootfs.initramfs_modules and/or initramfs_categories, in
	 * $PMOVES_INITRAMFS_MODULES and $PMOVES_INITRAMFS_CATEGORIES (module names checked by the
	 * schema's pattern, categories against initramfs_categories[]: nothing else reaches them):
	 * MODULES=list, and an initramfs-tools hook adding those modules (and what they depend on)
	 * and those categories' drivers, the way MODULES=most adds all categories'. It fails the
	 * initramfs when the kernel has no module of that name. Both files stay in the image, so
	 * a kernel upgrade on the machine makes the same initramfs. */
	"--customize-hook=m=\"${PMOVES_INITRAMFS_MODULES:-}\" c=\"${PMOVES_INITRAMFS_CATEGORIES:-}\"; "
	"if [ -n \"$m$c\" ]; then d=\"$1" INITRAMFS_DIR "\"; "
	"if [ ! -d \"$d/conf.d\" ] || [ ! -d \"$d/hooks\" ]; then echo 'rootfs.initramfs_modules: the image has no "
	"initramfs-tools (is a kernel in the packages?)' >&2; exit 1; fi; "
	"printf '# Written by pmoves-image (rootfs.initramfs_modules or _categories of the profile): the "
	"initramfs\\n# holds the modules of hooks/pmoves-image, not those of MODULES=most\\nMODULES=list\\n' >\"$d/conf.d/pmoves-image\" && "
	"{ printf '#!/bin/sh\\n# Written by pmoves-image from the profile: the modules of rootfs.initramfs_modules "
	"and what\\n# they need, the drivers of the initramfs-tools categories of rootfs.initramfs_categories\\n"
	"[ \"$1\" = prereqs ] && exit 0\\n. /usr/share/initramfs-tools/hook-functions\\n'; "
	"if [ -n \"$c\" ]; then printf 'auto_add_modules %s\\n' \"$c\"; fi; "
	"if [ -n \"$m\" ]; then printf 'manual_add_modules %s\\n# A module this kernel does not have fails the "
	"initramfs here, not the boot.\\n/sbin/modprobe --all --set-version=\"$version\" --ignore-install "
	"--show-depends %s >/dev/null || { echo \"E: pmoves-image: a module of rootfs.initramfs_modules is not in "
	"kernel $version\" >&2; exit 1; }\\n' \"$m\" \"$m\"; fi; } >\"$d/hooks/pmoves-image\" && "
	"chmod 0755 \"$d/hooks/pmoves-image\"; fi",
	/* The real programs back (on the machine they are what Debian ships), then
	 * update-ca-certificates and update-initramfs run once (the latter for every kernel, the
	 * way the kernel's postinst would have). The two touch different files: they run side by
	 * side, on two cores when there are two. */
	"--customize-hook=rm -f \"$1" BUILD_DPKG_CFG "\" && for f in " DIVERTED "; do rm -f \"$1$f\" && chroot \"$1\" "
	"dpkg-divert --quiet --local --rename --remove \"$f\" || exit 1; done; c=; i=0; "
	"if [ -x \"$1/usr/sbin/update-ca-certificates\" ]; then chroot \"$1\" update-ca-certificates & c=$!; fi; "
	"if [ -x \"$1/usr/sbin/update-initramfs\" ]; then chroot \"$1\" update-initramfs -c -k all || i=$?; fi; "
	"if [ -n \"$c\" ]; then wait \"$c\" || exit 1; fi; exit $i",
};

/* initramfs-tools' module categories (auto_add_modules in its hook-functions): MODULES=most
 * adds the drivers of all of them. */
static const char *const initramfs_categories[] = {
	"base", "net", "ide", "scsi", "block", "ata", "dasd", "firewire", "mmc", "usb_storage", "fb",
};

const char *initramfs_category_at(size_t i)
{
	return i < ARRAY_SIZE(initramfs_categories) ? initramfs_categories[i] : NULL;
}

/* "PMOVES_INITRAMFS_MODULES=sdhci_iproc ext4 ..." (KEY rootfs.initramfs_modules) or
 * "PMOVES_INITRAMFS_CATEGORIES=base mmc ..." (rootfs.initramfs_categories) for the hook above,
 * or NULL (in *ret) when the profile has no such key. The schema checked the names. */
static int initramfs_env(const struct profile *p, const char *key, const char *var, char **ret)
{
	json_object *list = json_object_object_get(p->rootfs.json, key);
	*ret = NULL;
	if (!list)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "%s=", var);
	for (size_t i = 0; i < json_object_array_length(list); i++)
		fprintf(f, "%s%s", i ? " " : "", json_object_get_string(json_object_array_get_idx(list, i)));
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}

static bool valid_component(const char *s)
{
	return valid_name(s, 64);
}

/* "name" or "name=version", as apt takes them. */
static bool valid_package(const char *s)
{
	size_t n = 0;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; s[n] && s[n] != '='; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || strchr("+.-", s[n])))
			return false;
	if (n > PACKAGE_MAX)
		return false;
	if (!s[n])
		return true;
	const char *ver = s + n + 1;
	if (!*ver || strlen(ver) > PACKAGE_MAX)
		return false;
	for (; *ver; ver++)
		if (!((*ver >= 'a' && *ver <= 'z') || (*ver >= 'A' && *ver <= 'Z') || (*ver >= '0' && *ver <= '9') ||
		      strchr(".+~:-", *ver)))
			return false;
	return true;
}

static int mmdebstrap_check(const struct profile *p, struct problems *pr)
{
	if (!valid_name(p->rootfs.suite, 64))
		return problem(pr, ".rootfs.suite", "%s is not a suite name", Q(p->rootfs.suite));

	const char *m = p->rootfs.mirror;
	if (!(str_starts_with(m, "http://") || str_starts_with(m, "https://") || str_starts_with(m, "file://")) ||
	    strlen(m) <= strlen("file://") || str_has_space_or_control(m) || strlen(m) > MIRROR_MAX)
		return problem(pr, ".rootfs.mirror",
			       "%s is not a mirror URL (http://, https:// or file://, no spaces, at most %d bytes)", Q(m),
			       MIRROR_MAX);

	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(variants); i++)
		known = known || STREQ(variants[i], p->rootfs.variant);
	if (!known)
		return problem(pr, ".rootfs.variant",
			       "unknown mmdebstrap variant %s (extract, custom, essential, apt, required, minbase, "
			       "buildd, important, debootstrap, standard)",
			       Q(p->rootfs.variant));

	json_object *rootfs = p->rootfs.json;
	int r = check_str_list(pr, ".rootfs.components", json_object_object_get(rootfs, "components"),
			       MAX_COMPONENTS, "components", valid_component, "a component name");
	if (r < 0)
		return r;
	r = check_str_list(pr, ".rootfs.packages", json_object_object_get(rootfs, "packages"), MAX_PACKAGES,
			   "packages", valid_package,
			   "a Debian package name (lowercase letters, digits, '+', '.', '-', optionally \"=version\")");
	if (r < 0)
		return r;

	json_object *cats = json_object_object_get(rootfs, "initramfs_categories");
	if (cats) {
		bool base = false;
		for (size_t i = 0; i < json_object_array_length(cats); i++)
			base = base || STREQ(json_object_get_string(json_object_array_get_idx(cats, i)), "base");
		if (!base && !json_object_object_get_ex(rootfs, "initramfs_modules", NULL))
			return problem(pr, ".rootfs.initramfs_categories",
				       "has no \"base\" and there is no initramfs_modules: the drivers of \"base\" (the "
				       "root file systems, USB hosts, clocks, regulators, ...) are what every machine "
				       "needs to mount its root");
	}
	static const char *const initramfs_keys[] = { "initramfs_modules", "initramfs_categories" };
	for (size_t i = 0; i < ARRAY_SIZE(initramfs_keys); i++)
		if (json_object_object_get_ex(rootfs, initramfs_keys[i], NULL) &&
		    (STREQ(p->rootfs.variant, "extract") || STREQ(p->rootfs.variant, "custom"))) {
			char path[64];
			snprintf(path, sizeof(path), ".rootfs.%s", initramfs_keys[i]);
			return problem(pr, path,
				       "is not used with the variant \"%s\" (mmdebstrap runs none of the builder's "
				       "hooks for it)",
				       p->rootfs.variant);
		}

	if ((r = apt_sources_check(p, pr)) < 0 || (r = npm_trees_check(p, pr)) < 0)
		return r;

	static const char *const not_here[] = { "path", "url", "sha256" };
	for (size_t i = 0; i < ARRAY_SIZE(not_here); i++)
		if (json_object_object_get_ex(rootfs, not_here[i], NULL)) {
			char path[64];
			snprintf(path, sizeof(path), ".rootfs.%s", not_here[i]);
			return problem(pr, path, "not used by source \"mmdebstrap\" (only by \"tarball\")");
		}
	return 0;
}

static int check_foreign(const struct arch *a)
{
	if (a == arch_host())
		return 0;
	_cleanup_free_ char *path = NULL, *state = NULL;
	if (asprintf(&path, "/proc/sys/fs/binfmt_misc/qemu-%s", a->name) < 0)
		return -ENOMEM;
	if (read_file(path, 4096, &state, NULL) < 0 || strncmp(state, "enabled", 7) != 0) {
		log_error("building a %s root filesystem on this machine needs qemu-user through binfmt_misc: "
			  "install qemu-user-static binfmt-support arch-test, then run "
			  "'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc' and "
			  "'update-binfmts --enable qemu-%s'",
			  a->debian, a->name);
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
	_cleanup_free_ char *dir = NULL, *tar = NULL, *tmpdir = NULL, *tmp = NULL, *meta = NULL;
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
	if (asprintf(&tar, "%s/%s.tar", dir, key) < 0 || asprintf(&meta, "%s/%s.json", dir, key) < 0)
		return -ENOMEM;

	_cleanup_(rootfs_cache_unlock) struct cache_lock lock = { .fd = -1 };
	if ((r = rootfs_cache_lock(dir, key, &lock)) < 0)
		return r;
	struct stat st;
	if (!b->refresh && stat(tar, &st) == 0 && S_ISREG(st.st_mode)) {
		log_info("rootfs: using the cached '%s'", tar);
		apt_sources_log_cached(p);
		*ret_tar = TAKE_PTR(tar);
		return 0;
	}
	r = check_foreign(p->arch);
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
	    asprintf(&archs, "--architectures=%s", p->arch->debian) < 0 ||
	    asprintf(&comps, "--components=%s", components) < 0 || asprintf(&include, "--include=%s", packages) < 0)
		return -ENOMEM;
	/* mmdebstrap writes its tarball by name: into a directory only we can enter (random name,
	 * made by mkdtemp, 0700), so nothing planted in the cache is followed or written through. */
	if (asprintf(&tmpdir, "%s/.tmp-XXXXXX", dir) < 0)
		return -ENOMEM;
	if (!mkdtemp(tmpdir)) {
		r = -errno;
		free(TAKE_PTR(tmpdir));
		return log_errno(r, "cannot create a directory in '%s'", dir);
	}
	if (asprintf(&tmp, "%s/%s.tar", tmpdir, key) < 0) {
		rm_rf(tmpdir);
		return -ENOMEM;
	}
	_cleanup_strv_ char **sources = NULL;
	_cleanup_free_ char *pins = NULL;
	r = apt_sources_prepare(b, tmpdir, &sources, &pins);
	if (r < 0) {
		rm_rf(tmpdir);
		return r;
	}
	_cleanup_free_ char *npm = NULL, *npm_dir = NULL;
	r = npm_trees_prepare(p, tmpdir, &npm, &npm_dir);
	if (r < 0) {
		rm_rf(tmpdir);
		return r;
	}
	_cleanup_free_ char *native = NULL;
	bool hooked = !STREQ(p->rootfs.variant, "extract") && !STREQ(p->rootfs.variant, "custom");
	if (hooked && (r = native_tools_prepare(p, tmpdir, &native)) < 0) {
		rm_rf(tmpdir);
		return r;
	}
	char *argv[14 + ARRAY_SIZE(dpkg_opts) + ARRAY_SIZE(hooks) + ARRAY_SIZE(apt_sources_hooks) + APT_SOURCES_MAX];
	size_t n = 0;
	argv[n++] = "mmdebstrap";
	/* Every maintainer script's output into build.log, not a progress bar: what ran, and for how
	 * long, is the first thing to look at when a build is slow or fails. */
	argv[n++] = "--verbose";
	argv[n++] = "--format=tar";
	for (size_t i = 0; i < ARRAY_SIZE(dpkg_opts); i++)
		argv[n++] = (char *)dpkg_opts[i];
	/* The variants extract and custom run no essential hook: nothing to undo at the end. */
	if (hooked) {
		if (native)
			argv[n++] = (char *)native_tools_install_hook;
		for (size_t i = 0; i < ARRAY_SIZE(hooks); i++)
			argv[n++] = (char *)hooks[i];
	}
	for (size_t i = 0; sources && i < ARRAY_SIZE(apt_sources_hooks); i++)
		argv[n++] = (char *)apt_sources_hooks[i];
	if (npm) /* after the hooks above: the image's packages are installed and configured */
		argv[n++] = (char *)npm_trees_hook;
	/* The last customize hook: this machine's programs stand in until everything else in the
	 * image has run, the initramfs included (checked below). */
	if (native)
		argv[n++] = (char *)native_tools_restore_hook;
	argv[n++] = variant;
	argv[n++] = archs;
	argv[n++] = comps;
	if (*packages)
		argv[n++] = include;
	argv[n++] = (char *)p->rootfs.suite;
	argv[n++] = tmp;
	argv[n++] = (char *)p->rootfs.mirror;
	for (size_t i = 0; sources && sources[i]; i++) /* after Debian's: deb822 files, each its own */
		argv[n++] = sources[i];
	argv[n] = NULL;
	log_info("rootfs: running mmdebstrap for %s %s (about a minute for the host's architecture, "
		 "much longer for a foreign one)",
		 p->rootfs.suite, p->arch->debian);
	_cleanup_free_ char *modules = NULL, *categories = NULL;
	if (initramfs_env(p, "initramfs_modules", "PMOVES_INITRAMFS_MODULES", &modules) < 0 ||
	    initramfs_env(p, "initramfs_categories", "PMOVES_INITRAMFS_CATEGORIES", &categories) < 0) {
		rm_rf(tmpdir);
		return -ENOMEM;
	}
	char *env[7];
	size_t ne = 0;
	if (native)
		env[ne++] = native;
	if (npm) {
		env[ne++] = npm;
		env[ne++] = npm_dir;
	}
	if (modules)
		env[ne++] = modules;
	if (categories)
		env[ne++] = categories;
	if (pins)
		env[ne++] = pins;
	env[ne] = NULL;
	r = build_run_env(b, argv, env);
	if (r == 0 && native)
		r = native_tools_check(tmp);
	if (r == 0 && rename(tmp, tar) < 0)
		r = log_errno(-errno, "cannot rename '%s'", tmp);
	unlink(tmp);
	rm_rf(tmpdir);
	if (r < 0)
		return r;
	/* For people looking into the cache: what this tarball is. */
	_cleanup_free_ char *text = json_canonical(p->rootfs.json);
	if (text)
		write_file_atomic(meta, text, strlen(text), 0644);
	*ret_tar = TAKE_PTR(tar);
	return 0;
}

const struct rootfs_source rootfs_mmdebstrap = {
	.name = "mmdebstrap",
	.defaults = "{ \"suite\": \"bookworm\", \"mirror\": \"http://deb.debian.org/debian\", "
		    "\"variant\": \"minbase\", \"components\": [ \"main\" ], \"packages\": [ ] }",
	.check = mmdebstrap_check,
	.get = mmdebstrap_get,
};
