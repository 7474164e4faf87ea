/* What the proxmox steps share (step-proxmox-kernel.c, -ve.c, -bridge.c, -vms.c): Proxmox VE on
 * Debian 12 the way Proxmox documents it ("Install Proxmox VE on Debian 12 Bookworm"), then
 * the bridge and the VMs of the hub-and-spoke layout. Four steps in a row, all reading the
 * config section "proxmox", because the install crosses a reboot:
 *
 *   proxmox-kernel  /etc/hosts gives the hostname the machine's address (not 127.0.1.1: the
 *                   cluster file system and the web interface resolve the node's name);
 *                   the release key (fetched, checked against its published SHA-512) and
 *                   the pve-no-subscription repository; apt-get update, full-upgrade, and
 *                   proxmox-default-kernel; the Proxmox kernel the boot loader's default
 *                   entry; then a reboot into it, verified: it runs.
 *   proxmox-ve      proxmox-ve postfix open-iscsi chrony (postfix preseeded: no
 *                   configuration, or local only); the Debian kernel (linux-image-amd64,
 *                   linux-image-6.1*) and os-prober removed, but never the running kernel;
 *                   the boot loader refreshed.
 *   proxmox-bridge  the bridge the VMs' net0 is on, over the uplink, with its address.
 *   proxmox-vms     "qm create" for each VM that does not exist yet (q35, OVMF with an EFI
 *                   disk, virtio-scsi, a disk imported from a qcow2 image when given, the
 *                   passed-through GPU with all its functions on the VM that asks for it).
 *
 * Without the network (the first run of every boot is before it) a step ends "pending" and
 * the timer finishes it later; nothing is changed before the repository has answered, so the
 * machine stays as it was. Every change goes through fb_write() and fb_run(), commands on the
 * target through "chroot ROOT" on a tree: run --dry-run shows them. The key and repository
 * can point elsewhere (tests use a stand-in repository on 127.0.0.1 with their own key). */
#ifndef PMOVES_FB_PROXMOX_H
#define PMOVES_FB_PROXMOX_H

#include "fb-step.h"

#include <stdbool.h>
#include <stdint.h>

#define PROXMOX_DEFAULT_REPOSITORY "http://download.proxmox.com/debian/pve"
#define PROXMOX_DEFAULT_SUITE "bookworm"
#define PROXMOX_DEFAULT_STORAGE "local-lvm"
#define PROXMOX_DEFAULT_BRIDGE "vmbr0"
#define PROXMOX_DPKG_STATUS "/var/lib/dpkg/status"
#define PROXMOX_MAX_VMS 64
#define PROXMOX_MAX_GPUS 8

/* The section "proxmox", for every proxmox step's record. */
extern const struct fb_field fb_proxmox_schema;

/* "dddd:bb:dd" (a slot: every function) or "dddd:bb:dd.f", domain optional ("01:00"), into
 * the canonical lower-case form with the domain. */
bool fb_proxmox_parse_pci(const char *s, char ret[13]);
/* A size string ("32G") as MiB, a whole number of them from MIN_MIB to MAX_MIB. */
int fb_proxmox_size_mib(const char *s, uint64_t min_mib, uint64_t max_mib, uint64_t *ret);

/* The running kernel's release (/proc/sys/kernel/osrelease); "" and -errno when unknown. */
int fb_proxmox_running_kernel(char ret[128]);
/* RELEASE is a Proxmox kernel's ("6.8.12-4-pve"). */
bool fb_proxmox_is_pve_kernel(const char *release);
/* /etc/hostname's name: 0, or -errno (-ENOENT: none or empty). */
int fb_proxmox_read_hostname(char ret[256]);
/* The node's IPv4 address: the source address of the route to a documentation address (the
 * kernel's route lookup, nothing is sent), else the first global address (a network without
 * a default route, such as QEMU's restricted one). -ENETUNREACH with a message when there is
 * neither yet. */
int fb_proxmox_route_source(char **ret, char **ret_msg);
/* Whether the repository answers: its Release file. -EAGAIN with a message when not. */
int fb_proxmox_probe_repository(json_object *section, char **ret_msg);

#endif
