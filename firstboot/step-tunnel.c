/* tunnel: a Cloudflare tunnel for the few public demos, behind Cloudflare Access.
 *
 *   - the tunnel's credentials (a secret: the JSON `cloudflared tunnel create` made) in
 *     /etc/cloudflared/TUNNEL.json, 0600 root;
 *   - /etc/cloudflared/config.yml: the tunnel, its credentials file, and the ingress rules of
 *     the config in order, ending in the catch-all `http_status:404` cloudflared requires;
 *   - cloudflared.service (the unit `cloudflared service install` would write), enabled and
 *     started; check wants it enabled and, on the running system, active;
 *   - `cloudflared tunnel --config /etc/cloudflared/config.yml ingress validate` when
 *     cloudflared is there. Without it the files are written and the step is pending: it
 *     finishes once cloudflared is installed (an artifact, or Cloudflare's apt repository).
 * Access policies (who may reach each hostname) are set on Cloudflare's dashboard:
 * docs/firstboot.md says how. */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <json-c/json.h>

#define CF_DIR "/etc/cloudflared"
#define CONFIG CF_DIR "/config.yml"
#define UNIT "/etc/systemd/system/cloudflared.service"
#define CLOUDFLARED "/usr/bin/cloudflared"
#define SERVICE "cloudflared.service"
#define HEADER "# Written by pmoves-firstboot (tunnel step): change its config, not this file.\n"

/* ---- schema ---- */

static const struct fb_format fmt_uuid = {
	.name = "tunnel_id",
	.message = "'%s' is not a tunnel ID (a lower-case UUID)",
	.pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
};

static int valid_credentials(struct fb_check *c, json_object *v)
{
	const char *s = json_object_get_string(v);
	_cleanup_(fb_json_putp) json_object *o = json_tokener_parse(s);
	json_object *x;
	if (!o || !json_object_object_get_ex(o, "TunnelSecret", &x) || !json_object_object_get_ex(o, "AccountTag", &x))
		return fb_bad(c, "not a tunnel credentials file (JSON with AccountTag and TunnelSecret)");
	return 0;
}

/* What goes into YAML: printable ASCII but space, quotes, '\' and '#' (written without '\' and
 * ']' in a bracket: see fb-valid.h). */
#define YAML_SAFE "([!$-&(-[^-~]|\\])"

static const struct fb_format fmt_host = {
	.name = "tunnel_hostname",
	.message = "'%s' is not a host name",
	.pattern = "^[a-z0-9*][a-z0-9.*-]*$",
	.max = 253,
};

static const struct fb_format fmt_service = {
	.name = "tunnel_service",
	.message = "'%s' is not a service cloudflared knows (http://, https://, tcp://, ssh://, rdp://, unix:, http_status:)",
	.pattern = "^(http://|https://|tcp://|ssh://|rdp://|unix:|http_status:)" YAML_SAFE "+$",
	.max = 512,
};

static const struct fb_format fmt_path = {
	.name = "tunnel_path",
	.message = "'%s' is not a path regex without spaces or quotes",
	.pattern = "^" YAML_SAFE "+$",
	.max = 256,
};

static const struct fb_field rule_fields[] = {
	{ "hostname", FB_T_STRING, NULL, NULL, &fmt_host, FB_REQUIRED, 0 },
	{ "service", FB_T_STRING, NULL, NULL, &fmt_service, FB_REQUIRED, 0 },
	{ "path", FB_T_STRING, NULL, NULL, &fmt_path, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field rule_elem = { NULL, FB_T_OBJECT, rule_fields, NULL, NULL, 0, 0 };
static const struct fb_field tunnel_fields[] = {
	{ "tunnel_id", FB_T_STRING, NULL, NULL, &fmt_uuid, FB_REQUIRED, 0 },
	/* Not FB_REQUIRED: scrubbed from device.json after a successful run. */
	{ "credentials", FB_T_STRING, NULL, valid_credentials, NULL, FB_SECRET, 4096 },
	{ "ingress", FB_T_ARRAY, &rule_elem, NULL, NULL, FB_REQUIRED, 64 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field tunnel_schema = { NULL, FB_T_OBJECT, tunnel_fields, NULL, NULL, 0, 0 };

/* ---- what to write ---- */

static char *config_text(json_object *section)
{
	const char *id = fb_json_str(section, "tunnel_id", "");
	json_object *rules;
	json_object_object_get_ex(section, "ingress", &rules);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, HEADER "tunnel: %s\ncredentials-file: " CF_DIR "/%s.json\ningress:\n", id, id);
	for (size_t i = 0; i < json_object_array_length(rules); i++) {
		json_object *r = json_object_array_get_idx(rules, i);
		const char *path = fb_json_str(r, "path", NULL);
		fprintf(f, "  - hostname: %s\n", fb_json_str(r, "hostname", ""));
		if (path)
			fprintf(f, "    path: %s\n", path);
		fprintf(f, "    service: %s\n", fb_json_str(r, "service", ""));
	}
	fputs("  - service: http_status:404\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static const char unit_text[] = HEADER "[Unit]\n"
				"Description=Cloudflare Tunnel\n"
				"After=network-online.target\n"
				"Wants=network-online.target\n\n"
				"[Service]\n"
				"Type=notify\n"
				"ExecStart=" CLOUDFLARED " --no-autoupdate --config " CONFIG " tunnel run\n"
				"Restart=on-failure\n"
				"RestartSec=5s\n\n"
				"[Install]\n"
				"WantedBy=multi-user.target\n";

static char *cred_path(json_object *section)
{
	return fb_strdupf(CF_DIR "/%s.json", fb_json_str(section, "tunnel_id", ""));
}

/* ---- the step ---- */

static int tunnel_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c, (void)ret_msg;
	_cleanup_free_ char *cfg = config_text(section), *cred = cred_path(section);
	if (!cfg || !cred)
		return -ENOMEM;
	int r = fb_file_is(CONFIG, cfg, strlen(cfg));
	if (r > 0)
		r = fb_file_is(UNIT, unit_text, strlen(unit_text));
	if (r > 0)
		r = fb_exists(cred);
	if (r > 0)
		r = fb_exists(CLOUDFLARED); /* pending until it is installed */
	/* Files and program are not enough: a cloudflared installed after the run that wrote the
	 * files (a later artifact or package) has not been validated, enabled or started yet. */
	if (r > 0)
		r = fb_unit_running(SERVICE);
	return r;
}

static enum fb_result tunnel_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	_cleanup_free_ char *cfg = config_text(section), *cred = cred_path(section);
	const char *secret = fb_json_str(section, "credentials", NULL);
	int r;
	if (!cfg || !cred)
		return FB_FAILED;
	if (!secret && fb_exists(cred) != 1) {
		*ret_msg = fb_strdupf("no 'credentials' in the config and no '%s' (the credentials are removed from "
				      "device.json after a successful run: give them again)",
				      cred);
		return FB_FAILED;
	}
	if ((secret && (r = fb_write(cred, secret, strlen(secret), 0600, 0, 0)) < 0) ||
	    (r = fb_write(CONFIG, cfg, strlen(cfg), 0644, 0, 0)) < 0 ||
	    (r = fb_write(UNIT, unit_text, strlen(unit_text), 0644, 0, 0)) < 0) {
		*ret_msg = fb_strdupf("cannot write the tunnel's files in '" CF_DIR "': %s", strerror(-r));
		return FB_FAILED;
	}
	json_object *rules;
	json_object_object_get_ex(section, "ingress", &rules);
	size_t n = json_object_array_length(rules);
	if (fb_exists(CLOUDFLARED) != 1) {
		*ret_msg = fb_strdupf("%zu ingress rules in '" CONFIG "'; cloudflared is not installed yet (an artifact or "
				      "Cloudflare's apt repository): validated and started once it is",
				      n);
		return FB_PENDING;
	}
	char *argv[] = { CLOUDFLARED, "tunnel", "--config", CONFIG, "ingress", "validate", NULL };
	if ((r = fb_run_target(argv)) != 0) {
		*ret_msg = fb_strdupf("'cloudflared tunnel ingress validate' refused '" CONFIG "' (exit %d)", r);
		return FB_FAILED;
	}
	if (fb_unit_enable(SERVICE, true, ret_msg) < 0)
		return FB_FAILED;
	*ret_msg = fb_strdupf("tunnel %s with %zu ingress rules and the 404 catch-all, validated%s", fb_json_str(section, "tunnel_id", ""), n,
			      fb_live() ? ", cloudflared started" : "");
	return FB_OK;
}

const struct fb_step step_tunnel = {
	.name = "tunnel",
	.config_key = "tunnel",
	.schema = &tunnel_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = tunnel_check,
	.apply = tunnel_apply,
};
