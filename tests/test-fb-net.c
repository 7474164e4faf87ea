/* The network steps on fixture trees. Tailscale cannot be installed here: a stand-in at the
 * process boundary answers for it (the runner below: it records every argv and plays
 * `tailscale up` / `tailscale status --json`), and PMOVES_FIRSTBOOT_LIVE=1 makes the tree
 * count as the running system so the join itself is exercised. Verified here against the
 * stand-in only, never against Tailscale. */
#include "run.h"
#include "test-fb-lib.h"

#define KEY "hskey-0123456789abcdef0123456789abcdef0123456789ab"
#define HS_KEY_PREFIX "f00dfeedcafe0123456789abcdef0123456789abcdef"
#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"

/* The stand-in runner: records argv in DIR/calls; "tailscale up" fails while DIR/fail-up
 * holds a count above 0, records the key file's mode and size (never its content), and on
 * success remembers the tags; "tailscale status --json" answers Running with them. */
static void net_stand_in(const char *root)
{
	char *dir = t_strf("%.*s", (int)(strrchr(root, '/') - root), root);
	char *script = t_strf(
		"#!/bin/sh\n"
		"# stand-in for tailscale, systemctl, sysctl (not the real programs)\n"
		"D=%s; R=%s\n"
		"echo \"$*\" >> $D/calls\n"
		"if [ \"$1 $2\" = 'systemctl is-system-running' ]; then cat $D/sysstate 2>/dev/null || echo running; exit 0; fi\n"
		"if [ \"$1\" = /usr/bin/cloudflared ]; then [ -f $D/cf-bad ] && exit 1; exit 0; fi\n"
		"if [ \"$1\" = headscale ]; then\n"
		"  case \"$2 $3\" in\n"
		"  'users list') [ -f $D/hs-down ] && exit 1\n"
		"    printf '['; sep=; for u in $(cat $D/hs-users 2>/dev/null); do printf '%%s{\"id\": \"1\", \"name\": \"%%s\"}' \"$sep\" $u; sep=', '; done; echo ']';;\n"
		"  'users create') echo $4 >> $D/hs-users;;\n"
		"  'preauthkeys create') n=$(($(cat $D/hs-n 2>/dev/null || echo 0) + 1)); echo $n > $D/hs-n\n"
		"    echo \"{\\\"id\\\": \\\"$n\\\", \\\"key\\\": \\\"" HS_KEY_PREFIX "$n\\\", \\\"reusable\\\": true}\";;\n"
		"  esac; exit 0\n"
		"fi\n"
		"[ \"$1\" = tailscale ] || exit 0\n"
		"case $2 in\n"
		"up)\n"
		"  k=$R/var/lib/pmoves/tailnet/auth.key\n"
		"  if [ -f $k ]; then echo \"key mode $(stat -c %%a $k) size $(stat -c %%s $k)\" >> $D/calls; fi\n"
		"  if [ -f $D/fail-up ] && [ \"$(cat $D/fail-up)\" -gt 0 ]; then\n"
		"    echo $(($(cat $D/fail-up) - 1)) > $D/fail-up; echo 'backend error: unreachable' >&2; exit 1; fi\n"
		"  tags=; for a; do case $a in --advertise-tags=*) tags=${a#--advertise-tags=};; esac; done\n"
		"  echo \"$tags\" > $D/joined; exit 0;;\n"
		"status)\n"
		"  if [ -f $D/joined ]; then t=$(sed 's/\\([^,]*\\)/\"\\1\"/g' $D/joined)\n"
		"    printf '{\"BackendState\": \"Running\", \"Self\": {\"DNSName\": \"node1.fleet.\", \"TailscaleIPs\": [\"100.64.0.7\"], \"Tags\": [%%s]}}\\n' \"$t\"\n"
		"  else echo '{\"BackendState\": \"NeedsLogin\"}'; fi;;\n"
		"esac\nexit 0\n",
		dir, root);
	char *sp = t_strf("%s/stand-in", dir);
	if (write_file_atomic(sp, script, strlen(script), 0755) < 0)
		abort();
	free(sp), free(script), free(dir);
}

static char *calls_of(const char *root)
{
	char *p = t_beside(root, "calls"), *text = t_read(p, NULL);
	free(p);
	return text ? text : strdup("");
}

static char *net_tree(const char *tailnet)
{
	char *root = t_tree();
	net_stand_in(root);
	char *cfg = t_strf("{\"hostname\": \"node1.example.org\", " OTHERS_OFF ", \"tailnet\": %s}", tailnet);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	t_write(root, "usr/bin/tailscale", "stand-in\n");
	free(cfg);
	return root;
}

static bool leaked(const char *root, const struct t_result *r)
{
	char *state = t_read(root, "var/lib/pmoves/firstboot/state.json"),
	     *status = t_read(root, "var/lib/pmoves/firstboot/status.json"), *c = calls_of(root);
	bool leak = strstr(r->out ? r->out : "", KEY) || strstr(r->err ? r->err : "", KEY) || strstr(state ? state : "", KEY) ||
		    strstr(status ? status : "", KEY) || strstr(c, KEY);
	free(state), free(status), free(c);
	return leak;
}

static void test_tailnet_join(void)
{
	char *root = net_tree("{\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" KEY "\","
			      " \"tags\": [\"tag:mesh\", \"tag:edge\"], \"advertise_routes\": [\"10.42.0.0/24\"],"
			      " \"accept_routes\": true, \"ssh\": true, \"timeout\": 30}");
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "tailnet: the run is ok");
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as node1.fleet. 100.64.0.7\n", "tailnet: verified by status --json");
	char *c = calls_of(root);
	char *want = t_strf("sysctl --quiet --load=/etc/sysctl.d/90-pmoves-tailnet.conf\n"
			    "systemctl --quiet enable tailscaled.service\n"
			    "systemctl --no-block restart tailscaled.service\n"
			    "systemctl is-system-running\n"
			    "tailscale up --reset --login-server=https://hs.example.org --auth-key=file:/var/lib/pmoves/tailnet/auth.key"
			    " --hostname=node1 --advertise-tags=tag:mesh,tag:edge --advertise-routes=10.42.0.0/24 --accept-routes --ssh"
			    " --timeout=30s\n"
			    "key mode 600 size %zu\n"
			    "tailscale status --json\n",
			    strlen(KEY));
	tap_ok(c && strstr(c, want), "tailnet: forwarding, tailscaled, then up with the key from a 0600 file (argv without the key)");
	if (!c || !strstr(c, want))
		tap_diag("calls:\n%s", c ? c : "");
	free(c), free(want);
	char *fwd = t_read(root, "etc/sysctl.d/90-pmoves-tailnet.conf");
	tap_contains(fwd, "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n", "tailnet: a subnet router forwards v4 and v6");
	free(fwd);
	tap_ok(!t_exists(root, "var/lib/pmoves/tailnet/auth.key"), "tailnet: the key file is gone after the join");
	tap_ok(!leaked(root, &r), "tailnet: the key is in no output, state, status or argv");
	t_result_free(&r);

	/* Already on the tailnet: the check sees it (state.json removed, so the step is checked). */
	char *calls = t_beside(root, "calls"), *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(calls);
	unlink(state);
	free(state);
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"hostname\": \"node1.example.org\", " OTHERS_OFF ", \"tailnet\": {\"login_server\": \"https://hs.example.org\","
		" \"tags\": [\"tag:mesh\", \"tag:edge\"], \"advertise_routes\": [\"10.42.0.0/24\"], \"accept_routes\": true, \"ssh\": true, \"timeout\": 30}}");
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=skipped on the tailnet as node1.fleet. 100.64.0.7", "tailnet: a joined machine is left alone, without needing the key");
	c = calls_of(root);
	tap_ok(!strstr(c, "tailscale up"), "tailnet: no second up");
	free(c), free(calls);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_tailnet_unreachable(void)
{
	char *root = net_tree("{\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" KEY "\", \"tags\": [\"tag:core\"]}");
	char *fail = t_beside(root, "fail-up");
	write_file_atomic(fail, "5\n", 2, 0644);
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 1, "unreachable: the run is not ok (pending)");
	tap_contains(r.out, "step=tailnet state=pending not joined to 'https://hs.example.org' after 3 attempts", "unreachable: pending after 3 attempts");
	tap_contains(r.out, "done status=degraded", "unreachable: the boot goes on (degraded, the unit stays for a later boot)");
	char *c = calls_of(root);
	tap_is_int(t_count(c, "tailscale up "), 3, "unreachable: three tries");
	tap_is_int(t_count(c, "key mode 600"), 3, "unreachable: the key file is there, 0600, for each try");
	tap_ok(!t_exists(root, "var/lib/pmoves/tailnet/auth.key"), "unreachable: and gone after each");
	tap_contains(r.err, "'tailscale up' exited with 1 (attempt 1 of 3)", "unreachable: each failure is logged");
	tap_ok(!leaked(root, &r), "unreachable: no key anywhere");
	free(c);
	t_result_free(&r);

	/* The server is back: the next run joins. */
	write_file_atomic(fail, "0\n", 2, 0644);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as", "unreachable: a later run joins");
	t_result_free(&r);
	free(fail);
	t_cleanup(root);
}

static void test_tailnet_booting(void)
{
	char *root = net_tree("{\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" KEY "\"}");
	char *st = t_beside(root, "sysstate");
	write_file_atomic(st, "starting\n", 9, 0644);
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=pending tailscaled enabled; joins once the boot is done and the network is up",
		     "during boot (before sysinit.target): pending, the timer's run joins");
	char *c = calls_of(root);
	tap_ok(!strstr(c, "tailscale up") && strstr(c, "systemctl --no-block restart tailscaled.service"),
	       "during boot: tailscaled queued without waiting (no deadlock), no join yet");
	free(c);
	t_result_free(&r);
	write_file_atomic(st, "running\n", 8, 0644);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as", "after the boot: joined");
	t_result_free(&r);
	free(st);
	t_cleanup(root);
}

static void test_tailnet_tree(void)
{
	char *root = net_tree("{\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" KEY "\"}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=tailnet state=pending tailscaled enabled; the join is left to the running machine",
		     "on a tree: unit enabled, join left to the machine");
	char *c = calls_of(root), *want = t_strf("systemctl --root=%s enable tailscaled.service\n", root);
	tap_contains(c, want, "on a tree: systemctl --root");
	tap_ok(!strstr(c, "tailscale up") && !t_exists(root, "etc/sysctl.d/90-pmoves-tailnet.conf"),
	       "on a tree: no join, and no forwarding for a plain node");
	free(c), free(want);
	t_result_free(&r);

	char *client = t_strf("%s/usr/bin/tailscale", root);
	unlink(client);
	free(client);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=pending the Tailscale client is not installed yet ('/usr/bin/tailscale'",
		     "no client: pending, saying how to get one");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_tailnet_schema(void)
{
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"tailnet\": {\"auth_key\": \"" KEY "\"}}", ".tailnet.login_server: is required" },
		{ "{\"tailnet\": {\"login_server\": \"http://hs\"}}", "'http://hs' is not an https:// URL" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"tags\": [\"mesh\"]}}", "'mesh' is not a tag" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"advertise_routes\": [\"10.42.0.0\"]}}", "'10.42.0.0' is not a route" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"advertise_routes\": [\"10.42.0.0/33\"]}}", "'10.42.0.0/33' is not a route" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"auth_key\": \"short\"}}", "not a pre-auth key" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"timeout\": 1}}", "whole seconds from 5 to 3600" },
		{ "{\"tailnet\": {\"login_server\": \"https://hs\", \"exitnode\": true}}", "exitnode" },
	};
	char *root = t_tree();
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		t_write(root, "etc/pmoves/x.json", bad[i].cfg);
		char *p = t_strf("%s/etc/pmoves/x.json", root);
		char *argv[] = { "pmoves-firstboot", "validate", p, NULL };
		struct t_result r = t_fb(root, NULL, argv);
		tap_ok(r.status == 2 && r.err && strstr(r.err, bad[i].msg), "tailnet schema: %s", bad[i].msg);
		if (r.status != 2 || !r.err || !strstr(r.err, bad[i].msg))
			tap_diag("status %d: %s", r.status, r.err ? r.err : "");
		t_result_free(&r);
		free(p);
	}
	t_cleanup(root);
}

static char *hs_tree(void)
{
	char *root = t_tree();
	net_stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"hostname\": \"hub\", " OTHERS_OFF ", \"headscale\": {\"server_url\": \"https://hs.example.org\","
		" \"users\": [\"fleet\", \"ci\"], \"keys\": ["
		" {\"name\": \"fleet\", \"user\": \"fleet\", \"reusable\": true, \"tags\": [\"tag:core\"]},"
		" {\"name\": \"ci\", \"user\": \"ci\", \"ephemeral\": true, \"expiration\": \"24h\", \"tags\": [\"tag:ci\"]}]},"
		" \"tailnet\": {\"login_server\": \"https://hs.example.org\", \"key_file\": \"/var/lib/pmoves/headscale/fleet.key\","
		" \"tags\": [\"tag:core\"]}}");
	t_write(root, "usr/bin/headscale", "stand-in\n");
	t_write(root, "usr/bin/tailscale", "stand-in\n");
	return root;
}

static void test_headscale(void)
{
	char *root = hs_tree();
	char *users = t_beside(root, "hs-users");
	write_file_atomic(users, "fleet\n", 6, 0644); /* one user exists already */
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "headscale: the run is ok");
	tap_contains(r.out, "step=headscale state=ok 1 users and 2 pre-auth keys made; keys (0600) in /var/lib/pmoves/headscale/fleet.key, /var/lib/pmoves/headscale/ci.key\n",
		     "headscale: reports where the keys are");
	char *cfg = t_read(root, "etc/headscale/config.yaml");
	tap_contains(cfg, "server_url: https://hs.example.org\nlisten_addr: 0.0.0.0:8080\nmetrics_listen_addr: 127.0.0.1:9090\n", "headscale: server and listen addresses");
	tap_contains(cfg, "prefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n", "headscale: IP prefixes");
	tap_contains(cfg, "database:\n  type: sqlite\n  sqlite:\n    path: /var/lib/headscale/db.sqlite\n", "headscale: sqlite");
	tap_contains(cfg, "  urls:\n    - https://controlplane.tailscale.com/derpmap/default\n", "headscale: DERP map");
	tap_contains(cfg, "policy:\n  mode: file\n  path: /etc/headscale/acl.hujson\n", "headscale: the policy file");
	char *pol = t_read(root, "etc/headscale/acl.hujson");
	tap_contains(pol, "\"tag:mesh\": [\n      \"fleet\"\n    ]", "policy: tag owners");
	tap_contains(pol, "\"routes\": {\n      \"10.42.0.0/24\": [\n        \"tag:mesh\"\n      ]\n    }", "policy: the mesh subnet auto-approved for tag:mesh");
	tap_contains(pol, "\"exitNode\": [\n      \"tag:edge\"\n    ]", "policy: exit nodes of tag:edge auto-approved");
	char *c = t_strf("%.*s/calls", (int)(strrchr(root, '/') - root), root), *calls = t_read(c, NULL);
	tap_contains(calls, "systemctl --quiet enable headscale.service\nsystemctl --no-block restart headscale.service\nsystemctl is-system-running\nheadscale users list -o json\nheadscale users create ci\n"
			    "headscale preauthkeys create --user fleet --reusable --expiration 720h --tags tag:core -o json\n"
			    "headscale preauthkeys create --user ci --ephemeral --expiration 24h --tags tag:ci -o json\n",
		     "headscale: only the missing user made; a reusable fleet key and an ephemeral CI key");
	char *k1 = t_read(root, "var/lib/pmoves/headscale/fleet.key");
	struct stat st = t_stat(root, "var/lib/pmoves/headscale/fleet.key");
	tap_ok(k1 && STREQ(k1, HS_KEY_PREFIX "1\n") && (st.st_mode & 07777) == 0600 && st.st_uid == 0, "headscale: the key is in its file, 0600 root");
	char *status = t_read(root, "var/lib/pmoves/firstboot/status.json");
	tap_ok(!strstr(r.out, HS_KEY_PREFIX) && !strstr(r.err, HS_KEY_PREFIX) && !strstr(status, HS_KEY_PREFIX), "headscale: no key in output or status");
	tap_contains(calls, "tailscale up --reset --login-server=https://hs.example.org --auth-key=file:/var/lib/pmoves/headscale/fleet.key --hostname=hub --advertise-tags=tag:core --timeout=60s\n",
		     "hub: joins its own tailnet with the key file its headscale step made");
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as", "hub: on the tailnet");
	tap_ok(t_exists(root, "var/lib/pmoves/headscale/fleet.key"), "hub: the key file given by path is kept");
	free(cfg), free(pol), free(calls), free(k1), free(status);
	t_result_free(&r);

	/* Again, with the state gone: nothing is made twice. */
	char *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(state);
	unlink(c);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=skipped already done", "headscale: a second run finds config and keys in place");
	calls = t_read(c, NULL);
	tap_ok(!calls || !strstr(calls, "preauthkeys"), "headscale: no new key");
	free(calls), free(state), free(c), free(users);
	t_result_free(&r);
	t_cleanup(root);

	/* Not installed (the image has no Headscale artifact yet): pending, never failed. */
	root = hs_tree();
	char *bin = t_strf("%s/usr/bin/headscale", root);
	unlink(bin);
	free(bin);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=pending config written; Headscale is not installed yet", "headscale: pending without Headscale");
	tap_ok(t_exists(root, "etc/headscale/config.yaml"), "headscale: its config is written anyway");
	t_result_free(&r);
	t_cleanup(root);

	/* The server never answers. */
	root = hs_tree();
	char *down = t_beside(root, "hs-down");
	write_file_atomic(down, "", 0, 0644);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=failed Headscale does not answer 'headscale users list' after 30 s", "headscale: a server that never answers fails the step");
	t_result_free(&r);
	free(down);
	t_cleanup(root);
}

#define CF_ID "6ff42ae2-765d-4adf-8112-31c55c1551ef"
#define CF_SECRET "bm90LWEtcmVhbC1zZWNyZXQtYnV0LWxvbmctZW5vdWdoLXRvLWxvb2stbGlrZS1vbmU="
#define CF_CRED "{\\\"AccountTag\\\": \\\"5ab4e9dfbd435d24068829fda0077963\\\", \\\"TunnelSecret\\\": \\\"" CF_SECRET "\\\", \\\"TunnelID\\\": \\\"" CF_ID "\\\"}"

static char *cf_tree(bool installed)
{
	char *root = t_tree();
	net_stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OTHERS_OFF ", \"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"credentials\": \"" CF_CRED "\","
		" \"ingress\": [{\"hostname\": \"demo.pmoves.example.org\", \"service\": \"http://localhost:8080\"},"
		" {\"hostname\": \"api.pmoves.example.org\", \"path\": \"^/v1/\", \"service\": \"http://127.0.0.1:11434\"}]}}");
	if (installed)
		t_write(root, "usr/bin/cloudflared", "stand-in\n");
	return root;
}

static void test_tunnel(void)
{
	char *root = cf_tree(true);
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "tunnel: ok");
	tap_contains(r.out, "step=tunnel state=ok tunnel " CF_ID " with 2 ingress rules and the 404 catch-all, validated, cloudflared started\n",
		     "tunnel: says what it set up");
	char *cfg = t_read(root, "etc/cloudflared/config.yml");
	tap_is_str(cfg,
		   "# Written by pmoves-firstboot (tunnel step): change its config, not this file.\n"
		   "tunnel: " CF_ID "\ncredentials-file: /etc/cloudflared/" CF_ID ".json\ningress:\n"
		   "  - hostname: demo.pmoves.example.org\n    service: http://localhost:8080\n"
		   "  - hostname: api.pmoves.example.org\n    path: ^/v1/\n    service: http://127.0.0.1:11434\n"
		   "  - service: http_status:404\n",
		   "tunnel: config.yml with the rules in order and the catch-all last");
	char *cred = t_read(root, "etc/cloudflared/" CF_ID ".json");
	struct stat st = t_stat(root, "etc/cloudflared/" CF_ID ".json");
	tap_ok(cred && strstr(cred, CF_SECRET) && (st.st_mode & 07777) == 0600 && st.st_uid == 0, "tunnel: credentials 0600 root");
	char *unit = t_read(root, "etc/systemd/system/cloudflared.service");
	tap_contains(unit, "ExecStart=/usr/bin/cloudflared --no-autoupdate --config /etc/cloudflared/config.yml tunnel run\n", "tunnel: the unit");
	char *c = calls_of(root);
	tap_contains(c, "/usr/bin/cloudflared tunnel --config /etc/cloudflared/config.yml ingress validate\n"
			"systemctl --quiet enable cloudflared.service\nsystemctl --no-block restart cloudflared.service\n",
		     "tunnel: validated by cloudflared, then enabled and started");
	char *status = t_read(root, "var/lib/pmoves/firstboot/status.json");
	tap_ok(!strstr(r.out, CF_SECRET) && !strstr(r.err, CF_SECRET) && !strstr(status, CF_SECRET) && !strstr(c, CF_SECRET),
	       "tunnel: the tunnel secret is in no output, status or argv");
	free(cfg), free(cred), free(unit), free(c), free(status);
	t_result_free(&r);
	t_cleanup(root);

	root = cf_tree(true);
	char *bad = t_beside(root, "cf-bad");
	write_file_atomic(bad, "", 0, 0644);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tunnel state=failed 'cloudflared tunnel ingress validate' refused '/etc/cloudflared/config.yml' (exit 1)",
		     "tunnel: a config cloudflared refuses fails the step");
	c = calls_of(root);
	tap_ok(!strstr(c, "enable cloudflared"), "tunnel: and nothing is started");
	free(c), free(bad);
	t_result_free(&r);
	t_cleanup(root);

	root = cf_tree(false);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=tunnel state=pending 2 ingress rules in '/etc/cloudflared/config.yml'; cloudflared is not installed yet",
		     "tunnel: without cloudflared, pending with the files written");
	tap_ok(t_exists(root, "etc/cloudflared/" CF_ID ".json"), "tunnel: credentials written anyway");
	t_result_free(&r);
	t_cleanup(root);

	static const struct {
		const char *cfg, *msg;
	} bad_cfg[] = {
		{ "{\"tunnel\": {\"tunnel_id\": \"x\", \"ingress\": []}}", "'x' is not a tunnel ID" },
		{ "{\"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"ingress\": [{\"hostname\": \"a.example.org\", \"service\": \"ftp://x\"}]}}", "'ftp://x' is not a service" },
		{ "{\"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"ingress\": [{\"hostname\": \"a.example.org\", \"service\": \"http://x\\n  - service: hello_world\"}]}}", "is not a service" },
		{ "{\"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"ingress\": [{\"hostname\": \"a b\", \"service\": \"http://x\"}]}}", "'a b' is not a host name" },
		{ "{\"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"credentials\": \"{}\", \"ingress\": []}}", "not a tunnel credentials file" },
		{ "{\"tunnel\": {\"tunnel_id\": \"" CF_ID "\"}}", ".tunnel.ingress: is required" },
	};
	root = t_tree();
	for (size_t i = 0; i < ARRAY_SIZE(bad_cfg); i++) {
		t_write(root, "etc/pmoves/x.json", bad_cfg[i].cfg);
		char *p = t_strf("%s/etc/pmoves/x.json", root);
		char *argv[] = { "pmoves-firstboot", "validate", p, NULL };
		struct t_result v = t_fb(root, NULL, argv);
		tap_ok(v.status == 2 && v.err && strstr(v.err, bad_cfg[i].msg), "tunnel schema: %s", bad_cfg[i].msg);
		if (v.status != 2 || !v.err || !strstr(v.err, bad_cfg[i].msg))
			tap_diag("status %d: %s", v.status, v.err ? v.err : "");
		t_result_free(&v);
		free(p);
	}
	t_cleanup(root);
}

static void test_rustdesk(void)
{
	char *root = t_tree();
	net_stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json", "{" OTHERS_OFF ", \"rustdesk\": {}}");
	t_write(root, "root/.config/rustdesk/RustDesk2.toml",
		"rendezvous_server = 'rs-ny.rustdesk.com:21116'\nnat_type = 1\n\n[options]\ndirect-server = 'N'\nstop-service = ''\n");
	t_write(root, "usr/bin/rustdesk", "stand-in\n");
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=rustdesk state=ok direct IP access on port 21118, reachable on 'tailscale0' only\n", "rustdesk: ok");
	char *toml = t_read(root, "root/.config/rustdesk/RustDesk2.toml");
	tap_is_str(toml,
		   "rendezvous_server = 'rs-ny.rustdesk.com:21116'\nnat_type = 1\n\n[options]\n"
		   "direct-server = 'Y'\ndirect-access-port = '21118'\nstop-service = ''\n",
		   "rustdesk: direct IP access on in its config, RustDesk's other settings kept");
	char *c = calls_of(root);
	tap_contains(c, "systemctl --quiet enable pmoves-rustdesk-firewall.service\nsystemctl --no-block restart pmoves-rustdesk-firewall.service\n"
			"systemctl --quiet enable rustdesk.service\nsystemctl --no-block restart rustdesk.service\n",
		     "rustdesk: the port filter first, then RustDesk");
	char *nft = t_read(root, "etc/pmoves/rustdesk.nft");
	tap_contains(nft, "\t\tiifname { \"lo\", \"tailscale0\" } tcp dport 21118 accept\n\t\tiifname { \"lo\", \"tailscale0\" } udp dport 21118 accept\n"
			  "\t\ttcp dport 21118 drop\n\t\tudp dport 21118 drop\n",
		     "rustdesk: port only on lo and the tailnet");
	if (find_program("nft", NULL) == 0) {
		char *f = t_strf("%s/etc/pmoves/rustdesk.nft", root);
		char *argv[] = { "nft", "-c", "-f", f, NULL };
		_cleanup_free_ char *out = NULL;
		struct run_opts o = { .capture = &out, .capture_stderr = true };
		int rc = run_argv(argv, &o);
		tap_ok(rc == 0, "rustdesk: 'nft -c -f' accepts the ruleset");
		if (rc)
			tap_diag("nft: %s", out ? out : "");
		free(f);
	} else
		tap_skip("rustdesk: 'nft -c -f' accepts the ruleset", "nft is not installed (package nftables)");
	free(toml), free(c), free(nft);
	t_result_free(&r);
	t_cleanup(root);

	root = t_tree();
	net_stand_in(root);
	t_write(root, "etc/pmoves/firstboot.json", "{" OTHERS_OFF ", \"rustdesk\": {\"port\": 31118}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=rustdesk state=pending port closed but on the tailnet; RustDesk is not installed yet", "rustdesk: pending without RustDesk");
	toml = t_read(root, "root/.config/rustdesk/RustDesk2.toml");
	tap_is_str(toml, "[options]\ndirect-server = 'Y'\ndirect-access-port = '31118'\n", "rustdesk: a new config holds the options table");
	struct stat st = t_stat(root, "root/.config/rustdesk/RustDesk2.toml");
	tap_ok((st.st_mode & 07777) == 0600, "rustdesk: its config is 0600");
	free(toml);
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_tailnet_join();
	test_tailnet_unreachable();
	test_tailnet_booting();
	test_tailnet_tree();
	test_tailnet_schema();
	test_headscale();
	test_tunnel();
	test_rustdesk();
	return tap_done();
}
