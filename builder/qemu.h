/* The QEMU runner: boots a disk image under UEFI firmware and watches its serial console.
 * Used by `pmoves-image run`, by tests and by the demo. */
#ifndef PMOVES_QEMU_H
#define PMOVES_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QEMU_DEFAULT_TIMEOUT 600 /* seconds, when expect is set and timeout is 0 */
#define QEMU_DEFAULT_MEMORY 1024 /* MiB */
#define QEMU_DEFAULT_CPUS 2
#define QEMU_TAIL_LINES 20       /* console lines shown when a boot fails */
#define QEMU_STOP_GRACE 5        /* seconds between SIGTERM and SIGKILL */
#define QEMU_KVM_PROBE_DEADLINE 3

#define QEMU_SOCKNET_MAX 4

#define QEMU_PXE_DISKS_MAX 4

struct qemu_opts {
	const char *image;  /* raw or qcow2 disk image */
	const char *arch;   /* "x86_64", "aarch64", or NULL: manifest.json beside the image, the
			     * root partition's GPT type, else x86_64 */
	const char *expect; /* POSIX extended regex matched against each console line; NULL: copy
			     * the console to stdout until QEMU exits */
	unsigned timeout;   /* seconds; 0: QEMU_DEFAULT_TIMEOUT with expect, none without */
	const char *config; /* JSON file passed as fw_cfg opt/ai.pmoves/device.json, or NULL */
	bool persist;       /* write to the image; otherwise snapshot=on */
	bool no_reboot;     /* QEMU exits when the guest reboots (a power cycle, not a reset) */
	const char *log;    /* file that gets a raw copy of the console and QEMU's stderr, or NULL */
	unsigned memory;    /* MiB; 0: QEMU_DEFAULT_MEMORY */
	unsigned cpus;      /* 0: QEMU_DEFAULT_CPUS */
	bool net;           /* user-mode network with restrict=off; otherwise restrict=on */
	const char *accel;  /* "auto" or NULL (probe KVM, else TCG), "kvm", "tcg" */
	const char *vars;   /* persistent firmware VARS file: copied from the template when
			     * missing, used in place otherwise; NULL: a private copy per boot */
	bool iommu;         /* an emulated IOMMU: x86_64 Intel VT-d (intel-iommu with interrupt
			     * remapping, split irqchip, an Intel CPU under TCG), aarch64 SMMUv3 */
	/* More NICs, after the user-mode one: a QEMU socket netdev on 127.0.0.1:port, listening
	 * or connecting (two guests on one wire: one listens, the other connects). The MAC is
	 * 52:54:00:PP:PP:01 (listen) or :02 (connect), PPPP the port, so the two ends differ. */
	struct qemu_socknet {
		bool listen;
		unsigned port;
	} socknet[QEMU_SOCKNET_MAX];
	size_t n_socknet;
	const char *machine; /* a machine the image's boot loader knows (a Pi image: "raspi3b",
			      * "virt"), or NULL: the loader's default */
	uint64_t disk_size;  /* bytes the disk has in the guest (a snapshot overlay), or 0: the
			      * image's size (an SD card: rounded up to a power of two) */
	/* A network boot instead of a disk (image NULL): the machine's firmware boots from its
	 * first NIC through QEMU's iPXE ROM, which DHCP sends to this URL (user-mode network with
	 * restrict=off: the guest reaches this machine's 127.0.0.1 at 10.0.2.2). */
	const char *pxe_url;
	bool bios;           /* with pxe_url: SeaBIOS instead of UEFI firmware */
	const char *mac;     /* with pxe_url: the booting NIC's MAC, or NULL: QEMU's default */
	/* with pxe_url: the machine's disks, raw files (virtio, serial pmoves-diskN from 1), in
	 * snapshot mode unless persist */
	const char *pxe_disks[QEMU_PXE_DISKS_MAX];
	size_t n_pxe_disks;
	bool network_first;  /* with pxe_disks: the NIC first in QEMU's boot order all the same */
};

/* Boot o->image and return an exit status (cmd.h): 0 the console matched o->expect (the line
 * is printed on stdout), or QEMU exited 0 without expect; 1 timeout, QEMU exited without a
 * match, or QEMU failed (the last console lines are printed on stderr); 2 invalid options;
 * 3 QEMU or firmware missing; 130 SIGINT/SIGTERM. QEMU is always stopped and reaped and the
 * temp directory (firmware VARS copy) removed before this returns. Logs its own messages. */
int qemu_boot(const struct qemu_opts *o);

/* Check every option without starting anything; logs the problem and returns EXIT_USAGE or
 * EXIT_MISSING (image absent), 0 when all is well. */
int qemu_check_opts(const struct qemu_opts *o);

/* The architecture of an image: from manifest.json beside it, else the GPT type of its root
 * partition (libblkid), else -ENODATA. ret_arch is "x86_64" or "aarch64"; ret_how says where it
 * came from ("manifest.json", "GPT root partition type"). -EINVAL: the manifest names an
 * architecture we cannot boot. */
int qemu_detect_arch(const char *image, const char **ret_arch, const char **ret_how);

/* Does KVM run x86 code here? Boots a 64 KiB firmware under -accel kvm that enters protected
 * mode and runs FPU and SSE instructions before printing 'K' on the serial port (OVMF's first
 * steps; an incomplete KVM fails there), with a QEMU_KVM_PROBE_DEADLINE second deadline.
 * Returns 1 (works) or 0 (does not) with a reason in ret_why (caller frees), or -errno. */
int qemu_probe_kvm(char **ret_why);

/* The accelerator for an architecture given the user's choice ("auto"/NULL, "kvm", "tcg"):
 * ret_accel is "kvm" or "tcg", ret_why one line saying why (caller frees). */
int qemu_pick_accel(const char *want, const char *arch, const char **ret_accel, char **ret_why);

/* Remove ANSI escape sequences, \r and other control characters (a backspace removes the
 * character before it) from a console line, in place; returns the new length. */
size_t qemu_console_clean(char *s, size_t len);

#endif
