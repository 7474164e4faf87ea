/* "direct": no boot loader on the disk. A VMM is handed the kernel and the initramfs itself:
 * the image of a sandbox guest (profiles/sandbox-guest.json), whose output "microvm" lays out
 * its root filesystem, kernel and initramfs for pmoves-sandbox (docs/sandbox.md). */
#include "build.h"
#include "log.h"
#include "util.h"

static int direct_check(const struct profile *p, struct problems *pr)
{
	for (size_t i = 0; p->outputs && p->outputs[i]; i++)
		if (STREQ(p->outputs[i], "microvm"))
			return 0;
	return problem(pr, ".boot.loader", "boot loader 'direct' puts none on the disk: a VMM boots the image "
					   "from its output 'microvm', which the profile's outputs must list");
}

static int direct_install(struct build *b)
{
	log_info("boot: no boot loader ('direct'): a VMM starts kernel %s itself", b->kernel_version);
	return 0;
}

static int direct_qemu(const struct qemu_image *img, struct qemu_boot *ret)
{
	(void)img, (void)ret;
	log_error("this image has no boot loader (boot loader 'direct'): pmoves-sandbox boots it from its output "
		  "'microvm' (docs/sandbox.md)");
	return -EINVAL;
}

const struct boot_loader boot_direct = {
	.name = "direct",
	.archs = ARCH_X86_64 | ARCH_AARCH64,
	.check = direct_check,
	.install = direct_install,
	.qemu = direct_qemu,
};
