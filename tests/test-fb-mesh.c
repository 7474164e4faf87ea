/* The mesh step on fixture trees: the exact systemd-networkd files, Wi-Fi units and module list
 * written for Ethernet, 802.11s and IBSS interfaces named by name or MAC, gateway server and
 * client, the commands run (through the recording stand-in runner), a Wi-Fi radio named by a
 * MAC that is not there yet (pending), bad configs refused by the schema, dry run, and a
 * second run that changes nothing. tests/e2e/mesh.t runs it for real in two QEMU guests. */
#include "test-fb-lib.h"

#include <json-c/json.h>

#define OFF_OTHERS "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define HDR "# Written by pmoves-firstboot (mesh step): change its config, not this file.\n"

static char *node(const char *mesh)
{
	char *root = t_tree();
	char *cfg = t_strf("{" OFF_OTHERS ", \"mesh\": %s}", mesh);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	free(cfg);
	return root;
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

static void file_is(const char *root, const char *rel, const char *want, const char *what)
{
	char *got = t_read(root, rel);
	tap_is_str(got, want, "%s: %s", what, rel);
	free(got);
}

/* Bridge loop avoidance off: with it on, batman-adv drops every broadcast (ARP too) for 20-30 s
 * after bat0 comes up (tests/e2e/mesh.t saw it as 4 rounds of unanswered pings). */
static char *netdev(const char *gw, const char *algo)
{
	return t_strf(HDR "[NetDev]\nName=bat0\nKind=batadv\nDescription=pmoves mesh (batman-adv)\n\n"
			  "[BatmanAdvanced]\nGatewayMode=%s\nRoutingAlgorithm=%s\n"
			  "# bat0 is bridged into no LAN: bridge loop avoidance would only drop every\n"
			  "# broadcast, ARP too, for 20-30 s after bat0 comes up\n"
			  "BridgeLoopAvoidance=no\n",
		      gw, algo);
}

static char *bat_network(const char *addr, unsigned mtu)
{
	return t_strf(HDR "[Match]\nName=bat0\n\n[Link]\nMTUBytes=%u\n\n"
			  "[Network]\nAddress=%s\nConfigureWithoutCarrier=yes\nIPv6AcceptRA=no\n",
		      mtu, addr);
}

static char *hard(const char *type, const char *match, bool wlan, unsigned mtu)
{
	return t_strf(HDR "# batman-adv hard interface of bat0 (%s).\n[Match]\n%s\n%s\n"
			  "[Link]\nMTUBytes=%u\nRequiredForOnline=no\n\n"
			  "[Network]\nBatmanAdvanced=bat0\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nLLDP=no\nEmitLLDP=no\n",
		      type, match, wlan ? "Type=wlan\n" : "", mtu);
}

#define MODULES HDR "batman-adv\n"

static void test_ethernet_server(void)
{
	char *root = node("{\"interfaces\": [{\"mac\": \"52:54:00:2B:67:01\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"server\"}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "ethernet server: exit 0");
	tap_contains(r.out, "pmoves-firstboot: step=mesh state=ok bat0 10.42.0.1/24, gateway server, batman-iv, MTU 1500 over 52:54:00:2b:67:01 ethernet MTU 1532; comes up on the next boot\n",
		     "ethernet server: the console line");
	char *want = netdev("server", "batman-iv");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev", want, "ethernet server: bat0 with gateway mode server");
	free(want);
	want = bat_network("10.42.0.1/24", 1500);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.network", want, "ethernet server: bat0's address");
	free(want);
	want = hard("ethernet", "MACAddress=52:54:00:2b:67:01", false, 1532);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-if-5254002b6701.network", want,
		"ethernet server: the NIC matched by MAC (lower case), MTU 1500+32");
	free(want);
	file_is(root, "etc/modules-load.d/pmoves-mesh.conf", MODULES, "ethernet server: batman-adv at boot");
	struct stat st = t_stat(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev");
	tap_is_int(st.st_mode & 07777, 0644, "ethernet server: files are 0644");
	char *c = calls_of(root);
	char *want_calls = t_strf("systemctl --root=%s enable systemd-networkd.service\n", root);
	tap_contains(c, want_calls, "ethernet server: networkd enabled in the tree");
	tap_ok(!strstr(c, "modprobe") && !strstr(c, "networkctl") && !strstr(c, "batctl") && !strstr(c, "start"),
	       "ethernet server: nothing run on the build host (no modprobe, networkctl, batctl or start)");
	tap_ok(!t_exists(root, "etc/systemd/system/pmoves-mesh-eth0.service"), "ethernet server: no Wi-Fi unit");
	free(c), free(want_calls);
	t_result_free(&r);

	/* Idempotence: the state says done; and without the state, check finds it all there. */
	char *etc = t_strf("%s/etc", root);
	char *before = t_tree_digest(etc, true);
	clear_calls(root);
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "again: exit 0");
	c = calls_of(root);
	tap_ok(!strstr(c, "enable"), "again: nothing enabled again");
	free(c);
	t_result_free(&r);
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=skipped already done", "without the state: check finds the mesh configured");
	char *after = t_tree_digest(etc, true);
	tap_is_str(after, before, "again: /etc is unchanged (same files, inodes and times)");
	c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "again: no systemctl enable");
	free(c), free(before), free(after), free(etc);
	t_result_free(&r);

	/* A changed config: gateway client, the files follow. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"mac\": \"52:54:00:2b:67:01\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"client\"}}");
	r = t_run(root, NULL);
	want = netdev("client", "batman-iv");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev", want, "changed to client: the netdev follows");
	free(want);
	t_result_free(&r);
	t_cleanup(root);
}

/* A stand-in wpa_supplicant in the tree: the step only checks that it is there. */
static void supplicant_in(const char *root, const char *rel)
{
	t_write(root, rel, "#!/bin/sh\n# stand-in wpa_supplicant (test-fb-mesh): never run\nexit 1\n");
	char *p = t_strf("%s/%s", root, rel);
	if (chmod(p, 0755) < 0)
		abort();
	free(p);
}

static void test_wifi_client(void)
{
	char *root = node("{\"interfaces\": ["
			  "{\"name\": \"enp1s0\", \"type\": \"ethernet\"},"
			  "{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 1, \"width\": \"HT20\", \"open\": true},"
			  "{\"name\": \"wlan1\", \"type\": \"80211s\", \"mesh_id\": \"halow\", \"frequency\": 916, \"width\": \"2MHz\", \"mtu\": 1500, \"open\": true},"
			  "{\"name\": \"wl-a\", \"type\": \"ibss\", \"ssid\": \"x\", \"channel\": 36, \"open\": true}],"
			  "\"address\": \"10.42.0.7\", \"mtu\": 1400, \"routing_algorithm\": \"batman-v\", \"country\": \"DE\"}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "802.11s client: exit 0");
	char *want = netdev("client", "batman-v");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev", want, "802.11s client: gateway client by default, batman-v");
	free(want);
	want = bat_network("10.42.0.7/24", 1400);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.network", want, "802.11s client: /24 by default, bat0 MTU 1400");
	free(want);
	want = hard("ethernet", "Name=enp1s0", false, 1432);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-if-enp1s0.network", want, "802.11s client: ethernet by name, MTU 1400+32");
	free(want);
	want = hard("80211s", "Name=wlan0", true, 1432);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-if-wlan0.network", want, "802.11s client: the radio, Type=wlan");
	free(want);
	want = hard("80211s", "Name=wlan1", true, 1500);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-if-wlan1.network", want, "802.11s client: the HaLow radio's own MTU");
	free(want);
	file_is(root, "etc/systemd/system/pmoves-mesh-wlan0.service",
		HDR "[Unit]\n"
		    "Description=pmoves mesh: wlan0 joins the 802.11s mesh 'pmoves-mesh' on 2412 MHz, open\n"
		    "BindsTo=sys-subsystem-net-devices-wlan0.device\n"
		    "After=sys-subsystem-net-devices-wlan0.device\n"
		    "Before=network.target\n\n"
		    "[Service]\n"
		    "ExecStartPre=-iw dev wlan0 mesh leave\n"
		    "ExecStartPre=ip link set dev wlan0 down\n"
		    "ExecStartPre=iw dev wlan0 set type mp\n"
		    "ExecStartPre=ip link set dev wlan0 up\n"
		    "Type=oneshot\nRemainAfterExit=yes\n"
		    "ExecStart=iw reg set DE\n"
		    "ExecStart=iw dev wlan0 mesh join pmoves-mesh freq 2412 HT20\n"
		    "ExecStart=iw dev wlan0 set mesh_param mesh_fwding 0\n"
		    "ExecStop=-iw dev wlan0 mesh leave\n\n"
		    "[Install]\nWantedBy=sys-subsystem-net-devices-wlan0.device\n",
		"802.11s client, open: channel 1 is 2412 MHz, mesh point, country DE, HWMP forwarding off");
	tap_ok(!t_exists(root, "etc/wpa_supplicant"), "open radios: no wpa_supplicant config");
	char *u = t_read(root, "etc/systemd/system/pmoves-mesh-wlan1.service");
	tap_contains(u, "ExecStart=iw dev wlan1 mesh join halow freq 916 2MHz\n", "802.11s client: the HaLow join line");
	free(u);
	tap_ok(t_exists(root, "etc/systemd/system/pmoves-mesh-wl-a.service"), "802.11s client: a radio named with '-'");
	u = t_read(root, "etc/systemd/system/pmoves-mesh-wl-a.service");
	tap_contains(u, "\nBindsTo=sys-subsystem-net-devices-wl\\x2da.device\nAfter=sys-subsystem-net-devices-wl\\x2da.device\n",
		     "802.11s client: its device unit's name escapes '-' as systemd does");
	tap_contains(u, "ExecStartPre=iw dev wl-a set type ibss\n", "802.11s client: the command line has the plain name");
	free(u);
	char *c = calls_of(root);
	char *want_calls = t_strf("systemctl --root=%s enable systemd-networkd.service pmoves-mesh-wlan0.service pmoves-mesh-wlan1.service pmoves-mesh-wl-a.service\n", root);
	tap_contains(c, want_calls, "802.11s client: networkd and both radios' units enabled in one call");
	free(c), free(want_calls);
	t_result_free(&r);

	/* wlan1 and enp1s0 taken out of the config: their files go, wlan1's unit is disabled. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 1, \"width\": \"HT20\", \"open\": true}],"
		"\"address\": \"10.42.0.7\", \"mtu\": 1400, \"routing_algorithm\": \"batman-v\", \"country\": \"DE\"}}");
	clear_calls(root);
	char *before = t_tree_digest(root, true);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, true);
	tap_is_str(after, before, "interfaces removed, dry run: nothing changed");
	char *would = t_strf("pmoves-firstboot: would run systemctl --root=%s disable pmoves-mesh-wlan1.service\n"
			     "pmoves-firstboot: would remove /etc/systemd/system/pmoves-mesh-wlan1.service\n", root);
	tap_contains(r.out, "pmoves-firstboot: would remove /etc/systemd/network/60-pmoves-mesh-if-enp1s0.network\n",
		     "interfaces removed, dry run: the old .network file would go");
	tap_contains(r.out, would, "interfaces removed, dry run: the old unit would be disabled and go");
	free(before), free(after), free(would);
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok bat0 10.42.0.7/24, gateway client, batman-v, MTU 1400 over wlan0 80211s MTU 1432; removed the files of interfaces no longer configured;",
		     "interfaces removed: said so");
	tap_ok(!t_exists(root, "etc/systemd/network/60-pmoves-mesh-if-enp1s0.network") &&
		       !t_exists(root, "etc/systemd/system/pmoves-mesh-wl-a.service") &&
		       !t_exists(root, "etc/systemd/network/60-pmoves-mesh-if-wlan1.network") &&
		       !t_exists(root, "etc/systemd/system/pmoves-mesh-wlan1.service"),
	       "interfaces removed: their files are gone");
	tap_ok(t_exists(root, "etc/systemd/network/60-pmoves-mesh-if-wlan0.network") &&
		       t_exists(root, "etc/systemd/system/pmoves-mesh-wlan0.service") &&
		       t_exists(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev"),
	       "interfaces removed: the others stay");
	c = calls_of(root);
	want_calls = t_strf("systemctl --root=%s disable pmoves-mesh-wlan1.service\n", root);
	tap_contains(c, want_calls, "interfaces removed: wlan1's unit disabled");
	free(c), free(want_calls);
	t_result_free(&r);
	/* A file of ours left over makes check say "not done". */
	t_write(root, "etc/systemd/network/60-pmoves-mesh-if-eth7.network", "[Match]\nName=eth7\n");
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok", "a leftover file: check does not find the step done, apply runs");
	tap_ok(!t_exists(root, "etc/systemd/network/60-pmoves-mesh-if-eth7.network"), "a leftover file: removed");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_ibss_by_mac(void)
{
	char *root = node("{\"interfaces\": [{\"mac\": \"02:00:00:00:01:00\", \"type\": \"ibss\", \"ssid\": \"field\", \"channel\": 6, \"open\": true}],"
			  "\"address\": \"10.42.0.9/24\", \"gateway\": \"off\", \"country\": \"US\"}");
	/* The radio is not there yet: pending, nothing written. */
	t_write(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=pending no network interface has MAC '02:00:00:00:01:00' (the ibss radio): trying again on a later run",
		     "ibss by MAC, radio missing: pending with the reason");
	tap_ok(!t_exists(root, "etc/systemd/network"), "ibss by MAC, radio missing: nothing written");
	t_result_free(&r);
	/* The radio appears (as wlx... with an upper-case address file, say). */
	t_write(root, "sys/class/net/wlx020000000100/address", "02:00:00:00:01:00\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok bat0 10.42.0.9/24, gateway off,", "ibss by MAC: done on the next run");
	char *want = hard("ibss", "MACAddress=02:00:00:00:01:00", true, 1532);
	file_is(root, "etc/systemd/network/60-pmoves-mesh-if-020000000100.network", want, "ibss by MAC: matched by MAC");
	free(want);
	file_is(root, "etc/systemd/system/pmoves-mesh-wlx020000000100.service",
		HDR "[Unit]\n"
		    "Description=pmoves mesh: wlx020000000100 joins the IBSS 'field' on 2437 MHz, open\n"
		    "BindsTo=sys-subsystem-net-devices-wlx020000000100.device\n"
		    "After=sys-subsystem-net-devices-wlx020000000100.device\n"
		    "Before=network.target\n\n"
		    "[Service]\n"
		    "ExecStartPre=-iw dev wlx020000000100 ibss leave\n"
		    "ExecStartPre=ip link set dev wlx020000000100 down\n"
		    "ExecStartPre=iw dev wlx020000000100 set type ibss\n"
		    "ExecStartPre=ip link set dev wlx020000000100 up\n"
		    "Type=oneshot\nRemainAfterExit=yes\n"
		    "ExecStart=iw reg set US\n"
		    "ExecStart=iw dev wlx020000000100 ibss join field 2437 fixed-freq\n"
		    "ExecStop=-iw dev wlx020000000100 ibss leave\n\n"
		    "[Install]\nWantedBy=sys-subsystem-net-devices-wlx020000000100.device\n",
		"ibss by MAC: the unit uses the name found for the MAC, channel 6 is 2437 MHz");
	want = netdev("off", "batman-iv");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev", want, "ibss: gateway off");
	free(want);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_router(void)
{
	char *root = node("{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.5/24\", \"router\": \"10.42.0.1\"}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok bat0 10.42.0.5/24, default route via 10.42.0.1, gateway client,", "router: said so");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.network",
		HDR "[Match]\nName=bat0\n\n[Link]\nMTUBytes=1500\n\n"
		    "[Network]\nAddress=10.42.0.5/24\nGateway=10.42.0.1\nConfigureWithoutCarrier=yes\nIPv6AcceptRA=no\n",
		"router: bat0's default route through the gateway node");
	t_result_free(&r);
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.5/24\", \"router\": \"10.43.0.1\"}",
		  "step=mesh state=failed router '10.43.0.1' is not another address of bat0's subnet '10.42.0.5/24'" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.5/24\", \"router\": \"10.42.0.5\"}",
		  "step=mesh state=failed router '10.42.0.5' is not another address of bat0's subnet" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"server\", \"router\": \"10.42.0.2\"}",
		  "step=mesh state=failed 'router' is for the nodes without an uplink: this one is the gateway server" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *cfg = t_strf("{" OFF_OTHERS ", \"mesh\": %s}", bad[i].cfg);
		t_write(root, "etc/pmoves/firstboot.json", cfg);
		r = t_run(root, NULL);
		tap_contains(r.out, bad[i].msg, "router: %s", bad[i].msg + 23);
		tap_ok(r.status != 0, "router: a bad router fails the run (exit %d)", r.status);
		t_result_free(&r);
		free(cfg);
	}
	t_cleanup(root);
}

/* A field node whose bat0 address comes from the gateway node's DHCP server ("dhcp"):
 * networkd's DHCP client on bat0, the default route from the lease; refused on the server and
 * together with "router". */
static void test_dhcp(void)
{
	char *root = node("{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"dhcp\"}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "dhcp: exit 0");
	tap_contains(r.out, "step=mesh state=ok bat0 by DHCP, gateway client, batman-iv, MTU 1500 over eth1 ethernet MTU 1532",
		     "dhcp: said so");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.network",
		HDR "[Match]\nName=bat0\n\n[Link]\nMTUBytes=1500\n\n"
		    "[Network]\nDHCP=ipv4\nConfigureWithoutCarrier=yes\nIPv6AcceptRA=no\n",
		"dhcp: bat0 by networkd's DHCP client, no static address");
	char *nd = netdev("client", "batman-iv");
	file_is(root, "etc/systemd/network/60-pmoves-mesh-bat0.netdev", nd, "dhcp: gateway client (DHCP to the best gateway)");
	free(nd);
	t_result_free(&r);
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"dhcp\", \"gateway\": \"server\"}",
		  "step=mesh state=failed bat0's address is 'dhcp' on the gateway server: the server needs a static address" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"dhcp\", \"router\": \"10.42.0.1\"}",
		  "step=mesh state=failed 'router' is for a static bat0 address: with \"dhcp\" the default route comes from the gateway's DHCP server" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *cfg = t_strf("{" OFF_OTHERS ", \"mesh\": %s}", bad[i].cfg);
		t_write(root, "etc/pmoves/firstboot.json", cfg);
		r = t_run(root, NULL);
		tap_contains(r.out, bad[i].msg, "dhcp: %s", bad[i].msg + 23);
		tap_ok(r.status != 0, "dhcp: refused, the run fails (exit %d)", r.status);
		t_result_free(&r);
		free(cfg);
	}
	t_cleanup(root);
}

/* A live machine (PMOVES_FIRSTBOOT_LIVE=1) where networkd runs and bat0 exists already: a stand-in
 * runner in front of the recording one says networkd is active. networkd does not change an
 * existing netdev, so the gateway mode and bridge loop avoidance are set with batctl. */
static void test_live(void)
{
	char *root = node("{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/24\", \"gateway\": \"server\"}");
	t_write(root, "sys/class/net/bat0/address", "02:11:22:33:44:55\n");
	t_write(root, "sys/module/batman_adv/version", "2022.3\n");
	char *rec = t_beside(root, "stand-in"), *rec2 = t_beside(root, "stand-in-rec");
	if (rename(rec, rec2) < 0)
		abort();
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in for systemctl is-active on the fixture machine; records through %s\n"
			      "%s \"$@\"\n"
			      "case \"$*\" in 'systemctl is-active '*) echo active;; esac\n"
			      "exit 0\n",
			      rec2, rec2);
	if (write_file_atomic(rec, script, strlen(script), 0755) < 0)
		abort();
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "live: exit 0");
	tap_contains(r.out, "step=mesh state=ok bat0 10.42.0.1/24, gateway server, batman-iv, MTU 1500 over eth1 ethernet MTU 1532\n",
		     "live: ok, applied now (no 'next boot')");
	char *c = calls_of(root);
	tap_contains(c,
		     "modprobe batman-adv\n"
		     "systemctl is-active systemd-networkd.service\n"
		     "networkctl reload\n"
		     "batctl meshif bat0 gw_mode server\n"
		     "batctl meshif bat0 bridge_loop_avoidance 0\n",
		     "live: networkd reloaded; the existing bat0 gets gateway mode server and bridge loop avoidance off");
	free(c), free(script), free(rec), free(rec2);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_dry_run(void)
{
	char *root = node("{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.2/24\"}");
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	struct t_result r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, false);
	tap_is_int(r.status, 0, "dry run: exit 0");
	tap_is_str(after, before, "dry run: the tree is unchanged");
	tap_contains(r.out, "pmoves-firstboot: plan step=mesh run\n", "dry run: the step would run");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/systemd/network/60-pmoves-mesh-bat0.netdev (mode 0644, ", "dry run: the netdev");
	tap_contains(r.out, "  | GatewayMode=client\n", "dry run: its content");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/systemd/network/60-pmoves-mesh-if-eth1.network (mode 0644, ", "dry run: the hard interface");
	tap_contains(r.out, "  | MTUBytes=1532\n", "dry run: its MTU");
	char *run = t_strf("pmoves-firstboot: would run systemctl --root=%s enable systemd-networkd.service\n", root);
	tap_contains(r.out, run, "dry run: the enable command");
	tap_contains(r.out, "pmoves-firstboot: plan step=mesh result would end ok", "dry run: and the result");
	char *c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "dry run: no command run but queries");
	free(c), free(run), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
}

#define SAE_KEY "correct horse battery staple"
#define SAE_KEY_HEX "636f727265637420686f727365206261747465727920737461706c65"
/* IEEE 802.11i-2004 H.4.1: passphrase "password", SSID "IEEE". */
#define PSK_KEY "password"
#define PSK_IEEE "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"

/* The key is in no file but the 0600 supplicant configs, in no output, status or state. */
static void no_key_in(const char *root, const struct t_result *r, const char *what)
{
	static const char *const files[] = { "var/lib/pmoves/firstboot/status.json", "var/lib/pmoves/firstboot/state.json",
					     "etc/systemd/system/pmoves-mesh-wlan0.service", "etc/systemd/system/pmoves-mesh-wl-a.service" };
	char *c = calls_of(root);
	tap_ok(r->out && !strstr(r->out, SAE_KEY) && !strstr(r->out, SAE_KEY_HEX) && !strstr(r->out, PSK_IEEE) &&
		       (!r->err || (!strstr(r->err, SAE_KEY) && !strstr(r->err, SAE_KEY_HEX))),
	       "%s: the key is not on the console (stdout, stderr)", what);
	tap_ok(!strstr(c, SAE_KEY) && !strstr(c, SAE_KEY_HEX) && !strstr(c, PSK_IEEE), "%s: nor in any command's argv", what);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *t = t_read(root, files[i]);
		tap_ok(t && !strstr(t, SAE_KEY) && !strstr(t, SAE_KEY_HEX) && !strstr(t, PSK_IEEE) && !strstr(t, "\"" PSK_KEY "\""),
		       "%s: the key is not in %s", what, files[i]);
		free(t);
	}
	free(c);
}

static void test_wifi_keys(void)
{
	char *root = node("{\"interfaces\": ["
			  "{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 6, \"width\": \"HT20\", \"key\": \"" SAE_KEY "\"},"
			  "{\"name\": \"wl-a\", \"type\": \"ibss\", \"ssid\": \"IEEE\", \"frequency\": 2412, \"key\": \"" PSK_KEY "\", \"open\": false,"
			  " \"supplicant\": \"/opt/vendor/sbin/wpa_supplicant_s1g\"}],"
			  "\"address\": \"10.42.0.7\", \"country\": \"NZ\"}");
	supplicant_in(root, "usr/sbin/wpa_supplicant");
	supplicant_in(root, "opt/vendor/sbin/wpa_supplicant_s1g");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "keys: exit 0");
	tap_contains(r.out, "step=mesh state=ok bat0 10.42.0.7/24, gateway client, batman-iv, MTU 1500 over wlan0 80211s MTU 1532, wl-a ibss MTU 1532;",
		     "keys: the step is ok");
	file_is(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf",
		HDR "# wlan0 in the 802.11s mesh 'pmoves-mesh' with SAE; read by pmoves-mesh-wlan0.service.\n"
		    "ctrl_interface=/run/wpa_supplicant\n"
		    "country=NZ\n"
		    "network={\n\tssid=\"pmoves-mesh\"\n\tmode=5\n\tfrequency=2437\n\tdisable_ht40=1\n"
		    "\tkey_mgmt=SAE\n\tsae_password=" SAE_KEY_HEX "\n\tieee80211w=2\n\tmesh_fwding=0\n}\n",
		"keys: 802.11s with SAE, the password hex-encoded, PMF required, HWMP forwarding off, HT20");
	file_is(root, "etc/wpa_supplicant/pmoves-mesh-wl-a.conf",
		HDR "# wl-a in the IBSS 'IEEE' with IBSS-RSN (WPA2-PSK, CCMP); read by pmoves-mesh-wl-a.service.\n"
		    "ctrl_interface=/run/wpa_supplicant\n"
		    "ap_scan=2\n"
		    "country=NZ\n"
		    "network={\n\tssid=\"IEEE\"\n\tmode=1\n\tfrequency=2412\n\tfixed_freq=1\n"
		    "\tproto=RSN\n\tkey_mgmt=WPA-PSK\n\tpairwise=CCMP\n\tgroup=CCMP\n\tpsk=" PSK_IEEE "\n}\n",
		"keys: IBSS-RSN, the PSK derived from the passphrase and the SSID (IEEE 802.11i's test vector)");
	for (const char *const *f = (const char *const[]){ "etc/wpa_supplicant/pmoves-mesh-wlan0.conf", "etc/wpa_supplicant/pmoves-mesh-wl-a.conf", NULL };
	     *f; f++) {
		struct stat st = t_stat(root, *f);
		tap_ok((st.st_mode & 07777) == 0600 && st.st_uid == 0 && st.st_gid == 0, "keys: %s is 0600 root:root (mode %04o, %u:%u)", *f,
		       (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
	}
	file_is(root, "etc/systemd/system/pmoves-mesh-wlan0.service",
		HDR "[Unit]\n"
		    "Description=pmoves mesh: wlan0 joins the 802.11s mesh 'pmoves-mesh' on 2437 MHz with SAE\n"
		    "BindsTo=sys-subsystem-net-devices-wlan0.device\n"
		    "After=sys-subsystem-net-devices-wlan0.device\n"
		    "Before=network.target\n\n"
		    "[Service]\n"
		    "ExecStartPre=-iw dev wlan0 mesh leave\n"
		    "ExecStartPre=ip link set dev wlan0 down\n"
		    "ExecStartPre=iw dev wlan0 set type mp\n"
		    "ExecStartPre=ip link set dev wlan0 up\n"
		    "ExecStart=/usr/sbin/wpa_supplicant -D nl80211 -i wlan0 -c /etc/wpa_supplicant/pmoves-mesh-wlan0.conf\n"
		    "Restart=on-failure\nRestartSec=5\n\n"
		    "[Install]\nWantedBy=sys-subsystem-net-devices-wlan0.device\n",
		"keys: the unit runs Debian's wpa_supplicant with our config");
	char *u = t_read(root, "etc/systemd/system/pmoves-mesh-wl-a.service");
	tap_contains(u, "\nExecStartPre=iw dev wl-a set type ibss\n"
			"ExecStartPre=ip link set dev wl-a up\n"
			"ExecStart=/opt/vendor/sbin/wpa_supplicant_s1g -D nl80211 -i wl-a -c /etc/wpa_supplicant/pmoves-mesh-wl-a.conf\n",
		     "keys: the IBSS unit runs the configured supplicant");
	free(u);
	no_key_in(root, &r, "keys");
	t_result_free(&r);

	/* Dry run: the supplicant configs' content is not shown. */
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	char *conf = t_strf("%s/etc/wpa_supplicant", root);
	rm_rf(conf);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	r = t_fb(root, NULL, argv);
	tap_contains(r.out, "would write /etc/wpa_supplicant/pmoves-mesh-wlan0.conf (mode 0600, ", "keys, dry run: the config would be written 0600");
	tap_contains(r.out, "content not shown (readable by its owner only)", "keys, dry run: its content is not shown");
	tap_ok(!strstr(r.out, SAE_KEY_HEX) && !strstr(r.out, PSK_IEEE) && !strstr(r.out, SAE_KEY), "keys, dry run: no key, hex or PSK in the plan");
	t_result_free(&r);
	r = t_run(root, NULL);
	tap_ok(t_exists(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf"), "keys: written again after the dry run");
	t_result_free(&r);

	/* wl-a taken out: its config (which holds its PSK) goes with its unit. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 6,"
		" \"width\": \"HT20\", \"key\": \"" SAE_KEY "\"}], \"address\": \"10.42.0.7\", \"country\": \"NZ\"}}");
	r = t_run(root, NULL);
	tap_ok(!t_exists(root, "etc/wpa_supplicant/pmoves-mesh-wl-a.conf") && !t_exists(root, "etc/systemd/system/pmoves-mesh-wl-a.service") &&
		       t_exists(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf"),
	       "keys: a radio taken out: its supplicant config and unit are removed, the other stays");
	t_result_free(&r);
	/* A changed key is a changed file: check does not find the step done. */
	rm_rf(state);
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 6,"
		" \"width\": \"HT20\", \"key\": \"another passphrase\"}], \"address\": \"10.42.0.7\", \"country\": \"NZ\"}}");
	r = t_run(root, NULL);
	u = t_read(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf");
	tap_ok(strstr(r.out, "step=mesh state=ok") && u && !strstr(u, SAE_KEY_HEX), "keys: a new key is written");
	free(u), free(state), free(conf);
	t_result_free(&r);
	t_cleanup(root);
}

#define KEYLESS "{\"interfaces\": [{\"name\": \"eth1\"}, {\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"pmoves-mesh\", \"channel\": 6%s}]," \
		"\"address\": \"10.42.0.7\", \"country\": \"NZ\"%s}"

/* A radio without its key: secrets are scrubbed from device.json after an ok run, and a
 * profile's firstboot section has the mesh but not the cards' keys. Neither is refused by the
 * schema; the step keeps the config an earlier run wrote, or fails without writing anything. */
static void test_key_absent(void)
{
	char *with_key = t_strf(KEYLESS, ", \"key\": \"" SAE_KEY "\"", "");
	char *root = node(with_key);
	supplicant_in(root, "usr/sbin/wpa_supplicant");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok ", "key absent: the first run, with the key, is ok");
	t_result_free(&r);
	char *conf = t_read(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf");
	char *unit = t_read(root, "etc/systemd/system/pmoves-mesh-wlan0.service");
	tap_ok(conf && strstr(conf, SAE_KEY_HEX), "key absent: the first run wrote the supplicant config with the key");

	/* The key scrubbed (as from device.json after that run); another step still to do. */
	char *keyless = t_strf(KEYLESS, "", "");
	char *cfg = t_strf("{" OFF_OTHERS ", \"mesh\": %s}", keyless);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	char *p = t_strf("%s/etc/pmoves/firstboot.json", root);
	char *argv[] = { "pmoves-firstboot", "validate", p, NULL };
	r = t_fb(root, NULL, argv);
	tap_is_int(r.status, 0, "key absent: the scrubbed config is valid");
	if (r.status)
		tap_diag("stderr: %s", r.err ? r.err : "");
	t_result_free(&r);
	char *etc = t_strf("%s/etc", root);
	char *before = t_tree_digest(etc, true);
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "key absent: a later run with the scrubbed config exits 0 (not refused)");
	t_result_free(&r);
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=skipped already done", "key absent, without the state: check finds the mesh configured");
	char *after = t_tree_digest(etc, true);
	tap_is_str(after, before, "key absent: /etc is unchanged (the supplicant config kept as it was)");
	t_result_free(&r);
	free(after);

	/* Another change (bat0's MTU) is applied; the radio's config stays as the key made it. */
	free(cfg);
	char *mtu = t_strf(KEYLESS, "", ", \"mtu\": 1400");
	cfg = t_strf("{" OFF_OTHERS ", \"mesh\": %s}", mtu);
	t_write(root, "etc/pmoves/firstboot.json", cfg);
	rm_rf(state);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=ok ", "key absent, bat0's MTU changed: the step is ok");
	char *got = t_read(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf");
	tap_is_str(got, conf, "key absent, MTU changed: the supplicant config is kept as it was (the key too)");
	free(got);
	struct stat st = t_stat(root, "etc/wpa_supplicant/pmoves-mesh-wlan0.conf");
	tap_is_int(st.st_mode & 07777, 0600, "key absent, MTU changed: the config stays 0600");
	got = t_read(root, "etc/systemd/system/pmoves-mesh-wlan0.service");
	tap_is_str(got, unit, "key absent, MTU changed: the unit still runs wpa_supplicant with that config");
	free(got);
	t_result_free(&r);
	t_cleanup(root);

	/* Never given: failed for the mesh, the radio named, nothing written, no radio up open. */
	root = node(keyless);
	supplicant_in(root, "usr/sbin/wpa_supplicant");
	r = t_run(root, NULL);
	tap_is_int(r.status, 1, "key never given: not refused as invalid, the run ends degraded (exit 1, not 2)");
	tap_contains(r.out, "step=mesh state=failed radio 'wlan0' has no 'key' (the mesh's WPA passphrase) and no supplicant config from an "
			    "earlier run: give its 'key' in device.json, or set \"open\": true for an unencrypted radio\n",
		     "key never given: the step fails and says what is missing");
	tap_ok(!t_exists(root, "etc/systemd/network") && !t_exists(root, "etc/systemd/system/pmoves-mesh-wlan0.service") &&
		       !t_exists(root, "etc/wpa_supplicant") && !t_exists(root, "etc/modules-load.d/pmoves-mesh.conf"),
	       "key never given: nothing written");
	char *c = calls_of(root);
	tap_ok(!strstr(c, "pmoves-mesh") && !strstr(c, "systemd-networkd") && !strstr(c, "iw "), "key never given: nothing enabled or run");
	free(c);
	t_result_free(&r);
	t_cleanup(root);

	/* A profile's firstboot section: the mesh without the cards' keys is valid. */
	root = t_tree();
	free(cfg);
	cfg = t_strf("{\"hostname\": \"node\", \"mesh\": {\"interfaces\": [{\"mac\": \"02:00:00:00:00:00\", \"type\": \"80211s\", \"mesh_id\": \"m\", "
		     "\"channel\": 1}, {\"name\": \"wl1\", \"type\": \"ibss\", \"ssid\": \"s\", \"frequency\": 916, \"open\": false, "
		     "\"supplicant\": \"/opt/vendor/wpa_supplicant\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}}");
	t_write(root, "profile-firstboot.json", cfg);
	free(p);
	p = t_strf("%s/profile-firstboot.json", root);
	argv[2] = p;
	r = t_fb(root, NULL, argv);
	tap_is_int(r.status, 0, "a profile's mesh without the keys (they come in each card's device.json) is valid");
	if (r.status)
		tap_diag("stderr: %s", r.err ? r.err : "");
	t_result_free(&r);
	t_cleanup(root);
	free(with_key), free(keyless), free(mtu), free(cfg), free(p), free(etc), free(before), free(state), free(conf), free(unit);
}

/* A radio with a key and no supplicant on the machine: failed with the reason, nothing written. */
static void test_supplicant_missing(void)
{
	char *root = node("{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"" SAE_KEY "\"}],"
			  "\"address\": \"10.42.0.7\", \"country\": \"DE\"}");
	struct t_result r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=failed '/usr/sbin/wpa_supplicant' (the supplicant of radio 'wlan0') is not an executable on this machine: "
			    "install Debian's wpasupplicant in the image",
		     "no wpa_supplicant: failed with the reason");
	tap_ok(!t_exists(root, "etc/systemd/system/pmoves-mesh-wlan0.service") && !t_exists(root, "etc/wpa_supplicant"),
	       "no wpa_supplicant: no unit and no config written");
	t_result_free(&r);
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1,"
		" \"key\": \"" SAE_KEY "\", \"supplicant\": \"/opt/morse/bin/wpa_supplicant_s1g\"}], \"address\": \"10.42.0.7\", \"country\": \"DE\"}}");
	t_write(root, "opt/morse/bin/wpa_supplicant_s1g", "not executable\n");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=mesh state=failed '/opt/morse/bin/wpa_supplicant_s1g' (the supplicant of radio 'wlan0') is not an executable on this "
			    "machine: install the radio vendor's wpa_supplicant, or fix 'supplicant'",
		     "a vendor supplicant that is not executable: failed with the reason");
	t_result_free(&r);
	supplicant_in(root, "opt/morse/bin/wpa_supplicant_s1g");
	r = t_run(root, NULL);
	char *u = t_read(root, "etc/systemd/system/pmoves-mesh-wlan0.service");
	tap_contains(u, "ExecStart=/opt/morse/bin/wpa_supplicant_s1g -D nl80211 -i wlan0 -c /etc/wpa_supplicant/pmoves-mesh-wlan0.conf\n",
		     "the vendor supplicant installed: the unit runs it");
	free(u);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_schema(void)
{
	char *root = t_tree();
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"address\": \"10.42.0.1/24\"}", "firstboot.json: .mesh.interfaces: is required" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}]}", ".mesh.address: is required" },
		{ "{\"interfaces\": [], \"address\": \"10.42.0.1\"}", ".mesh.interfaces: at least one interface is needed" },
		{ "{\"interfaces\": [{\"type\": \"ethernet\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0]: 'name' or 'mac' is required" },
		{ "{\"interfaces\": [{\"name\": \"eth1\", \"mac\": \"52:54:00:00:00:01\"}], \"address\": \"10.42.0.1\"}", "'name' and 'mac' are both given: one only" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}, {\"name\": \"eth1\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces: interface 'eth1' is listed twice ([0] and [1])" },
		{ "{\"interfaces\": [{\"mac\": \"52:54:00:00:00:01\"}, {\"mac\": \"52:54:00:00:00:01\"}], \"address\": \"10.42.0.1\"}", "interface '52:54:00:00:00:01' is listed twice" },
		{ "{\"interfaces\": [{\"name\": \"eth 1\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].name: 'eth 1' is not a network interface name" },
		{ "{\"interfaces\": [{\"name\": \"averyveryverylongname\"}], \"address\": \"10.42.0.1\"}", "is not a network interface name (1 to 15" },
		{ "{\"interfaces\": [{\"name\": \"bat0\"}], \"address\": \"10.42.0.1\"}", "not 'bat0', which is the mesh itself" },
		{ "{\"interfaces\": [{\"mac\": \"52:54:00:00:00\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].mac: '52:54:00:00:00' is not a unicast MAC address" },
		{ "{\"interfaces\": [{\"mac\": \"01:00:5e:00:00:01\"}], \"address\": \"10.42.0.1\"}", "'01:00:5e:00:00:01' is not a unicast MAC address" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"adhoc\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].type: 'adhoc' is not an interface type: 'ethernet', '80211s' or 'ibss'" },
		{ "{\"interfaces\": [{\"name\": \"eth1\", \"channel\": 1}], \"address\": \"10.42.0.1\"}", "'channel' is for Wi-Fi interfaces (type '80211s' or 'ibss'), this one is 'ethernet'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"channel\": 1}], \"address\": \"10.42.0.1\"}", "an 80211s interface needs 'mesh_id'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"ssid\": \"x\", \"channel\": 1}], \"address\": \"10.42.0.1\"}", "an 80211s interface takes 'mesh_id', not 'ssid'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"channel\": 1}], \"address\": \"10.42.0.1\"}", "an ibss interface needs 'ssid'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"x\"}], \"address\": \"10.42.0.1\"}", "a Wi-Fi interface needs 'frequency' (MHz) or 'channel'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"x\", \"channel\": 1, \"frequency\": 2412}], \"address\": \"10.42.0.1\"}", "'frequency' and 'channel' are both given: one only" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"x\", \"channel\": 20}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].channel: 20 is not a 2.4 GHz (1-14) or 5 GHz (32-177) channel" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"x\", \"channel\": \"6\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].channel: must be an integer" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"x\", \"frequency\": 100}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].frequency: 100 is out of range (MHz: 750-950 for Wi-Fi HaLow" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"my mesh\", \"channel\": 1}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].mesh_id: 'my mesh' is not a usable mesh ID or SSID" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"width\": \"HT80\"}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].width: 'HT80' is not a channel width iw knows" },
		{ "{\"interfaces\": [{\"name\": \"eth1\", \"mtu\": 100}], \"address\": \"10.42.0.1\"}", ".mesh.interfaces[0].mtu: 100 is out of range" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"mtu\": 65536}", ".mesh.mtu: 65536 is out of range (bat0's MTU in bytes" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.300\"}", ".mesh.address: '10.42.0.300' is not bat0's address: not an IPv4 address" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1/33\"}", "the prefix length must be 8 to 30" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.0/24\"}", "'10.42.0.0/24' is not bat0's address: the network or broadcast address of its /24" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.255\"}", "the network or broadcast address of its /24" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"127.0.0.5/8\"}", "not a unicast address" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"gateway\": \"yes\"}", ".mesh.gateway: 'yes' is not a gateway mode: 'server' (the node with an uplink), 'client' or 'off'" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"routing_algorithm\": \"olsr\"}", "'olsr' is not a routing algorithm" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"bridge\": true}", ".mesh.bridge: unknown key" },
		{ "{\"interfaces\": {\"name\": \"eth1\"}, \"address\": \"10.42.0.1\"}", ".mesh.interfaces: must be an array" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.2\", \"router\": \"10.42.0\"}", ".mesh.router: '10.42.0' is not a unicast IPv4 address" },
		/* Radios are encrypted unless made open explicitly; the regulatory domain is required. */
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"open\": true, \"key\": \"12345678\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0]: radio 'wlan0' has a 'key' and \"open\": true: one only" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"open\": \"yes\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].open: must be true or false" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}, {\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"12345678\"}], \"address\": \"10.42.0.1\"}",
		  "firstboot.json: .mesh: 'country' is required with Wi-Fi interfaces (radio 'wlan0')" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"ibss\", \"ssid\": \"s\", \"channel\": 1, \"open\": true}], \"address\": \"10.42.0.1\"}",
		  ".mesh: 'country' is required with Wi-Fi interfaces (radio 'wlan0')" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"country\": \"de\"}", ".mesh.country: 'de' is not a country code: ISO 3166-1 alpha-2" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"country\": \"DEU\"}", ".mesh.country: 'DEU' is not a country code" },
		{ "{\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.1\", \"country\": \"00\"}", ".mesh.country: '00' is not a country code" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"1234567\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].key: the key is not a WPA passphrase: 8 to 63 printable ASCII characters" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \""
		  "0123456789012345678901234567890123456789012345678901234567890123\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].key: " },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"tab\\there12\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].key: the key is not a WPA passphrase" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"p\u00e4sswort1\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].key: the key is not a WPA passphrase" },
		{ "{\"interfaces\": [{\"name\": \"eth1\", \"key\": \"12345678\"}], \"address\": \"10.42.0.1\"}",
		  ".mesh.interfaces[0]: 'key' is for Wi-Fi interfaces (type '80211s' or 'ibss'), this one is 'ethernet'" },
		{ "{\"interfaces\": [{\"name\": \"eth1\", \"open\": true}], \"address\": \"10.42.0.1\"}", "'open' is for Wi-Fi interfaces" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"open\": true, \"supplicant\": \"/usr/sbin/wpa_supplicant\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  "radio 'wlan0' is open: 'supplicant' is for radios with a 'key'" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"12345678\", \"supplicant\": \"wpa_supplicant\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].supplicant: 'wpa_supplicant' " },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"channel\": 1, \"key\": \"12345678\", \"supplicant\": \"/opt/my supplicant\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  ".mesh.interfaces[0].supplicant: '/opt/my supplicant' is not a plain absolute path" },
		{ "{\"interfaces\": [{\"name\": \"wlan0\", \"type\": \"80211s\", \"mesh_id\": \"m\", \"frequency\": 916, \"width\": \"2MHz\", \"key\": \"12345678\"}], \"address\": \"10.42.0.1\", \"country\": \"DE\"}",
		  "width '2MHz' of radio 'wlan0' is not one wpa_supplicant sets" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *cfg = t_strf("{\"mesh\": %s}", bad[i].cfg);
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
	/* A run with a bad mesh section applies nothing. */
	t_write(root, "etc/pmoves/firstboot.json", "{" OFF_OTHERS ", \"mesh\": {\"interfaces\": [{\"name\": \"eth1\"}], \"address\": \"10.42.0.0/24\"}}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 2, "invalid mesh config: run exits 2");
	tap_ok(!t_exists(root, "etc/systemd/network"), "invalid mesh config: nothing written");
	t_result_free(&r);
	t_cleanup(root);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root to make the test trees' files root-owned");
	test_ethernet_server();
	test_wifi_client();
	test_wifi_keys();
	test_supplicant_missing();
	test_key_absent();
	test_ibss_by_mac();
	test_router();
	test_dhcp();
	test_live();
	test_dry_run();
	test_schema();
	return tap_done();
}
