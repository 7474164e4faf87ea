/* pmoves-firstboot's growfs, users, ssh and efiboot steps on --root trees: what each applies,
 * that a second run changes nothing, that secrets stay out of every output, and that users
 * survives a power cut at each point. Real tools where they run here: ssh-keygen, resize2fs
 * (on image files, "FILE?offset=N"), sgdisk, sfdisk, mke2fs, dumpe2fs; systemctl is the
 * recording stand-in. */
#include "fb-step.h"
#include "test-fb-lib.h"
#include "hash-file.h"
#include "run.h"

#include <endian.h>
#include <sys/sysmacros.h>
#include <json-c/json.h>

#define SECRET_HASH "$y$j9T$S4LTs4lt$c3RlcHNzZWNyZXRoYXNoZm9yYm9i"
#define KEY_BOB "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBob bob@laptop"
#define KEY_ALICE "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAliceAliceAliceAliceAlice alice@desk"
#define ESP_GUID "1B4E28BA-2FA1-11D2-883F-B9A761BDE3FB"
#define MiB (UINT64_C(1) << 20)

static bool have_tools;

/* The stand-in of t_tree, but ssh-keygen, resize2fs (and e2fsck) run for real. */
static void stand_in(const char *root)
{
	char *top = strndup(root, (size_t)(strrchr(root, '/') - root));
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in: records argv; runs the tools that work on files for real; fakes systemctl\n"
			      "echo \"$*\" >> %s/calls\n"
			      "case $1 in ssh-keygen|resize2fs) exec \"$@\";; esac\n"
			      "exit 0\n",
			      top);
	char *p = t_strf("%s/stand-in", top);
	if (write_file_atomic(p, script, strlen(script), 0755) < 0)
		abort();
	free(p), free(script), free(top);
}

static char *calls(const char *root)
{
	char *p = t_beside(root, "calls"), *text = t_read(p, NULL);
	free(p);
	return text ? text : strdup("");
}

/* Run ARGV (real tools), stdout captured. */
static int sh(char **ret_out, char *const argv[])
{
	char *out = NULL;
	struct run_opts o = { .capture = &out };
	int r = run_argv(argv, &o);
	if (ret_out)
		*ret_out = out;
	else
		free(out);
	return r;
}

static char *tree(const char *config)
{
	char *root = t_tree();
	stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json", config);
	return root;
}

static bool leaks(const char *root, const struct t_result *r, const char *secret)
{
	char *state = t_read(root, "var/lib/pmoves/firstboot/state.json"),
	     *status = t_read(root, "var/lib/pmoves/firstboot/status.json"), *c = calls(root);
	bool leak = strstr(r->out ? r->out : "", secret) || strstr(r->err ? r->err : "", secret) ||
		    strstr(state ? state : "", secret) || strstr(status ? status : "", secret) || strstr(c, secret);
	free(state), free(status), free(c);
	return leak;
}

/* ---- users ---- */

static const char *users_config =
	"{\"users\": [{\"name\": \"bob\", \"groups\": [\"adm\"], \"sudo\": true, \"shell\": \"/bin/sh\","
	"  \"password_hash\": \"" SECRET_HASH "\", \"ssh_authorized_keys\": [\"" KEY_BOB "\"]},"
	" {\"name\": \"alice\", \"groups\": [\"adm\"], \"ssh_authorized_keys\": [\"" KEY_ALICE "\"]}],"
	" \"steps\": {\"ssh\": {\"enabled\": false}}}";

static char *users_tree(void)
{
	char *root = tree(users_config);
	t_write(root, "etc/group", "root:x:0:\nadm:x:4:\nshadow:x:42:\nalice:x:1001:\n");
	t_write(root, "etc/shadow", "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n");
	t_write(root, "etc/skel/.bashrc", "# skel\n");
	t_write(root, "etc/skel/.config/app.conf", "x=1\n");
	t_write(root, "usr/bin/sudo", "stand-in: only its presence is checked\n");
	return root;
}

static void test_users(void)
{
	char *root = users_tree();
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "users: run exits 0");
	tap_contains(r.out, "step=users state=ok 1 created, 1 updated", "users: one created, one updated");
	char *passwd = t_read(root, "etc/passwd"), *shadow = t_read(root, "etc/shadow"), *group = t_read(root, "etc/group"),
	     *gshadow = t_read(root, "etc/gshadow");
	tap_contains(passwd, "\nbob:x:1001:1000::/home/bob:/bin/sh\n", "users: bob in passwd, the first free UID, own group");
	tap_contains(passwd, "alice:x:1000:1001::/home/alice:/bin/sh\n", "users: alice untouched");
	tap_contains(shadow, "\nbob:" SECRET_HASH ":", "users: the password hash in shadow");
	tap_contains(shadow, "alice:!:19000:", "users: an existing user keeps its password");
	tap_contains(group, "adm:x:4:bob,alice\n", "users: both in adm");
	tap_contains(group, "sudo:x:1002:bob\n", "users: sudo made, bob in it");
	tap_contains(group, "bob:x:1000:\n", "users: bob's own group");
	tap_contains(gshadow, "adm:!::bob,alice\n", "users: gshadow follows");
	struct stat st = t_stat(root, "etc/shadow");
	tap_ok((st.st_mode & 07777) == 0640 && st.st_uid == 0 && st.st_gid == 42, "users: shadow is 0640 root:shadow");
	st = t_stat(root, "home/bob");
	tap_ok(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 && st.st_uid == 1001 && st.st_gid == 1000,
	       "users: /home/bob 0700 bob:bob");
	st = t_stat(root, "home/bob/.config/app.conf");
	char *skel = t_read(root, "home/bob/.bashrc");
	tap_ok(skel && STREQ(skel, "# skel\n") && st.st_uid == 1001, "users: /etc/skel copied, owned by bob");
	st = t_stat(root, "home/bob/.ssh");
	struct stat ak = t_stat(root, "home/bob/.ssh/authorized_keys");
	char *keys = t_read(root, "home/bob/.ssh/authorized_keys"), *akeys = t_read(root, "home/alice/.ssh/authorized_keys");
	tap_ok((st.st_mode & 07777) == 0700 && st.st_uid == 1001 && (ak.st_mode & 07777) == 0600 && ak.st_uid == 1001 &&
		       keys && STREQ(keys, KEY_BOB "\n"),
	       "users: ~/.ssh 0700 and authorized_keys 0600, bob's, with his key");
	tap_ok(akeys && STREQ(akeys, KEY_ALICE "\n") && t_stat(root, "home/alice/.ssh/authorized_keys").st_uid == 1000,
	       "users: the existing user's key added");
	tap_ok(!leaks(root, &r, SECRET_HASH), "users: the password hash is in no output, state, status or argv");
	free(passwd), free(shadow), free(group), free(gshadow), free(skel), free(keys), free(akeys);
	t_result_free(&r);

	/* Second run: nothing changes. And with a new config (state not reused) check says done. */
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	t_result_free(&r);
	t_write(root, "etc/pmoves/firstboot.json", users_config); /* same config, but rewritten */
	char *p = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(p);
	free(p);
	char *before2 = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	tap_is_str(before2, after, "users: a run without state changes nothing: check finds it done");
	tap_contains(r.out, "step=users state=skipped already done", "users: skipped, already done");
	(void)before;
	free(before), free(before2), free(after);
	t_result_free(&r);

	/* A key added to the config: only it is added, the old one kept. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"users\": [{\"name\": \"alice\", \"ssh_authorized_keys\": [\"" KEY_ALICE "\", \"" KEY_BOB "\"]}]}");
	r = t_run(root, NULL);
	akeys = t_read(root, "home/alice/.ssh/authorized_keys");
	tap_ok(r.status == 0 && akeys && STREQ(akeys, KEY_ALICE "\n" KEY_BOB "\n"), "users: a new key is added to the existing ones");
	free(akeys);
	t_result_free(&r);
	t_cleanup(root);
}

/* "sudo": true on an image without sudo: the accounts are made, but the step fails and says
 * why (an optional step: the run is degraded), never ok. */
static void test_users_no_sudo(void)
{
	char *root = users_tree(), *sudo = t_strf("%s/usr/bin/sudo", root);
	unlink(sudo);
	struct t_result r = t_run(root, NULL);
	char *passwd = t_read(root, "etc/passwd"), *group = t_read(root, "etc/group");
	tap_ok(r.status == 1 && strstr(r.out, "step=users state=failed sudo is not installed ('/usr/bin/sudo'): 'bob' asked for "
					      "sudo and got only the group 'sudo' (add the package 'sudo' to the image); 1 created, 1 updated\n") &&
		       strstr(r.out, "done status=degraded"),
	       "users without sudo in the image: failed, saying sudo is not installed; the run is degraded");
	tap_ok(passwd && strstr(passwd, "\nbob:x:1001:") && group && strstr(group, "sudo:x:1002:bob\n"),
	       "users without sudo: the accounts are made all the same");
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=users state=failed sudo is not installed", "users without sudo: a later run says it again, not ok");
	t_result_free(&r);
	t_write(root, "usr/bin/sudo", "stand-in\n");
	r = t_run(root, NULL);
	tap_ok(r.status == 0 && strstr(r.out, "step=users state=skipped already done"), "users: sudo installed later: done");
	t_result_free(&r);
	free(sudo), free(passwd), free(group);
	t_cleanup(root);
}

static size_t lines_starting(const char *text, const char *prefix)
{
	size_t n = 0, k = strlen(prefix);
	for (const char *p = text; p && *p; p += strcspn(p, "\n"), p += *p == '\n')
		n += !strncmp(p, prefix, k);
	return n;
}

static bool users_once(const char *root)
{
	char *passwd = t_read(root, "etc/passwd"), *shadow = t_read(root, "etc/shadow"), *group = t_read(root, "etc/group"),
	     *gshadow = t_read(root, "etc/gshadow"), *keys = t_read(root, "home/bob/.ssh/authorized_keys");
	bool ok = lines_starting(passwd, "bob:") == 1 && lines_starting(shadow, "bob:") == 1 &&
		  lines_starting(group, "bob:") == 1 && lines_starting(gshadow, "bob:") == 1 &&
		  lines_starting(group, "sudo:") == 1 && t_count(group, "adm:x:4:bob,alice\n") == 1 &&
		  t_count(shadow, SECRET_HASH) == 1 && keys && STREQ(keys, KEY_BOB "\n") &&
		  t_count(passwd, "bob:x:1001:1000:") == 1;
	free(passwd), free(shadow), free(group), free(gshadow), free(keys);
	return ok;
}

static void test_users_crash(void)
{
	static const char *const points[] = { "users:running", "users:applied", "users" };
	for (size_t i = 0; i < ARRAY_SIZE(points); i++) {
		char *root = users_tree();
		char *env = t_strf("PMOVES_FIRSTBOOT_CRASH_AFTER=%s", points[i]);
		struct t_result r1 = t_run(root, env), r2 = t_run(root, NULL);
		char *st = t_read(root, "var/lib/pmoves/firstboot/state.json");
		bool ok = r1.status == 99 && r2.status == 0 && users_once(root) && (t_count(st, "\"users\": {\n      \"state\": \"ok\"") +
												    t_count(st, "\"users\": {\n      \"state\": \"skipped\"")) == 1;
		if (!tap_ok(ok, "users: a cut after %s, then a run: applied once", points[i]))
			tap_diag("exit %d then %d: %s; state %s", r1.status, r2.status, r2.out, st);
		free(st), free(env);
		t_result_free(&r1);
		t_result_free(&r2);
		t_cleanup(root);
	}
	/* A cut inside apply: the group files written, shadow and passwd not yet. */
	char *root = users_tree();
	t_write(root, "etc/group", "root:x:0:\nadm:x:4:bob\nshadow:x:42:\nalice:x:1001:\nbob:x:1000:\nsudo:x:1002:bob\n");
	t_write(root, "etc/gshadow", "adm:!::bob\nbob:!::\nsudo:!::bob\n");
	struct t_result r = t_run(root, NULL);
	char *group = t_read(root, "etc/group");
	tap_ok(r.status == 0 && users_once(root), "users: after a cut between the group files and passwd, a run completes it once");
	free(group);
	t_result_free(&r);
	/* ... and between shadow and passwd. */
	t_cleanup(root);
	root = users_tree();
	t_write(root, "etc/group", "root:x:0:\nadm:x:4:bob\nshadow:x:42:\nalice:x:1001:\nbob:x:1000:\nsudo:x:1002:bob\n");
	t_write(root, "etc/gshadow", "adm:!::bob\nbob:!::\nsudo:!::bob\n");
	t_write(root, "etc/shadow", "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\nbob:" SECRET_HASH ":19000:0:99999:7:::\n");
	r = t_run(root, NULL);
	tap_ok(r.status == 0 && users_once(root), "users: after a cut between shadow and passwd, a run completes it once");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- ssh ---- */

static char *keygen_fp(const char *root, const char *type)
{
	char *pub = t_strf("%s/etc/ssh/ssh_host_%s_key.pub", root, type), *out = NULL;
	char *argv[] = { "ssh-keygen", "-l", "-f", pub, NULL };
	sh(&out, argv);
	free(pub);
	/* "256 SHA256:xxx comment (ED25519)" */
	char *fp = out ? strstr(out, "SHA256:") : NULL;
	char *r = fp ? strndup(fp, strcspn(fp, " ")) : NULL;
	free(out);
	return r;
}

static void test_ssh(void)
{
	char *root = tree("{\"ssh\": {\"password_authentication\": false}}");
	struct t_result r = t_run(root, NULL);
	char *fp1 = keygen_fp(root, "ed25519"), *fp2 = keygen_fp(root, "ecdsa");
	tap_is_int(r.status, 0, "ssh: run exits 0");
	tap_ok(t_exists(root, "etc/ssh/ssh_host_ed25519_key") && t_exists(root, "etc/ssh/ssh_host_ecdsa_key.pub") &&
		       !t_exists(root, "etc/ssh/ssh_host_rsa_key"),
	       "ssh: ed25519 and ecdsa host keys made, no rsa");
	struct stat st = t_stat(root, "etc/ssh/ssh_host_ed25519_key");
	tap_ok((st.st_mode & 077) == 0 && st.st_uid == 0, "ssh: private key not readable by others");
	char *want = t_strf("step=ssh state=ok 2 host keys made: ed25519 %s, ecdsa %s\n", fp1 ? fp1 : "?", fp2 ? fp2 : "?");
	tap_contains(r.out, want, "ssh: the detail has the fingerprints ssh-keygen -l shows");
	free(want);
	char *dropin = t_read(root, "etc/ssh/sshd_config.d/50-pmoves.conf");
	tap_contains(dropin, "\nPasswordAuthentication no\n", "ssh: the sshd drop-in");
	char *c = calls(root);
	/* On a tree ssh-keygen gets /etc/ssh opened inside the root, as /proc/self/fd/N. */
	char *line = strstr(c, "ssh-keygen -q -N  -t ed25519 -f /proc/self/fd/"), *argv = line ? strndup(line, strcspn(line, "\n")) : NULL;
	tap_ok(argv && strstr(argv, "/ssh_host_ed25519_key") && argv[strlen(argv) - 1] == 'y',
	       "ssh: ssh-keygen through the runner, given the directory opened inside the root");
	tap_ok(!strstr(c, "reload"), "ssh: no sshd reload on a tree");
	free(argv), free(c), free(dropin);
	t_result_free(&r);
	/* The config's password_authentication is not taken for a secret (a bool). */
	char *state = t_read(root, "var/lib/pmoves/firstboot/status.json");
	tap_ok(state && !strstr(state, "(secret)"), "ssh: nothing redacted");
	free(state);

	char *p = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(p);
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	tap_ok(r.status == 0 && STREQ(before, after) && strstr(r.out, "step=ssh state=skipped already done"),
	       "ssh: a second run changes nothing");
	t_result_free(&r);
	/* Half-made key (a cut during ssh-keygen): made again; rsa when asked, the others kept. */
	ino_t ino = t_stat(root, "etc/ssh/ssh_host_ed25519_key").st_ino;
	char *pub = t_strf("%s/etc/ssh/ssh_host_ecdsa_key.pub", root);
	unlink(pub);
	t_write(root, "etc/pmoves/firstboot.json", "{\"ssh\": {\"password_authentication\": true, \"rsa\": true}}");
	r = t_run(root, NULL);
	char *fp3 = keygen_fp(root, "ecdsa");
	dropin = t_read(root, "etc/ssh/sshd_config.d/50-pmoves.conf");
	tap_ok(r.status == 0 && t_stat(root, "etc/ssh/ssh_host_ed25519_key").st_ino == ino && fp3 && fp2 && !STREQ(fp3, fp2) &&
		       t_exists(root, "etc/ssh/ssh_host_rsa_key.pub") && strstr(r.out, "2 host keys made") &&
		       strstr(dropin, "PasswordAuthentication yes"),
	       "ssh: a half-made key is made again, rsa on request, existing keys kept");
	free(dropin), free(fp3), free(pub), free(p), free(before), free(after), free(fp1), free(fp2);
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- growfs ---- */

/* A GPT image: 8 MiB ESP, 40 MiB ext4 root, in a 64 MiB file, then made 128 MiB. */
static int gpt_image(const char *path, bool ext4)
{
	char *argv1[] = { "truncate", "-s", "64M", (char *)path, NULL };
	char *argv2[] = { "sgdisk", "-n1:2048:+8M", "-t1:ef00", "-u1:" ESP_GUID, "-n2:0:+40M", "-t2:8304", (char *)path, NULL };
	char *dev = t_strf("%s", path);
	char *argv3[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-E", "offset=9437184", dev, "40960k", NULL };
	char *argv4[] = { "truncate", "-s", "128M", (char *)path, NULL };
	int r = sh(NULL, argv1) || sh(NULL, argv2) || (ext4 && sh(NULL, argv3)) || sh(NULL, argv4);
	free(dev);
	return r;
}

static bool sgdisk_clean(const char *path)
{
	char *out = NULL;
	char *argv[] = { "sgdisk", "--verify", (char *)path, NULL };
	sh(&out, argv);
	bool ok = out && strstr(out, "No problems found");
	if (!ok)
		tap_diag("sgdisk --verify: %s", out ? out : "(none)");
	free(out);
	return ok;
}

/* Partition N's last sector, by sgdisk -i. */
static uint64_t last_sector(const char *path, int n)
{
	char *out = NULL, *opt = t_strf("-i%d", n);
	char *argv[] = { "sgdisk", opt, (char *)path, NULL };
	sh(&out, argv);
	char *p = out ? strstr(out, "Last sector: ") : NULL;
	uint64_t v = p ? strtoull(p + 13, NULL, 10) : 0;
	free(out), free(opt);
	return v;
}

static uint64_t ext4_bytes(const char *path, uint64_t offset)
{
	char *dev = t_strf("%s?offset=%llu", path, (unsigned long long)offset), *out = NULL;
	char *argv[] = { "dumpe2fs", "-h", dev, NULL };
	sh(&out, argv);
	char *b = out ? strstr(out, "Block count:") : NULL, *s = out ? strstr(out, "Block size:") : NULL;
	uint64_t v = b && s ? strtoull(b + 12, NULL, 10) * strtoull(s + 11, NULL, 10) : 0;
	free(dev), free(out);
	return v;
}

static void test_growfs(void)
{
	if (!have_tools) {
		tap_skip("growfs", "sgdisk, sfdisk or mke2fs missing");
		return;
	}
	char *root = tree("{\"growfs\": {\"device\": \"/disk.img\"}, \"steps\": {\"ssh\": {\"enabled\": false}}}");
	char *img = t_strf("%s/disk.img", root);
	if (gpt_image(img, true) != 0)
		abort();
	tap_ok(!sgdisk_clean(img), "growfs: the grown image's backup GPT is misplaced before the step");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "growfs: run exits 0");
	tap_contains(r.out, "step=growfs state=ok partition 2 of '/disk.img' 40.0 MiB -> 118.0 MiB, ext4 grown", "growfs: the detail");
	tap_ok(sgdisk_clean(img), "growfs: sgdisk --verify is clean afterwards");
	/* Last usable LBA 262110; the end rounded down to 1 MiB: sector 260095. */
	tap_is_int(last_sector(img, 2), 260095, "growfs: partition 2 ends at the last whole MiB before the backup GPT");
	tap_is_int(last_sector(img, 1), 18431, "growfs: partition 1 unchanged");
	tap_is_int(ext4_bytes(img, 9437184), (260095 - 18432 + 1) * 512ull, "growfs: the ext4 filesystem fills the partition (real resize2fs)");
	char *c = calls(root), *line = strstr(c, "resize2fs /proc/self/fd/"), *want = line ? strndup(line, strcspn(line, "\n")) : NULL;
	tap_ok(want && strstr(want, "?offset=9437184 120832K"),
	       "growfs: resize2fs through the runner, given the image opened inside the root, with the offset syntax");
	free(want), free(c);
	t_result_free(&r);
	char *p = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(p);
	free(p);
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	tap_ok(r.status == 0 && STREQ(before, after) && strstr(r.out, "step=growfs state=skipped already done"),
	       "growfs: a second run changes nothing");
	free(before), free(after);
	t_result_free(&r);
	free(img);
	t_cleanup(root);

	/* The root device found through mountinfo and sysfs (a fixture /sys; /dev/vda is an image). */
	root = tree("{\"steps\": {\"ssh\": {\"enabled\": false}}}");
	img = t_strf("%s/dev/vda", root);
	char *d = t_strf("%s/dev", root);
	mkdir_p(d, 0755);
	free(d);
	if (gpt_image(img, true) != 0)
		abort();
	t_write(root, "proc/self/mountinfo", "22 1 0:21 / / rw - overlay overlay rw\n"
					      "25 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw\n"
					      "26 25 254:1 / /boot/efi rw - vfat /dev/vda1 rw\n");
	t_write(root, "sys/devices/virtual/block/vda/uevent", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n");
	t_write(root, "sys/devices/virtual/block/vda/vda2/uevent", "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\n");
	t_write(root, "sys/devices/virtual/block/vda/vda2/partition", "2\n");
	d = t_strf("%s/sys/dev/block", root);
	mkdir_p(d, 0755);
	char *link = t_strf("%s/254:2", d);
	if (symlink("../../devices/virtual/block/vda/vda2", link) < 0)
		abort();
	free(link), free(d);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=growfs state=ok partition 2 of '/dev/vda' 40.0 MiB -> 118.0 MiB, ext4 grown",
		     "growfs: the root device from mountinfo and sysfs");
	tap_ok(sgdisk_clean(img) && last_sector(img, 2) == 260095, "growfs: ... grown and clean");
	t_result_free(&r);
	free(img);
	t_cleanup(root);

	/* MBR: the last partition's record grows; no filesystem in it here. */
	root = tree("{\"growfs\": {\"device\": \"/mbr.img\"}, \"steps\": {\"ssh\": {\"enabled\": false}}}");
	img = t_strf("%s/mbr.img", root);
	char *t1[] = { "truncate", "-s", "64M", img, NULL }, *t2[] = { "truncate", "-s", "256M", img, NULL };
	sh(NULL, t1);
	char *sf[] = { "sfdisk", "-q", img, NULL };
	const char *script = "label: dos\nstart=2048, size=16384, type=c\nstart=18432, size=40960, type=83\n";
	char *sfp = t_strf("%s.sfdisk", img);
	int in = open(sfp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(sfp);
	if (in < 0 || write(in, script, strlen(script)) < 0 || lseek(in, 0, SEEK_SET) < 0)
		abort();
	struct run_opts o = { .in_fd = in };
	run_argv(sf, &o);
	close(in);
	sh(NULL, t2);
	r = t_run(root, NULL);
	char *out = NULL;
	char *js[] = { "sfdisk", "--json", img, NULL };
	sh(&out, js);
	tap_contains(out, "\"start\": 18432,\n            \"size\": 505856", "growfs: MBR partition 2 fills the disk (sfdisk --json)");
	tap_contains(r.out, "step=growfs state=ok partition 2 of '/mbr.img' 20.0 MiB -> 247.0 MiB", "growfs: MBR detail");
	free(out);
	t_result_free(&r);
	r = t_run(root, "PMOVES_FIRSTBOOT_RUNNER=/bin/true");
	t_result_free(&r);
	free(img);
	t_cleanup(root);

	/* MBR with an ext4 that fills its partition, as a "size": "auto" image has (mke2fs -T
	 * default, 4 KiB blocks): both the record and the filesystem grow. */
	root = tree("{\"growfs\": {\"device\": \"/mbr.img\"}, \"steps\": {\"ssh\": {\"enabled\": false}}}");
	img = t_strf("%s/mbr.img", root);
	char *u1[] = { "truncate", "-s", "64M", img, NULL }, *u2[] = { "truncate", "-s", "256M", img, NULL };
	char *usf[] = { "sfdisk", "-q", img, NULL }, *ujs[] = { "sfdisk", "--json", img, NULL };
	sh(NULL, u1);
	sfp = t_strf("%s.sfdisk", img);
	in = open(sfp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(sfp);
	if (in < 0 || write(in, script, strlen(script)) < 0 || lseek(in, 0, SEEK_SET) < 0)
		abort();
	o.in_fd = in;
	run_argv(usf, &o);
	close(in);
	char *mk[] = { "mke2fs", "-q", "-F", "-t", "ext4", "-T", "default", "-E", "offset=9437184", img, "20480k", NULL };
	sh(NULL, mk);
	sh(NULL, u2);
	r = t_run(root, NULL);
	out = NULL;
	sh(&out, ujs);
	tap_contains(r.out, "step=growfs state=ok partition 2 of '/mbr.img' 20.0 MiB -> 247.0 MiB, ext4 grown",
		     "growfs: MBR partition 2 and its ext4 grown");
	tap_contains(out, "\"start\": 18432,\n            \"size\": 505856", "growfs: ... the MBR record fills the disk");
	tap_is_int(ext4_bytes(img, 9437184), 505856 * 512ull, "growfs: ... the ext4 filesystem fills the partition (real resize2fs)");
	struct stat st;
	tap_ok(stat(img, &st) == 0 && st.st_size == 256 << 20, "growfs: ... the image keeps its size after resize2fs");
	free(out);
	t_result_free(&r);
	free(img);
	t_cleanup(root);

	/* A tree without /proc: nothing to grow, said so. */
	root = tree("{\"steps\": {\"ssh\": {\"enabled\": false}}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=growfs state=skipped the root filesystem is not on a block device", "growfs: no root device, skipped");
	t_result_free(&r);
	t_cleanup(root);
}

/* ---- efiboot ---- */

#define GLOBAL "-8be4df61-93ca-11d2-aa0d-00e098032b8c" /* EFI_GLOBAL_VARIABLE */

static void efivar(const char *root, const char *name, const uint8_t *val, size_t len)
{
	char *p = t_strf("%s/sys/firmware/efi/efivars/%s" GLOBAL, root, name);
	uint8_t *buf = malloc(len + 4);
	memcpy(buf, "\x07\x00\x00\x00", 4);
	memcpy(buf + 4, val, len);
	char *dir = t_strf("%s/sys/firmware/efi/efivars", root);
	mkdir_p(dir, 0755);
	if (write_file_atomic(p, buf, len + 4, 0644) < 0)
		abort();
	free(p), free(buf), free(dir);
}

static size_t utf16(uint8_t *out, const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		out[n++] = (uint8_t)*s;
		out[n++] = 0;
	}
	out[n++] = 0;
	out[n++] = 0;
	return n;
}

/* The load option UEFI 2.10 3.1.3 describes, built byte by byte: ATTR, FilePathListLength,
 * Description, HD(PART,GPT,GUID,START,SIZE)/File(PATH)/End. GUID in its on-disk order. */
static size_t load_option(uint8_t *out, const char *desc, uint32_t part, uint64_t start, uint64_t size,
			  const uint8_t guid[16], const char *path)
{
	uint8_t dp[512];
	size_t n = 0;
	dp[n++] = 4, dp[n++] = 1, dp[n++] = 42, dp[n++] = 0;
	uint32_t p32 = htole32(part);
	uint64_t s64 = htole64(start), z64 = htole64(size);
	memcpy(dp + n, &p32, 4), n += 4;
	memcpy(dp + n, &s64, 8), n += 8;
	memcpy(dp + n, &z64, 8), n += 8;
	memcpy(dp + n, guid, 16), n += 16;
	dp[n++] = 2, dp[n++] = 2;
	if (path) {
		uint8_t f[256];
		size_t fl = utf16(f, path);
		dp[n++] = 4, dp[n++] = 4, dp[n++] = (uint8_t)(fl + 4), dp[n++] = 0;
		memcpy(dp + n, f, fl), n += fl;
	}
	dp[n++] = 0x7f, dp[n++] = 0xff, dp[n++] = 4, dp[n++] = 0;
	size_t k = 0;
	out[k++] = 1, out[k++] = 0, out[k++] = 0, out[k++] = 0;
	out[k++] = (uint8_t)n, out[k++] = (uint8_t)(n >> 8);
	k += utf16(out + k, desc);
	memcpy(out + k, dp, n);
	return k + n;
}

/* ESP_GUID 1B4E28BA-2FA1-11D2-883F-B9A761BDE3FB on disk: first three fields little-endian. */
static const uint8_t esp_guid_disk[16] = { 0xba, 0x28, 0x4e, 0x1b, 0xa1, 0x2f, 0xd2, 0x11,
					   0x88, 0x3f, 0xb9, 0xa7, 0x61, 0xbd, 0xe3, 0xfb };

static char *efi_tree(void)
{
	char *root = tree("{\"efiboot\": {\"device\": \"/disk.img\"}, \"steps\": {\"ssh\": {\"enabled\": false}}}");
	char *img = t_strf("%s/disk.img", root);
	if (gpt_image(img, false) != 0)
		abort();
	free(img);
	efivar(root, "SecureBoot", (const uint8_t *)"\x01", 1);
	efivar(root, "SetupMode", (const uint8_t *)"\x00", 1);
	efivar(root, "BootOrder", (const uint8_t *)"\x00\x00", 2);
	/* The firmware's own entry: PciRoot(0)/Pci(1,0), no file. */
	uint8_t fw[] = { 1, 0, 0, 0, 22, 0, 'Q', 0, 'E', 0, 'M', 0, 'U', 0, 0, 0, 2, 1, 12, 0, 0xd0, 0x41, 0x03, 0x0a, 0, 0, 0, 0,
			 1, 1, 6, 0, 0, 1, 0x7f, 0xff, 4, 0 };
	efivar(root, "Boot0000", fw, sizeof(fw));
	t_write(root, "boot/efi/EFI/BOOT/BOOTX64.EFI", "MZ");
	return root;
}

static void test_efiboot(void)
{
	if (!have_tools) {
		tap_skip("efiboot", "sgdisk missing");
		return;
	}
	char *root = efi_tree();
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "efiboot: run exits 0");
	tap_contains(r.out,
		     "step=efiboot state=ok Secure Boot enabled; Boot0001 'PMOVES' made for '\\EFI\\BOOT\\BOOTX64.EFI' on partition 1, first in BootOrder",
		     "efiboot: the detail");
	uint8_t want[512];
	size_t wl = load_option(want, "PMOVES", 1, 2048, 16384, esp_guid_disk, "\\EFI\\BOOT\\BOOTX64.EFI");
	char *p = t_strf("%s/sys/firmware/efi/efivars/Boot0001" GLOBAL, root), *have = NULL;
	size_t hl = 0;
	read_file(p, 4096, &have, &hl);
	tap_ok(have && hl == wl + 4 && !memcmp(have, "\x07\x00\x00\x00", 4) && !memcmp(have + 4, want, wl),
	       "efiboot: Boot0001 holds the load option, byte for byte");
	free(have), free(p);
	p = t_strf("%s/sys/firmware/efi/efivars/BootOrder" GLOBAL, root);
	read_file(p, 4096, &have, &hl);
	tap_ok(have && hl == 8 && !memcmp(have, "\x07\x00\x00\x00\x01\x00\x00\x00", 8), "efiboot: BootOrder is 0001,0000");
	free(have), free(p);
	t_result_free(&r);

	p = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(p);
	free(p);
	char *before = t_tree_digest(root, true);
	r = t_run(root, NULL);
	char *after = t_tree_digest(root, true);
	tap_ok(r.status == 0 && STREQ(before, after) &&
		       strstr(r.out, "step=efiboot state=skipped Secure Boot enabled; Boot0001 is '\\EFI\\BOOT\\BOOTX64.EFI' on partition 1"),
	       "efiboot: a second run changes nothing and says why");
	free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);

	/* An entry for our loader exists but is not in BootOrder (a cut between the two writes),
	 * with systemd-boot on the ESP and Secure Boot off: put first, nothing new made. */
	root = efi_tree();
	efivar(root, "SecureBoot", (const uint8_t *)"\x00", 1);
	t_write(root, "boot/efi/EFI/systemd/systemd-bootx64.efi", "MZ");
	uint8_t opt[512];
	size_t ol = load_option(opt, "Linux Boot Manager", 1, 2048, 16384, esp_guid_disk, "\\EFI\\SYSTEMD\\SYSTEMD-BOOTX64.EFI");
	efivar(root, "Boot0003", opt, ol);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=efiboot state=ok Secure Boot disabled; Boot0003 found for '\\EFI\\systemd\\systemd-bootx64.efi'",
		     "efiboot: an existing entry (path case aside) is found and put first");
	p = t_strf("%s/sys/firmware/efi/efivars/BootOrder" GLOBAL, root);
	char *have2 = NULL;
	read_file(p, 4096, &have2, &hl);
	tap_ok(have2 && hl == 8 && !memcmp(have2 + 4, "\x03\x00\x00\x00", 4) && !t_exists(root, "sys/firmware/efi/efivars/Boot0001" GLOBAL),
	       "efiboot: BootOrder 0003,0000 and no new entry");
	free(have2), free(p);
	t_result_free(&r);
	t_cleanup(root);

	root = tree("{\"steps\": {\"ssh\": {\"enabled\": false}}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=efiboot state=skipped not a UEFI machine", "efiboot: skipped cleanly without /sys/firmware/efi");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_schema(void)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "{\"growfs\": {\"device\": \"dev/vda\"}}", ".growfs.device: 'dev/vda' is not an absolute path" },
		{ "{\"growfs\": {\"size\": 1}}", ".growfs.size: unknown key" },
		{ "{\"ssh\": {\"rsa\": \"yes\"}}", ".ssh.rsa: must be true or false" },
		{ "{\"ssh\": {\"password_authentication\": 0}}", ".ssh.password_authentication: must be true or false" },
		{ "{\"efiboot\": {\"label\": \"x\"}}", ".efiboot.label: unknown key" },
	};
	char *root = t_tree();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t_write(root, "bad.json", bad[i].json);
		char *f = t_strf("%s/bad.json", root);
		char *argv[] = { "pmoves-firstboot", "validate", f, NULL };
		struct t_result r = t_fb(root, NULL, argv);
		char *want = t_strf("%s: %s", f, bad[i].msg);
		if (!tap_ok(r.status == 2 && r.err && strstr(r.err, want), "schema: %s", bad[i].msg))
			tap_diag("got %d '%s'", r.status, r.err);
		free(want), free(f);
		t_result_free(&r);
	}
	t_cleanup(root);
}

/* ---- --root and symlinks out of the tree ---- */

static char *file_digest(const char *path)
{
	char hex[65];
	return sha256_file(path, hex) < 0 ? strdup("(none)") : strdup(hex);
}

/* /etc/ssh a symlink out of the tree (absolute, or "../.."): ssh-keygen writes nothing there. */
static void test_root_escape_ssh(void)
{
	for (int rel = 0; rel < 2; rel++) {
		char *root = tree("{\"steps\": {\"growfs\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}}");
		char *sentinel = t_beside(root, "sentinel");
		t_escape_link(root, "etc/ssh", sentinel, rel);
		struct t_result r = t_run(root, NULL);
		const char *how = rel ? "../.." : "absolute";
		tap_is_int((long long)t_dir_entries(sentinel), 0, "--root: etc/ssh a symlink (%s) out of the tree: no host key outside", how);
		tap_ok(strstr(r.out, "step=ssh state=failed cannot make '/etc/ssh' in the root: ") ||
			       (strstr(r.out, "step=ssh state=ok") && t_exists(root, "etc/ssh/ssh_host_ed25519_key")),
		       "--root: ssh through a symlink (%s): keys inside the tree, or fails saying so", how);
		t_result_free(&r);
		free(sentinel);
		t_cleanup(root);
	}
}

/* The image's directory a symlink that the root resolves to a directory inside the tree but
 * the host to one outside, holding an image of its own: resize2fs grows the tree's image, the
 * one outside is left as it was. */
static void test_root_escape_growfs(void)
{
	if (!have_tools) {
		tap_skip("growfs through a symlink", "sgdisk, sfdisk or mke2fs missing");
		return;
	}
	for (int rel = 0; rel < 2; rel++) {
		char *root = tree("{\"growfs\": {\"device\": \"/images/disk.img\"}, \"steps\": {\"ssh\": {\"enabled\": false}}}");
		char *outside = t_beside(root, "sentinel"), *victim = t_strf("%s/disk.img", outside);
		t_escape_link(root, "images", outside, rel);
		/* Where the root resolves the link: ROOT + its absolute target, or ROOT/sentinel. */
		char *inside = rel ? t_strf("%s/sentinel", root) : t_strf("%s%s", root, outside), *img = t_strf("%s/disk.img", inside);
		mkdir_p(inside, 0755);
		if (gpt_image(img, true) != 0 || gpt_image(victim, true) != 0)
			abort();
		char *before = file_digest(victim);
		struct t_result r = t_run(root, NULL);
		char *after = file_digest(victim);
		const char *how = rel ? "../.." : "absolute";
		tap_is_str(after, before, "--root: growfs through a symlink (%s): the image outside the tree is not touched", how);
		tap_ok(strstr(r.out, "step=growfs state=ok partition 2 of '/images/disk.img' 40.0 MiB -> 118.0 MiB, ext4 grown") &&
			       ext4_bytes(img, 9437184) == (260095 - 18432 + 1) * 512ull,
		       "--root: growfs through a symlink (%s): the tree's image and its filesystem grown", how);
		t_result_free(&r);
		free(before), free(after), free(outside), free(victim), free(inside), free(img);
		t_cleanup(root);
	}
}

/* The efivars directory a symlink out of the tree: no variable written outside. */
static void test_root_escape_efiboot(void)
{
	if (!have_tools) {
		tap_skip("efiboot through a symlink", "sgdisk missing");
		return;
	}
	for (int rel = 0; rel < 2; rel++) {
		char *root = efi_tree(), *sentinel = t_beside(root, "sentinel"), *vars = t_strf("%s/sys/firmware/efi/efivars", root);
		rm_rf(vars);
		t_escape_link(root, "sys/firmware/efi/efivars", sentinel, rel);
		struct t_result r = t_run(root, NULL);
		const char *how = rel ? "../.." : "absolute";
		tap_is_int((long long)t_dir_entries(sentinel), 0, "--root: efivars a symlink (%s) out of the tree: no variable written outside", how);
		tap_contains(r.out, "step=efiboot state=failed cannot open '/sys/firmware/efi/efivars' in the root: ",
			     "--root: efiboot through a symlink (%s): fails saying so", how);
		t_result_free(&r);
		free(sentinel), free(vars);
		t_cleanup(root);
	}
}

/* The disk growfs and efiboot open is checked on the fd they get: a FIFO or a character device
 * where the disk was is refused at once, never waited on; an image file and a block device
 * are opened. */
static void test_blockdev_open(void)
{
	char *root = t_tree();
	t_write(root, "images/disk.img", "x");
	char *fifo = t_strf("%s/images/fifo", root), *null = t_strf("%s/images/null", root);
	if (mkfifo(fifo, 0600) < 0 || mknod(null, S_IFCHR | 0600, makedev(1, 3)) < 0)
		abort();
	fb_root_set(root);
	char *msg = NULL;
	struct fb_blockdev d = { .disk = "/images/fifo" };
	alarm(10); /* a wait on the FIFO is a failure, not a hang */
	int fd = fb_blockdev_open(&d, O_RDWR, &msg);
	tap_ok(fd == -ENOTBLK && msg && STREQ(msg, "'/images/fifo' is not a block device or an image file"),
	       "blockdev open: a FIFO is refused at once, saying so");
	free(msg), msg = NULL;
	d.disk = "/images/null";
	tap_ok(fb_blockdev_open(&d, O_RDONLY, &msg) == -ENOTBLK, "blockdev open: a character device is refused");
	free(msg), msg = NULL;
	d.disk = "/images/disk.img";
	fd = fb_blockdev_open(&d, O_RDONLY, &msg);
	tap_ok(fd >= 0, "blockdev open: an image file is opened");
	if (fd >= 0)
		close(fd);
	alarm(0);
	free(msg);
	fb_root_set("/");
	free(fifo), free(null);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to chown files in the test trees");
	if (find_program("ssh-keygen", NULL) < 0 || find_program("resize2fs", NULL) < 0)
		tap_skip_all("ssh-keygen or resize2fs not installed");
	have_tools = find_program("sgdisk", NULL) == 0 && find_program("sfdisk", NULL) == 0 &&
		     find_program("mke2fs", NULL) == 0 && find_program("dumpe2fs", NULL) == 0;
	test_blockdev_open();
	test_users();
	test_users_no_sudo();
	test_users_crash();
	test_ssh();
	test_growfs();
	test_efiboot();
	test_root_escape_ssh();
	test_root_escape_growfs();
	test_root_escape_efiboot();
	test_schema();
	return tap_done();
}
