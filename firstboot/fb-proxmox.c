/* The proxmox steps' section schema and what they read of the machine (fb-proxmox.h). */
#include "fb-proxmox.h"
#include "fb-fetch.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>

/* ---- the section "proxmox" ---- */

/* An apt source line's URL: no blanks, quotes or brackets ("[signed-by=...]" is ours). */
static const struct fb_format fmt_repo_url = {
	.name = "proxmox_repository",
	.message = "'%s' is not an http:// or https:// URL without spaces, quotes or brackets",
	.pattern = "^https?://[^ \t\r\n\"']*$",
	.forbid = "\\[|\\]",
	.min = 10,
};

static const struct fb_format fmt_word = {
	.name = "proxmox_name",
	.message = "'%s' is not a name (letters, digits, '.', '_', '-')",
	.pattern = "^" FB_NAME_RE "$",
	.max = 64,
};

static const struct fb_format fmt_sha512 = {
	.name = "sha512",
	.message = "not a SHA-512 (128 lowercase hex digits)",
	.pattern = "^[0-9a-f]{128}$",
};

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

static const struct fb_format fmt_postfix = {
	.name = "proxmox_postfix",
	.message = "'%s' is not 'none' (no configuration) or 'local' (local only)",
	.values = (const char *const[]){ "none", "local", NULL },
};

/* "dddd:bb:dd" (a slot: every function) or "dddd:bb:dd.f", domain optional: "01:00". */
bool fb_proxmox_parse_pci(const char *s, char ret[13])
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

/* What fb_proxmox_parse_pci() reads. */
#define HEX "[0-9A-Fa-f]"
static const struct fb_format fmt_pci = {
	.name = "pci_slot_or_function",
	.message = "'%s' is not a PCI slot ('0000:01:00': every function) or function ('0000:01:00.0')",
	.pattern = "^(" HEX "{4}:)?" HEX "{2}:[01]" HEX "(\\.[0-7])?$",
};

static const struct fb_format fmt_vmid = {
	.name = "vm_id",
	.message = "a VM ID is an integer from 100 to 999999999",
	.integer = true,
	.lo = 100,
	.hi = 999999999,
};

static const struct fb_format fmt_cores = {
	.name = "vm_cores",
	.message = "cores is an integer from 1 to 512",
	.integer = true,
	.lo = 1,
	.hi = 512,
};

/* A size string ("32G") as MiB, at least MIN_MIB. */
int fb_proxmox_size_mib(const char *s, uint64_t min_mib, uint64_t max_mib, uint64_t *ret)
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
	if (fb_proxmox_size_mib(json_object_get_string(v), 64, 16ull << 20, &m) < 0)
		return fb_bad(c, "'%.64s' is not a memory size from 64M to 16T in whole MiB ('32G')", json_object_get_string(v));
	return 0;
}

static int valid_disk_size(struct fb_check *c, json_object *v)
{
	uint64_t m;
	if (fb_proxmox_size_mib(json_object_get_string(v), 1024, 1ull << 30, &m) < 0 || m % 1024)
		return fb_bad(c, "'%.64s' is not a disk size in whole GiB ('64G')", json_object_get_string(v));
	return 0;
}

static const struct fb_format fmt_vm_name = {
	.name = "vm_name",
	.message = "'%s' is not a VM name (a DNS label: letters, digits, '-')",
	.pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
};

/* A path for qm's "import-from=": no ',', '=' or blanks, no '.' or '..' component. */
static const struct fb_format fmt_image = {
	.name = "vm_disk_image",
	.message = "'%s' is not an absolute path without ',', '=', spaces or '.'/'..' components",
	.pattern = "^/[^,=\t\r\n ]*$",
	.forbid = "/\\.\\.?/",
};

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
	{ "url", FB_T_STRING, NULL, NULL, &fmt_repo_url, FB_REQUIRED, 2048 },
	{ "sha512", FB_T_STRING, NULL, NULL, &fmt_sha512, FB_REQUIRED, 128 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field vm_fields[] = {
	{ "id", FB_T_SCALAR, NULL, NULL, &fmt_vmid, FB_REQUIRED, 0 },
	{ "name", FB_T_STRING, NULL, NULL, &fmt_vm_name, FB_REQUIRED, 63 },
	{ "memory", FB_T_STRING, NULL, valid_memory, NULL, 0, 32 },
	{ "cores", FB_T_SCALAR, NULL, NULL, &fmt_cores, 0, 0 },
	{ "disk_image", FB_T_STRING, NULL, NULL, &fmt_image, 0, 1024 },
	{ "disk_size", FB_T_STRING, NULL, valid_disk_size, NULL, 0, 32 },
	{ "gpu", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field vm_elem = { NULL, FB_T_OBJECT, vm_fields, NULL, NULL, 0, 0 };
static const struct fb_field pci_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_pci, 0, 16 };
static const struct fb_field proxmox_fields[] = {
	{ "repository", FB_T_STRING, NULL, NULL, &fmt_repo_url, 0, 1024 },
	{ "suite", FB_T_STRING, NULL, NULL, &fmt_word, 0, 64 },
	{ "component", FB_T_STRING, NULL, NULL, &fmt_word, 0, 64 },
	{ "key", FB_T_OBJECT, key_fields, NULL, NULL, 0, 0 },
	{ "address", FB_T_STRING, NULL, valid_address, NULL, 0, 64 },
	{ "postfix", FB_T_STRING, NULL, NULL, &fmt_postfix, 0, 16 },
	{ "storage", FB_T_STRING, NULL, NULL, &fmt_word, 0, 64 },
	{ "bridge", FB_T_STRING, NULL, NULL, &fmt_word, 0, 15 },
	{ "gpu", FB_T_ARRAY, &pci_elem, NULL, NULL, 0, PROXMOX_MAX_GPUS },
	{ "vms", FB_T_ARRAY, &vm_elem, valid_vms, NULL, 0, PROXMOX_MAX_VMS },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
const struct fb_field fb_proxmox_schema = { NULL, FB_T_OBJECT, proxmox_fields, NULL, NULL, 0, 0 };

/* ---- the machine ---- */

int fb_proxmox_running_kernel(char ret[128])
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

bool fb_proxmox_is_pve_kernel(const char *release)
{
	size_t n = strlen(release);
	return n > 4 && STREQ(release + n - 4, "-pve");
}

int fb_proxmox_read_hostname(char ret[256])
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
int fb_proxmox_route_source(char **ret, char **ret_msg)
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

/* Whether the repository answers: its Release file. -EAGAIN with a message when not. */
int fb_proxmox_probe_repository(json_object *section, char **ret_msg)
{
	_cleanup_free_ char *url = fb_strdupf("%s/dists/%s/Release", fb_json_str(section, "repository", PROXMOX_DEFAULT_REPOSITORY),
					      fb_json_str(section, "suite", PROXMOX_DEFAULT_SUITE));
	_cleanup_free_ char *buf = NULL, *err = NULL;
	size_t len;
	if (!url)
		return -ENOMEM;
	if (fb_dry_run()) {
		_cleanup_free_ char *shown = fb_url_shown(url); /* without user:password and query */
		fb_would("fetch %s (is the repository reachable?)", shown ? shown : "?");
		return 0;
	}
	if (fb_fetch(url, 16u << 20, &buf, &len, &err) < 0) {
		*ret_msg = fb_strdupf("the Proxmox repository is unreachable (%s): trying again on a later run",
				      err ? err : "failed");
		return -EAGAIN;
	}
	return 0;
}
