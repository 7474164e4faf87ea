#include "arch.h"
#include "util.h"

#include <elf.h>
#include <strings.h>

/* Indexed by the ARCH_* bits. aarch64 under TCG uses cortex-a72: as fast as "max" for the
 * firmware here (6.5-7.5 s to the boot manager either way), and without pointer
 * authentication, which "max" offers and a Debian kernel turns on, and which TCG emulates
 * slowly. */
static const struct arch arches[] = {
	{
		.name = "x86_64",
		.debian = "amd64",
		.triplet = "x86_64-linux-gnu",
		.elf_machine = EM_X86_64,
		.efi = "x64",
		.efi_boot = "BOOTX64.EFI",
		.root_type = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
		.qemu = "qemu-system-x86_64",
		.qemu_pkg = "qemu-system-x86",
		.machine = "q35",
		.tcg_cpu = NULL,
		.uefi_code = "/usr/share/OVMF/OVMF_CODE_4M.fd",
		.uefi_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd",
		.uefi_pkg = "ovmf",
	},
	{
		.name = "aarch64",
		.debian = "arm64",
		.triplet = "aarch64-linux-gnu",
		.elf_machine = EM_AARCH64,
		.efi = "aa64",
		.efi_boot = "BOOTAA64.EFI",
		.root_type = "b921b045-1df0-41c3-af44-4c6f280d3fae",
		.qemu = "qemu-system-aarch64",
		.qemu_pkg = "qemu-system-arm",
		.machine = "virt",
		.tcg_cpu = "cortex-a72",
		.uefi_code = "/usr/share/AAVMF/AAVMF_CODE.fd",
		.uefi_vars = "/usr/share/AAVMF/AAVMF_VARS.fd",
		.uefi_pkg = "qemu-efi-aarch64",
	},
};
_Static_assert(ARCH_X86_64 == 1u << 0 && ARCH_AARCH64 == 1u << 1, "ARCH_* bits follow the table");

const struct arch *arch_find(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(arches); i++)
		if (STREQ(name, arches[i].name) || STREQ(name, arches[i].debian))
			return &arches[i];
	return NULL;
}

const struct arch *arch_host(void)
{
#if defined(__x86_64__)
	return arch_find("x86_64");
#elif defined(__aarch64__)
	return arch_find("aarch64");
#else
	return NULL;
#endif
}

unsigned arch_bit(const struct arch *a)
{
	return a ? 1u << (a - arches) : 0;
}

const struct arch *arch_by_root_type(const char *guid)
{
	for (size_t i = 0; guid && i < ARRAY_SIZE(arches); i++)
		if (strcasecmp(guid, arches[i].root_type) == 0)
			return &arches[i];
	return NULL;
}

const char *arch_at(size_t i)
{
	return i < ARRAY_SIZE(arches) ? arches[i].name : NULL;
}

const char *arch_names(void)
{
	static char buf[128];
	if (!*buf)
		for (size_t i = 0; i < ARRAY_SIZE(arches); i++)
			names_add(buf, sizeof(buf), arches[i].name, true);
	return buf;
}
