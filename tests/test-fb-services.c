/* The steps that enable and start a service (tunnel, rustdesk, tailnet) when their program
 * arrives after the run that wrote their files: a later artifact or package. Their check means
 * "running as configured": the unit enabled and, on the running system, active; the program
 * being there is not enough. cloudflared, RustDesk and Tailscale cannot be installed here: the
 * runner below is a stand-in at the process boundary for them and for systemctl (it records
 * every argv and keeps each unit's enabled and active state as files). Verified against the
 * stand-in only. */
#include "test-fb-lib.h"

#define LIVE "PMOVES_FIRSTBOOT_LIVE=1"
#define OTHERS_OFF "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define CF_ID "6ff42ae2-765d-4adf-8112-31c55c1551ef"
#define CF_CRED "{\\\"AccountTag\\\": \\\"5ab4e9dfbd435d24068829fda0077963\\\", \\\"TunnelSecret\\\": \\\"c2VjcmV0\\\"}"
#define TS_KEY "hskey-0123456789abcdef0123456789abcdef0123456789ab"

/* The stand-in: records argv in DIR/calls; systemctl keeps DIR/units/UNIT.enabled (enable,
 * disable) and DIR/units/UNIT.active (start, restart, stop; live only, as systemctl's
 * --no-block verbs are only run there); cloudflared validates anything; tailscale up works and
 * tailscale status says Running. */
static void stand_in(const char *root)
{
	char *dir = t_strf("%.*s", (int)(strrchr(root, '/') - root), root);
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in for systemctl, cloudflared, tailscale, sysctl (not the real programs)\n"
			      "D=%s\n"
			      "echo \"$*\" >> $D/calls\n"
			      "[ \"$1\" = chroot ] && shift 2\n"
			      "if [ \"$1\" = tailscale ]; then\n"
			      "  [ \"$2\" = status ] && echo '{\"BackendState\": \"Running\", \"Self\": {\"DNSName\": \"n1.fleet.\", \"TailscaleIPs\": [\"100.64.0.9\"]}}'\n"
			      "  exit 0\n"
			      "fi\n"
			      "[ \"$1\" = systemctl ] || exit 0\n"
			      "shift\n"
			      "case \"$1\" in --root=*|--quiet|--no-block) shift;; esac\n"
			      "verb=$1; shift\n"
			      "case $verb in\n"
			      "is-system-running) echo running;;\n"
			      "is-enabled) [ -e $D/units/$1.enabled ] && { echo enabled; exit 0; }; echo disabled; exit 1;;\n"
			      "is-active) [ -e $D/units/$1.active ] && { echo active; exit 0; }; echo inactive; exit 3;;\n"
			      "enable) for u; do : > $D/units/$u.enabled; done;;\n"
			      "disable) for u; do rm -f $D/units/$u.enabled; done;;\n"
			      "start|restart) for u; do : > $D/units/$u.active; done;;\n"
			      "stop) for u; do rm -f $D/units/$u.active; done;;\n"
			      "esac\nexit 0\n",
			      dir);
	char *sp = t_strf("%s/stand-in", dir);
	if (write_file_atomic(sp, script, strlen(script), 0755) < 0)
		abort();
	free(sp), free(script), free(dir);
}

static char *calls_take(const char *root)
{
	char *p = t_beside(root, "calls"), *text = t_read(p, NULL);
	unlink(p);
	free(p);
	return text ? text : strdup("");
}

static void unit_state(const char *root, const char *unit, const char *what, bool on)
{
	char *p = t_strf("%.*s/units/%s.%s", (int)(strrchr(root, '/') - root), root, unit, what);
	if (on)
		write_file_atomic(p, "", 0, 0644);
	else
		unlink(p);
	free(p);
}

static void state_remove(const char *root)
{
	char *p = t_strf("%s/var/lib/pmoves/firstboot/state.json", root);
	unlink(p);
	free(p);
}

static char *tree(const char *section)
{
	char *root = t_tree();
	stand_in(root);
	char *cfg = t_strf("{" OTHERS_OFF ", %s}", section);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
}

/* ENV NULL: a tree (an image being built); LIVE: the tree taken for the running system. */
static void test_tunnel_late(const char *env)
{
	const char *where = env ? "live" : "tree";
	char *root = tree("\"tunnel\": {\"tunnel_id\": \"" CF_ID "\", \"credentials\": \"" CF_CRED "\","
			  " \"ingress\": [{\"hostname\": \"demo.example.org\", \"service\": \"http://localhost:8080\"}]}");
	struct t_result r = t_run(root, env);
	char *c = calls_take(root);
	tap_ok(strstr(r.out, "step=tunnel state=pending 1 ingress rules in '/etc/cloudflared/config.yml'; cloudflared is not installed yet") &&
		       !strstr(c, "cloudflared.service"),
	       "tunnel (%s): without cloudflared, pending, nothing enabled", where);
	t_result_free(&r);
	free(c);

	/* cloudflared arrives (a later artifact): the next run validates, enables and starts. */
	t_write(root, "usr/bin/cloudflared", "stand-in\n");
	r = t_run(root, env);
	c = calls_take(root);
	char *want = env ? strdup("/usr/bin/cloudflared tunnel --config /etc/cloudflared/config.yml ingress validate\n"
				  "systemctl --quiet enable cloudflared.service\nsystemctl --no-block restart cloudflared.service\n")
			 : t_strf("chroot %s /usr/bin/cloudflared tunnel --config /etc/cloudflared/config.yml ingress validate\n"
				  "systemctl --root=%s enable cloudflared.service\n",
				  root, root);
	tap_contains(r.out, "step=tunnel state=ok tunnel " CF_ID " with 1 ingress rules", "tunnel (%s): cloudflared installed later: applied, not skipped", where);
	if (!tap_ok(strstr(c, want) != NULL, "tunnel (%s): ... validated, enabled%s", where, env ? " and started" : ""))
		tap_diag("calls:\n%s", c);
	t_result_free(&r);
	free(c), free(want);

	/* Running as configured: a run without state finds it done and runs nothing. */
	state_remove(root);
	r = t_run(root, env);
	c = calls_take(root);
	tap_ok(strstr(r.out, "step=tunnel state=skipped already done") && !strstr(c, "validate") && !strstr(c, "enable "),
	       "tunnel (%s): enabled%s: already done, nothing run again", where, env ? " and active" : "");
	t_result_free(&r);
	free(c);

	/* Not enabled (or, live, not running): applied again. */
	unit_state(root, "cloudflared.service", env ? "active" : "enabled", false);
	state_remove(root);
	r = t_run(root, env);
	c = calls_take(root);
	tap_ok(strstr(r.out, "step=tunnel state=ok") && strstr(c, env ? "restart cloudflared.service" : "enable cloudflared.service"),
	       "tunnel (%s): %s: check says not done, apply %s it", where, env ? "stopped" : "disabled", env ? "starts" : "enables");
	t_result_free(&r);
	free(c);
	t_cleanup(root);
}

static void test_rustdesk_late(const char *env)
{
	const char *where = env ? "live" : "tree";
	char *root = tree("\"rustdesk\": {}");
	struct t_result r = t_run(root, env);
	char *c = calls_take(root);
	tap_ok(strstr(r.out, "step=rustdesk state=pending port closed but on the tailnet; RustDesk is not installed yet") &&
		       strstr(c, "enable pmoves-rustdesk-firewall.service") && !strstr(c, "rustdesk.service"),
	       "rustdesk (%s): without RustDesk, pending; only the port filter enabled", where);
	t_result_free(&r);
	free(c);

	t_write(root, "usr/bin/rustdesk", "stand-in\n");
	r = t_run(root, env);
	c = calls_take(root);
	tap_contains(r.out, "step=rustdesk state=ok direct IP access on port 21118", "rustdesk (%s): RustDesk installed later: applied, not skipped", where);
	if (!tap_ok(strstr(c, env ? "systemctl --quiet enable rustdesk.service\nsystemctl --no-block restart rustdesk.service\n"
				  : "enable rustdesk.service\n") != NULL,
		    "rustdesk (%s): ... rustdesk.service enabled%s", where, env ? " and started" : ""))
		tap_diag("calls:\n%s", c);
	t_result_free(&r);
	free(c);

	state_remove(root);
	r = t_run(root, env);
	c = calls_take(root);
	tap_ok(strstr(r.out, "step=rustdesk state=skipped already done") && !strstr(c, "enable "),
	       "rustdesk (%s): running as configured: already done", where);
	t_result_free(&r);
	free(c);
	t_cleanup(root);
}

static void test_tailnet_enabled(void)
{
	char *root = tree("\"tailnet\": {\"login_server\": \"https://hs.example.org\", \"auth_key\": \"" TS_KEY "\"}");
	t_write(root, "usr/bin/tailscale", "stand-in\n");
	/* On the tailnet (tailscale status says Running), but tailscaled is not enabled: it would
	 * not come back after a reboot. */
	struct t_result r = t_run(root, LIVE);
	char *c = calls_take(root);
	tap_ok(strstr(r.out, "step=tailnet state=ok on the tailnet as n1.fleet. 100.64.0.9") &&
		       strstr(c, "systemctl --quiet enable tailscaled.service\n"),
	       "tailnet: joined but tailscaled not enabled: applied (enabled), not skipped");
	t_result_free(&r);
	free(c);
	state_remove(root);
	r = t_run(root, LIVE);
	c = calls_take(root);
	tap_ok(strstr(r.out, "step=tailnet state=skipped on the tailnet as") && !strstr(c, "tailscale up"),
	       "tailnet: enabled and joined: already done");
	t_result_free(&r);
	free(c);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_tunnel_late(NULL);
	test_tunnel_late(LIVE);
	test_rustdesk_late(NULL);
	test_rustdesk_late(LIVE);
	test_tailnet_enabled();
	return tap_done();
}
