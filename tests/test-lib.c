/* lib/: sha256, crc32, derived UUIDs, size parsing, run_argv. */
#include "download.h"
#include "hash-file.h"
#include "hash.h"
#include "ollama-store.h"
#include "run.h"
#include "tap.h"
#include "util.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/vfs.h>

static const char *hex_of(const void *data, size_t len)
{
	static char hex[65];
	if (sha256_hex_of(data, len, hex) < 0)
		abort();
	return hex;
}

static void test_file_sha256(void);

static void test_sha256(void)
{
	tap_is_str(hex_of("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256 of nothing");
	tap_is_str(hex_of("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 of 'abc'");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	tap_is_str(hex_of(two, strlen(two)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		   "sha256 of the two-block FIPS vector");
	/* In pieces, with a copy finished half way: the digest of what came so far. */
	struct sha256 s, half;
	char got[65], part[65], hex512[129];
	int r = sha256_init(&s);
	r = r ?: sha256_update(&s, two, 20);
	r = r ?: sha256_copy(&half, &s);
	r = r ?: sha256_update(&s, two + 20, strlen(two) - 20);
	r = r ?: sha256_final_hex(&half, part);
	r = r ?: sha256_final_hex(&s, got);
	tap_ok(r == 0 && STREQ(got, hex_of(two, strlen(two))) && STREQ(part, hex_of(two, 20)),
	       "sha256 in pieces, and a copy finished half way");
	sha256_free(&s); /* after final: a no-op */
	tap_ok(sha512_hex_of("abc", 3, hex512) == 0 &&
		       STREQ(hex512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
				     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
	       "sha512 of 'abc' (FIPS 180-2 vector)");

	test_file_sha256();
}

/* A file of LEN bytes: DATA[i] written at OFF[i] (the rest holes), and the same bytes in memory. */
static int sparse_file(char *path, uint64_t len, const uint64_t *off, size_t n, uint8_t **mem)
{
	int fd = mkstemp(path);
	*mem = calloc(1, len);
	if (fd < 0 || !*mem || ftruncate(fd, (off_t)len) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char d[5000];
		for (size_t k = 0; k < sizeof(d); k++)
			d[k] = (char)(i * 31 + k * 7 + 1);
		size_t w = off[i] + sizeof(d) <= len ? sizeof(d) : (size_t)(len - off[i]);
		if (pwrite(fd, d, w, (off_t)off[i]) != (ssize_t)w)
			return -1;
		memcpy(*mem + off[i], d, w);
	}
	return fd;
}

static int count_calls(void *ctx, uint64_t done, uint64_t total)
{
	(void)done;
	(void)total;
	return ++*(int *)ctx >= 1000 ? -ECANCELED : 0;
}

static void test_file_sha256(void)
{
	/* Holes and data at page, block and odd boundaries, ending in either. */
	const uint64_t len = (3u << 20) + 4099;
	const uint64_t off[] = { 0, 4096, 65536 + 7, 1u << 20, (1u << 20) + 5000, (3u << 20) + 100 };
	char path[] = "/tmp/test-lib-XXXXXX";
	uint8_t *mem = NULL;
	int fd = sparse_file(path, len, off, ARRAY_SIZE(off), &mem);
	char got[65] = "", want[65] = "";
	if (fd >= 0 && mem)
		snprintf(want, sizeof(want), "%s", hex_of(mem, len));
	tap_ok(fd >= 0 && sha256_fd(fd, got) == 0 && strcmp(got, want) == 0,
	       "sha256_fd of a sparse file equals the hash of its bytes");

	/* In steps that end inside holes and inside data, as the builder hashes an image that is
	 * still being made. */
	const uint64_t steps[] = { 1, 4096, 4097, 70000, 1u << 20, (1u << 20) + 4000, 2u << 20, len };
	struct file_sha256 h;
	int r = fd < 0 ? -1 : file_sha256_init(&h, fd);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(steps); i++)
		r = file_sha256_to(&h, steps[i], len, NULL, NULL);
	got[0] = '\0';
	if (r == 0)
		r = file_sha256_final(&h, got);
	if (fd >= 0)
		file_sha256_free(&h);
	tap_ok(r == 0 && strcmp(got, want) == 0, "hashed in eight steps: the same digest");

	/* Past the end of the file: an error, not a digest of invented zeros. */
	r = fd < 0 ? -1 : file_sha256_init(&h, fd);
	if (r == 0)
		r = file_sha256_to(&h, len + 1, len + 1, NULL, NULL);
	if (fd >= 0)
		file_sha256_free(&h);
	tap_is_int(r, -EIO, "hashing past the end of the file fails with EIO");

	/* Progress is called, and stops the work when it says so. */
	int calls = 0;
	tap_ok(fd >= 0 && sha256_fd_progress(fd, got, count_calls, &calls) == 0 && calls >= 2,
	       "progress is reported while hashing");
	calls = 997;
	tap_is_int(fd < 0 ? 0 : sha256_fd_progress(fd, got, count_calls, &calls), -ECANCELED,
		   "a progress callback's error stops the hashing and is returned");
	free(mem);
	if (fd >= 0)
		close(fd);
	unlink(path);

	/* A file that is all hole, and an empty one. */
	char p2[] = "/tmp/test-lib-XXXXXX";
	fd = sparse_file(p2, 5u << 20, NULL, 0, &mem);
	tap_ok(fd >= 0 && mem && sha256_fd(fd, got) == 0 && strcmp(got, hex_of(mem, 5u << 20)) == 0,
	       "a file that is one hole hashes as its zeros");
	tap_ok(fd >= 0 && ftruncate(fd, 0) == 0 && sha256_fd(fd, got) == 0 &&
		       STREQ(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
	       "an empty file hashes as nothing");
	free(mem);
	if (fd >= 0)
		close(fd);
	unlink(p2);
	tap_is_int(sha256_file("/nonexistent/pmoves", got), -ENOENT, "a missing file: ENOENT");
}

static void test_ids(void)
{
	tap_is_int(crc32_ieee(0, "123456789", 9), 0xcbf43926, "crc32 check value");
	uint8_t a[16], b[16], c[16];
	uuid_derive("p/s", "part-uuid:root", a);
	uuid_derive("p/s", "part-uuid:root", b);
	uuid_derive("p/t", "part-uuid:root", c);
	tap_ok(memcmp(a, b, 16) == 0 && memcmp(a, c, 16) != 0, "derived UUIDs depend on the seed, only on it");
	tap_ok((a[6] >> 4) == 8 && (a[8] & 0xc0) == 0x80, "derived UUIDs are RFC 9562 version 8, variant 10");
	char text[37];
	uint8_t back[16];
	uuid_format(a, text);
	tap_ok(uuid_parse(text, back) == 0 && memcmp(a, back, 16) == 0, "uuid_format and uuid_parse round-trip");
	tap_ok(uuid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93", back) < 0 &&
		       uuid_parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93bx", back) < 0 &&
		       uuid_parse("c12a7328xf81f-11d2-ba4b-00a0c93ec93b", back) < 0,
	       "uuid_parse rejects bad text");
}

static void test_sizes(void)
{
	static const struct {
		const char *s;
		int r;
		uint64_t v;
	} cases[] = {
		{ "512", 0, 512 },	   { "256M", 0, 256ull << 20 },	  { "4G", 0, 4ull << 30 }, { "1T", 0, 1ull << 40 },
		{ "2MiB", 0, 2ull << 20 }, { "12Q", -EINVAL, 0 },	  { "-1G", -EINVAL, 0 },   { "", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },    { "99999999T", -ERANGE, 0 }, { "G", -EINVAL, 0 },
		{ "18446744073709551616", -ERANGE, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;
		int r = parse_size(cases[i].s, &v);
		tap_ok(r == cases[i].r && (r < 0 || v == cases[i].v), "parse_size(\"%s\")", cases[i].s);
	}
	char buf[24];
	format_size(4ull << 30, buf);
	tap_is_str(buf, "4G", "format_size 4 GiB");
	format_size(1536ull << 20, buf);
	tap_is_str(buf, "1536M", "format_size 1536 MiB");
	tap_ok(valid_name("base-debian", 64) && !valid_name("../x", 64) && !valid_name("-x", 64) && !valid_name("a b", 64),
	       "valid_name");
}

static void test_read_file(void)
{
	char path[] = "/tmp/test-lib-read-XXXXXX";
	int fd = mkstemp(path);
	char *buf = NULL;
	size_t len = 0;
	tap_ok(fd >= 0 && write(fd, "0123456789", 10) == 10, "a 10-byte file");
	tap_ok(read_file(path, 10, &buf, &len) == 0 && len == 10 && strcmp(buf, "0123456789") == 0,
	       "read_file reads a file of exactly its limit");
	free(buf);
	buf = NULL;
	tap_is_int(read_file(path, 9, &buf, &len), -EFBIG, "read_file refuses a file over its limit");
	int rfd = open(path, O_RDONLY);
	tap_ok(rfd >= 0 && read_fd(rfd, 10, &buf, &len) == 0 && len == 10, "read_fd reads to the end");
	free(buf);
	if (rfd >= 0)
		close(rfd);
	if (fd >= 0)
		close(fd);
	unlink(path);
}


static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "not ok - a read hung (alarm after 10 s)\nBail out! a read hung\n";
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/* read_file on what is not a regular file: a FIFO with no writer, a directory, a device, a
 * file past the limit. A FIFO blocked the open forever: the alarm turns a hang into a failure. */
static void test_read_file_special(void)
{
	char dir[] = "/tmp/test-lib-special-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	_cleanup_free_ char *fifo = strdupf("%s/fifo", dir), *big = strdupf("%s/big", dir),
			    *link = strdupf("%s/link", dir);
	char *buf = NULL;
	signal(SIGALRM, on_alarm);
	alarm(10);
	tap_ok(mkfifo(fifo, 0600) == 0, "a FIFO with no writer");
	int r = read_file(fifo, 1 << 20, &buf, NULL);
	tap_ok(r < 0 && !buf, "read_file of a FIFO fails at once (%d)", r);
	r = read_file(dir, 1 << 20, &buf, NULL);
	tap_ok(r < 0 && !buf, "read_file of a directory fails (%d)", r);
	r = read_file("/dev/zero", 1 << 20, &buf, NULL);
	tap_ok(r < 0 && !buf, "read_file of a device fails (%d)", r);
	int fd = open(big, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	tap_ok(fd >= 0 && ftruncate(fd, (off_t)1 << 40) == 0, "a sparse file of 1 TiB");
	if (fd >= 0)
		close(fd);
	tap_is_int(read_file(big, 1 << 20, &buf, NULL), -EFBIG, "read_file refuses it by its size, reading nothing");
	/* The flags a caller adds: O_NOFOLLOW for a path from an image. */
	tap_ok(symlink(fifo, link) == 0, "a symlink to the FIFO");
	tap_is_int(read_file_flags(link, O_NOFOLLOW, 1 << 20, &buf, NULL), -ELOOP,
		   "read_file_flags(O_NOFOLLOW) does not follow a symlink");
	alarm(0);
	rm_rf(dir);
}

/* write_file_atomic: its temp file is new, whatever sits at a name it could guess. */
static void test_write_atomic(void)
{
	char dir[] = "/tmp/test-lib-atomic-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	_cleanup_free_ char *path = strdupf("%s/state.json", dir), *victim = strdupf("%s/victim", dir),
			    *old_tmp = strdupf("%s/state.json.tmp-%d", dir, (int)getpid()), *text = NULL;
	/* The old predictable name as a symlink to a file that must not change. */
	tap_ok(write_file_atomic(victim, "precious", 8, 0644) == 0 && symlink(victim, old_tmp) == 0,
	       "a symlink planted at '<path>.tmp-<pid>'");
	int r = write_file_atomic(path, "new", 3, 0640);
	tap_is_int(r, 0, "write_file_atomic writes past a planted symlink");
	tap_ok(read_file(victim, 100, &text, NULL) == 0 && STREQ(text, "precious"), "the symlink's target is untouched");
	free(TAKE_PTR(text));
	tap_ok(read_file(path, 100, &text, NULL) == 0 && STREQ(text, "new"), "the file has the new content");
	free(TAKE_PTR(text));
	struct stat st;
	mode_t old_mask = umask(0);
	tap_ok(write_file_atomic(path, "mode", 4, 0640) == 0 && stat(path, &st) == 0 && (st.st_mode & 07777) == 0640,
	       "its mode is the one asked for, umask 0 (%04o)", (unsigned)(st.st_mode & 07777));
	umask(old_mask);

	/* A planted regular file (a hard link to a victim would do the same): written through, it
	 * became the result, an inode its planter can still open. */
	unlink(old_tmp);
	int planted = open(old_tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	struct stat pst;
	tap_ok(planted >= 0 && fstat(planted, &pst) == 0, "a regular file planted at '<path>.tmp-<pid>'");
	r = write_file_atomic(path, "again", 5, 0600);
	tap_ok(r == 0 && stat(path, &st) == 0 && st.st_ino != pst.st_ino && fstat(planted, &pst) == 0 && pst.st_size == 0,
	       "the result is a new file, the planted one unwritten (%d)", r);
	if (planted >= 0)
		close(planted);
	_cleanup_strv_ char **left = NULL;
	DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));)
		if (de->d_name[0] != '.' && !STREQ(de->d_name, "state.json") && !STREQ(de->d_name, "victim") &&
		    !STREQ(de->d_name, strrchr(old_tmp, '/') + 1) && strv_push(&left, de->d_name) < 0)
			abort();
	if (d)
		closedir(d);
	tap_ok(!left, "no temp file left behind (%s)", left ? left[0] : "none");
	rm_rf(dir);
}

static void test_run(void)
{
	char *out = NULL;
	char *echo[] = { "printf", "%s|", "a b", "c'd", NULL };
	struct run_opts o = { .capture = &out };
	tap_is_int(run_argv(echo, &o), 0, "run_argv runs a program from argv");
	tap_is_str(out, "a b|c'd|", "arguments reach it unsplit, unquoted");
	free(out);
	char *fail[] = { "false", NULL }, *missing[] = { "pmoves-no-such-program", NULL };
	tap_is_int(run_argv(fail, NULL), 1, "exit status is returned");
	tap_is_int(run_argv(missing, NULL), 127, "a missing program gives 127");
	char *s = argv_to_string(echo);
	tap_is_str(s, "printf '%s|' 'a b' 'c'\\''d'", "argv_to_string quotes for a log line");
	free(s);

	/* A file the kernel cannot execute (no ELF, no "#!") is never run by a shell, which
	 * execvp does: it would create the marker. By path and through PATH. */
	char dir[] = "/tmp/test-run-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	_cleanup_free_ char *prog = NULL, *marker = NULL, *path_env = NULL, *plain = NULL;
	if (asprintf(&prog, "%s/pmoves-not-elf", dir) < 0 || asprintf(&marker, "%s/ran", dir) < 0 ||
	    asprintf(&path_env, "PATH=%s", dir) < 0 || asprintf(&plain, "%s/pmoves-not-executable", dir) < 0)
		abort();
	_cleanup_free_ char *script = NULL;
	if (asprintf(&script, "touch %s\n", marker) < 0 || write_file_atomic(prog, script, strlen(script), 0755) < 0 ||
	    write_file_atomic(plain, "x", 1, 0644) < 0)
		abort();
	tap_is_int(run_argv((char *[]){ prog, NULL }, NULL), 126, "a file that is not a program, by path: 126");
	char *const env[] = { path_env, NULL };
	tap_is_int(run_argv((char *[]){ "pmoves-not-elf", NULL }, &(struct run_opts){ .env = env }), 126,
		   "the same found through PATH: 126");
	tap_ok(access(marker, F_OK) < 0, "no shell ran it");
	tap_is_int(run_argv((char *[]){ plain, NULL }, NULL), 126, "a file without x permission: 126");
	unlink(prog), unlink(plain), unlink(marker), rmdir(dir);
}

struct got_lines {
	char text[4096];
	size_t count, cut, longest;
};

static void got_line(char *s, size_t len, bool cut, void *data)
{
	struct got_lines *g = data;
	size_t used = strlen(g->text);
	g->longest = len > g->longest ? len : g->longest;
	for (size_t i = 0; i < len && i < 100 && used + 3 < sizeof(g->text); i++) /* 100 bytes a line */
		g->text[used++] = s[i] ? s[i] : '0'; /* NUL shown as '0' */
	if (used + 2 < sizeof(g->text))
		g->text[used++] = cut ? '~' : '|';
	g->text[used] = '\0';
	g->count++;
	g->cut += cut;
}

/* The line option: output a line at a time, NUL bytes kept, the last line without a newline
 * too, a line past RUN_LINE_MAX cut; with capture, stdout captured and stderr in lines. */
static void test_run_lines(void)
{
	struct got_lines g = { .count = 0 };
	struct run_opts o = { .line = got_line, .line_data = &g };
	char *both[] = { "sh", "-c", "printf 'a\\n\\nb\\000c\\n'; printf 'err\\n' >&2; printf last", NULL };
	tap_is_int(run_argv(both, &o), 0, "lines: exit status");
	tap_ok(STREQ(g.text, "a||b0c|err|last|") || STREQ(g.text, "a||b0c|last|err|") , "lines: each line of stdout and stderr, NUL kept, the last without newline (%s)", g.text);

	g = (struct got_lines){ .count = 0 };
	char *out = NULL;
	o.capture = &out;
	char *split[] = { "sh", "-c", "printf captured; printf 'to the line\\n' >&2", NULL };
	tap_is_int(run_argv(split, &o), 0, "lines with capture: exit status");
	tap_is_str(out, "captured", "lines with capture: stdout captured");
	tap_is_str(g.text, "to the line|", "lines with capture: stderr in lines");
	free(out);

	g = (struct got_lines){ .count = 0 };
	o.capture = NULL;
	char *longline[] = { "sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; printf '\\nnext\\n'", NULL };
	tap_is_int(run_argv(longline, &o), 0, "a long line: exit status");
	tap_ok(g.count == 2 && g.cut == 1 && g.longest == RUN_LINE_MAX && strstr(g.text, "~next|"),
	       "a line past RUN_LINE_MAX is cut there, the next one whole");

	/* The capture cap is not a deadlock while stderr is read too. */
	out = NULL;
	o.capture = &out;
	o.capture_max = 1000;
	char *big[] = { "sh", "-c", "head -c 300000 /dev/zero; echo done >&2", NULL };
	tap_is_int(run_argv(big, &o), -EFBIG, "capture past its cap: -EFBIG, the child not left blocked");
	tap_ok(out == NULL, "... and nothing captured");
}

/* tmpfs_has_room on the filesystems this machine has: /dev/shm is a tmpfs on systemd
 * systems, /proc is not one. */
static void test_tmpfs(void)
{
	struct statfs st;
	if (statfs("/dev/shm", &st) < 0 || st.f_type != TMPFS_MAGIC) {
		tap_skip("tmpfs_has_room on /dev/shm", "/dev/shm is not a tmpfs here");
		tap_skip("tmpfs_has_room past its size", "/dev/shm is not a tmpfs here");
	} else {
		tap_ok(tmpfs_has_room("/dev/shm", 1 << 20), "a tmpfs with room for 1 MiB");
		uint64_t size = (uint64_t)st.f_blocks * (uint64_t)st.f_bsize;
		tap_ok(!tmpfs_has_room("/dev/shm", size + 1), "not past its size");
	}
	tap_ok(!tmpfs_has_room("/proc", 1), "/proc is not a tmpfs");
	tap_ok(!tmpfs_has_room("/nonexistent/pmoves", 1), "a missing directory has no room");
}

/* URLs go through libcurl's parser: the host is the one it would connect to. */
static void test_urls(void)
{
	static const struct {
		const char *url;
		enum url_rule rule;
		bool ok;
	} cases[] = {
		{ "https://example.org/a", URL_HTTPS, true },
		{ "http://example.org/a", URL_HTTPS, false },
		{ "http://example.org/a", URL_PINNED, true },
		{ "http://example.org/a", URL_HTTPS_OR_LOCAL, false },
		{ "http://127.0.0.1:8080/a", URL_HTTPS_OR_LOCAL, true },
		{ "http://127.1.2.3/a", URL_HTTPS_OR_LOCAL, true },
		{ "http://localhost/a", URL_HTTPS_OR_LOCAL, true },
		{ "http://LocalHost:80/a", URL_HTTPS_OR_LOCAL, true },
		{ "http://[::1]:8080/a", URL_HTTPS_OR_LOCAL, true },
		{ "http://[::2]/a", URL_HTTPS_OR_LOCAL, false },
		/* userinfo that looks like a loopback host: the host is otherhost */
		{ "http://127.0.0.1:80@otherhost/", URL_HTTPS_OR_LOCAL, false },
		{ "http://127.0.0.1@otherhost/", URL_HTTPS_OR_LOCAL, false },
		{ "http://127.0.0.1.evil.example/", URL_HTTPS_OR_LOCAL, false },
		{ "http://localhost.evil.example/", URL_HTTPS_OR_LOCAL, false },
		{ "ftp://127.0.0.1/a", URL_HTTPS_OR_LOCAL, false },
		{ "file:///etc/passwd", URL_PINNED, false },
		{ "https://exa mple.org/", URL_HTTPS, false },
		{ "https://example.org/a\n", URL_HTTPS, false },
		{ "not a url", URL_PINNED, false },
		{ "", URL_PINNED, false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *why = NULL;
		int r = url_check(cases[i].url, cases[i].rule, &why);
		tap_ok(cases[i].ok ? r == 0 && !why : r == -EINVAL && why, "url_check '%s' (rule %d): %s (%s)",
		       cases[i].url, cases[i].rule, cases[i].ok ? "allowed" : "refused", why ? why : "ok");
	}
	static const struct {
		const char *url, *shown;
	} shown[] = {
		{ "https://user:s3cret@example.org:8443/p/config.json?token=abc#frag", "https://example.org:8443/p/config.json" },
		{ "http://127.0.0.1/x", "http://127.0.0.1/x" },
		{ "https://example.org", "https://example.org/" },
		{ "nonsense", "(an invalid URL)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(shown); i++) {
		_cleanup_free_ char *s = url_shown(shown[i].url);
		tap_is_str(s, shown[i].shown, "url_shown without user:password, query and fragment");
	}
	_cleanup_free_ char *why = NULL;
	url_check("http://user:pw-secret@example.org/?tok=1", URL_HTTPS, &why);
	tap_ok(why && !strstr(why, "pw-secret") && !strstr(why, "tok=1"), "a refusal does not show the password or query (%s)",
	       why ? why : "");
}

/* Model names to store paths, as Ollama lays them out, and manifests. */
static void test_ollama_store(void)
{
	static const struct {
		const char *name, *shown, *rel;
	} good[] = {
		{ "llama3.2:3b", "llama3.2:3b", "manifests/registry.ollama.ai/library/llama3.2/3b" },
		{ "llama3.2", "llama3.2:latest", "manifests/registry.ollama.ai/library/llama3.2/latest" },
		{ "library/qwen2.5:0.5b", "qwen2.5:0.5b", "manifests/registry.ollama.ai/library/qwen2.5/0.5b" },
		{ "fleet/tiny:1b", "fleet/tiny:1b", "manifests/registry.ollama.ai/fleet/tiny/1b" },
		{ "hf.co/org/model-GGUF:Q4_K_M", "hf.co/org/model-GGUF:Q4_K_M", "manifests/hf.co/org/model-GGUF/Q4_K_M" },
		{ "registry.ollama.ai/library/x:_t", "x:_t", "manifests/registry.ollama.ai/library/x/_t" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char *shown = NULL, *rel = NULL;
		int r = ollama_name(good[i].name, &shown, &rel);
		tap_ok(r == 0 && STREQ(shown, good[i].shown) && STREQ(rel, good[i].rel), "ollama_name '%s': '%s', '%s'", good[i].name,
		       shown ? shown : "?", rel ? rel : "?");
		free(shown), free(rel);
	}
	static const char *const bad[] = { "", "../x", "a/../b", "./x", "x:", "x:..", "a/b/c/d", "a//b", "x/", ".x", "x:a/b",
					   "x y", "-x", "x:.t",
					   "a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *shown = NULL, *rel = NULL;
		tap_is_int(ollama_name(bad[i], &shown, &rel), -EINVAL, "ollama_name refuses '%s'", bad[i]);
	}

	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
	char *text = strdupf("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\",\"size\":12},"
			    "\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:%s\",\"size\":4096}]}",
			    h1, h2);
	struct ollama_manifest m;
	tap_ok(ollama_manifest_parse(text, &m) == 0 && m.n == 2 && STREQ(m.hex[0], h1) && m.size[0] == 12 && STREQ(m.hex[1], h2) &&
		       m.size[1] == 4096,
	       "a manifest: config first, then the layers, with their sizes");
	free(text);
	static const char *const not[] = {
		"[]", "{\"layers\": []}", "{\"config\": {\"digest\": \"sha256:11\", \"size\": 1}, \"layers\": []}",
		"{\"config\": {\"digest\": \"md5:1111\", \"size\": 1}, \"layers\": []}",
		"{\"config\": {\"digest\": \"sha256:1111111111111111111111111111111111111111111111111111111111111111\", \"size\": -1}, \"layers\": []}",
		"{\"config\": {\"digest\": \"sha256:1111111111111111111111111111111111111111111111111111111111111111\", \"size\": \"1\"}, \"layers\": []}",
		"{\"config\": {\"digest\": \"sha256:../../../../etc/passwd111111111111111111111111111111111111111111\", \"size\": 1}, \"layers\": []}",
		"not json",
	};
	for (size_t i = 0; i < ARRAY_SIZE(not); i++)
		tap_is_int(ollama_manifest_parse(not[i], &m), -EBADMSG, "not a manifest (%zu)", i);
	FILE *f = open_memstream(&text, &(size_t){ 0 });
	fprintf(f, "{\"config\": {\"digest\": \"sha256:%s\", \"size\": 1}, \"layers\": [", h1);
	for (int i = 0; i < OLLAMA_BLOBS_MAX; i++)
		fprintf(f, "%s{\"digest\": \"sha256:%s\", \"size\": 1}", i ? "," : "", h2);
	fputs("]}", f);
	fclose(f);
	tap_is_int(ollama_manifest_parse(text, &m), -E2BIG, "more than %d blobs: refused", OLLAMA_BLOBS_MAX);
	free(text);
}

/* openat2 with RESOLVE_IN_ROOT refuses ("EAGAIN") a ".." it could not check against a rename
 * made meanwhile, anywhere on the system; openat2_retry tries again. A thread renames a file
 * to and fro while the opens go through "d/../f". */
static volatile bool renaming;
static void *renamer(void *dir)
{
	char *a = strdupf("%s/x", (char *)dir), *b = strdupf("%s/y", (char *)dir);
	while (renaming)
		if (rename(a, b) < 0 || rename(b, a) < 0)
			break;
	free(a), free(b);
	return NULL;
}

static void test_openat2_retry(void)
{
	char dir[] = "/tmp/test-openat2-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	char *d = strdupf("%s/d", dir), *f = strdupf("%s/f", dir), *x = strdupf("%s/x", dir);
	int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0 || mkdir(d, 0755) < 0 || write_file_atomic(f, "f", 1, 0644) < 0 || write_file_atomic(x, "x", 1, 0644) < 0)
		abort();
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	pthread_t t;
	renaming = true;
	if (pthread_create(&t, NULL, renamer, dir) != 0)
		abort();
	long raw_eagain = 0, failed = 0;
	for (int i = 0; i < 50000; i++) {
		long fd = syscall(SYS_openat2, dfd, "d/../f", &how, sizeof(how));
		if (fd >= 0)
			close((int)fd);
		else if (errno == EAGAIN)
			raw_eagain++;
		int r = openat2_retry(dfd, "d/../f", &how);
		if (r >= 0)
			close(r);
		else
			failed++;
	}
	renaming = false;
	pthread_join(t, NULL);
	if (raw_eagain == 0)
		tap_skip("openat2_retry", "openat2 never said EAGAIN here (no concurrent rename met): nothing to retry");
	else
		tap_ok(failed == 0, "openat2_retry: every open through '..' succeeds while renames go on (openat2 alone: %ld EAGAIN in 50000)",
		       raw_eagain);
	close(dfd);
	unlink(f), unlink(x), rmdir(d), rmdir(dir);
	free(d), free(f), free(x);
}

int main(void)
{
	test_sha256();
	test_urls();
	test_tmpfs();
	test_ids();
	test_sizes();
	test_read_file();
	test_read_file_special();
	test_write_atomic();
	test_run();
	test_run_lines();
	test_ollama_store();
	test_openat2_retry();
	return tap_done();
}
