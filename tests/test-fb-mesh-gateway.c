/* The mesh-gateway step on fixture trees: the exact ruleset, boot unit, sysctl and dnsmasq
 * files for the default uplink (any interface but bat0 and tailscale0), an uplink by name and
 * by MAC (a fixture /sys/class/net; pending while the MAC is not there), DHCP on and off
 * (turning it off removes our dnsmasq file), every ruleset through the real `nft -c -f` and
 * every dnsmasq config through the real `dnsmasq --test -C`, the commands on a live machine (a
 * stand-in runner that sets the fixture's ip_forward), the refusals of configs that make no
 * gateway node (no mesh section, not a server, bat0 by DHCP, a range outside bat0's subnet),
 * bad sections refused by the schema, dry run, and runs that change nothing.
 * tests/e2e/mesh-gateway.t runs it for real in two QEMU guests. */
#include "test-fb-lib.h"
#include "run.h"

#include <json-c/json.h>

#define OFF_OTHERS                                                                                                    \
	"\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}," \
	" \"mesh\": {\"enabled\": false}}"
#define MESH_SERVER "\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"server\"}"
#define HDR "# Written by pmoves-firstboot (mesh-gateway step): change its config, not this file.\n"
#define NFT "etc/pmoves/mesh-gateway.nft"
#define UNIT "etc/systemd/system/pmoves-mesh-gateway.service"
#define SYSCTL "etc/sysctl.d/90-pmoves-mesh-gateway.conf"
#define DNSMASQ "etc/dnsmasq.d/pmoves-mesh-gateway.conf"

static bool have_nft, have_dnsmasq;

/* A tree whose config has MESH (a "mesh": ... member, or "") and the mesh_gateway section MGW. */
static char *node(const char *mesh, const char *mgw)
{
	char *root = t_tree();
	char *cfg = t_strf("{" OFF_OTHERS ", %s%s\"mesh_gateway\": %s}", mesh, *mesh ? ", " : "", mgw);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
}

static void config(const char *root, const char *mesh, const char *mgw)
{
	char *cfg = t_strf("{" OFF_OTHERS ", %s%s\"mesh_gateway\": %s}", mesh, *mesh ? ", " : "", mgw);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
}

static char *calls_of(const char *root)
{
	char *p = t_beside(root, "calls");
	char *text = t_read(p, NULL);
	free(p);
	return text ? text : strdup("");
}

static void clear_calls(const char *root)
{
	char *p = t_beside(root, "calls");
	unlink(p);
	free(p);
}

static void forget_state(const char *root)
{
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
}

static void file_is(const char *root, const char *rel, const char *want, const char *what)
{
	char *got = t_read(root, rel);
	tap_is_str(got, want, "%s: %s", what, rel);
	free(got);
}

static char *nft_want(const char *oif, const char *subnet)
{
	return t_strf("#!/usr/sbin/nft -f\n" HDR
		      "# The mesh's gateway: the mesh masqueraded out of the uplink; new connections into the\n"
		      "# mesh only from the tailnet. Only this table is replaced: other tables (the gateway\n"
		      "# step's, Tailscale's) stay.\n"
		      "table inet pmoves_mesh_gateway\n"
		      "delete table inet pmoves_mesh_gateway\n\n"
		      "table inet pmoves_mesh_gateway {\n"
		      "\tchain forward {\n"
		      "\t\ttype filter hook forward priority filter; policy accept;\n"
		      "\t\tct state established,related accept\n"
		      "\t\tiifname \"bat0\" %s counter accept comment \"mesh to the uplink\"\n"
		      "\t\tiifname \"tailscale0\" oifname \"bat0\" accept comment \"tailnet to the mesh (subnet router)\"\n"
		      "\t\toifname \"bat0\" counter drop comment \"nothing else into the mesh\"\n"
		      "\t}\n\n"
		      "\tchain postrouting {\n"
		      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		      "\t\t%s ip saddr %s counter masquerade comment \"mesh out of the uplink\"\n"
		      "\t}\n"
		      "}\n",
		      oif, oif, subnet);
}

#define ANY_UPLINK "oifname != { \"bat0\", \"tailscale0\" }"

#define UNIT_WANT                                                                              \
	HDR "[Unit]\n"                                                                         \
	    "Description=pmoves mesh gateway: NAT and forwarding for the mesh (table inet pmoves_mesh_gateway)\n" \
	    "DefaultDependencies=no\n"                                                         \
	    "Wants=network-pre.target\n"                                                       \
	    "# After nftables.service: Debian's default /etc/nftables.conf flushes the ruleset.\n" \
	    "After=nftables.service\n"                                                         \
	    "Before=network-pre.target shutdown.target\n"                                      \
	    "Conflicts=shutdown.target\n\n"                                                    \
	    "[Service]\n"                                                                      \
	    "Type=oneshot\n"                                                                   \
	    "RemainAfterExit=yes\n"                                                            \
	    "ExecStart=/usr/sbin/nft -f /etc/pmoves/mesh-gateway.nft\n\n"                      \
	    "[Install]\n"                                                                      \
	    "WantedBy=sysinit.target\n"

/* The real nft and dnsmasq on the files the step wrote. */
static void real_checks(const char *root, const char *what)
{
	char *nft = t_strf("%s/" NFT, root), *dm = t_strf("%s/" DNSMASQ, root);
	char *out = NULL;
	if (have_nft) {
		char *argv[] = { "nft", "-c", "-f", nft, NULL };
		struct run_opts o = { .capture = &out, .capture_stderr = true };
		int r = run_argv(argv, &o);
		tap_is_int(r, 0, "%s: the real 'nft -c -f' accepts the ruleset", what);
		if (r != 0)
			tap_diag("%s", out ? out : "");
		free(out);
		out = NULL;
	} else {
		tap_skip("nft -c -f", "nft is not installed (package nftables)");
	}
	if (!t_exists(root, DNSMASQ)) {
		/* no DHCP: nothing for dnsmasq */
	} else if (have_dnsmasq) {
		char *argv[] = { "dnsmasq", "--test", "-C", dm, NULL };
		struct run_opts o = { .capture = &out, .capture_stderr = true };
		int r = run_argv(argv, &o);
		tap_is_int(r, 0, "%s: the real 'dnsmasq --test -C' accepts the config", what);
		if (r != 0)
			tap_diag("%s", out ? out : "");
		free(out);
	} else {
		tap_skip("dnsmasq --test", "dnsmasq is not installed (package dnsmasq-base)");
	}
	free(nft), free(dm);
}

static void test_defaults(void)
{
	char *root = node(MESH_SERVER, "{}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "defaults: exit 0");
	tap_contains(r.out,
		     "pmoves-firstboot: step=mesh-gateway state=ok mesh 10.42.0.0/24 masqueraded out of any interface but bat0 and "
		     "tailscale0 (the default route's), forwarding on; DHCP 10.42.0.128-10.42.0.254 lease 12h on bat0 (router "
		     "10.42.0.1); comes up on the next boot\n",
		     "defaults: the console line");
	char *w = nft_want(ANY_UPLINK, "10.42.0.0/24");
	file_is(root, NFT, w, "defaults: the ruleset: bat0's subnet out of any interface but bat0 and tailscale0");
	free(w);
	file_is(root, UNIT, UNIT_WANT, "defaults: the unit that loads it at every boot");
	file_is(root, SYSCTL, HDR "net.ipv4.ip_forward = 1\n", "defaults: forwarding at boot");
	file_is(root, DNSMASQ,
		HDR "# DHCP and DNS for the mesh on 'bat0' only.\n"
		    "interface=bat0\nbind-dynamic\ndomain-needed\nbogus-priv\n"
		    "dhcp-range=set:pmoves-mesh,10.42.0.128,10.42.0.254,255.255.255.0,12h\n"
		    "dhcp-option=tag:pmoves-mesh,option:router,10.42.0.1\n"
		    "dhcp-option=tag:pmoves-mesh,option:dns-server,10.42.0.1\n"
		    "dhcp-authoritative\n",
		"defaults: dnsmasq on bat0 only, the upper half of the /24, router and DNS the gateway, tagged");
	struct stat st = t_stat(root, NFT);
	tap_is_int(st.st_mode & 07777, 0644, "defaults: files are 0644");
	real_checks(root, "defaults");
	char *c = calls_of(root);
	char *want = t_strf("systemctl --root=%s enable pmoves-mesh-gateway.service dnsmasq.service\n", root);
	tap_contains(c, want, "defaults: the unit and dnsmasq enabled in the tree (--root)");
	tap_ok(!strstr(c, "sysctl") && !strstr(c, "\nnft ") && strncmp(c, "nft ", 4) && !strstr(c, "restart"),
	       "defaults: nothing run on the build host (no sysctl, nft, restart)");
	tap_ok(access("/etc/pmoves/mesh-gateway.nft", F_OK) != 0 || t_exists(root, NFT), "defaults: written under --root");
	free(c), free(want);
	t_result_free(&r);

	/* Again: the state says done; without the state, check finds it all there. */
	char *etc = t_strf("%s/etc", root);
	char *before = t_tree_digest(etc, true);
	forget_state(root);
	clear_calls(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=skipped already done", "without the state: check finds it done");
	char *after = t_tree_digest(etc, true);
	tap_is_str(after, before, "again: /etc is unchanged (same files, inodes and times)");
	c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "again: nothing enabled again");
	free(c), free(before), free(after), free(etc);
	t_result_free(&r);

	/* DHCP turned off: our dnsmasq file goes, dnsmasq is not enabled for us. */
	config(root, MESH_SERVER, "{\"dhcp\": {\"enabled\": false}}");
	clear_calls(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=ok mesh 10.42.0.0/24 masqueraded out of any interface but bat0 and tailscale0 "
			    "(the default route's), forwarding on; no DHCP (static addresses)",
		     "DHCP off: said so");
	tap_ok(!t_exists(root, DNSMASQ) && t_exists(root, NFT), "DHCP off: our dnsmasq file removed, the ruleset stays");
	c = calls_of(root);
	want = t_strf("systemctl --root=%s enable pmoves-mesh-gateway.service\n", root);
	tap_contains(c, want, "DHCP off: only the unit enabled");
	free(c), free(want);
	t_result_free(&r);
	forget_state(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=skipped already done", "DHCP off, again: already done");
	t_result_free(&r);

	/* And on again: a stale state is not enough, the file must be there. */
	config(root, MESH_SERVER, "{}");
	forget_state(root);
	r = t_run(root, NULL);
	tap_ok(strstr(r.out, "step=mesh-gateway state=ok") && t_exists(root, DNSMASQ), "DHCP on again: applied, dnsmasq file back");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_uplink_name(void)
{
	char *root = node("\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"172.20.11.254/22\", \"gateway\": \"server\"}",
			  "{\"uplink\": {\"name\": \"wwan0\"}, \"dhcp\": {\"range_start\": \"172.20.8.10\", \"range_end\": \"172.20.9.200\","
			  " \"lease_time\": 7200}, \"dns\": {\"upstream\": [\"9.9.9.9\"], \"domain\": \"mesh\"}}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=ok mesh 172.20.8.0/22 masqueraded out of 'wwan0', forwarding on; DHCP "
			    "172.20.8.10-172.20.9.200 lease 7200 on bat0 (router 172.20.11.254)",
		     "uplink by name: said so");
	char *w = nft_want("oifname \"wwan0\"", "172.20.8.0/22");
	file_is(root, NFT, w, "uplink by name: the ruleset names it");
	free(w);
	file_is(root, DNSMASQ,
		HDR "# DHCP and DNS for the mesh on 'bat0' only.\n"
		    "interface=bat0\nbind-dynamic\ndomain-needed\nbogus-priv\n"
		    "no-resolv\nserver=9.9.9.9\n"
		    "domain=mesh\nlocal=/mesh/\nexpand-hosts\n"
		    "dhcp-range=set:pmoves-mesh,172.20.8.10,172.20.9.200,255.255.252.0,7200\n"
		    "dhcp-option=tag:pmoves-mesh,option:router,172.20.11.254\n"
		    "dhcp-option=tag:pmoves-mesh,option:dns-server,172.20.11.254\n"
		    "dhcp-authoritative\n",
		"uplink by name: range, lease in seconds, upstream server, local domain");
	real_checks(root, "uplink by name");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_uplink_mac(void)
{
	char *root = node(MESH_SERVER, "{\"uplink\": {\"mac\": \"DC:A6:32:00:00:07\"}}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=pending no network interface has MAC 'dc:a6:32:00:00:07' (the uplink): trying again on a later run",
		     "uplink by MAC, not there: pending");
	tap_ok(!t_exists(root, NFT), "uplink by MAC, not there: nothing written");
	t_result_free(&r);
	t_write(root, "sys/class/net/eth0/address", "dc:a6:32:00:00:01\n");
	t_write(root, "sys/class/net/wlan1/address", "dc:a6:32:00:00:07\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=ok mesh 10.42.0.0/24 masqueraded out of 'wlan1' (dc:a6:32:00:00:07), forwarding on",
		     "uplink by MAC: found as wlan1");
	char *w = nft_want("oifname \"wlan1\"", "10.42.0.0/24");
	file_is(root, NFT, w, "uplink by MAC: the ruleset names the interface found");
	free(w);
	t_result_free(&r);
	/* bat0's own MAC (bat0 copies its first hard interface's): not an uplink. */
	t_write(root, "sys/class/net/bat0/address", "dc:a6:32:00:00:09\n");
	config(root, MESH_SERVER, "{\"uplink\": {\"mac\": \"dc:a6:32:00:00:09\"}}");
	forget_state(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh-gateway state=failed the uplink's MAC 'dc:a6:32:00:00:09' is bat0's: the uplink is another interface",
		     "uplink by MAC that is bat0's: refused");
	t_result_free(&r);
	t_cleanup(root);
}

/* A live machine (PMOVES_FIRSTBOOT_LIVE=1): a stand-in runner in front of the recording one
 * turns on the fixture's ip_forward for sysctl and answers `nft list table`. */
static void test_live(void)
{
	char *root = node(MESH_SERVER, "{}");
	t_write(root, "proc/sys/net/ipv4/ip_forward", "0\n");
	char *rec = t_beside(root, "stand-in"), *rec2 = t_beside(root, "stand-in-rec");
	if (rename(rec, rec2) < 0)
		abort();
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in for sysctl and nft on the fixture machine; records through %s\n"
			      "%s \"$@\"\n"
			      "case \"$*\" in\n"
			      "'sysctl -q -p '*) echo 1 > %s/proc/sys/net/ipv4/ip_forward;;\n"
			      "'systemctl is-active '*) echo active;;\n"
			      "esac\nexit 0\n",
			      rec2, rec2, root);
	if (write_file_atomic(rec, script, strlen(script), 0755) < 0)
		abort();
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "live: exit 0");
	tap_contains(r.out, "step=mesh-gateway state=ok mesh 10.42.0.0/24 masqueraded out of any interface but bat0 and tailscale0 (the "
			    "default route's), forwarding on; DHCP 10.42.0.128-10.42.0.254 lease 12h on bat0 (router 10.42.0.1)\n",
		     "live: ok (verified: forwarding on, table loaded)");
	char *c = calls_of(root);
	tap_contains(c,
		     "systemctl --quiet enable pmoves-mesh-gateway.service dnsmasq.service\n"
		     "sysctl -q -p /etc/sysctl.d/90-pmoves-mesh-gateway.conf\n"
		     "nft -f /etc/pmoves/mesh-gateway.nft\n"
		     "systemctl --no-block restart dnsmasq.service\n"
		     "nft list table inet pmoves_mesh_gateway\n",
		     "live: enable, forwarding, the table loaded, dnsmasq restarted, verified");
	if (!tap_ok(!strstr(c, "flush") && !strstr(c, "nftables.service\n"), "live: nothing flushed, nftables.service not touched"))
		tap_diag("calls: %s", c);
	free(c);
	t_result_free(&r);

	forget_state(root);
	clear_calls(root);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=mesh-gateway state=skipped already done", "live again: already done");
	c = calls_of(root);
	tap_ok(!strstr(c, "nft -f") && !strstr(c, " enable "), "live again: nothing loaded or enabled");
	free(c);
	t_result_free(&r);

	/* DHCP turned off on the running machine: a running dnsmasq forgets bat0. */
	config(root, MESH_SERVER, "{\"dhcp\": {\"enabled\": false}}");
	forget_state(root);
	clear_calls(root);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	c = calls_of(root);
	tap_ok(strstr(r.out, "step=mesh-gateway state=ok") && strstr(c, "systemctl --no-block try-restart dnsmasq.service\n") &&
		       !t_exists(root, DNSMASQ),
	       "live, DHCP off: our file removed, dnsmasq try-restarted");
	free(c);
	t_result_free(&r);
	free(script), free(rec), free(rec2);
	t_cleanup(root);
}

static void test_dry_run(void)
{
	char *root = node(MESH_SERVER, "{}");
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	struct t_result r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, false);
	tap_is_int(r.status, 0, "dry run: exit 0");
	tap_is_str(after, before, "dry run: the tree is unchanged");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/pmoves/mesh-gateway.nft (mode 0644, ", "dry run: the ruleset");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/dnsmasq.d/pmoves-mesh-gateway.conf (mode 0644, ", "dry run: dnsmasq");
	char *run = t_strf("pmoves-firstboot: would run systemctl --root=%s enable pmoves-mesh-gateway.service dnsmasq.service\n", root);
	tap_contains(r.out, run, "dry run: the enable command");
	free(run), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
}

/* Configs that make no gateway node: the step fails, says why, writes nothing. */
static void test_refused(void)
{
	static const struct {
		const char *mesh, *mgw, *msg;
	} bad[] = {
		{ "", "{}", "step=mesh-gateway state=failed no 'mesh' section: the mesh gateway routes for bat0, which the mesh step makes from it" },
		{ "\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/24\"}", "{}",
		  "step=mesh-gateway state=failed the mesh's gateway mode is 'client': the gateway node needs \"gateway\": \"server\" in 'mesh'" },
		{ "\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"off\"}", "{}",
		  "step=mesh-gateway state=failed the mesh's gateway mode is 'off'" },
		{ "\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"dhcp\", \"gateway\": \"server\"}", "{}",
		  "step=mesh-gateway state=failed bat0's address ('mesh.address') is 'dhcp': the gateway node needs a static one" },
		{ MESH_SERVER, "{\"dhcp\": {\"range_start\": \"10.42.1.10\", \"range_end\": \"10.42.1.20\"}}",
		  "step=mesh-gateway state=failed bad DHCP range for the mesh 10.42.0.0/24 (bat0 10.42.0.1/24): 10.42.1.10 is outside the LAN's hosts (10.42.0.0/24)" },
		{ MESH_SERVER, "{\"dhcp\": {\"range_start\": \"10.42.0.1\", \"range_end\": \"10.42.0.50\"}}",
		  "step=mesh-gateway state=failed bad DHCP range for the mesh 10.42.0.0/24 (bat0 10.42.0.1/24): the range holds the gateway's own address 10.42.0.1" },
		{ MESH_SERVER, "{\"dhcp\": {\"range_start\": \"10.42.0.100\"}}",
		  "bad DHCP range for the mesh 10.42.0.0/24 (bat0 10.42.0.1/24): give both 'range_start' and 'range_end', or neither" },
		{ "\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.200\", \"gateway\": \"server\"}",
		  "{\"dhcp\": {\"range_start\": \"10.42.0.150\", \"range_end\": \"10.42.0.250\"}}",
		  "bad DHCP range for the mesh 10.42.0.0/24 (bat0 10.42.0.200/24): the range holds the gateway's own address 10.42.0.200" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *root = node(bad[i].mesh, bad[i].mgw);
		struct t_result r = t_run(root, NULL);
		tap_contains(r.out, bad[i].msg, "refused: %s", strstr(bad[i].msg, "failed") ? strstr(bad[i].msg, "failed") + 7 : bad[i].msg);
		tap_ok(r.status != 0 && !t_exists(root, NFT) && !t_exists(root, DNSMASQ), "refused: the run fails (exit %d), nothing written",
		       r.status);
		t_result_free(&r);
		t_cleanup(root);
	}
	/* A mesh address without a prefix is a /24, as the mesh step takes it. */
	char *root = node("\"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.129\", \"gateway\": \"server\"}", "{}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "mesh 10.42.0.0/24 masqueraded out of any interface but bat0 and tailscale0 (the default route's), forwarding "
			    "on; DHCP 10.42.0.1-10.42.0.127 lease 12h on bat0 (router 10.42.0.129)",
		     "bat0 10.42.0.129 without prefix: a /24, the range the lower half");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_schema(void)
{
	char *root = t_tree();
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"uplink\": {\"name\": \"eth0\", \"mac\": \"52:54:00:00:00:01\"}}", ".mesh_gateway.uplink: 'name' and 'mac' are both given: one only" },
		{ "{\"uplink\": {\"name\": \"bat0\"}}", ".mesh_gateway.uplink.name: 'bat0' is not the uplink's name" },
		{ "{\"uplink\": {\"name\": \"tailscale0\"}}", "'tailscale0' is not the uplink's name" },
		{ "{\"uplink\": {\"name\": \"eth 0\"}}", ".mesh_gateway.uplink.name: 'eth 0' is not a network interface name" },
		{ "{\"uplink\": {\"mac\": \"01:00:5e:00:00:01\"}}", ".mesh_gateway.uplink.mac: '01:00:5e:00:00:01' is not a unicast MAC address" },
		{ "{\"uplink\": {\"address\": \"10.0.0.1/24\"}}", ".mesh_gateway.uplink.address: unknown key" },
		{ "{\"dhcp\": {\"enabled\": false, \"range_start\": \"10.42.0.10\"}}", ".mesh_gateway.dhcp: 'range_start' is given with DHCP off" },
		{ "{\"dhcp\": {\"enabled\": \"no\"}}", ".mesh_gateway.dhcp.enabled: must be" },
		{ "{\"dhcp\": {\"range_start\": \"10.42.0.300\"}}", ".mesh_gateway.dhcp.range_start: '10.42.0.300' is not an IPv4 address" },
		{ "{\"dhcp\": {\"lease_time\": 30}}", ".mesh_gateway.dhcp.lease_time: the lease time must be from 2 minutes to a year" },
		{ "{\"dns\": {\"upstream\": [\"resolver\"]}}", ".mesh_gateway.dns.upstream[0]: 'resolver' is not an IPv4 or IPv6 address" },
		{ "{\"nat\": false}", ".mesh_gateway.nat: unknown key" },
		{ "[]", ".mesh_gateway: must be an object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *cfg = t_strf("{\"mesh_gateway\": %s}", bad[i].cfg);
		t_write(root, "etc/pmoves/firstboot.json", cfg);
		char *p = t_strf("%s/etc/pmoves/firstboot.json", root);
		char *argv[] = { "pmoves-firstboot", "validate", p, NULL };
		struct t_result r = t_fb(root, NULL, argv);
		bool good = r.status == 2 && r.err && strstr(r.err, bad[i].msg);
		tap_ok(good, "schema: %s refused: %s", bad[i].cfg, bad[i].msg);
		if (!good)
			tap_diag("status %d, stderr: %s", r.status, r.err ? r.err : "");
		t_result_free(&r);
		free(p), free(cfg);
	}
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	char *path = NULL;
	have_nft = find_program("nft", &path) == 0;
	free(path);
	path = NULL;
	have_dnsmasq = find_program("dnsmasq", &path) == 0;
	free(path);
	test_defaults();
	test_uplink_name();
	test_uplink_mac();
	test_live();
	test_dry_run();
	test_refused();
	test_schema();
	return tap_done();
}
