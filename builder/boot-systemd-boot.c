#include "build.h"
/* placeholder */
const struct boot_loader boot_systemd_boot = { "systemd-boot", ARCH_X86_64 | ARCH_AARCH64, true, "gpt", NULL };
