/* The boot loader of the target and its kernel command line: which loader the tree boots
 * with, where its command line is kept and in what form, how its menu is rebuilt; and the
 * command line itself as a string, parameters put in and taken out. */
#ifndef PMOVES_FB_BOOT_H
#define PMOVES_FB_BOOT_H

#include <stdbool.h>
#include <stddef.h>

#define FB_KERNEL_CMDLINE "/etc/kernel/cmdline"
#define FB_GRUB_DEFAULT "/etc/default/grub"

enum fb_loader {
	FB_LOADER_NONE,         /* none of these found */
	FB_LOADER_SYSTEMD_BOOT, /* entries by kernel-install, command line /etc/kernel/cmdline */
	FB_LOADER_GRUB,         /* menu by update-grub, command line in /etc/default/grub */
	FB_LOADER_PROXMOX,      /* proxmox-boot-tool keeps the ESPs, with either of those */
};

/* How a loader keeps the command line in its file. */
enum fb_cmdline_form {
	FB_CMDLINE_WHOLE_FILE, /* the file is the command line: /etc/kernel/cmdline (and the
				* Raspberry Pi's cmdline.txt) */
	FB_CMDLINE_GRUB,       /* GRUB_CMDLINE_LINUX_DEFAULT="..." among shell assignments */
};

struct fb_boot {
	enum fb_loader loader;
	const char *cmdline_file; /* absolute as on the target; NULL with FB_LOADER_NONE */
	enum fb_cmdline_form form;
};

/* The loader the tree boots with: proxmox-boot-tool when /etc/kernel/proxmox-boot-uuids
 * exists (its command line in /etc/kernel/cmdline in systemd-boot mode, /etc/default/grub in
 * GRUB mode); systemd-boot when /etc/kernel/cmdline exists and either systemd-boot booted this
 * machine (its LoaderInfo EFI variable) or there is no /etc/default/grub; GRUB when
 * /etc/default/grub exists. */
struct fb_boot fb_boot_detect(void);
const char *fb_loader_name(enum fb_loader l);

/* Rebuild the loader's boot menu from its configuration, on the target (fb_run_target):
 * update-grub, or proxmox-boot-tool refresh. *ret_what names the command, or is NULL when the
 * loader has none (systemd-boot: kernel-install writes an entry per kernel; none): then
 * nothing runs. The exit status, or -errno. */
int fb_boot_refresh(const struct fb_boot *b, const char **ret_what);

/* The loader's command-line file, OLD (LEN bytes), with the parameters ADD put into the
 * command line it holds and those named in REMOVE taken out (fb_cmdline_merge). GRUB's: the
 * last GRUB_CMDLINE_LINUX_DEFAULT= assignment, the one that counts, or a new one at the end.
 * 0; -EINVAL when it cannot be edited safely (a NUL byte, an unbalanced quote, a parameter
 * holding the quote); -ENOMEM. */
int fb_boot_cmdline_text(const struct fb_boot *b, const char *old, size_t len, const char *const *add,
			 const char *const *remove, char **ret);

/* ---- the default boot entry (fb-boot-default.c) ---- */

/* What the loader boots when nobody picks an entry. */
struct fb_boot_default {
	char *entry;   /* the entry: systemd-boot's id, GRUB's title; NULL when there is none */
	char *release; /* the kernel release it boots; NULL: none, or it cannot be told */
	char *how;     /* why it is the default, for messages ("'default *-pve.conf' in '...'") */
};
void fb_boot_default_done(struct fb_boot_default *d);

/* The default entry of B's loader: systemd-boot's (LoaderEntryDefault, loader.conf's default
 * glob, the first entry in its order), GRUB's (grub.cfg's "set default=", grubenv's saved
 * entry, the first entry), proxmox-boot-tool's in systemd-boot mode (its pin, else the newest
 * kernel in /boot); none for FB_LOADER_NONE (only *how set). 0, or -errno. */
int fb_boot_default_get(const struct fb_boot *b, struct fb_boot_default *ret);

/* Make an entry booting a kernel whose release ends in SUFFIX ("-pve") the default: the first
 * such in the loader's order (the newest). systemd-boot: "default *SUFFIX.conf" (or the entry's
 * id) in loader.conf; GRUB: GRUB_DEFAULT in /etc/default/grub (its position at the top level,
 * or "SUBMENU-ID>ENTRY-ID"), the menu rebuilt (fb_boot_refresh) and read again. 0: it is the
 * default already (or FB_LOADER_NONE: nothing to change); 1: made so, *ret_what says how;
 * -errno with *ret_msg: cannot (no such entry; an EFI variable or proxmox-boot-tool's pin
 * decides, -EBUSY; the refreshed menu still boots another). */
int fb_boot_default_set(const struct fb_boot *b, const char *suffix, char **ret_what, char **ret_msg);

/* The kernel releases in /boot (vmlinuz-RELEASE), newest first; NULL for none. */
int fb_boot_kernels(char ***ret);
/* Version order (the UAPI version format, systemd-boot's): <0, 0, >0. */
int fb_vercmp(const char *a, const char *b);

/* ---- a kernel command line, as a string ----
 * Parameters are separated by blanks (space, tab, newline); a double-quoted part is one with
 * its parameter ('foo="a b"'). A parameter's name is what comes before its first '=', and in
 * names '-' and '_' are the same, as the kernel takes them. */

/* CMDLINE (LEN bytes) with each parameter of ADD (NULL-terminated) in it: it replaces the
 * first parameter of its name, later ones of that name go, and it is appended when there is
 * none; and without the parameters REMOVE (NULL-terminated, may be NULL) names: "quiet" or
 * "iommu" take out every parameter of that name, "iommu=soft" only that one. The others stay
 * in their order; the result is separated by single spaces, no newline. Caller frees; NULL on
 * ENOMEM. */
char *fb_cmdline_merge(const char *cmdline, size_t len, const char *const *add, const char *const *remove);
/* CMDLINE has the parameter PARAM: "NAME=VALUE" exactly, or "NAME" (a flag without a value). */
bool fb_cmdline_has(const char *cmdline, const char *param);

#endif
