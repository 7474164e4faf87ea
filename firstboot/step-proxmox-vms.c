/* proxmox-vms: "qm create" for each VM of the config (or of the hub-and-spoke layout) that does
 * not exist yet, on this node or anywhere in the cluster: q35, OVMF with an EFI disk,
 * virtio-scsi, the host's CPU type, a disk imported from a qcow2 image when given, the
 * passed-through GPU with all its functions on the VM that asks for it (fb-proxmox.h: the four
 * proxmox steps). And nested virtualization on, so that the VMs have /dev/kvm of their own: the
 * dev workstation (VM 101) runs its sandboxes under Firecracker. */
#include "fb-proxmox.h"
#include "firstboot.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>

#define QM "/usr/sbin/qm"
#define VM_CONF_DIR "/etc/pve/qemu-server"
#define VM_LIST "/etc/pve/.vmlist"
#define PCI_DEVICES "/sys/bus/pci/devices"
#define NESTED_CONF "/etc/modprobe.d/pmoves-kvm-nested.conf"

/* The kernel's default since 4.20, said here so that it stays so; read when kvm_intel or
 * kvm_amd is loaded (the next boot, on a machine where they are already). */
static const char nested_conf[] =
	"# Written by pmoves-firstboot (proxmox-vms): nested virtualization, so that the VMs (CPU type\n"
	"# host) have /dev/kvm of their own; the dev workstation runs its sandboxes under Firecracker.\n"
	"options kvm_intel nested=1\n"
	"options kvm_amd nested=1\n";

static bool nested_in_place(void)
{
	_cleanup_free_ char *text = NULL;
	return fb_read(NESTED_CONF, 4096, &text, NULL) == 0 && STREQ(text, nested_conf);
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
	if (n > PROXMOX_MAX_VMS)
		return -E2BIG;
	struct vm *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *a = json_object_array_get_idx(list, i), *x;
		v[i].id = json_object_object_get_ex(a, "id", &x) ? json_object_get_int64(x) : 0;
		v[i].name = fb_json_str(a, "name", "vm");
		v[i].cores = json_object_object_get_ex(a, "cores", &x) ? json_object_get_int64(x) : 2;
		v[i].memory_mib = 2048;
		if (fb_proxmox_size_mib(fb_json_str(a, "memory", "2G"), 64, 16ull << 20, &v[i].memory_mib) < 0 || v[i].id < 100 ||
		    v[i].cores < 1 || v[i].cores > 512) {
			free(v);
			return -EINVAL; /* the schema checked it */
		}
		v[i].disk_image = fb_json_str(a, "disk_image", NULL);
		uint64_t mib = 0;
		if (json_object_object_get_ex(a, "disk_size", &x) && fb_proxmox_size_mib(json_object_get_string(x), 1024, 1ull << 30, &mib) < 0) {
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
	if (!nested_in_place())
		return 0;
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
			if (fb_proxmox_parse_pci(json_object_get_string(json_object_array_get_idx(list, i)), buf) &&
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
		if (de->d_name[0] == '.' || strlen(de->d_name) != 12 || !fb_proxmox_parse_pci(de->d_name, buf))
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
				take = (fb_proxmox_parse_pci(s, a) && !strncmp(a, buf, strlen(a))) || !strcasecmp(s, id);
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
	if (strv_length(out) > PROXMOX_MAX_GPUS)
		return -E2BIG;
	*ret = TAKE_PTR(out);
	return 0;
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
		r = strv_pushf(&a, "%lld", (long long)v->id);
	if (!r)
		r = strv_push(&a, "--name");
	if (!r)
		r = strv_push(&a, v->name);
	if (!r)
		r = strv_push(&a, "--memory");
	if (!r)
		r = strv_pushf(&a, "%llu", (unsigned long long)v->memory_mib);
	if (!r)
		r = strv_push(&a, "--cores");
	if (!r)
		r = strv_pushf(&a, "%lld", (long long)v->cores);
	for (const char *const *f = fixed; !r && *f; f++)
		r = strv_push(&a, *f);
	if (!r)
		r = strv_push(&a, "--efidisk0");
	if (!r)
		r = strv_pushf(&a, "%s:1,efitype=4m,pre-enrolled-keys=0", storage);
	if (!r)
		r = strv_push(&a, "--net0");
	if (!r)
		r = strv_pushf(&a, "virtio,bridge=%s", bridge);
	if (!r && (v->disk_image || v->disk_gib)) {
		r = strv_push(&a, "--scsi0");
		if (!r)
			r = v->disk_image ? strv_pushf(&a, "%s:0,import-from=%s,iothread=1,discard=on", storage, v->disk_image)
					  : strv_pushf(&a, "%s:%llu,iothread=1,discard=on", storage, (unsigned long long)v->disk_gib);
		if (!r)
			r = strv_push(&a, "--boot");
		if (!r)
			r = strv_push(&a, "order=scsi0");
	}
	for (size_t i = 0; !r && v->gpu && gpus && gpus[i]; i++) {
		r = strv_pushf(&a, "--hostpci%zu", i);
		/* The first GPU is the VM's display; every function of a slot goes with it. */
		if (!r)
			r = strv_pushf(&a, "%s,pcie=1,%srombar=1", gpus[i], i == 0 ? "x-vga=1," : "");
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
	if (!nested_in_place() && (r = fb_write(NESTED_CONF, nested_conf, strlen(nested_conf), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write '%s': %s", NESTED_CONF, strerror(-r));
		return FB_FAILED;
	}
	const char *storage = fb_json_str(section, "storage", PROXMOX_DEFAULT_STORAGE), *bridge = fb_json_str(section, "bridge", PROXMOX_DEFAULT_BRIDGE);
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

const struct fb_step step_proxmox_vms = {
	.name = "proxmox-vms",
	.config_key = "proxmox",
	.schema = &fb_proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = vms_check,
	.apply = vms_apply,
};

