/* QEMU: the `microvm` machine on x86_64, `virt` on aarch64; virtio-mmio disks and network, no
 * firmware, no PCI, no option ROMs. With KVM where /dev/kvm opens, else TCG (slow but the same
 * guest). Its own seccomp filter on (-sandbox): no new processes, no privileges. */
#include <fcntl.h>
#include <sys/utsname.h>

#include "run.h"
#include "sbx.h"
#include "util.h"

static const char *qemu_binary(void)
{
	struct utsname u;
	if (uname(&u) == 0 && STREQ(u.machine, "aarch64"))
		return "qemu-system-aarch64";
	return "qemu-system-x86_64";
}

static bool kvm_usable(const struct sbx_config *cfg)
{
	if (STREQ(cfg->accel, "tcg"))
		return false;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Under TCG the guest's TSC is the host's, and a TCG guest calibrating it against an emulated
 * PIT is a race it loses about one boot in three here (then it hangs before its console says
 * more than "tsc: Marking TSC unstable"): it is told the frequency instead, the host's
 * "cpu MHz" in kHz. 0 when the host does not say. */
static unsigned long host_tsc_khz(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	double mhz;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 && mhz >= 100 && mhz <= 100000)
			return (unsigned long)(mhz * 1000);
	return 0;
}

static const char *unusable(const struct sbx_config *cfg)
{
	_cleanup_free_ char *p = NULL;
	if (find_program(qemu_binary(), &p) < 0)
		return "QEMU is not installed (qemu-system-x86 or qemu-system-arm)";
	if (STREQ(cfg->accel, "kvm") && !kvm_usable(cfg))
		return "accel is \"kvm\" and /dev/kvm does not open";
	if (access(cfg->kernel, R_OK) < 0)
		return "the guest kernel ('kernel') is not readable";
	return NULL;
}

static int qemu_argv(const struct sbx *s, char ***ret)
{
	const struct sbx_config *c = s->cfg;
	bool arm = STREQ(qemu_binary(), "qemu-system-aarch64"), kvm = kvm_usable(c);
	unsigned long khz = !arm && !kvm ? host_tsc_khz() : 0;
	char tsc[40] = "";
	if (khz)
		snprintf(tsc, sizeof(tsc), " tsc_early_khz=%lu", khz);
	_cleanup_free_ char *con = qemu_opt_escape(s->console), *root = qemu_opt_escape(c->rootfs),
			    *io = qemu_opt_escape(s->io);
	if (!con || !root || !io)
		return -ENOMEM;
	_cleanup_strv_ char **v = NULL;
	int r = strv_push(&v, qemu_binary());
	r = r ?: strv_push(&v, "-M");
	r = r ?: strv_push(&v, arm ? "virt,gic-version=max" : "microvm,x-option-roms=off,isa-serial=on,rtc=off");
	static const char *const fixed[] = { "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-sandbox",
					     "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", NULL };
	for (size_t i = 0; fixed[i]; i++)
		r = r ?: strv_push(&v, fixed[i]);
	r = r ?: strv_push(&v, "-accel");
	r = r ?: strv_push(&v, kvm ? "kvm" : "tcg");
	r = r ?: strv_push(&v, "-cpu");
	r = r ?: strv_push(&v, kvm ? "host" : "max");
	r = r ?: strv_push(&v, "-smp");
	r = r ?: strv_pushf(&v, "%u", s->spec->vcpus);
	r = r ?: strv_push(&v, "-m");
	r = r ?: strv_pushf(&v, "%u", s->spec->memory_mib);
	r = r ?: strv_push(&v, "-chardev");
	r = r ?: strv_pushf(&v, "file,id=con,path=%s", con);
	r = r ?: strv_push(&v, "-serial");
	r = r ?: strv_push(&v, "chardev:con");
	r = r ?: strv_push(&v, "-kernel");
	r = r ?: strv_push(&v, c->kernel);
	r = r ?: strv_push(&v, "-initrd");
	r = r ?: strv_push(&v, c->initrd);
	r = r ?: strv_push(&v, "-append");
	r = r ?: strv_pushf(&v, "console=%s quiet panic=-1%s%s", arm ? "ttyAMA0" : "ttyS0", arm ? "" : " pci=off", tsc);
	/* The root first and the I/O disk second: the guest sees them as vda and vdb. The root
	 * is the one image every sandbox shares, read only: the guest writes to an overlay in
	 * its own memory. */
	r = r ?: strv_push(&v, "-drive");
	r = r ?: strv_pushf(&v, "id=root,file=%s,format=raw,if=none,readonly=on", root);
	r = r ?: strv_push(&v, "-device");
	r = r ?: strv_push(&v, "virtio-blk-device,drive=root");
	r = r ?: strv_push(&v, "-drive");
	r = r ?: strv_pushf(&v, "id=io,file=%s,format=raw,if=none,cache=writeback", io);
	r = r ?: strv_push(&v, "-device");
	r = r ?: strv_push(&v, "virtio-blk-device,drive=io");
	if (s->tap_fd >= 0) {
		r = r ?: strv_push(&v, "-netdev");
		r = r ?: strv_pushf(&v, "tap,id=net,fd=%d", s->tap_fd);
		r = r ?: strv_push(&v, "-device");
		r = r ?: strv_pushf(&v, "virtio-net-device,netdev=net,mac=%s", s->mac);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	return 0;
}

const struct sbx_backend sbx_backend_qemu = {
	.name = "qemu",
	.unusable = unusable,
	.halt = "poweroff",
	.argv = qemu_argv,
};
