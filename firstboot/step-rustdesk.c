/* rustdesk: remote desktop over the tailnet only.
 *
 *   - RustDesk's direct IP access on (its service's config, /root/.config/rustdesk/RustDesk2.toml:
 *     [options] direct-server = 'Y', direct-access-port = 'PORT'; other lines RustDesk keeps
 *     there are left as they are);
 *   - RustDesk cannot bind one interface, so the port is closed everywhere but on the
 *     tailnet (and loopback) by an nftables table of its own, /etc/pmoves/rustdesk.nft, loaded
 *     by pmoves-rustdesk-firewall.service before rustdesk.service starts;
 *   - both units enabled and, on the running machine, started (check wants them so: enabled,
 *     and active on the running machine).
 * RustDesk itself comes as an artifact (its .deb ships rustdesk.service); without it the files
 * are written and the step is pending until it is installed. */
#include "fb-config.h"
#include "fb-guard.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <json-c/json.h>

#define TOML "/root/.config/rustdesk/RustDesk2.toml"
#define NFT "/etc/pmoves/rustdesk.nft"
#define FW_UNIT "/etc/systemd/system/pmoves-rustdesk-firewall.service"
#define RUSTDESK "/usr/bin/rustdesk"
#define SERVICE "rustdesk.service"
#define FW_SERVICE "pmoves-rustdesk-firewall.service"
#define DEFAULT_PORT 21118
#define DEFAULT_IFACE "tailscale0"
#define TOML_MAX (256u * 1024u)

static const struct fb_format fmt_port = {
	.name = "rustdesk_port",
	.message = "the port is a whole number from 1024 to 65535",
	.integer = true,
	.lo = 1024,
	.hi = 65535,
};

static const struct fb_field rustdesk_fields[] = {
	{ "port", FB_T_SCALAR, NULL, NULL, &fmt_port, 0, 0 },
	{ "interface", FB_T_STRING, NULL, NULL, &fb_fmt_ifname, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field rustdesk_schema = { NULL, FB_T_OBJECT, rustdesk_fields, NULL, NULL, 0, 0 };

static int64_t port_of(json_object *section)
{
	json_object *v;
	return json_object_object_get_ex(section, "port", &v) ? json_object_get_int64(v) : DEFAULT_PORT;
}

static const char *iface_of(json_object *section)
{
	json_object *v;
	return json_object_object_get_ex(section, "interface", &v) ? json_object_get_string(v) : DEFAULT_IFACE;
}

static const struct fb_guard guard = {
	.step = "rustdesk",
	.table = "pmoves_rustdesk",
	.nft = NFT,
	.unit = FW_UNIT,
	.service = SERVICE,
	.what = "RustDesk's port",
	.where = "the tailnet",
	.udp = true,
};

static int guard_files(json_object *section, struct fb_guard_files *f)
{
	const char *const iface[] = { iface_of(section), NULL };
	return fb_guard_files_make(&guard, NULL, iface, port_of(section), f);
}

/* OLD (RustDesk's own file, or "") with our two options in its [options] table. */
static char *toml_text(const char *old, json_object *section)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	bool in_options = false, done = false;
	const char *ours = NULL;
	_cleanup_free_ char *opts = fb_strdupf("direct-server = 'Y'\ndirect-access-port = '%lld'\n", (long long)port_of(section));
	if (!opts) {
		fclose(f);
		free(buf);
		return NULL;
	}
	ours = opts;
	for (const char *p = old; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *s = p + strspn(p, " \t");
		bool header = *s == '[';
		if (header)
			in_options = !strncmp(s, "[options]", 9);
		bool drop = in_options && !header &&
			    (!strncmp(s, "direct-server", 13) || !strncmp(s, "direct-access-port", 18));
		if (!drop)
			fprintf(f, "%.*s\n", (int)n, p);
		if (header && in_options && !done) {
			fputs(ours, f);
			done = true;
		}
		p += n + (nl ? 1 : 0);
	}
	if (!done)
		fprintf(f, "%s[options]\n%s", len && buf[len - 1] != '\n' ? "\n" : "", ours);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int wanted(json_object *section, char **ret_toml, struct fb_guard_files *f)
{
	_cleanup_free_ char *old = NULL;
	size_t len = 0;
	int r = fb_read(TOML, TOML_MAX, &old, &len);
	if (r == -ENOENT)
		old = strdup(""), r = old ? 0 : -ENOMEM;
	if (r < 0)
		return r;
	if (memchr(old, '\0', len))
		return -EINVAL;
	*ret_toml = toml_text(old, section);
	return *ret_toml ? guard_files(section, f) : -ENOMEM;
}

static int rustdesk_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	_cleanup_free_ char *toml = NULL;
	_cleanup_(fb_guard_files_done) struct fb_guard_files f = { 0 };
	int r = wanted(section, &toml, &f);
	if (r < 0)
		return r;
	if ((r = fb_file_is(TOML, toml, strlen(toml))) <= 0 || (r = fb_guard_files_in_place(&guard, &f)) <= 0 ||
	    (r = fb_exists(RUSTDESK)) <= 0)
		return r;
	/* RustDesk installed after the run that wrote the files has not been enabled or started. */
	if ((r = fb_unit_running(FW_SERVICE)) <= 0)
		return r;
	return fb_unit_running(SERVICE);
}

static enum fb_result rustdesk_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_free_ char *toml = NULL;
	_cleanup_(fb_guard_files_done) struct fb_guard_files f = { 0 };
	int r = wanted(section, &toml, &f);
	if (r < 0) {
		*ret_msg = fb_strdupf("cannot read '%s': %s", TOML, strerror(-r));
		return FB_FAILED;
	}
	if (fb_guard_files_write(&guard, &f, ret_msg) < 0)
		return FB_FAILED;
	if ((r = fb_write(TOML, toml, strlen(toml), 0600, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write RustDesk's files: %s", strerror(-r));
		return FB_FAILED;
	}
	if (fb_unit_enable(FW_SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	if (fb_exists(RUSTDESK) != 1) {
		*ret_msg = strdup("port closed but on the tailnet; RustDesk is not installed yet (an artifact of kind deb): "
				  "enabled once it is");
		return FB_PENDING;
	}
	if (fb_unit_enable(SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	*ret_msg = fb_strdupf("direct IP access on port %lld, reachable on '%s' only", (long long)port_of(section), iface_of(section));
	return FB_OK;
}

const struct fb_step step_rustdesk = {
	.name = "rustdesk",
	.config_key = "rustdesk",
	.schema = &rustdesk_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = rustdesk_check,
	.apply = rustdesk_apply,
};
