/* proxmox: Proxmox VE on Debian 12 the way Proxmox documents it ("Install Proxmox VE on Debian
 * 12 Bookworm"), then the VMs of the hub-and-spoke layout. Three steps in a row, all reading
 * the config section "proxmox", because the install crosses a reboot:
 *
 *   proxmox-kernel  /etc/hosts gives the hostname the machine's address (not 127.0.1.1: the
 *                   cluster file system and the web interface resolve the node's name);
 *                   the release key (fetched, checked against its published SHA-512) and
 *                   the pve-no-subscription repository; apt-get update, full-upgrade, and
 *                   proxmox-default-kernel; then a reboot into that kernel.
 *   proxmox-ve      proxmox-ve postfix open-iscsi chrony (postfix preseeded: no
 *                   configuration, or local only); the Debian kernel (linux-image-amd64,
 *                   linux-image-6.1*) and os-prober removed, but never the running kernel;
 *                   the boot loader refreshed.
 *   proxmox-vms     "qm create" for each VM that does not exist yet (q35, OVMF with an EFI
 *                   disk, virtio-scsi, a disk imported from a qcow2 image when given, the
 *                   passed-through GPU with all its functions on the VM that asks for it).
 *
 * Without the network (the first run of every boot is before it) a step ends "pending" and
 * the timer finishes it later; nothing is changed before the repository has answered, so the
 * machine stays as it was. Every change goes through fb_write() and fb_run(), commands on the
 * target through "chroot ROOT" on a tree: run --dry-run shows them. The key and repository
 * can point elsewhere (tests use a stand-in repository on 127.0.0.1 with their own key). */
#include "fb-config.h"
#include "fb-fetch.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <stdarg.h>

#define SOURCES_LIST "/etc/apt/sources.list.d/pve-install-repo.list"
#define KEY_PATH "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"
#define DEBCONF_PATH "/var/lib/pmoves/proxmox/postfix.debconf"
#define DPKG_STATUS "/var/lib/dpkg/status"
#define QM "/usr/sbin/qm"
#define VM_CONF_DIR "/etc/pve/qemu-server"
#define VM_LIST "/etc/pve/.vmlist"
#define PCI_DEVICES "/sys/bus/pci/devices"

#define DEFAULT_REPOSITORY "http://download.proxmox.com/debian/pve"
#define DEFAULT_SUITE "bookworm"
#define DEFAULT_COMPONENT "pve-no-subscription"
#define DEFAULT_KEY_URL "https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg"
/* Published by Proxmox beside the download instructions. */
#define DEFAULT_KEY_SHA512                                                                  \
	"7da6fe34168adc6e479327ba517796d4702fa2f8b4f0a9833f5ea6e6b48f6507a6da403a274fe201595e" \
	"dc86a84463d50383d07f64bdde2e3658108db7d6dc87"
#define DEFAULT_STORAGE "local-lvm"
#define DEFAULT_BRIDGE "vmbr0"
#define KEY_MAX (64u * 1024u)
#define MAX_VMS 64
#define MAX_GPUS 8

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

/* ---- config schema (the step records' .schema) ---- */

static int valid_repo_url(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if ((strncmp(s, "http://", 7) && strncmp(s, "https://", 8)) || strcspn(s, " \t\r\n\"'[]") != strlen(s) ||
	    strlen(s) < 10)
		return fb_bad(c, "'%.64s' is not an http:// or https:// URL without spaces, quotes or brackets", s);
	return 0;
}

static int valid_word(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!valid_name(s, 64))
		return fb_bad(c, "'%.64s' is not a name (letters, digits, '.', '_', '-')", s);
	return 0;
}

static int valid_sha512(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (strlen(s) != 128 || strspn(s, "0123456789abcdef") != 128)
		return fb_bad(c, "not a SHA-512 (128 lowercase hex digits)");
	return 0;
}

static int valid_address(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	unsigned char buf[16];
	if (inet_pton(AF_INET, s, buf) != 1 && inet_pton(AF_INET6, s, buf) != 1)
		return fb_bad(c, "'%.64s' is not an IPv4 or IPv6 address", s);
	if (!strncmp(s, "127.", 4) || STREQ(s, "::1"))
		return fb_bad(c, "'%s' is a loopback address: Proxmox needs the address the node is reached at", s);
	return 0;
}

static int valid_postfix(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (!STREQ(s, "none") && !STREQ(s, "local"))
		return fb_bad(c, "'%.64s' is not 'none' (no configuration) or 'local' (local only)", s);
	return 0;
}

/* "dddd:bb:dd" (a slot: every function) or "dddd:bb:dd.f", domain optional: "01:00". */
static bool parse_pci(const char *s, char ret[13])
{
	unsigned dom = 0, bus, dev, fn = 8;
	char tail;
	size_t len = strlen(s);
	int n;
	if (len > 12 || strspn(s, "0123456789abcdefABCDEF:.") != len)
		return false;
	if ((n = sscanf(s, "%4x:%2x:%2x.%1x%c", &dom, &bus, &dev, &fn, &tail)) == 4 && len == 12)
		;
	else if ((n = sscanf(s, "%4x:%2x:%2x%c", &dom, &bus, &dev, &tail)) == 3 && len == 10)
		fn = 8;
	else if ((dom = 0, n = sscanf(s, "%2x:%2x.%1x%c", &bus, &dev, &fn, &tail)) == 3 && len == 7)
		;
	else if ((n = sscanf(s, "%2x:%2x%c", &bus, &dev, &tail)) == 2 && len == 5)
		fn = 8;
	else
		return false;
	if (dev > 0x1f || (fn != 8 && fn > 7))
		return false;
	if (fn == 8)
		snprintf(ret, 13, "%04x:%02x:%02x", dom, bus, dev);
	else
		snprintf(ret, 13, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return true;
}

static int valid_pci(struct fb_check *c, json_object *v)
{
	char buf[13];
	if (!parse_pci(json_object_get_string(v), buf))
		return fb_bad(c, "'%.64s' is not a PCI slot ('0000:01:00': every function) or function ('0000:01:00.0')",
			      json_object_get_string(v));
	return 0;
}

static bool is_int(json_object *v, int64_t min, int64_t max)
{
	return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= min && json_object_get_int64(v) <= max;
}

static int valid_vmid(struct fb_check *c, json_object *v)
{
	return is_int(v, 100, 999999999) ? 0 : fb_bad(c, "a VM ID is an integer from 100 to 999999999");
}

static int valid_cores(struct fb_check *c, json_object *v)
{
	return is_int(v, 1, 512) ? 0 : fb_bad(c, "cores is an integer from 1 to 512");
}

/* A size string ("32G") as MiB, at least MIN_MIB. */
static int size_mib(const char *s, uint64_t min_mib, uint64_t max_mib, uint64_t *ret)
{
	uint64_t b;
	if (parse_size(s, &b) < 0 || b % (1024 * 1024) || b / (1024 * 1024) < min_mib || b / (1024 * 1024) > max_mib)
		return -EINVAL;
	*ret = b / (1024 * 1024);
	return 0;
}

static int valid_memory(struct fb_check *c, json_object *v)
{
	uint64_t m;
	if (size_mib(json_object_get_string(v), 64, 16ull << 20, &m) < 0)
		return fb_bad(c, "'%.64s' is not a memory size from 64M to 16T in whole MiB ('32G')", json_object_get_string(v));
	return 0;
}

static int valid_disk_size(struct fb_check *c, json_object *v)
{
	uint64_t m;
	if (size_mib(json_object_get_string(v), 1024, 1ull << 30, &m) < 0 || m % 1024)
		return fb_bad(c, "'%.64s' is not a disk size in whole GiB ('64G')", json_object_get_string(v));
	return 0;
}

static int valid_vm_name(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t len = strlen(s);
	if (len == 0 || len > 63 || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != len ||
	    s[0] == '-' || s[len - 1] == '-')
		return fb_bad(c, "'%.64s' is not a VM name (a DNS label: letters, digits, '-')", s);
	return 0;
}

static int valid_image(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	if (s[0] != '/' || strstr(s, "/../") || strstr(s, "/./") || strcspn(s, ",=\t\r\n ") != strlen(s))
		return fb_bad(c, "'%.64s' is not an absolute path without ',', '=', spaces or '.'/'..' components", s);
	return 0;
}

static int valid_vms(struct fb_check *c, json_object *v)
{
	size_t n = json_object_array_length(v), gpus = 0;
	for (size_t i = 0; i < n; i++) {
		json_object *a = json_object_array_get_idx(v, i), *x, *y;
		if (!json_object_object_get_ex(a, "id", &x))
			return fb_bad(c, "element %zu has no 'id'", i);
		if (json_object_object_get_ex(a, "disk_image", NULL) && json_object_object_get_ex(a, "disk_size", NULL))
			return fb_bad(c, "VM %lld: 'disk_image' and 'disk_size' are both given: one only",
				      (long long)json_object_get_int64(x));
		gpus += json_object_object_get_ex(a, "gpu", &y) && json_object_get_boolean(y);
		for (size_t k = 0; k < i; k++) {
			json_object *b = json_object_array_get_idx(v, k), *z;
			if (json_object_object_get_ex(b, "id", &z) && json_object_get_int64(z) == json_object_get_int64(x))
				return fb_bad(c, "VM ID %lld is given twice", (long long)json_object_get_int64(x));
		}
	}
	if (gpus > 1)
		return fb_bad(c, "%zu VMs ask for the GPU: a passed-through device belongs to one VM", gpus);
	return 0;
}

static const struct fb_field key_fields[] = {
	{ "url", FB_T_STRING, NULL, valid_repo_url, NULL, FB_REQUIRED, 2048 },
	{ "sha512", FB_T_STRING, NULL, valid_sha512, NULL, FB_REQUIRED, 128 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field vm_fields[] = {
	{ "id", FB_T_SCALAR, NULL, valid_vmid, NULL, FB_REQUIRED, 0 },
	{ "name", FB_T_STRING, NULL, valid_vm_name, NULL, FB_REQUIRED, 63 },
	{ "memory", FB_T_STRING, NULL, valid_memory, NULL, 0, 32 },
	{ "cores", FB_T_SCALAR, NULL, valid_cores, NULL, 0, 0 },
	{ "disk_image", FB_T_STRING, NULL, valid_image, NULL, 0, 1024 },
	{ "disk_size", FB_T_STRING, NULL, valid_disk_size, NULL, 0, 32 },
	{ "gpu", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field vm_elem = { NULL, FB_T_OBJECT, vm_fields, NULL, NULL, 0, 0 };
static const struct fb_field pci_elem = { NULL, FB_T_STRING, NULL, valid_pci, NULL, 0, 16 };
static const struct fb_field proxmox_fields[] = {
	{ "repository", FB_T_STRING, NULL, valid_repo_url, NULL, 0, 1024 },
	{ "suite", FB_T_STRING, NULL, valid_word, NULL, 0, 64 },
	{ "component", FB_T_STRING, NULL, valid_word, NULL, 0, 64 },
	{ "key", FB_T_OBJECT, key_fields, NULL, NULL, 0, 0 },
	{ "address", FB_T_STRING, NULL, valid_address, NULL, 0, 64 },
	{ "postfix", FB_T_STRING, NULL, valid_postfix, NULL, 0, 16 },
	{ "storage", FB_T_STRING, NULL, valid_word, NULL, 0, 64 },
	{ "bridge", FB_T_STRING, NULL, valid_word, NULL, 0, 15 },
	{ "gpu", FB_T_ARRAY, &pci_elem, NULL, NULL, 0, MAX_GPUS },
	{ "vms", FB_T_ARRAY, &vm_elem, valid_vms, NULL, 0, MAX_VMS },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field proxmox_schema = { NULL, FB_T_OBJECT, proxmox_fields, NULL, NULL, 0, 0 };

/* ---- config access ---- */

static const char *opt(json_object *o, const char *key, const char *def)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : def;
}

static const char *key_opt(json_object *section, const char *key, const char *def)
{
	json_object *k;
	return json_object_object_get_ex(section, "key", &k) ? opt(k, key, def) : def;
}

struct vm {
	int64_t id;
	const char *name;
	uint64_t memory_mib;
	int64_t cores;
	const char *disk_image;
	uint64_t disk_gib;
	bool gpu;
};

/* The hub and spoke: the Docker host gets the GPU. */
static const struct vm default_vms[] = {
	{ 100, "docker-host", 32768, 8, NULL, 0, true },
	{ 101, "dev-workstation", 16384, 4, NULL, 0, false },
	{ 102, "headscale-hub", 2048, 2, NULL, 0, false },
	{ 103, "gateway", 4096, 2, NULL, 0, false },
};

/* The VMs of the config (borrowing its strings), or the defaults. */
static int vms_of(json_object *section, struct vm **ret, size_t *ret_n)
{
	json_object *list;
	if (!json_object_object_get_ex(section, "vms", &list)) {
		struct vm *v = malloc(sizeof(default_vms));
		if (!v)
			return -ENOMEM;
		memcpy(v, default_vms, sizeof(default_vms));
		*ret = v;
		*ret_n = ARRAY_SIZE(default_vms);
		return 0;
	}
	size_t n = json_object_array_length(list);
	if (n > MAX_VMS)
		return -E2BIG;
	struct vm *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *a = json_object_array_get_idx(list, i), *x;
		v[i].id = json_object_object_get_ex(a, "id", &x) ? json_object_get_int64(x) : 0;
		v[i].name = opt(a, "name", "vm");
		v[i].cores = json_object_object_get_ex(a, "cores", &x) ? json_object_get_int64(x) : 2;
		v[i].memory_mib = 2048;
		if (size_mib(opt(a, "memory", "2G"), 64, 16ull << 20, &v[i].memory_mib) < 0 || v[i].id < 100 ||
		    v[i].cores < 1 || v[i].cores > 512) {
			free(v);
			return -EINVAL; /* the schema checked it */
		}
		v[i].disk_image = opt(a, "disk_image", NULL);
		uint64_t mib = 0;
		if (json_object_object_get_ex(a, "disk_size", &x) && size_mib(json_object_get_string(x), 1024, 1ull << 30, &mib) < 0) {
			free(v);
			return -EINVAL;
		}
		v[i].disk_gib = mib / 1024;
		v[i].gpu = json_object_object_get_ex(a, "gpu", &x) && json_object_get_boolean(x);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* ---- the machine ---- */

static int running_kernel(char ret[128])
{
	_cleanup_free_ char *buf = NULL;
	int r = fb_read("/proc/sys/kernel/osrelease", 127, &buf, NULL);
	if (r < 0) {
		ret[0] = '\0';
		return r;
	}
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(ret, 128, "%s", buf);
	return 0;
}

static bool is_pve_kernel(const char *release)
{
	size_t n = strlen(release);
	return n > 4 && STREQ(release + n - 4, "-pve");
}

/* The Debian kernel packages Proxmox says to remove, except the running kernel's. */
static int debian_kernels(char **installed, const char *release, char ***ret_remove, char **ret_kept)
{
	_cleanup_strv_ char **out = NULL;
	_cleanup_free_ char *running = fb_strdupf("linux-image-%s", release), *running_u = fb_strdupf("linux-image-%s-unsigned", release);
	if (!running || !running_u)
		return -ENOMEM;
	*ret_kept = NULL;
	for (char **p = installed; p && *p; p++) {
		if (!STREQ(*p, "linux-image-amd64") && strncmp(*p, "linux-image-6.1", 15))
			continue;
		if (release[0] && (STREQ(*p, running) || STREQ(*p, running_u))) {
			if (!*ret_kept)
				*ret_kept = strdup(*p);
			continue;
		}
		int r = strv_push(&out, *p);
		if (r < 0)
			return r;
	}
	*ret_remove = TAKE_PTR(out);
	return 0;
}

/* ---- /etc/hosts ---- */

/* The text after WORD in OUT up to a space, '/' or newline, as an IPv4 address. */
static int ipv4_after(const char *out, const char *word, char **ret)
{
	const char *p = out ? strstr(out, word) : NULL;
	if (!p)
		return -ENOENT;
	p += strlen(word);
	size_t n = strcspn(p, " /\n");
	char addr[64];
	unsigned char bin[4];
	if (n == 0 || n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, p, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, bin) != 1)
		return -EINVAL;
	*ret = strdup(addr);
	return *ret ? 0 : -ENOMEM;
}

/* The node's IPv4 address: the source address of the route to a documentation address (the
 * kernel's route lookup, nothing is sent), else the first global address (a network without
 * a default route, such as QEMU's restricted one). -ENETUNREACH with a message when there is
 * neither yet. */
static int route_source(char **ret, char **ret_msg)
{
	_cleanup_free_ char *out = NULL, *out2 = NULL;
	char *route[] = { "ip", "-4", "-o", "route", "get", "192.0.2.1", NULL };
	if (fb_run_capture(route, &out) == 0 && ipv4_after(out, " src ", ret) == 0)
		return 0;
	char *addr[] = { "ip", "-4", "-o", "addr", "show", "scope", "global", NULL };
	if (fb_run_capture(addr, &out2) == 0 && ipv4_after(out2, " inet ", ret) == 0)
		return 0;
	*ret_msg = strdup("no IPv4 address yet (no network): trying again on a later run");
	return -ENETUNREACH;
}

/* The address the node is reached at: the config's, else the route's source address. */
static int node_address(json_object *section, char **ret, char **ret_msg)
{
	const char *a = opt(section, "address", NULL);
	if (a) {
		*ret = strdup(a);
		return *ret ? 0 : -ENOMEM;
	}
	return route_source(ret, ret_msg);
}

static int read_hostname(char ret[256])
{
	_cleanup_free_ char *buf = NULL;
	int r = fb_read("/etc/hostname", 255, &buf, NULL);
	if (r < 0)
		return r;
	buf[strcspn(buf, " \t\n")] = '\0';
	if (!buf[0])
		return -ENOENT;
	snprintf(ret, 256, "%s", buf);
	return 0;
}

static bool names_host(const char *line, size_t n, const char *name, const char *shortname)
{
	/* Fields after the address. */
	size_t i = strcspn(line, " \t");
	while (i < n) {
		i += strspn(line + i, " \t");
		size_t w = 0;
		while (i + w < n && line[i + w] != ' ' && line[i + w] != '\t')
			w++;
		if (line[i] == '#')
			return false;
		if ((w == strlen(name) && !strncmp(line + i, name, w)) || (w == strlen(shortname) && !strncmp(line + i, shortname, w)))
			return true;
		i += w;
	}
	return false;
}

/* /etc/hosts with the node's name on ADDR only: 127.0.1.1 lines and other lines naming the
 * node dropped (loopback lines for localhost stay), "ADDR FQDN SHORT" after 127.0.0.1's. */
static char *hosts_text(const char *old, const char *addr, const char *name)
{
	const char *dot = strchr(name, '.');
	char shortname[256];
	snprintf(shortname, sizeof(shortname), "%.*s", dot ? (int)(dot - name) : (int)strlen(name), name);
	_cleanup_free_ char *line = dot ? fb_strdupf("%s\t%s %s\n", addr, name, shortname) : fb_strdupf("%s\t%s\n", addr, name);
	if (!line)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool placed = false;
	for (const char *p = old ? old : "127.0.0.1\tlocalhost\n"; *p;) {
		size_t n = strcspn(p, "\n");
		bool local11 = !strncmp(p, "127.0.1.1", 9) && n > 9 && (p[9] == ' ' || p[9] == '\t');
		bool loop = !strncmp(p, "127.0.0.1", 9) || !strncmp(p, "::1", 3);
		if (loop && names_host(p, n, name, shortname)) {
			/* "127.0.0.1 localhost pve": the node's names leave the loopback line. */
			size_t i = strcspn(p, " \t");
			fprintf(f, "%.*s", (int)i, p);
			while (i < n) {
				size_t sp = strspn(p + i, " \t"), w = 0;
				while (i + sp + w < n && p[i + sp + w] != ' ' && p[i + sp + w] != '\t')
					w++;
				const char *word = p + i + sp;
				bool ours = (w == strlen(name) && !strncmp(word, name, w)) ||
					    (w == strlen(shortname) && !strncmp(word, shortname, w));
				if (w && (!ours || word[0] == '#'))
					fprintf(f, "%.*s", (int)(sp + w), p + i);
				i += sp + w;
			}
			fputc('\n', f);
		} else if (!local11 && (loop || !names_host(p, n, name, shortname)))
			fprintf(f, "%.*s\n", (int)n, p);
		if (!placed && !strncmp(p, "127.0.0.1", 9)) {
			fputs(line, f);
			placed = true;
		}
		p += n + (p[n] == '\n');
	}
	if (!placed)
		fputs(line, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Loopback lines naming the node are a problem only when they are the node's 127.0.0.1 line
 * ("127.0.0.1 localhost pve"): then hostname --ip-address gives 127.0.0.1. */
static bool hosts_ok(const char *text, const char *name)
{
	const char *dot = strchr(name, '.');
	char shortname[256];
	snprintf(shortname, sizeof(shortname), "%.*s", dot ? (int)(dot - name) : (int)strlen(name), name);
	bool found = false;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		if (p[0] != '#' && names_host(p, n, name, shortname)) {
			if (!strncmp(p, "127.", 4) || !strncmp(p, "::1", 3))
				return false;
			found = true;
		}
		p += n + (p[n] == '\n');
	}
	return found;
}

/* ---- repository and key ---- */

static char *sources_text(json_object *section)
{
	return fb_strdupf("# Written by pmoves-firstboot (proxmox step): change its config, not this file.\n"
			  "deb [arch=amd64] %s %s %s\n",
			  opt(section, "repository", DEFAULT_REPOSITORY), opt(section, "suite", DEFAULT_SUITE),
			  opt(section, "component", DEFAULT_COMPONENT));
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

/* Whether the repository answers: its Release file. -EAGAIN with a message when not. */
static int probe_repository(json_object *section, char **ret_msg)
{
	_cleanup_free_ char *url = fb_strdupf("%s/dists/%s/Release", opt(section, "repository", DEFAULT_REPOSITORY),
					      opt(section, "suite", DEFAULT_SUITE));
	_cleanup_free_ char *buf = NULL, *err = NULL;
	size_t len;
	if (!url)
		return -ENOMEM;
	if (fb_dry_run()) {
		printf("%s: would fetch %s (is the repository reachable?)\n", FB_NAME, url);
		return 0;
	}
	if (fb_fetch(url, 16u << 20, &buf, &len, &err) < 0) {
		*ret_msg = fb_strdupf("the Proxmox repository is unreachable ('%s': %s): trying again on a later run", url,
				      err ? err : "failed");
		return -EAGAIN;
	}
	return 0;
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

/* ---- proxmox-kernel ---- */

/* The hostname resolves to a non-loopback address only; with "address" in the config,
 * /etc/hosts is exactly what apply would write for it. */
static int hosts_check(json_object *section)
{
	char name[256];
	_cleanup_free_ char *hosts = NULL, *want = NULL;
	const char *addr = opt(section, "address", NULL);
	if (read_hostname(name) < 0)
		return 0;
	int r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (!addr)
		return hosts_ok(hosts, name);
	if (!(want = hosts_text(hosts, addr, name)))
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
		*ret_msg = fb_strdupf("cannot read '%s': %s", DPKG_STATUS, strerror(-r));
		return r;
	}
	/* Installed but not booted (a power cut before the reboot): apply again, which reboots. */
	if (!strv_contains(pkgs, "proxmox-default-kernel") || running_kernel(release) < 0 || !is_pve_kernel(release))
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
	if (read_hostname(name) < 0) {
		*ret_msg = strdup("no hostname in '/etc/hostname': Proxmox needs one that resolves to the node's address");
		return FB_FAILED;
	}
	if ((r = node_address(section, &addr, ret_msg)) < 0)
		return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
	if ((r = probe_repository(section, ret_msg)) < 0)
		return r == -EAGAIN ? FB_PENDING : FB_FAILED;
	if ((r = install_key(section, ret_msg)) < 0)
		return r == -EAGAIN ? FB_PENDING : FB_FAILED;
	r = fb_read("/etc/hosts", 1 << 20, &hosts, NULL);
	if (r < 0 && r != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '/etc/hosts': %s", strerror(-r));
		return FB_FAILED;
	}
	if (!(hosts_new = hosts_text(hosts, addr, name)))
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
			      name, addr, opt(section, "repository", DEFAULT_REPOSITORY));
	return FB_REBOOT;
}

static int kernel_verify(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)section;
	_cleanup_strv_ char **pkgs = NULL;
	char release[128];
	int r = fb_installed_packages(&pkgs);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", DPKG_STATUS, strerror(-r));
		return r;
	}
	if (!strv_contains(pkgs, "proxmox-default-kernel")) {
		*ret_msg = strdup("proxmox-default-kernel is not installed after the reboot");
		return -ENOENT;
	}
	running_kernel(release);
	if (is_pve_kernel(release))
		*ret_msg = fb_strdupf("running the Proxmox kernel %s", release);
	else
		*ret_msg = fb_strdupf("proxmox-default-kernel installed, but the running kernel is '%s', not a Proxmox one: "
				      "the Debian kernel stays until a Proxmox kernel runs (check the boot loader's default)",
				      release[0] ? release : "unknown");
	return 0;
}

/* ---- proxmox-ve ---- */

static const char *const ve_packages[] = { "proxmox-ve", "postfix", "open-iscsi", "chrony", NULL };

/* What proxmox-ve still has to do: packages missing, packages to remove. */
static int ve_todo(char ***ret_missing, char ***ret_remove, char **ret_kept, bool *ret_have_kernel)
{
	_cleanup_strv_ char **pkgs = NULL, **missing = NULL, **remove = NULL;
	char release[128];
	int r = fb_installed_packages(&pkgs);
	if (r < 0)
		return r;
	for (const char *const *p = ve_packages; *p; p++)
		if (!strv_contains(pkgs, *p) && (r = strv_push(&missing, *p)) < 0)
			return r;
	running_kernel(release);
	if ((r = debian_kernels(pkgs, release, &remove, ret_kept)) < 0)
		return r;
	if (strv_contains(pkgs, "os-prober") && (r = strv_push(&remove, "os-prober")) < 0)
		return r;
	*ret_have_kernel = strv_contains(pkgs, "proxmox-default-kernel");
	*ret_missing = TAKE_PTR(missing);
	*ret_remove = TAKE_PTR(remove);
	return 0;
}

static int ve_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)section;
	_cleanup_strv_ char **missing = NULL, **remove = NULL;
	_cleanup_free_ char *kept = NULL;
	bool have_kernel;
	int r = ve_todo(&missing, &remove, &kept, &have_kernel);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", DPKG_STATUS, strerror(-r));
		return r;
	}
	if (missing || remove)
		return 0;
	*ret_msg = kept ? fb_strdupf("proxmox-ve installed; '%s' kept: it is the running kernel", kept) : NULL;
	return 1;
}

/* The boot loader's menu without the removed kernels. systemd-boot needs nothing: the kernel
 * packages' hooks (kernel-install) add and remove its entries. */
static int refresh_loader(const char **ret_what)
{
	*ret_what = NULL;
	if (fb_exists("/etc/kernel/proxmox-boot-uuids") == 1) {
		char *argv[] = { "proxmox-boot-tool", "refresh", NULL };
		*ret_what = "proxmox-boot-tool refresh";
		return fb_run_target(argv);
	}
	if (fb_exists("/etc/default/grub") == 1) {
		char *argv[] = { "update-grub", NULL };
		*ret_what = "update-grub";
		return fb_run_target(argv);
	}
	return 0;
}

static enum fb_result ve_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_strv_ char **missing = NULL, **remove = NULL;
	_cleanup_free_ char *kept = NULL, *debconf = NULL;
	bool have_kernel;
	int r = ve_todo(&missing, &remove, &kept, &have_kernel);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", DPKG_STATUS, strerror(-r));
		return FB_FAILED;
	}
	if (!have_kernel) {
		*ret_msg = strdup("waiting for step 'proxmox-kernel' (proxmox-default-kernel is not installed)");
		return FB_PENDING;
	}
	if (missing) {
		/* No route: pending at once, without waiting for name lookups and retries (the
		 * boot-time run is before the network, and before logins). */
		_cleanup_free_ char *addr = NULL;
		if ((r = route_source(&addr, ret_msg)) < 0)
			return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
		if ((r = probe_repository(section, ret_msg)) < 0)
			return r == -EAGAIN ? FB_PENDING : FB_FAILED;
		/* postfix asks how to deliver mail: "No configuration", or "Local only" with the
		 * machine's name. */
		char name[256];
		if (read_hostname(name) < 0)
			snprintf(name, sizeof(name), "localhost");
		bool local = STREQ(opt(section, "postfix", "none"), "local");
		debconf = fb_strdupf("postfix postfix/main_mailer_type select %s\npostfix postfix/mailname string %s\n",
				     local ? "Local only" : "No configuration", name);
		if (!debconf)
			return FB_FAILED;
		if ((r = fb_write(DEBCONF_PATH, debconf, strlen(debconf), 0644, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", DEBCONF_PATH, strerror(-r));
			return FB_FAILED;
		}
		if (fb_dpkg_finish(ret_msg) < 0)
			return FB_FAILED;
		char *seed[] = { "debconf-set-selections", DEBCONF_PATH, NULL };
		if ((r = fb_run_target(seed)) != 0) {
			*ret_msg = fb_strdupf("'debconf-set-selections %s' exited with %d", DEBCONF_PATH, r);
			return FB_FAILED;
		}
		if ((r = fb_apt("install", (char *const *)ve_packages)) != 0) {
			*ret_msg = fb_strdupf("'apt-get install proxmox-ve postfix open-iscsi chrony' exited with %d", r);
			return FB_FAILED;
		}
	}
	const char *what = NULL;
	if (remove && !missing && fb_dpkg_finish(ret_msg) < 0)
		return FB_FAILED;
	if (remove) {
		if ((r = fb_apt("remove", remove)) != 0) {
			_cleanup_free_ char *list = strv_join(remove, " ");
			*ret_msg = fb_strdupf("'apt-get remove %s' exited with %d", list ? list : "...", r);
			return FB_FAILED;
		}
		if ((r = refresh_loader(&what)) != 0) {
			*ret_msg = fb_strdupf("'%s' exited with %d", what, r);
			return FB_FAILED;
		}
	}
	_cleanup_free_ char *removed = remove ? strv_join(remove, " ") : NULL;
	*ret_msg = fb_strdupf("proxmox-ve postfix open-iscsi chrony installed%s%s%s%s%s%s%s", removed ? "; removed " : "",
			      removed ? removed : "", what ? "; " : "", what ? what : "",
			      kept ? "; kept '" : "", kept ? kept : "", kept ? "': it is the running kernel" : "");
	return FB_OK;
}

/* ---- proxmox-bridge ---- */

/* The bridge the VMs' net0 is on, the way Proxmox's own installer lays it out: the uplink (the
 * NIC of the default route) becomes a bridge port with no address, and the bridge takes the
 * address, prefix and gateway the NIC has now (its DHCP lease made static: the node's address
 * must not move under /etc/hosts and the cluster file system). ifupdown2, which proxmox-ve
 * brings, owns /etc/network/interfaces; systemd-networkd, which brought the network up until
 * now, is told to leave the port and the bridge alone, and systemd-resolved keeps the DNS
 * servers the lease gave. Done on the running machine only: it needs the live address. An
 * existing stanza for the bridge is left as it is; an interfaces file that configures other
 * interfaces is not rewritten. If ifreload fails, the old configuration is put back. */

#define INTERFACES "/etc/network/interfaces"
#define IFRELOAD "/usr/sbin/ifreload"
#define BRIDGE_NETWORKD "/etc/systemd/network/10-pmoves-proxmox-bridge.network"
#define BRIDGE_RESOLVED "/etc/systemd/resolved.conf.d/pmoves-proxmox.conf"
#define RESOLVED_UPSTREAM "/run/systemd/resolve/resolv.conf"

struct uplink {
	char dev[16];
	char addr[INET_ADDRSTRLEN];
	char cidr[INET_ADDRSTRLEN + 4];
	char gateway[INET_ADDRSTRLEN];
};

/* The token after the word WORD (delimited by blanks) in TEXT, into BUF: 0, or -ENOENT. */
static int token_after(const char *text, const char *word, char *buf, size_t size)
{
	size_t wl = strlen(word);
	for (const char *p = text; p && (p = strstr(p, word)); p += wl) {
		bool start = p == text || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n';
		if (!start || (p[wl] != ' ' && p[wl] != '\t'))
			continue;
		const char *t = p + wl + strspn(p + wl, " \t");
		size_t n = strcspn(t, " \t\n\\");
		if (n == 0 || n >= size)
			return -ENOENT;
		memcpy(buf, t, n);
		buf[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

static bool is_ipv4(const char *s)
{
	unsigned char bin[4];
	return inet_pton(AF_INET, s, bin) == 1;
}

/* The interface names in TEXT's "iface", "auto" and "allow-*" lines, each once. */
static int interfaces_names(const char *text, char ***ret)
{
	_cleanup_strv_ char **names = NULL;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		const char *l = p + strspn(p, " \t");
		bool iface = !strncmp(l, "iface ", 6) || !strncmp(l, "iface\t", 6);
		bool autoline = !strncmp(l, "auto", 4) && (l[4] == ' ' || l[4] == '\t');
		if (iface || autoline || !strncmp(l, "allow-", 6)) {
			const char *w = l + strcspn(l, " \t\n");
			/* "iface NAME inet ...": one name; "auto A B ...": every word. */
			for (bool first = true; w < p + n && (first || !iface); first = false) {
				w += strspn(w, " \t");
				size_t wl = strcspn(w, " \t\n");
				if (wl == 0)
					break;
				_cleanup_free_ char *name = strndup(w, wl);
				if (!name)
					return -ENOMEM;
				if (!strv_contains(names, name) && strv_push(&names, name) < 0)
					return -ENOMEM;
				w += wl;
			}
		}
		p += n + (p[n] == '\n');
	}
	*ret = TAKE_PTR(names);
	return 0;
}

/* 1 with "iface BRIDGE" in TEXT, 0 without. */
static int has_iface(const char *text, const char *bridge)
{
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		const char *l = p + strspn(p, " \t");
		char name[64];
		if (!strncmp(l, "iface", 5) && (l[5] == ' ' || l[5] == '\t') &&
		    sscanf(l + 5, "%63s", name) == 1 && STREQ(name, bridge))
			return 1;
		p += n + (p[n] == '\n');
	}
	return 0;
}

static int bridge_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	const char *bridge = opt(section, "bridge", DEFAULT_BRIDGE);
	_cleanup_free_ char *text = NULL;
	int r = fb_read(INTERFACES, 1 << 20, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", INTERFACES, strerror(-r));
		return r;
	}
	if (!has_iface(text, bridge))
		return 0;
	*ret_msg = fb_strdupf("'%s' is in '%s': left as it is", bridge, INTERFACES);
	return 1;
}

/* CIDR is "ADDR/LEN" with LEN a prefix length from 0 to 32. */
static bool is_cidr_of(const char *cidr, const char *addr)
{
	size_t al = strlen(addr);
	if (strncmp(cidr, addr, al) || cidr[al] != '/' || !isdigit((unsigned char)cidr[al + 1]))
		return false;
	char *end;
	errno = 0;
	unsigned long len = strtoul(cidr + al + 1, &end, 10);
	return errno == 0 && *end == '\0' && len <= 32;
}

/* The uplink as it is now: the default route's device, source address and gateway, and the
 * address's prefix. -ENETUNREACH (message set) without an IPv4 default route. */
static int uplink_now(struct uplink *u, char **ret_msg)
{
	_cleanup_free_ char *route = NULL, *addrs = NULL;
	char *rargv[] = { "ip", "-4", "-o", "route", "get", "192.0.2.1", NULL };
	if (fb_run_capture(rargv, &route) != 0 || token_after(route, "dev", u->dev, sizeof(u->dev)) < 0 ||
	    token_after(route, "src", u->addr, sizeof(u->addr)) < 0 || !is_ipv4(u->addr)) {
		*ret_msg = strdup("no IPv4 default route yet (no network): trying again on a later run");
		return -ENETUNREACH;
	}
	if (token_after(route, "via", u->gateway, sizeof(u->gateway)) < 0 || !is_ipv4(u->gateway))
		u->gateway[0] = '\0';
	if (!valid_name(u->dev, 15)) {
		*ret_msg = fb_strdupf("the default route's device '%.32s' is not an interface name", u->dev);
		return -EINVAL;
	}
	char *aargv[] = { "ip", "-4", "-o", "addr", "show", "dev", u->dev, NULL };
	if (fb_run_capture(aargv, &addrs) != 0)
		addrs = NULL;
	/* "2: ens18    inet 10.0.2.15/24 brd ...": the line whose address is the route's source. */
	for (const char *p = addrs; p && *p;) {
		char cidr[sizeof(u->cidr)];
		size_t n = strcspn(p, "\n");
		_cleanup_free_ char *line = strndup(p, n);
		if (!line)
			return -ENOMEM;
		if (token_after(line, "inet", cidr, sizeof(cidr)) == 0 && is_cidr_of(cidr, u->addr)) {
			memcpy(u->cidr, cidr, sizeof(cidr));
			return 0;
		}
		p += n + (p[n] == '\n');
	}
	*ret_msg = fb_strdupf("cannot find the prefix of %s on '%s'", u->addr, u->dev);
	return -ENOENT;
}

/* [Resolve] with the DNS servers and search domains systemd-resolved has from the lease, or
 * NULL when it has none (no resolved, or no servers). */
static char *resolved_text(void)
{
	_cleanup_free_ char *text = NULL;
	if (fb_read(RESOLVED_UPSTREAM, 64 * 1024, &text, NULL) < 0)
		return NULL;
	_cleanup_free_ char *dns = strdup(""), *domains = NULL;
	int servers = 0;
	for (const char *p = text; dns && *p;) {
		size_t n = strcspn(p, "\n");
		char word[16], value[INET6_ADDRSTRLEN + 1];
		unsigned char bin[16];
		if (servers < 3 && sscanf(p, "%15s %46s", word, value) == 2 && STREQ(word, "nameserver") &&
		    (inet_pton(AF_INET, value, bin) == 1 || inet_pton(AF_INET6, value, bin) == 1)) {
			char *d = fb_strdupf("%s%s%s", dns, servers ? " " : "", value);
			free(dns);
			dns = d;
			servers++;
		} else if (!strncmp(p, "search ", 7) && !domains) {
			domains = strndup(p + 7, n - 7);
			if (domains && strspn(domains, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.- ") !=
					       strlen(domains))
				domains[0] = '\0';
		}
		p += n + (p[n] == '\n');
	}
	if (!dns || servers == 0)
		return NULL;
	return fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): the DNS servers of the uplink's lease, now\n"
			  "# that systemd-networkd leaves the uplink to ifupdown2.\n[Resolve]\nDNS=%s\n%s%s%s",
			  dns, domains && domains[0] ? "Domains=" : "", domains && domains[0] ? domains : "",
			  domains && domains[0] ? "\n" : "");
}

static char *interfaces_text(const char *bridge, const struct uplink *u)
{
	return fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): the Proxmox bridge on the uplink, with the\n"
			  "# address the uplink had (from DHCP, now static). Proxmox edits this file (System > Network).\n"
			  "auto lo\niface lo inet loopback\n\n"
			  "iface %s inet manual\n\n"
			  "auto %s\niface %s inet static\n\taddress %s\n%s%s%s\tbridge-ports %s\n\tbridge-stp off\n\tbridge-fd 0\n\n"
			  "source /etc/network/interfaces.d/*\n",
			  u->dev, bridge, bridge, u->cidr, u->gateway[0] ? "\tgateway " : "", u->gateway,
			  u->gateway[0] ? "\n" : "", u->dev);
}

/* The bridge has DEV as its port and CIDR as its address (the live system, after ifreload). */
static int bridge_up(const char *bridge, const struct uplink *u, char **ret_msg)
{
	_cleanup_free_ char *link = fb_strdupf("/sys/class/net/%s/master", u->dev), *master = NULL;
	if (!link || !(master = fb_path(link)))
		return -ENOMEM;
	char target[PATH_MAX];
	ssize_t n = readlink(master, target, sizeof(target) - 1);
	if (n > 0)
		target[n] = '\0';
	const char *base = n > 0 ? strrchr(target, '/') : NULL;
	if (!base || !STREQ(base + 1, bridge)) {
		*ret_msg = fb_strdupf("after 'ifreload -a' '%s' is not a port of '%s'", u->dev, bridge);
		return -EIO;
	}
	_cleanup_free_ char *out = NULL;
	char *argv[] = { "ip", "-4", "-o", "addr", "show", "dev", (char *)bridge, NULL };
	char cidr[sizeof(u->cidr)];
	if (fb_run_capture(argv, &out) != 0 || token_after(out, "inet", cidr, sizeof(cidr)) < 0 || !STREQ(cidr, u->cidr)) {
		*ret_msg = fb_strdupf("after 'ifreload -a' '%s' does not have %s", bridge, u->cidr);
		return -EIO;
	}
	return 0;
}

/* Back to the configuration before apply: the old interfaces file, networkd on the uplink. */
static void bridge_undo(const char *old, const struct uplink *u)
{
	_cleanup_free_ char *path = fb_path(BRIDGE_NETWORKD);
	if (old)
		fb_write(INTERFACES, old, strlen(old), 0644, 0, 0);
	else {
		_cleanup_free_ char *ip = fb_path(INTERFACES);
		if (ip)
			unlink(ip);
	}
	if (path)
		unlink(path);
	char *reload[] = { "networkctl", "reload", NULL };
	char *reconf[] = { "networkctl", "reconfigure", (char *)u->dev, NULL };
	fb_run(reload);
	fb_run(reconf);
}

static enum fb_result bridge_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	const char *bridge = opt(section, "bridge", DEFAULT_BRIDGE);
	int r;
	if (fb_exists(IFRELOAD) != 1) {
		*ret_msg = strdup("waiting for step 'proxmox-ve' (no '" IFRELOAD "': ifupdown2 comes with proxmox-ve)");
		return FB_PENDING;
	}
	if (!fb_live()) {
		*ret_msg = fb_strdupf("'%s' takes the uplink's live address: it is set up on the running machine", bridge);
		return FB_PENDING;
	}
	_cleanup_free_ char *old = NULL;
	if ((r = fb_read(INTERFACES, 1 << 20, &old, NULL)) < 0 && r != -ENOENT) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", INTERFACES, strerror(-r));
		return FB_FAILED;
	}
	_cleanup_strv_ char **names = NULL;
	if (interfaces_names(old, &names) < 0)
		return FB_FAILED;
	for (char **n = names; n && *n; n++)
		if (!STREQ(*n, "lo")) {
			*ret_msg = fb_strdupf("'%s' configures '%s' already: add the bridge '%s' there yourself "
					      "(Proxmox: System > Network), it is not rewritten",
					      INTERFACES, *n, bridge);
			return FB_FAILED;
		}
	/* Left by an apply cut short before it wrote the interfaces file: networkd must have the
	 * uplink again, or the machine stays without its address. */
	if (fb_exists(BRIDGE_NETWORKD) == 1) {
		_cleanup_free_ char *path = fb_path(BRIDGE_NETWORKD);
		char *reload[] = { "networkctl", "reload", NULL };
		if (!path || (!fb_dry_run() && unlink(path) < 0))
			return FB_FAILED;
		fb_run(reload);
	}
	struct uplink u = { 0 };
	if ((r = uplink_now(&u, ret_msg)) < 0)
		return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
	if (STREQ(u.dev, bridge)) {
		*ret_msg = fb_strdupf("'%s' carries the default route but has no stanza in '%s'", bridge, INTERFACES);
		return FB_FAILED;
	}
	_cleanup_free_ char *text = interfaces_text(bridge, &u), *resolved = resolved_text(),
			    *unmanaged = fb_strdupf("# Written by pmoves-firstboot (proxmox-bridge): ifupdown2 owns these "
						    "(" INTERFACES ").\n[Match]\nName=%s %s\n\n[Link]\nUnmanaged=yes\n",
						    u.dev, bridge);
	if (!text || !unmanaged)
		return FB_FAILED;
	if ((r = fb_write(BRIDGE_NETWORKD, unmanaged, strlen(unmanaged), 0644, 0, 0)) < 0 ||
	    (resolved && (r = fb_write(BRIDGE_RESOLVED, resolved, strlen(resolved), 0644, 0, 0)) < 0) ||
	    (r = fb_write(INTERFACES, text, strlen(text), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write the bridge's configuration: %s", strerror(-r));
		return FB_FAILED;
	}
	/* networkd lets go of the uplink; its address and routes leave it (a port has none); the
	 * bridge comes up with them. */
	char *reload[] = { "networkctl", "reload", NULL };
	char *flush_addr[] = { "ip", "-4", "addr", "flush", "dev", u.dev, NULL };
	char *flush_route[] = { "ip", "-4", "route", "flush", "dev", u.dev, NULL };
	char *ifreload[] = { "ifreload", "-a", NULL };
	if ((r = fb_run(reload)) != 0) {
		*ret_msg = fb_strdupf("'networkctl reload' exited with %d: the old network configuration is back", r);
		bridge_undo(old, &u);
		return FB_FAILED;
	}
	fb_run(flush_addr);
	fb_run(flush_route);
	if ((r = fb_run(ifreload)) != 0 || (!fb_dry_run() && bridge_up(bridge, &u, ret_msg) < 0)) {
		if (r != 0)
			*ret_msg = fb_strdupf("'ifreload -a' exited with %d: the old network configuration is back", r);
		bridge_undo(old, &u);
		return FB_FAILED;
	}
	/* Best effort, both: resolved picks up the lease's servers from the drop-in; networkd's
	 * wait-online has no link left to wait for and would hold network-online.target for its
	 * whole timeout on every boot (ifupdown2's networking.service orders it now). */
	if (resolved) {
		char *restart[] = { "systemctl", "--no-block", "try-restart", "systemd-resolved.service", NULL };
		fb_run(restart);
	}
	char *nowait[] = { "systemctl", "--quiet", "disable", "systemd-networkd-wait-online.service", NULL };
	fb_run(nowait);
	*ret_msg = fb_strdupf("'%s' over '%s' with %s%s%s (static, the uplink's address)%s", bridge, u.dev, u.cidr,
			      u.gateway[0] ? ", gateway " : "", u.gateway, resolved ? "; DNS servers kept for systemd-resolved" : "");
	return FB_OK;
}

/* ---- proxmox-vms ---- */

/* 1 when the ID is taken: this node's /etc/pve/qemu-server/ID.conf, or anywhere in the
 * cluster by pmxcfs's /etc/pve/.vmlist ({"ids": {"100": {"node": "pve2", "type": "lxc"}}}),
 * where a VM on another node or a container with the ID is; then *ret_where says which
 * (malloc'd, NULL for this node's VM). 0 free, -errno. */
static int vm_exists(int64_t id, char **ret_where)
{
	char path[64], key[24];
	*ret_where = NULL;
	snprintf(path, sizeof(path), VM_CONF_DIR "/%lld.conf", (long long)id);
	int r = fb_exists(path);
	if (r != 0)
		return r;
	_cleanup_free_ char *text = NULL;
	if ((r = fb_read(VM_LIST, 4u << 20, &text, NULL)) < 0)
		return r == -ENOENT ? 0 : r;
	_cleanup_(fb_json_putp) json_object *list = json_tokener_parse(text);
	json_object *ids, *vm, *node, *type;
	snprintf(key, sizeof(key), "%lld", (long long)id);
	if (!list || !json_object_object_get_ex(list, "ids", &ids) || !json_object_object_get_ex(ids, key, &vm))
		return 0;
	const char *n = json_object_object_get_ex(vm, "node", &node) ? json_object_get_string(node) : NULL;
	const char *t = json_object_object_get_ex(vm, "type", &type) ? json_object_get_string(type) : NULL;
	*ret_where = fb_strdupf("%s on node %s", t && valid_name(t, 16) ? t : "a guest",
				n && valid_name(n, 63) ? n : "unknown");
	return *ret_where ? 1 : -ENOMEM;
}

static int vms_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_free_ struct vm *v = NULL;
	size_t n = 0;
	int r = vms_of(section, &v, &n);
	if (r < 0)
		return r;
	if (n == 0) {
		*ret_msg = strdup("no VMs in the config");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *where = NULL;
		if ((r = vm_exists(v[i].id, &where)) <= 0)
			return r;
	}
	*ret_msg = fb_strdupf("all %zu VMs exist: left as they are", n);
	return 1;
}

static int read_hex(const char *dir, const char *file, unsigned *ret)
{
	_cleanup_free_ char *path = fb_strdupf(PCI_DEVICES "/%s/%s", dir, file), *buf = NULL;
	if (!path)
		return -ENOMEM;
	int r = fb_read(path, 64, &buf, NULL);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 16);
	if (errno || end == buf || (*end && *end != '\n') || v > 0xffffffUL)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* The GPUs to pass through: proxmox.gpu, else the iommu step's choice (iommu.devices: PCI
 * addresses or vendor:device IDs), else every NVIDIA display controller; as slots
 * ("0000:01:00": every function) unless the config names one function. */
static int gpu_slots(const struct fb_ctx *c, json_object *section, char ***ret)
{
	_cleanup_strv_ char **out = NULL;
	json_object *list, *iommu;
	char buf[13];
	int r;
	if (json_object_object_get_ex(section, "gpu", &list)) {
		for (size_t i = 0; i < json_object_array_length(list); i++)
			if (parse_pci(json_object_get_string(json_object_array_get_idx(list, i)), buf) &&
			    !strv_contains(out, buf) && (r = strv_push(&out, buf)) < 0)
				return r;
		*ret = TAKE_PTR(out);
		return 0;
	}
	json_object *devices = NULL;
	if (json_object_object_get_ex(c->config, "iommu", &iommu))
		json_object_object_get_ex(iommu, "devices", &devices);
	int fd = fb_open(PCI_DEVICES, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		*ret = NULL;
		return 0;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	size_t seen = 0;
	r = 0;
	while ((de = readdir(d)) && r == 0) {
		unsigned vendor, device, cls;
		if (de->d_name[0] == '.' || strlen(de->d_name) != 12 || !parse_pci(de->d_name, buf))
			continue;
		if (++seen > 4096) {
			r = -E2BIG;
			break;
		}
		if (read_hex(de->d_name, "vendor", &vendor) < 0 || read_hex(de->d_name, "device", &device) < 0 ||
		    read_hex(de->d_name, "class", &cls) < 0)
			continue;
		bool take = false;
		if (devices) {
			for (size_t i = 0; i < json_object_array_length(devices) && !take; i++) {
				const char *s = json_object_get_string(json_object_array_get_idx(devices, i));
				char a[13], id[10];
				snprintf(id, sizeof(id), "%04x:%04x", vendor, device);
				take = (parse_pci(s, a) && !strncmp(a, buf, strlen(a))) || !strcasecmp(s, id);
			}
		} else
			take = vendor == 0x10de && (cls >> 16) == 0x03;
		buf[10] = '\0'; /* the slot */
		if (take && !strv_contains(out, buf))
			r = strv_push(&out, buf);
	}
	closedir(d);
	if (r < 0)
		return r;
	if (out)
		strv_sort(out);
	if (strv_length(out) > MAX_GPUS)
		return -E2BIG;
	*ret = TAKE_PTR(out);
	return 0;
}

static int push_f(char ***argv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int push_f(char ***argv, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int r = strv_push(argv, s);
	free(s);
	return r;
}

/* qm create ID ...: q35, OVMF with a 4M EFI vars disk (no pre-enrolled keys: the NVIDIA
 * driver is not signed), virtio-scsi, virtio network on the bridge, the disk, the GPU. */
static int qm_create_argv(const struct vm *v, const char *storage, const char *bridge, char **gpus, char ***ret)
{
	_cleanup_strv_ char **a = NULL;
	int r = 0;
	static const char *const fixed[] = { "--machine", "q35", "--bios", "ovmf", "--ostype", "l26", "--cpu", "host",
					     "--scsihw", "virtio-scsi-single", "--onboot", "1", NULL };
	r = strv_push(&a, "qm");
	if (!r)
		r = strv_push(&a, "create");
	if (!r)
		r = push_f(&a, "%lld", (long long)v->id);
	if (!r)
		r = strv_push(&a, "--name");
	if (!r)
		r = strv_push(&a, v->name);
	if (!r)
		r = strv_push(&a, "--memory");
	if (!r)
		r = push_f(&a, "%llu", (unsigned long long)v->memory_mib);
	if (!r)
		r = strv_push(&a, "--cores");
	if (!r)
		r = push_f(&a, "%lld", (long long)v->cores);
	for (const char *const *f = fixed; !r && *f; f++)
		r = strv_push(&a, *f);
	if (!r)
		r = strv_push(&a, "--efidisk0");
	if (!r)
		r = push_f(&a, "%s:1,efitype=4m,pre-enrolled-keys=0", storage);
	if (!r)
		r = strv_push(&a, "--net0");
	if (!r)
		r = push_f(&a, "virtio,bridge=%s", bridge);
	if (!r && (v->disk_image || v->disk_gib)) {
		r = strv_push(&a, "--scsi0");
		if (!r)
			r = v->disk_image ? push_f(&a, "%s:0,import-from=%s,iothread=1,discard=on", storage, v->disk_image)
					  : push_f(&a, "%s:%llu,iothread=1,discard=on", storage, (unsigned long long)v->disk_gib);
		if (!r)
			r = strv_push(&a, "--boot");
		if (!r)
			r = strv_push(&a, "order=scsi0");
	}
	for (size_t i = 0; !r && v->gpu && gpus && gpus[i]; i++) {
		r = push_f(&a, "--hostpci%zu", i);
		/* The first GPU is the VM's display; every function of a slot goes with it. */
		if (!r)
			r = push_f(&a, "%s,pcie=1,%srombar=1", gpus[i], i == 0 ? "x-vga=1," : "");
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(a);
	return 0;
}

static enum fb_result vms_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	_cleanup_free_ struct vm *v = NULL;
	_cleanup_strv_ char **gpus = NULL, **made = NULL, **kept = NULL;
	size_t n = 0;
	int r = vms_of(section, &v, &n);
	if (r < 0)
		return FB_FAILED;
	if (fb_exists(QM) != 1) {
		*ret_msg = strdup("waiting for step 'proxmox-ve' (no '" QM "')");
		return FB_PENDING;
	}
	if ((r = gpu_slots(c, section, &gpus)) < 0) {
		*ret_msg = fb_strdupf("cannot list the GPUs in '%s': %s", PCI_DEVICES, strerror(-r));
		return FB_FAILED;
	}
	const char *storage = opt(section, "storage", DEFAULT_STORAGE), *bridge = opt(section, "bridge", DEFAULT_BRIDGE);
	bool gpu_wanted = false;
	for (size_t i = 0; i < n; i++) {
		char label[256];
		snprintf(label, sizeof(label), "%lld %s", (long long)v[i].id, v[i].name);
		gpu_wanted |= v[i].gpu;
		_cleanup_free_ char *where = NULL;
		if ((r = vm_exists(v[i].id, &where)) != 0) {
			if (r < 0) {
				*ret_msg = fb_strdupf("cannot tell whether VM %s exists: %s", label, strerror(-r));
				return FB_FAILED;
			}
			if (where)
				snprintf(label + strlen(label), sizeof(label) - strlen(label), " (%s)", where);
			if (strv_push(&kept, label) < 0)
				return FB_FAILED;
			continue;
		}
		if (v[i].disk_image && fb_exists(v[i].disk_image) != 1) {
			*ret_msg = fb_strdupf("the disk image '%s' of VM %s does not exist", v[i].disk_image, label);
			return FB_FAILED;
		}
		_cleanup_strv_ char **argv = NULL;
		if (qm_create_argv(&v[i], storage, bridge, gpus, &argv) < 0)
			return FB_FAILED;
		if ((r = fb_run_target(argv)) != 0) {
			*ret_msg = fb_strdupf("'qm create %lld' (%s) exited with %d", (long long)v[i].id, v[i].name, r);
			return FB_FAILED;
		}
		if (v[i].gpu && gpus) {
			_cleanup_free_ char *g = strv_join(gpus, "+");
			snprintf(label + strlen(label), sizeof(label) - strlen(label), " (GPU %s)", g ? g : "?");
		}
		if (strv_push(&made, label) < 0)
			return FB_FAILED;
	}
	_cleanup_free_ char *m = made ? strv_join(made, ", ") : NULL, *k = kept ? strv_join(kept, ", ") : NULL;
	*ret_msg = fb_strdupf("%s%s%s%s%s%s", made ? "created " : "", m ? m : "", made && kept ? "; " : "",
			      kept ? k : "", kept ? (strv_length(kept) > 1 ? " exist: left as they are" : " exists: left as it is") : "",
			      gpu_wanted && !gpus ? "; no GPU to attach" : "");
	return FB_OK;
}

const struct fb_step step_proxmox_kernel = {
	.name = "proxmox-kernel",
	.config_key = "proxmox",
	.schema = &proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = kernel_check,
	.apply = kernel_apply,
	.verify = kernel_verify,
};

const struct fb_step step_proxmox_ve = {
	.name = "proxmox-ve",
	.config_key = "proxmox",
	.schema = &proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = ve_check,
	.apply = ve_apply,
};

const struct fb_step step_proxmox_bridge = {
	.name = "proxmox-bridge",
	.config_key = "proxmox",
	.schema = &proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = bridge_check,
	.apply = bridge_apply,
};

const struct fb_step step_proxmox_vms = {
	.name = "proxmox-vms",
	.config_key = "proxmox",
	.schema = &proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = vms_check,
	.apply = vms_apply,
};
