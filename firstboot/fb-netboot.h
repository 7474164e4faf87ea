/* The network boot's initramfs half (README, "Network boot"): `pmoves-firstboot netboot`, run by
 * the bundle's scripts/pmoves. fb-netboot.c: the command, the live mode and what both modes
 * share; fb-install.c: the install mode. */
#ifndef PMOVES_FB_NETBOOT_H
#define PMOVES_FB_NETBOOT_H

#include <stdbool.h>
#include <stdint.h>

#define NB_RAM_DIR "/run/pmoves"          /* its own tmpfs: downloads, mounts */
#define NB_MODULES_DIR "/pmoves/modules"  /* the bundle's modules, and the lists of them */

/* "WHO: step=STEP state=STATE[ DETAIL]" on stdout, the console. */
void nb_say(const char *who, const char *step, const char *state, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* download_opts.retrying: CTX is WHO. */
void nb_retrying(void *ctx, const char *why);
/* The modules NB_MODULES_DIR/LIST names, in order; one already loaded or built in is fine; a
 * missing LIST: none needed. Says what failed. */
int nb_load_modules(const char *who, const char *list);
/* NB_RAM_DIR as a tmpfs of its own (initramfs-tools' /run is a tenth of the RAM). */
int nb_ram_dir(const char *who);
/* A loop device over FD (from OFFSET, SIZE bytes; 0: to the end), detached when its last
 * user lets go: the returned fd, kept open until a mount holds the device. */
int nb_loop_attach(int fd, uint64_t offset, uint64_t size, bool rw, const char *label, char ret_dev[static 32]);

/* KEY=URL and KEY_sha256=HEX from CMDLINE, both checked (URL: https, or http to any host: the
 * content is pinned). FB_EXIT_OK, else an FB_EXIT_* status, said (WHAT needs them). OPTIONAL:
 * without KEY, FB_EXIT_OK and both NULL. */
int nb_pinned_url(const char *cmdline, const char *key, const char *what, bool optional, char **ret_url, char **ret_pin);

/* The install mode: the image at pmoves.image written to this machine's disk (CMDLINE: the
 * kernel's). An FB_EXIT_* status; on success it does not return (the machine reboots). */
int fb_netboot_install(const char *cmdline);

/* step-efiboot.c: for the installed DISK, whose ESP is mounted on ESP_DIR, a boot entry first
 * in BootOrder and in BootNext. 0, or -errno and *ret_msg. */
int fb_efiboot_install(const char *disk, const char *esp_dir, char **ret_msg);

#endif
