/* The build machine's programs in place of the image's while a foreign architecture's packages
 * install (native-tools.h). */
#include "native-tools.h"
#include "arch.h"
#include "elf-needs.h"
#include "log.h"
#include "profile.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <elf.h>
#include <sys/stat.h>

/* Where the programs' interpreter (this machine's dynamic loader) is in the image while they
 * run: a directory of its own, which no package has. The libraries go to this machine's
 * multiarch directory (/usr/lib/x86_64-linux-gnu), where that loader looks by itself and no
 * package of the image's architecture puts anything. */
#define NATIVE_DIR ".pmoves-native"
#define NATIVE_INTERP "/" NATIVE_DIR "/ld.so"
#define NATIVE_FILE_MAX (64u << 20)
#define NATIVE_LIBS_MAX 64
#define INITRD_MAX (1024u << 20)

static const struct {
	const char *package;
	const char *only; /* that one program of the package, or NULL for all of them */
} packages[] = {
	/* dpkg starts it for every package; decompressing the data is most of an unpack. dpkg
	 * itself stays the image's: it knows its architecture. */
	{ "dpkg", "/usr/bin/dpkg-deb" },
	{ "dash", NULL }, /* /bin/sh: every maintainer script and trigger */
	{ "coreutils", NULL },
	{ "sed", NULL },
	{ "grep", NULL },
	{ "findutils", NULL },
	{ "diffutils", NULL }, /* ucf and the scripts compare configuration files */
	{ "mawk", NULL },
};

/* By name, in whatever directory a release puts them: uname and arch would name this machine's
 * architecture, not the image's (qemu-user answers for the image); stdbuf preloads a library of
 * its own architecture into what it starts; usrmerge's conversion checks the image's loader by
 * running `ldd /bin/cp`. */
static const char *const never[] = { "uname", "arch", "stdbuf", "cp", NULL };

/* The hooks' work, as scripts run by this machine's sh with the root directory as $1 (the hooks
 * of rootfs-mmdebstrap.c run them). Each program replaced is moved aside the way `dpkg-divert
 * --local --rename --divert PATH.pmoves-native` moves it, with the line dpkg-divert would add
 * (written here: dpkg-divert itself is one of the image's programs, a second each under
 * qemu-user), so that dpkg, installing the package, puts the image's file aside too. */
static const char install_sh[] =
	"# pmoves-image (builder/native-tools.c): this machine's programs in place of the image's\n"
	"r=$1 n=$(dirname \"$0\")\n"
	"# (fakechroot would not reach into programs of another architecture than its own)\n"
	"case ${MMDEBSTRAP_MODE:-root} in root | unshare) ;; *)\n"
	"\techo \"rootfs: mmdebstrap's $MMDEBSTRAP_MODE mode: the image's own programs run emulated throughout\" >&2\n"
	"\texit 0 ;;\n"
	"esac\n"
	"while read -r d; do\n"
	"\tif [ -e \"$r/$d\" ] || [ -L \"$r/$d\" ]; then\n"
	"\t\techo \"rootfs: the image has /$d: its own programs run emulated throughout\" >&2\n"
	"\t\texit 0\n"
	"\tfi\n"
	"done <\"$n/dirs\"\n"
	"while read -r d; do mkdir -m 0755 \"$r/$d\" || exit 1; done <\"$n/dirs\"\n"
	"cp -R \"$n/root/.\" \"$r/\" || exit 1\n"
	"cd \"$n/files\" || exit 1\n"
	"find . -type f | {\n"
	"\tc=0\n"
	"\twhile read -r f; do\n"
	"\t\tf=${f#.}\n"
	"\t\t[ -f \"$r$f\" ] && [ ! -L \"$r$f\" ] || continue\n"
	"\t\tmv \"$r$f\" \"$r$f.pmoves-native\" && cp \"$n/files$f\" \"$r$f\" &&\n"
	"\t\t\tprintf '%s\\n%s.pmoves-native\\n:\\n' \"$f\" \"$f\" >>\"$r/var/lib/dpkg/diversions\" || exit 1\n"
	"\t\tc=$((c + 1))\n"
	"\tdone\n"
	"\techo \"rootfs: $c programs of this machine's run natively while the packages install\" >&2\n"
	"} || exit 1\n"
	"if ! chroot \"$r\" /usr/bin/dpkg-deb --version >/dev/null; then\n"
	"\techo \"rootfs: this machine's programs do not start in the image: its own run emulated\" >&2\n"
	"\texec sh \"$n/restore\" \"$r\"\n"
	"fi\n";

static const char restore_sh[] =
	"# pmoves-image (builder/native-tools.c): the image's own programs back, no trace left\n"
	"r=$1 n=$(dirname \"$0\")\n"
	"[ -d \"$r/" NATIVE_DIR "\" ] || exit 0\n"
	"cd \"$n/files\" || exit 1\n"
	"find . -type f | {\n"
	"\ts=0\n"
	"\twhile read -r f; do\n"
	"\t\tf=${f#.}\n"
	"\t\tif [ -e \"$r$f.pmoves-native\" ]; then mv -f \"$r$f.pmoves-native\" \"$r$f\" || s=1; fi\n"
	"\tdone\n"
	"\texit $s\n"
	"} || exit 1\n"
	"# their lines out of dpkg's diversions, and of the copy dpkg-divert keeps of the file it rewrote\n"
	"for d in \"$r/var/lib/dpkg/diversions\" \"$r/var/lib/dpkg/diversions-old\"; do\n"
	"\t[ -f \"$d\" ] || continue\n"
	"\tawk '{ l[NR] = $0 } END { for (i = 1; i + 2 <= NR; i += 3) if (l[i + 1] != l[i] \".pmoves-native\" || "
	"l[i + 2] != \":\") printf \"%s\\n%s\\n%s\\n\", l[i], l[i + 1], l[i + 2] }' \"$d\" >\"$n/diversions\" &&\n"
	"\t\tcat \"$n/diversions\" >\"$d\" || exit 1\n"
	"done\n"
	"cd \"$n/root\" || exit 1\n"
	"find . -type f | while read -r f; do rm -f \"$r/${f#./}\" || exit 1; done || exit 1\n"
	"tac \"$n/dirs\" | while read -r d; do rmdir \"$r/$d\" || exit 1; done\n";

const char *const native_tools_install_hook =
	"--extract-hook=[ -z \"${PMOVES_NATIVE:-}\" ] || sh \"$PMOVES_NATIVE/install\" \"$1\"";
const char *const native_tools_restore_hook =
	"--customize-hook=[ -z \"${PMOVES_NATIVE:-}\" ] || sh \"$PMOVES_NATIVE/restore\" \"$1\"";

/* This machine's release (VERSION_CODENAME of os-release), or NULL, also when os-release has no
 * VERSION_ID: Debian's testing and unstable name the next release there, whose packages they
 * are not yet. */
static char *host_codename(void)
{
	_cleanup_free_ char *text = NULL;
	if (read_file("/etc/os-release", 65536, &text, NULL) < 0 &&
	    read_file("/usr/lib/os-release", 65536, &text, NULL) < 0)
		return NULL;
	char *codename = NULL;
	bool released = false;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		released = released || str_starts_with(line, "VERSION_ID=");
		if (!str_starts_with(line, "VERSION_CODENAME="))
			continue;
		char *v = line + strlen("VERSION_CODENAME=");
		size_t n = strlen(v);
		if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
			v[n - 1] = '\0';
			v++;
		}
		codename = v;
	}
	return released && codename && *codename ? strdup(codename) : NULL;
}

/* An absolute path of plain characters, no component starting with a dot: safe to hand to the
 * hooks' scripts as a word. */
static bool plain_path(const char *s)
{
	if (*s != '/' || strstr(s, "/.") || strlen(s) > 256)
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("/._+-", *c)))
			return false;
	return true;
}

/* A path a package lists that the scripts can start: a plain path in a bin directory. */
static bool program_path(const char *s)
{
	return (str_starts_with(s, "/bin/") || str_starts_with(s, "/sbin/") || str_starts_with(s, "/usr/bin/") ||
		str_starts_with(s, "/usr/sbin/")) &&
	       plain_path(s);
}

static int write_below(const char *top, const char *rel, const void *buf, size_t len, mode_t mode)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", top, rel) < 0)
		return -ENOMEM;
	char *slash = strrchr(path, '/');
	*slash = '\0';
	int r = mkdir_p(path, 0755);
	*slash = '/';
	if (r < 0)
		return log_errno(r, "cannot create the directory of '%s'", path);
	return write_file_atomic(path, buf, len, mode);
}

struct stage {
	const char *dir;   /* DIR/native */
	const char *libdir; /* this machine's multiarch library directory, "/usr/lib/x86_64-linux-gnu" */
	char *interp;      /* this machine's loader, as its programs name it */
	char **libs;       /* sonames needed, in the order found */
	size_t programs, copied;
};

static int note_needs(struct stage *s, const char *path)
{
	struct elf_needs n = { 0 };
	int r = elf_read_needs(path, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && n.needed[i]; i++)
		if (!strv_contains(s->libs, n.needed[i]))
			r = strchr(n.needed[i], '/') || strv_length(s->libs) >= NATIVE_LIBS_MAX ? -E2BIG
												 : strv_push(&s->libs, n.needed[i]);
	elf_needs_free(&n);
	return r;
}

/* PATH of this machine as DIR/files/PATH, its interpreter moved; 0 and nothing when it is no
 * dynamically linked program of this machine's architecture (a script, a static program). */
static int stage_program(struct stage *s, const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > NATIVE_FILE_MAX)
		return 0;
	_cleanup_free_ char *buf = NULL, *old = NULL;
	size_t len;
	int r = read_file(path, NATIVE_FILE_MAX, &buf, &len);
	if (r < 0)
		return log_errno(r, "cannot read '%s'", path);
	struct elf_needs n = { 0 };
	if (elf_read_needs(path, &n) < 0)
		return 0;
	uint16_t machine = n.machine;
	elf_needs_free(&n);
	if (machine != arch_host()->elf_machine || elf_set_interp(buf, len, NATIVE_INTERP, &old) < 0)
		return 0;
	if (!s->interp && !(s->interp = strdup(old)))
		return -ENOMEM;
	if (!STREQ(old, s->interp))
		return 0; /* another loader: not this machine's usual programs */
	if ((r = note_needs(s, path)) < 0)
		return r == -E2BIG ? 0 : r;
	_cleanup_free_ char *files = NULL;
	if (asprintf(&files, "%s/files", s->dir) < 0)
		return -ENOMEM;
	if ((r = write_below(files, path + 1, buf, len, 0755)) < 0)
		return r;
	s->programs++;
	return 0;
}

static int stage_package(struct stage *s, const char *package, const char *only)
{
	_cleanup_free_ char *list = NULL, *text = NULL;
	if (asprintf(&list, "/var/lib/dpkg/info/%s.list", package) < 0)
		return -ENOMEM;
	int r = read_file(list, 1u << 20, &text, NULL);
	if (r == -ENOENT) {
		free(list);
		if (asprintf(&list, "/var/lib/dpkg/info/%s:%s.list", package, arch_host()->debian) < 0)
			return -ENOMEM;
		r = read_file(list, 1u << 20, &text, NULL);
	}
	if (r < 0)
		return -ENOENT;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if ((only && !STREQ(line, only)) || !program_path(line) ||
		    strv_contains((char **)never, strrchr(line, '/') + 1))
			continue;
		if ((r = stage_program(s, line)) < 0)
			return r;
	}
	return 0;
}

/* The loader and the libraries the programs need, with what those need, into DIR/root. */
static int stage_libraries(struct stage *s)
{
	_cleanup_free_ char *root = NULL, *loader = realpath(s->interp, NULL), *buf = NULL;
	size_t len;
	if (!loader)
		return log_errno(-errno, "cannot resolve this machine's dynamic loader '%s'", s->interp);
	if (asprintf(&root, "%s/root", s->dir) < 0)
		return -ENOMEM;
	int r = read_file(loader, NATIVE_FILE_MAX, &buf, &len);
	if (r < 0 || (r = write_below(root, NATIVE_DIR "/ld.so", buf, len, 0755)) < 0)
		return log_errno(r, "cannot copy this machine's dynamic loader '%s'", loader);
	const char *base = strrchr(s->interp, '/') ? strrchr(s->interp, '/') + 1 : s->interp;
	for (size_t i = 0; s->libs && s->libs[i]; i++) {
		if (STREQ(s->libs[i], base))
			continue;
		_cleanup_free_ char *path = NULL, *rel = NULL, *real = NULL;
		free(TAKE_PTR(buf));
		if (asprintf(&path, "%s/%s", s->libdir, s->libs[i]) < 0 || asprintf(&rel, "%s/%s", s->libdir + 1, s->libs[i]) < 0)
			return -ENOMEM;
		if (!(real = realpath(path, NULL)) || (r = note_needs(s, real)) < 0)
			return r == -ENOMEM ? r : -ENOENT;
		if ((r = read_file(real, NATIVE_FILE_MAX, &buf, &len)) < 0 || (r = write_below(root, rel, buf, len, 0644)) < 0)
			return log_errno(r, "cannot copy '%s'", real);
		s->copied++;
	}
	return 0;
}

int native_tools_prepare(const struct profile *p, const char *dir, char **ret_env)
{
	*ret_env = NULL;
	if (p->arch == arch_host())
		return 0;
	const char *off = getenv("PMOVES_NATIVE_TOOLS");
	if (off && STREQ(off, "0")) {
		log_info("rootfs: every program runs under qemu-user (PMOVES_NATIVE_TOOLS=0)");
		return 0;
	}
	_cleanup_free_ char *codename = host_codename();
	if (!codename || !STREQ(codename, p->rootfs.suite)) {
		log_info("rootfs: every program runs under qemu-user: this machine runs %s, not %s, so its programs "
			 "are not the image's",
			 codename ? codename : "no released Debian (no VERSION_CODENAME and VERSION_ID)",
			 p->rootfs.suite);
		return 0;
	}
	for (size_t i = 0; p->rootfs.packages && p->rootfs.packages[i]; i++)
		if (STREQ(p->rootfs.packages[i], "dracut") || STREQ(p->rootfs.packages[i], "dracut-core")) {
			log_info("rootfs: every program runs under qemu-user: dracut copies programs such as sed and "
				 "ls into the initramfs by name");
			return 0;
		}
	_cleanup_free_ char *top = NULL, *env = NULL, *libdir = NULL;
	if (asprintf(&top, "%s/native", dir) < 0 || asprintf(&env, "PMOVES_NATIVE=%s", top) < 0)
		return -ENOMEM;
	struct stage s = { .dir = top };
	int r = 0;
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(packages); i++)
		if ((r = stage_package(&s, packages[i].package, packages[i].only)) == -ENOENT)
			r = 0; /* not installed here: its programs run emulated */
	if (r == 0 && s.programs && !(libdir = realpath(s.interp, NULL)))
		r = -ENOENT;
	if (r == 0 && s.programs) {
		*strrchr(libdir, '/') = '\0';
		s.libdir = libdir;
		r = plain_path(libdir) ? stage_libraries(&s) : -EINVAL;
	}
	_cleanup_free_ char *dirs = NULL;
	if (r == 0 && s.programs && asprintf(&dirs, NATIVE_DIR "\n%s\n", libdir + 1) < 0)
		r = -ENOMEM;
	if (r == 0 && s.programs &&
	    ((r = write_below(top, "dirs", dirs, strlen(dirs), 0644)) < 0 ||
	     (r = write_below(top, "install", install_sh, sizeof(install_sh) - 1, 0644)) < 0 ||
	     (r = write_below(top, "restore", restore_sh, sizeof(restore_sh) - 1, 0644)) < 0))
		r = log_errno(r, "cannot write the native programs' hooks into '%s'", top);
	size_t programs = s.programs, libs = s.copied;
	free(s.interp);
	strv_free(s.libs);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || programs == 0) {
		log_info("rootfs: every program runs under qemu-user: this machine's could not be staged (%s)",
			 r < 0 ? strerror(-r) : "none found");
		rm_rf(top);
		return 0;
	}
	log_info("rootfs: %zu programs of this machine's (%s %s) with %zu libraries stand in for the image's while "
		 "its packages install",
		 programs, codename, arch_host()->debian, libs);
	*ret_env = TAKE_PTR(env);
	return 0;
}

/* The ELF machine of the file starting with H (N bytes), or 0 when it is no ELF file. */
static unsigned elf_machine_of(const unsigned char *h, size_t n)
{
	if (n < 20 || memcmp(h, ELFMAG, SELFMAG) != 0)
		return 0;
	return h[EI_DATA] == ELFDATA2MSB ? (unsigned)h[18] << 8 | h[19] : (unsigned)h[19] << 8 | h[18];
}

static int host_elf(const char *initrd, const char *path, unsigned host)
{
	log_error("the initramfs '%s' holds '%s', a program for this machine's architecture (ELF machine %u), not "
		  "the image's: the initramfs generator copied one of this machine's programs, which stood in for "
		  "the image's while it ran; build with PMOVES_NATIVE_TOOLS=0",
		  initrd, path ? path : "(a name this locale cannot show)", host);
	return -EINVAL;
}

static size_t hex8(const unsigned char *p)
{
	size_t v = 0;
	for (int i = 0; i < 8; i++) {
		int d = hex_digit((char)p[i]);
		if (d < 0)
			return SIZE_MAX;
		v = v << 4 | (size_t)d;
	}
	return v;
}

/* The uncompressed cpio archives (newc) at the start of an initramfs, as the kernel reads them
 * (an early microcode archive, for one), each file checked; *RET_END where the rest (compressed)
 * begins. */
static int check_newc(const unsigned char *buf, size_t len, const char *initrd, unsigned host, size_t *ret_end)
{
	size_t off = 0;
	for (;;) {
		while (len - off >= 4 && memcmp(buf + off, "\0\0\0\0", 4) == 0)
			off += 4;
		if (len - off < 110 || (memcmp(buf + off, "070701", 6) != 0 && memcmp(buf + off, "070702", 6) != 0))
			break;
		size_t size = hex8(buf + off + 54), namesize = hex8(buf + off + 94);
		if (size == SIZE_MAX || namesize == SIZE_MAX || namesize == 0 || namesize > len - off - 110)
			break;
		const char *name = (const char *)buf + off + 110;
		size_t data = (off + 110 + namesize + 3) & ~(size_t)3;
		if (data > len || size > len - data || name[namesize - 1] != '\0')
			break;
		if (elf_machine_of(buf + data, size) == host)
			return host_elf(initrd, name, host);
		off = (data + size + 3) & ~(size_t)3;
		if (off > len)
			off = len;
	}
	*ret_end = off;
	return 0;
}

int native_tools_check_initrd(const void *initrd, size_t len, const char *name, unsigned host)
{
	size_t end = 0;
	int r = check_newc(initrd, len, name, host, &end);
	if (r < 0 || end >= len)
		return r;
	struct archive *a = archive_read_new();
	if (!a)
		return -ENOMEM;
	archive_read_support_filter_all(a);
	archive_read_support_format_cpio(a);
	struct archive_entry *e;
	bool ok = archive_read_open_memory(a, (const char *)initrd + end, len - end) == ARCHIVE_OK;
	/* (ARCHIVE_WARN: a name libarchive cannot convert to this locale, read all the same) */
	while (ok && r == 0) {
		int ar = archive_read_next_header(a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		unsigned char h[20];
		la_ssize_t n = 0;
		if (!(ok = ar >= ARCHIVE_WARN) ||
		    (archive_entry_filetype(e) == AE_IFREG && !(ok = (n = archive_read_data(a, h, sizeof(h))) >= 0)))
			break;
		if (elf_machine_of(h, (size_t)n) == host)
			r = host_elf(name, archive_entry_pathname(e), host);
	}
	if (!ok)
		log_error("cannot read the initramfs '%s': %s", name, archive_error_string(a)), r = -EINVAL;
	archive_read_free(a);
	return r;
}

/* One regular file of the tarball, its first N bytes read into H: a name or a program of this
 * machine's left behind, and, for an initramfs, what is in it. */
static int check_entry(struct archive *a, struct archive_entry *e, const unsigned char *h, size_t n)
{
	const char *path = archive_entry_pathname(e);
	if (path && strstr(path, NATIVE_DIR)) {
		log_error("'%s' was left in the image by the native programs' restore", path);
		return -EINVAL;
	}
	bool initrd = path && str_starts_with(path + (str_starts_with(path, "./") ? 2 : 0), "boot/initrd.img-");
	bool staged = elf_machine_of(h, n) == arch_host()->elf_machine;
	if (!initrd && !staged)
		return 0;
	int64_t size = archive_entry_size(e);
	if (size < (int64_t)n || size > (int64_t)(initrd ? INITRD_MAX : NATIVE_FILE_MAX))
		return initrd ? (log_error("the initramfs '%s' is %lld bytes: not checked", path, (long long)size), -EFBIG)
			      : 0; /* larger than any program staged */
	_cleanup_free_ unsigned char *buf = malloc((size_t)size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, h, n);
	if (archive_read_data(a, buf + n, (size_t)size - n) != (la_ssize_t)((size_t)size - n))
		return log_error("cannot read '%s' in the root's tarball: %s", path, archive_error_string(a)), -EIO;
	if (staged && elf_interp_is(buf, (size_t)size, NATIVE_INTERP)) {
		log_error("'%s' is one of this machine's programs that stood in for the image's: the restore left "
			  "it behind",
			  path ? path : "(a name this locale cannot show)");
		return -EINVAL;
	}
	return initrd ? native_tools_check_initrd(buf, (size_t)size, path, arch_host()->elf_machine) : 0;
}

int native_tools_check(const char *tar)
{
	struct archive *a = archive_read_new();
	if (!a)
		return -ENOMEM;
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	struct archive_entry *e;
	int r = 0;
	bool ok = archive_read_open_filename(a, tar, 1 << 20) == ARCHIVE_OK;
	while (ok && r == 0) {
		int ar = archive_read_next_header(a, &e);
		if (ar == ARCHIVE_EOF)
			break;
		if (!(ok = ar >= ARCHIVE_WARN))
			break;
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		unsigned char h[64];
		la_ssize_t n = archive_read_data(a, h, sizeof(h));
		if (!(ok = n >= 0))
			break;
		r = check_entry(a, e, h, (size_t)n);
	}
	if (!ok)
		log_error("cannot read '%s': %s", tar, archive_error_string(a)), r = -EIO;
	archive_read_free(a);
	return r;
}
