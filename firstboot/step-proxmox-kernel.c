/* proxmox-kernel: the node's name on its address in /etc/hosts, the Proxmox release key
 * (checked against its published SHA-512) and the pve-no-subscription repository, apt-get
 * update and full-upgrade, proxmox-default-kernel; the Proxmox kernel made the boot loader's
 * default entry (fb_boot_default_set()), then a reboot into it. Ok only once that kernel is
 * installed, is the default entry and runs (fb-proxmox.h: the four proxmox steps). */
#include "fb-boot.h"
#include "fb-fetch.h"
#include "fb-hosts.h"
#include "fb-proxmox.h"
#include "firstboot.h"
#include "hash.h"
#include "util.h"

#define SOURCES_LIST "/etc/apt/sources.list.d/pve-install-repo.list"
#define KEY_PATH "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"
#define DEFAULT_COMPONENT "pve-no-subscription"
#define DEFAULT_KEY_URL "https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg"
/* Published by Proxmox beside the download instructions. */
#define DEFAULT_KEY_SHA512                                                                  \
	"7da6fe34168adc6e479327ba517796d4702fa2f8b4f0a9833f5ea6e6b48f6507a6da403a274fe201595e" \
	"dc86a84463d50383d07f64bdde2e3658108db7d6dc87"
#define KEY_MAX (64u * 1024u)

static const char *key_opt(json_object *section, const char *key, const char *def)
{
	json_object *k;
	return json_object_object_get_ex(section, "key", &k) ? fb_json_str(k, key, def) : def;
}

/* ---- /etc/hosts ---- */

/* The address the node is reached at: the config's, else the route's source address. */
static int node_address(json_object *section, char **ret, char **ret_msg)
{
	const char *a = fb_json_str(section, "address", NULL);
	if (a) {
		*ret = strdup(a);
		return *ret ? 0 : -ENOMEM;
	}
	return fb_proxmox_route_source(ret, ret_msg);
}

/* ---- repository and key ---- */

static char *sources_text(json_object *section)
{
	return fb_strdupf("# Written by pmoves-firstboot (proxmox step): change its config, not this file.\n"
			  "deb [arch=amd64] %s %s %s\n",
			  fb_json_str(section, "repository", PROXMOX_DEFAULT_REPOSITORY), fb_json_str(section, "suite", PROXMOX_DEFAULT_SUITE),
			  fb_json_str(section, "component", DEFAULT_COMPONENT));
}

/* 1 the key file is there with the configured SHA-512, 0 not. */
static int key_ok(json_object *section)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = fb_read(KEY_PATH, KEY_MAX, &buf, &len);
	if (r == -ENOENT || r == -EFBIG)
		return 0;
	if (r < 0)
		return r;
	char hex[129];
	if ((r = sha512_hex_of(buf, len, hex)) < 0)
		return r;
	return STREQ(hex, key_opt(section, "sha512", DEFAULT_KEY_SHA512));
}

/* Fetch the key and check it; written only when it is the one the config names. */
static int install_key(json_object *section, char **ret_msg)
{
	const char *url = key_opt(section, "url", DEFAULT_KEY_URL), *want = key_opt(section, "sha512", DEFAULT_KEY_SHA512);
	int r = key_ok(section);
	if (r != 0)
		return r < 0 ? r : 0;
	_cleanup_free_ char *shown = fb_url_shown(url); /* without user:password and query */
	if (fb_dry_run()) {
		fb_would("fetch %s into %s if its SHA-512 is %s", shown ? shown : "?", KEY_PATH, want);
		return 0;
	}
	_cleanup_free_ char *buf = NULL, *err = NULL;
	size_t len;
	if (fb_fetch(url, KEY_MAX, &buf, &len, &err) < 0) {
		*ret_msg = fb_strdupf("the Proxmox release key: %s: trying again on a later run", err ? err : "failed");
		return -EAGAIN;
	}
	char hex[129];
	if (sha512_hex_of(buf, len, hex) < 0)
		return -ENOMEM;
	if (!STREQ(hex, want)) {
		*ret_msg = fb_strdupf("the release key from '%s' has SHA-512 %.16s..., not the expected %.16s...: not installed",
				      shown ? shown : "?", hex, want);
		return -EBADMSG;
	}
	r = fb_write(KEY_PATH, buf, len, 0644, 0, 0);
	if (r < 0)
		*ret_msg = fb_strdupf("cannot write '%s': %s", KEY_PATH, strerror(-r));
	return r;
}

/* ---- the step ---- */

/* The hostname resolves to a non-loopback address only; with "address" in the config,
 * /etc/hosts is exactly what apply would write for it. */
static int hosts_check(json_object *section)
{
	char name[256];
	_cleanup_free_ char *hosts = NULL, *want = NULL;
	const char *addr = fb_json_str(section, "address", NULL);
	if (fb_proxmox_read_hostname(name) < 0)
		return 0;
	int r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (!addr)
		return fb_hosts_name_routable(hosts, name);
	if (!(want = fb_hosts_pin_name(hosts, addr, name)))
		return -ENOMEM;
	return STREQ(want, hosts);
}

/* ---- the Proxmox kernel: installed, the default, running ---- */

#define PVE_SUFFIX "-pve"
/* Written before the reboot into the Proxmox kernel: the boot it was asked in. */
#define REBOOT_MARK "/var/lib/pmoves/proxmox/kernel-reboot"
#define BOOT_ID "/proc/sys/kernel/random/boot_id"

/* The newest Proxmox kernel in /boot into RET: 1, or 0 when there is none, or -errno. */
static int pve_installed(char ret[128])
{
	_cleanup_strv_ char **k = NULL;
	int r = fb_boot_kernels(&k);
	if (r < 0)
		return r;
	for (char **p = k; p && *p; p++)
		if (fb_proxmox_is_pve_kernel(*p)) {
			snprintf(ret, 128, "%s", *p);
			return 1;
		}
	return 0;
}

/* 1: the loader's default entry boots a Proxmox kernel, or there is no loader to ask (the
 * kernel running after the reboot is then what counts); 0: not, *ret_why says what it boots. */
static int default_is_pve(const struct fb_boot *b, char **ret_why)
{
	_cleanup_(fb_boot_default_done) struct fb_boot_default d = { 0 };
	int r = fb_boot_default_get(b, &d);
	if (r < 0) {
		*ret_why = fb_strdupf("cannot tell %s's default entry: %s", fb_loader_name(b->loader), strerror(-r));
		return r;
	}
	if (b->loader == FB_LOADER_NONE || (d.release && fb_proxmox_is_pve_kernel(d.release)))
		return 1;
	*ret_why = fb_strdupf("%s's default entry %s%s%s boots %s%s%s (%s)", fb_loader_name(b->loader), d.entry ? "'" : "",
			      d.entry ? d.entry : "(none)", d.entry ? "'" : "", d.release ? "'" : "",
			      d.release ? d.release : "no kernel it can tell", d.release ? "'" : "", d.how);
	return 0;
}

static char *running_msg(const char *release, const struct fb_boot *b)
{
	return b->loader == FB_LOADER_NONE
		       ? fb_strdupf("running the Proxmox kernel %s (no boot loader configuration found to check the default)", release)
		       : fb_strdupf("running the Proxmox kernel %s, the default boot entry (%s)", release, fb_loader_name(b->loader));
}

/* The repository, key, hosts line and package are in place: what is left is the kernel. */
static int prepared(json_object *section)
{
	_cleanup_strv_ char **pkgs = NULL;
	_cleanup_free_ char *want = sources_text(section);
	int r;
	if (!want)
		return -ENOMEM;
	if ((r = hosts_check(section)) <= 0 || (r = fb_file_is(SOURCES_LIST, want, strlen(want))) <= 0 || (r = key_ok(section)) <= 0)
		return r;
	if ((r = fb_installed_packages(&pkgs)) < 0)
		return r;
	return strv_contains(pkgs, "proxmox-default-kernel");
}

static int kernel_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	char release[128], pve[128];
	_cleanup_free_ char *why = NULL;
	int r = prepared(section);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot check the Proxmox repository and packages: %s", strerror(-r));
		return r;
	}
	/* Ok only when the Proxmox kernel is installed, is the boot loader's default and runs:
	 * installed but not booted (a power cut before the reboot) is not done. */
	if (r == 0 || pve_installed(pve) <= 0 || fb_proxmox_running_kernel(release) < 0 || !fb_proxmox_is_pve_kernel(release))
		return 0;
	struct fb_boot boot = fb_boot_detect();
	if ((r = default_is_pve(&boot, &why)) <= 0)
		return 0;
	*ret_msg = running_msg(release, &boot);
	return 1;
}

/* The Proxmox kernel the default entry of the tree's loader; *ret_what says what changed. */
static int make_default(const struct fb_boot *b, char **ret_what, char **ret_msg)
{
	_cleanup_free_ char *why = NULL;
	int r = fb_boot_default_set(b, PVE_SUFFIX, ret_what, &why);
	if (r < 0)
		*ret_msg = fb_strdupf("the Proxmox kernel is installed but cannot be made the default boot entry: %s",
				      why ? why : strerror(-r));
	return r;
}

/* This boot's ID, or "-" when the tree has none. */
static void boot_id(char ret[64])
{
	if (fb_read_line(BOOT_ID, ret, 64) < 0 || !ret[0] || strchr(ret, ' '))
		snprintf(ret, 64, "-");
}

static enum fb_result kernel_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	char name[256], pve[128], running[128], now[64];
	_cleanup_free_ char *addr = NULL, *hosts = NULL, *hosts_new = NULL, *sources = sources_text(section), *what = NULL,
			    *installed = NULL;
	int r;
	if (!sources)
		return FB_FAILED;
	if ((r = prepared(section)) < 0) {
		*ret_msg = fb_strdupf("cannot check the Proxmox repository and packages: %s", strerror(-r));
		return FB_FAILED;
	}
	if (r == 0 || (r = pve_installed(pve)) == 0) {
		/* The install; without the network (the boot's own run) it ends pending before
		 * anything is changed. */
		if (fb_proxmox_read_hostname(name) < 0) {
			*ret_msg = strdup("no hostname in '/etc/hostname': Proxmox needs one that resolves to the node's address");
			return FB_FAILED;
		}
		if ((r = node_address(section, &addr, ret_msg)) < 0)
			return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
		if ((r = fb_proxmox_probe_repository(section, ret_msg)) < 0)
			return r == -EAGAIN ? FB_PENDING : FB_FAILED;
		if ((r = install_key(section, ret_msg)) < 0)
			return r == -EAGAIN ? FB_PENDING : FB_FAILED;
		r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
		if (r < 0 && r != -ENOENT) {
			*ret_msg = fb_strdupf("cannot read '/etc/hosts': %s", strerror(-r));
			return FB_FAILED;
		}
		if (!(hosts_new = fb_hosts_pin_name(hosts, addr, name)))
			return FB_FAILED;
		if ((r = fb_write("/etc/hosts", hosts_new, strlen(hosts_new), 0644, 0, 0)) < 0 ||
		    (r = fb_write(SOURCES_LIST, sources, strlen(sources), 0644, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot write '/etc/hosts' and '%s': %s", SOURCES_LIST, strerror(-r));
			return FB_FAILED;
		}
		if (fb_dpkg_finish(ret_msg) < 0)
			return FB_FAILED;
		if ((r = fb_apt("update", NULL)) != 0) {
			*ret_msg = fb_strdupf("'apt-get update' exited with %d (a repository unreachable or broken): trying again on "
					      "a later run",
					      r);
			return FB_PENDING;
		}
		if ((r = fb_apt("full-upgrade", NULL)) != 0) {
			*ret_msg = fb_strdupf("'apt-get full-upgrade' exited with %d", r);
			return FB_FAILED;
		}
		char *kernel[] = { "proxmox-default-kernel", NULL };
		if ((r = fb_apt("install", kernel)) != 0) {
			*ret_msg = fb_strdupf("'apt-get install proxmox-default-kernel' exited with %d", r);
			return FB_FAILED;
		}
		installed = fb_strdupf("'%s' is %s in '/etc/hosts'; proxmox-default-kernel installed from '%s'", name, addr,
				       fb_json_str(section, "repository", PROXMOX_DEFAULT_REPOSITORY));
		if (!installed)
			return FB_FAILED;
		if (fb_dry_run()) {
			*ret_msg = fb_strdupf("%s; then the Proxmox kernel the default boot entry, and a reboot into it", installed);
			return FB_REBOOT;
		}
		if ((r = pve_installed(pve)) <= 0) {
			*ret_msg = fb_strdupf("%s, but there is no Proxmox kernel in '/boot' (no 'vmlinuz-*%s')", installed, PVE_SUFFIX);
			return FB_FAILED;
		}
	}
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot list the kernels in '/boot': %s", strerror(-r));
		return FB_FAILED;
	}

	/* The Proxmox kernel installed: the default boot entry, then running. */
	struct fb_boot boot = fb_boot_detect();
	if (make_default(&boot, &what, ret_msg) < 0)
		return FB_FAILED;
	_cleanup_free_ char *head =
		boot.loader == FB_LOADER_NONE
			? fb_strdupf("%s%sthe Proxmox kernel %s is installed (no boot loader configuration found to make it the default)",
				     installed ? installed : "", installed ? "; " : "", pve)
			: fb_strdupf("%s%sthe Proxmox kernel %s is the default boot entry (%s%s%s)", installed ? installed : "",
				     installed ? "; " : "", pve, fb_loader_name(boot.loader), what ? ": " : "", what ? what : "");
	if (!head)
		return FB_FAILED;
	if (fb_proxmox_running_kernel(running) == 0 && fb_proxmox_is_pve_kernel(running)) {
		if (fb_exists(REBOOT_MARK) == 1)
			fb_remove(REBOOT_MARK);
		*ret_msg = TAKE_PTR(head);
		return FB_OK; /* verify confirms */
	}
	/* Asked for in an earlier boot, and this one still runs another kernel: rebooting again
	 * would loop. (The same boot: a power cut before the reboot; reboot now.) */
	_cleanup_free_ char *mark = NULL;
	boot_id(now);
	if (!installed && fb_read(REBOOT_MARK, 256, &mark, NULL) == 0 &&
	    (strncmp(mark, now, strlen(now)) || mark[strlen(now)] != ' ')) {
		*ret_msg = fb_strdupf("%s, but '%s' runs after the reboot into it: the firmware or the boot loader did not "
				      "start the default entry (pick it in the boot menu to see why); not rebooting again",
				      head, running[0] ? running : "unknown");
		return FB_FAILED;
	}
	_cleanup_free_ char *text = fb_strdupf("%s %s\n", now, pve);
	if (!text || (r = fb_write(REBOOT_MARK, text, strlen(text), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", REBOOT_MARK, text ? strerror(-r) : "out of memory");
		return FB_FAILED;
	}
	*ret_msg = fb_strdupf("%s; '%s' runs: reboot into it", head, running[0] ? running : "unknown");
	return FB_REBOOT;
}

static int kernel_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)section;
	_cleanup_strv_ char **pkgs = NULL;
	_cleanup_free_ char *why = NULL;
	char release[128], pve[128];
	int r = fb_installed_packages(&pkgs);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", PROXMOX_DPKG_STATUS, strerror(-r));
		return r;
	}
	if (!strv_contains(pkgs, "proxmox-default-kernel")) {
		*ret_msg = strdup("proxmox-default-kernel is not installed after the reboot");
		return -ENOENT;
	}
	if ((r = pve_installed(pve)) <= 0) {
		*ret_msg = fb_strdupf("proxmox-default-kernel is installed, but there is no Proxmox kernel in '/boot' (no "
				      "'vmlinuz-*%s')",
				      PVE_SUFFIX);
		return r < 0 ? r : -ENOENT;
	}
	fb_proxmox_running_kernel(release);
	struct fb_boot boot = fb_boot_detect();
	int def = default_is_pve(&boot, &why);
	if (!fb_proxmox_is_pve_kernel(release)) {
		*ret_msg = fb_strdupf("the Proxmox kernel %s is installed, but '%s' runs after the reboot: %s", pve,
				      release[0] ? release : "unknown",
				      boot.loader == FB_LOADER_NONE ? "no boot loader configuration found to make it the default"
				      : def > 0 ? "the firmware or the boot loader did not start the default entry (pick it in the boot "
						  "menu to see why)"
						: why ? why : "the boot loader's default is not the Proxmox kernel");
		return -EIO;
	}
	if (def <= 0) {
		*ret_msg = fb_strdupf("the Proxmox kernel %s runs, but the next boot would not start it: %s", release, why ? why : "?");
		return def < 0 ? def : -EIO;
	}
	*ret_msg = running_msg(release, &boot);
	return 0;
}

const struct fb_step step_proxmox_kernel = {
	.name = "proxmox-kernel",
	.config_key = "proxmox",
	.schema = &fb_proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = kernel_check,
	.apply = kernel_apply,
	.verify = kernel_verify,
};

