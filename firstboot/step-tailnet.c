/* tailnet: join the fleet's Headscale tailnet with Tailscale's client.
 *
 *   - subnet routers and exit nodes get IPv4 and IPv6 forwarding (/etc/sysctl.d);
 *   - tailscaled.service enabled and started;
 *   - the auth key (a secret, from the config) written 0600 to KEY_FILE only for the call,
 *     `tailscale up --reset --login-server=URL --auth-key=file:KEY_FILE --hostname=H
 *      --advertise-tags=... [--advertise-routes=...] [--advertise-exit-node] [--accept-routes]
 *      [--ssh] --timeout=Ns`, and removed again whatever the outcome: the key is never in an
 *     argv, a message or a file others can read, and the engine scrubs it from device.json
 *     once the run is ok;
 *     Or "key_file": an auth key file already on the machine (the hub joins its own tailnet
 *     with a key its headscale step made), used in place and kept;
 *   - verified with `tailscale status --json`: BackendState "Running", Self.Tags holding
 *     every tag asked for and Self.PrimaryRoutes every route advertised (the control server
 *     approved it: a route it has not approved is not served; pending until it does).
 * The control server unreachable (up fails or times out): tried ATTEMPTS times with a pause
 * that doubles, then pending: the rest of the boot goes on and a later run joins.
 * On a tree (--root) the files and the unit are set up and the join is left to the machine
 * (pending). The client itself comes from the image's packages, an artifact, or Tailscale's
 * apt repository (docs/firstboot.md); without it the step is pending and says so. */
#include "fb-config.h"
#include "fb-step.h"
#include "firstboot.h"
#include "util.h"

#include <json-c/json.h>
#include <time.h>
#include <unistd.h>

#define KEY_FILE "/var/lib/pmoves/tailnet/auth.key"
#define FORWARD_FILE "/etc/sysctl.d/90-pmoves-tailnet.conf"
#define FORWARD_TEXT                                                                       \
	"# Written by pmoves-firstboot (tailnet step): this machine routes for the tailnet.\n" \
	"net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
#define TAILSCALE "/usr/bin/tailscale"
#define TAILSCALED "tailscaled.service"
#define ATTEMPTS 3
#define DEFAULT_TIMEOUT 60
#define ROUTE_WAIT 5 /* seconds for the control server to approve the advertised routes */

/* ---- schema ---- */

static const struct fb_format fmt_login_server = {
	.name = "tailnet_login_server",
	.message = "'%s' is not an https:// URL",
	.pattern = "^https://[^/ \t\r\n][^ \t\r\n]*$",
};

/* "10.42.0.0/24", "fd00::/64": an address with a prefix length, no spaces or commas. */
static const struct fb_format fmt_route = {
	.name = "route",
	.message = "'%s' is not a route (an address and a prefix length, such as '10.42.0.0/24')",
	.pattern = "^([0-9.]+/0*(3[0-2]|[12]?[0-9])|[0-9A-Fa-f.:]*:[0-9A-Fa-f.:]*/0*(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
	.max = 64,
};

/* Headscale's keys are hex, Tailscale's tskey-...: printable, no spaces. Secret: the messages
 * never show it. */
static const struct fb_format fmt_auth_key_length = {
	.name = "auth_key_length",
	.message = "the auth key is not 16 to 256 characters: not a pre-auth key",
	.min = 16,
	.max = 256,
};

static const struct fb_format fmt_auth_key = {
	.name = "auth_key",
	.message = "the auth key has a space or a control character",
	.pattern = "^[!-~]*$",
	.also = &fmt_auth_key_length,
};

static const struct fb_format fmt_tailnet_host = {
	.name = "tailnet_hostname",
	.message = "'%s' is not a host name for the tailnet (letters, digits, '-')",
	.pattern = "^[A-Za-z0-9][A-Za-z0-9-]*$",
	.max = 63,
};

static const struct fb_format fmt_timeout = {
	.name = "tailnet_timeout",
	.message = "the timeout is whole seconds from 5 to 3600",
	.integer = true,
	.lo = 5,
	.hi = 3600,
};

static const struct fb_format fmt_key_file = {
	.name = "tailnet_key_file",
	.message = "'%s' is not an absolute path without spaces or '..'",
	.pattern = "^/[^ \t\r\n,]*$",
	.forbid = "/\\.\\./",
};

static const struct fb_field tag_elem = { NULL, FB_T_STRING, NULL, NULL, &fb_fmt_tag, 0, 0 };
static const struct fb_field route_elem = { NULL, FB_T_STRING, NULL, NULL, &fmt_route, 0, 0 };
static const struct fb_field tailnet_fields[] = {
	{ "login_server", FB_T_STRING, NULL, NULL, &fmt_login_server, FB_REQUIRED, 512 },
	/* Not FB_REQUIRED: the engine scrubs it from device.json once the run is ok, and a later
	 * run must still find the config valid. apply asks for it. */
	{ "auth_key", FB_T_STRING, NULL, NULL, &fmt_auth_key, FB_SECRET, 256 },
	{ "key_file", FB_T_STRING, NULL, NULL, &fmt_key_file, 0, 255 },
	{ "hostname", FB_T_STRING, NULL, NULL, &fmt_tailnet_host, 0, 0 },
	{ "tags", FB_T_ARRAY, &tag_elem, NULL, NULL, 0, 16 },
	{ "advertise_routes", FB_T_ARRAY, &route_elem, NULL, NULL, 0, 64 },
	{ "exit_node", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "accept_routes", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "ssh", FB_T_BOOL, NULL, NULL, NULL, 0, 0 },
	{ "timeout", FB_T_SCALAR, NULL, NULL, &fmt_timeout, 0, 0 },
	{ NULL, 0, NULL, NULL, NULL, 0, 0 },
};
static const struct fb_field tailnet_schema = { NULL, FB_T_OBJECT, tailnet_fields, NULL, NULL, 0, 0 };

/* ---- the step ---- */

static bool flag(json_object *section, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(section, key, &v) && json_object_get_boolean(v);
}

static json_object *list(json_object *section, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(section, key, &v) && json_object_array_length(v) > 0 ? v : NULL;
}

static bool routes(json_object *section)
{
	return list(section, "advertise_routes") || flag(section, "exit_node");
}

/* "a,b,c" from a JSON list of strings. */
static char *joined(json_object *l)
{
	_cleanup_strv_ char **v = NULL;
	for (size_t i = 0; l && i < json_object_array_length(l); i++)
		if (strv_push(&v, json_object_get_string(json_object_array_get_idx(l, i))) < 0)
			return NULL;
	return strv_join(v, ",");
}

/* The machine's host name: the config's, else /etc/hostname. */
static char *tailnet_hostname(const struct fb_ctx *c, json_object *section)
{
	json_object *v;
	if (json_object_object_get_ex(section, "hostname", &v) || json_object_object_get_ex(c->config, "hostname", &v)) {
		const char *s = json_object_get_string(v);
		return strndup(s, strcspn(s, "."));
	}
	_cleanup_free_ char *h = NULL;
	if (fb_read("/etc/hostname", 256, &h, NULL) < 0)
		return strdup("localhost");
	h[strcspn(h, ".\n")] = '\0';
	return strdup(h);
}

#define ROUTES_MISSING 2

/* S (an object) has the string V in its array KEY. */
static bool listed(json_object *s, const char *key, const char *v)
{
	json_object *a;
	if (!json_object_object_get_ex(s, key, &a) || !json_object_is_type(a, json_type_array))
		return false;
	for (size_t k = 0; k < json_object_array_length(a); k++)
		if (STREQ(json_object_get_string(json_object_array_get_idx(a, k)), v))
			return true;
	return false;
}

/* 1: `tailscale status --json` says Running with every tag and every advertised route;
 * ROUTES_MISSING: joined, but a route is not (yet) approved; 0: not joined (why in *ret_why);
 * -errno. *ret_desc: who we are on the tailnet (1 and ROUTES_MISSING). */
static int joined_now(json_object *section, char **ret_why, char **ret_desc)
{
	char *argv[] = { "tailscale", "status", "--json", NULL };
	_cleanup_free_ char *out = NULL;
	int r = fb_run_capture(argv, &out);
	if (r < 0)
		return r;
	_cleanup_(fb_json_putp) json_object *o = out ? json_tokener_parse(out) : NULL;
	json_object *state, *self, *tags, *ips, *dns;
	if (!o || !json_object_object_get_ex(o, "BackendState", &state)) {
		*ret_why = strdup("'tailscale status --json' gave no state");
		return 0;
	}
	if (!STREQ(json_object_get_string(state), "Running")) {
		*ret_why = fb_strdupf("tailscale is '%.32s', not 'Running'", json_object_get_string(state));
		return 0;
	}
	if (!json_object_object_get_ex(o, "Self", &self)) {
		*ret_why = strdup("'tailscale status --json' has no 'Self'");
		return 0;
	}
	json_object *want = list(section, "tags");
	for (size_t i = 0; want && i < json_object_array_length(want); i++) {
		const char *t = json_object_get_string(json_object_array_get_idx(want, i));
		bool found = false;
		for (size_t k = 0; json_object_object_get_ex(self, "Tags", &tags) && k < json_object_array_length(tags); k++)
			found |= STREQ(json_object_get_string(json_object_array_get_idx(tags, k)), t);
		if (!found) {
			*ret_why = fb_strdupf("joined, but without '%s' (the control server did not grant the tag)", t);
			return 0;
		}
	}
	const char *ip = json_object_object_get_ex(self, "TailscaleIPs", &ips) && json_object_array_length(ips) > 0
				 ? json_object_get_string(json_object_array_get_idx(ips, 0))
				 : "?";
	const char *name = json_object_object_get_ex(self, "DNSName", &dns) ? json_object_get_string(dns) : "?";
	json_object *rts = list(section, "advertise_routes");
	for (size_t i = 0; rts && i < json_object_array_length(rts); i++) {
		const char *rt = json_object_get_string(json_object_array_get_idx(rts, i));
		if (!listed(self, "PrimaryRoutes", rt)) {
			*ret_why = fb_strdupf("the control server has not approved the route '%s' (not in Self.PrimaryRoutes of "
					      "'tailscale status --json'; Headscale: autoApprovers in its policy, or 'headscale nodes "
					      "approve-routes')",
					      rt);
			*ret_desc = fb_strdupf("on the tailnet as %.128s %.64s", name, ip);
			return ROUTES_MISSING;
		}
	}
	_cleanup_free_ char *shown = rts ? joined(rts) : NULL;
	*ret_desc = fb_strdupf("on the tailnet as %.128s %.64s%s%s", name, ip, shown ? ", routing " : "", shown ? shown : "");
	return 1;
}

static int tailnet_check(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	(void)c;
	if (routes(section)) {
		int r = fb_file_is(FORWARD_FILE, FORWARD_TEXT, strlen(FORWARD_TEXT));
		if (r <= 0)
			return r;
	}
	if (!fb_live())
		return 0;
	/* Joined now is not enough: tailscaled started by hand, not enabled, is gone after a
	 * reboot. */
	int r = fb_unit_enabled(TAILSCALED);
	if (r <= 0)
		return r;
	_cleanup_free_ char *why = NULL;
	r = joined_now(section, &why, ret_msg);
	if (r == 1)
		return 1;
	free(*ret_msg);
	*ret_msg = NULL;
	return 0; /* no client yet, or a route not approved: apply says so */
}

static void key_remove(void)
{
	if (fb_dry_run())
		return;
	int r = fb_remove(KEY_FILE);
	if (r < 0)
		fb_warn("cannot remove '%s': %s", KEY_FILE, strerror(-r));
}

static int build_up(const struct fb_ctx *c, json_object *section, const char *key_file, char ***ret)
{
	json_object *v;
	_cleanup_strv_ char **argv = NULL;
	_cleanup_free_ char *host = tailnet_hostname(c, section), *tags = joined(list(section, "tags")),
			    *rts = joined(list(section, "advertise_routes"));
	int64_t timeout = json_object_object_get_ex(section, "timeout", &v) ? json_object_get_int64(v) : DEFAULT_TIMEOUT;
	json_object_object_get_ex(section, "login_server", &v);
	_cleanup_free_ char *server = fb_strdupf("--login-server=%s", json_object_get_string(v)),
			    *key = fb_strdupf("--auth-key=file:%s", key_file), *h = host ? fb_strdupf("--hostname=%s", host) : NULL,
			    *t = tags && *tags ? fb_strdupf("--advertise-tags=%s", tags) : NULL,
			    *rt = rts && *rts ? fb_strdupf("--advertise-routes=%s", rts) : NULL,
			    *to = fb_strdupf("--timeout=%llds", (long long)timeout);
	if (!server || !key || !h || !to || !tags || !rts)
		return -ENOMEM;
	const char *args[] = { "tailscale", "up", "--reset", server, key, h, t, rt,
			       flag(section, "exit_node") ? "--advertise-exit-node" : NULL,
			       flag(section, "accept_routes") ? "--accept-routes" : NULL, flag(section, "ssh") ? "--ssh" : NULL, to };
	for (size_t i = 0; i < ARRAY_SIZE(args); i++)
		if (args[i] && strv_push(&argv, args[i]) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(argv);
	return 0;
}

static enum fb_result tailnet_apply(const struct fb_ctx *c, json_object *section, char **ret_msg)
{
	int r;
	if (routes(section)) {
		if ((r = fb_write(FORWARD_FILE, FORWARD_TEXT, strlen(FORWARD_TEXT), 0644, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", FORWARD_FILE, strerror(-r));
			return FB_FAILED;
		}
		if (fb_live()) {
			char *argv[] = { "sysctl", "--quiet", "--load=" FORWARD_FILE, NULL };
			if ((r = fb_run(argv)) != 0) {
				*ret_msg = fb_strdupf("'sysctl --load=%s' exited with %d", FORWARD_FILE, r);
				return FB_FAILED;
			}
		}
	}
	if (fb_exists(TAILSCALE) != 1) {
		*ret_msg = strdup("the Tailscale client is not installed yet ('" TAILSCALE "': Tailscale's apt repository "
				  "and package, or an artifact): joins once it is");
		return FB_PENDING;
	}
	if (fb_unit_enable(TAILSCALED, true, ret_msg) < 0)
		return FB_FAILED;
	if (!fb_live()) {
		*ret_msg = strdup("tailscaled enabled; the join is left to the running machine");
		return FB_PENDING;
	}
	if (fb_system_booting()) {
		*ret_msg = strdup("tailscaled enabled; joins once the boot is done and the network is up");
		return FB_PENDING;
	}

	json_object *key = NULL, *file = NULL;
	if (!json_object_object_get_ex(section, "auth_key", &key) && !json_object_object_get_ex(section, "key_file", &file)) {
		*ret_msg = strdup("not on the tailnet and no 'auth_key' in the config (it is removed from device.json "
				  "after a successful run: give a new one)");
		return FB_FAILED;
	}
	const char *key_file = key ? KEY_FILE : json_object_get_string(file);
	if (!key && fb_exists(key_file) != 1) {
		*ret_msg = fb_strdupf("the auth key file '%s' does not exist", key_file);
		return FB_FAILED;
	}
	_cleanup_strv_ char **up = NULL;
	if (build_up(c, section, key_file, &up) < 0)
		return FB_FAILED;
	unsigned pause = 5;
	for (unsigned attempt = 1; attempt <= ATTEMPTS; attempt++) {
		const char *k = key ? json_object_get_string(key) : NULL;
		/* 0600 from creation (fb_write); gone again right after the call. */
		if (k && (r = fb_write(KEY_FILE, k, strlen(k), 0600, 0, 0)) < 0) {
			*ret_msg = fb_strdupf("cannot write '%s': %s", KEY_FILE, strerror(-r));
			return FB_FAILED;
		}
		r = fb_run(up);
		if (k)
			key_remove();
		if (r == 0)
			break;
		fb_warn("tailnet: 'tailscale up' exited with %d (attempt %u of %u)", r, attempt, ATTEMPTS);
		if (attempt < ATTEMPTS && !fb_dry_run()) {
			struct timespec ts = { .tv_sec = pause };
			nanosleep(&ts, NULL);
			pause *= 2;
		}
	}
	if (fb_dry_run())
		return FB_OK;
	_cleanup_free_ char *why = NULL, *desc = NULL;
	r = joined_now(section, &why, &desc);
	/* The control server approves a route (autoApprovers) once the node has advertised it:
	 * a moment after the join. */
	for (unsigned i = 0; r == ROUTES_MISSING && i < ROUTE_WAIT; i++) {
		free(why), free(desc);
		why = desc = NULL;
		sleep(1);
		r = joined_now(section, &why, &desc);
	}
	if (r == 1) {
		*ret_msg = TAKE_PTR(desc);
		return FB_OK;
	}
	if (r == ROUTES_MISSING) {
		*ret_msg = fb_strdupf("%s, but %s: checked again on a later run", desc ? desc : "joined", why ? why : "?");
		return FB_PENDING;
	}
	json_object *srv;
	json_object_object_get_ex(section, "login_server", &srv);
	_cleanup_free_ char *shown = fb_url_shown(json_object_get_string(srv)); /* without user:password and query */
	*ret_msg = fb_strdupf("not joined to '%s' after %d attempts (%s): tried again on a later boot",
			      shown ? shown : "?", ATTEMPTS, why ? why : r < 0 ? strerror(-r) : "?");
	return FB_PENDING;
}

const struct fb_step step_tailnet = {
	.name = "tailnet",
	.config_key = "tailnet",
	.schema = &tailnet_schema,
	.needs_config = true,
	.dry_run_apply = true,
	.check = tailnet_check,
	.apply = tailnet_apply,
};
