/* The artifacts step and fb_download() against a local HTTP server on 127.0.0.1 that this
 * test starts (tests/fixtures/artifact-server.py): a stand-in for vendors' download servers,
 * serving files the test makes, with modes for server errors, truncated bodies, slow bodies
 * and servers that ignore Range. Every request is logged, so the tests see retries and
 * resumes. `run --root` on fixture trees; external commands go to a recording stand-in runner
 * (dpkg and other chrooted commands are recorded only; tar runs for real, chrooted into trees
 * that have the host's tar copied in). */
#include "test-fb-lib.h"
#include "fb-fetch.h"
#include "hash-file.h"
#include "run.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#define SIZE 100000
#define ART "/var/cache/pmoves/artifacts"
#define OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"

static char srv[] = "/tmp/test-fb-artifacts-srv-XXXXXX";
static pid_t srv_pid;
static int port, closed_port, closed_fd = -1;
static char *content, sha[65], other_sha[65];

static void hex_of(const void *buf, size_t len, char out[65])
{
	if (sha256_hex_of(buf, len, out) < 0)
		abort();
}

static void put(const char *dir, const char *rel, const void *buf, size_t len, mode_t mode)
{
	char *p = t_strf("%s/%s", dir, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	mkdir_p(p, 0755);
	*slash = '/';
	if (write_file_atomic(p, buf, len, mode) < 0)
		abort();
	free(p);
}

static void server_stop(void)
{
	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
		srv_pid = 0;
	}
	rm_rf(srv);
}

static void server_start(void)
{
	const char *script = "tests/fixtures/artifact-server.py";
	if (access(script, R_OK) < 0)
		tap_skip_all("tests/fixtures/artifact-server.py not found (run from the top of the tree)");
	char *py = NULL;
	if (find_program("python3", &py) < 0)
		tap_skip_all("python3 is not installed");
	if (!mkdtemp(srv))
		abort();
	put(srv, "files/tool", content, SIZE, 0644);
	char *pf = t_strf("%s/port", srv), *files = t_strf("%s/files", srv), *log = t_strf("%s/log", srv);
	put(srv, "log", "", 0, 0644);
	srv_pid = fork();
	if (srv_pid == 0) {
		execl(py, "python3", script, "--port-file", pf, "--files", files, "--log", log, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !port; i++) {
		char *s = t_read(pf, NULL);
		uint64_t v;
		if (s && (s[strcspn(s, "\n")] = '\0', parse_u64(s, &v) == 0))
			port = (int)v;
		free(s);
		if (!port)
			usleep(100000);
	}
	if (!port) {
		server_stop();
		tap_skip_all("the local artifact server did not start");
	}
	/* A closed port: bound, never listening, so nothing else takes it meanwhile. */
	closed_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (closed_fd < 0 || bind(closed_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(closed_fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	closed_port = ntohs(a.sin_port);
	free(pf), free(files), free(log), free(py);
}

static char *server_log(void)
{
	char *s = t_strf("%s/log", srv), *r = t_read(s, NULL);
	free(s);
	return r ? r : strdup("");
}

static void server_log_clear(void)
{
	put(srv, "log", "", 0, 0644);
}

static void tree_runner(const char *root);

/* A tree whose config lists ARTIFACTS (JSON array text), with the runner beside it. */
static char *tree(const char *artifacts)
{
	char *root = t_tree();
	char *cfg = t_strf("{" OFF ", \"artifacts\": %s}\n", artifacts);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	tree_runner(root);
	return root;
}

static void tree_runner(const char *root)
{
	char *runner = t_beside(root, "runner"), *calls = t_beside(root, "calls");
	char *script = t_strf("#!/bin/sh\n# stand-in runner: records argv; gpg and tar (also tar chrooted into the tree, the\n"
			      "# tree's own: t_tree_program) run for real; dpkg and the rest only recorded\n"
			      "echo \"$*\" >> %s\ncase \"$1\" in gpg|tar) exec \"$@\";; esac\n"
			      "[ \"$1\" = chroot ] && [ \"$3\" = tar ] && exec \"$@\"\nexit 0\n",
			      calls);
	if (write_file_atomic(runner, script, strlen(script), 0755) < 0)
		abort();
	free(runner), free(calls), free(script);
}

static struct t_result run(const char *root)
{
	char *runner = t_beside(root, "runner");
	char *env = t_strf("PMOVES_FIRSTBOOT_RUNNER=%s", runner);
	free(runner);
	struct t_result r = t_run(root, env);
	free(env);
	return r;
}

static char *one(const char *name, const char *mode, const char *sha256, const char *extra)
{
	return t_strf("[{\"name\": \"%s\", \"url\": \"http://127.0.0.1:%d/%s/tool\", \"sha256\": \"%s\", "
		      "\"kind\": \"binary\", \"target\": \"/usr/local/bin/%s\"%s%s}]",
		      name, port, mode, sha256, name, extra ? ", " : "", extra ? extra : "");
}

static bool installed_ok(const char *root, const char *rel, mode_t mode)
{
	char *p = t_strf("%s/%s", root, rel), *buf = NULL;
	size_t len = 0;
	bool ok = read_file(p, 1 << 20, &buf, &len) == 0 && len == SIZE && memcmp(buf, content, SIZE) == 0;
	struct stat st = t_stat(root, rel);
	free(p), free(buf);
	return ok && (st.st_mode & 07777) == mode && S_ISREG(st.st_mode);
}

static void test_good(void)
{
	char *cfg = one("tool", "ok", sha, NULL), *root = tree(cfg);
	server_log_clear();
	struct t_result r = run(root);
	tap_contains(r.out, "step=artifacts state=ok 1 of 1 artifacts installed", "good: the step is ok");
	tap_ok(installed_ok(root, "usr/local/bin/tool", 0755), "good: /usr/local/bin/tool has the content, mode 0755");
	tap_ok(installed_ok(root, ART "/tool", 0644) && !t_exists(root, ART "/tool.part"),
	       "good: the verified file stays in the cache, no .part left");
	char *rec = t_read(root, "var/lib/pmoves/artifacts/tool"), *want = t_strf("%s binary /usr/local/bin/tool\n", sha);
	tap_is_str(rec, want, "good: the install is recorded");
	char *log = server_log();
	tap_is_int((long long)t_count(log, "GET /ok/tool -"), 1, "good: one request, no Range");
	t_result_free(&r);
	server_log_clear();
	r = run(root);
	free(log);
	log = server_log();
	tap_ok(strstr(r.out, "step=artifacts state=skipped") && !*log, "good: a second run skips the step without a request");
	if (!strstr(r.out, "step=artifacts state=skipped"))
		tap_diag("out: %s", r.out);
	t_result_free(&r);
	/* A mode from the config. */
	free(cfg);
	cfg = one("tool2", "ok", sha, "\"mode\": \"0750\"");
	char *root2 = tree(cfg);
	r = run(root2);
	tap_ok(installed_ok(root2, "usr/local/bin/tool2", 0750), "good: \"mode\": \"0750\" is the installed mode");
	t_result_free(&r);
	t_cleanup(root2);
	free(cfg), free(rec), free(want), free(log);
	t_cleanup(root);
}

static void test_mismatch(void)
{
	char *cfg = one("tool", "ok", other_sha, NULL), *root = tree(cfg);
	struct t_result r = run(root);
	tap_contains(r.out, "step=artifacts state=failed artifact 'tool':", "mismatch: the step fails and names the artifact");
	tap_ok(strstr(r.out, sha) && strstr(r.out, other_sha), "mismatch: the message has both hashes");
	if (!(strstr(r.out, sha) && strstr(r.out, other_sha)))
		tap_diag("out: %s", r.out);
	tap_contains(r.out, "nothing installed", "mismatch: says nothing was installed");
	tap_ok(!t_exists(root, "usr/local/bin/tool") && !t_exists(root, ART "/tool") && !t_exists(root, ART "/tool.part") &&
		       !t_exists(root, "var/lib/pmoves/artifacts/tool"),
	       "mismatch: nothing installed, cached or recorded");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

static void test_short(void)
{
	char *cfg = one("tool", "short", sha, NULL), *root = tree(cfg);
	server_log_clear();
	struct t_result r = run(root);
	char *log = server_log(), *resume = t_strf("GET /short/tool bytes=%d-", SIZE / 2);
	tap_contains(r.out, "step=artifacts state=ok", "truncated body: the step is ok in the end");
	tap_ok(t_count(log, "GET /short/tool -") == 1 && strstr(log, resume),
	       "truncated body: retried, resuming at byte %d", SIZE / 2);
	if (!strstr(log, resume))
		tap_diag("log: %s", log);
	tap_ok(installed_ok(root, "usr/local/bin/tool", 0755), "truncated body: the installed file is whole");
	t_result_free(&r);
	free(cfg), free(log), free(resume);
	t_cleanup(root);
	/* Always short (one attempt): pending, the part kept for the next run. */
	cfg = t_strf("[{\"name\": \"tool\", \"url\": \"http://127.0.0.1:%d/short/tool?again\", \"sha256\": \"%s\", "
		     "\"kind\": \"binary\", \"target\": \"/usr/local/bin/tool\", \"attempts\": 1}]",
		     port, sha);
	root = tree(cfg);
	r = run(root);
	struct stat st = t_stat(root, ART "/tool.part");
	tap_ok(strstr(r.out, "step=artifacts state=pending") && st.st_size == SIZE / 2 && !t_exists(root, "usr/local/bin/tool"),
	       "truncated body, one attempt: pending, half the file kept in tool.part, nothing installed");
	t_result_free(&r);
	server_log_clear();
	r = run(root);
	log = server_log();
	tap_ok(strstr(r.out, "step=artifacts state=ok") && strstr(log, "bytes=50000-") && installed_ok(root, "usr/local/bin/tool", 0755),
	       "truncated body: the next run resumes tool.part and installs");
	t_result_free(&r);
	free(cfg), free(log);
	t_cleanup(root);
}

static void test_503(void)
{
	char *cfg = one("tool", "fail2", sha, NULL), *root = tree(cfg);
	server_log_clear();
	double t0 = now_seconds();
	struct t_result r = run(root);
	double took = now_seconds() - t0;
	char *log = server_log();
	tap_contains(r.out, "step=artifacts state=ok", "503 twice: ok in the end");
	tap_is_int((long long)t_count(log, "GET /fail2/tool"), 3, "503 twice: three requests");
	tap_ok(took >= 2.9, "503 twice: with backoff between them (1 s, 2 s; took %.1f s)", took);
	tap_ok(installed_ok(root, "usr/local/bin/tool", 0755), "503 twice: installed");
	t_result_free(&r);
	free(cfg), free(log);
	t_cleanup(root);
}

static void test_slow(void)
{
	char *cfg = one("tool", "slow", sha, "\"timeout\": 3, \"attempts\": 1"), *root = tree(cfg);
	double t0 = now_seconds();
	struct t_result r = run(root);
	double took = now_seconds() - t0;
	tap_contains(r.out, "step=artifacts state=pending artifact 'tool': cannot download", "slow server: pending");
	tap_contains(r.out, "timed out", "slow server: the message says it timed out");
	tap_ok(took >= 2.5 && took < 10, "slow server: stopped at its 3 s deadline (took %.1f s)", took);
	tap_ok(!t_exists(root, "usr/local/bin/tool"), "slow server: nothing installed");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

static void test_resume(void)
{
	char *cfg = one("tool", "ok", sha, NULL), *root = tree(cfg);
	put(root, ART "/tool.part", content, 40000, 0600);
	server_log_clear();
	struct t_result r = run(root);
	char *log = server_log();
	tap_contains(r.out, "step=artifacts state=ok", "resume: ok");
	tap_ok(strstr(log, "GET /ok/tool bytes=40000-") && t_count(log, "GET") == 1, "resume: one request with Range: bytes=40000-");
	if (!strstr(log, "bytes=40000-"))
		tap_diag("log: %s", log);
	tap_ok(installed_ok(root, "usr/local/bin/tool", 0755), "resume: the installed file is whole");
	t_result_free(&r);
	free(log);
	t_cleanup(root);

	/* A part that is not the start of this file: the resumed result fails its hash, then
	 * one download from byte 0. */
	root = tree(cfg);
	char junk[30000];
	memset(junk, 'x', sizeof(junk));
	put(root, ART "/tool.part", junk, sizeof(junk), 0600);
	server_log_clear();
	r = run(root);
	log = server_log();
	tap_ok(strstr(r.out, "step=artifacts state=ok") && strstr(log, "bytes=30000-") && strstr(log, "GET /ok/tool -") &&
		       installed_ok(root, "usr/local/bin/tool", 0755),
	       "resume of a wrong part: its hash fails, downloaded again from the start, installed");
	t_result_free(&r);
	free(log), free(cfg);
	t_cleanup(root);

	/* A server that ignores Range: the whole file again. */
	cfg = one("tool", "norange", sha, NULL);
	root = tree(cfg);
	put(root, ART "/tool.part", content, 40000, 0600);
	r = run(root);
	tap_ok(strstr(r.out, "step=artifacts state=ok") && installed_ok(root, "usr/local/bin/tool", 0755),
	       "resume from a server without Range: downloaded whole, installed");
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

static void test_offline(void)
{
	char *cfg = t_strf("[{\"name\": \"tool\", \"url\": \"http://127.0.0.1:%d/ok/tool\", \"sha256\": \"%s\", "
			   "\"kind\": \"binary\", \"target\": \"/usr/local/bin/tool\", \"bake\": true}]",
			   closed_port, sha);
	char *root = tree(cfg);
	put(root, ART "/tool", content, SIZE, 0644);
	double t0 = now_seconds();
	struct t_result r = run(root);
	double took = now_seconds() - t0;
	tap_contains(r.out, "step=artifacts state=ok 1 of 1", "baked, network off: installed");
	tap_ok(installed_ok(root, "usr/local/bin/tool", 0755) && took < 2,
	       "baked, network off: the file from the cache, no connection tried (%.1f s)", took);
	t_result_free(&r);
	t_cleanup(root);

	/* Not baked, network off: pending, nothing installed, the next artifact not tried. */
	free(cfg);
	cfg = t_strf("[{\"name\": \"a\", \"url\": \"http://127.0.0.1:%d/ok/tool\", \"sha256\": \"%s\", \"kind\": \"binary\", "
		     "\"target\": \"/usr/local/bin/a\", \"attempts\": 2},"
		     " {\"name\": \"b\", \"url\": \"http://127.0.0.1:%d/ok/tool\", \"sha256\": \"%s\", \"kind\": \"binary\", "
		     "\"target\": \"/usr/local/bin/b\"}]",
		     closed_port, sha, closed_port, sha);
	root = tree(cfg);
	t0 = now_seconds();
	r = run(root);
	took = now_seconds() - t0;
	tap_contains(r.out, "step=artifacts state=pending artifact 'a': cannot download", "network off: pending");
	tap_ok(strstr(r.out, "0 installed, 2 pending, 0 failed") && took < 5 && !t_exists(root, "usr/local/bin/a"),
	       "network off: both pending, b not tried after a failed (%.1f s)", took);
	t_result_free(&r);
	free(cfg);
	t_cleanup(root);
}

static void test_kinds(void)
{
	/* A tarball, a .deb and a script from the same server. */
	char *stage = t_strf("%s/stage", srv);
	put(stage, "bin/hello", "#!/bin/sh\necho hello\n", 21, 0755);
	char *tarf = t_strf("%s/files/hello.tar", srv);
	char *targv[] = { "tar", "-C", stage, "-cf", tarf, "bin", NULL };
	struct run_opts ro = { 0 };
	int rr = run_argv(targv, &ro);
	put(srv, "files/pkg.deb", "!<arch>\nstand-in deb\n", 21, 0644);
	put(srv, "files/setup.sh", "#!/bin/sh\necho setup\n", 21, 0644);
	put(srv, "evil/x", "x", 1, 0644);
	char *evil = t_strf("%s/files/evil.tar", srv), *evdir = t_strf("%s/evil", srv);
	char *eargv[] = { "tar", "-C", evdir, "-P", "-cf", evil, "../evil/x", NULL };
	rr |= run_argv(eargv, &ro);
	if (rr != 0) {
		tap_skip("kinds", "tar cannot make the fixtures");
		return;
	}
	char tsha[65], dsha[65], ssha[65], esha[65];
	char *p = t_strf("%s/files/pkg.deb", srv), *q = t_strf("%s/files/setup.sh", srv);
	sha256_file(tarf, tsha), sha256_file(p, dsha), sha256_file(q, ssha), sha256_file(evil, esha);
	char *cfg = t_strf("["
			   "{\"name\": \"hello\", \"url\": \"http://127.0.0.1:%d/ok/hello.tar\", \"sha256\": \"%s\", \"kind\": \"tar\", \"target\": \"/opt/hello\"},"
			   "{\"name\": \"pkg\", \"url\": \"http://127.0.0.1:%d/ok/pkg.deb\", \"sha256\": \"%s\", \"kind\": \"deb\"},"
			   "{\"name\": \"setup\", \"url\": \"http://127.0.0.1:%d/ok/setup.sh\", \"sha256\": \"%s\", \"kind\": \"script\", \"run\": [\"/bin/sh\", \"-e\"]},"
			   "{\"name\": \"kept\", \"url\": \"http://127.0.0.1:%d/ok/setup.sh\", \"sha256\": \"%s\", \"kind\": \"script\"}"
			   "]",
			   port, tsha, port, dsha, port, ssha, port, ssha);
	char *root = tree(cfg);
	if (t_tree_program(root, "tar") < 0)
		abort();
	struct t_result r = run(root);
	char *cp = t_beside(root, "calls"), *calls = t_read(cp, NULL);
	free(cp);
	char *dpkg = t_strf("chroot %s dpkg -i " ART "/pkg\n", root), *sh = t_strf("chroot %s /bin/sh -e " ART "/setup\n", root);
	tap_contains(r.out, "step=artifacts state=ok 4 of 4", "kinds: tar, deb, script and a script not run all ok");
	char *hello = t_read(root, "opt/hello/bin/hello");
	tap_is_str(hello, "#!/bin/sh\necho hello\n", "tar: extracted into the target directory");
	tap_contains(calls, dpkg, "deb: dpkg -i of the cached file, in a chroot on the tree (stand-in runner)");
	tap_contains(calls, sh, "script: run with the configured interpreter argv (stand-in runner)");
	tap_ok(calls && !strstr(calls, "/kept"), "script without 'run': not run, only kept in the cache");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(calls), free(dpkg), free(sh), free(hello);

	cfg = t_strf("[{\"name\": \"evil\", \"url\": \"http://127.0.0.1:%d/ok/evil.tar\", \"sha256\": \"%s\", \"kind\": \"tar\", \"target\": \"/opt/evil\"}]",
		     port, esha);
	root = tree(cfg);
	if (t_tree_program(root, "tar") < 0)
		abort();
	r = run(root);
	tap_contains(r.out, "step=artifacts state=failed artifact 'evil': the entry '../evil/x' would land outside '/opt/evil': nothing extracted",
		     "tar: an entry outside the target is refused");
	tap_ok(!t_exists(root, "opt/evil") && !t_exists(root, "opt/x") && !t_exists(root, "evil"), "tar: nothing extracted");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(stage), free(tarf), free(evil), free(evdir), free(p), free(q);
}

/* --root: a directory of the tree that is a symlink out of it (absolute, or "../.." up past the
 * root) sends no write outside: not the download (fb_download's PATH.part and rename), not the
 * copy of a binary (its directory, temp file and rename), not tar's extraction (the target
 * made, tar -C, and a symlink already inside the target). The step writes inside the tree or
 * fails saying what it could not make. */
static void test_root_escape(void)
{
	char *stage = t_strf("%s/stage", srv), *flat = t_strf("%s/files/flat.tar", srv), tsha[65];
	put(stage, "bin/hello", "#!/bin/sh\necho hello\n", 21, 0755);
	char *targv[] = { "tar", "-C", stage, "--no-recursion", "-cf", flat, "bin/hello", NULL };
	struct run_opts ro = { 0 };
	if (run_argv(targv, &ro) != 0)
		abort();
	sha256_file(flat, tsha);
	static const struct {
		const char *link, *kind, *target, *want;
	} cases[] = {
		{ "var/cache/pmoves", "binary", "/usr/local/bin/tool",
		  "state=failed artifact 'tool': cannot open '/var/cache/pmoves/artifacts/tool.part'" },
		{ "usr/local/bin", "binary", "/usr/local/bin/tool", "state=failed artifact 'tool': cannot open '/usr/local/bin'" },
		{ "opt", "tar", "/opt/hello", "state=failed artifact 'tool': cannot create '/opt/hello'" },
		{ "opt/hello/bin", "tar", "/opt/hello", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		for (int rel = 0; rel < 2; rel++) {
			bool tar = STREQ(cases[i].kind, "tar");
			char *cfg = t_strf("[{\"name\": \"tool\", \"url\": \"http://127.0.0.1:%d/ok/%s\", \"sha256\": \"%s\", \"kind\": \"%s\", \"target\": \"%s\"}]",
					   port, tar ? "flat.tar" : "tool", tar ? tsha : sha, cases[i].kind, cases[i].target);
			char *root = tree(cfg), *sentinel = t_beside(root, "sentinel");
			if (tar && t_tree_program(root, "tar") < 0)
				abort();
			t_escape_link(root, cases[i].link, sentinel, rel);
			struct t_result r = run(root);
			tap_is_int((long long)t_dir_entries(sentinel), 0, "--root: %s %s a symlink (%s) out of the tree: nothing written outside",
				   cases[i].kind, cases[i].link, rel ? "../.." : "absolute");
			if (cases[i].want)
				tap_contains(r.out, cases[i].want, "--root: %s through %s (%s): fails saying what it could not make",
					     cases[i].kind, cases[i].link, rel ? "../.." : "absolute");
			else {
				char *in = t_read(root, "opt/hello/bin/hello");
				tap_ok(strstr(r.out, "state=failed") || (in && strstr(in, "echo hello")),
				       "--root: tar over %s (%s): extracted inside the tree or failed", cases[i].link,
				       rel ? "../.." : "absolute");
				free(in);
			}
			t_result_free(&r);
			t_cleanup(root);
			free(cfg), free(sentinel);
		}
	free(stage), free(flat);
}

static void test_schema(void)
{
	static const struct {
		const char *json, *want, *what;
	} cases[] = {
		{ "[{\"name\": \"t\", \"url\": \"https://example.org/t\", \"kind\": \"binary\", \"target\": \"/usr/bin/t\"}]",
		  ".artifacts[0].sha256: is required", "no sha256: refused" },
		{ "[{\"name\": \"t\", \"url\": \"http://example.org/t\", \"sha256\": \"%s\", \"kind\": \"binary\", \"target\": \"/usr/bin/t\"}]",
		  ".artifacts[0].url: 'http://example.org/t' is not an https:// URL", "http to a remote host: refused" },
		{ "[{\"name\": \"t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"binary\"}]",
		  ".artifacts[0]: kind 'binary' needs a 'target'", "binary without a target: refused" },
		{ "[{\"name\": \"t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"rpm\", \"target\": \"/x\"}]",
		  ".artifacts[0].kind: 'rpm' is not a kind", "unknown kind: refused" },
		{ "[{\"name\": \"../t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"deb\"}]",
		  ".artifacts[0].name: '../t' is not an artifact name", "a name with a slash: refused" },
		{ "[{\"name\": \"t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"deb\"},"
		  " {\"name\": \"t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"deb\"}]",
		  ".artifacts: artifact 't' is listed twice", "a name twice: refused" },
		{ "[{\"name\": \"t\", \"url\": \"https://example.org/t\", \"sha256\": \"%s\", \"kind\": \"deb\", \"timeout\": 0}]",
		  ".artifacts[0].timeout: must be a whole number from 1", "timeout 0: refused" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *cfg = t_strf(cases[i].json, sha, sha);
		char *root = tree(cfg);
		struct t_result r = run(root);
		tap_ok(r.status == 2 && r.err && strstr(r.err, cases[i].want), "schema: %s", cases[i].what);
		if (!(r.err && strstr(r.err, cases[i].want)))
			tap_diag("status %d, err: %s", r.status, r.err ? r.err : "");
		t_result_free(&r);
		free(cfg);
		t_cleanup(root);
	}
}

/* A second server speaking TLS with a certificate for 127.0.0.1 that only SSL_CERT_FILE
 * trusts. Returns its port, 0 when it cannot run; *ret_pid, *ret_cert. */
static int tls_start(pid_t *ret_pid, char **ret_cert)
{
	char *cert = t_strf("%s/cert.pem", srv), *key = t_strf("%s/key.pem", srv), *pf = t_strf("%s/port-tls", srv),
	     *files = t_strf("%s/files", srv), *log = t_strf("%s/log", srv), *py = NULL;
	char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
			 "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key,
			 "-out", cert, NULL };
	struct run_opts ro = { 0 };
	int p = 0;
	if (run_argv(argv, &ro) == 0 && find_program("python3", &py) == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			execl(py, "python3", "tests/fixtures/artifact-server.py", "--port-file", pf, "--files", files, "--log", log,
			      "--cert", cert, "--key", key, (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 100 && !p && pid > 0; i++) {
			char *s = t_read(pf, NULL);
			uint64_t v;
			if (s && (s[strcspn(s, "\n")] = '\0', parse_u64(s, &v) == 0))
				p = (int)v;
			free(s);
			if (!p)
				usleep(100000);
		}
		*ret_pid = pid;
	}
	*ret_cert = cert;
	free(key), free(pf), free(files), free(log), free(py);
	return p;
}

static void test_https(void)
{
	pid_t pid = 0;
	char *cert = NULL;
	int tls = tls_start(&pid, &cert);
	if (!tls) {
		tap_skip("https", "openssl or the TLS server is not available");
		tap_skip("https", "openssl or the TLS server is not available");
	} else {
		char *root = t_tree(), *url = t_strf("https://127.0.0.1:%d/ok/tool", tls), *err = NULL;
		fb_root_set(root);
		struct download_opts o = { .attempts = 3 };
		server_log_clear();
		int r = fb_download(url, "/opt/dl/tool", sha, &o, &err);
		char *log = server_log();
		tap_ok(r == -EIO && err && t_count(log, "GET") == 0 && !t_exists(root, "opt/dl/tool"),
		       "https: a certificate nobody trusts is refused at once, nothing written (%s)", err ? err : "");
		free(err), free(log);
		err = NULL;
		setenv("SSL_CERT_FILE", cert, 1);
		r = fb_download(url, "/opt/dl/tool", sha, &o, &err);
		unsetenv("SSL_CERT_FILE");
		tap_ok(r == 0 && installed_ok(root, "opt/dl/tool", 0644), "https: with SSL_CERT_FILE trusting it, downloaded and verified");
		free(err), free(url);
		fb_root_set("/");
		t_cleanup(root);
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	free(cert);
}

static void test_api(void)
{
	/* fb_download() directly, as the tailnet, tunnel and rustdesk steps call it. */
	char *root = t_tree();
	fb_root_set(root);
	char *url = t_strf("http://127.0.0.1:%d/ok/tool", port), *err = NULL;
	int r = fb_download(url, "/opt/dl/tool", sha, NULL, &err);
	tap_ok(r == 0 && installed_ok(root, "opt/dl/tool", 0644), "fb_download: the file is at the path, verified");
	free(url);
	url = t_strf("http://127.0.0.1:%d/missing/tool", port);
	r = fb_download(url, "/opt/dl/other", sha, NULL, &err);
	tap_ok(r == -EIO && err && strstr(err, "404"), "fb_download: a 404 is -EIO at once, with the status in the message");
	if (err)
		tap_diag("%s", err);
	free(err), free(url);
	err = NULL;
	r = fb_download("https://user:pw-secret@127.0.0.1:1/x", "/opt/dl/x", sha, &(struct download_opts){ .attempts = 1 }, &err);
	tap_ok(r == -ENETUNREACH && err && !strstr(err, "pw-secret"), "fb_download: a refused connection is -ENETUNREACH, no password in the message");
	free(err);
	tap_ok(!fb_download_url_ok("http://10.0.0.1/x") && fb_download_url_ok("http://localhost:8080/x") &&
		       !fb_download_url_ok("http://127.0.0.1.evil.org/x") && fb_download_url_ok("https://pkgs.tailscale.com/x"),
	       "fb_download_url_ok: https, or http to loopback only");
	fb_root_set("/");
	t_cleanup(root);
}

static bool bin_equal(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	bool eq = read_file(a, 1 << 20, &x, &xl) == 0 && read_file(b, 1 << 20, &y, &yl) == 0 && xl == yl && xl > 0 &&
		  memcmp(x, y, xl) == 0;
	free(x), free(y);
	return eq;
}

static int gpg(char *const *argv, char **ret_out)
{
	struct run_opts o = { .capture = ret_out };
	return run_argv(argv, &o);
}

/* The primary key's fingerprint of UID in HOME. */
static char *fingerprint(const char *home, const char *uid)
{
	char *out = NULL, *fp = NULL;
	char *argv[] = { "gpg", "--batch", "--homedir", (char *)home, "--with-colons", "--fingerprint", (char *)uid, NULL };
	if (gpg(argv, &out) == 0 && out) {
		char *p = strstr(out, "\nfpr:");
		if (p) {
			p += 1;
			for (int f = 0; f < 9 && p; f++)
				p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
			if (p)
				fp = strndup(p, 40);
		}
	}
	free(out);
	return fp;
}

static char *apt_config(const char *name, const char *key_url_path, int key_port, const char *fp)
{
	return t_strf("{" OFF ", \"apt_repositories\": [{\"name\": \"%s\", \"url\": \"https://pkgs.example.org/debian\","
		      " \"suite\": \"bookworm\", \"components\": [\"main\"], \"key_url\": \"http://127.0.0.1:%d/ok/%s\","
		      " \"key_fingerprint\": \"%s\"}]}\n",
		      name, key_port, key_url_path, fp);
}

static char *apt_tree(const char *cfg)
{
	char *root = t_tree();
	tree_runner(root);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	return root;
}

#define APT_TESTS 13
static void test_apt(void)
{
	char *home = t_strf("%s/gnupg", srv), *prog = NULL;
	if (find_program("gpg", &prog) < 0) {
		for (int i = 0; i < APT_TESTS; i++)
			tap_skip("apt repositories", "gpg is not installed");
		free(home);
		return;
	}
	free(prog);
	mkdir(home, 0700);
	char *gen1[] = { "gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key",
			 "Stand-in vendor <vendor@example.org>", "ed25519", "sign", "never", NULL };
	char *gen2[] = { "gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key",
			 "Other <other@example.org>", "ed25519", "sign", "never", NULL };
	char *asc = t_strf("%s/files/key.asc", srv), *bin = t_strf("%s/files/key.gpg", srv), *two = t_strf("%s/files/two.asc", srv);
	char *ex1[] = { "gpg", "--batch", "--homedir", home, "--armor", "--output", asc, "--export", "vendor@example.org", NULL };
	char *ex2[] = { "gpg", "--batch", "--homedir", home, "--output", bin, "--export", "vendor@example.org", NULL };
	char *ex3[] = { "gpg", "--batch", "--homedir", home, "--armor", "--output", two, "--export", NULL };
	char *fp = NULL, *fp2 = NULL;
	if (gpg(gen1, NULL) != 0 || gpg(gen2, NULL) != 0 || gpg(ex1, NULL) != 0 || gpg(ex2, NULL) != 0 || gpg(ex3, NULL) != 0 ||
	    !(fp = fingerprint(home, "vendor@example.org")) || !(fp2 = fingerprint(home, "other@example.org"))) {
		for (int i = 0; i < APT_TESTS; i++)
			tap_skip("apt repositories", "gpg cannot make the stand-in vendor keys");
		free(home), free(asc), free(bin), free(two), free(fp);
		return;
	}
	/* The pin as vendors print it: groups of four, lower case here. */
	char spaced[64];
	size_t n = 0;
	for (int i = 0; i < 40; i++) {
		if (i && i % 4 == 0)
			spaced[n++] = ' ';
		spaced[n++] = (char)(fp[i] >= 'A' && fp[i] <= 'F' ? fp[i] - 'A' + 'a' : fp[i]);
	}
	spaced[n] = '\0';

	char *cfg = t_strf("{" OFF ", \"apt_repositories\": ["
			   "{\"name\": \"vendor\", \"url\": \"https://pkgs.example.org/debian\", \"suite\": \"bookworm\", \"components\": [\"main\"],"
			   " \"key_url\": \"http://127.0.0.1:%d/ok/key.asc\", \"key_fingerprint\": \"%s\"},"
			   "{\"name\": \"flat\", \"url\": \"https://pkgs.example.org/flat\", \"suite\": \"stable/\","
			   " \"key_url\": \"http://127.0.0.1:%d/ok/key.gpg\", \"key_fingerprint\": \"%s\"}]}\n",
			   port, spaced, port, fp);
	char *root = apt_tree(cfg);
	struct t_result r = run(root);
	tap_contains(r.out, "step=apt-repositories state=ok 2 of 2 apt repositories added", "apt: two repositories added");
	char *list = t_read(root, "etc/apt/sources.list.d/vendor.list"), *flat = t_read(root, "etc/apt/sources.list.d/flat.list");
	tap_is_str(list, "# Written by pmoves-firstboot (apt-repositories step): change its config, not this file.\n"
			 "deb [signed-by=/etc/apt/keyrings/vendor.gpg] https://pkgs.example.org/debian bookworm main\n",
		   "apt: the source line with signed-by");
	tap_ok(flat && strstr(flat, "deb [signed-by=/etc/apt/keyrings/flat.gpg] https://pkgs.example.org/flat stable/\n"),
	       "apt: a flat repository without components");
	char *ring = t_strf("%s/etc/apt/keyrings/vendor.gpg", root), *ring2 = t_strf("%s/etc/apt/keyrings/flat.gpg", root);
	tap_ok(bin_equal(ring, bin) && bin_equal(ring2, bin),
	       "apt: the keyrings are the binary key (an armored key dearmored, a binary one as it is)");
	t_result_free(&r);
	r = run(root);
	tap_contains(r.out, "step=apt-repositories state=skipped", "apt: a second run skips the step");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(list), free(flat), free(ring), free(ring2);

	/* The other key pinned: nothing written, both fingerprints named. */
	cfg = apt_config("vendor", "key.asc", port, fp2);
	root = apt_tree(cfg);
	r = run(root);
	char *want = t_strf("step=apt-repositories state=failed apt repository 'vendor': the key's fingerprint is %s, but %s is pinned: nothing written", fp, fp2);
	tap_contains(r.out, want, "apt: a key with another fingerprint is refused, both named");
	tap_ok(!t_exists(root, "etc/apt/keyrings/vendor.gpg") && !t_exists(root, "etc/apt/sources.list.d/vendor.list"),
	       "apt: nothing written for a wrong key");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(want);

	/* A key file with two keys, even one holding the pinned key. */
	cfg = apt_config("vendor", "two.asc", port, fp);
	root = apt_tree(cfg);
	r = run(root);
	tap_ok(strstr(r.out, "state=failed apt repository 'vendor': the key file holds 2 keys") &&
		       !t_exists(root, "etc/apt/keyrings/vendor.gpg"),
	       "apt: a key file with two keys is refused");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg);

	/* Refused by the schema. */
	static const struct {
		const char *repo, *want;
	} bad[] = {
		{ "{\"name\": \"v\", \"url\": \"https://x.org/d\", \"suite\": \"bookworm\", \"key_url\": \"https://x.org/k\", \"key_fingerprint\": \"%s\"}",
		  ".apt_repositories[0]: 'components' is required" },
		{ "{\"name\": \"v\", \"url\": \"https://x.org/d\", \"suite\": \"bookworm\", \"components\": [\"main\"], \"key_url\": \"https://x.org/k\", \"key_fingerprint\": \"%.39s\"}",
		  ".apt_repositories[0].key_fingerprint: '" },
		{ "{\"name\": \"v\", \"url\": \"https://x.org/d\", \"suite\": \"bookworm\", \"components\": [\"main\"], \"key_url\": \"https://x.org/k\"}",
		  ".apt_repositories[0].key_fingerprint: is required" },
	};
	bool all = true;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *repo = t_strf(bad[i].repo, fp);
		cfg = t_strf("{" OFF ", \"apt_repositories\": [%s]}\n", repo);
		root = apt_tree(cfg);
		r = run(root);
		if (r.status != 2 || !r.err || !strstr(r.err, bad[i].want)) {
			all = false;
			tap_diag("status %d, err: %s", r.status, r.err ? r.err : "");
		}
		t_result_free(&r);
		t_cleanup(root);
		free(cfg), free(repo);
	}
	tap_ok(all, "apt: no components, a short fingerprint, no fingerprint: refused by the schema");

	/* "packages": installed from the repositories once they are there. The stand-in apt-get
	 * marks a package installed in the tree's dpkg status; "update" fails while a flag is set
	 * (the network is not up). */
	cfg = t_strf("{" OFF ", \"apt_repositories\": [{\"name\": \"vendor\", \"url\": \"https://pkgs.example.org/debian\","
		     " \"suite\": \"bookworm\", \"components\": [\"main\"], \"key_url\": \"http://127.0.0.1:%d/ok/key.asc\","
		     " \"key_fingerprint\": \"%s\", \"packages\": [\"tailscale\", \"vendor-tool\"]}]}\n",
		     port, fp);
	root = apt_tree(cfg);
	char *runner = t_beside(root, "runner"), *callsp = t_beside(root, "calls"), *flagp = t_beside(root, "update-fails");
	char *script = t_strf("#!/bin/sh\n# stand-in runner: records argv; gpg runs for real; plays apt-get on the tree\n"
			      "echo \"$*\" >> %s\n[ \"$1\" = chroot ] && shift 2\n"
			      "case \"$1\" in gpg) exec \"$@\";;\n"
			      "apt-get) [ \"$7\" = update ] && [ -e %s ] && exit 100\n"
			      "  [ \"$7\" = install ] && { shift 7; for p; do printf 'Package: %%s\\nStatus: install ok installed\\n\\n' $p"
			      " >> %s/var/lib/dpkg/status; done; };;\n"
			      "esac\nexit 0\n",
			      callsp, flagp, root);
	write_file_atomic(runner, script, strlen(script), 0755);
	write_file_atomic(flagp, "", 0, 0644);
	t_write(root, "var/lib/dpkg/status", "Package: vendor-tool\nStatus: install ok installed\nVersion: 1\n\n");
	r = run(root);
	tap_ok(strstr(r.out, "step=apt-repositories state=pending 'apt-get update' exited with 100 (no network?): tailscale "
			     "installed on a later run") &&
		       t_exists(root, "etc/apt/sources.list.d/vendor.list"),
	       "apt packages: apt-get update failing: pending, the repository is in place, only the missing package named");
	t_result_free(&r);
	unlink(flagp);
	unlink(callsp);
	r = run(root);
	char *c = t_read(callsp, NULL), *apt_calls = t_strf("chroot %s dpkg --configure -a\n"
							     "chroot %s apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold update\n"
							     "chroot %s apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install tailscale\n",
							     root, root, root);
	tap_ok(strstr(r.out, "step=apt-repositories state=ok 0 of 1 apt repositories added (key fingerprints verified); installed tailscale") &&
		       c && !strncmp(c, apt_calls, strlen(apt_calls)) && !strstr(c + strlen(apt_calls), "apt-get"),
	       "apt packages: the next run: dpkg --configure -a, apt-get update, install of the missing package only, in chroot");
	if (!c || strncmp(c, apt_calls, strlen(apt_calls)))
		tap_diag("calls: %s", c ? c : "(none)");
	t_result_free(&r);
	r = run(root);
	tap_contains(r.out, "step=apt-repositories state=skipped", "apt packages: installed: a later run skips the step");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(runner), free(callsp), free(flagp), free(script), free(c), free(apt_calls);

	/* Key server unreachable: pending. */
	cfg = apt_config("vendor", "key.asc", closed_port, fp);
	root = apt_tree(cfg);
	r = run(root);
	tap_ok(strstr(r.out, "step=apt-repositories state=pending apt repository 'vendor': cannot fetch 'http://127.0.0.1:") &&
		       !t_exists(root, "etc/apt/sources.list.d/vendor.list"),
	       "apt: key server unreachable: pending, nothing written");
	t_result_free(&r);
	t_cleanup(root);
	free(cfg), free(home), free(asc), free(bin), free(two), free(fp), free(fp2);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("run --root writes files owned by root: needs root");
	char *tar = NULL;
	if (find_program("tar", &tar) < 0)
		tap_skip_all("tar is not installed");
	free(tar);
	content = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++)
		content[i] = (char)((i * 13 + 7) % 251);
	hex_of(content, SIZE, sha);
	hex_of(content, SIZE - 1, other_sha);
	server_start();
	tap_plan(69 + APT_TESTS);
	test_good();
	test_mismatch();
	test_short();
	test_503();
	test_slow();
	test_resume();
	test_offline();
	test_kinds();
	test_root_escape();
	test_schema();
	test_api();
	test_https();
	test_apt();
	server_stop();
	free(content);
	return tap_done();
}
