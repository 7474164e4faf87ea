/* pmoves-firstboot's text filters on hostile input: the secret filter (one pass, whatever the
 * secrets are), control characters escaped wherever text from a config, a file or status.json
 * reaches a terminal, and URLs shown without user:password and query. A timeout guard turns a
 * filter that loops into a failure instead of a hang. */
#include "fb-report.h"
#include "test-fb-lib.h"

#include <signal.h>

/* Seconds a child may take before it counts as hung. */
#define CHILD_TIMEOUT 10

/* fb_redact(TEXT) with SECRETS, in a child killed after CHILD_TIMEOUT seconds: its output, or
 * NULL when it did not finish (*ret_status: how it ended). */
static char *redact_in_child(char *const *secrets, const char *text, int *ret_status)
{
	int p[2];
	if (pipe(p) < 0)
		abort();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		alarm(CHILD_TIMEOUT);
		fb_report_set_secrets(secrets);
		char *out = fb_redact(text);
		if (!out)
			_exit(1);
		size_t n = strlen(out);
		_exit(write(p[1], out, n) == (ssize_t)n ? 0 : 1);
	}
	close(p[1]);
	char *out = NULL;
	size_t len = 0;
	int r = read_fd(p[0], 1 << 20, &out, &len);
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (r < 0 || *ret_status != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void redact_is(char *const *secrets, const char *text, const char *want, const char *what)
{
	int st;
	char *got = redact_in_child(secrets, text, &st);
	if (!got)
		tap_diag("fb_redact %s (status %d)", st == 128 + SIGALRM ? "hung: killed after the timeout" : "failed", st);
	tap_is_str(got, want, "redact: %s", what);
	free(got);
}

static void test_redact(void)
{
	/* The secret is part of the replacement: a filter that searches again after replacing
	 * never ends. */
	redact_is((char *[]){ "secret", NULL }, "the key is secret, secret!", "the key is (secret), (secret)!",
		  "a secret that is part of '(secret)'");
	redact_is((char *[]){ "(secret)", NULL }, "x (secret) y", "x (secret) y", "the replacement itself as a secret");
	redact_is((char *[]){ "e", NULL }, "see here", "s(secret)(secret) h(secret)r(secret)", "a one-character secret");
	redact_is((char *[]){ "c", "(", ")", "s", NULL }, "(s)", "(secret)(secret)(secret)",
		  "secrets that are the replacement's characters");
	redact_is((char *[]){ "", NULL }, "nothing to hide", "nothing to hide", "an empty secret is ignored");
	redact_is((char *[]){ "", "pw", NULL }, "a pw b", "a (secret) b", "an empty secret among others");
	/* Secrets that are part of each other: the longest that starts at a position wins, in
	 * either order of the list, and a shorter one is not found inside what was replaced. */
	redact_is((char *[]){ "abc", "abcdef", NULL }, "xabcdefx abcx", "x(secret)x (secret)x", "nested secrets, short first");
	redact_is((char *[]){ "abcdef", "abc", NULL }, "xabcdefx abcx", "x(secret)x (secret)x", "nested secrets, long first");
	redact_is((char *[]){ "cde", "abcd", NULL }, "abcdef", "(secret)ef", "overlapping secrets: the one that starts first");
	redact_is((char *[]){ "aa", NULL }, "aaaaa", "(secret)(secret)a", "a secret repeated in the text");
	redact_is((char *[]){ "tskey-auth-XYZ", NULL }, "key tskey-auth-XYZ\nand\ttab", "key (secret) and tab",
		  "one line: newline and tab become spaces");
	redact_is((char *[]){ "k\x1b[2Jk", NULL }, "a k\x1b[2Jk b", "a (secret) b", "a secret holding a control character");
	redact_is(NULL, "a\x1b[2Kb\rc\bd\x7f" "e\xc2\x9b" "31mf\x9bg", "a\\x1b[2Kb\\x0dc\\x08d\\x7fe\\xc2\\x9b31mf\\x9bg",
		  "controls (C0, DEL, C1 as UTF-8 and as a stray byte) escaped, no secrets");
	redact_is(NULL, "caf\xc3\xa9 \xe2\x80\xae" "txt", "caf\xc3\xa9 \\xe2\\x80\\xaetxt",
		  "UTF-8 text kept, a bidirectional override escaped");
}

static void test_escape(void)
{
	char *e = fb_escape("a\tb\nc\x1b" "d", 7, "\t\n");
	tap_is_str(e, "a\tb\nc\\x1bd", "escape: tab and newline kept when asked, ESC escaped");
	free(e);
	e = fb_escape("a\0b", 3, "\t");
	tap_is_str(e, "a\\x00b", "escape: a NUL byte escaped");
	free(e);
	e = fb_escape("\xe0\x80\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xc3", 14, "");
	tap_is_str(e, "\\xe0\\x80\\x80 \\xed\\xa0\\x80 \\xf4\\x90\\x80\\x80 \\xc3",
		   "escape: overlong, surrogate, past U+10FFFF and cut sequences escaped byte by byte");
	free(e);
}

/* t_fb() with a guard: the child is killed after CHILD_TIMEOUT seconds (status 128+SIGALRM). */
static struct t_result fb_guarded(const char *root, char **argv)
{
	struct t_result res = { -1, NULL, NULL };
	char *outp = t_beside(root, "out"), *errp = t_beside(root, "err"), *stand_in = t_beside(root, "stand-in");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(120);
		setenv("PMOVES_FIRSTBOOT_RUNNER", stand_in, 1);
		alarm(CHILD_TIMEOUT);
		int argc = 0;
		while (argv[argc])
			argc++;
		int r = fb_main(argc, argv);
		fflush(stdout);
		fflush(stderr);
		_exit(r);
	}
	int st;
	if (pid > 0 && waitpid(pid, &st, 0) == pid)
		res.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	res.out = t_read(outp, NULL);
	res.err = t_read(errp, NULL);
	free(outp);
	free(errp);
	free(stand_in);
	return res;
}

/* A whole run whose secret file holds "secret": the filter sees the secret in every
 * "(secret)" it wrote. */
static void test_run_secret_word(void)
{
	char *root = t_tree();
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"files\": [{\"path\": \"/etc/app/secret\", \"content\": \"secret\", \"secret\": true}],"
		" \"report_url\": \"https://127.0.0.1:1/secret\"}");
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, NULL };
	struct t_result r = fb_guarded(root, argv);
	tap_is_int(r.status, 0, "run with a secret file holding 'secret': ends, exit 0 (not killed by the guard)");
	char *status = t_read(root, "var/lib/pmoves/firstboot/status.json");
	tap_ok(status && strstr(status, "\"status\": \"ok\"") && r.out && strstr(r.out, "done status=ok"),
	       "its status.json and console lines are written");
	if (r.status != 0)
		tap_diag("stdout: %s\nstderr: %s", r.out ? r.out : "", r.err ? r.err : "");
	free(status);
	t_result_free(&r);
	t_cleanup(root);
}

/* No byte a terminal acts on (C0 but tab and newline, DEL, C1 in UTF-8 or alone) in TEXT. */
static bool terminal_safe(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) ||
		    (*p >= 0x80 && *p <= 0x9f && (p == (const unsigned char *)text || p[-1] < 0xc0)))
			return false;
	return true;
}

/* run --dry-run shows a file's content: an escape sequence or a carriage return in it must
 * not hide a line from the person reading the plan. */
static void test_dry_run_escaped(void)
{
	char *root = t_tree();
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"files\": [{\"path\": \"/etc/motd\", \"content\": \"fine\\n\\u001b[1A\\u001b[2Khidden\\rover\\ttab\\u009b2K\\u007f\\n\"}],"
		" \"units\": {\"enable\": [\"a.service\"]}}");
	char *argv[] = { "pmoves-firstboot", "run", "--dry-run", "--root", root, NULL };
	struct t_result r = fb_guarded(root, argv);
	tap_is_int(r.status, 0, "dry run: exit 0");
	tap_contains(r.out, "would write /etc/motd (mode 0644, 34 bytes):\n  | fine\n  | \\x1b[1A\\x1b[2Khidden\\x0dover\ttab\\xc2\\x9b2K\\x7f\n",
		     "dry run: a file's content with ESC, CR, C1 and DEL escaped, tab kept, one line per line");
	tap_ok(terminal_safe(r.out) && terminal_safe(r.err), "dry run: nothing in the plan a terminal would act on");
	t_result_free(&r);
	t_cleanup(root);
}

/* status prints fields of status.json, which could hold anything. */
static void test_status_escaped(void)
{
	char *root = t_tree();
	t_write(root, "var/lib/pmoves/firstboot/status.json",
		"{\"status\": \"ok\\u001b]0;owned\\u0007\", \"config_error\": \"bad\\u001b[2J\", \"started\": \"\\u009b1m\","
		" \"steps\": [{\"name\": \"host\\u001b[8mname\", \"state\": \"ok\\r\", \"duration_ms\": 5,"
		" \"message\": \"fine\\u001b[1A\\u001b[2K\\rall good\\nsecond\"}]}");
	char *argv[] = { "pmoves-firstboot", "status", "--root", root, NULL };
	struct t_result r = fb_guarded(root, argv);
	tap_ok(terminal_safe(r.out) && terminal_safe(r.err), "status: no control character from status.json reaches the terminal");
	tap_contains(r.out, "status: ok\\x1b]0;owned\\x07\n", "status: the status field escaped");
	tap_contains(r.out, "config: bad\\x1b[2J\n", "status: config_error escaped");
	tap_contains(r.out, "started: \\xc2\\x9b1m\n", "status: started escaped (C1)");
	tap_contains(r.out, "host\\x1b[8mname", "status: a step's name escaped");
	tap_contains(r.out, "fine\\x1b[1A\\x1b[2K\\x0dall good second\n", "status: a step's message escaped, in one line");
	t_result_free(&r);
	t_cleanup(root);
}

/* validate quotes config values and names files: a C1 control (U+009B, CSI) and controls in a
 * file name are escaped too. */
static void test_validate_escaped(void)
{
	char *root = t_tree();
	char *bad = t_strf("%s/bad.json", root), *good = t_strf("%s/ok\x1b[2K.json", root);
	t_write(root, "bad.json", "{\"hostname\": \"a\xc2\x9b" "2Kb\"}");
	t_write(root, "ok\x1b[2K.json", "{\"hostname\": \"node1\"}");
	char *argv[] = { "pmoves-firstboot", "validate", bad, good, NULL };
	struct t_result r = fb_guarded(root, argv);
	tap_is_int(r.status, 2, "validate: an invalid file: exit 2");
	tap_ok(terminal_safe(r.out) && terminal_safe(r.err), "validate: no control character in its messages");
	tap_contains(r.err, "\\xc2\\x9b2Kb", "validate: the value quoted with its C1 control escaped");
	tap_contains(r.out, "ok\\x1b[2K.json: valid\n", "validate: a file name escaped");
	free(bad), free(good);
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	alarm(600); /* a guard for the whole test: a hang fails */
	test_redact();
	test_escape();
	if (geteuid() != 0) {
		tap_skip("whole runs", "needs root to make the test trees' files root-owned");
		return tap_done();
	}
	test_run_secret_word();
	test_dry_run_escaped();
	test_status_escaped();
	test_validate_escaped();
	return tap_done();
}
