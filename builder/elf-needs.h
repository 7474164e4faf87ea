/* What an ELF executable needs from the system it runs on. */
#ifndef PMOVES_ELF_NEEDS_H
#define PMOVES_ELF_NEEDS_H

#include <stdbool.h>
#include <stddef.h>
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

/* In the ELF64 little-endian file image BUF of LEN bytes: the program interpreter (PT_INTERP)
 * replaced by INTERP, padded with NULs, in place, and the old one in *RET_OLD (malloc'd; RET_OLD
 * may be NULL). -ENOENT without one (static), -ENAMETOOLONG when INTERP does not fit in its
 * room, -ENOEXEC when BUF is not such an ELF file or the interpreter lies outside it. */
int elf_set_interp(void *buf, size_t len, const char *interp, char **ret_old);
/* Whether the ELF64 little-endian file image BUF names INTERP as its program interpreter. */
bool elf_interp_is(const void *buf, size_t len, const char *interp);

#endif
