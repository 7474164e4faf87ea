/* proxmox-kernel: the node's name on its address in /etc/hosts, the Proxmox release key
 * (checked against its published SHA-512) and the pve-no-subscription repository, apt-get
 * update and full-upgrade, proxmox-default-kernel; then a reboot into that kernel
 * (fb-proxmox.h: the four proxmox steps). */
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
	if (fb_dry_run()) {
		printf("%s: would fetch %s into %s if its SHA-512 is %s\n", FB_NAME, url, KEY_PATH, want);
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
				      url, hex, want);
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

static int kernel_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_strv_ char **pkgs = NULL;
	_cleanup_free_ char *want = sources_text(section);
	char release[128];
	int r;
	if (!want)
		return -ENOMEM;
	if ((r = hosts_check(section)) <= 0 || (r = fb_file_is(SOURCES_LIST, want, strlen(want))) <= 0 || (r = key_ok(section)) <= 0)
		return r;
	if ((r = fb_installed_packages(&pkgs)) < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", PROXMOX_DPKG_STATUS, strerror(-r));
		return r;
	}
	/* Installed but not booted (a power cut before the reboot): apply again, which reboots. */
	if (!strv_contains(pkgs, "proxmox-default-kernel") || fb_proxmox_running_kernel(release) < 0 || !fb_proxmox_is_pve_kernel(release))
		return 0;
	*ret_msg = fb_strdupf("running the Proxmox kernel %s", release);
	return 1;
}

static enum fb_result kernel_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	char name[256];
	_cleanup_free_ char *addr = NULL, *hosts = NULL, *hosts_new = NULL, *sources = sources_text(section);
	int r;
	if (!sources)
		return FB_FAILED;
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
	*ret_msg = fb_strdupf("'%s' is %s in '/etc/hosts'; proxmox-default-kernel installed from '%s'; reboot into it",
			      name, addr, fb_json_str(section, "repository", PROXMOX_DEFAULT_REPOSITORY));
	return FB_REBOOT;
}

static int kernel_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)section;
	_cleanup_strv_ char **pkgs = NULL;
	char release[128];
	int r = fb_installed_packages(&pkgs);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", PROXMOX_DPKG_STATUS, strerror(-r));
		return r;
	}
	if (!strv_contains(pkgs, "proxmox-default-kernel")) {
		*ret_msg = strdup("proxmox-default-kernel is not installed after the reboot");
		return -ENOENT;
	}
	fb_proxmox_running_kernel(release);
	if (fb_proxmox_is_pve_kernel(release))
		*ret_msg = fb_strdupf("running the Proxmox kernel %s", release);
	else
		*ret_msg = fb_strdupf("proxmox-default-kernel installed, but the running kernel is '%s', not a Proxmox one: "
				      "the Debian kernel stays until a Proxmox kernel runs (check the boot loader's default)",
				      release[0] ? release : "unknown");
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

