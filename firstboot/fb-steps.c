/* Every step, in the order it runs. A new step: step-<name>.c with its record, one line here,
 * and its section in the schema table of fb-config.c. Order matters: the hostname is set
 * before anything talks to the network, users exist before files are owned by them, files
 * (unit drop-ins, config) are written before units are enabled and started. */
#include "fb-step.h"

const struct fb_step *const fb_steps[] = {
	&step_growfs,
	&step_hostname,
	&step_users,
	&step_ssh,
	&step_sysctl,
	&step_files,
	/* before units: a package or tarball may bring the units the config enables */
	&step_apt_repositories,
	&step_artifacts,
	&step_units,
	&step_mesh, /* before tailnet: a mesh-only node reaches the tailnet through the mesh */
	&step_gateway, /* before tailnet: the subnet router advertises a LAN that is up */
	&step_headscale, /* before tailnet: the hub joins its own tailnet */
	&step_tailnet,
	&step_tunnel,
	&step_rustdesk, /* after tailnet: its port is open on the tailnet only */
	&step_efiboot,
	&step_iommu,
	&step_proxmox_kernel,
	&step_proxmox_ve,
	&step_proxmox_bridge,
	&step_proxmox_vms,
	/* tailnet (its issue) */
};

const size_t fb_steps_count = sizeof(fb_steps) / sizeof(fb_steps[0]);
