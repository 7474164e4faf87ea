#!/bin/bash
# The gateway profile for real: two QEMU guests from profiles/gateway.json on a LAN made of a
# QEMU socket netdev on 127.0.0.1.
#   - the gateway: its first NIC is QEMU's user-mode one (the WAN, 10.0.2.15 by DHCP from
#     QEMU, --net so that 10.0.2.2 reaches this machine's 127.0.0.1), its second the socket
#     one (the LAN, MAC 52:54:00:PP:PP:01). Its config names neither: they are chosen by PCI
#     order, which this test checks. The tailnet step is off (Tailscale is not installable here).
#   - the client: the same image with the gateway and tailnet steps off; its socket NIC (MAC
#     ...:02) does DHCP through a systemd-networkd file from device.json; its own user-mode
#     NIC is left unconfigured, so the only way out is through the gateway.
# Neither guest can be logged into: a one-shot unit of each (device.json "files" and "units")
# prints evidence lines to the console, which this test reads:
#   - the client gets a lease in the LAN range, pings the gateway's LAN and WAN addresses,
#     reads a token from a TCP server of this test on 127.0.0.1 (10.0.2.2 from the WAN: the
#     connection goes LAN -> WAN through the gateway's forward chain and masquerade), and reads
#     a TCP service of the gateway on its LAN address (the LAN is accepted);
#   - the gateway shows its NICs, forwarding, ruleset and counters, dnsmasq's lease, and that
#     inbound connections from the WAN side are dropped. QEMU's user-mode WAN cannot connect
#     in (run has no hostfwd), so the WAN side is played by a network namespace behind a veth
#     pair on the gateway: the same input policy applies to it as to 'wan' (only lo, the LAN
#     and tailscale0 are accepted). From there a ping and a TCP connection to the gateway's
#     service (listening on 0.0.0.0) get nothing; a control rule accepting that interface,
#     inserted for a moment, makes the same connection work, so the drop is the ruleset's.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap base64 python3
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-gateway.XXXXXX)
GPID= SPID=
cleanup() {
	for p in $GPID $SPID; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 26

"$PMOVES_IMAGE" build "$TOP/profiles/gateway.json" -o "$T" >"$T/build.log" 2>&1
ok $? "build profiles/gateway.json"
IMG=$T/gateway/gateway.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; done_testing; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 10000))
	if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then PORT=$p; break; fi
done
[ -n "$PORT" ] || PORT=$((20000 + $$ % 10000))
PP=$(printf '%04x' "$PORT")
MAC_GW=52:54:00:${PP:0:2}:${PP:2:2}:01
MAC_CL=52:54:00:${PP:0:2}:${PP:2:2}:02
TOKEN=wan-side-token-$RANDOM$RANDOM
diag "LAN: socket netdev on 127.0.0.1:$PORT, gateway LAN NIC $MAC_GW, client $MAC_CL"

# This test's server on the WAN side: a token for every connection.
SRV_PORT=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, a = s.accept(); c.sendall((sys.argv[2] + "\n").encode()); c.close()
' "$SRV_PORT" "$TOKEN" >"$T/srv.log" 2>&1 &
SPID=$!

# The gateway's evidence: a TCP service on every address, then what the machine shows.
cat >"$T/gw-evidence.sh" <<'EOF'
#!/bin/sh
# gateway.t: the gateway's evidence on the console.
exec >/dev/console 2>&1
say() { sed "s/^/$1: /"; }
perl -MIO::Socket::INET -e '$| = 1; $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => 7777, Listen => 5, ReuseAddr => 1) or die "listen: $!\n";
	while ($c = $s->accept) { print $c "gateway-service\n"; print $c->peerhost, "\n"; close $c }' >/run/gw-peers &
n=0
until ip -4 -o addr show dev lan 2>/dev/null | grep -q 'inet 192\.168\.50\.1/24' || [ $n -ge 120 ]; do sleep 1; n=$((n + 1)); done
echo "GW-WAITED: $n s for the LAN address"
for i in wan lan; do
	echo "GW-LINK: $i $(cat /sys/class/net/$i/address 2>&1)"
	# What udev's net_setup_link makes of the NIC now: the .link file that a later boot applies.
	udevadm test-builtin net_setup_link /sys/class/net/$i 2>&1 | grep -E '^ID_NET_(LINK_FILE|NAME)=' | say "GW-UDEV-$i"
done
ip -4 -o addr show | say GW-ADDR
echo "GW-FORWARD: $(cat /proc/sys/net/ipv4/ip_forward)"
for u in systemd-networkd nftables dnsmasq; do echo "GW-ACTIVE: $u $(systemctl is-active $u)"; done
nft list ruleset | say GW-NFT
# Wait for the client's connection through the NAT (the masquerade counter moves).
masq() { nft list chain inet pmoves_gateway postrouting | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'; }
n=0
until [ "$(masq)" -gt 0 ] 2>/dev/null || [ $n -ge 300 ]; do sleep 1; n=$((n + 1)); done
echo "GW-MASQ: $(masq) packets masqueraded after $n s"
sed 's/^/lease /' /var/lib/misc/dnsmasq.leases | say GW-LEASE
nft list chain inet pmoves_gateway forward | grep 'LAN to WAN' | say GW-FWD
# The WAN side, played by a namespace behind a veth pair (not lo, LAN or tailscale0).
ip netns add wanside
ip link add wanprobe type veth peer name wanpeer
ip link set wanpeer netns wanside
ip addr add 198.51.100.1/30 dev wanprobe
ip link set wanprobe up
ip -n wanside addr add 198.51.100.2/30 dev wanpeer
ip -n wanside link set lo up
ip -n wanside link set wanpeer up
ip -n wanside route add default via 198.51.100.1
sleep 2
probe() { ip netns exec wanside perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => 7777, Timeout => 5) or do { print "refused or dropped: $!\n"; exit 1 }; print "open: ", scalar <$s>' "$1"; }
drops() { nft list chain inet pmoves_gateway input | sed -n 's/.*counter packets \([0-9]*\) .* comment "default deny".*/\1/p'; }
before=$(drops)
if ip netns exec wanside ping -c 2 -W 2 198.51.100.1 >/tmp/ping.out 2>&1; then r=answered; else r=unanswered; fi
echo "GW-WANSIDE-PING: 198.51.100.1 $r ($(grep -o '[0-9]* received' /tmp/ping.out))"
echo "GW-WANSIDE-TCP: 198.51.100.1:7777 $(probe 198.51.100.1)"
echo "GW-WANSIDE-TCP: 192.168.50.1:7777 $(probe 192.168.50.1)"
echo "GW-WANSIDE-DROPS: default deny counter $before -> $(drops)"
# The control: accept that interface for a moment; the same connection goes through.
nft insert rule inet pmoves_gateway input iifname "wanprobe" accept comment \"gateway.t control\"
echo "GW-CONTROL-TCP: 198.51.100.1:7777 $(probe 198.51.100.1)"
h=$(nft -a list chain inet pmoves_gateway input | sed -n 's/.*gateway.t control.*# handle \([0-9]*\).*/\1/p')
nft delete rule inet pmoves_gateway input handle "$h"
echo "GW-AFTER-CONTROL-TCP: 198.51.100.1:7777 $(probe 198.51.100.1)"
# The client's connection to the service from the LAN, before the guest is stopped.
n=0
until grep -q '^192\.168\.50\.' /run/gw-peers || [ $n -ge 60 ]; do sleep 1; n=$((n + 1)); done
say GW-PEER </run/gw-peers
echo "GW-RESULT: done"
EOF

cat >"$T/cl-evidence.sh" <<'EOF'
#!/bin/sh
# gateway.t: the client's evidence on the console. $1: this test's server port (10.0.2.2 on the WAN).
exec >/dev/console 2>&1
say() { sed "s/^/$1: /"; }
n=0
until ip -4 -o addr show 2>/dev/null | grep -q 'inet 192\.168\.50\.' || [ $n -ge 300 ]; do sleep 1; n=$((n + 1)); done
echo "CLIENT-WAITED: $n s for a lease"
ip -4 -o addr show | say CLIENT-ADDR
ip -4 route | say CLIENT-ROUTE
resolvectl dns 2>&1 | say CLIENT-DNS
for a in 192.168.50.1 10.0.2.15; do
	r=failed
	for _ in 1 2 3 4 5; do
		if ping -c 2 -W 3 "$a" >/tmp/ping.out 2>&1; then r=ok; break; fi
		sleep 2
	done
	echo "CLIENT-PING: $a $r ($(grep -o '[0-9]* received' /tmp/ping.out))"
done
tcp() { perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 10) or do { print "failed: $!\n"; exit 1 }; print "read ", scalar <$s>' "$1" "$2"; }
for _ in 1 2 3 4 5; do out=$(tcp 10.0.2.2 "$1") && break; sleep 3; done
echo "CLIENT-NAT: 10.0.2.2:$1 $out"
echo "CLIENT-LAN-TCP: 192.168.50.1:7777 $(tcp 192.168.50.1 7777)"
echo "CLIENT-RESULT: done"
EOF

unit() { # unit NAME DESCRIPTION EXEC
	printf '[Unit]\nDescription=%s\nWants=systemd-networkd.service\nAfter=systemd-networkd.service dnsmasq.service nftables.service\n\n[Service]\nType=oneshot\nExecStart=%s\n' "$2" "$3"
}
b64() { base64 -w0; }
cat >"$T/gw.json" <<EOF
{
  "files": [
    { "path": "/usr/local/sbin/gw-evidence", "mode": "0755", "content_base64": "$(b64 <"$T/gw-evidence.sh")" },
    { "path": "/etc/systemd/system/gw-evidence.service",
      "content_base64": "$(unit gw-evidence "gateway.t evidence" /usr/local/sbin/gw-evidence | b64)" }
  ],
  "units": { "mask": ["ssh.service"], "start": ["gw-evidence.service"] },
  "steps": { "tailnet": { "enabled": false }, "apt-repositories": { "enabled": false }, "ssh": { "enabled": false },
             "efiboot": { "enabled": false } }
}
EOF
cat >"$T/cl.json" <<EOF
{
  "hostname": "client",
  "files": [
    { "path": "/etc/systemd/network/10-client-lan.network",
      "content": "[Match]\nMACAddress=$MAC_CL\n\n[Network]\nDHCP=ipv4\n" },
    { "path": "/usr/local/sbin/cl-evidence", "mode": "0755", "content_base64": "$(b64 <"$T/cl-evidence.sh")" },
    { "path": "/etc/systemd/system/cl-evidence.service",
      "content_base64": "$(unit cl-evidence "gateway.t client evidence" "/usr/local/sbin/cl-evidence $SRV_PORT" | b64)" }
  ],
  "units": { "mask": ["ssh.service", "dnsmasq.service"], "enable": ["systemd-networkd.service"],
             "start": ["systemd-networkd.service", "cl-evidence.service"] },
  "steps": { "gateway": { "enabled": false }, "tailnet": { "enabled": false }, "apt-repositories": { "enabled": false },
             "ssh": { "enabled": false }, "efiboot": { "enabled": false } }
}
EOF

# The gateway listens (background), the client connects (foreground). TCG without the KVM
# probe (guests hang under KVM here), one CPU each: two guests share the machine's cores.
"$PMOVES_IMAGE" run "$IMG" --net --socket-net "listen:$PORT" --config "$T/gw.json" --log "$T/gw.log" \
	--accel tcg --cpus 1 --expect '^GW-RESULT: ' --timeout 400 >/dev/null 2>"$T/gw.err" &
GPID=$!
sleep 2
"$PMOVES_IMAGE" run "$IMG" --socket-net "connect:$PORT" --config "$T/cl.json" --log "$T/cl.log" \
	--accel tcg --cpus 1 --expect '^CLIENT-RESULT: ' --timeout 360 >/dev/null 2>"$T/cl.err"
ok $? "the client boots, gets its lease and reports"
wait "$GPID"
ok $? "the gateway boots, provisions and reports"
GPID=
# The console mixes in other output (a getty prompt before a marker): a marker starts its line.
for g in gw cl; do sed -E 's/\x1b\[[0-9;]*m//g; s/^.+((GW|CLIENT)-[A-Z-]+: )/\1/' "$T/$g.log" | tr -d '\r' >"$T/$g.txt"; done
G=$T/gw.txt C=$T/cl.txt

# The gateway's first boot.
grep -aqE "^pmoves-firstboot: step=gateway state=ok WAN wan \(52:54:00:12:34:56 by order\) by DHCP, LAN lan \($MAC_GW by order\) 192\.168\.50\.1/24, DHCP 192\.168\.50\.100-192\.168\.50\.200 lease 12h" "$G"
ok $? "gateway: the step is ok, WAN = the user-mode NIC, LAN = the socket NIC, by PCI order"
grep -aq "^pmoves-firstboot: step=tailnet state=skipped" "$G"
ok $? "gateway: the tailnet step is off in this test (no Tailscale here)"
grep -aqE "^pmoves-firstboot: done status=ok" "$G"
ok $? "gateway: first boot done status=ok"
grep -aqx "GW-LINK: lan $MAC_GW" "$G" && grep -aqx "GW-LINK: wan 52:54:00:12:34:56" "$G"
ok $? "gateway: the NICs are renamed wan and lan"
grep -aqx "GW-UDEV-wan: ID_NET_LINK_FILE=/etc/systemd/network/10-pmoves-gateway-wan.link" "$G" &&
	grep -aqx "GW-UDEV-lan: ID_NET_LINK_FILE=/etc/systemd/network/10-pmoves-gateway-lan.link" "$G"
ok $? "gateway: udev's net_setup_link picks our .link files for the NICs (later boots name them so)"
grep -aqE "^GW-ADDR: [0-9]+: wan +inet 10\.0\.2\.15/24 " "$G" && grep -aqE "^GW-ADDR: [0-9]+: lan +inet 192\.168\.50\.1/24 " "$G"
ok $? "gateway: WAN 10.0.2.15 by DHCP, LAN 192.168.50.1/24"
grep -aqx "GW-FORWARD: 1" "$G"
ok $? "gateway: IPv4 forwarding on"
[ "$(grep -acE '^GW-ACTIVE: [a-z-]+ active$' "$G")" = 3 ]
ok $? "gateway: systemd-networkd, nftables and dnsmasq active"
grep -aqE '^GW-NFT:[[:space:]]+type filter hook input priority filter; policy drop;' "$G" &&
	grep -aqE '^GW-NFT:[[:space:]]+type filter hook forward priority filter; policy drop;' "$G" &&
	grep -aqE '^GW-NFT:[[:space:]]+oifname "wan" ip saddr 192\.168\.50\.0/24 counter packets [0-9]+ bytes [0-9]+ masquerade' "$G" &&
	! grep -aqE '^GW-NFT: .*(dnat|redirect)' "$G"
ok $? "gateway: the ruleset loaded: input and forward policy drop, masquerade, no port forwards"
grep -aqiE "^GW-LEASE: lease [0-9]+ $MAC_CL 192\.168\.50\.(1[0-9][0-9]|200) " "$G"
ok $? "gateway: dnsmasq leased the client an address in 192.168.50.100-200"
grep -aqE '^GW-FWD: .*iifname "lan" oifname "wan" counter packets [1-9][0-9]* ' "$G"
ok $? "gateway: the LAN-to-WAN forward rule counted the client's packets"
grep -aqE '^GW-MASQ: [1-9][0-9]* packets masqueraded' "$G"
ok $? "gateway: the client's connection was masqueraded out of the WAN"
grep -aqE '^GW-WANSIDE-PING: 198\.51\.100\.1 unanswered \(0 received\)' "$G"
ok $? "WAN side: a ping to the gateway gets no answer"
grep -aqE '^GW-WANSIDE-TCP: 198\.51\.100\.1:7777 refused or dropped' "$G" && grep -aqE '^GW-WANSIDE-TCP: 192\.168\.50\.1:7777 refused or dropped' "$G"
ok $? "WAN side: a connection to the gateway's service (its WAN-side and LAN addresses) is dropped"
awk '/^GW-WANSIDE-DROPS:/ { exit !($7 > $5) }' "$G" && grep -aq '^GW-WANSIDE-DROPS:' "$G"
ok $? "WAN side: the input chain's default-deny counter rose"
grep -aqE '^GW-CONTROL-TCP: 198\.51\.100\.1:7777 open: gateway-service' "$G" && grep -aqE '^GW-AFTER-CONTROL-TCP: 198\.51\.100\.1:7777 refused or dropped' "$G"
ok $? "control: with the interface accepted for a moment the same connection opens (the drop is the ruleset's), and not after"

# The client.
grep -aqE "^pmoves-firstboot: step=gateway state=skipped" "$C"
ok $? "client: the gateway step is off"
grep -aqE '^CLIENT-ADDR: [0-9]+: [a-z0-9]+ +inet 192\.168\.50\.(1[0-9][0-9]|200)/24 ' "$C"
ok $? "client: a DHCP lease in 192.168.50.100-200"
grep -aqE '^CLIENT-ROUTE: default via 192\.168\.50\.1 ' "$C"
ok $? "client: the default route is the gateway (DHCP router option)"
grep -aqE '^CLIENT-DNS: .*192\.168\.50\.1' "$C"
ok $? "client: the DNS server is the gateway (DHCP dns-server option)"
grep -aqE '^CLIENT-PING: 192\.168\.50\.1 ok' "$C" && grep -aqE '^CLIENT-PING: 10\.0\.2\.15 ok' "$C"
ok $? "client: pings the gateway's LAN address and its WAN address 10.0.2.15"
grep -aqx "CLIENT-NAT: 10.0.2.2:$SRV_PORT read $TOKEN" "$C"
ok $? "client: reads this test's token from 127.0.0.1 through the gateway (LAN -> WAN, NAT)"
grep -aqx "CLIENT-LAN-TCP: 192.168.50.1:7777 read gateway-service" "$C"
ok $? "client: the gateway's service answers on the LAN"
diag "what the real WAN (QEMU user-mode) sent unasked and the input chain dropped:"
grep -a 'comment "WAN: default deny"' "$G" | sed 's/^GW-NFT:[[:space:]]*/#   /'
if [ $_failed -ne 0 ]; then
	diag "--- gateway"
	grep -aE '^(GW-|pmoves-firstboot: (step=(gateway|units|files)|done))' "$G" | sed 's/^/#   /'
	diag "--- client"
	grep -aE '^(CLIENT-|pmoves-firstboot: (step=(gateway|units|files)|done))' "$C" | sed 's/^/#   /'
fi
done_testing
