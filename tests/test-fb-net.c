/* The network steps on fixture trees. Tailscale cannot be installed here: a stand-in at the
 * process boundary answers for it (the runner below: it records every argv and plays
 * `tailscale up` / `tailscale status --json`), and PMOVES_FIRSTBOOT_LIVE=1 makes the tree
 * count as the running system so the join itself is exercised. Verified here against the
 * stand-in only, never against Tailscale. */
#include "run.h"
#include "test-fb-lib.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#define KEY "hskey-0123456789abcdef0123456789abcdef0123456789ab"
#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"

/* The stand-in runner: records argv in DIR/calls; "tailscale up" fails while DIR/fail-up
 * holds a count above 0, records the key file's mode and size (never its content), and on
 * success remembers the tags and the advertised routes (approved at once, as Headscale's
 * autoApprovers do, unless DIR/unapproved exists); "tailscale status --json" answers Running
 * with them (Self.Tags, Self.PrimaryRoutes). */
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
		"[ \"$1\" = tailscale ] || exit 0\n"
		"case $2 in\n"
		"up)\n"
		"  k=$R/var/lib/pmoves/tailnet/auth.key\n"
		"  if [ -f $k ]; then echo \"key mode $(stat -c %%a $k) size $(stat -c %%s $k)\" >> $D/calls; fi\n"
		"  if [ -f $D/fail-up ] && [ \"$(cat $D/fail-up)\" -gt 0 ]; then\n"
		"    echo $(($(cat $D/fail-up) - 1)) > $D/fail-up; echo 'backend error: unreachable' >&2; exit 1; fi\n"
		"  tags=; rts=; for a; do case $a in --advertise-tags=*) tags=${a#--advertise-tags=};; --advertise-routes=*) rts=${a#--advertise-routes=};; esac; done\n"
		"  [ -f $D/unapproved ] && rts=\n"
		"  echo \"$tags\" > $D/joined; echo \"$rts\" > $D/routes; exit 0;;\n"
		"status)\n"
		"  if [ -f $D/joined ]; then t=$(sed 's/\\([^,][^,]*\\)/\"\\1\"/g' $D/joined); p=$(sed 's/\\([^,][^,]*\\)/\"\\1\"/g' $D/routes)\n"
		"    printf '{\"BackendState\": \"Running\", \"Self\": {\"DNSName\": \"node1.fleet.\", \"TailscaleIPs\": [\"100.64.0.7\"], \"Tags\": [%%s], \"PrimaryRoutes\": [%%s]}}\\n' \"$t\" \"$p\"\n"
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
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as node1.fleet. 100.64.0.7, routing 10.42.0.0/24\n",
		     "tailnet: verified by status --json (tags, the route in Self.PrimaryRoutes)");
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
	tap_contains(r.out, "step=tailnet state=skipped on the tailnet as node1.fleet. 100.64.0.7, routing 10.42.0.0/24",
		     "tailnet: a joined machine is left alone, without needing the key");
	c = calls_of(root);
	tap_ok(!strstr(c, "tailscale up"), "tailnet: no second up");
	free(c);
	t_result_free(&r);

	/* The control server has not approved the route: joined, but the mesh is not served:
	 * pending (the check finds it not done, the join is tried again on a later run). */
	char *unapproved = t_beside(root, "unapproved"), *was_joined = t_beside(root, "joined");
	write_file_atomic(unapproved, "", 0, 0644);
	unlink(was_joined); /* a machine not joined yet */
	free(was_joined);
	unlink(calls);
	state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(state);
	free(state);
	t_write(root, "etc/pmoves/firstboot.json",
		"{\"hostname\": \"node1.example.org\", " OTHERS_OFF ", \"tailnet\": {\"login_server\": \"https://hs.example.org\","
		" \"auth_key\": \"" KEY "\", \"advertise_routes\": [\"10.42.0.0/24\"], \"timeout\": 30}}");
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=tailnet state=pending on the tailnet as node1.fleet. 100.64.0.7, but the control server has not "
			    "approved the route '10.42.0.0/24' (not in Self.PrimaryRoutes of 'tailscale status --json'",
		     "tailnet: a route the control server did not approve: pending, says which");
	c = calls_of(root);
	tap_ok(t_count(c, "tailscale up ") == 1 && t_count(c, "tailscale status --json") >= 2,
	       "tailnet: the route asked again after the join (status polled), up not repeated in the run");
	free(c), free(unapproved), free(calls);
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

/* ---- the hub: the headscale and tailnet steps against the STAND-INS of tests/fixtures/standins
 * (not Headscale, not Tailscale): headscale plays 0.29's CLI forms (numeric user IDs; 0.23's
 * forms are refused) and serves HTTPS with openssl s_server on 127.0.0.1; tailscale's "up"
 * connects over TLS with openssl s_client and verifies the certificate against the tree's
 * /etc/ssl/certs. What this proves is our side of the boundary over real TLS on loopback. */

#define HS_HOST "hs.fleet.test"

struct pki {
	char *dir, *ca, *cert, *key, *wrong_ca;
};

/* A test CA, a certificate for HS_HOST it signed with its key, and a second CA that signed
 * nothing here: openssl, for real. */
static void pki_make(struct pki *k)
{
	char tmpl[] = "/tmp/test-fb-pki-XXXXXX";
	if (!mkdtemp(tmpl))
		abort();
	k->dir = strdup(tmpl);
	char *ext = t_strf("%s/ext", k->dir);
	if (write_file_atomic(ext, "subjectAltName=DNS:" HS_HOST "\n", strlen("subjectAltName=DNS:" HS_HOST "\n"), 0644) < 0)
		abort();
	free(ext);
#define EC "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30"
	char *cmds[][20] = {
		{ "openssl", "req", "-x509", EC, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=pmoves test fleet CA", NULL },
		{ "openssl", "req", EC, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=" HS_HOST, NULL },
		{ "openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem",
		  "-days", "30", "-extfile", "ext", NULL },
		{ "openssl", "req", "-x509", EC, "-keyout", "wrong.key", "-out", "wrong.pem", "-subj", "/CN=pmoves test wrong CA", NULL },
	};
#undef EC
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (run_argv(cmds[i], &(struct run_opts){ .in_fd = -1, .cwd = k->dir }) != 0)
			abort();
	k->ca = t_read(k->dir, "ca.pem"), k->cert = t_read(k->dir, "srv.pem"), k->key = t_read(k->dir, "srv.key");
	k->wrong_ca = t_read(k->dir, "wrong.pem");
	if (!k->ca || !k->cert || !k->key || !k->wrong_ca)
		abort();
}

static void pki_done(struct pki *k)
{
	rm_rf(k->dir);
	free(k->dir), free(k->ca), free(k->cert), free(k->key), free(k->wrong_ca);
}

/* A TCP port nothing listens on now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

/* JSON text of the string S. */
static char *jstr(const char *s)
{
	json_object *o = json_object_new_string(s);
	char *r = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return r;
}

/* The runner for the hub trees: headscale and tailscale go to the fixture stand-ins, under
 * the tree; `systemctl ... restart headscale.service` starts the stand-in server (none while
 * DIR/hs-down exists) and waits until it listens; the rest goes to t_tree()'s runner. */
static void hub_stand_in(const char *root, int port)
{
	char fix[PATH_MAX];
	if (!realpath("tests/fixtures/standins", fix))
		abort();
	char *dir = t_strf("%.*s", (int)(strrchr(root, '/') - root), root), *base = t_strf("%s/stand-in", dir),
	     *moved = t_strf("%s/stand-in-base", dir);
	if (rename(base, moved) < 0)
		abort();
	char *script = t_strf(
		"#!/bin/sh\n"
		"# stand-in runner for the hub tests (not the real programs)\n"
		"D=%s; R=%s; F=%s; P=%d\n"
		"case $1 in\n"
		"headscale|tailscale) echo \"$*\" >> $D/calls; p=$1; shift\n"
		"  STANDIN_ROOT=$R STANDIN_CONNECT=127.0.0.1:$P exec $F/$p \"$@\";;\n"
		"systemctl) case \"$*\" in\n"
		"  *is-system-running*) echo \"$*\" >> $D/calls; echo running; exit 0;;\n"
		"  *'restart headscale.service'*) echo \"$*\" >> $D/calls; [ -f $D/hs-down ] && exit 0\n"
		"    old=$(cat $R/var/lib/headscale/standin/serving 2>/dev/null)\n"
		"    if [ -n \"$old\" ]; then kill $old 2>/dev/null; while kill -0 $old 2>/dev/null; do sleep 0.05; done; fi\n"
		"    STANDIN_ROOT=$R setsid $F/headscale serve </dev/null >>$D/serve.log 2>&1 &\n"
		"    for i in $(seq 100); do ss -Hltn \"sport = :$P\" | grep -q . && exit 0; sleep 0.05; done; exit 1;;\n"
		"  esac;;\n"
		"esac\n"
		"exec $D/stand-in-base \"$@\"\n",
		dir, root, fix, port);
	if (write_file_atomic(base, script, strlen(script), 0755) < 0)
		abort();
	free(script), free(dir), free(base), free(moved);
}

static void hub_server_stop(const char *root)
{
	char *pid = t_read(root, "var/lib/headscale/standin/serving");
	if (pid && atoi(pid) > 0)
		kill(atoi(pid), SIGTERM);
	free(pid);
}

/* firstboot.json of a hub on PORT; TLS the "tls" object's JSON or NULL for none; EXTRA more
 * keys of the headscale section (may be ""). */
static void hub_config(const char *root, int port, const char *tls, const char *extra)
{
	char *cfg = t_strf(
		"{\"hostname\": \"hub\", " OTHERS_OFF ", \"headscale\": {\"server_url\": \"https://" HS_HOST ":%d\","
		" \"listen_addr\": \"127.0.0.1:%d\", %s%s%s \"users\": [\"fleet\", \"ci\"], \"keys\": ["
		" {\"name\": \"fleet\", \"user\": \"fleet\", \"reusable\": true, \"tags\": [\"tag:core\"]},"
		" {\"name\": \"ci\", \"user\": \"ci\", \"ephemeral\": true, \"expiration\": \"24h\", \"tags\": [\"tag:ci\"]},"
		" {\"name\": \"mesh\", \"reusable\": true, \"tags\": [\"tag:mesh\"]}]%s},"
		" \"tailnet\": {\"login_server\": \"https://" HS_HOST ":%d\", \"key_file\": \"/var/lib/pmoves/headscale/fleet.key\","
		" \"tags\": [\"tag:core\"]}}",
		port, port, tls ? "\"tls\": " : "", tls ? tls : "", tls ? "," : "", extra, port);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
}

static char *tls_json(const struct pki *k, bool with_key)
{
	char *c = jstr(k->cert), *key = jstr(k->key),
	     *r = with_key ? t_strf("{\"cert\": %s, \"key\": %s}", c, key) : t_strf("{\"cert\": %s}", c);
	free(c), free(key);
	return r;
}

/* A hub tree: Headscale's package's user (998), the fleet CA in /etc/ssl/certs (the roots the
 * client trusts), the stand-ins' names in /usr/bin. */
static char *hub_tree(const struct pki *k, int port, const char *ca)
{
	char *root = t_tree();
	hub_stand_in(root, port);
	t_write(root, "etc/passwd",
		"root:x:0:0:root:/root:/bin/bash\nheadscale:x:998:998:headscale default user:/var/lib/headscale:/usr/sbin/nologin\n");
	t_write(root, "etc/group", "root:x:0:\nheadscale:x:998:\n");
	t_write(root, "etc/ssl/certs/pmoves-fleet-ca.pem", ca);
	t_write(root, "usr/bin/headscale", "stand-in\n");
	t_write(root, "usr/bin/tailscale", "stand-in\n");
	char *tls = tls_json(k, true);
	hub_config(root, port, tls, "");
	free(tls);
	return root;
}

/* The three pre-auth keys (NULL where missing) are in none of OUT, ERR, status.json,
 * state.json and the calls; nor is the TLS key. */
static bool hub_leaked(const char *root, const struct pki *k, const struct t_result *r)
{
	static const char *const names[] = { "fleet", "ci", "mesh" };
	char *state = t_read(root, "var/lib/pmoves/firstboot/state.json"),
	     *status = t_read(root, "var/lib/pmoves/firstboot/status.json"), *c = calls_of(root),
	     *hc = t_read(root, "var/lib/standin/headscale.calls"), *tc = t_read(root, "var/lib/standin/tailscale.calls");
	const char *texts[] = { r->out, r->err, state, status, c, hc, tc };
	/* a line from the middle of the key's base64: what a leak would show */
	char *line = strndup(strchr(k->key, '\n') + 1, 40);
	bool leak = false;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = t_strf("var/lib/pmoves/headscale/%s.key", names[i]), *key = t_read(root, p);
		if (key)
			key[strcspn(key, "\n")] = '\0';
		for (size_t j = 0; key && *key && j < ARRAY_SIZE(texts); j++)
			leak |= texts[j] && strstr(texts[j], key);
		free(p), free(key);
	}
	for (size_t j = 0; j < ARRAY_SIZE(texts); j++)
		leak |= texts[j] && strstr(texts[j], line);
	free(state), free(status), free(c), free(hc), free(tc), free(line);
	return leak;
}

static void test_hub(void)
{
	struct pki k;
	pki_make(&k);
	int port = free_port();
	char *root = hub_tree(&k, port, k.ca);
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "hub: the run is ok");
	char *want = t_strf("step=headscale state=ok https on 127.0.0.1:%d with the certificate in /etc/headscale/tls.crt; 2 users and 3 pre-auth keys made;"
			    " keys (0600) in /var/lib/pmoves/headscale/fleet.key, /var/lib/pmoves/headscale/ci.key, /var/lib/pmoves/headscale/mesh.key\n",
			    port);
	tap_contains(r.out, want, "hub: https, users and keys, the key files named");
	free(want);
	if (r.status != 0)
		tap_diag("out:\n%s\nerr:\n%s", r.out, r.err);

	char *cfg = t_read(root, "etc/headscale/config.yaml");
	want = t_strf("server_url: https://" HS_HOST ":%d\nlisten_addr: 127.0.0.1:%d\nmetrics_listen_addr: 127.0.0.1:9090\n"
		      "grpc_listen_addr: 127.0.0.1:50443\ngrpc_allow_insecure: false\n"
		      "tls_cert_path: /etc/headscale/tls.crt\ntls_key_path: /etc/headscale/tls.key\n",
		      port, port);
	tap_contains(cfg, want, "config.yaml: the server URL, the listen addresses, the certificate and key");
	free(want);
	tap_contains(cfg, "# Written by pmoves-firstboot (headscale step) for Headscale 0.29", "config.yaml: for 0.29");
	tap_contains(cfg, "prefixes:\n  v4: 100.64.0.0/10\n  v6: fd7a:115c:a1e0::/48\n", "config.yaml: IP prefixes");
	tap_contains(cfg, "database:\n  type: sqlite\n  sqlite:\n    path: /var/lib/headscale/db.sqlite\n", "config.yaml: sqlite");
	tap_contains(cfg, "node:\n  ephemeral:\n    inactivity_timeout: 30m\n", "config.yaml: node.ephemeral (0.29's key, not the deprecated one)");
	tap_ok(cfg && !strstr(cfg, "ephemeral_node_inactivity_timeout"), "config.yaml: no deprecated key");
	tap_contains(cfg, "policy:\n  mode: file\n  path: /etc/headscale/acl.hujson\n", "config.yaml: the policy file");
	tap_contains(cfg, "dns:\n  magic_dns: true\n  base_domain: fleet.internal\n  override_local_dns: true\n  nameservers:\n    global:\n      - 1.1.1.1\n",
		     "config.yaml: MagicDNS with global name servers");
	struct stat st = t_stat(root, "etc/headscale/tls.key");
	char *key = t_read(root, "etc/headscale/tls.key"), *crt = t_read(root, "etc/headscale/tls.crt");
	tap_ok(key && STREQ(key, k.key) && (st.st_mode & 07777) == 0600 && st.st_uid == 998 && st.st_gid == 998,
	       "the TLS key: 0600, owned by Headscale's user (998)");
	st = t_stat(root, "etc/headscale/tls.crt");
	tap_ok(crt && STREQ(crt, k.cert) && (st.st_mode & 07777) == 0644 && st.st_uid == 0, "the certificate: 0644 root");
	free(key), free(crt);

	char *pol = t_read(root, "etc/headscale/acl.hujson");
	tap_contains(pol, "\"tag:mesh\": [\n      \"fleet@\"\n    ]", "policy: tags owned by the first user, as 'fleet@'");
	tap_contains(pol, "\"routes\": {\n      \"10.42.0.0/24\": [\n        \"tag:mesh\"\n      ]\n    }", "policy: the mesh subnet auto-approved for tag:mesh");
	tap_contains(pol, "\"exitNode\": [\n      \"tag:edge\"\n    ]", "policy: exit nodes of tag:edge auto-approved");
	tap_ok(pol && !strstr(pol, "\"acls\"") && !strstr(pol, "\"grants\""), "policy: no rules given: none written (Headscale allows all)");

	char *hc = t_read(root, "var/lib/standin/headscale.calls");
	tap_is_str(hc,
		   "users list -o json\nusers create fleet\nusers create ci\nusers list -o json\n"
		   "preauthkeys create --user 1 --reusable --expiration 720h --tags tag:core -o json\n"
		   "preauthkeys create --user 2 --ephemeral --expiration 24h --tags tag:ci -o json\n"
		   "preauthkeys create --reusable --expiration 720h --tags tag:mesh -o json\n",
		   "headscale: users made, their IDs read, keys asked by ID (a tagged key without a user)");
	const char *names[] = { "fleet", "ci", "mesh" };
	bool keys_ok = true;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char *p = t_strf("var/lib/pmoves/headscale/%s.key", names[i]), *v = t_read(root, p);
		st = t_stat(root, p);
		keys_ok &= v && !strncmp(v, "hskey-auth-", 11) && (st.st_mode & 07777) == 0600 && st.st_uid == 0;
		free(p), free(v);
	}
	tap_ok(keys_ok, "headscale: each key in its file, 0600 root");

	char *tc = t_read(root, "var/lib/standin/tailscale.calls");
	want = t_strf("up --reset --login-server=https://" HS_HOST ":%d --auth-key=file:/var/lib/pmoves/headscale/fleet.key --hostname=hub"
		      " --advertise-tags=tag:core --timeout=60s\nkey file mode 600\nup: TLS to '" HS_HOST ":%d' verified: depth=0 CN = " HS_HOST "\n",
		      port, port);
	tap_contains(tc, want, "hub: joins its own tailnet over https, the certificate verified against the fleet CA");
	free(want);
	tap_contains(r.out, "step=tailnet state=ok on the tailnet as hub.fleet.internal. 100.64.0.1\n", "hub: on the tailnet, with the key's tag");
	tap_ok(!hub_leaked(root, &k, &r), "hub: no pre-auth key and no TLS key in output, status, state or argv");
	free(cfg), free(pol), free(hc), free(tc);
	t_result_free(&r);

	/* Again with the state gone: everything is found in place, nothing made twice. */
	char *state = t_strf("%s/var/lib/pmoves/firstboot/state.json", root), *c = t_beside(root, "calls"),
	     *hcp = t_strf("%s/var/lib/standin/headscale.calls", root);
	unlink(state), unlink(c), unlink(hcp);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=skipped already done", "again: config, TLS, keys and server found in place");
	tap_ok(!t_exists(root, "var/lib/standin/headscale.calls"), "again: no headscale command at all");
	t_result_free(&r);

	/* The TLS key scrubbed from the config (as from device.json after an ok run): the key file
	 * there is used as it is. */
	char *tls = tls_json(&k, false);
	hub_config(root, port, tls, "");
	free(tls);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=skipped already done", "key scrubbed: the key file in place is enough");
	t_result_free(&r);

	/* Negative control: the client trusts another CA. The same join fails on the certificate. */
	char *joined = t_strf("%s/var/lib/standin/joined", root);
	unlink(joined), unlink(c);
	t_write(root, "etc/ssl/certs/pmoves-fleet-ca.pem", k.wrong_ca);
	tls = tls_json(&k, false);
	hub_config(root, port, tls, ", \"mesh_subnet\": \"10.42.0.0/24\"");
	free(tls);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	want = t_strf("step=tailnet state=pending not joined to 'https://" HS_HOST ":%d' after 3 attempts", port);
	tap_contains(r.out, want, "wrong CA: the join fails (pending), three attempts");
	free(want);
	tc = t_read(root, "var/lib/standin/tailscale.calls");
	want = t_strf("up: TLS to '" HS_HOST ":%d' failed: verify error:num=20:unable to get local issuer certificate", port);
	tap_ok(t_count(tc, want) == 3, "wrong CA: the certificate is refused each time");
	free(want), free(tc);
	tap_ok(!t_exists(root, "var/lib/standin/joined"), "wrong CA: not on the tailnet");
	t_result_free(&r);
	hub_server_stop(root);
	free(state), free(c), free(hcp), free(joined);
	t_cleanup(root);

	/* No "tls": the step fails and writes nothing (no plain-HTTP hub). */
	root = hub_tree(&k, port, k.ca);
	hub_config(root, port, NULL, "");
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=failed the hub serves https and 'headscale.tls' is not in the config", "no tls: fails, saying what to give");
	tap_ok(!t_exists(root, "etc/headscale/config.yaml"), "no tls: nothing written");
	t_result_free(&r);
	t_cleanup(root);

	/* Dry run: the key file is named, its content never shown. */
	root = hub_tree(&k, port, k.ca);
	char *argv[] = { "pmoves-firstboot", "run", "--dry-run", "--root", root, NULL };
	r = t_fb(root, NULL, argv);
	want = t_strf("would write /etc/headscale/tls.key (mode 0600, %zu bytes), content not shown", strlen(k.key));
	tap_contains(r.out, want, "dry run: the TLS key file named, not shown");
	free(want);
	tap_contains(r.out, "would write /etc/headscale/tls.crt (mode 0644", "dry run: the certificate");
	tap_ok(!hub_leaked(root, &k, &r) && !t_exists(root, "etc/headscale"), "dry run: no key shown, nothing written");
	t_result_free(&r);
	t_cleanup(root);

	/* ACME: Headscale's own client gets the certificate (configuration only: no ACME server
	 * here, the stand-in does not play it). */
	root = hub_tree(&k, port, k.ca);
	hub_config(root, port, "{\"acme\": {\"email\": \"ops@example.org\", \"url\": \"https://acme.example.org/dir\"}}", "");
	r = t_run(root, NULL);
	cfg = t_read(root, "etc/headscale/config.yaml");
	tap_contains(cfg, "acme_url: https://acme.example.org/dir\nacme_email: \"ops@example.org\"\ntls_letsencrypt_hostname: " HS_HOST "\n"
			  "tls_letsencrypt_cache_dir: /var/lib/headscale/cache\ntls_letsencrypt_challenge_type: HTTP-01\ntls_letsencrypt_listen: \":http\"\n",
		     "acme: Headscale's ACME keys, the host from server_url");
	tap_ok(cfg && !strstr(cfg, "tls_cert_path") && !t_exists(root, "etc/headscale/tls.key"), "acme: no certificate or key file");
	tap_contains(r.out, "step=headscale state=pending config written, headscale enabled; users and keys are made on the running machine",
		     "acme on a tree: pending");
	free(cfg);
	t_result_free(&r);
	t_cleanup(root);

	/* Not installed (the image has no Headscale artifact yet): pending, never failed. */
	root = hub_tree(&k, port, k.ca);
	char *bin = t_strf("%s/usr/bin/headscale", root);
	unlink(bin);
	free(bin);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=pending config written; Headscale is not installed yet", "headscale: pending without Headscale");
	tap_ok(t_exists(root, "etc/headscale/config.yaml") && t_exists(root, "etc/headscale/tls.key"), "headscale: its files are written anyway");
	t_result_free(&r);
	t_cleanup(root);

	/* The server never answers. */
	root = hub_tree(&k, port, k.ca);
	char *down = t_beside(root, "hs-down");
	write_file_atomic(down, "", 0, 0644);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=headscale state=failed Headscale does not answer 'headscale users list' after 30 s", "headscale: a server that never answers fails the step");
	t_result_free(&r);
	free(down);
	t_cleanup(root);
	pki_done(&k);
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

/* --root: the auth key file's directory a symlink out of the tree (absolute, or "../.."): the
 * key is not written outside; the step fails saying so. */
static void test_tailnet_key_escape(void)
{
	for (int rel = 0; rel < 2; rel++) {
		char *root = net_tree("{\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" KEY "\"}");
		char *sentinel = t_beside(root, "sentinel");
		t_escape_link(root, "var/lib/pmoves/tailnet", sentinel, rel);
		struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
		const char *how = rel ? "../.." : "absolute";
		tap_is_int((long long)t_dir_entries(sentinel), 0, "--root: the tailnet key's directory a symlink (%s) out of the tree: no key outside", how);
		tap_contains(r.out, "step=tailnet state=failed cannot write '/var/lib/pmoves/tailnet/auth.key': ",
			     "--root: tailnet key through a symlink (%s): fails saying so", how);
		tap_ok(!leaked(root, &r), "--root: tailnet key through a symlink (%s): the key in no output", how);
		t_result_free(&r);
		free(sentinel);
		t_cleanup(root);
	}
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_tailnet_join();
	test_tailnet_key_escape();
	test_tailnet_unreachable();
	test_tailnet_booting();
	test_tailnet_tree();
	test_tailnet_schema();
	test_hub();
	test_tunnel();
	test_rustdesk();
	return tap_done();
}
