/* The build machine's own programs in place of the image's while mmdebstrap installs the
 * packages of an architecture this machine runs only under qemu-user (arm64 on x86_64): dpkg's
 * unpacker, the shell of every maintainer script and the small programs they start most. Each
 * of them costs tens of milliseconds to start emulated and a few natively, and the packages'
 * scripts start thousands. Used only when this machine runs the release the image is built from,
 * so each is the same program as the image's, built for the other architecture; never for
 * uname or arch, which would name this machine's architecture. The image's own files are put
 * back after everything else has run in it, the initramfs and the certificate store made, and
 * before the tarball is packed: the image holds no trace of them (tests/e2e/rootfs-foreign.t),
 * and no initramfs holds one of them (native_tools_check). Why and what it saves:
 * docs/profiles.md. */
#ifndef PMOVES_NATIVE_TOOLS_H
#define PMOVES_NATIVE_TOOLS_H

#include <stddef.h>

struct profile;

/* For a foreign build: DIR/native holding the programs (their program interpreter moved to
 * /.pmoves-native/ld.so), the loader and the libraries they need, and the hooks' scripts;
 * *RET_ENV "PMOVES_NATIVE=DIR/native" for the hooks below. *RET_ENV NULL (and 0) when they are
 * not used: the same architecture, another release, or a program or library missing here (said
 * why). */
int native_tools_prepare(const struct profile *p, const char *dir, char **ret_env);

/* mmdebstrap's hooks: the first after the essential packages are extracted, before any is
 * installed; the second the last customize hook. */
extern const char *const native_tools_install_hook;
extern const char *const native_tools_restore_hook;

/* After a build with them, the tarball TAR read through: no name of theirs, no program of this
 * machine's whose interpreter is theirs (one the restore did not take out), and every initramfs
 * (/boot/initrd.img-*) holding no program for this machine's architecture, in case the initramfs
 * generator copied one of them by name while they stood in. Logs and -EINVAL when it finds one. */
int native_tools_check(const char *tar);
/* One initramfs image (NAME for messages): its uncompressed cpio archives, then the compressed
 * one after them; -EINVAL when a file in it is an ELF file for the machine HOST (EM_*). */
int native_tools_check_initrd(const void *initrd, size_t len, const char *name, unsigned host);

#endif
