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
#include "util.h"

#include <endian.h>

#define SOURCES_LIST "/etc/apt/sources.list.d/pve-install-repo.list"
#define KEY_PATH "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"
#define DEFAULT_COMPONENT "pve-no-subscription"
#define DEFAULT_KEY_URL "https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg"
/* Published by Proxmox beside the download instructions. */
#define DEFAULT_KEY_SHA512                                                                  \
	"7da6fe34168adc6e479327ba517796d4702fa2f8b4f0a9833f5ea6e6b48f6507a6da403a274fe201595e" \
	"dc86a84463d50383d07f64bdde2e3658108db7d6dc87"
#define KEY_MAX (64u * 1024u)

/* ---- SHA-512 (FIPS 180-4), for the release key only ---- */

static const uint64_t sha512_k[80] = {
	0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc, 0x3956c25bf348b538,
	0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118, 0xd807aa98a3030242, 0x12835b0145706fbe,
	0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2, 0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235,
	0xc19bf174cf692694, 0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
	0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5, 0x983e5152ee66dfab,
	0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4, 0xc6e00bf33da88fc2, 0xd5a79147930aa725,
	0x06ca6351e003826f, 0x142929670a0e6e70, 0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed,
	0x53380d139d95b3df, 0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
	0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30, 0xd192e819d6ef5218,
	0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8, 0x19a4c116b8d2d0c8, 0x1e376c085141ab53,
	0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8, 0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373,
	0x682e6ff3d6b2b8a3, 0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
	0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b, 0xca273eceea26619c,
	0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178, 0x06f067aa72176fba, 0x0a637dc5a2c898a6,
	0x113f9804bef90dae, 0x1b710b35131c471b, 0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc,
	0x431d67c49c100d4c, 0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
};

static uint64_t ror64(uint64_t x, unsigned n)
{
	return (x >> n) | (x << (64 - n));
}

static void sha512_block(uint64_t h[8], const uint8_t *p)
{
	uint64_t w[80], a[8];
	for (int i = 0; i < 16; i++) {
		uint64_t v;
		memcpy(&v, p + 8 * i, 8);
		w[i] = be64toh(v);
	}
	for (int i = 16; i < 80; i++) {
		uint64_t s0 = ror64(w[i - 15], 1) ^ ror64(w[i - 15], 8) ^ (w[i - 15] >> 7);
		uint64_t s1 = ror64(w[i - 2], 19) ^ ror64(w[i - 2], 61) ^ (w[i - 2] >> 6);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	memcpy(a, h, sizeof(a));
	for (int i = 0; i < 80; i++) {
		uint64_t s1 = ror64(a[4], 14) ^ ror64(a[4], 18) ^ ror64(a[4], 41);
		uint64_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
		uint64_t t1 = a[7] + s1 + ch + sha512_k[i] + w[i];
		uint64_t s0 = ror64(a[0], 28) ^ ror64(a[0], 34) ^ ror64(a[0], 39);
		uint64_t maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
		memmove(a + 1, a, 7 * sizeof(uint64_t));
		a[4] += t1;
		a[0] = t1 + s0 + maj;
	}
	for (int i = 0; i < 8; i++)
		h[i] += a[i];
}

static void sha512_hex(const void *data, size_t len, char ret[129])
{
	uint64_t h[8] = { 0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
			  0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179 };
	const uint8_t *p = data;
	size_t left = len;
	for (; left >= 128; p += 128, left -= 128)
		sha512_block(h, p);
	uint8_t tail[256] = { 0 };
	memcpy(tail, p, left);
	tail[left] = 0x80;
	size_t n = left + 1 + 16 <= 128 ? 128 : 256;
	uint64_t bits = htobe64((uint64_t)len << 3);
	memcpy(tail + n - 8, &bits, 8); /* lengths below 2^61 bytes: the high word stays zero */
	sha512_block(h, tail);
	if (n == 256)
		sha512_block(h, tail + 128);
	for (int i = 0; i < 8; i++)
		snprintf(ret + 16 * i, 17, "%016llx", (unsigned long long)h[i]);
}

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
	sha512_hex(buf, len, hex);
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
		*ret_msg = fb_strdupf("cannot fetch the Proxmox release key '%s': %s: trying again on a later run", url,
				      err ? err : "failed");
		return -EAGAIN;
	}
	char hex[129];
	sha512_hex(buf, len, hex);
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

