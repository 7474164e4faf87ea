/* Firecracker under its jailer (Firecracker v1.16's docs/jailer.md): the jailer, started as
 * root, makes the chroot STATE_DIR/ID/firecracker/ID/root, a cgroup (v2) of its own, drops to
 * the sandbox user and starts Firecracker there, which boots from a config file (the API's
 * resources in one JSON object, --no-api): the uncompressed vmlinux (x86_64), the initramfs,
 * the shared root image (read only) and the I/O disk, a named tap. The guest ends the VM by rebooting it
 * (reboot=k: Firecracker exits on the guest's reset). Needs /dev/kvm. */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "log.h"
#include "run.h"
#include "sbx.h"
#include "util.h"

static const char *unusable(const struct sbx_config *cfg)
{
	if (access(cfg->jailer, X_OK) < 0)
		return "Firecracker's jailer is not installed ('jailer')";
	if (access(cfg->firecracker, X_OK) < 0)
		return "Firecracker is not installed ('firecracker')";
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "/dev/kvm does not open: Firecracker needs KVM";
	close(fd);
	if (access(cfg->vmlinux, R_OK) < 0)
		return "the uncompressed guest kernel ('vmlinux') is not readable";
	return NULL;
}

/* The files every sandbox shares (kernel, initramfs, root image) are bind-mounted into the
 * jail read only, rather than copied: a copy of each per sandbox is what made a start slow.
 * The mounts are made in a mount namespace of the launcher's own, so that they are the
 * launcher's and the jailer's only, and go with them however they end; the jailer's
 * recursive bind of its chroot takes them along. */
static int private_mounts(void)
{
	static bool done;
	if (done)
		return 0;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return log_errno(-errno, "a mount namespace for the jail's read-only files");
	done = true;
	return 0;
}

static int bind_ro(const struct sbx *s, const char *from, const char *name)
{
	_cleanup_free_ char *to = strdupf("%s/%s", s->jail, name);
	if (!to)
		return -ENOMEM;
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return log_errno(-errno, "%s", to);
	close(fd);
	if (mount(from, to, NULL, MS_BIND, NULL) < 0)
		return log_errno(-errno, "binding %s into the jail", from);
	if (mount(NULL, to, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return log_errno(-errno, "making %s read only in the jail", to);
	return 0;
}

static json_object *drive(const char *id, const char *path, bool read_only)
{
	json_object *d = json_object_new_object();
	json_object_object_add(d, "drive_id", json_object_new_string(id));
	json_object_object_add(d, "path_on_host", json_object_new_string(path));
	/* Not the root device: Firecracker would add root= to the command line; the
	 * initramfs mounts the root itself. */
	json_object_object_add(d, "is_root_device", json_object_new_boolean(false));
	json_object_object_add(d, "is_read_only", json_object_new_boolean(read_only));
	return d;
}

/* The VM's config, the resources Firecracker's API would take, paths inside the jail. The
 * root's drive is attached first: the guest's /dev/vda. */
static char *vm_config(const struct sbx *s)
{
	json_object *o = json_object_new_object(), *boot = json_object_new_object(), *mc = json_object_new_object(),
		    *drives = json_object_new_array(), *nets = json_object_new_array();
	json_object_object_add(boot, "kernel_image_path", json_object_new_string("/vmlinux"));
	json_object_object_add(boot, "initrd_path", json_object_new_string("/initrd.img"));
	json_object_object_add(boot, "boot_args", json_object_new_string("console=ttyS0 reboot=k panic=1 pci=off quiet"));
	json_object_array_add(drives, drive("root", "/root.ext4", true));
	json_object_array_add(drives, drive("io", "/io.img", false));
	json_object_object_add(mc, "vcpu_count", json_object_new_int((int)s->spec->vcpus));
	json_object_object_add(mc, "mem_size_mib", json_object_new_int((int)s->spec->memory_mib));
	json_object_object_add(mc, "smt", json_object_new_boolean(false));
	if (s->tap[0]) {
		json_object *n = json_object_new_object();
		json_object_object_add(n, "iface_id", json_object_new_string("eth0"));
		json_object_object_add(n, "host_dev_name", json_object_new_string(s->tap));
		json_object_object_add(n, "guest_mac", json_object_new_string(s->mac));
		json_object_array_add(nets, n);
	}
	json_object_object_add(o, "boot-source", boot);
	json_object_object_add(o, "drives", drives);
	json_object_object_add(o, "machine-config", mc);
	json_object_object_add(o, "network-interfaces", nets);
	char *text = strdupf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

/* Where cgroup v2 is mounted (/sys/fs/cgroup on Debian 12; /sys/fs/cgroup/unified on a
 * hybrid layout), as the jailer finds it: /proc/self/mounts. */
static char *cgroup2_mount(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mounts", "re");
	char line[4096], dir[4096], type[64];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %4095s %63s", dir, type) == 2 && STREQ(type, "cgroup2"))
			return strdup(dir);
	return NULL;
}

/* The launcher's own cgroup (v2), relative to the hierarchy's root, as /proc/self/cgroup says
 * it ("0::/system.slice/..."): "" at the root, NULL when it cannot be read. */
static char *own_cgroup(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096];
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::/", 4)) {
			line[strcspn(line, "\n")] = 0;
			return strdup(line + 4);
		}
	return NULL;
}

/* The VMM's own cgroup, relative to the hierarchy's root: ID under the launcher's cgroup (or
 * under the exec file's name, the jailer's default, for a launcher at the root). The launcher
 * makes it and hands it to the jailer as --parent-cgroup: with cgroup v2 and no --cgroup, the
 * jailer (v1.16, src/jailer/src/env.rs) moves itself into that cgroup when it exists, and
 * makes none. Inside the launcher's, what stops the launcher's unit (systemd kills its whole
 * subtree) stops the VMM; its own, it can be killed and removed whole (cgroup.kill). */
static char *jail_cgroup(const struct sbx *s)
{
	_cleanup_free_ char *own = own_cgroup();
	if (own && own[0] && !strstr(own, "/../") && !str_has_space_or_control(own))
		return strdupf("%s/%s", own, s->id);
	return strdupf("%s/%s", strrchr(s->cfg->firecracker, '/') + 1, s->id);
}

static int prepare(struct sbx *s)
{
	/* The jailer makes /dev/kvm and /dev/net/tun nodes in the chroot and runs a copy of
	 * Firecracker from it: a filesystem mounted nodev or noexec (as /run often is) cannot. */
	struct statvfs vfs;
	if (statvfs(s->dir, &vfs) < 0)
		return log_errno(-errno, "%s", s->dir);
	if (vfs.f_flag & (ST_NODEV | ST_NOEXEC)) {
		log_error("state_dir %s is mounted nodev or noexec: the jailer's chroot needs device nodes and runs "
			  "Firecracker from it (give the sandboxes a tmpfs of their own, without those options)",
			  s->cfg->state_dir);
		return -EPERM;
	}
	/* The jailer's layout: CHROOT_BASE/<exec file's name>/<id>/root. */
	const char *exe = strrchr(s->cfg->firecracker, '/') + 1;
	s->jail = strdupf("%s/%s/%s/root", s->dir, exe, s->id);
	_cleanup_free_ char *root = cgroup2_mount(), *rel = jail_cgroup(s);
	if (!root) {
		log_error("cgroup v2 is not mounted (/proc/self/mounts): the jailer needs it (--cgroup-version 2)");
		return -ENOENT;
	}
	s->cgroup = rel ? strdupf("%s/%s", root, rel) : NULL;
	if (!s->jail || !s->cgroup)
		return -ENOMEM;
	/* Its parent exists but for the jailer's default (a launcher at the root). */
	*strrchr(s->cgroup, '/') = 0;
	if (mkdir(s->cgroup, 0755) < 0 && errno != EEXIST)
		return log_errno(-errno, "cgroup %s", s->cgroup);
	s->cgroup[strlen(s->cgroup)] = '/';
	if (mkdir(s->cgroup, 0755) < 0) {
		int r = log_errno(-errno, "cgroup %s", s->cgroup);
		free(s->cgroup);
		s->cgroup = NULL; /* not ours to remove */
		return r;
	}
	/* The levels above the root are the jailer's (root's); the user may pass through them. */
	_cleanup_free_ char *up = strdupf("%s/%s", s->dir, exe), *id = strdupf("%s/%s/%s", s->dir, exe, s->id);
	if (!up || !id)
		return -ENOMEM;
	if (mkdir(up, 0711) < 0 || mkdir(id, 0711) < 0 || mkdir(s->jail, 0711) < 0)
		return log_errno(-errno, "%s", s->jail);
	/* The I/O disk is the sandbox's own, on the same tmpfs: a link. */
	_cleanup_free_ char *io = strdupf("%s/io.img", s->jail);
	if (!io)
		return -ENOMEM;
	if (link(s->io, io) < 0)
		return log_errno(-errno, "linking %s into the jail", s->io);
	int r;
	if ((r = private_mounts()) < 0 || (r = bind_ro(s, s->cfg->rootfs, "root.ext4")) < 0 ||
	    (r = bind_ro(s, s->cfg->vmlinux, "vmlinux")) < 0 || (r = bind_ro(s, s->cfg->initrd, "initrd.img")) < 0)
		return r;
	_cleanup_free_ char *text = vm_config(s), *path = strdupf("%s/vm.json", s->jail);
	/* Root's like the directories: the user reads it. */
	if (!text || !path)
		return -ENOMEM;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0 || write_full(fd, text, strlen(text)) < 0)
		return log_errno(-errno, "%s", path);
	return 0;
}

static int fc_argv(const struct sbx *s, char ***ret)
{
	char uid[16], gid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)s->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)s->gid);
	_cleanup_free_ char *parent = jail_cgroup(s);
	if (!parent)
		return -ENOMEM;
	const char *v[] = { s->cfg->jailer, "--id", s->id, "--exec-file", s->cfg->firecracker, "--uid", uid, "--gid", gid,
			    "--cgroup-version", "2", "--parent-cgroup", parent, "--chroot-base-dir", s->dir, "--", "--no-api",
			    "--config-file", "/vm.json", NULL };
	_cleanup_strv_ char **argv = NULL;
	for (size_t i = 0; v[i]; i++)
		if (strv_push(&argv, v[i]) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(argv);
	return 0;
}

/* The read-only files' mounts (before the jail is removed), and the jailer's cgroup,
 * CGROUP2/<parent>/<id>: empty once the VMM is gone. */
static void cleanup(const struct sbx *s)
{
	static const char *const bound[] = { "root.ext4", "vmlinux", "initrd.img" };
	for (size_t i = 0; s->jail && i < ARRAY_SIZE(bound); i++) {
		_cleanup_free_ char *p = strdupf("%s/%s", s->jail, bound[i]);
		if (p && umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
			log_errno(-errno, "unmounting %s", p);
	}
	if (s->cgroup && rmdir(s->cgroup) < 0 && errno != ENOENT)
		log_errno(-errno, "removing cgroup %s", s->cgroup);
}

const struct sbx_backend sbx_backend_firecracker = {
	.name = "firecracker",
	.unusable = unusable,
	.halt = "reboot",
	.named_tap = true,
	.drops_privileges = true,
	.prepare = prepare,
	.argv = fc_argv,
	.cleanup = cleanup,
};
