/* Every step, in the order it runs. A new step: step-<name>.c with its record (which carries
 * its config section's schema), and one line here. Order matters: the hostname is set before
 * anything talks to the network, users exist before files are owned by them, files (unit
 * drop-ins, config) are written before units are enabled and started. */
#include "fb-step.h"

/* X(NAME) for the record step_NAME of each step, in order: the one table, expanded below into
 * the records' declarations and into fb_steps[]. */
#define FB_STEPS(X)                                                                             \
	X(growfs)                                                                               \
	X(hostname)                                                                             \
	X(users)                                                                                \
	X(ssh)                                                                                  \
	X(sysctl)                                                                               \
	X(files)                                                                                \
	/* before units: a package or tarball may bring the units the config enables */         \
	X(apt_repositories)                                                                     \
	X(artifacts)                                                                            \
	X(units)                                                                                \
	X(mesh)      /* before tailnet: a mesh-only node reaches the tailnet through the mesh */ \
	X(mesh_gateway) /* after mesh, before tailnet: which advertises the mesh it routes */    \
	X(gateway)   /* before tailnet: the subnet router advertises a LAN that is up */         \
	X(headscale) /* before tailnet: the hub joins its own tailnet */                         \
	X(tailnet)                                                                              \
	X(tunnel)                                                                               \
	X(rustdesk) /* after tailnet: its port is open on the tailnet only */                   \
	X(ollama)   /* after tailnet and mesh: its port is open on them only */                  \
	X(pinokio)  /* after tailnet: its port is open on the tailnet only */                    \
	X(ci_runner) /* after tailnet: CI reaches what the tailnet lets tag:ci reach */          \
	X(sandbox)  /* after artifacts: Firecracker may be one */                               \
	X(efiboot)                                                                              \
	X(iommu)                                                                                \
	X(proxmox_kernel)                                                                       \
	X(proxmox_ve)                                                                           \
	X(proxmox_bridge)                                                                       \
	X(proxmox_vms)

#define DECLARE(name) extern const struct fb_step step_##name;
#define ADDRESS(name) &step_##name,

FB_STEPS(DECLARE)

const struct fb_step *const fb_steps[] = { FB_STEPS(ADDRESS) };

const size_t fb_steps_count = sizeof(fb_steps) / sizeof(fb_steps[0]);
