/* What an ELF executable needs from the system it runs on. */
#ifndef PMOVES_ELF_NEEDS_H
#define PMOVES_ELF_NEEDS_H

#include <stdint.h>

struct elf_needs {
	uint16_t machine;   /* EM_X86_64, EM_AARCH64, ... */
	char **needed;      /* DT_NEEDED sonames, NULL-terminated */
	unsigned glibc_major, glibc_minor; /* the newest GLIBC_x.y symbol version it needs */
	unsigned defines_major, defines_minor; /* the newest GLIBC_x.y it defines (libc.so.6 itself) */
};

/* Reads a 64-bit little-endian ELF file; -ENOEXEC when it is not one or is malformed. */
int elf_read_needs(const char *path, struct elf_needs *ret);
void elf_needs_free(struct elf_needs *n);

#endif
