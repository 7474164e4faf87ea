/* The architectures images are built for: every fact about one in one record. */
#ifndef PMOVES_ARCH_H
#define PMOVES_ARCH_H

#include <stddef.h>

struct arch {
	const char *name;      /* as profiles and uname name it: "x86_64" */
	const char *debian;    /* Debian's name: "amd64" */
	const char *triplet;   /* multiarch directory: "x86_64-linux-gnu" */
	unsigned elf_machine;  /* EM_X86_64 */
	const char *efi;       /* UEFI's suffix for it, as loaders name their files: systemd-bootx64.efi */
	const char *efi_boot;  /* the removable-media loader path's file: EFI/BOOT/BOOTX64.EFI */
	const char *root_type; /* GPT type GUID of its root partition (Discoverable Partitions) */
	/* QEMU: the system emulator and its package, machine, CPU under TCG (NULL: QEMU's
	 * default), and the UEFI firmware (code and variables template) with its package. */
	const char *qemu, *qemu_pkg, *machine, *tcg_cpu;
	const char *uefi_code, *uefi_vars, *uefi_pkg;
};

/* Bits for sets of architectures (a boot loader's "archs"): 1 << index in the table. */
enum { ARCH_X86_64 = 1u << 0, ARCH_AARCH64 = 1u << 1 };

/* By name or Debian name; NULL when unknown. */
const struct arch *arch_find(const char *name);
/* The machine this program runs on, or NULL. */
const struct arch *arch_host(void);
unsigned arch_bit(const struct arch *a);
/* The architecture whose root partition type is GUID (text, any case), or NULL. */
const struct arch *arch_by_root_type(const char *guid);
/* The name of the I-th architecture, NULL past the last. */
const char *arch_at(size_t i);
/* "'x86_64', 'aarch64'", for messages. */
const char *arch_names(void);

#endif
