#!/bin/bash
# The mesh's gateway node for real, on the Raspberry Pi mesh node's own card: two QEMU guests
# from one build of profiles/pi-mesh-node.json (arm64), each booted on QEMU's `virt` machine
# with the kernel, initramfs and command line of the card's firmware partition (run --machine
# virt), wired together by a QEMU socket netdev on 127.0.0.1.
#   - A, the gateway node: its first NIC is QEMU's user-mode one with --net (its uplink: DHCP
#     from QEMU by the profile's own 80-pmoves-dhcp.network, which A's device.json files add
#     to; 10.0.2.2 reaches this machine's 127.0.0.1), the socket NIC its mesh NIC. Its
#     device.json: mesh gateway server with bat0 10.42.0.1/24, the mesh-gateway step with its
#     defaults (the uplink: any interface but bat0 and tailscale0; DHCP for the mesh), and the
#     tailnet step advertising 10.42.0.0/24 to a STAND-IN control server.
#   - B, a field node: mesh gateway client with "address": "dhcp". Its own user-mode NIC (QEMU's
#     default, restrict=on: no connection leaves it) is left unmanaged by networkd through a
#     device.json .network file, so it has no address and no route: the only way out is bat0.
# Neither guest can be logged into: a one-shot unit of each (device.json "files" and "units")
# prints evidence lines to the console, which this test reads:
#   - B: its bat0 lease from A's dnsmasq and its routes (the default through bat0 only), a ping
#     to A across bat0, and a token read from a TCP server of this test on 127.0.0.1 (10.0.2.2
#     for A): B -> bat0 -> A's forward chain and masquerade -> A's uplink -> QEMU -> here;
#   - A: dnsmasq's lease for B, a ping to B's leased address across bat0, forwarding, its table
#     with the forward and masquerade counters that B's connection moved, the boot unit that
#     loads the table on later boots, and, after the first-boot timer's run (2 minutes after
#     boot: the tailnet step waits for the boot to end), the Tailscale stand-in's recorded
#     `tailscale up` flags, its `status --json` with the route, and the forwarding sysctls;
#     last, the boot unit run by hand (the table deleted first, another table added) loads
#     the table again and leaves the other one: what later boots do (the test does not reboot).
# Tailscale and Headscale cannot be installed here: the tailnet part runs against the
# STAND-INS of tests/fixtures/standins/ (tailscale in the guest; headscale's server on this
# machine's 127.0.0.1 with a certificate of a test CA for the name hs.test, which A's /etc/hosts
# puts on 10.0.2.2). It proves our side of that boundary, nothing about Tailscale.
. "$(dirname "$0")/lib.sh"
need qemu-system-aarch64 mmdebstrap base64 python3 openssl ss
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
	skip_all "no binfmt_misc entry for qemu-aarch64 (make deps): an arm64 root filesystem cannot be built here"

T=$(mktemp -d /tmp/pmoves-e2e-meshgw.XXXXXX)
APID= BPID= SPID= HPID=
stop_guests() {
	for p in $APID $BPID; do kill "$p" 2>/dev/null; done
	for p in $APID $BPID; do wait "$p" 2>/dev/null; done
	APID= BPID=
}
cleanup() {
	stop_guests
	for p in $SPID $HPID; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 28
STANDINS=$TOP/tests/fixtures/standins

"$PMOVES_IMAGE" build pi-mesh-node -o "$T" >"$T/build.log" 2>&1
ok $? "build pi-mesh-node"
IMG=$T/pi-mesh-node/pi-mesh-node.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; done_testing; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 10000))
	if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then PORT=$p; break; fi
done
[ -n "$PORT" ] || PORT=$((20000 + $$ % 10000))
PP=$(printf '%04x' "$PORT")
MAC_A=52:54:00:${PP:0:2}:${PP:2:2}:01
MAC_B=52:54:00:${PP:0:2}:${PP:2:2}:02
TOKEN=through-the-mesh-$RANDOM$RANDOM
diag "mesh: socket netdev on 127.0.0.1:$PORT, A $MAC_A, B $MAC_B"

# This test's server behind A's uplink: a token for every connection.
SRV_PORT=$(free_port)
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, a = s.accept(); c.sendall((sys.argv[2] + "\n").encode()); c.close()
' "$SRV_PORT" "$TOKEN" >"$T/srv.log" 2>&1 &
SPID=$!

# The STAND-IN control server (tests/fixtures/standins/headscale serve: openssl s_server) on
# 127.0.0.1, a certificate for hs.test from a test CA, and a pre-auth key it made.
HS=$T/hs HS_PORT=$(free_port)
mkdir -p "$HS/etc/headscale"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30"
(cd "$HS" && openssl req -x509 $ec -keyout ca.key -out ca.pem -subj "/CN=pmoves mesh-gateway.t CA" &&
	openssl req $ec -keyout hs.key -out hs.csr -subj "/CN=hs.test" &&
	printf 'subjectAltName=DNS:hs.test\n' >ext &&
	openssl x509 -req -in hs.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out hs.pem -days 30 -extfile ext) >"$T/pki.log" 2>&1
printf 'listen_addr: 127.0.0.1:%s\ntls_cert_path: /hs.pem\ntls_key_path: /hs.key\ndns:\n  base_domain: mesh.test\n' "$HS_PORT" \
	>"$HS/etc/headscale/config.yaml"
STANDIN_ROOT=$HS "$STANDINS/headscale" serve >"$T/hs.log" 2>&1 &
HPID=$!
for _ in $(seq 1 50); do [ -f "$HS/var/lib/headscale/standin/serving" ] && break; sleep 0.1; done
STANDIN_ROOT=$HS "$STANDINS/headscale" users create mesh >/dev/null 2>>"$T/hs.log"
AUTH_KEY=$(STANDIN_ROOT=$HS "$STANDINS/headscale" preauthkeys create --user 1 --tags tag:mesh 2>>"$T/hs.log")
case $AUTH_KEY in hskey-auth-*) r=0 ;; *) r=1 ;; esac
ok $r "the stand-in control server serves https on 127.0.0.1:$HS_PORT and made a pre-auth key"

# A's evidence (B's bat0 has a MAC of its own, not its NIC's: the lease is the one in 10.42.0.0/24).
cat >"$T/a-evidence.sh" <<'EOF'
#!/bin/sh
# mesh-gateway.t: the gateway node's evidence on the console.
exec >/dev/console 2>&1
echo
say() { sed "s/^/$1: /"; }
n=0
until grep -q ' 10\.42\.0\.' /var/lib/misc/dnsmasq.leases 2>/dev/null || [ $n -ge 600 ]; do sleep 1; n=$((n + 1)); done
echo "A-WAITED: $n s for B's lease"
say A-LEASE </var/lib/misc/dnsmasq.leases
peer=$(awk '$3 ~ /^10\.42\.0\./ { print $3 }' /var/lib/misc/dnsmasq.leases | head -n 1)
result=failed n=0
while [ -n "$peer" ] && [ $n -lt 20 ]; do
	ping -c 3 -W 2 -I bat0 "$peer" >/tmp/ping.out 2>&1
	if grep -q ' 3 received' /tmp/ping.out; then result=ok; break; fi
	n=$((n + 1)); sleep 2
done
echo "A-PING: $peer $result ($(grep -o '[0-9]* received' /tmp/ping.out 2>/dev/null))"
echo "A-FORWARD: $(cat /proc/sys/net/ipv4/ip_forward)"
echo "A-ARCH: $(uname -m)"
echo "A-UNIT: $(systemctl is-enabled pmoves-mesh-gateway.service) $(systemctl is-active dnsmasq.service)"
# B's connection through the NAT moves the masquerade counter.
masq() { nft list chain inet pmoves_mesh_gateway postrouting | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'; }
n=0
until [ "$(masq)" -gt 0 ] 2>/dev/null || [ $n -ge 400 ]; do sleep 1; n=$((n + 1)); done
echo "A-MASQ: $(masq) packets masqueraded after $n s"
ip -4 -o addr show | say A-ADDR
ip -4 route | say A-ROUTE
nft list table inet pmoves_mesh_gateway | say A-NFT
# The tailnet step joins on the first-boot timer's run, 2 minutes after boot.
n=0
until [ -f /var/lib/standin/joined ] || [ $n -ge 600 ]; do sleep 1; n=$((n + 1)); done
sleep 3
echo "A-JOIN-WAITED: $n s"
say A-TS-CALL </var/lib/standin/tailscale.calls
tailscale status --json | say A-TS-STATUS
echo "A-SYSCTL: ipv4 $(cat /proc/sys/net/ipv4/ip_forward) ipv6 $(cat /proc/sys/net/ipv6/conf/all/forwarding)"
# What later boots run: the boot unit loads the table again (here after it was deleted), and
# replaces only that table: another one (standing in for Tailscale's) stays.
has() { nft list table inet "$1" >/dev/null 2>&1 && echo present || echo absent; }
nft add table inet standin_tailscale && nft add chain inet standin_tailscale c
nft delete table inet pmoves_mesh_gateway
echo "A-DELETED: $(has pmoves_mesh_gateway)"
systemctl restart pmoves-mesh-gateway.service
echo "A-BOOT-UNIT: $(systemctl is-active pmoves-mesh-gateway.service) $(has pmoves_mesh_gateway) other $(has standin_tailscale)"
echo
echo "A-RESULT: done"
EOF

# B's evidence. $1: this test's server port (10.0.2.2 behind A).
cat >"$T/b-evidence.sh" <<'EOF'
#!/bin/sh
# mesh-gateway.t: the field node's evidence on the console.
exec >/dev/console 2>&1
echo
say() { sed "s/^/$1: /"; }
n=0
until ip -4 -o addr show dev bat0 2>/dev/null | grep -q 'inet 10\.42\.0\.' || [ $n -ge 600 ]; do sleep 1; n=$((n + 1)); done
echo "B-WAITED: $n s for a lease on bat0"
ip -4 -o addr show | say B-ADDR
ip -4 route | say B-ROUTE
result=failed n=0
while [ $n -lt 20 ]; do
	ping -c 3 -W 2 -I bat0 10.42.0.1 >/tmp/ping.out 2>&1
	if grep -q ' 3 received' /tmp/ping.out; then result=ok; break; fi
	n=$((n + 1)); sleep 2
done
echo "B-PING: 10.42.0.1 $result ($(grep -o '[0-9]* received' /tmp/ping.out))"
tcp() { perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(PeerAddr => $ARGV[0], PeerPort => $ARGV[1], Timeout => 10) or do { print "failed: $!\n"; exit 1 }; print "read ", scalar <$s>' "$1" "$2"; }
for _ in $(seq 1 24); do out=$(tcp 10.0.2.2 "$1") && break; sleep 5; done
echo "B-NAT: 10.0.2.2:$1 $out"
echo "B-ARCH: $(uname -m)"
echo
echo "B-RESULT: done"
EOF

# Type=simple, not oneshot: a oneshot job running for minutes keeps the system "starting",
# and the tailnet step on the timer's run would wait for the boot to end.
unit() { # unit DESCRIPTION EXEC
	printf '[Unit]\nDescription=%s\nWants=systemd-networkd.service\nAfter=systemd-networkd.service dnsmasq.service\n\n[Service]\nType=simple\nExecStart=%s\n' "$1" "$2"
}
b64() { base64 -w0; }
python3 - "$STANDINS" "$HS/ca.pem" "$HS_PORT" "$AUTH_KEY" "$MAC_A" "$MAC_B" \
	"$(b64 <"$T/a-evidence.sh")" "$(unit "mesh-gateway.t evidence" /usr/local/sbin/a-evidence | b64)" >"$T/a.json" <<'PY'
import base64, json, sys
d, ca, port, key, mac_a, mac_b, script, unit = sys.argv[1:]
standin = "[Unit]\nDescription=STAND-IN for %s (pmoves tests)\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
print(json.dumps({
    "mesh": {"interfaces": [{"mac": mac_a}], "address": "10.42.0.1/24", "gateway": "server"},
    "mesh_gateway": {},
    "tailnet": {"login_server": "https://hs.test:" + port, "auth_key": key, "hostname": "meshgw", "tags": ["tag:mesh"],
                "advertise_routes": ["10.42.0.0/24"]},
    "files": [
        {"path": "/usr/bin/tailscale", "content": open(d + "/tailscale").read(), "mode": "0755"},
        {"path": "/etc/systemd/system/tailscaled.service", "content": standin % "tailscaled"},
        {"path": "/etc/ssl/certs/pmoves-mesh-gateway-test-ca.pem", "content": open(ca).read()},
        {"path": "/etc/hosts", "content": "127.0.0.1\tlocalhost\n10.0.2.2\ths.test\n"},
        # The uplink by DHCP is the profile's 80-pmoves-dhcp.network: these files add to the
        # image's (files merge by path); the mesh's own 60-*.network take the mesh NIC first.
        {"path": "/usr/local/sbin/a-evidence", "mode": "0755", "content_base64": script},
        {"path": "/etc/systemd/system/a-evidence.service", "content_base64": unit},
    ],
    "units": {"mask": ["ssh.service"], "start": ["a-evidence.service"]},
    # The stand-ins take the place of Tailscale's repository and package.
    "steps": {"ssh": {"enabled": False}},
}))
PY
python3 - "$MAC_B" "$(b64 <"$T/b-evidence.sh")" "$(unit "mesh-gateway.t evidence" "/usr/local/sbin/b-evidence $SRV_PORT" | b64)" >"$T/b.json" <<'PY'
import json, sys
mac_b, script, unit = sys.argv[1:]
print(json.dumps({
    "mesh": {"interfaces": [{"mac": mac_b}], "address": "dhcp", "gateway": "client"},
    "files": [
        # QEMU's user-mode NIC (its default MAC): unmanaged, no address, no route.
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

# A listens, B connects; both run until both have reported (each pings the other), or one has
# stopped or timed out. One CPU each.
"$PMOVES_IMAGE" run "$IMG" --machine virt --net --socket-net "listen:$PORT" --config "$T/a.json" --log "$T/a.log" \
	--cpus 1 --timeout 1500 >/dev/null 2>"$T/a.err" &
APID=$!
sleep 2
"$PMOVES_IMAGE" run "$IMG" --machine virt --socket-net "connect:$PORT" --config "$T/b.json" --log "$T/b.log" \
	--cpus 1 --timeout 1440 >/dev/null 2>"$T/b.err" &
BPID=$!
until grep -aq 'A-RESULT: ' "$T/a.log" 2>/dev/null && grep -aq 'B-RESULT: ' "$T/b.log" 2>/dev/null; do
	kill -0 "$APID" 2>/dev/null && kill -0 "$BPID" 2>/dev/null || break
	sleep 2
done
stop_guests
# The console mixes in other output (a getty prompt before a marker): a marker starts its line.
for g in a b; do sed -E 's/\x1b\[[0-9;]*m//g; s/^.+([AB]-[A-Z-]+: )/\1/' "$T/$g.log" | tr -d '\r' >"$T/$g.txt"; done
A=$T/a.txt B=$T/b.txt
grep -aq '^A-RESULT: ' "$A"
ok $? "A (gateway node) provisions and reports"
grep -aq '^B-RESULT: ' "$B"
ok $? "B (field node) provisions and reports"

grep -aqx 'A-ARCH: aarch64' "$A" && grep -aqx 'B-ARCH: aarch64' "$B"
ok $? "both are the arm64 card's system (aarch64)"

# A, the gateway node.
grep -aqE "^pmoves-firstboot: step=mesh state=ok bat0 10\.42\.0\.1/24, gateway server," "$A"
ok $? "A: the mesh step is ok (bat0 10.42.0.1/24, gateway server)"
grep -aqxE "pmoves-firstboot: step=mesh-gateway state=ok mesh 10\.42\.0\.0/24 masqueraded out of any interface but bat0 and tailscale0 \(the default route's\), forwarding on; DHCP 10\.42\.0\.128-10\.42\.0\.254 lease 12h on bat0 \(router 10\.42\.0\.1\)" "$A"
ok $? "A: the mesh-gateway step is ok (NAT out of the default route's interface, DHCP on bat0)"
grep -aqE "^A-LEASE: [0-9]+ [0-9a-f:]+ 10\.42\.0\.(1[3-9][0-9]|2[0-4][0-9]|25[0-4]) " "$A"
ok $? "A: dnsmasq leased an address of 10.42.0.128-254 on bat0 (to B's bat0)"
grep -aqE '^A-PING: 10\.42\.0\.[0-9]+ ok' "$A"
ok $? "A: ping -I bat0 to B's leased address: 3 of 3"
grep -aqx "A-FORWARD: 1" "$A"
ok $? "A: IPv4 forwarding on"
grep -aqx "A-UNIT: enabled active" "$A"
ok $? "A: pmoves-mesh-gateway.service enabled (later boots load the table), dnsmasq active"
grep -aqE '^A-NFT:[[:space:]]+iifname "bat0" oifname != \{ "bat0", "tailscale0" \} counter packets [1-9][0-9]* .*accept comment "mesh to the uplink"' "$A"
ok $? "A: the forward chain counted B's packets from bat0 to the uplink"
grep -aqE '^A-MASQ: [1-9][0-9]* packets masqueraded' "$A" &&
	grep -aqE '^A-NFT:[[:space:]]+oifname != \{ "bat0", "tailscale0" \} ip saddr 10\.42\.0\.0/24 counter packets [1-9][0-9]* .*masquerade' "$A"
ok $? "A: B's connection was masqueraded out of the uplink"

# B, the field node.
grep -aqE "^pmoves-firstboot: step=mesh state=ok bat0 by DHCP, gateway client," "$B"
ok $? "B: the mesh step is ok (bat0 by DHCP, gateway client)"
grep -aqE '^B-ADDR: [0-9]+: bat0 +inet 10\.42\.0\.(1[3-9][0-9]|2[0-4][0-9]|25[0-4])/24 ' "$B"
ok $? "B: bat0 has a lease from A in 10.42.0.128-254"
grep -aqE '^B-ROUTE: default via 10\.42\.0\.1 dev bat0' "$B" && [ "$(grep -ac '^B-ROUTE: default' "$B")" = 1 ]
ok $? "B: the default route is via A's bat0 address, and the only one"
! grep -aqE '^B-ADDR: .* inet 10\.0\.2\.' "$B"
ok $? "B: no address on its own user-mode NIC (no way out but the mesh)"
grep -aqE '^B-PING: 10\.42\.0\.1 ok' "$B"
ok $? "B: ping -I bat0 10.42.0.1: 3 of 3"
grep -aqx "B-NAT: 10.0.2.2:$SRV_PORT read $TOKEN" "$B"
ok $? "B: reads this test's token from 127.0.0.1 through A's NAT"

# A's tailnet step, on the timer's run, against the stand-ins.
grep -aqE "^pmoves-firstboot: step=tailnet state=pending tailscaled enabled; joins once the boot is done" "$A"
ok $? "A: during the boot the tailnet step waits for the boot to end"
grep -aqxE "pmoves-firstboot: step=tailnet state=ok on the tailnet as meshgw\.mesh\.test\. 100\.64\.0\.1, routing 10\.42\.0\.0/24" "$A"
ok $? "A: the timer's run joins and finds the route approved in 'tailscale status --json' (stand-in)"
grep -aqxE "A-TS-CALL: up --reset --login-server=https://hs\.test:$HS_PORT --auth-key=file:/var/lib/pmoves/tailnet/auth\.key --hostname=meshgw --advertise-tags=tag:mesh --advertise-routes=10\.42\.0\.0/24 --timeout=60s" "$A"
ok $? "A: the stand-in recorded 'tailscale up ... --advertise-routes=10.42.0.0/24' (the key from a file)"
grep -aqx "A-TS-CALL: key file mode 600" "$A" && grep -aqE "^A-TS-CALL: up: TLS to 'hs\.test:$HS_PORT' verified" "$A"
ok $? "A: the key file was 0600; the stand-in's TLS to the control server verified"
grep -aqE '^A-TS-STATUS: .*"PrimaryRoutes": \["10\.42\.0\.0/24"\]' "$A"
ok $? "A: the stand-in's status --json lists 10.42.0.0/24 in Self.PrimaryRoutes"
grep -aqx "A-SYSCTL: ipv4 1 ipv6 1" "$A"
ok $? "A: IPv4 and IPv6 forwarding on (tailnet step)"
grep -aqx "A-DELETED: absent" "$A" && grep -aqx "A-BOOT-UNIT: active present other present" "$A"
ok $? "A: pmoves-mesh-gateway.service (what later boots run) loads the table, and another table stays"
grep -aqF -- "$AUTH_KEY" "$A" "$B"
[ $? -ne 0 ]
ok $? "the pre-auth key is on neither console"
if [ $_failed -ne 0 ]; then
	for g in a b; do
		diag "--- guest $g"
		grep -aE '^([AB]-|pmoves-firstboot: (step=(mesh|mesh-gateway|tailnet|files|units)|done))' "$T/$g.txt" | sed 's/^/#   /'
	done
fi
done_testing
