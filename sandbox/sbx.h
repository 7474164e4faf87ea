/* pmoves-sandbox: one throw-away microVM per task (docs/sandbox.md). */
#ifndef PMOVES_SBX_H
#define PMOVES_SBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The VMMs' ids by default: 0x70000000 and up, above systemd's range for containers' ids
 * (nspawn's, up to 0x6FFFFFFF) and below its reserved ones; shadow's useradd hands out
 * subordinate ids below 600100000. */
#define SBX_UIDS "1879048192-1879050239"

/* /etc/pmoves/sandbox.json: what every sandbox of this machine shares. */
struct sbx_config {
	char *backend;    /* "auto", or a backend's name */
	char *accel;      /* qemu: "auto", "kvm" or "tcg" */
	char *firecracker; /* Firecracker and its jailer, for the backend "firecracker" */
	char *jailer;
	char *kernel;     /* the guest kernel as QEMU boots it (bzImage, Image) */
	char *vmlinux;    /* the same kernel uncompressed, as Firecracker boots it on x86_64 */
	char *initrd;     /* pmoves-sandbox-init and the guest's modules */
	char *rootfs;     /* the guest's ext4 root, shared by every sandbox, read only */
	char *state_dir;  /* a tmpfs: the sandboxes' own files live and die here */
	char *audit_log;  /* root's: a line per create and destroy */
	char *user;       /* the sandbox user: the VMMs' group kvm, the fallback uid */
	uint32_t uid_first, uid_count; /* the VMMs' own ids, one per sandbox (0: all run as user) */
	char *bridge;     /* "" or NULL: sandboxes have no network */
	char *uplink;     /* the interface sandboxes reach the Internet through; NULL: the default route's */
	char *dns;        /* the resolver sandboxes are told, or NULL */
	uint32_t net;     /* the bridge's subnet (host order): .1 is the host, .2 up the sandboxes */
	unsigned prefix;  /* 16..29 */
	uint64_t output_max; /* bytes of a command's output kept */
	uint64_t console_max; /* bytes the guest's console and the VMM's log may hold */
};

/* A task, as the spec file says it. */
struct sbx_spec {
	unsigned vcpus;
	unsigned memory_mib;
	unsigned ttl_s;
	bool network;
	char **command;
	char sha256[65]; /* of the spec file's bytes, as the audit log names it */
};

/* One sandbox while it runs. */
struct sbx {
	const struct sbx_config *cfg;
	const struct sbx_spec *spec;
	char id[32];       /* "sbx-" and 16 hex digits */
	char *dir;         /* STATE_DIR/ID, the VM's files; gone when it stops */
	char *io;          /* DIR/io.img */
	char *console;     /* DIR/console.log */
	uid_t uid;         /* the VMM's: a free id of the pool, or the sandbox user's */
	gid_t gid, kvm_gid;
	int uid_lock;      /* the lock that holds the id, -1 */
	char *jail;        /* the backend's chroot for the VMM, or NULL */
	char *cgroup;      /* the VMM's own cgroup (its full path), or NULL */
	int tap_fd;        /* -1 without network, or with a named tap */
	char tap[16];
	char mac[18];
	char addr[20], gw[16]; /* the guest's address with its prefix, and its gateway */
	int addr_lock;     /* the lock that holds the address, -1 */
	bool bound;        /* the tap, its MAC and address are in the bridge table's set */
};

struct sbx_backend {
	const char *name;
	/* NULL when it can run here, else why not (static text). */
	const char *(*unusable)(const struct sbx_config *cfg);
	/* The halt= the guest ends with. */
	const char *halt;
	/* The VMM opens the tap by its name (a persistent tap the sandbox user owns), rather than
	 * inheriting the launcher's descriptor. */
	bool named_tap;
	/* The VMM is started as root and drops to the sandbox user itself (a jailer). */
	bool drops_privileges;
	/* Optional: lay out what the VMM needs (its chroot) once the disks are made. */
	int (*prepare)(struct sbx *s);
	/* argv for the VMM (malloc'd strings). */
	int (*argv)(const struct sbx *s, char ***ret_argv);
	/* Optional: remove what the VMM left outside the sandbox's directory (a cgroup). */
	void (*cleanup)(const struct sbx *s);
};

extern const struct sbx_backend sbx_backend_firecracker;
extern const struct sbx_backend sbx_backend_qemu;

const struct sbx_backend *sbx_backend_find(const char *name);
const struct sbx_backend *sbx_backend_at(size_t i); /* the table's Ith, NULL past its end */
const struct sbx_backend *sbx_backend_pick(const struct sbx_config *cfg, const char **ret_why);

/* config.c */
int sbx_config_load(const char *path, struct sbx_config *ret);
void sbx_config_free(struct sbx_config *c);
int sbx_spec_load(const char *path, struct sbx_spec *ret);
void sbx_spec_free(struct sbx_spec *s);

/* net.c */
int sbx_net_up(const struct sbx_config *cfg);
int sbx_net_down(const struct sbx_config *cfg);
/* A tap on the bridge for S and an address: fills tap_fd, tap, mac, addr, gw, addr_lock. NAMED:
 * a persistent tap the sandbox user owns, opened by its name (tap_fd stays -1), removed by
 * sbx_net_detach. */
int sbx_net_attach(struct sbx *s, bool named);
void sbx_net_detach(struct sbx *s);
/* A sandbox's tap is named after its id: "sbx" and 12 of its hex digits. */
void sbx_net_tap_name(const char *id, char ret[16]);
bool sbx_net_link_exists(const char *name);
/* Let go of the launcher's descriptor of an inherited tap (the VMM has it). */
void sbx_net_handed_over(struct sbx *s);
/* The nftables table net-up loads, for UPLINK. */
char *sbx_net_nft(const struct sbx_config *cfg, const char *uplink);

/* run.c: exit codes of `pmoves-sandbox run`, after the command's own 0..255. */
#define SBX_EXIT_EXPIRED 124 /* its time to live ran out, as timeout(1) */
#define SBX_EXIT_FAILED 125  /* the sandbox could not be made or run */
#define SBX_EXIT_NOEXEC 126  /* the command could not be executed (127: not found) */
int sbx_run(const struct sbx_config *cfg, const struct sbx_spec *spec, bool json);

#endif
