/* The gateway step on fixture trees: the exact systemd-networkd, sysctl, nftables and dnsmasq
 * files for NICs named by MAC, by name and by order (a fixture /sys/class/net with PCI, virtual
 * and wireless NICs), every ruleset checked by the real `nft -c -f` and every dnsmasq config by
 * the real `dnsmasq --test -C`, the commands run on a live machine (a stand-in runner that
 * renames the fixture's NICs and sets its ip_forward), NICs not there (pending), bad configs
 * refused by the schema, dry run, and a second run that changes nothing.
 * tests/e2e/gateway.t runs it for real in two QEMU guests. */
#include "test-fb-lib.h"
#include "run.h"

#include <json-c/json.h>

#define OFF_OTHERS "\"steps\": {\"growfs\": {\"enabled\": false}, \"ssh\": {\"enabled\": false}, \"efiboot\": {\"enabled\": false}}"
#define HDR "# Written by pmoves-firstboot (gateway step): change its config, not this file.\n"
#define NET "etc/systemd/network/"

static bool have_nft, have_dnsmasq;

static char *node(const char *gw)
{
	char *root = t_tree();
	char *cfg = t_strf("{" OFF_OTHERS ", \"gateway\": %s}", gw);
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

/* A NIC in the fixture's sysfs: /sys/devices/DEVPATH/net/NAME with address and type, and the
 * /sys/class/net/NAME symlink to it, as the kernel lays them out. */
static void fixture_nic(const char *root, const char *devpath, const char *name, const char *mac, const char *type, bool wireless)
{
	char *dir = t_strf("sys/devices/%s/net/%s", devpath, name);
	char *f = t_strf("%s/address", dir);
	char *m = t_strf("%s\n", mac);
	t_write(root, f, m);
	free(f);
	f = t_strf("%s/type", dir);
	char *ty = t_strf("%s\n", type);
	t_write(root, f, ty);
	free(f), free(ty), free(m);
	if (wireless) {
		f = t_strf("%s/wireless/.keep", dir);
		t_write(root, f, "");
		free(f);
	}
	char *cls = t_strf("%s/sys/class/net", root);
	mkdir_p(cls, 0755);
	char *link = t_strf("%s/%s", cls, name), *target = t_strf("../../%s", dir + strlen("sys/"));
	if (symlink(target, link) < 0)
		abort();
	free(link), free(target), free(cls), free(dir);
}

/* The usual QEMU-like machine: two virtio NICs whose names do not follow their PCI order, a
 * loopback, a virtual bridge, a Wi-Fi radio and an InfiniBand-like non-ethernet device. */
static void fixture_machine(const char *root)
{
	fixture_nic(root, "pci0000:00/0000:00:04.0/virtio2", "ens2", "52:54:00:00:00:b2", "1", false);
	fixture_nic(root, "pci0000:00/0000:00:02.0/virtio0", "ens9", "52:54:00:00:00:a9", "1", false);
	fixture_nic(root, "virtual/net", "lo", "00:00:00:00:00:00", "772", false);
	fixture_nic(root, "virtual/net", "br0", "52:54:00:00:00:01", "1", false);
	fixture_nic(root, "pci0000:00/0000:00:01.0/0000:01:00.0", "wlp1s0", "02:00:00:00:01:00", "1", true);
	fixture_nic(root, "pci0000:00/0000:00:00.5", "ib0", "52:54:00:00:00:c0", "32", false);
}

static char *link_want(const char *role, const char *how, const char *mac)
{
	return t_strf(HDR "# The %s NIC (%s at first boot), named '%s'.\n"
			  "[Match]\nMACAddress=%s\nType=ether\n\n[Link]\nName=%s\n",
		      STREQ(role, "wan") ? "WAN" : "LAN", how, role, mac, role);
}

static char *wan_want(const char *name)
{
	return t_strf(HDR "# The WAN: DHCP; nothing from it is accepted but replies (/etc/nftables.conf).\n"
			  "[Match]\nName=%s\n\n[Network]\nDHCP=yes\nIPForward=ipv4\n",
		      name);
}

static char *lan_want(const char *name, const char *addr)
{
	return t_strf(HDR "# The LAN: DHCP and DNS from dnsmasq (/etc/dnsmasq.d/pmoves-gateway.conf).\n"
			  "[Match]\nName=%s\n\n[Link]\nRequiredForOnline=no\n\n"
			  "[Network]\nAddress=%s\nConfigureWithoutCarrier=yes\nIPForward=ipv4\nIPv6AcceptRA=no\n",
		      name, addr);
}

static char *nft_want(const char *w, const char *l, const char *subnet)
{
	return t_strf("#!/usr/sbin/nft -f\n" HDR
		      "# The gateway's firewall: nothing is accepted from the WAN but replies; the LAN is\n"
		      "# masqueraded out of the WAN; no port forwards. Only this table is replaced: other\n"
		      "# tables (Tailscale's) stay.\n"
		      "table inet pmoves_gateway\n"
		      "delete table inet pmoves_gateway\n\n"
		      "table inet pmoves_gateway {\n"
		      "\tchain input {\n"
		      "\t\ttype filter hook input priority filter; policy drop;\n"
		      "\t\tct state established,related accept\n"
		      "\t\tct state invalid drop\n"
		      "\t\tiif \"lo\" accept\n"
		      "\t\tiifname \"%s\" accept comment \"LAN: DHCP, DNS, SSH to the gateway\"\n"
		      "\t\tiifname \"tailscale0\" accept comment \"the tailnet\"\n"
		      "\t\tiifname \"%s\" udp sport 67 udp dport 68 accept comment \"WAN: our DHCP client's replies\"\n"
		      "\t\tiifname \"%s\" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept\n"
		      "\t\tiifname \"%s\" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept\n"
		      "\t\tiifname \"%s\" counter comment \"WAN: default deny\"\n"
		      "\t\tcounter comment \"default deny\"\n"
		      "\t}\n\n"
		      "\tchain forward {\n"
		      "\t\ttype filter hook forward priority filter; policy drop;\n"
		      "\t\tct state established,related accept\n"
		      "\t\tct state invalid drop\n"
		      "\t\tiifname \"%s\" oifname \"%s\" counter accept comment \"LAN to WAN\"\n"
		      "\t\tiifname \"tailscale0\" oifname \"%s\" accept comment \"tailnet to LAN (subnet router)\"\n"
		      "\t\tiifname \"%s\" oifname \"tailscale0\" accept comment \"LAN to tailnet\"\n"
		      "\t\tcounter comment \"default deny\"\n"
		      "\t}\n\n"
		      "\tchain postrouting {\n"
		      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		      "\t\toifname \"%s\" ip saddr %s counter masquerade comment \"LAN out of the WAN\"\n"
		      "\t}\n"
		      "}\n",
		      l, w, w, w, w, l, w, l, l, w, subnet);
}

#define SYSCTL_WANT HDR "net.ipv4.ip_forward = 1\n"

/* The real nft and dnsmasq on the files the step wrote. */
static void real_checks(const char *root, const char *what)
{
	char *nft = t_strf("%s/etc/nftables.conf", root), *dm = t_strf("%s/etc/dnsmasq.d/pmoves-gateway.conf", root);
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
	if (have_dnsmasq) {
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

static void test_by_mac(void)
{
	char *root = node("{\"wan\": {\"mac\": \"52:54:00:AA:00:01\"},"
			  " \"lan\": {\"mac\": \"52:54:00:aa:00:02\", \"address\": \"192.168.50.1/24\"},"
			  " \"dhcp\": {\"range_start\": \"192.168.50.100\", \"range_end\": \"192.168.50.200\", \"lease_time\": \"2h\"},"
			  " \"dns\": {\"upstream\": [\"1.1.1.1\", \"2606:4700:4700::1111\"], \"domain\": \"lan\"}}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "by MAC: exit 0");
	tap_contains(r.out,
		     "pmoves-firstboot: step=gateway state=ok WAN wan (52:54:00:aa:00:01 by MAC) by DHCP, LAN lan (52:54:00:aa:00:02 by MAC) "
		     "192.168.50.1/24, DHCP 192.168.50.100-192.168.50.200 lease 2h, NAT and default-deny inbound; comes up on the next boot\n",
		     "by MAC: the console line");
	char *w = link_want("wan", "by MAC", "52:54:00:aa:00:01");
	file_is(root, NET "10-pmoves-gateway-wan.link", w, "by MAC: the WAN NIC renamed 'wan' by its MAC (lower case)");
	free(w);
	w = link_want("lan", "by MAC", "52:54:00:aa:00:02");
	file_is(root, NET "10-pmoves-gateway-lan.link", w, "by MAC: the LAN NIC renamed 'lan'");
	free(w);
	w = wan_want("wan");
	file_is(root, NET "10-pmoves-gateway-wan.network", w, "by MAC: WAN by DHCP, forwarding");
	free(w);
	w = lan_want("lan", "192.168.50.1/24");
	file_is(root, NET "10-pmoves-gateway-lan.network", w, "by MAC: LAN static");
	free(w);
	file_is(root, "etc/sysctl.d/90-pmoves-gateway.conf", SYSCTL_WANT, "by MAC: forwarding at boot");
	w = nft_want("wan", "lan", "192.168.50.0/24");
	file_is(root, "etc/nftables.conf", w, "by MAC: the ruleset");
	free(w);
	file_is(root, "etc/dnsmasq.d/pmoves-gateway.conf",
		HDR "# DHCP and DNS for the LAN 'lan' only.\n"
		    "interface=lan\nbind-dynamic\ndomain-needed\nbogus-priv\n"
		    "no-resolv\nserver=1.1.1.1\nserver=2606:4700:4700::1111\n"
		    "domain=lan\nlocal=/lan/\nexpand-hosts\n"
		    "dhcp-range=192.168.50.100,192.168.50.200,255.255.255.0,2h\n"
		    "dhcp-option=option:router,192.168.50.1\n"
		    "dhcp-option=option:dns-server,192.168.50.1\n"
		    "dhcp-authoritative\n",
		"by MAC: dnsmasq on the LAN only, upstream servers, local domain");
	struct stat st = t_stat(root, "etc/nftables.conf");
	tap_is_int(st.st_mode & 07777, 0644, "by MAC: files are 0644");
	real_checks(root, "by MAC");
	char *c = calls_of(root);
	char *want = t_strf("systemctl --root=%s enable systemd-networkd.service nftables.service dnsmasq.service\n", root);
	tap_contains(c, want, "by MAC: networkd, nftables and dnsmasq enabled in the tree");
	tap_ok(!strstr(c, "ip link") && !strstr(c, "networkctl") && !strstr(c, "sysctl") && !strstr(c, "restart") && !strstr(c, "\nnft "),
	       "by MAC: nothing run on the build host (no ip, networkctl, sysctl, restart, nft)");
	free(c), free(want);
	t_result_free(&r);

	/* Idempotence: the state says done; and without the state, check finds it all there. */
	char *etc = t_strf("%s/etc", root);
	char *before = t_tree_digest(etc, true);
	clear_calls(root);
	r = t_run(root, NULL);
	tap_is_int(r.status, 0, "again: exit 0");
	c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "again: nothing enabled again");
	free(c);
	t_result_free(&r);
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=gateway state=skipped already done", "without the state: check finds the gateway configured");
	char *after = t_tree_digest(etc, true);
	tap_is_str(after, before, "again: /etc is unchanged (same files, inodes and times)");
	c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "again: no systemctl enable");
	free(c), free(before), free(after), free(etc);
	t_result_free(&r);

	/* A changed config: another LAN address and default range; the files follow. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"gateway\": {\"wan\": {\"mac\": \"52:54:00:aa:00:01\"}, \"lan\": {\"mac\": \"52:54:00:aa:00:02\", \"address\": \"10.20.0.1/16\"}}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "10.20.0.1/16, DHCP 10.20.128.0-10.20.255.254 lease 12h",
		     "changed: default range is the half of the /16 without the gateway, lease 12h");
	w = lan_want("lan", "10.20.0.1/16");
	file_is(root, NET "10-pmoves-gateway-lan.network", w, "changed: the LAN file follows");
	free(w);
	char *dm = t_read(root, "etc/dnsmasq.d/pmoves-gateway.conf");
	tap_contains(dm, "resolv-file=/run/systemd/resolve/resolv.conf\ndhcp-range=10.20.128.0,10.20.255.254,255.255.0.0,12h\n",
		     "changed: no upstream given: the WAN's DNS servers through resolved's list");
	free(dm);
	real_checks(root, "changed");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_by_order(void)
{
	char *root = node("{}");
	fixture_machine(root);
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "by order: exit 0");
	tap_contains(r.out, "step=gateway state=ok WAN wan (52:54:00:00:00:a9 by order) by DHCP, LAN lan (52:54:00:00:00:b2 by order) 192.168.50.1/24, DHCP 192.168.50.128-192.168.50.254 lease 12h",
		     "by order: WAN is the NIC at PCI 00:02.0 (ens9), LAN at 00:04.0 (ens2); defaults for the rest");
	char *w = link_want("wan", "by order", "52:54:00:00:00:a9");
	file_is(root, NET "10-pmoves-gateway-wan.link", w, "by order: the WAN pinned by MAC");
	free(w);
	w = link_want("lan", "by order", "52:54:00:00:00:b2");
	file_is(root, NET "10-pmoves-gateway-lan.link", w, "by order: the LAN pinned by MAC");
	free(w);
	real_checks(root, "by order");
	t_result_free(&r);
	t_cleanup(root);

	/* LAN by MAC (the first NIC in PCI order), WAN by order: the next one. */
	root = node("{\"lan\": {\"mac\": \"52:54:00:00:00:a9\"}}");
	fixture_machine(root);
	r = t_run(root, NULL);
	tap_contains(r.out, "WAN wan (52:54:00:00:00:b2 by order) by DHCP, LAN lan (52:54:00:00:00:a9 by MAC)",
		     "LAN by MAC, WAN by order: the WAN is the first NIC the LAN does not take");
	t_result_free(&r);
	t_cleanup(root);

	/* One ethernet NIC only: pending, nothing written. */
	root = node("{}");
	fixture_nic(root, "pci0000:00/0000:00:02.0/virtio0", "ens9", "52:54:00:00:00:a9", "1", false);
	r = t_run(root, NULL);
	tap_contains(r.out, "step=gateway state=pending found 1 ethernet NIC in '/sys/class/net', the gateway needs two (WAN and LAN)",
		     "one NIC: pending, says why");
	tap_ok(!t_exists(root, "etc/nftables.conf"), "one NIC: nothing written");
	t_result_free(&r);
	t_cleanup(root);

	/* A tree without /sys (an image being built): by order must wait for the machine. */
	root = node("{}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=gateway state=pending no '/sys/class/net' to choose the NICs by order from",
		     "no /sys: pending");
	t_result_free(&r);
	t_cleanup(root);
}

static void test_by_name(void)
{
	char *root = node("{\"wan\": {\"name\": \"enp1s0\"}, \"lan\": {\"name\": \"enp2s0\", \"address\": \"172.16.5.254/24\"},"
			  " \"dhcp\": {\"range_start\": \"172.16.5.10\", \"range_end\": \"172.16.5.20\", \"lease_time\": 3600}}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 0, "by name: exit 0");
	tap_ok(!t_exists(root, NET "10-pmoves-gateway-wan.link") && !t_exists(root, NET "10-pmoves-gateway-lan.link"),
	       "by name: no .link files (no renaming)");
	char *w = wan_want("enp1s0");
	file_is(root, NET "10-pmoves-gateway-wan.network", w, "by name: WAN matched by its name");
	free(w);
	w = nft_want("enp1s0", "enp2s0", "172.16.5.0/24");
	file_is(root, "etc/nftables.conf", w, "by name: the ruleset names the NICs");
	free(w);
	char *dm = t_read(root, "etc/dnsmasq.d/pmoves-gateway.conf");
	tap_contains(dm, "interface=enp2s0\n", "by name: dnsmasq on enp2s0");
	tap_contains(dm, "dhcp-range=172.16.5.10,172.16.5.20,255.255.255.0,3600\n", "by name: lease time in seconds");
	free(dm);
	real_checks(root, "by name");
	t_result_free(&r);
	t_cleanup(root);
}

/* A live machine (PMOVES_FIRSTBOOT_LIVE=1): a stand-in runner in front of the recording one that
 * renames the fixture's NICs for `ip link set dev X name Y`, turns on its ip_forward for sysctl
 * and answers `nft list table`. */
static void test_live(void)
{
	char *root = node("{\"lan\": {\"address\": \"192.168.50.1/24\"}}");
	fixture_machine(root);
	t_write(root, "proc/sys/net/ipv4/ip_forward", "0\n");
	char *rec = t_beside(root, "stand-in"), *rec2 = t_beside(root, "stand-in-rec"), *inactive = t_beside(root, "inactive-");
	if (rename(rec, rec2) < 0)
		abort();
	char *script = t_strf("#!/bin/sh\n"
			      "# stand-in for ip, sysctl and nft on the fixture machine; records through %s\n"
			      "%s \"$@\"\n"
			      "case \"$*\" in\n"
			      "'ip link set dev '*' name '*) mv %s/sys/class/net/$5 %s/sys/class/net/$7;;\n"
			      "'sysctl -q -p '*) echo 1 > %s/proc/sys/net/ipv4/ip_forward;;\n"
			      "'systemctl is-active '*) [ -e %s$3 ] && { echo inactive; exit 3; }; echo active;;\n"
			      "'systemctl --no-block restart '*) rm -f %s$4;;\n"
			      "esac\nexit 0\n",
			      rec2, rec2, root, root, root, inactive, inactive);
	if (write_file_atomic(rec, script, strlen(script), 0755) < 0)
		abort();
	struct t_result r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_is_int(r.status, 0, "live: exit 0");
	tap_contains(r.out, "step=gateway state=ok WAN wan (52:54:00:00:00:a9 by order) by DHCP, LAN lan (52:54:00:00:00:b2 by order) 192.168.50.1/24",
		     "live: ok (verified: NICs renamed, forwarding on, table loaded)");
	char *c = calls_of(root);
	tap_contains(c,
		     "udevadm settle --timeout=30\n"
		     "systemctl --quiet enable systemd-networkd.service nftables.service dnsmasq.service\n"
		     "udevadm control --reload\n"
		     "udevadm settle --timeout=30\n"
		     "ip link set dev ens9 down\nip link set dev ens9 name wan\n"
		     "ip link set dev ens2 down\nip link set dev ens2 name lan\n"
		     "sysctl -q -p /etc/sysctl.d/90-pmoves-gateway.conf\n"
		     "systemctl reload-or-restart nftables.service\n"
		     "systemctl is-active systemd-networkd.service\n"
		     "networkctl reload\n"
		     "systemctl --no-block restart dnsmasq.service\n",
		     "live: enable, rename, forwarding, ruleset (reload, never a stop), networkd reload, dnsmasq restart");
	if (!tap_ok(!strstr(c, "stop nftables") && !strstr(c, "systemctl restart nftables") && !strstr(c, "flush"),
		    "live: nftables never stopped or flushed (Tailscale's tables stay)"))
		tap_diag("calls: %s", c);
	tap_contains(c, "nft list table inet pmoves_gateway\n", "live: verified by listing the table");
	free(c);
	t_result_free(&r);

	/* Again: the NICs are now named wan and lan; by order finds the same MACs; nothing to do. */
	char *state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
	clear_calls(root);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=gateway state=skipped already done", "live again: already done (same NICs after the rename)");
	c = calls_of(root);
	tap_ok(!strstr(c, "ip link") && !strstr(c, " enable "), "live again: nothing renamed or enabled");
	free(c);
	t_result_free(&r);

	/* dnsmasq not running (it failed, or was stopped): not done, applied again. */
	char *dnsmasq_off = t_strf("%sdnsmasq.service", inactive);
	write_file_atomic(dnsmasq_off, "", 0, 0644);
	state = t_strf("%s/var/lib/pmoves/firstboot", root);
	rm_rf(state);
	free(state);
	clear_calls(root);
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	c = calls_of(root);
	tap_ok(strstr(r.out, "step=gateway state=ok WAN wan") && strstr(c, "systemctl is-active dnsmasq.service\n") &&
		       strstr(c, "systemctl --no-block restart dnsmasq.service\n") && access(dnsmasq_off, F_OK) != 0,
	       "live, dnsmasq not active: check says not done, apply restarts it");
	free(c), free(dnsmasq_off);
	t_result_free(&r);

	/* By MAC on a live machine without that NIC: pending. */
	t_write(root, "etc/pmoves/firstboot.json", "{" OFF_OTHERS ", \"gateway\": {\"wan\": {\"mac\": \"52:54:00:00:00:ff\"}}}");
	r = t_run(root, "PMOVES_FIRSTBOOT_LIVE=1");
	tap_contains(r.out, "step=gateway state=pending no NIC has MAC '52:54:00:00:00:ff' (the wan)", "live, MAC not there: pending");
	t_result_free(&r);
	free(script), free(rec), free(rec2), free(inactive);
	t_cleanup(root);
}

static void test_dry_run(void)
{
	char *root = node("{\"wan\": {\"mac\": \"52:54:00:aa:00:01\"}, \"lan\": {\"mac\": \"52:54:00:aa:00:02\"}}");
	char *before = t_tree_digest(root, false);
	char *argv[] = { "pmoves-firstboot", "run", "--root", root, "--dry-run", NULL };
	struct t_result r = t_fb(root, NULL, argv);
	char *after = t_tree_digest(root, false);
	tap_is_int(r.status, 0, "dry run: exit 0");
	tap_is_str(after, before, "dry run: the tree is unchanged");
	tap_contains(r.out, "pmoves-firstboot: plan step=gateway run\n", "dry run: the step would run");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/nftables.conf (mode 0644, ", "dry run: the ruleset");
	tap_contains(r.out, "  | \t\ttype filter hook input priority filter; policy drop;\n", "dry run: its content");
	tap_contains(r.out, "pmoves-firstboot: would write /etc/dnsmasq.d/pmoves-gateway.conf (mode 0644, ", "dry run: dnsmasq");
	char *run = t_strf("pmoves-firstboot: would run systemctl --root=%s enable systemd-networkd.service nftables.service dnsmasq.service\n", root);
	tap_contains(r.out, run, "dry run: the enable command");
	char *c = calls_of(root);
	tap_ok(!strstr(c, " enable "), "dry run: no command run but queries");
	free(c), free(run), free(before), free(after);
	t_result_free(&r);
	t_cleanup(root);
}

static void test_schema(void)
{
	char *root = t_tree();
	static const struct {
		const char *cfg, *msg;
	} bad[] = {
		{ "{\"wan\": {\"mac\": \"52:54:00:00:01\"}}", ".gateway.wan.mac: '52:54:00:00:01' is not a unicast MAC address" },
		{ "{\"lan\": {\"mac\": \"01:00:5e:00:00:01\"}}", ".gateway.lan.mac: '01:00:5e:00:00:01' is not a unicast MAC address" },
		{ "{\"wan\": {\"mac\": \"52:54:00:zz:00:01\"}}", "is not a unicast MAC address" },
		{ "{\"wan\": {\"name\": \"eth 0\"}}", ".gateway.wan.name: 'eth 0' is not a network interface name" },
		{ "{\"wan\": {\"name\": \"eth0\", \"mac\": \"52:54:00:00:00:01\"}}", ".gateway.wan: 'name' and 'mac' are both given: one only" },
		{ "{\"wan\": {\"mac\": \"52:54:00:00:00:01\"}, \"lan\": {\"mac\": \"52:54:00:00:00:01\"}}",
		  ".gateway: WAN and LAN are the same NIC (MAC '52:54:00:00:00:01'): the gateway needs two" },
		{ "{\"wan\": {\"mac\": \"52:54:00:AB:00:01\"}, \"lan\": {\"mac\": \"52:54:00:ab:00:01\"}}", "WAN and LAN are the same NIC" },
		{ "{\"wan\": {\"name\": \"eth0\"}, \"lan\": {\"name\": \"eth0\"}}", ".gateway: WAN and LAN are the same NIC 'eth0'" },
		{ "{\"wan\": {\"name\": \"lan\"}}", "the WAN cannot be named 'lan' nor the LAN 'wan'" },
		{ "{\"wan\": {\"address\": \"1.2.3.4/24\"}}", ".gateway.wan.address: unknown key" },
		{ "{\"lan\": {\"address\": \"192.168.50.1\"}}", ".gateway.lan.address: '192.168.50.1' is not the LAN address: not an IPv4 address with a prefix length" },
		{ "{\"lan\": {\"address\": \"192.168.50.1/31\"}}", "the prefix length must be 8 to 30" },
		{ "{\"lan\": {\"address\": \"192.168.50.0/24\"}}", "the network or broadcast address of its subnet" },
		{ "{\"lan\": {\"address\": \"224.0.0.1/24\"}}", "not a unicast address" },
		{ "{\"lan\": {\"address\": \"192.168.50.1/24\"}, \"dhcp\": {\"range_start\": \"192.168.60.10\", \"range_end\": \"192.168.60.20\"}}",
		  ".gateway: bad DHCP range: 192.168.60.10 is outside the LAN's hosts (192.168.50.0/24)" },
		{ "{\"lan\": {\"address\": \"192.168.50.1/24\"}, \"dhcp\": {\"range_start\": \"192.168.50.10\", \"range_end\": \"192.168.50.255\"}}",
		  "bad DHCP range: 192.168.50.255 is outside the LAN's hosts" },
		{ "{\"lan\": {\"address\": \"192.168.50.1/24\"}, \"dhcp\": {\"range_start\": \"192.168.50.200\", \"range_end\": \"192.168.50.100\"}}",
		  "bad DHCP range: 'range_start' is after 'range_end'" },
		{ "{\"lan\": {\"address\": \"192.168.50.150/24\"}, \"dhcp\": {\"range_start\": \"192.168.50.100\", \"range_end\": \"192.168.50.200\"}}",
		  "bad DHCP range: the range holds the gateway's own address 192.168.50.150" },
		{ "{\"lan\": {\"address\": \"192.168.50.1/24\"}, \"dhcp\": {\"range_start\": \"192.168.50.100\"}}",
		  "bad DHCP range: give both 'range_start' and 'range_end', or neither" },
		{ "{\"dhcp\": {\"range_start\": \"192.168.50.300\"}}", ".gateway.dhcp.range_start: '192.168.50.300' is not an IPv4 address" },
		{ "{\"dhcp\": {\"lease_time\": \"12x\"}}", ".gateway.dhcp.lease_time: '12x' is not a lease time" },
		{ "{\"dhcp\": {\"lease_time\": 60}}", ".gateway.dhcp.lease_time: the lease time must be from 2 minutes to a year" },
		{ "{\"dhcp\": {\"lease_time\": \"1m\"}}", "the lease time must be from 2 minutes to a year" },
		{ "{\"dhcp\": {\"lease_time\": \"h\"}}", "is not a lease time" },
		{ "{\"dns\": {\"upstream\": [\"dns.google\"]}}", ".gateway.dns.upstream[0]: 'dns.google' is not an IPv4 or IPv6 address of a DNS server" },
		{ "{\"dns\": {\"upstream\": \"1.1.1.1\"}}", ".gateway.dns.upstream: must be an array" },
		{ "{\"dns\": {\"domain\": \"Home LAN\"}}", ".gateway.dns.domain: 'Home LAN' is not a local domain name" },
		{ "{\"ports\": [22]}", ".gateway.ports: unknown key" },
		{ "[]", ".gateway: must be an object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *cfg = t_strf("{\"gateway\": %s}", bad[i].cfg);
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
	/* A run with a bad gateway section applies nothing. */
	t_write(root, "etc/pmoves/firstboot.json", "{" OFF_OTHERS ", \"gateway\": {\"wan\": {\"mac\": \"52:54:00:00:00:01\"}, \"lan\": {\"mac\": \"52:54:00:00:00:01\"}}}");
	struct t_result r = t_run(root, NULL);
	tap_is_int(r.status, 2, "invalid gateway config: run exits 2");
	tap_ok(!t_exists(root, "etc/nftables.conf") && !t_exists(root, "etc/systemd/network"), "invalid gateway config: nothing written");
	t_result_free(&r);
	/* A range that only the merged config shows wrong (the default address): apply refuses. */
	t_write(root, "etc/pmoves/firstboot.json",
		"{" OFF_OTHERS ", \"gateway\": {\"wan\": {\"name\": \"a\"}, \"lan\": {\"name\": \"b\"}, \"dhcp\": {\"range_start\": \"10.0.0.10\", \"range_end\": \"10.0.0.20\"}}}");
	r = t_run(root, NULL);
	tap_contains(r.out, "step=gateway state=failed bad DHCP range for the LAN 192.168.50.1/24: 10.0.0.10 is outside the LAN's hosts (192.168.50.0/24)",
		     "range outside the default LAN: the step fails and says why");
	tap_ok(!t_exists(root, "etc/nftables.conf"), "range outside the default LAN: nothing written");
	t_result_free(&r);
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
	test_by_mac();
	test_by_order();
	test_by_name();
	test_live();
	test_dry_run();
	test_schema();
	return tap_done();
}
