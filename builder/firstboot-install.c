#include "firstboot-install.h"
#include "build.h"
#include "elf-needs.h"
#include "log.h"
#include "run.h"
#include "stages.h"
#include "util.h"

#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#ifndef PMOVES_LIBEXECDIR
#define PMOVES_LIBEXECDIR "/usr/local/lib/pmoves-image"
#endif

static const char *const units[] = { "pmoves-firstboot.service", "pmoves-firstboot.timer" };

int firstboot_payload_dir(const struct arch *a, char **ret)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *env = getenv("PMOVES_FIRSTBOOT_DIR");
	_cleanup_free_ char *near = NULL;
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		if (asprintf(&near, "%s/target", exe) < 0)
			return -ENOMEM;
	}
	const char *bases[] = { env && *env ? env : NULL, near, PMOVES_LIBEXECDIR };
	for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
		_cleanup_free_ char *dir = NULL, *bin = NULL;
		if (!bases[i])
			continue;
		if (asprintf(&dir, "%s/%s", bases[i], a->name) < 0 || asprintf(&bin, "%s/pmoves-firstboot", dir) < 0)
			return -ENOMEM;
		if (access(bin, X_OK) == 0) {
			*ret = TAKE_PTR(dir);
			return 0;
		}
	}
	return -ENOENT;
}

/* The libraries pmoves-firstboot links, and the Debian packages that ship them. */
static const struct {
	const char *soname, *package;
} library_packages[] = {
	{ "libc.so.6", "libc6" },	    { "libjson-c.so.5", "libjson-c5" },	 { "libcurl.so.4", "libcurl4" },
	{ "libblkid.so.1", "libblkid1" },   { "libcrypto.so.3", "libssl3" },   { "libefivar.so.1", "libefivar1" },	 { "libefiboot.so.1", "libefiboot1" },
	{ "libarchive.so.13", "libarchive13" }, { "libext2fs.so.2", "libext2fs2" }, { "libcom_err.so.2", "libcom-err2" },
	{ "libzstd.so.1", "libzstd1" },	    { "liblzma.so.5", "liblzma5" },
};

const char *const firstboot_loaded_libraries[] = { "libefiboot.so.1", "libefivar.so.1", NULL };

static const char *package_of(const char *soname)
{
	for (size_t i = 0; i < ARRAY_SIZE(library_packages); i++)
		if (STREQ(library_packages[i].soname, soname))
			return library_packages[i].package;
	return NULL;
}

static int read_needs(const struct arch *a, char **ret_bin, struct elf_needs *ret)
{
	_cleanup_free_ char *dir = NULL, *bin = NULL;
	int r = firstboot_payload_dir(a, &dir);
	if (r < 0) {
		log_error("no pmoves-firstboot built for %s (looked in $PMOVES_FIRSTBOOT_DIR, target/%s beside "
			  "pmoves-image and '%s/%s'); 'make' builds it for this machine's architecture",
			  a->name, a->name, PMOVES_LIBEXECDIR, a->name);
		return r;
	}
	if (asprintf(&bin, "%s/pmoves-firstboot", dir) < 0)
		return -ENOMEM;
	r = elf_read_needs(bin, ret);
	if (r < 0)
		return log_errno(r, "cannot read '%s'", bin);
	if (ret_bin)
		*ret_bin = TAKE_PTR(bin);
	return 0;
}

/* The Debian package of SONAME added to *PKGS (once); -ENOPKG when none is known. */
static int add_package(char ***pkgs, const char *soname)
{
	const char *pkg = package_of(soname);
	if (!pkg) {
		log_error("pmoves-firstboot needs '%s', and no package for it is known", soname);
		return -ENOPKG;
	}
	return strv_contains(*pkgs, pkg) ? 0 : strv_push(pkgs, pkg);
}

int firstboot_packages(const struct arch *a, char ***ret)
{
	struct elf_needs n;
	int r = read_needs(a, NULL, &n);
	if (r < 0)
		return r;
	_cleanup_strv_ char **pkgs = NULL;
	for (size_t i = 0; r == 0 && n.needed[i]; i++)
		r = add_package(&pkgs, n.needed[i]);
	for (size_t i = 0; r == 0 && firstboot_loaded_libraries[i]; i++)
		r = add_package(&pkgs, firstboot_loaded_libraries[i]);
	elf_needs_free(&n);
	if (r < 0)
		return r;
	if (!pkgs && !(pkgs = calloc(1, sizeof(char *))))
		return -ENOMEM;
	*ret = TAKE_PTR(pkgs);
	return 0;
}

int firstboot_validate_file(const char *shown, const char *prefix, const char *file, bool part, char **ret_error)
{
	/* The schema lives in pmoves-firstboot, the same code for every architecture: this
	 * machine's build checks it. The target's may not run here (another architecture without
	 * binfmt: execvp ran it as a shell script). */
	_cleanup_free_ char *out = NULL, *bin = NULL, *dir = NULL;
	const struct arch *host = arch_host();
	int r = host ? firstboot_payload_dir(host, &dir) : -ENOENT;
	if (r == -ENOENT) {
		if (asprintf(ret_error,
			     "cannot check the first-boot config in '%s': no pmoves-firstboot built for this machine "
			     "(%s) (looked in $PMOVES_FIRSTBOOT_DIR, target/%s beside pmoves-image and '%s/%s'); "
			     "'make' builds it",
			     shown, host ? host->name : "unknown architecture", host ? host->name : "ARCH",
			     PMOVES_LIBEXECDIR, host ? host->name : "ARCH") < 0)
			return -ENOMEM;
		return r;
	}
	if (r < 0)
		return r;
	if (asprintf(&bin, "%s/pmoves-firstboot", dir) < 0)
		return -ENOMEM;
	char *argv[] = { bin, "validate", part ? "--part" : (char *)file, part ? (char *)file : NULL, NULL };
	struct run_opts o = { .capture = &out, .capture_stderr = true };
	int status = run_argv(argv, &o);
	if (status == 0)
		return 0;
	if (status < 0 || !out)
		return status < 0 ? status : -EIO;
	char *line = out, *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	if (strncmp(line, "pmoves-firstboot: ", 18) == 0)
		line += 18;
	size_t fl = strlen(file);
	const char *rest = strncmp(line, file, fl) == 0 && line[fl] == ':' ? line + fl + 2 : line;
	if (*rest == '.')
		rest++;
	if (asprintf(ret_error, "%s: %s%s%s", shown, prefix, *rest == '[' ? "" : ".", rest) < 0)
		return -ENOMEM;
	return -EINVAL;
}

int firstboot_validate(const struct profile *p, char **ret_error)
{
	if (!p->firstboot)
		return 0;
	char tmpl[] = "/tmp/pmoves-firstboot-XXXXXX";
	if (!mkdtemp(tmpl))
		return -errno;
	_cleanup_free_ char *file = NULL;
	const char *text = json_object_to_json_string_ext(p->firstboot, JSON_C_TO_STRING_PLAIN);
	int r = asprintf(&file, "%s/firstboot.json", tmpl) < 0 ? -ENOMEM : 0;
	if (r == 0)
		r = write_file_atomic(file, text, strlen(text), 0600);
	if (r == 0)
		r = firstboot_validate_file(p->path, ".firstboot", file, false, ret_error);
	if (file)
		unlink(file);
	rmdir(tmpl);
	return r;
}

int firstboot_profile_load(const char *name_or_path, struct profile **ret, char **ret_error)
{
	struct profile *p = NULL;
	int r = profile_load(name_or_path, &p, ret_error);
	if (r < 0)
		return r;
	r = firstboot_validate(p, ret_error);
	if (r < 0) {
		profile_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

int firstboot_schema(json_object **ret)
{
	_cleanup_free_ char *dir = NULL, *bin = NULL, *out = NULL;
	int r = arch_host() ? firstboot_payload_dir(arch_host(), &dir) : -ENOENT;
	if (r < 0) {
		log_error("no pmoves-firstboot built for this machine (looked in $PMOVES_FIRSTBOOT_DIR, target/ "
			  "beside pmoves-image and '%s'): its schema is part of the profile's; 'make' builds it",
			  PMOVES_LIBEXECDIR);
		return r;
	}
	if (asprintf(&bin, "%s/pmoves-firstboot", dir) < 0)
		return -ENOMEM;
	r = run_argv((char *[]){ bin, "schema", NULL }, &(struct run_opts){ .in_fd = -1, .capture = &out });
	if (r != 0)
		return log_errno(r < 0 ? r : -EIO, "'%s schema' failed (exit %d)", bin, r);
	json_object *s = out ? json_tokener_parse(out) : NULL;
	if (!json_object_is_type(s, json_type_object)) {
		json_object_put(s);
		return log_errno(-EBADMSG, "'%s schema' printed no JSON object", bin);
	}
	*ret = s;
	return 0;
}

/* The libraries pmoves-firstboot loads (firstboot_loaded_libraries), in the image. */
static int check_loaded_libraries(struct build *b)
{
	for (size_t i = 0; firstboot_loaded_libraries[i]; i++) {
		_cleanup_free_ char *rel = NULL;
		if (tree_find_library(b, firstboot_loaded_libraries[i], &rel) < 0) {
			log_error("pmoves-firstboot loads '%s', which the image does not have (package %s)",
				  firstboot_loaded_libraries[i], package_of(firstboot_loaded_libraries[i]));
			return -ENOENT;
		}
	}
	return 0;
}

/* BIN must run on the image: its architecture, every library it links, and a glibc at least as
 * new as the one it was built against. Caught here, not at the machine's first boot. */
static int check_runs_on_image(struct build *b, const char *bin, const struct elf_needs *n)
{
	const char *name = strrchr(bin, '/') ? strrchr(bin, '/') + 1 : bin;
	if (n->machine != b->p->arch->elf_machine) {
		log_error("'%s' is not built for %s", bin, b->p->arch->name);
		return -ENOEXEC;
	}
	for (size_t i = 0; n->needed[i]; i++) {
		_cleanup_free_ char *rel = NULL;
		if (tree_find_library(b, n->needed[i], &rel) < 0) {
			const char *pkg = package_of(n->needed[i]);
			log_error("%s needs '%s', which the image does not have%s%s%s", name, n->needed[i],
				  pkg ? " (package " : "", pkg ? pkg : "", pkg ? ")" : "");
			return -ENOENT;
		}
		if (!STREQ(n->needed[i], "libc.so.6"))
			continue;
		_cleanup_free_ char *real = NULL;
		struct elf_needs libc;
		/* The tree's libc may be a symlink inside the tree: resolve it there. */
		_cleanup_close_ int fd = tree_open(b, rel, O_RDONLY | O_NONBLOCK, 0);
		if (fd < 0 || asprintf(&real, "/proc/self/fd/%d", fd) < 0)
			return fd < 0 ? fd : -ENOMEM;
		int r = elf_read_needs(real, &libc);
		if (r < 0)
			return log_errno(r, "cannot read the image's '%s'", rel);
		elf_needs_free(&libc); /* only the version numbers are used below */
		if (libc.defines_major < n->glibc_major ||
		    (libc.defines_major == n->glibc_major && libc.defines_minor < n->glibc_minor)) {
			log_error("%s needs GLIBC_%u.%u, but the image's glibc is %u.%u: build it against the image's suite",
				  name, n->glibc_major, n->glibc_minor, libc.defines_major, libc.defines_minor);
			return -ENOEXEC;
		}
	}
	return 0;
}

int firstboot_check_binary(struct build *b, const char *bin)
{
	struct elf_needs n;
	int r = elf_read_needs(bin, &n);
	if (r < 0)
		return log_errno(r, "cannot read '%s' ('make' builds it)", bin);
	r = check_runs_on_image(b, bin, &n);
	elf_needs_free(&n);
	return r;
}

static int install_file(struct build *b, const char *from, const char *to, mode_t mode)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	int r = read_file(from, 64u << 20, &data, &len);
	if (r < 0)
		return log_errno(r, "cannot read '%s'", from);
	r = tree_write_file(b, to, data, len, mode);
	if (r < 0)
		return log_errno(r, "cannot write '%s' in the image", to);
	return 0;
}

/* Enable UNIT the way systemctl does: a link in each WantedBy= target's .wants directory. */
static int enable_unit(struct build *b, const char *unit, const char *text)
{
	int r = 0;
	_cleanup_free_ char *copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	bool install = false;
	char *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line && r == 0; line = strtok_r(NULL, "\n", &save)) {
		if (*line == '[')
			install = STREQ(line, "[Install]");
		if (!install || strncmp(line, "WantedBy=", 9) != 0)
			continue;
		const char *t = line + 9;
		if (!valid_name(t, 128)) {
			log_error("'%s': WantedBy '%s' is not a unit name", unit, t);
			return -EINVAL;
		}
		_cleanup_free_ char *wants = NULL, *link = NULL;
		if (asprintf(&wants, "/etc/systemd/system/%s.wants", t) < 0 ||
		    asprintf(&link, "/usr/lib/systemd/system/%s", unit) < 0)
			return -ENOMEM;
		r = tree_mkdir_p(b, wants, 0755);
		_cleanup_close_ int dfd = r < 0 ? r : tree_open(b, wants, O_RDONLY | O_DIRECTORY, 0);
		if (dfd < 0)
			return log_errno(dfd, "cannot create '%s' in the image", wants);
		unlinkat(dfd, unit, 0);
		if (symlinkat(link, dfd, unit) < 0)
			return log_errno(-errno, "cannot enable '%s' in the image", unit);
	}
	return r;
}

int stage_firstboot(struct build *b)
{
	_cleanup_free_ char *bin = NULL, *dir = NULL, *config = NULL;
	struct elf_needs n;
	int r = read_needs(b->p->arch, &bin, &n);
	if (r < 0)
		return r;
	r = check_runs_on_image(b, bin, &n);
	elf_needs_free(&n);
	if (r < 0 || (r = check_loaded_libraries(b)) < 0)
		return r;
	r = install_file(b, bin, "/usr/bin/pmoves-firstboot", 0755);
	if (r < 0)
		return r;
	dir = strdup(bin);
	if (!dir)
		return -ENOMEM;
	*strrchr(dir, '/') = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		_cleanup_free_ char *from = NULL, *to = NULL, *text = NULL;
		if (asprintf(&from, "%s/%s", dir, units[i]) < 0 || asprintf(&to, "/usr/lib/systemd/system/%s", units[i]) < 0)
			return -ENOMEM;
		r = read_file(from, 1u << 20, &text, NULL);
		if (r < 0)
			return log_errno(r, "cannot read '%s'", from);
		r = tree_write_file(b, to, text, strlen(text), 0644);
		if (r < 0)
			return log_errno(r, "cannot write '%s' in the image", to);
		r = enable_unit(b, units[i], text);
		if (r < 0)
			return r;
	}
	/* The profile's config. 0600: it may hold secrets the machine needs once. */
	const char *json = b->p->firstboot ? json_object_to_json_string_ext(b->p->firstboot, JSON_C_TO_STRING_PRETTY |
											       JSON_C_TO_STRING_SPACED)
					   : "{}";
	if (asprintf(&config, "%s\n", json) < 0)
		return -ENOMEM;
	r = tree_write_file(b, "/etc/pmoves/firstboot.json", config, strlen(config), 0600);
	if (r < 0)
		return log_errno(r, "cannot write '/etc/pmoves/firstboot.json' in the image");
	log_info("firstboot: pmoves-firstboot installed and enabled");
	return 0;
}
