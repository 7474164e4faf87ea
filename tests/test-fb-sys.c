/* The helpers the steps share, each on its own: removing files under the root; systemctl
 * through a stand-in runner that answers what the test tells it; file sets; /etc/hosts. */
#include "fb-fileset.h"
#include "fb-hosts.h"
#include "test-fb-lib.h"

/* stdout into a file while a helper prints (dry run), so that TAP's stdout stays clean. */
static int saved_stdout = -1;
static char capture_path[] = "/tmp/test-fb-sys-out-XXXXXX";

static void capture_start(void)
{
	fflush(stdout);
	int fd = mkstemp(capture_path);
	saved_stdout = dup(STDOUT_FILENO);
	if (fd < 0 || saved_stdout < 0 || dup2(fd, STDOUT_FILENO) < 0)
		abort();
	close(fd);
}

/* What was printed since capture_start(). Caller frees. */
static char *capture_end(void)
{
	fflush(stdout);
	if (dup2(saved_stdout, STDOUT_FILENO) < 0)
		abort();
	close(saved_stdout);
	char *text = t_read(capture_path, NULL);
	unlink(capture_path);
	memcpy(capture_path + strlen(capture_path) - 6, "XXXXXX", 6);
	return text ? text : strdup("");
}

static void test_remove(void)
{
	char *root = t_tree();
	fb_root_set(root);
	t_write(root, "etc/a/file", "x");
	tap_is_int(fb_remove("/etc/a/file"), 0, "remove: a file under the root");
	tap_ok(!t_exists(root, "etc/a/file") && t_exists(root, "etc/a"), "remove: the file is gone, its directory stays");
	tap_is_int(fb_remove("/etc/a/file"), 0, "remove: a file that is not there is fine");
	tap_is_int(fb_remove("/no/such/dir/file"), 0, "remove: nor is a missing directory");
	tap_is_int(fb_remove("/etc/a"), -EISDIR, "remove: a directory is refused");
	tap_is_int(fb_remove("etc/a/file"), -EINVAL, "remove: a relative path is refused");

	/* A symlink in the tree cannot lead outside it: /out -> the host's directory beside the
	 * tree resolves inside the root, where there is no such file. */
	char *outside = t_beside(root, "outside");
	t_write(outside, "victim", "keep me");
	char *link = t_strf("%s/out", root);
	if (symlink(outside, link) < 0)
		abort();
	tap_is_int(fb_remove("/out/victim"), 0, "remove: through a symlink that leaves the tree: nothing there");
	tap_ok(t_exists(outside, "victim"), "remove: the file outside the tree is untouched");

	t_write(root, "etc/b", "y");
	fb_dry_run_set(true);
	capture_start();
	int r = fb_remove("/etc/b");
	char *out = capture_end();
	fb_dry_run_set(false);
	tap_is_int(r, 0, "remove, dry run: 0");
	tap_is_str(out, "pmoves-firstboot: would remove /etc/b\n", "remove, dry run: says what it would remove");
	tap_ok(t_exists(root, "etc/b"), "remove, dry run: the file stays");
	free(out), free(link), free(outside);
	t_cleanup(root);
}

/* A stand-in runner beside ROOT: records each argv in ROOT/../calls, prints ROOT/../out and
 * exits with ROOT/../rc (0 without). */
static char *answering_stand_in(const char *root)
{
	char *top = t_beside(root, "");
	top[strlen(top) - 1] = '\0';
	char *script = t_strf("#!/bin/sh\n# stand-in: records argv, answers what the test wrote\n"
			      "echo \"$*\" >> %s/calls\n[ -e %s/out ] && cat %s/out\nexit $(cat %s/rc 2>/dev/null || echo 0)\n",
			      top, top, top, top);
	char *path = t_strf("%s/answering", top);
	if (write_file_atomic(path, script, strlen(script), 0755) < 0)
		abort();
	free(script), free(top);
	return path;
}

static void answer(const char *root, const char *out, int rc)
{
	char *o = t_beside(root, "out"), *c = t_beside(root, "rc"), *calls = t_beside(root, "calls"), *code = t_strf("%d\n", rc);
	unlink(o);
	unlink(calls);
	if ((out && write_file_atomic(o, out, strlen(out), 0644) < 0) || write_file_atomic(c, code, strlen(code), 0644) < 0)
		abort();
	free(o), free(c), free(calls), free(code);
}

static char *calls(const char *root)
{
	char *p = t_beside(root, "calls"), *text = t_read(p, NULL);
	free(p);
	return text ? text : strdup("");
}

static void test_systemctl(void)
{
	static const char *const enabled[] = { "enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient" };
	static const char *const not_enabled[] = { "disabled", "masked", "masked-runtime", "linked", "linked-runtime", "bad", "not-found", "" };
	bool all = true;
	for (size_t i = 0; i < ARRAY_SIZE(enabled); i++)
		all &= fb_unit_state_enabled(enabled[i]);
	tap_ok(all, "enabled states: the ones systemctl is-enabled exits 0 for");
	all = !fb_unit_state_enabled(NULL);
	for (size_t i = 0; i < ARRAY_SIZE(not_enabled); i++)
		all &= !fb_unit_state_enabled(not_enabled[i]);
	tap_ok(all, "not enabled: disabled, masked, linked, bad, not-found, nothing");

	char *root = t_tree(), *stand_in = answering_stand_in(root);
	fb_root_set(root);
	setenv("PMOVES_FIRSTBOOT_RUNNER", stand_in, 1);
	unsetenv("PMOVES_FIRSTBOOT_LIVE");
	static const struct {
		const char *out;
		int rc, want;
	} tree_cases[] = {
		{ "enabled\n", 0, 1 }, { "enabled-runtime\n", 0, 1 }, { "generated\n", 0, 1 }, { "static\n", 0, 1 },
		{ "disabled\n", 1, 0 }, { "linked\n", 1, 0 },
		{ "masked\n", 0, 0 }, /* a stand-in (or another systemctl) that exits 0: the word says no */
		{ NULL, 127, -ENOENT }, /* no systemctl */
	};
	for (size_t i = 0; i < ARRAY_SIZE(tree_cases); i++) {
		answer(root, tree_cases[i].out, tree_cases[i].rc);
		const char *o = tree_cases[i].out ? tree_cases[i].out : "";
		tap_is_int(fb_unit_enabled("a.service"), tree_cases[i].want, "is-enabled on a tree: '%.*s' exit %d",
			   (int)strcspn(o, "\n"), o, tree_cases[i].rc);
	}
	char *c = calls(root), *want = t_strf("%s --root=%s is-enabled a.service\n", "systemctl", root);
	tap_is_str(c, want, "is-enabled on a tree: systemctl --root=ROOT");
	free(c), free(want);

	answer(root, NULL, 3);
	tap_is_int(fb_systemctl("enable", (char *[]){ "a.service", "b.service", NULL }), 3, "systemctl on unit files: its exit status");
	c = calls(root), want = t_strf("systemctl --root=%s enable a.service b.service\n", root);
	tap_is_str(c, want, "systemctl on unit files on a tree: --root=ROOT, every unit");
	free(c), free(want);
	answer(root, NULL, 0);
	tap_is_int(fb_systemctl_live("restart", (char *[]){ "a.service", NULL }), 0, "live verbs on a tree: 0");
	c = calls(root);
	tap_is_str(c, "", "live verbs on a tree: nothing run");
	free(c);

	/* The running system (a tree taken for it: every command goes to the stand-in). */
	setenv("PMOVES_FIRSTBOOT_LIVE", "1", 1);
	answer(root, NULL, 0);
	tap_is_int(fb_unit_enabled("a.service"), 1, "is-enabled running: --quiet, exit 0 is enabled");
	answer(root, NULL, 1);
	tap_is_int(fb_unit_enabled("a.service"), 0, "is-enabled running: exit 1 is not");
	c = calls(root);
	tap_is_str(c, "systemctl --quiet is-enabled a.service\n", "is-enabled running: systemctl --quiet");
	free(c);
	answer(root, NULL, 0);
	fb_systemctl("disable", (char *[]){ "a.service", NULL });
	fb_systemctl_live("restart", (char *[]){ "a.service", NULL });
	fb_systemctl_live("reboot", NULL);
	c = calls(root);
	tap_is_str(c, "systemctl --quiet disable a.service\nsystemctl --no-block restart a.service\nsystemctl --no-block reboot\n",
		   "running: --quiet on unit files, --no-block on units");
	free(c);
	answer(root, "active\n", 0);
	tap_is_int(fb_unit_active("a.service"), 1, "is-active: exit 0 is active");
	answer(root, "inactive\n", 3);
	tap_is_int(fb_unit_active("a.service"), 0, "is-active: exit 3 is not");
	c = calls(root);
	tap_is_str(c, "systemctl is-active a.service\n", "is-active: systemctl is-active UNIT");
	free(c);

	char *msg = NULL;
	answer(root, NULL, 2);
	tap_is_int(fb_run_msg((char *[]){ "networkctl", "reload", NULL }, &msg), -EIO, "run_msg: a failure is -EIO");
	tap_is_str(msg, "'networkctl reload' exited with 2", "run_msg: and says which command and how");
	free(msg);
	msg = fb_run_error((char *[]){ "x", NULL }, -ENOENT);
	tap_is_str(msg, "cannot run 'x': No such file or directory", "run_error: -errno");
	free(msg);
	answer(root, NULL, 0);
	msg = NULL;
	tap_ok(fb_run_msg((char *[]){ "true", NULL }, &msg) == 0 && !msg, "run_msg: 0, no message");

	unsetenv("PMOVES_FIRSTBOOT_LIVE");
	unsetenv("PMOVES_FIRSTBOOT_RUNNER");
	free(stand_in);
	t_cleanup(root);
}

static void test_file_set(void)
{
	char *root = t_tree();
	fb_root_set(root);
	struct fb_file_set s = { 0 };
	tap_is_int(fb_file_set_check(&s), 1, "file set: an empty one is there");
	tap_is_int(fb_file_set_add(&s, strdup("/etc/x/a.conf"), strdup("a\n"), 0644), 0, "file set: add one");
	tap_is_int(fb_file_set_add(&s, strdup("/etc/x/b.key"), strdup("secret\n"), 0600), 0, "file set: add another, mode 0600");
	tap_is_int(fb_file_set_add(&s, strdup("/etc/x/a.conf"), strdup("again\n"), 0644), -EEXIST, "file set: a path twice is refused");
	tap_is_int(fb_file_set_add(&s, strdup("/etc/x/c"), NULL, 0644), -ENOMEM, "file set: a failed text is -ENOMEM");
	tap_is_int(fb_file_set_add(&s, strdup("etc/x/c"), strdup(""), 0644), -EINVAL, "file set: a relative path is refused");
	tap_ok(s.n == 2 && fb_file_set_has(&s, "/etc/x/b.key") && !fb_file_set_has(&s, "/etc/x/c"), "file set: holds what was added");
	tap_is_int(fb_file_set_check(&s), 0, "file set: not on disk yet");

	char *msg = NULL;
	tap_is_int(fb_file_set_write(&s, &msg), 0, "file set: written");
	struct stat a = t_stat(root, "etc/x/a.conf"), b = t_stat(root, "etc/x/b.key");
	char *text = t_read(root, "etc/x/b.key");
	tap_ok((a.st_mode & 07777) == 0644 && (b.st_mode & 07777) == 0600 && text && STREQ(text, "secret\n"),
	       "file set: each file with its content and mode");
	free(text);
	tap_is_int(fb_file_set_check(&s), 1, "file set: on disk");

	t_write(root, "etc/x/a.conf", "b\n");
	tap_is_int(fb_file_set_check(&s), 0, "file set: other content is not it");
	fb_file_set_write(&s, &msg);
	char *p = t_strf("%s/etc/x/a.conf", root);
	chmod(p, 0600);
	tap_is_int(fb_file_set_check(&s), 0, "file set: another mode is not it");
	chmod(p, 0644);
	if (geteuid() == 0) {
		if (chown(p, 1000, 1000) < 0)
			abort();
		tap_is_int(fb_file_set_check(&s), 0, "file set: another owner is not it");
		tap_is_int(fb_file_matches("/etc/x/a.conf", "a\n", 2, 0644, (uid_t)-1, (gid_t)-1), 1,
			   "file matches: the owner not asked for");
		if (chown(p, 0, 0) < 0)
			abort();
	} else {
		tap_skip("file set: another owner is not it", "not root");
		tap_skip("file matches: the owner not asked for", "not root");
	}
	tap_is_int(fb_file_set_check(&s), 1, "file set: back as it was");
	unlink(p);
	if (symlink("b.key", p) < 0)
		abort();
	tap_is_int(fb_file_set_check(&s), 0, "file set: a symlink in a file's place is not it");

	t_write(root, "etc/y", "a file where a directory is wanted");
	fb_file_set_done(&s);
	tap_ok(s.n == 0 && !s.files, "file set: done empties it");
	fb_file_set_add(&s, strdup("/etc/y/z"), strdup("z"), 0644);
	tap_ok(fb_file_set_write(&s, &msg) < 0 && msg && !strncmp(msg, "cannot write '/etc/y/z': ", 25),
	       "file set: a write that fails names the file");
	free(msg), free(p);
	fb_file_set_done(&s);
	t_cleanup(root);
}

static void hosts_is(char *got, const char *want, const char *what)
{
	tap_is_str(got, want, "%s", what);
	free(got);
}

static void test_hosts(void)
{
	/* NAME on 127.0.1.1 (the hostname step). */
	hosts_is(fb_hosts_loopback_name(NULL, "node1.example.org"),
		 "127.0.0.1\tlocalhost\n127.0.1.1\tnode1.example.org node1\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
		 "loopback: no file: localhost, our line, ::1");
	hosts_is(fb_hosts_loopback_name("127.0.0.1 localhost\n# c\n127.0.1.1 old\n10.0.0.5 node1\n127.0.1.1\tother\n", "node1"),
		 "127.0.0.1 localhost\n127.0.1.1\tnode1\n# c\n10.0.0.5 node1\n",
		 "loopback: after 127.0.0.1, the 127.0.1.1 lines dropped, the rest kept");
	hosts_is(fb_hosts_loopback_name("127.0.1.1 old\n127.0.0.1 localhost\n127.0.1.1 older\n", "n"),
		 "127.0.1.1\tn\n127.0.0.1 localhost\n", "loopback: a 127.0.1.1 line before 127.0.0.1's is replaced in place");
	hosts_is(fb_hosts_loopback_name("# hosts\n127.0.0.10 ten\n127.0.0.1 localhost\n::1 localhost\n", "n"),
		 "# hosts\n127.0.0.10 ten\n127.0.0.1 localhost\n127.0.1.1\tn\n::1 localhost\n",
		 "loopback: no 127.0.1.1 line: after 127.0.0.1's (not 127.0.0.10's)");
	hosts_is(fb_hosts_loopback_name("10.1.1.1 gw", "n"), "10.1.1.1 gw\n127.0.1.1\tn\n", "loopback: neither: at the end");
	char *once = fb_hosts_loopback_name("127.0.0.1 localhost\n127.0.1.1 x\n", "a.b"), *twice = fb_hosts_loopback_name(once, "a.b");
	hosts_is(twice, once, "loopback: again changes nothing");
	free(once);

	/* NAME on ADDR only (proxmox-kernel). */
	hosts_is(fb_hosts_pin_name("127.0.0.1\tlocalhost\n127.0.1.1\tpve1\n::1\tlocalhost ip6-localhost ip6-loopback\n", "10.0.2.15", "pve1"),
		 "127.0.0.1\tlocalhost\n10.0.2.15\tpve1\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		 "pin: 127.0.1.1 gives way to the address, after 127.0.0.1");
	hosts_is(fb_hosts_pin_name("127.0.0.1 localhost pve.lan pve # pve here\n::1 localhost pve\n10.9.9.9 pve.lan\n10.0.2.15 nas\n",
				   "10.0.2.15", "pve.lan"),
		 "127.0.0.1 localhost # pve here\n10.0.2.15\tpve.lan pve\n::1 localhost\n10.0.2.15 nas\n",
		 "pin: its names leave loopback lines (comments stay), other lines naming it go, other names stay");
	hosts_is(fb_hosts_pin_name(NULL, "192.168.1.2", "pve"),
		 "127.0.0.1\tlocalhost\n192.168.1.2\tpve\n::1\t\tlocalhost ip6-localhost ip6-loopback\n", "pin: no file");
	once = fb_hosts_pin_name("127.0.0.1 localhost pve\n127.0.1.1 pve\n", "10.0.0.2", "pve.example.org");
	twice = fb_hosts_pin_name(once, "10.0.0.2", "pve.example.org");
	hosts_is(twice, once, "pin: again changes nothing");
	free(once);

	tap_ok(fb_hosts_name_routable("127.0.0.1 localhost\n10.0.2.15 pve1\n", "pve1"), "routable: on its address");
	tap_ok(fb_hosts_name_routable("10.0.2.15 pve1\n", "pve1.example.org"), "routable: by its short name");
	tap_ok(!fb_hosts_name_routable("127.0.1.1 pve1\n", "pve1"), "routable: not on 127.0.1.1");
	tap_ok(!fb_hosts_name_routable("10.0.2.15 pve1\n::1 localhost pve1\n", "pve1"), "routable: not when ::1 names it too");
	tap_ok(!fb_hosts_name_routable("#10.0.2.15 pve1\n10.0.2.16 other # pve1\n", "pve1"), "routable: comments do not count");
	tap_ok(!fb_hosts_name_routable("", "pve1"), "routable: not in an empty file");
}

int main(void)
{
	test_remove();
	test_systemctl();
	test_file_set();
	test_hosts();
	return tap_done();
}
