/* proxmox-ve: proxmox-ve postfix open-iscsi chrony (postfix preseeded: no configuration, or
 * local only), the Debian kernel (linux-image-amd64, linux-image-6.1*) and os-prober removed
 * but never the running kernel, the boot loader refreshed (fb-proxmox.h: the four proxmox
 * steps). Pending until proxmox-kernel has installed proxmox-default-kernel. */
#include "fb-boot.h"
#include "fb-proxmox.h"
#include "firstboot.h"
#include "util.h"

#define DEBCONF_PATH "/var/lib/pmoves/proxmox/postfix.debconf"

/* The Debian kernel packages Proxmox says to remove, except the running kernel's. */
static int debian_kernels(char **installed, const char *release, char ***ret_remove, char **ret_kept)
{
	_cleanup_strv_ char **out = NULL;
	_cleanup_free_ char *running = fb_strdupf("linux-image-%s", release), *running_u = fb_strdupf("linux-image-%s-unsigned", release);
	if (!running || !running_u)
		return -ENOMEM;
	*ret_kept = NULL;
	for (char **p = installed; p && *p; p++) {
		if (!STREQ(*p, "linux-image-amd64") && strncmp(*p, "linux-image-6.1", 15))
			continue;
		if (release[0] && (STREQ(*p, running) || STREQ(*p, running_u))) {
			if (!*ret_kept)
				*ret_kept = strdup(*p);
			continue;
		}
		int r = strv_push(&out, *p);
		if (r < 0)
			return r;
	}
	*ret_remove = TAKE_PTR(out);
	return 0;
}

static const char *const ve_packages[] = { "proxmox-ve", "postfix", "open-iscsi", "chrony", NULL };

/* What proxmox-ve still has to do: packages missing, packages to remove. */
static int ve_todo(char ***ret_missing, char ***ret_remove, char **ret_kept, bool *ret_have_kernel)
{
	_cleanup_strv_ char **pkgs = NULL, **missing = NULL, **remove = NULL;
	char release[128];
	int r = fb_installed_packages(&pkgs);
	if (r < 0)
		return r;
	for (const char *const *p = ve_packages; *p; p++)
		if (!strv_contains(pkgs, *p) && (r = strv_push(&missing, *p)) < 0)
			return r;
	fb_proxmox_running_kernel(release);
	if ((r = debian_kernels(pkgs, release, &remove, ret_kept)) < 0)
		return r;
	if (strv_contains(pkgs, "os-prober") && (r = strv_push(&remove, "os-prober")) < 0)
		return r;
	*ret_have_kernel = strv_contains(pkgs, "proxmox-default-kernel");
	*ret_missing = TAKE_PTR(missing);
	*ret_remove = TAKE_PTR(remove);
	return 0;
}

static int ve_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)section;
	_cleanup_strv_ char **missing = NULL, **remove = NULL;
	_cleanup_free_ char *kept = NULL;
	bool have_kernel;
	int r = ve_todo(&missing, &remove, &kept, &have_kernel);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", PROXMOX_DPKG_STATUS, strerror(-r));
		return r;
	}
	if (missing || remove)
		return 0;
	*ret_msg = kept ? fb_strdupf("proxmox-ve installed; '%s' kept: it is the running kernel", kept) : NULL;
	return 1;
}

static enum fb_result ve_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_strv_ char **missing = NULL, **remove = NULL;
	_cleanup_free_ char *kept = NULL, *debconf = NULL;
	bool have_kernel;
	int r = ve_todo(&missing, &remove, &kept, &have_kernel);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", PROXMOX_DPKG_STATUS, strerror(-r));
		return FB_FAILED;
	}
	if (!have_kernel) {
		*ret_msg = strdup("waiting for step 'proxmox-kernel' (proxmox-default-kernel is not installed)");
		return FB_PENDING;
	}
	if (missing) {
		/* No route: pending at once, without waiting for name lookups and retries (the
		 * boot-time run is before the network, and before logins). */
		_cleanup_free_ char *addr = NULL;
		if ((r = fb_proxmox_route_source(&addr, ret_msg)) < 0)
			return r == -ENETUNREACH ? FB_PENDING : FB_FAILED;
		if ((r = fb_proxmox_probe_repository(section, ret_msg)) < 0)
			return r == -EAGAIN ? FB_PENDING : FB_FAILED;
		/* postfix asks how to deliver mail: "No configuration", or "Local only" with the
		 * machine's name. */
		char name[256];
		if (fb_proxmox_read_hostname(name) < 0)
			snprintf(name, sizeof(name), "localhost");
		bool local = STREQ(fb_json_str(section, "postfix", "none"), "local");
		debconf = fb_strdupf("postfix postfix/main_mailer_type select %s\npostfix postfix/mailname string %s\n",
				     local ? "Local only" : "No configuration", name);
		if (!debconf)
			return FB_FAILED;
		if ((r = fb_write(DEBCONF_PATH, debconf, strlen(debconf), 0644, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", DEBCONF_PATH, strerror(-r));
			return FB_FAILED;
		}
		if (fb_dpkg_finish(ret_msg) < 0)
			return FB_FAILED;
		char *seed[] = { "debconf-set-selections", DEBCONF_PATH, NULL };
		if ((r = fb_run_target(seed)) != 0) {
			*ret_msg = fb_strdupf("'debconf-set-selections %s' exited with %d", DEBCONF_PATH, r);
			return FB_FAILED;
		}
		if ((r = fb_apt("install", (char *const *)ve_packages)) != 0) {
			*ret_msg = fb_strdupf("'apt-get install proxmox-ve postfix open-iscsi chrony' exited with %d", r);
			return FB_FAILED;
		}
	}
	const char *what = NULL;
	if (remove && !missing && fb_dpkg_finish(ret_msg) < 0)
		return FB_FAILED;
	if (remove) {
		if ((r = fb_apt("remove", remove)) != 0) {
			_cleanup_free_ char *list = strv_join(remove, " ");
			*ret_msg = fb_strdupf("'apt-get remove %s' exited with %d", list ? list : "...", r);
			return FB_FAILED;
		}
		/* The boot menu without the removed kernels. systemd-boot needs nothing: the
		 * kernel packages' hooks (kernel-install) add and remove its entries. */
		struct fb_boot boot = fb_boot_detect();
		if ((r = fb_boot_refresh(&boot, &what)) != 0) {
			*ret_msg = fb_strdupf("'%s' exited with %d", what, r);
			return FB_FAILED;
		}
	}
	_cleanup_free_ char *removed = remove ? strv_join(remove, " ") : NULL;
	*ret_msg = fb_strdupf("proxmox-ve postfix open-iscsi chrony installed%s%s%s%s%s%s%s", removed ? "; removed " : "",
			      removed ? removed : "", what ? "; " : "", what ? what : "",
			      kept ? "; kept '" : "", kept ? kept : "", kept ? "': it is the running kernel" : "");
	return FB_OK;
}

const struct fb_step step_proxmox_ve = {
	.name = "proxmox-ve",
	.config_key = "proxmox",
	.schema = &fb_proxmox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = ve_check,
	.apply = ve_apply,
};

