/* /etc/hosts: the machine's own name on the address it is reached at. Functions of the file's
 * text, for the steps that set the name (hostname, proxmox-kernel). */
#ifndef PMOVES_FB_HOSTS_H
#define PMOVES_FB_HOSTS_H

#include <stdbool.h>

/* The line both write: "ADDR\tNAME SHORT\n", SHORT being NAME up to its first dot (no SHORT
 * when NAME has no dot). It goes right after the 127.0.0.1 line (or, for the loopback name,
 * in place of a 127.0.1.1 line that comes before it), else at the end. OLD is the file's text,
 * or NULL when there is none (then a localhost file is made: 127.0.0.1 and ::1). Caller frees;
 * NULL on ENOMEM. */

/* OLD with NAME on 127.0.1.1, Debian's line for a machine without a fixed address: one
 * 127.0.1.1 line, ours; every other line stays. */
char *fb_hosts_loopback_name(const char *old, const char *name);
/* OLD with NAME on ADDR only (a node others reach by name, such as Proxmox's): 127.0.1.1
 * lines and other lines naming NAME or SHORT go; loopback lines (127.0.0.1, ::1) stay without
 * those names. */
char *fb_hosts_pin_name(const char *old, const char *addr, const char *name);
/* In TEXT, NAME (or SHORT) is on an address and on no loopback one (127.x.x.x, ::1). */
bool fb_hosts_name_routable(const char *text, const char *name);

#endif
