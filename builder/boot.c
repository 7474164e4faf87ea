#include "build.h"
#include "util.h"

extern const struct boot_loader boot_systemd_boot;
static const struct boot_loader *const boot_loaders[] = { &boot_systemd_boot };

const struct boot_loader *boot_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(boot_loaders); i++)
		if (STREQ(boot_loaders[i]->name, name))
			return boot_loaders[i];
	return NULL;
}

unsigned arch_bit(const char *arch)
{
	if (STREQ(arch, "x86_64"))
		return ARCH_X86_64;
	if (STREQ(arch, "aarch64"))
		return ARCH_AARCH64;
	return 0;
}

const char *host_arch(void)
{
#if defined(__x86_64__)
	return "x86_64";
#elif defined(__aarch64__)
	return "aarch64";
#else
	return "";
#endif
}

const char *arch_triplet(const char *arch)
{
	return STREQ(arch, "aarch64") ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
}
