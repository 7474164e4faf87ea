/* The default boot entry of each loader the tree can have (fb-boot-default.c), on fixture
 * trees: systemd-boot (entries as the builder and kernel-install write them, loader.conf, the
 * LoaderEntryDefault EFI variable), GRUB (grub.cfg as update-grub writes it; update-grub itself
 * is a stand-in, tests/fixtures/standins/update-grub, run by the recording runner),
 * proxmox-boot-tool in systemd-boot mode, and none. */
#include "../firstboot/fb-boot.h"
#include "run.h"
#include "test-fb-lib.h"

#include <limits.h>

#define ESP_ENTRIES "boot/efi/loader/entries"
#define LOADER_CONF "boot/efi/loader/loader.conf"
#define DEFAULT_VAR "sys/firmware/efi/efivars/LoaderEntryDefault-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
#define GUID "0a1b2c3d-0000-4000-8000-00000000abcd"

static char update_grub[PATH_MAX];

/* The runner: records argv beside the tree; "update-grub" (in chroot) is the stand-in. */
static void stand_in(const char *root)
{
	char *top = t_beside(root, "");
	top[strlen(top) - 1] = '\0';
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in runner: records argv; update-grub is tests/fixtures/standins/update-grub\n"
			      "echo \"$*\" >> %s/calls\n"
			      "[ \"$1\" = chroot ] && shift 2\n"
			      "[ \"$1\" = update-grub ] && exec sh %s %s\n"
			      "exit 0\n",
			      top, update_grub, root);
	char *sp = t_strf("%s/stand-in", top);
	if (write_file_atomic(sp, script, strlen(script), 0755) < 0)
		abort();
	setenv("PMOVES_FIRSTBOOT_RUNNER", sp, 1);
	free(sp), free(script), free(top);
}

/* What update-grub would make of the tree now (the stand-in, run directly). */
static void mkgrub(const char *root)
{
	char *argv[] = { "sh", update_grub, (char *)root, NULL };
	struct run_opts o = { 0 };
	if (run_argv(argv, &o) != 0)
		abort();
}

static char *calls_take(const char *root)
{
	char *p = t_beside(root, "calls"), *text = t_read(p, NULL);
	unlink(p);
	free(p);
	return text ? text : strdup("");
}

static char *fixture(void)
{
	char *root = t_tree();
	stand_in(root);
	if (fb_root_set(root) < 0)
		abort();
	return root;
}

static void kernels(const char *root, const char *const *releases)
{
	for (; *releases; releases++) {
		char *rel = t_strf("boot/vmlinuz-%s", *releases);
		t_write(root, rel, "stand-in kernel\n");
		free(rel);
	}
}

/* An entry as kernel-install (systemd 252) writes it: with sort-key; as the image builder
 * writes it (boot-systemd-boot.c): without. */
static void sd_entry(const char *root, const char *release, bool sort_key)
{
	char *rel = t_strf(ESP_ENTRIES "/pmoves-%s.conf", release),
	     *text = t_strf("title      Debian GNU/Linux 12 (bookworm)\nversion    %s\n%soptions    root=UUID=x ro\n"
			    "linux      /pmoves/%s/linux\ninitrd     /pmoves/%s/initrd.img-%s\n",
			    release, sort_key ? "sort-key   debian\n" : "", release, release, release);
	t_write(root, rel, text);
	free(rel), free(text);
}

/* The tree's loader, and its default entry in *D (empty when it cannot be read). */
static struct fb_boot get(struct fb_boot_default *d)
{
	struct fb_boot b = fb_boot_detect();
	if (fb_boot_default_get(&b, d) < 0)
		*d = (struct fb_boot_default){ 0 };
	return b;
}

static void test_vercmp(void)
{
	static const struct {
		const char *a, *b;
		int sign;
	} cases[] = {
		{ "6.8.12-4-pve", "6.1.0-28-amd64", 1 }, { "6.12.9-amd64", "6.8.12-4-pve", 1 }, { "6.8.12-4-pve", "6.8.12-10-pve", -1 },
		{ "1.0~rc1", "1.0", -1 },                { "1.0", "1.0.1", -1 },                 { "1.0-1", "1.0.1", -1 },
		{ "010", "10", 0 },                      { "1a", "1", 1 },                       { "a", "1", -1 },
		{ "pmoves-6.8.12-4-pve.conf", "pmoves-6.1.0-28-amd64.conf", 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = fb_vercmp(cases[i].a, cases[i].b), back = fb_vercmp(cases[i].b, cases[i].a);
		int s = r < 0 ? -1 : r > 0;
		tap_ok(s == cases[i].sign && (back < 0 ? -1 : back > 0) == -cases[i].sign, "vercmp: '%s' vs '%s' is %d", cases[i].a,
		       cases[i].b, cases[i].sign);
	}
	char *root = fixture();
	kernels(root, (const char *const[]){ "6.1.0-28-amd64", "6.8.12-4-pve", "6.1.0-27-amd64", NULL });
	t_write(root, "boot/config-6.8.12-4-pve", "x\n");
	char **k = NULL;
	int r = fb_boot_kernels(&k);
	char *joined = k ? strv_join(k, " ") : NULL;
	tap_is_str(joined, "6.8.12-4-pve 6.1.0-28-amd64 6.1.0-27-amd64", "the kernels in /boot, newest first (r %d)", r);
	free(joined);
	strv_free(k);
	t_cleanup(root);
}

static void test_systemd_boot(void)
{
	char *root = fixture();
	t_write(root, "etc/kernel/cmdline", "root=UUID=x ro\n");
	t_write(root, LOADER_CONF, "timeout 0\neditor no\nconsole-mode keep\n");
	sd_entry(root, "6.1.0-28-amd64", false);
	sd_entry(root, "6.8.12-4-pve", true);
	struct fb_boot_default d;
	struct fb_boot b = get(&d);
	tap_ok(b.loader == FB_LOADER_SYSTEMD_BOOT && d.release && STREQ(d.release, "6.8.12-4-pve") &&
		       STREQ(d.entry, "pmoves-6.8.12-4-pve.conf") && strstr(d.how, "the first of the systemd-boot entries (no default set)"),
	       "systemd-boot: the kernel-install entry (with a sort key) sorts before the builder's: the default");
	fb_boot_default_done(&d);
	char *what = NULL, *msg = NULL;
	tap_is_int(fb_boot_default_set(&b, "-pve", &what, &msg), 0, "systemd-boot: already the default: nothing changed");

	/* loader.conf names the Debian entry. */
	t_write(root, LOADER_CONF, "timeout 0\ndefault pmoves-6.1.0-28-amd64.conf\neditor no\n");
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.1.0-28-amd64") &&
		       strstr(d.how, "'default pmoves-6.1.0-28-amd64.conf' in '/boot/efi/loader/loader.conf'"),
	       "systemd-boot: loader.conf's default picks the Debian entry");
	fb_boot_default_done(&d);
	int r = fb_boot_default_set(&b, "-pve", &what, &msg);
	char *conf = t_read(root, LOADER_CONF);
	tap_ok(r == 1 && conf && STREQ(conf, "timeout 0\ndefault *-pve.conf\neditor no\n") && what &&
		       strstr(what, "'default *-pve.conf' in '/boot/efi/loader/loader.conf' (the default was 'pmoves-6.1.0-28-amd64.conf'"),
	       "systemd-boot: made the default with 'default *-pve.conf', the other lines kept");
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.8.12-4-pve"), "systemd-boot: ... and read back, the Proxmox entry");
	fb_boot_default_done(&d);
	free(what), free(conf);
	what = NULL;

	/* Without sort keys a newer Debian kernel sorts first; the glob still picks the Proxmox
	 * entry. */
	char *p = t_strf("%s/" ESP_ENTRIES "/pmoves-6.8.12-4-pve.conf", root);
	unlink(p);
	free(p);
	sd_entry(root, "6.8.12-4-pve", false);
	sd_entry(root, "6.12.9-amd64", false);
	t_write(root, LOADER_CONF, "timeout 0\n");
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.12.9-amd64"), "systemd-boot: entries without sort keys: the newest version first");
	fb_boot_default_done(&d);
	r = fb_boot_default_set(&b, "-pve", &what, &msg);
	conf = t_read(root, LOADER_CONF);
	tap_ok(r == 1 && conf && STREQ(conf, "timeout 0\ndefault *-pve.conf\n"), "systemd-boot: loader.conf gets a default line");
	free(what), free(conf);
	what = NULL;

	/* The EFI variable picks the Debian entry over loader.conf: not ours to change. */
	static const char var[] = { 7, 0, 0, 0, 'p', 0, 'm', 0, 'o', 0, 'v', 0, 'e', 0, 's', 0, '-', 0, '6', 0, '.', 0, '1', 0, '.', 0, '0',
				    0, '-', 0, '2', 0, '8', 0, '-', 0, 'a', 0, 'm', 0, 'd', 0, '6', 0, '4', 0, '.', 0, 'c', 0, 'o', 0, 'n', 0, 'f', 0, 0, 0 };
	char *vp = t_strf("%s/" DEFAULT_VAR, root), *vd = strndup(vp, (size_t)(strrchr(vp, '/') - vp));
	mkdir_p(vd, 0755);
	if (write_file_atomic(vp, var, sizeof(var), 0644) < 0)
		abort();
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.1.0-28-amd64") && strstr(d.how, "the EFI variable LoaderEntryDefault ('pmoves-6.1.0-28-amd64.conf')"),
	       "systemd-boot: the LoaderEntryDefault EFI variable comes before loader.conf");
	fb_boot_default_done(&d);
	r = fb_boot_default_set(&b, "-pve", &what, &msg);
	tap_ok(r == -EBUSY && msg && strstr(msg, "chosen by the EFI variable LoaderEntryDefault") && strstr(msg, "bootctl set-default \"\""),
	       "systemd-boot: an EFI variable choosing another entry: refused, saying how to remove it");
	free(msg), free(vp), free(vd);
	msg = NULL;
	t_cleanup(root);

	/* No Proxmox entry at all. */
	root = fixture();
	t_write(root, "etc/kernel/cmdline", "root=UUID=x ro\n");
	sd_entry(root, "6.1.0-28-amd64", false);
	b = fb_boot_detect();
	r = fb_boot_default_set(&b, "-pve", &what, &msg);
	tap_ok(r == -ENOENT && msg && strstr(msg, "no systemd-boot entry boots a '*-pve' kernel"), "systemd-boot: no Proxmox entry: says so");
	free(msg);
	msg = NULL;
	t_cleanup(root);
}

static void test_grub(void)
{
	char *root = fixture();
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
	kernels(root, (const char *const[]){ "6.1.0-28-amd64", "6.8.12-4-pve", NULL });
	mkgrub(root);
	struct fb_boot_default d;
	struct fb_boot b = get(&d);
	tap_ok(b.loader == FB_LOADER_GRUB && d.release && STREQ(d.release, "6.8.12-4-pve") && STREQ(d.entry, "Debian GNU/Linux") &&
		       strstr(d.how, "GRUB's default '0' ('/boot/grub/grub.cfg')"),
	       "GRUB: default 0, the first entry boots the newest kernel, the Proxmox one");
	fb_boot_default_done(&d);

	/* The Debian kernel pinned by its id in a submenu. */
	t_write(root, "etc/default/grub",
		"GRUB_DEFAULT=\"gnulinux-advanced-" GUID ">gnulinux-6.1.0-28-amd64-advanced-" GUID "\"\nGRUB_TIMEOUT=5\n");
	mkgrub(root);
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.1.0-28-amd64") && STREQ(d.entry, "Debian GNU/Linux, with Linux 6.1.0-28-amd64"),
	       "GRUB: a default by submenu and entry id is followed");
	fb_boot_default_done(&d);
	char *what = NULL, *msg = NULL;
	int r = fb_boot_default_set(&b, "-pve", &what, &msg);
	char *g = t_read(root, "etc/default/grub"), *c = calls_take(root), *want = t_strf("chroot %s update-grub\n", root);
	tap_ok(r == 1 && g && STREQ(g, "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n") && c && STREQ(c, want) && what &&
		       strstr(what, "GRUB_DEFAULT=0 in '/etc/default/grub' and update-grub (the default was 'Debian GNU/Linux, with Linux 6.1.0-28-amd64'"),
	       "GRUB: made the default: GRUB_DEFAULT=0 (the first entry, the newest kernel), update-grub run");
	if (r != 1)
		tap_diag("r %d msg %s", r, msg ? msg : "");
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.8.12-4-pve"), "GRUB: ... and the rebuilt menu boots it");
	fb_boot_default_done(&d);
	free(what), free(g), free(c), free(want);
	what = NULL;

	/* saved: grubenv's saved_entry, by title path. */
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=saved\n");
	mkgrub(root);
	t_write(root, "boot/grub/grubenv", "# GRUB Environment Block\nsaved_entry=Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.1.0-28-amd64\n####\n");
	b = get(&d);
	tap_ok(d.release && STREQ(d.release, "6.1.0-28-amd64") && strstr(d.how, "GRUB's saved entry 'Advanced options for Debian GNU/Linux>"),
	       "GRUB: GRUB_DEFAULT=saved: grubenv's saved entry, by titles");
	fb_boot_default_done(&d);

	/* A newer Debian kernel (backports) comes first: the Proxmox entry in the submenu, by ids. */
	kernels(root, (const char *const[]){ "6.12.9-amd64", NULL });
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=0\n");
	mkgrub(root);
	b = get(&d);
	r = fb_boot_default_set(&b, "-pve", &what, &msg);
	g = t_read(root, "etc/default/grub");
	tap_ok(d.release && STREQ(d.release, "6.12.9-amd64") && r == 1 && g &&
		       STREQ(g, "GRUB_DEFAULT=\"gnulinux-advanced-" GUID ">gnulinux-6.8.12-4-pve-advanced-" GUID "\"\n"),
	       "GRUB: a newer kernel first: the Proxmox entry named by its submenu's and its own id");
	fb_boot_default_done(&d);
	free(what), free(g);
	what = NULL;

	/* GRUB_DEFAULT set again in /etc/default/grub.d: the rebuilt menu still boots Debian's. */
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=0\n");
	t_write(root, "etc/default/grub.d/local.cfg", "GRUB_DEFAULT=\"Advanced options for Debian GNU/Linux>Debian GNU/Linux, with Linux 6.12.9-amd64\"\n");
	mkgrub(root);
	b = fb_boot_detect();
	r = fb_boot_default_set(&b, "-pve", &what, &msg);
	tap_ok(r == -EIO && msg && strstr(msg, "but after 'update-grub' the default is still 'Debian GNU/Linux, with Linux 6.12.9-amd64'") &&
		       strstr(msg, "'/etc/default/grub.d'"),
	       "GRUB: a default set again in grub.d: failed, with the reason");
	free(msg), free(what);
	msg = what = NULL;
	t_cleanup(root);

	/* No menu. */
	root = fixture();
	t_write(root, "etc/default/grub", "GRUB_DEFAULT=0\n");
	b = get(&d);
	tap_ok(!d.release && d.how && strstr(d.how, "no GRUB menu"), "GRUB without grub.cfg: cannot tell, says so");
	fb_boot_default_done(&d);
	t_cleanup(root);
}

static void test_proxmox_boot_tool(void)
{
	char *root = fixture();
	t_write(root, "etc/kernel/proxmox-boot-uuids", "1234-ABCD\n");
	t_write(root, "etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n");
	kernels(root, (const char *const[]){ "6.1.0-28-amd64", "6.8.12-4-pve", NULL });
	struct fb_boot_default d;
	struct fb_boot b = get(&d);
	char *what = NULL, *msg = NULL;
	tap_ok(b.loader == FB_LOADER_PROXMOX && d.release && STREQ(d.release, "6.8.12-4-pve") && strstr(d.how, "the newest kernel in '/boot'") &&
		       fb_boot_default_set(&b, "-pve", &what, &msg) == 0,
	       "proxmox-boot-tool (systemd-boot mode): the newest kernel, the Proxmox one");
	fb_boot_default_done(&d);
	t_write(root, "etc/kernel/proxmox-boot-pin", "6.1.0-28-amd64\n");
	b = get(&d);
	int r = fb_boot_default_set(&b, "-pve", &what, &msg);
	tap_ok(d.release && STREQ(d.release, "6.1.0-28-amd64") && r == -EBUSY && msg && strstr(msg, "pinned in '/etc/kernel/proxmox-boot-pin'") &&
		       strstr(msg, "proxmox-boot-tool kernel pin"),
	       "proxmox-boot-tool: a pin on the Debian kernel: refused, saying how to pin the Proxmox one");
	fb_boot_default_done(&d);
	free(msg);
	t_cleanup(root);

	root = fixture();
	b = get(&d);
	msg = NULL;
	tap_ok(b.loader == FB_LOADER_NONE && !d.release && fb_boot_default_set(&b, "-pve", &what, &msg) == 0,
	       "no boot loader: nothing to tell or change");
	fb_boot_default_done(&d);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	if (!realpath("tests/fixtures/standins/update-grub", update_grub))
		tap_skip_all("tests/fixtures/standins/update-grub not found (run from the top of the tree)");
	test_vercmp();
	test_systemd_boot();
	test_grub();
	test_proxmox_boot_tool();
	return tap_done();
}
