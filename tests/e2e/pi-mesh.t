#!/bin/bash
# Two Raspberry Pi mesh nodes built from profiles/pi-mesh-node.json itself, booted on QEMU's
# arm64 `virt` (run --machine virt: the kernel, initramfs and command line from the card's
# firmware partition; raspi3b has no network QEMU can wire), wired together by a QEMU socket
# netdev on 127.0.0.1 (as in mesh.t):
#   - A, the gateway node: its first NIC is QEMU's user-mode one with --net (its uplink, by the
#     profile's DHCP .network; 10.0.2.2 reaches this machine's 127.0.0.1), the socket NIC its
#     mesh link; device.json: mesh gateway server, bat0 10.42.0.1/24, the mesh-gateway step
#     with its defaults (NAT out of the default route's interface, DHCP on bat0).
#   - B, a field node: mesh gateway client, "address": "dhcp"; its own user-mode NIC left
#     unmanaged, so the only way out is bat0.
# Evidence from one-shot units (device.json "files" and "units") on the consoles: B's lease and
# routes, pings both ways through bat0, a token B reads from a TCP server of this test on
# 127.0.0.1 through A's NAT, A's masquerade counter. The tailnet side of the gateway node (its
# subnet route) is tested with Tailscale stand-ins in mesh-gateway.t on x86_64 guests: the same
# pmoves-firstboot code, built for x86_64.
. "$(dirname "$0")/lib.sh"
need qemu-system-aarch64 mmdebstrap base64 python3 ss
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
	skip_all "no binfmt_misc entry for qemu-aarch64 (make deps): an arm64 root filesystem cannot be built here"

T=$(mktemp -d /tmp/pmoves-e2e-pimesh.XXXXXX)
APID= BPID= SPID=
stop_guests() {
	for p in $APID $BPID; do kill "$p" 2>/dev/null; done
	for p in $APID $BPID; do wait "$p" 2>/dev/null; done
	APID= BPID=
}
cleanup() {
	stop_guests
	[ -n "$SPID" ] && { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 14

"$PMOVES_IMAGE" build pi-mesh-node -o "$T" >"$T/build.log" 2>&1
ok $? "build pi-mesh-node"
IMG=$T/pi-mesh-node/pi-mesh-node.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; done_testing; }

PORT=
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 10000))
	if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then PORT=$p; break; fi
done
[ -n "$PORT" ] || PORT=$((20000 + $$ % 10000))
PP=$(printf '%04x' "$PORT")
MAC_A=52:54:00:${PP:0:2}:${PP:2:2}:01
MAC_B=52:54:00:${PP:0:2}:${PP:2:2}:02
TOKEN=through-the-pi-mesh-$RANDOM$RANDOM
diag "mesh: socket netdev on 127.0.0.1:$PORT, A $MAC_A, B $MAC_B"

# This test's server behind A's uplink: a token for every connection.
SRV_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, a = s.accept(); c.sendall((sys.argv[2] + "\n").encode()); c.close()
' "$SRV_PORT" "$TOKEN" >"$T/srv.log" 2>&1 &
SPID=$!

cat >"$T/a-evidence.sh" <<'EOF'
#!/bin/sh
# pi-mesh.t: the gateway node's evidence on the console.
exec >/dev/console 2>&1
echo
n=0
until grep -q ' 10\.42\.0\.' /var/lib/misc/dnsmasq.leases 2>/dev/null || [ $n -ge 600 ]; do sleep 1; n=$((n + 1)); done
peer=$(awk '$3 ~ /^10\.42\.0\./ { print $3 }' /var/lib/misc/dnsmasq.leases | head -n 1)
echo "A-LEASE: ${peer:-none} after $n s"
result=failed n=0
while [ -n "$peer" ] && [ $n -lt 30 ]; do
	ping -c 3 -W 2 -I bat0 "$peer" >/tmp/ping.out 2>&1
	if grep -q ' 3 received' /tmp/ping.out; then result=ok; break; fi
	n=$((n + 1)); sleep 2
done
echo "A-PING: $peer $result"
masq() { nft list chain inet pmoves_mesh_gateway postrouting | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'; }
n=0
until [ "$(masq)" -gt 0 ] 2>/dev/null || [ $n -ge 400 ]; do sleep 1; n=$((n + 1)); done
echo "A-MASQ: $(masq) packets masqueraded after $n s"
echo "A-ARCH: $(uname -m) $(cat /proc/sys/net/ipv4/ip_forward)"
echo
echo "A-RESULT: done"
EOF
# $1: this test's server port (10.0.2.2 behind A).
cat >"$T/b-evidence.sh" <<'EOF'
#!/bin/sh
# pi-mesh.t: the field node's evidence on the console.
exec >/dev/console 2>&1
echo
say() { sed "s/^/$1: /"; }
n=0
until ip -4 -o addr show dev bat0 2>/dev/null | grep -q 'inet 10\.42\.0\.' || [ $n -ge 600 ]; do sleep 1; n=$((n + 1)); done
echo "B-WAITED: $n s for a lease on bat0"
ip -4 -o addr show | say B-ADDR
ip -4 route | say B-ROUTE
result=failed n=0
while [ $n -lt 30 ]; do
	ping -c 3 -W 2 -I bat0 10.42.0.1 >/tmp/ping.out 2>&1
	if grep -q ' 3 received' /tmp/ping.out; then result=ok; break; fi
	n=$((n + 1)); sleep 2
done
echo "B-PING: 10.42.0.1 $result"
tcp() { perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 10) or do { print "failed: $!\n"; exit 1 }; print "read ", scalar <$s>' "$1" "$2"; }
for _ in $(seq 1 24); do out=$(tcp 10.0.2.2 "$1") && break; sleep 5; done
echo "B-NAT: 10.0.2.2:$1 $out"
echo "B-ARCH: $(uname -m)"
echo
echo "B-RESULT: done"
EOF

# Type=simple: a oneshot job running for minutes would keep the boot "starting".
unit() { printf '[Unit]\nDescription=pi-mesh.t evidence\nWants=systemd-networkd.service\nAfter=systemd-networkd.service dnsmasq.service\n\n[Service]\nType=simple\nExecStart=%s\n' "$1" | base64 -w0; }
python3 - "$MAC_A" "$(base64 -w0 <"$T/a-evidence.sh")" "$(unit /usr/local/sbin/a-evidence)" >"$T/a.json" <<'PY'
import json, sys
mac, script, unit = sys.argv[1:]
print(json.dumps({
    "hostname": "pi-mesh-gw",
    "mesh": {"interfaces": [{"mac": mac}], "address": "10.42.0.1/24", "gateway": "server"},
    "mesh_gateway": {},
    "files": [
        # The uplink by DHCP, as the profile's 80-pmoves-dhcp.network does: a "files" list in
        # device.json replaces the profile's (arrays replace when configs merge).
        {"path": "/etc/systemd/network/80-uplink.network",
         "content": "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nDHCP=ipv4\n"},
        {"path": "/usr/local/sbin/a-evidence", "mode": "0755", "content_base64": script},
        {"path": "/etc/systemd/system/a-evidence.service", "content_base64": unit},
    ],
    "units": {"mask": ["ssh.service"], "start": ["a-evidence.service"]},
    "steps": {"ssh": {"enabled": False}},
}))
PY
python3 - "$MAC_B" "$(base64 -w0 <"$T/b-evidence.sh")" "$(unit "/usr/local/sbin/b-evidence $SRV_PORT")" >"$T/b.json" <<'PY'
import json, sys
mac, script, unit = sys.argv[1:]
print(json.dumps({
    "hostname": "pi-mesh-field",
    "mesh": {"interfaces": [{"mac": mac}], "address": "dhcp", "gateway": "client"},
    "files": [
        # QEMU's user-mode NIC (its default MAC): unmanaged, no address, no route; sorts before
        # the profile's 80-pmoves-dhcp.network.
        {"path": "/etc/systemd/network/10-b-no-uplink.network",
         "content": "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Link]\nUnmanaged=yes\n"},
        {"path": "/usr/local/sbin/b-evidence", "mode": "0755", "content_base64": script},
        {"path": "/etc/systemd/system/b-evidence.service", "content_base64": unit},
    ],
    "units": {"mask": ["ssh.service", "dnsmasq.service"], "start": ["b-evidence.service"]},
    "steps": {"ssh": {"enabled": False}},
}))
PY
ok $? "device configs for A (gateway node) and B (field node)"

# A listens, B connects; both run until both have reported, or one has stopped or timed out.
"$PMOVES_IMAGE" run "$IMG" --machine virt --net --socket-net "listen:$PORT" --config "$T/a.json" --log "$T/a.log" \
	--cpus 1 --timeout 1200 >/dev/null 2>"$T/a.err" &
APID=$!
sleep 2
"$PMOVES_IMAGE" run "$IMG" --machine virt --socket-net "connect:$PORT" --config "$T/b.json" --log "$T/b.log" \
	--cpus 1 --timeout 1140 >/dev/null 2>"$T/b.err" &
BPID=$!
until grep -aq 'A-RESULT: ' "$T/a.log" 2>/dev/null && grep -aq 'B-RESULT: ' "$T/b.log" 2>/dev/null; do
	kill -0 "$APID" 2>/dev/null && kill -0 "$BPID" 2>/dev/null || break
	sleep 2
done
stop_guests
for g in a b; do sed -E 's/\x1b\[[0-9;]*m//g; s/^.+([AB]-[A-Z-]+: )/\1/' "$T/$g.log" | tr -d '\r' >"$T/$g.txt"; done
A=$T/a.txt B=$T/b.txt
grep -aq '^A-RESULT: ' "$A"
ok $? "A (gateway node) provisions and reports"
grep -aq '^B-RESULT: ' "$B"
ok $? "B (field node) provisions and reports"

grep -aqx 'A-ARCH: aarch64 1' "$A" && grep -aqx 'B-ARCH: aarch64' "$B"
ok $? "both are the arm64 card's system (aarch64), A forwards"
grep -aqE "^pmoves-firstboot: step=mesh state=ok bat0 10\.42\.0\.1/24, gateway server," "$A"
ok $? "A: the mesh step is ok (bat0 10.42.0.1/24, gateway server)"
grep -aqE "^pmoves-firstboot: step=mesh-gateway state=ok mesh 10\.42\.0\.0/24 masqueraded out of " "$A"
ok $? "A: the mesh-gateway step is ok (NAT, DHCP on bat0)"
grep -aqE "^pmoves-firstboot: step=mesh state=ok bat0 by DHCP, gateway client," "$B"
ok $? "B: the mesh step is ok (bat0 by DHCP, gateway client)"
grep -aqE '^B-ADDR: [0-9]+: bat0 +inet 10\.42\.0\.(1[3-9][0-9]|2[0-4][0-9]|25[0-4])/24 ' "$B"
ok $? "B: bat0 has a lease from A in 10.42.0.128-254"
grep -aqE '^B-ROUTE: default via 10\.42\.0\.1 dev bat0' "$B" && [ "$(grep -ac '^B-ROUTE: default' "$B")" = 1 ]
ok $? "B: the default route is via A's bat0 address, and the only one"
grep -aqE '^B-PING: 10\.42\.0\.1 ok' "$B"
ok $? "B: ping -I bat0 10.42.0.1: 3 of 3"
grep -aqE '^A-PING: 10\.42\.0\.[0-9]+ ok' "$A"
ok $? "A: ping -I bat0 to B's leased address: 3 of 3"
grep -aqx "B-NAT: 10.0.2.2:$SRV_PORT read $TOKEN" "$B"
ok $? "B: reads this test's token from 127.0.0.1 through A's NAT"
grep -aqE '^A-MASQ: [1-9][0-9]* packets masqueraded' "$A"
ok $? "A: B's connection was masqueraded out of the uplink"
if [ $_failed -ne 0 ]; then
	for g in a b; do
		diag "--- guest $g"
		sed 's/^/#   /' "$T/$g.err" | tail -n 5
		grep -aE '^([AB]-|pmoves-firstboot: (step=(mesh|mesh-gateway|files|units)|done))' "$T/$g.txt" | sed 's/^/#   /'
	done
fi
done_testing
