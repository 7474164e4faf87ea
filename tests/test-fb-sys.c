/* The helpers the steps share, each on its own: removing files under the root; systemctl
 * through a stand-in runner that answers what the test tells it; file sets; /etc/hosts; boot
 * loaders and kernel command lines; the shared value checks. */
#include "fb-boot.h"
#include "fb-fileset.h"
#include "fb-hosts.h"
#include "fb-valid.h"
#include "test-fb-lib.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

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

static void merge_is(const char *cmdline, const char *const *add, const char *const *remove, const char *want, const char *what)
{
	char *got = fb_cmdline_merge(cmdline, strlen(cmdline), add, remove);
	tap_is_str(got, want, "cmdline merge: %s", what);
	free(got);
}

static void test_cmdline(void)
{
	static const char *const iommu[] = { "intel_iommu=on", "iommu=pt", NULL };
	merge_is("", iommu, NULL, "intel_iommu=on iommu=pt", "into an empty line");
	merge_is("root=UUID=1 ro quiet iommu=soft\n", iommu, NULL, "root=UUID=1 ro quiet iommu=pt intel_iommu=on",
		 "a parameter of the same name replaced in place, a new one appended, no newline");
	merge_is("iommu=soft  a\tiommu=off b", iommu, NULL, "iommu=pt a b intel_iommu=on", "later ones of that name dropped");
	merge_is("intel-iommu=off", iommu, NULL, "intel_iommu=on iommu=pt", "'-' and '_' are the same in names");
	merge_is("dyndbg=\"file x.c +p\" ro", iommu, NULL, "dyndbg=\"file x.c +p\" ro intel_iommu=on iommu=pt",
		 "a quoted value is one parameter, its blanks kept");
	static const char *const four[] = { "a=1", "b", "c=3", "d=4", NULL };
	merge_is("c=0 x", four, NULL, "c=3 x a=1 b d=4", "more than two parameters");
	static const char *const quiet[] = { "quiet", "splash", NULL }, *const tty0[] = { "console=tty0", NULL };
	merge_is("console=ttyS0 console=tty0 quiet splash", NULL, quiet, "console=ttyS0 console=tty0", "remove by name");
	merge_is("console=ttyS0 console=tty0 quiet", NULL, tty0, "console=ttyS0 quiet", "remove one NAME=VALUE only");
	merge_is("quiet iommu=soft", iommu, quiet, "iommu=pt intel_iommu=on", "add and remove at once");
	char *part = fb_cmdline_merge("ro quiet IGNORED", 8, NULL, NULL);
	tap_is_str(part, "ro quiet", "cmdline merge: LEN bytes only");
	free(part);

	const char *proc = "BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet intel-iommu=on iommu=pt x=\"a b\"\n";
	tap_ok(fb_cmdline_has(proc, "iommu=pt") && fb_cmdline_has(proc, "quiet") && fb_cmdline_has(proc, "x=\"a b\""),
	       "cmdline has: a parameter, a flag, a quoted value");
	tap_ok(fb_cmdline_has(proc, "intel_iommu=on"), "cmdline has: '-' and '_' alike");
	tap_ok(!fb_cmdline_has(proc, "iommu=soft") && !fb_cmdline_has(proc, "root") && !fb_cmdline_has(proc, "mmu=pt") &&
		       !fb_cmdline_has("xiommu=pt", "iommu=pt"),
	       "cmdline has: not another value, not a name with a value, not part of a word");

	struct fb_boot file = { FB_LOADER_SYSTEMD_BOOT, FB_KERNEL_CMDLINE, FB_CMDLINE_WHOLE_FILE };
	struct fb_boot grub = { FB_LOADER_GRUB, FB_GRUB_DEFAULT, FB_CMDLINE_GRUB };
	char *t = NULL;
	const char *k = "root=UUID=1 rw\n";
	tap_ok(fb_boot_cmdline_text(&file, k, strlen(k), iommu, NULL, &t) == 0 && t &&
		       STREQ(t, "root=UUID=1 rw intel_iommu=on iommu=pt\n"),
	       "cmdline file: the whole file, one line");
	free(t), t = NULL;
	const char *g = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n  GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=soft'\n# end\n";
	tap_ok(fb_boot_cmdline_text(&grub, g, strlen(g), iommu, quiet, &t) == 0 && t &&
		       STREQ(t, "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n"
				"GRUB_CMDLINE_LINUX_DEFAULT='iommu=pt intel_iommu=on'\n# end\n"),
	       "grub: the last assignment edited, its quotes kept");
	free(t), t = NULL;
	g = "GRUB_DEFAULT=0";
	tap_ok(fb_boot_cmdline_text(&grub, g, strlen(g), iommu, NULL, &t) == 0 && t &&
		       STREQ(t, "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on iommu=pt\"\n"),
	       "grub: no assignment: one appended");
	free(t), t = NULL;
	g = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\n";
	tap_is_int(fb_boot_cmdline_text(&grub, g, strlen(g), iommu, NULL, &t), -EINVAL, "grub: an unbalanced quote is not edited");
	static const char *const quoted[] = { "x=\"a b\"", NULL };
	g = "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
	tap_is_int(fb_boot_cmdline_text(&grub, g, strlen(g), quoted, NULL, &t), -EINVAL,
		   "grub: a parameter with the string's quote is refused");
	tap_is_int(fb_boot_cmdline_text(&file, "a\0b", 3, iommu, NULL, &t), -EINVAL, "cmdline file: a NUL byte is refused");
}

static void detect_is(const char *root, const char *const *files, enum fb_loader loader, const char *file, const char *what)
{
	char *etc = t_strf("%s/etc", root), *sys = t_strf("%s/sys", root);
	rm_rf(etc), rm_rf(sys);
	for (const char *const *f = files; *f; f++)
		t_write(root, *f, "x\n");
	struct fb_boot b = fb_boot_detect();
	bool ok = b.loader == loader && (file ? b.cmdline_file && STREQ(b.cmdline_file, file) : !b.cmdline_file) &&
		  (!file || b.form == (STREQ(file, FB_GRUB_DEFAULT) ? FB_CMDLINE_GRUB : FB_CMDLINE_WHOLE_FILE));
	if (!tap_ok(ok, "boot detect: %s", what))
		tap_diag("got %s '%s'", fb_loader_name(b.loader), b.cmdline_file ? b.cmdline_file : "(none)");
	free(etc), free(sys);
}

static void test_boot(void)
{
	char *root = t_tree(), *stand_in = answering_stand_in(root);
	fb_root_set(root);
	const char *kcmd = "etc/kernel/cmdline", *grub = "etc/default/grub", *uuids = "etc/kernel/proxmox-boot-uuids",
		   *info = "sys/firmware/efi/efivars/LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
	detect_is(root, (const char *[]){ NULL }, FB_LOADER_NONE, NULL, "nothing");
	detect_is(root, (const char *[]){ grub, NULL }, FB_LOADER_GRUB, FB_GRUB_DEFAULT, "GRUB");
	detect_is(root, (const char *[]){ kcmd, NULL }, FB_LOADER_SYSTEMD_BOOT, FB_KERNEL_CMDLINE, "systemd-boot");
	detect_is(root, (const char *[]){ kcmd, grub, NULL }, FB_LOADER_GRUB, FB_GRUB_DEFAULT, "both files: GRUB");
	detect_is(root, (const char *[]){ kcmd, grub, info, NULL }, FB_LOADER_SYSTEMD_BOOT, FB_KERNEL_CMDLINE,
		  "both files, booted by systemd-boot");
	detect_is(root, (const char *[]){ uuids, grub, NULL }, FB_LOADER_PROXMOX, FB_GRUB_DEFAULT, "proxmox-boot-tool, GRUB mode");
	detect_is(root, (const char *[]){ uuids, kcmd, NULL }, FB_LOADER_PROXMOX, FB_KERNEL_CMDLINE,
		  "proxmox-boot-tool, systemd-boot mode");
	detect_is(root, (const char *[]){ uuids, NULL }, FB_LOADER_PROXMOX, FB_KERNEL_CMDLINE, "proxmox-boot-tool alone");

	setenv("PMOVES_FIRSTBOOT_RUNNER", stand_in, 1);
	const char *what = "?";
	answer(root, NULL, 0);
	struct fb_boot b = { FB_LOADER_SYSTEMD_BOOT, FB_KERNEL_CMDLINE, FB_CMDLINE_WHOLE_FILE };
	tap_ok(fb_boot_refresh(&b, &what) == 0 && !what, "boot refresh: systemd-boot has no menu command");
	b.loader = FB_LOADER_GRUB;
	fb_boot_refresh(&b, &what);
	tap_is_str(what, "update-grub", "boot refresh: GRUB's");
	answer(root, NULL, 5);
	b.loader = FB_LOADER_PROXMOX;
	tap_is_int(fb_boot_refresh(&b, &what), 5, "boot refresh: the exit status");
	char *c = calls(root), *want = t_strf("chroot %s proxmox-boot-tool refresh\n", root);
	tap_is_str(c, want, "boot refresh: proxmox-boot-tool refresh, on the target");
	free(c), free(want);
	unsetenv("PMOVES_FIRSTBOOT_RUNNER");
	free(stand_in);
	t_cleanup(root);
}

/* {"v": V} checked against a schema whose string "v" has FORMAT and VALID: the message, or NULL. */
static char *check_one(const struct fb_format *format, fb_validator *valid, const char *v)
{
	const struct fb_field fields[] = { { "v", FB_T_STRING, NULL, valid, format, 0, 0 }, FB_FIELDS_END };
	const struct fb_field top = { NULL, FB_T_OBJECT, fields, NULL, NULL, 0, 0 };
	char *j = t_strf("{\"v\": %s}", v), *err = NULL;
	json_object *o = json_tokener_parse(j);
	if (!o)
		abort();
	fb_schema_check(&top, o, "t", &err);
	json_object_put(o);
	free(j);
	return err;
}

static void valid_is(const struct fb_format *format, fb_validator *valid, const char *v, const char *want, const char *what)
{
	char *err = check_one(format, valid, v);
	if (want)
		tap_is_str(err, want, "%s", what);
	else if (!tap_ok(!err, "%s", what))
		tap_diag("got '%s'", err);
	free(err);
}

static void test_valid(void)
{
	tap_ok(fb_ifname_ok("eth0") && fb_ifname_ok("wlan-1.100") && fb_ifname_ok("abcdefghijklmno"),
	       "ifname: names the kernel takes, 15 at most");
	tap_ok(!fb_ifname_ok("") && !fb_ifname_ok("abcdefghijklmnop") && !fb_ifname_ok("eth 0") && !fb_ifname_ok("-x") &&
		       !fb_ifname_ok(".x") && !fb_ifname_ok("a/b"),
	       "ifname: empty, 16, blanks, a leading '-' or '.', '/' are not");
	char mac[18];
	tap_ok(fb_parse_mac("52:54:00:AB:cd:01", mac) && STREQ(mac, "52:54:00:ab:cd:01"), "mac: either case, lower case out");
	tap_ok(!fb_parse_mac("01:00:5e:00:00:01", mac) && !fb_parse_mac("00:00:00:00:00:00", mac) &&
		       !fb_parse_mac("52:54:00:ab:cd", mac) && !fb_parse_mac("52-54-00-ab-cd-01", mac) && !fb_parse_mac("52:54:00:ab:cd:0g", mac),
	       "mac: not multicast, all zero, short, dashes, non-hex");
	uint32_t ip = 0;
	tap_ok(fb_parse_ipv4("192.168.50.1", &ip) && ip == 0xc0a83201u, "ipv4: host byte order");
	tap_ok(!fb_parse_ipv4("192.168.50.300", &ip) && !fb_parse_ipv4("10.1", &ip) && !fb_parse_ipv4("::1", &ip) &&
		       !fb_parse_ipv4("1.2.3.4 ", &ip),
	       "ipv4: not out of range, short, IPv6 or with a blank");

	valid_is(&fb_fmt_mac, NULL, "\"52:54:00:00:00:01\"", NULL, "valid mac");
	valid_is(&fb_fmt_mac, NULL, "\"00:00:00:00:00:00\"",
		 "t: .v: '00:00:00:00:00:00' is not a unicast MAC address ('52:54:00:12:34:56')", "valid mac: all zero refused");
	valid_is(&fb_fmt_tag, NULL, "\"tag:mesh-1\"", NULL, "valid tag");
	valid_is(&fb_fmt_tag, NULL, "\"tag:Mesh\"", "t: .v: 'tag:Mesh' is not a tag ('tag:' and lower-case letters, digits, '-')",
		 "valid tag: upper case refused");
	valid_is(&fb_fmt_tag, NULL, "\"mesh\"", "t: .v: 'mesh' is not a tag ('tag:' and lower-case letters, digits, '-')",
		 "valid tag: without 'tag:' refused");
	valid_is(&fb_fmt_abs_path, fb_valid_path_limits, "\"/a/./b\"",
		 "t: .v: '/a/./b' must be a plain absolute path (no '.', '..', empty components or trailing '/')", "valid path: '.' refused");
	valid_is(&fb_fmt_https_url, NULL, "\"https://h/x\"", NULL, "valid https URL");
	valid_is(NULL, fb_valid_download_url, "\"http://127.0.0.1:8/x\"", NULL, "valid download URL: http to loopback");
	valid_is(NULL, fb_valid_download_url, "\"http://example.org/x\"",
		 "t: .v: 'http://example.org/x' is not an https:// URL (http:// only to 127.0.0.1, localhost or [::1])",
		 "valid download URL: http elsewhere refused");

	json_object *arr = json_tokener_parse("[{\"n\": \"a\"}, {\"x\": 1}, {\"n\": \"b\"}, {\"n\": \"a\"}]");
	size_t first = 99;
	tap_ok(fb_find_duplicate(arr, "n", &first) == 3 && first == 0, "find duplicate: the second one, and the first");
	tap_ok(fb_find_duplicate(arr, "x", NULL) == -1, "find duplicate: none");
	json_object_put(arr);
}

/* A kernel without openat2 (the Jetson Nano's 4.9; qemu-user 7.2), made by a seccomp filter
 * in a child: a tree is refused (no plain DIR/path fallback), the running system's "/" works
 * with plain paths. */
static void test_no_openat2(void)
{
	char tree[] = "/tmp/test-fb-noopenat2-XXXXXX";
	if (!mkdtemp(tree))
		abort();
	pid_t pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { .len = ARRAY_SIZE(f), .filter = f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(64);
		int code = 0;
		if (fb_root_set(tree) != -ENOSYS)
			code |= 1;
		if (fb_root_set("/") != 0)
			code |= 2;
		int fd = fb_open("/etc/passwd", O_RDONLY, 0);
		if (fd < 0)
			code |= 4;
		else
			close(fd);
		_exit(code);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		abort();
	int code = WEXITSTATUS(status);
	if (code == 64) {
		tap_skip("without openat2: a tree is refused", "cannot install a seccomp filter here");
		tap_skip("without openat2: the running system's root works", "cannot install a seccomp filter here");
	} else {
		tap_ok(!(code & 1), "without openat2: a tree is refused (-ENOSYS), no plain DIR/path fallback");
		tap_ok(!(code & 6), "without openat2: the running system's root works, a file opens (code %d)", code);
	}
	rmdir(tree);
}

int main(void)
{
	test_no_openat2();
	test_remove();
	test_systemctl();
	test_file_set();
	test_hosts();
	test_cmdline();
	test_boot();
	test_valid();
	return tap_done();
}
