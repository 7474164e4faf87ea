/* elf_set_interp() and the native programs of a foreign build (native-tools.c): staged from
 * this machine's packages, put into a root directory by the install script, run there, and
 * taken out again by the restore script, the root left as it was. The scripts' chroot runs this
 * machine's own programs, so no emulation is needed here; tests/e2e/rootfs-foreign.t builds a
 * real arm64 root with them. */
#include "arch.h"
#include "elf-needs.h"
#include "native-tools.h"
#include "profile.h"
#include "tap.h"
#include "util.h"

#include <archive.h>
#include <archive_entry.h>
#include <elf.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmp[] = "/tmp/pmoves-native-XXXXXX";
static char shortdir[] = "/tmp/pnXXXXXX"; /* for a loader path that fits where /bin/true's was */

static int run(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_set_interp(void)
{
	char *buf = NULL, *old = NULL, *again = NULL;
	size_t len;
	if (read_file("/bin/true", 64u << 20, &buf, &len) < 0) {
		tap_ok(0, "read /bin/true");
		return;
	}
	/* A loader path of ours, short enough for the room /bin/true has (28 bytes on x86_64). */
	_cleanup_free_ char *ld = NULL, *prog = NULL, *missing = NULL;
	if (asprintf(&ld, "%s/ld", shortdir) < 0 || asprintf(&prog, "%s/true", tmp) < 0 ||
	    asprintf(&missing, "%s/no", shortdir) < 0)
		abort();
	char *copy = malloc(len);
	memcpy(copy, buf, len);
	int r = elf_set_interp(copy, len, ld, &old);
	const char *was = old ? old : "-";
	tap_ok(r == 0 && old && old[0] == '/' && strstr(old, "ld-"), "the interpreter moved; the old one returned (%d, %s)",
	       r, was);
	r = old ? symlink(old, ld) : -1;
	tap_ok(r == 0 && write_file_atomic(prog, copy, len, 0755) == 0 && run((char *[]){ prog, NULL }) == 0,
	       "the program runs through the loader at its new path");
	r = elf_set_interp(copy, len, missing, &again);
	const char *now = again ? again : "-";
	tap_ok(r == 0 && again && STREQ(again, ld), "a second change finds the first one (%s)", now);
	tap_ok(write_file_atomic(prog, copy, len, 0755) == 0 && run((char *[]){ prog, NULL }) == 127,
	       "with a loader that is not there, it does not start");
	free(again);

	memcpy(copy, buf, len);
	char longer[256];
	memset(longer, 'x', sizeof(longer) - 1);
	longer[0] = '/';
	longer[sizeof(longer) - 1] = '\0';
	r = elf_set_interp(copy, len, longer, NULL);
	tap_ok(r == -ENAMETOOLONG && memcmp(copy, buf, len) == 0, "an interpreter too long for the room: refused, unchanged");

	/* Malformed images, each refused without a write past the buffer. */
	Elf64_Ehdr eh = { 0 };
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_phentsize = sizeof(Elf64_Phdr);
	tap_is_int(elf_set_interp(&eh, sizeof(eh), "/x", NULL), -ENOENT, "no program headers (static): -ENOENT");
	eh.e_phnum = 4;
	eh.e_phoff = sizeof(eh);
	tap_is_int(elf_set_interp(&eh, sizeof(eh), "/x", NULL), -ENOEXEC, "program headers past the end: -ENOEXEC");
	struct {
		Elf64_Ehdr eh;
		Elf64_Phdr ph;
		char interp[8];
	} f = { .eh = eh };
	f.eh.e_phnum = 1;
	f.ph.p_type = PT_INTERP;
	f.ph.p_offset = offsetof(typeof(f), interp);
	f.ph.p_filesz = 64;
	tap_is_int(elf_set_interp(&f, sizeof(f), "/x", NULL), -ENOEXEC, "an interpreter past the end: -ENOEXEC");
	f.ph.p_filesz = sizeof(f.interp);
	memset(f.interp, 'a', sizeof(f.interp));
	tap_is_int(elf_set_interp(&f, sizeof(f), "/x", NULL), -ENOEXEC, "an interpreter without its NUL: -ENOEXEC");
	memcpy(f.interp, "/ld.so", 7);
	tap_ok(elf_set_interp(&f, sizeof(f), "/abcdef", NULL) == 0 && memcmp(f.interp, "/abcdef", 8) == 0,
	       "an interpreter filling its room exactly, NUL included");
	tap_is_int(elf_set_interp(&f, sizeof(f), "/abcdefg", NULL), -ENAMETOOLONG, "one byte more: -ENAMETOOLONG");
	f.eh.e_ident[EI_CLASS] = ELFCLASS32;
	tap_is_int(elf_set_interp(&f, sizeof(f), "/x", NULL), -ENOEXEC, "a 32-bit ELF file: -ENOEXEC");
	tap_is_int(elf_set_interp((char[]){ "#!/bin/sh\n" }, 10, "/x", NULL), -ENOEXEC, "a script: -ENOEXEC");
	free(copy);
	free(old);
	free(buf);
}

static char *listing(const char *root)
{
	/* Every entry with its type, mode and size, and the contents' checksums. */
	_cleanup_free_ char *out = NULL;
	if (asprintf(&out, "%s/listing", tmp) < 0)
		abort();
	char *argv[] = { "/bin/sh", "-c",
			 "cd \"$1\" && find . -printf '%y %m %s %p -> %l\\n' | LC_ALL=C sort && "
			 "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum",
			 "sh", (char *)root, NULL };
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	char *text = NULL;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    read_file(out, 16u << 20, &text, NULL) < 0)
		return NULL;
	return text;
}

/* A root directory the way mmdebstrap leaves it after extracting the essential packages: here,
 * this machine's own programs (a stand-in for the image's: the scripts move files, they do not
 * care what the files are), dpkg's directory, /usr/lib. */
static int make_root(const char *root)
{
	static const char *const progs[] = { "/bin/dash", "/bin/sed", "/usr/bin/dpkg-deb", "/bin/cat", "/usr/bin/basename" };
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/var/lib/dpkg", root) < 0 || mkdir_p(p, 0755) < 0)
		return -1;
	free(p);
	if (asprintf(&p, "%s/usr/lib", root) < 0 || mkdir_p(p, 0755) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(progs); i++) {
		_cleanup_free_ char *dst = NULL, *dir = NULL;
		if (asprintf(&dst, "%s%s", root, progs[i]) < 0 || !(dir = strdup(dst)))
			return -1;
		*strrchr(dir, '/') = '\0';
		/* The image's file: different bytes from the native program, so a swap shows. */
		if (mkdir_p(dir, 0755) < 0 || write_file_atomic(dst, progs[i], strlen(progs[i]), 0755) < 0)
			return -1;
	}
	/* A diversion of the image's own, which the restore keeps. */
	free(p);
	if (asprintf(&p, "%s/var/lib/dpkg/diversions", root) < 0)
		return -1;
	const char div[] = "/usr/bin/ssh-keygen\n/usr/bin/ssh-keygen.pmoves-build\n:\n";
	if (write_file_atomic(p, div, sizeof(div) - 1, 0644) < 0)
		return -1;
	free(p);
	if (asprintf(&p, "%s/var/lib/dpkg/diversions-old", root) < 0)
		return -1;
	return write_file_atomic(p, div, sizeof(div) - 1, 0644);
}

static void test_stage_and_scripts(void)
{
	const struct arch *other = NULL;
	for (size_t i = 0; arch_at(i); i++)
		if (arch_find(arch_at(i)) != arch_host())
			other = arch_find(arch_at(i));
	_cleanup_free_ char *codename = NULL, *osr = NULL;
	if (read_file("/etc/os-release", 65536, &osr, NULL) == 0) {
		char *v = strstr(osr, "\nVERSION_CODENAME=");
		if (v) {
			v += strlen("\nVERSION_CODENAME=");
			codename = strndup(v, strcspn(v, "\n\""));
		}
	}
	if (!other || !codename || access("/usr/bin/dpkg-deb", X_OK) != 0 || access("/var/lib/dpkg/info/dash.list", R_OK) != 0) {
		for (int i = 0; i < 13; i++)
			tap_skip("native programs staged and put in and out of a root",
				 "no other architecture, os-release codename, dpkg or dash here");
		return;
	}
	_cleanup_free_ char *dir = NULL, *root = NULL, *before = NULL, *after = NULL;
	if (asprintf(&dir, "%s/stage", tmp) < 0 || asprintf(&root, "%s/root", tmp) < 0 || mkdir(dir, 0700) < 0)
		abort();

	struct profile p = { .arch = arch_host() };
	p.rootfs.suite = codename;
	char *env = (char *)"unset";
	tap_ok(native_tools_prepare(&p, dir, &env) == 0 && env == NULL, "the build machine's architecture: none");
	p.arch = other;
	p.rootfs.suite = "no-such-release";
	env = (char *)"unset";
	tap_ok(native_tools_prepare(&p, dir, &env) == 0 && env == NULL, "another release than this machine's: none");
	p.rootfs.suite = codename;
	int r = native_tools_prepare(&p, dir, &env);
	_cleanup_free_ char *want = NULL, *dash = NULL, *ldso = NULL, *uname_ = NULL;
	if (asprintf(&want, "PMOVES_NATIVE=%s/native", dir) < 0)
		abort();
	tap_ok(r == 0 && env && STREQ(env, want), "a foreign build of this release: %s", env ? env : "none");
	if (!env) {
		for (int i = 0; i < 10; i++)
			tap_skip("native programs put in and out of a root", "nothing was staged");
		return;
	}
	free(env);
	if (asprintf(&dash, "%s/native/files/bin/dash", dir) < 0 || asprintf(&ldso, "%s/native/root/.pmoves-native/ld.so", dir) < 0 ||
	    asprintf(&uname_, "%s/native/files", dir) < 0)
		abort();
	char *buf = NULL, *old = NULL;
	size_t len;
	r = read_file(dash, 64u << 20, &buf, &len);
	r = r < 0 ? r : elf_set_interp(buf, len, "/x", &old);
	tap_ok(r == 0 && STREQ(old, "/.pmoves-native/ld.so"), "dash staged, its interpreter /.pmoves-native/ld.so (%s)",
	       old ? old : "-");
	free(buf), free(old);
	tap_ok(access(ldso, X_OK) == 0, "the loader staged");
	/* in whichever directory this machine's release puts them (trixie: all under /usr/bin) */
	bool none = true;
	static const char *const never[] = { "uname", "arch", "stdbuf", "cp" };
	static const char *const dirs[] = { "bin", "usr/bin", "sbin", "usr/sbin" };
	for (size_t i = 0; i < ARRAY_SIZE(never); i++)
		for (size_t j = 0; j < ARRAY_SIZE(dirs); j++) {
			_cleanup_free_ char *f = NULL;
			if (asprintf(&f, "%s/%s/%s", uname_, dirs[j], never[i]) < 0)
				abort();
			none = none && access(f, F_OK) != 0;
		}
	tap_ok(none, "uname, arch, stdbuf and cp are not staged, in any bin directory");

	/* The install script on a root like an extracted one, then the programs run there. */
	tap_ok(make_root(root) == 0 && (before = listing(root)) != NULL, "a root to put them into");
	_cleanup_free_ char *install = NULL, *restore = NULL, *div = NULL, *divs = NULL;
	if (asprintf(&install, "%s/native/install", dir) < 0 || asprintf(&restore, "%s/native/restore", dir) < 0 ||
	    asprintf(&div, "%s/var/lib/dpkg/diversions", root) < 0)
		abort();
	r = run((char *[]){ "/bin/sh", install, root, NULL });
	tap_ok(r == 0 && read_file(div, 1 << 20, &divs, NULL) == 0 && strstr(divs, "/bin/dash\n/bin/dash.pmoves-native\n:\n") &&
		       strstr(divs, "/usr/bin/dpkg-deb\n/usr/bin/dpkg-deb.pmoves-native\n:\n"),
	       "install: exit 0, each program's diversion written (%d)", r);
	tap_ok(run((char *[]){ "/usr/sbin/chroot", root, "/bin/dash", "-c", "echo x | /bin/sed s/x/y/ | /bin/cat", NULL }) == 0,
	       "this machine's dash, sed and cat run inside the root");
	char *moved = NULL;
	_cleanup_free_ char *aside = NULL;
	if (asprintf(&aside, "%s/bin/dash.pmoves-native", root) < 0)
		abort();
	tap_ok(read_file(aside, 4096, &moved, NULL) == 0 && STREQ(moved, "/bin/dash"), "the image's dash moved aside");
	free(moved);
	/* dpkg-divert, run in the image meanwhile, keeps the file it rewrites as diversions-old */
	_cleanup_free_ char *old_div = NULL;
	if (asprintf(&old_div, "%s/var/lib/dpkg/diversions-old", root) < 0)
		abort();
	if (divs)
		write_file_atomic(old_div, divs, strlen(divs), 0644);
	r = run((char *[]){ "/bin/sh", restore, root, NULL });
	after = listing(root);
	tap_ok(r == 0 && after && STREQ(before, after), "restore: exit 0, the root exactly as before (%d)", r);
	if (after && !STREQ(before, after))
		tap_diag("before:\n%s\nafter:\n%s", before, after);
	tap_ok(run((char *[]){ "/bin/sh", restore, root, NULL }) == 0 && (free(after), after = listing(root)) &&
		       STREQ(before, after),
	       "restore again: nothing to do");
}

/* A cpio (newc) archive of FILES (name, ELF machine or 0 for text; NULL-terminated), gzip'd or
 * not, appended at *LEN of BUF. */
struct file {
	const char *name;
	unsigned machine;
};
static void cpio(char *buf, size_t cap, size_t *len, bool gz, const struct file *files)
{
	struct archive *a = archive_write_new();
	archive_write_set_format_cpio_newc(a);
	if (gz)
		archive_write_add_filter_gzip(a);
	else
		archive_write_add_filter_none(a);
	archive_write_set_bytes_in_last_block(a, 1);
	size_t used = 0;
	if (archive_write_open_memory(a, buf + *len, cap - *len, &used) != ARCHIVE_OK)
		abort();
	for (const struct file *f = files; f->name; f++) {
		unsigned char data[64] = "plain text, no ELF file";
		if (f->machine) {
			memset(data, 0, sizeof(data));
			memcpy(data, ELFMAG, SELFMAG);
			data[EI_CLASS] = ELFCLASS64;
			data[EI_DATA] = ELFDATA2LSB;
			data[18] = (unsigned char)(f->machine & 0xff);
			data[19] = (unsigned char)(f->machine >> 8);
		}
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, f->name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0755);
		archive_entry_set_size(e, sizeof(data));
		if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, data, sizeof(data)) != sizeof(data))
			abort();
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	*len += used;
}

static void test_check_initrd(void)
{
	static char buf[1 << 20];
	size_t len = 0;
	cpio(buf, sizeof(buf), &len, true,
	     (struct file[]){ { "init", 0 },
			      { "usr/bin/kmod", EM_AARCH64 },
			      { "usr/lib/libc.so.6", EM_AARCH64 },
			      { "usr/lib/firmware/qcom/adsp.mdt", 164 /* EM_QDSP6: firmware is ELF too */ },
			      { NULL, 0 } });
	tap_is_int(native_tools_check_initrd(buf, len, "a", EM_X86_64), 0,
		   "a compressed initramfs of arm64 programs and ELF firmware, on an x86_64 machine: ok");
	tap_is_int(native_tools_check_initrd(buf, len, "a", EM_AARCH64), -EINVAL, "... on an arm64 machine: refused");

	len = 0; /* an early uncompressed archive (microcode), then the compressed one */
	cpio(buf, sizeof(buf), &len, false, (struct file[]){ { "kernel/x86/microcode/GenuineIntel.bin", 0 }, { NULL, 0 } });
	size_t early = len;
	cpio(buf, sizeof(buf), &len, true, (struct file[]){ { "init", 0 }, { "bin/sh", EM_AARCH64 }, { NULL, 0 } });
	tap_is_int(native_tools_check_initrd(buf, len, "b", EM_X86_64), 0, "early cpio + compressed one, all arm64: ok");
	len = early;
	cpio(buf, sizeof(buf), &len, true, (struct file[]){ { "init", 0 }, { "bin/sh", EM_X86_64 }, { NULL, 0 } });
	tap_is_int(native_tools_check_initrd(buf, len, "c", EM_X86_64), -EINVAL,
		   "an x86_64 program in the compressed archive after the early one: refused");
	len = 0;
	cpio(buf, sizeof(buf), &len, false, (struct file[]){ { "bin/dash", EM_X86_64 }, { NULL, 0 } });
	cpio(buf, sizeof(buf), &len, true, (struct file[]){ { "init", 0 }, { NULL, 0 } });
	tap_is_int(native_tools_check_initrd(buf, len, "d", EM_X86_64), -EINVAL,
		   "an x86_64 program in the early uncompressed archive: refused");
	memset(buf, 0x5a, 4096);
	tap_is_int(native_tools_check_initrd(buf, 4096, "e", EM_X86_64), -EINVAL, "no archive at all: refused");
}

/* native_tools_check on a root's tarball holding ENTRIES (name, bytes, length; NULL-terminated). */
struct entry {
	const char *name;
	const void *data;
	size_t len;
};
static int check_tar(const struct entry *entries)
{
	_cleanup_free_ char *tar = NULL;
	if (asprintf(&tar, "%s/root.tar", tmp) < 0)
		abort();
	struct archive *a = archive_write_new();
	archive_write_set_format_gnutar(a);
	if (archive_write_open_filename(a, tar) != ARCHIVE_OK)
		abort();
	for (const struct entry *x = entries; x->name; x++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, x->name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)x->len);
		if (archive_write_header(a, e) < ARCHIVE_WARN || archive_write_data(a, x->data, x->len) != (la_ssize_t)x->len)
			abort();
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	return native_tools_check(tar);
}

/* native_tools_check on tarballs like a root's (this test runs in the C locale, as the builder
 * may: a name in UTF-8 makes libarchive warn, and it reads on). */
static void test_check_tar(void)
{
	unsigned host = arch_host()->elf_machine, image = host == EM_AARCH64 ? EM_X86_64 : EM_AARCH64;
	static char good[1 << 16], bad[1 << 16];
	size_t good_len = 0, bad_len = 0;
	cpio(good, sizeof(good), &good_len, true, (struct file[]){ { "init", 0 }, { "bin/sh", image }, { NULL, 0 } });
	cpio(bad, sizeof(bad), &bad_len, true, (struct file[]){ { "init", 0 }, { "bin/sh", host }, { NULL, 0 } });
	char *true_ = NULL, *staged = NULL;
	size_t true_len = 0;
	if (read_file("/bin/true", 64u << 20, &true_, &true_len) < 0 || !(staged = malloc(true_len)))
		abort();
	memcpy(staged, true_, true_len);
	int r = elf_set_interp(staged, true_len, "/.pmoves-native/ld.so", NULL);
	static const char pem[] = "not a certificate";
	const struct entry utf8 = { "./etc/ssl/certs/NetLock_Arany_=Class_Gold=_F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem",
				    pem, sizeof(pem) };
	tap_is_int(check_tar((struct entry[]){ utf8, { "./boot/initrd.img-6.1.0-50-arm64", good, good_len },
					       { "./usr/bin/true", true_, true_len }, { NULL, NULL, 0 } }),
		   0, "a root with a UTF-8 name, an initramfs of the image's programs, one of this machine's own: ok");
	tap_is_int(check_tar((struct entry[]){ utf8, { "./boot/initrd.img-6.1.0-50-arm64", bad, bad_len }, { NULL, NULL, 0 } }),
		   -EINVAL, "an initramfs holding a program for this machine: refused");
	tap_ok(r == 0 && check_tar((struct entry[]){ { "./usr/bin/true", staged, true_len }, { NULL, NULL, 0 } }) == -EINVAL,
	       "a program whose interpreter is the stand-ins' loader, left behind: refused");
	tap_is_int(check_tar((struct entry[]){ { "./usr/bin/dash.pmoves-native", pem, sizeof(pem) }, { NULL, NULL, 0 } }),
		   -EINVAL, "a file set aside and left behind: refused");
	free(true_);
	free(staged);
}

int main(void)
{
	if (!mkdtemp(tmp) || !mkdtemp(shortdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (geteuid() != 0)
		tap_skip_all("needs root (chroot)");
	test_set_interp();
	test_stage_and_scripts();
	test_check_initrd();
	test_check_tar();
	int r = tap_done();
	rm_rf(shortdir);
	if (r == 0)
		rm_rf(tmp);
	else
		tap_diag("fixtures left in %s", tmp);
	return r;
}
