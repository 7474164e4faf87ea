/* sandbox: throw-away microVMs for untrusted tasks (pmoves-sandbox, docs/sandbox.md).
 *
 * The image brings the launcher, /usr/bin/pmoves-sandbox, and the guest, /usr/lib/pmoves/
 * sandbox (kernel, vmlinux, initramfs, root filesystem): `pmoves-image build` bakes both from
 * the profile's "sandbox_guest" (builder/sandbox-bake.c). Firecracker and its jailer are
 * artifacts (kind tar) where the profile pins them. The step:
 *   - a system user "pmoves-sandbox", in group kvm (systemd-sysusers): the VMMs run as it;
 *   - /etc/pmoves/sandbox.json, the launcher's config, from the section;
 *   - a tmpfs of its own for the sandboxes' state, mounted by run-pmoves\x2dsandbox.mount: what
 *     a task writes never reaches a disk. It has no nodev or noexec: the jailer makes device
 *     nodes in its chroot and runs Firecracker from there;
 *   - pmoves-sandbox-net.service (the bridge and the nftables table: `pmoves-sandbox net-up`),
 *     enabled and started; pmoves-sandbox@.service, a template: `systemctl start
 *     pmoves-sandbox@NAME` runs the task /etc/pmoves/sandbox/tasks/NAME.json, its output in the
 *     journal;
 *   - on the running system, once booted: the network up, and `pmoves-sandbox backends`: at
 *     least one backend can run here (the backend the section names, when it names one).
 * "backend": "auto" (the default) runs on QEMU until Firecracker is installed (its artifact may
 * come on a later run) and on Firecracker from then on: the launcher picks at each run.
 * "backend": "firecracker" waits for it (pending). */
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <arpa/inet.h>
#include <unistd.h>

#define USER "pmoves-sandbox"
#define CONFIG "/etc/pmoves/sandbox.json"
#define TASKS_DIR "/etc/pmoves/sandbox/tasks"
#define GUEST_DIR "/usr/lib/pmoves/sandbox"
#define LAUNCHER "/usr/bin/pmoves-sandbox"
#define STATE_DIR "/run/pmoves-sandbox"
#define SYSUSERS "/etc/sysusers.d/pmoves-sandbox.conf"
#define UNIT_DIR "/etc/systemd/system/"
#define MOUNT "run-pmoves\\x2dsandbox.mount" /* systemd-escape --path STATE_DIR */
#define NET_SERVICE "pmoves-sandbox-net.service"
#define TEMPLATE "pmoves-sandbox@.service"
#define START_WAIT 60
#define BACKENDS_MAX (16u << 10)

/* ---- config ---- */

static const struct fb_format fmt_backend = {
	.name = "sandbox_backend",
	.message = "'%s' is not a sandbox backend (auto, firecracker, qemu)",
	.values = (const char *const[]){ "auto", "firecracker", "qemu", NULL },
};

static const struct fb_format fmt_accel = {
	.name = "sandbox_accel",
	.message = "'%s' is not an accelerator (auto, kvm, tcg)",
	.values = (const char *const[]){ "auto", "kvm", "tcg", NULL },
};

/* As pmoves-sandbox takes interface names: its bridge's taps are named after it. */
static const struct fb_format fmt_sbx_ifname = {
	.name = "sandbox_ifname",
	.message = "'%s' is not an interface name (1 to 15 of a-z, 0-9, '.', '_', '-', a letter or digit first)",
	.pattern = "^[a-z0-9][a-z0-9._-]*$",
	.max = 15,
};

static const struct fb_format fmt_subnet = {
	.name = "sandbox_subnet",
	.message = "'%s' is not an IPv4 network A.B.C.D/N, N from 16 to 29",
	.pattern = "^([0-9]{1,3}\\.){3}[0-9]{1,3}/(1[6-9]|2[0-9])$",
};

static const struct fb_format fmt_output_max = {
	.name = "sandbox_output_max",
	.message = "must be a whole number of bytes from 4096 to 1073741824",
	.integer = true,
	.lo = 4096,
	.hi = 1 << 30,
};

/* tmpfs's size=: bytes with k, m or g, or a percentage of the memory. */
static const struct fb_format fmt_console_max = {
	.name = "sandbox_console_max",
	.message = "must be a whole number of bytes from 65536 to 1073741824",
	.integer = true,
	.lo = 65536,
	.hi = 1 << 30,
};

static const struct fb_format fmt_state_size = {
	.name = "sandbox_state_size",
	.message = "'%s' is not a tmpfs size: bytes with k, m or g (\"8g\"), or a share of the memory (N followed by a percent sign)",
	.pattern = "^([1-9][0-9]{0,11}[kmg]?|[1-9][0-9]?%|100%)$",
};

/* The VMMs' ids, one per running sandbox; "" for none (all as the sandbox user). */
static const struct fb_format fmt_uids = {
	.name = "sandbox_uids",
	.message = "'%s' is not a range of ids FIRST-LAST (or \"\")",
	.pattern = "^([1-9][0-9]{4,9}-[1-9][0-9]{4,9})?$",
};

/* As the launcher takes them: at most 65536, from 65536 to 2^31 - 1. */
static int valid_uids(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	uint64_t a, b;
	char first[16];
	if (!s[0])
		return 0;
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(s, "-"), s);
	if (parse_u64(first, &a) < 0 || parse_u64(strchr(s, '-') + 1, &b) < 0 || a < 65536 || b < a || b > 2147483647 ||
	    b - a >= 65536)
		return fb_bad(c, "'%s' must be at most 65536 ids from 65536 to 2147483647, FIRST-LAST", FB_SHOW(s));
	return 0;
}

/* The host part of the network is zero, as the launcher wants it. */
static int valid_subnet(struct fb_check *c, json_object *v)
{
	char addr[INET_ADDRSTRLEN];
	const char *s = json_object_get_string(v), *slash = strchr(s, '/');
	struct in_addr a;
	uint64_t prefix;
	if (parse_u64(slash + 1, &prefix) < 0 || prefix < 16 || prefix > 29) /* fmt_subnet said so */
		return fb_bad(c, "'%s' is not an IPv4 network A.B.C.D/N, N from 16 to 29", FB_SHOW(s));
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - s), s);
	if (inet_pton(AF_INET, addr, &a) != 1)
		return fb_bad(c, "'%s' is not an IPv4 network: '%s' is not an address", FB_SHOW(s), FB_SHOW(addr));
	if (ntohl(a.s_addr) & ~(~0u << (32 - prefix)))
		return fb_bad(c, "'%s' has host bits set: the network of a /%u ends in zeros", FB_SHOW(s), (unsigned)prefix);
	return 0;
}

static const struct fb_field sandbox_fields[] = {
	{ "backend", FB_T_STRING, NULL, NULL, &fmt_backend, 0, 0 },
	{ "accel", FB_T_STRING, NULL, NULL, &fmt_accel, 0, 0 },
	{ "firecracker", FB_T_STRING, NULL, fb_valid_path_limits, &fb_fmt_unit_path, 0, FB_PATH_MAX },
	{ "jailer", FB_T_STRING, NULL, fb_valid_path_limits, &fb_fmt_unit_path, 0, FB_PATH_MAX },
	{ "uids", FB_T_STRING, NULL, valid_uids, &fmt_uids, 0, 0 },
	{ "bridge", FB_T_STRING, NULL, NULL, &fmt_sbx_ifname, 0, 0 },
	{ "subnet", FB_T_STRING, NULL, valid_subnet, &fmt_subnet, 0, 0 },
	{ "uplink", FB_T_STRING, NULL, NULL, &fmt_sbx_ifname, 0, 0 },
	{ "dns", FB_T_STRING, NULL, NULL, &fb_fmt_ipv4, 0, 0 },
	{ "output_max", FB_T_SCALAR, NULL, NULL, &fmt_output_max, 0, 0 },
	{ "console_max", FB_T_SCALAR, NULL, NULL, &fmt_console_max, 0, 0 },
	{ "state_size", FB_T_STRING, NULL, NULL, &fmt_state_size, 0, 0 },
	FB_FIELDS_END,
};
static const struct fb_field sandbox_schema = { NULL, FB_T_OBJECT, sandbox_fields, NULL, NULL, 0, 0 };

/* ---- the files ---- */

static const char sysusers[] = "# Written by pmoves-firstboot (sandbox step).\n"
			       "u " USER " - \"pmoves-sandbox microVMs\" - -\n"
			       "m " USER " kvm\n";

static const char net_unit[] = "# Written by pmoves-firstboot (sandbox step).\n"
			       "[Unit]\n"
			       "Description=pmoves-sandbox: the sandboxes' bridge and firewall\n"
			       "After=network-online.target\n"
			       "Wants=network-online.target\n"
			       "RequiresMountsFor=" STATE_DIR "\n\n"
			       "[Service]\n"
			       "Type=oneshot\n"
			       "RemainAfterExit=yes\n"
			       "ExecStart=" LAUNCHER " net-up\n"
			       "ExecStop=" LAUNCHER " net-down\n\n"
			       "[Install]\n"
			       "WantedBy=multi-user.target\n";

/* The launcher stays root (it makes the tap, the jail and the audit line); the VMM it starts
 * runs as an id of the sandboxes' pool. Its exit status is the task's (docs/sandbox.md): a
 * failed unit is a failed task. Delegate: Firecracker's jailer puts the VMM in a cgroup of its
 * own under the launcher's, which the unit's stop kills with the rest. */
static const char template_unit[] = "# Written by pmoves-firstboot (sandbox step).\n"
				    "[Unit]\n"
				    "Description=pmoves-sandbox: task %i in a throw-away microVM\n"
				    "Wants=" NET_SERVICE "\n"
				    "After=" NET_SERVICE "\n"
				    "RequiresMountsFor=" STATE_DIR "\n\n"
				    "[Service]\n"
				    "Type=exec\n"
				    "ExecStart=" LAUNCHER " run " TASKS_DIR "/%i.json\n"
				    "KillMode=mixed\n"
				    "Delegate=yes\n";

struct conf {
	const char *backend, *firecracker, *jailer;
	char *config; /* CONFIG's text */
	char *mount;  /* the mount unit's */
};

static void conf_done(struct conf *c)
{
	free(c->config);
	free(c->mount);
}

static int conf_load(json_object *section, struct conf *c)
{
	*c = (struct conf){
		.backend = fb_json_str(section, "backend", "auto"),
		.firecracker = fb_json_str(section, "firecracker", "/usr/bin/firecracker"),
		.jailer = fb_json_str(section, "jailer", "/usr/bin/jailer"),
	};
	/* The section's keys in its order, but the tmpfs's size, which is the mount's. */
	_cleanup_(fb_json_putp) json_object *o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_foreach(section, k, v)
		if (!STREQ(k, "state_size") && json_object_object_add(o, k, json_object_get(v)) < 0)
			return -ENOMEM;
	if (json_object_object_add(o, "state_dir", json_object_new_string(STATE_DIR)) < 0)
		return -ENOMEM;
	c->config = fb_strdupf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
	/* mode 0711: the VMM, as USER, reaches its own sandbox's files by name, and lists none. */
	c->mount = fb_strdupf("# Written by pmoves-firstboot (sandbox step).\n"
			      "[Unit]\n"
			      "Description=pmoves-sandbox: the sandboxes' state (memory only)\n\n"
			      "[Mount]\n"
			      "What=tmpfs\n"
			      "Where=" STATE_DIR "\n"
			      "Type=tmpfs\n"
			      "Options=mode=0711,nosuid,size=%s\n",
			      fb_json_str(section, "state_size", "50%"));
	return c->config && c->mount ? 0 : -ENOMEM;
}

/* The files but the users' (fb_sysusers() writes that one), as the step writes them. */
struct file {
	const char *path, *text;
};

static void conf_files(const struct conf *c, struct file ret[4])
{
	ret[0] = (struct file){ UNIT_DIR NET_SERVICE, net_unit };
	ret[1] = (struct file){ UNIT_DIR TEMPLATE, template_unit };
	ret[2] = (struct file){ UNIT_DIR MOUNT, c->mount };
	ret[3] = (struct file){ CONFIG, c->config };
}

/* 1: every file as the step writes it, 0: not, -errno. */
static int files_in_place(const struct conf *c)
{
	struct file f[4];
	conf_files(c, f);
	int r = fb_file_is(SYSUSERS, sysusers, strlen(sysusers));
	for (size_t i = 0; r > 0 && i < ARRAY_SIZE(f); i++)
		r = fb_file_is(f[i].path, f[i].text, strlen(f[i].text));
	return r > 0 ? fb_exists(TASKS_DIR) : r;
}

/* What the image must bring: the launcher and the guest. NULL, or the first one missing. */
static const char *image_missing(void)
{
	static const char *const needed[] = { LAUNCHER, GUEST_DIR "/vmlinuz", GUEST_DIR "/initrd.img", GUEST_DIR "/rootfs.ext4",
					      NULL };
	for (size_t i = 0; needed[i]; i++)
		if (fb_exists(needed[i]) != 1)
			return needed[i];
	return NULL;
}

static bool firecracker_installed(const struct conf *c)
{
	return fb_exists(c->firecracker) == 1 && fb_exists(c->jailer) == 1;
}

/* `pmoves-sandbox backends` on the running system: 0 when the one wanted can run (any, for
 * "auto"), with what it printed in *ret_msg; -EIO with why not. */
static int backends_usable(const struct conf *c, char **ret_msg)
{
	_cleanup_free_ char *out = NULL;
	char *argv[] = { LAUNCHER, "backends", NULL };
	int r = fb_run_capture(argv, &out);
	if (r < 0 || r > 1 || !out) {
		*ret_msg = fb_run_error(argv, r < 0 || r > 1 ? r : -EIO);
		return -EIO;
	}
	if (strlen(out) > BACKENDS_MAX)
		out[BACKENDS_MAX] = '\0';
	/* Lines "NAME  usable" or "NAME  why not". */
	_cleanup_free_ char *summary = NULL;
	bool wanted = false;
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *why = line + strcspn(line, " ");
		if (*why)
			*why++ = '\0';
		why += strspn(why, " ");
		bool usable = STREQ(why, "usable");
		wanted |= usable && (STREQ(c->backend, "auto") || STREQ(c->backend, line));
		_cleanup_free_ char *was = TAKE_PTR(summary);
		_cleanup_free_ char *shown = str_printable(why, strlen(why) > 120 ? 120 : strlen(why), NULL);
		summary = fb_strdupf("%s%s%s: %s", was ? was : "", was ? "; " : "", line, shown ? shown : "?");
		if (!summary)
			return -ENOMEM;
	}
	*ret_msg = fb_strdupf("%s%s", wanted ? "" : "no backend that can run here: ", summary ? summary : "none listed");
	return wanted ? 0 : -EIO;
}

static int sandbox_check(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx, (void)ret_msg;
	_cleanup_(conf_done) struct conf c = { 0 };
	int r = conf_load(section, &c);
	if (r < 0 || (r = files_in_place(&c)) <= 0 || image_missing())
		return r < 0 ? r : 0;
	if (STREQ(c.backend, "firecracker") && !firecracker_installed(&c))
		return 0;
	return fb_unit_running(NET_SERVICE);
}

static enum fb_result sandbox_apply(const struct fb_ctx *ctx, json_object *section, char **ret_msg)
{
	(void)ctx;
	_cleanup_(conf_done) struct conf c = { 0 };
	int r = conf_load(section, &c);
	if (r < 0)
		return FB_FAILED;
	const char *missing = image_missing();
	if (missing) {
		*ret_msg = fb_strdupf("the image has no '%s': build it from a profile with \"sandbox_guest\" (docs/sandbox.md)",
				      missing);
		return FB_FAILED;
	}
	struct file f[4];
	conf_files(&c, f);
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(f); i++)
		r = fb_write(f[i].path, f[i].text, strlen(f[i].text), 0644, 0, 0);
	_cleanup_close_ int tasks = r < 0 || fb_dry_run() ? -1 : fb_open_dir(TASKS_DIR, true);
	if (r < 0 || (!fb_dry_run() && (r = tasks) < 0)) {
		*ret_msg = fb_strdupf("cannot write the sandboxes' files: %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_sysusers(SYSUSERS, sysusers, ret_msg) < 0 || fb_unit_enable(NET_SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	bool fc = firecracker_installed(&c);
	if (STREQ(c.backend, "firecracker") && !fc) {
		*ret_msg = fb_strdupf("Firecracker is not installed yet (%s, %s: an artifact of kind tar)", c.firecracker, c.jailer);
		return FB_PENDING;
	}
	if (!fb_live() || fb_dry_run()) {
		*ret_msg = strdup("the sandboxes are set up; their network starts with the system");
		return fb_live() ? FB_OK : FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("the sandboxes' network starts once the boot is done: the next run checks it");
		return FB_PENDING;
	}
	for (unsigned t = 0; t < START_WAIT; t++) {
		if ((r = fb_unit_active(NET_SERVICE)) != 0)
			break;
		sleep(1);
	}
	if (r <= 0) {
		*ret_msg = strdup(NET_SERVICE " is not active: the sandboxes' bridge or firewall failed (journalctl -u " NET_SERVICE ")");
		return FB_FAILED;
	}
	_cleanup_free_ char *backends = NULL;
	r = backends_usable(&c, &backends);
	*ret_msg = fb_strdupf("%s%s%s", r < 0 ? "" : "sandboxes ready: ", backends ? backends : "?",
			      STREQ(c.backend, "auto") && !fc ? " (Firecracker when it is installed)" : "");
	return r < 0 ? FB_FAILED : FB_OK;
}

const struct fb_step step_sandbox = {
	.name = "sandbox",
	.config_key = "sandbox",
	.schema = &sandbox_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = sandbox_check,
	.apply = sandbox_apply,
};
