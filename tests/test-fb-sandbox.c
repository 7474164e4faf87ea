/* The sandbox step on fixture trees: its config's checks, the files it writes (read back by
 * the real pmoves-sandbox, whose config they are), what it needs from the image, and the
 * Firecracker backend waiting for its artifact. The running system's part (the network
 * service started, `pmoves-sandbox backends`) is tests/e2e/dev-workstation.t's. */
#include "fb-cmd.h"
#include "run.h"
#include "test-fb-lib.h"

#include <json-c/json.h>

#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define FC "/usr/lib/pmoves/firecracker/release-v1.16.1-x86_64/firecracker-v1.16.1-x86_64"
#define JAILER "/usr/lib/pmoves/firecracker/release-v1.16.1-x86_64/jailer-v1.16.1-x86_64"

static char *launcher; /* this build's pmoves-sandbox */

/* A tree with the sandbox section MORE and, with IMAGE, what the image brings. */
static char *sbx_tree(const char *more, bool image)
{
	char *root = t_tree();
	if (image) {
		t_write(root, "usr/bin/pmoves-sandbox", "stand-in\n");
		for (const char *const *f = (const char *const[]){ "vmlinuz", "vmlinux", "initrd.img", "rootfs.ext4", NULL }; *f; f++) {
			char *rel = t_strf("usr/lib/pmoves/sandbox/%s", *f);
			t_write(root, rel, "guest\n");
			free(rel);
		}
	}
	char *cfg = t_strf("{" OTHERS_OFF ", \"sandbox\": {%s}}", more);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
}

static void test_config(void)
{
	static const struct {
		const char *more, *want;
	} bad[] = {
		{ "\"backend\": \"kvmtool\"", "'kvmtool' is not a sandbox backend (auto, firecracker, qemu)" },
		{ "\"accel\": \"hvf\"", "'hvf' is not an accelerator" },
		{ "\"subnet\": \"10.77.0.1/24\"", "'10.77.0.1/24' has host bits set" },
		{ "\"subnet\": \"10.77.0.0/8\"", "is not an IPv4 network A.B.C.D/N, N from 16 to 29" },
		{ "\"subnet\": \"10.277.0.0/24\"", "'10.277.0.0' is not an address" },
		{ "\"bridge\": \"Sbx0\"", "'Sbx0' is not an interface name" },
		{ "\"bridge\": \"sandboxbridge0123\"", "is not an interface name" },
		{ "\"dns\": \"1.1.1\"", "is not an IPv4 address" },
		{ "\"output_max\": 100", "from 4096 to 1073741824" },
		{ "\"console_max\": 4096", "from 65536 to 1073741824" },
		{ "\"uids\": \"1000-1999\"", "'1000-1999' is not a range of ids" },
		{ "\"uids\": \"70000-200000\"", "'70000-200000' must be at most 65536 ids from 65536 to 2147483647" },
		{ "\"uids\": \"2147483000-2147483648\"", "must be at most 65536 ids" },
		{ "\"state_size\": \"lots\"", "is not a tmpfs size" },
		{ "\"state_size\": \"150%\"", "is not a tmpfs size" },
		{ "\"firecracker\": \"bin/firecracker\"", ".sandbox.firecracker" },
		{ "\"jailer\": \"/opt/../jailer\"", ".sandbox.jailer" },
		{ "\"ttl\": 5", ".sandbox.ttl" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *root = sbx_tree(bad[i].more, true);
		struct t_result r = t_run(root, NULL);
		tap_ok(r.status == FB_EXIT_USAGE, "config %zu: refused (exit %d)", i, r.status);
		tap_contains(r.err, bad[i].want, "config %zu: %s", i, bad[i].want);
		tap_ok(!t_exists(root, "etc/pmoves/sandbox.json"), "config %zu: nothing written", i);
		t_result_free(&r);
		t_cleanup(root);
	}
}

/* ROOT's sandbox.json as pmoves-sandbox reads it: `backends` exits 0 or 1 (whether a backend
 * can run here), never 2 (a config it refuses). */
static void launcher_takes(const char *root, const char *what)
{
	char *config = t_strf("%s/etc/pmoves/sandbox.json", root), *out = NULL;
	char *argv[] = { launcher, "--config", config, "backends", NULL };
	int rc = run_argv(argv, &(struct run_opts){ .capture = &out, .capture_stderr = true });
	tap_ok(rc == 0 || rc == 1, "%s: pmoves-sandbox takes the config it wrote (exit %d)", what, rc);
	if (rc != 0 && rc != 1)
		tap_diag("%s", out ? out : "");
	free(config);
	free(out);
}

static void test_apply(void)
{
	char *root = sbx_tree("\"subnet\": \"10.88.0.0/24\", \"dns\": \"10.88.0.1\", \"state_size\": \"8g\", \"output_max\": 65536, \"console_max\": 131072, \"uids\": \"300000-300999\"", true);
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=pending the sandboxes are set up; their network starts with the system",
		     "a tree: set up, pending (the network starts on the machine)");
	char *json = t_read(root, "etc/pmoves/sandbox.json");
	json_object *o = json ? json_tokener_parse(json) : NULL;
	tap_ok(o && STREQ(json_object_get_string(json_object_object_get(o, "subnet")), "10.88.0.0/24") &&
		       STREQ(json_object_get_string(json_object_object_get(o, "dns")), "10.88.0.1") &&
		       json_object_get_int(json_object_object_get(o, "output_max")) == 65536 &&
		       STREQ(json_object_get_string(json_object_object_get(o, "uids")), "300000-300999") &&
		       STREQ(json_object_get_string(json_object_object_get(o, "state_dir")), "/run/pmoves-sandbox") &&
		       !json_object_object_get_ex(o, "state_size", NULL),
	       "sandbox.json: the section's keys, the state on the step's tmpfs, not the tmpfs's size");
	json_object_put(o);
	launcher_takes(root, "a subnet, a resolver, output_max, uids");
	char *mount = t_read(root, "etc/systemd/system/run-pmoves\\x2dsandbox.mount");
	tap_contains(mount, "What=tmpfs\nWhere=/run/pmoves-sandbox\nType=tmpfs\nOptions=mode=0711,nosuid,size=8g\n",
		     "the state's mount: a tmpfs of the size asked for, without nodev or noexec (the jailer needs both)");
	char *net = t_read(root, "etc/systemd/system/pmoves-sandbox-net.service");
	tap_contains(net, "RequiresMountsFor=/run/pmoves-sandbox\n", "the network service: after the state's tmpfs");
	tap_contains(net, "Type=oneshot\nRemainAfterExit=yes\nExecStart=/usr/bin/pmoves-sandbox net-up\nExecStop=/usr/bin/pmoves-sandbox net-down\n",
		     "... net-up when it starts, net-down when it stops");
	char *tmpl = t_read(root, "etc/systemd/system/pmoves-sandbox@.service");
	tap_contains(tmpl, "ExecStart=/usr/bin/pmoves-sandbox run /etc/pmoves/sandbox/tasks/%i.json\n",
		     "the template: pmoves-sandbox@NAME runs the task /etc/pmoves/sandbox/tasks/NAME.json");
	tap_contains(tmpl, "Wants=pmoves-sandbox-net.service\nAfter=pmoves-sandbox-net.service\n", "... with the network up");
	char *users = t_read(root, "etc/sysusers.d/pmoves-sandbox.conf");
	tap_contains(users, "u pmoves-sandbox - \"pmoves-sandbox microVMs\" - -\nm pmoves-sandbox kvm\n",
		     "the user pmoves-sandbox, in group kvm (systemd-sysusers)");
	struct stat st = t_stat(root, "etc/pmoves/sandbox/tasks");
	tap_ok(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 07777) == 0755, "the tasks' directory, root's");
	char *calls = t_read(t_beside(root, "calls"), NULL);
	tap_contains(calls, "systemd-sysusers /etc/sysusers.d/pmoves-sandbox.conf\n", "systemd-sysusers ran");
	tap_contains(calls, "enable pmoves-sandbox-net.service\n", "pmoves-sandbox-net.service enabled");
	free(json), free(mount), free(net), free(tmpl), free(users), free(calls);
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=skipped already done", "the next run: already done");
	t_result_free(&r);
	/* Another size: the mount is written again. */
	t_write(root, "etc/pmoves/firstboot.json", "{" OTHERS_OFF ", \"sandbox\": {\"state_size\": \"25%\"}}");
	r = t_run(root, NULL);
	mount = t_read(root, "etc/systemd/system/run-pmoves\\x2dsandbox.mount");
	tap_ok(!strstr(r.out, "already done") && strstr(mount ? mount : "", "size=25%\n"), "a changed config is applied again");
	launcher_takes(root, "the defaults");
	free(mount);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_image_missing(void)
{
	char *root = sbx_tree("", false);
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=failed the image has no '/usr/bin/pmoves-sandbox': build it from a profile with \"sandbox_guest\"",
		     "no launcher in the image: failed, naming it");
	tap_ok(!t_exists(root, "etc/pmoves/sandbox.json"), "... nothing written");
	t_result_free(&r);
	t_write(root, "usr/bin/pmoves-sandbox", "stand-in\n");
	t_write(root, "usr/lib/pmoves/sandbox/vmlinuz", "guest\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "the image has no '/usr/lib/pmoves/sandbox/initrd.img'", "no initramfs: failed, naming it");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_firecracker(void)
{
	char *root = sbx_tree("\"backend\": \"firecracker\", \"firecracker\": \"" FC "\", \"jailer\": \"" JAILER "\"", true);
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=pending Firecracker is not installed yet (" FC ", " JAILER ": an artifact of kind tar)",
		     "backend firecracker, not installed: pending, naming both programs");
	launcher_takes(root, "backend firecracker");
	t_result_free(&r);
	t_write(root, &FC[1], "stand-in\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=pending Firecracker is not installed yet", "the jailer still missing: pending");
	t_result_free(&r);
	t_write(root, &JAILER[1], "stand-in\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=skipped already done", "both there: done (its files were written while it waited)");
	t_result_free(&r);
	t_cleanup(root);

	/* "auto": QEMU until Firecracker is there; nothing waits for it. */
	root = sbx_tree("\"firecracker\": \"" FC "\", \"jailer\": \"" JAILER "\"", true);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=sandbox state=pending the sandboxes are set up", "backend auto without Firecracker: set up");
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees root's");
	const char *build = getenv("PMOVES_BUILD");
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		abort();
	launcher = t_strf("%s%s%s/pmoves-sandbox", build && *build == '/' ? "" : cwd, build && *build == '/' ? "" : "/",
			  build && *build ? build : "build");
	if (access(launcher, X_OK) < 0)
		tap_skip_all("pmoves-sandbox is not built ('make')");
	test_config();
	test_apply();
	test_image_missing();
	test_firecracker();
	free(launcher);
	return tap_done();
}
