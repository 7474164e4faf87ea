#!/bin/bash
# The mesh step for real: two QEMU guests from one image (base-debian plus the mesh's tools:
# tests/fixtures/mesh/mesh-test.json) wired together by a QEMU socket netdev on 127.0.0.1
# (pmoves-image run --socket-net listen:PORT / connect:PORT; the second NIC's MAC is
# 52:54:00:PP:PP:01 on the listening side and :02 on the other, PPPP the port in hex). Each
# guest's device.json names that NIC by MAC for the mesh, with its own bat0 address (10.42.0.1
# gateway server, 10.42.0.2 gateway client). A one-shot unit installed through the "files" and
# "units" sections waits for the batman-adv neighbour, then writes `batctl n`, the gateway mode,
# the gateway list, bridge loop avoidance, the MTUs, what later boots use (networkd enabled,
# modules-load.d) and a ping across bat0 to the console, where this test reads them. Both
# guests run until both have reported, for each pings the other: B used to be stopped as soon
# as it had reported, and when A's ping rounds ran a few seconds behind B's, A went on pinging
# a machine that was off (the "one-sided ping" of about 1 run in 4). MESH_REBOOT=1: the guests
# reboot after provisioning ("finally": "reboot") and the evidence comes from the second boot,
# when only the persistent configuration brings the mesh up. The radios (802.11s with SAE) are
# tests/e2e/mesh-wifi.t's.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap base64
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-mesh.XXXXXX)
APID= BPID=
stop_guests() {
	for p in $APID $BPID; do kill "$p" 2>/dev/null; done
	for p in $APID $BPID; do wait "$p" 2>/dev/null; done
	APID= BPID=
}
cleanup() {
	stop_guests
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 24

"$PMOVES_IMAGE" build "$TOP/tests/fixtures/mesh/mesh-test.json" -o "$T" >"$T/build.log" 2>&1
ok $? "build the mesh test image (tests/fixtures/mesh/mesh-test.json)"
IMG=$T/mesh-test/mesh-test.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; done_testing; }

# A free port in 20000-29999 for the socket netdev.
PORT=
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 10000))
	if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then PORT=$p; break; fi
done
[ -n "$PORT" ] || PORT=$((20000 + $$ % 10000))
PP=$(printf '%04x' "$PORT")
MAC_A=52:54:00:${PP:0:2}:${PP:2:2}:01
MAC_B=52:54:00:${PP:0:2}:${PP:2:2}:02
diag "socket netdev on 127.0.0.1:$PORT, mesh NICs $MAC_A and $MAC_B"

# The evidence script, run on the guest: MY_MAC PEER_ADDRESS.
cat >"$T/evidence.sh" <<'EOF'
#!/bin/sh
# mesh.t: batman-adv evidence on the console, after the mesh came up from its configuration.
mac=$1 peer=$2
exec >/dev/console 2>&1
echo # a login prompt may be on the console's current line
say() { sed "s/^/$1: /"; }
n=0
until batctl meshif bat0 n -H 2>/dev/null | grep -q . || [ $n -ge 180 ]; do sleep 1; n=$((n + 1)); done
echo "MESH-WAITED: $n s for a neighbour"
batctl meshif bat0 n 2>&1 | say MESH-N
batctl meshif bat0 if 2>&1 | say MESH-IF
echo "MESH-GW-MODE: $(batctl meshif bat0 gw_mode 2>&1)"
echo "MESH-BLA: $(batctl meshif bat0 bridge_loop_avoidance 2>&1)"
for d in /sys/class/net/*; do
	[ "$(cat "$d/address" 2>/dev/null)" = "$mac" ] && echo "MESH-MTU: hard $(basename "$d") $(cat "$d/mtu")"
done
echo "MESH-MTU: bat0 $(cat /sys/class/net/bat0/mtu)"
echo "MESH-BOOT: networkd $(systemctl is-enabled systemd-networkd.service 2>&1), modules-load $(grep -v '^#' /etc/modules-load.d/pmoves-mesh.conf 2>&1), module $(cat /sys/module/batman_adv/version 2>&1)"
ip -4 -o addr show dev bat0 2>&1 | say MESH-ADDR
# A neighbour in `batctl n` does not mean the peer already has its address on bat0, or that
# the first packets find a route: ping exits 0 when any reply came back, so a round counts only
# when all three were answered, and the rounds before it are printed too.
result=failed n=0
while [ $n -lt 30 ]; do
	ping -c 3 -W 2 -I bat0 "$peer" >/tmp/ping.out 2>&1
	if grep -q ' 3 received' /tmp/ping.out; then result=ok; break; fi
	sed -n 's/^\(.*packets transmitted.*\)/MESH-PING-RETRY: \1/p' /tmp/ping.out
	n=$((n + 1)); sleep 2
done
echo "MESH-PING-ROUNDS: $((n + 1))"
say MESH-PING </tmp/ping.out
if [ $result = failed ]; then
	ip neigh show dev bat0 2>&1 | say MESH-FAILED-NEIGH
	batctl meshif bat0 dc -H 2>&1 | say MESH-FAILED-DAT
	batctl meshif bat0 tg -H 2>&1 | say MESH-FAILED-TG
	batctl meshif bat0 s 2>&1 | grep -E 'tx|rx' | tr -s ' \n' ' ' | say MESH-FAILED-STATS
	echo
fi
n=0 # the gateway announcement needs a few originator intervals
until batctl meshif bat0 gwl -H 2>/dev/null | grep -q . || [ $n -ge 15 ]; do sleep 1; n=$((n + 1)); done
batctl meshif bat0 gwl -H 2>&1 | say MESH-GWL
echo
echo "MESH-RESULT: ping $peer $result"
EOF
cat >"$T/evidence.service" <<'EOF'
[Unit]
Description=mesh.t evidence: batman-adv neighbour and a ping across bat0
Wants=systemd-networkd.service
After=systemd-networkd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mesh-evidence @MAC@ @PEER@

[Install]
WantedBy=multi-user.target
EOF

# device MAC ADDRESS GATEWAY PEER > device.json
device() {
	script=$(base64 -w0 <"$T/evidence.sh")
	unit=$(sed "s/@MAC@/$1/; s/@PEER@/$4/" "$T/evidence.service" | base64 -w0)
	cat <<EOF
{
  "mesh": { "interfaces": [ { "mac": "$1", "type": "ethernet" } ], "address": "$2/24", "gateway": "$3" },
  "files": [
    { "path": "/usr/local/sbin/mesh-evidence", "mode": "0755", "content_base64": "$script" },
    { "path": "/etc/systemd/system/mesh-evidence.service", "content_base64": "$unit" }
  ],
  "units": { "enable": ["mesh-evidence.service"], "mask": ["ssh.service"]$START },
  "steps": { "ssh": { "enabled": false }, "efiboot": { "enabled": false } },
  "finally": "$FINALLY"
}
EOF
}
# One boot by default (the test stays within ~6 minutes on a loaded 2-core machine): the
# evidence unit is started on the first boot, after the mesh step. MESH_REBOOT=1: the guests
# reboot after provisioning and the evidence comes from the second boot, when only the
# persistent configuration brings the mesh up (about twice as long).
# Timeouts: a guest boot under TCG takes 1 to 4 minutes here depending on the machine's load.
if [ -n "${MESH_REBOOT:-}" ]; then
	BOOTS=2 FINALLY=reboot START= TA=1200 TB=1080
else
	BOOTS=1 FINALLY=none START=', "start": ["mesh-evidence.service"]' TA=480 TB=420
fi
device "$MAC_A" 10.42.0.1 server 10.42.0.2 >"$T/a.json"
device "$MAC_B" 10.42.0.2 client 10.42.0.1 >"$T/b.json"

# A listens, B connects; both boot (twice) and print their evidence. Neither is stopped when
# it has reported: the other may still be pinging it (its ping rounds take up to ~4 min), so
# both run until both have reported, or one of them has stopped or timed out. TCG without
# the KVM probe (guests hang under KVM here). The ssh and efiboot steps are off and sshd
# masked: host keys under TCG cost time.
"$PMOVES_IMAGE" run "$IMG" --socket-net "listen:$PORT" --config "$T/a.json" --log "$T/a.log" \
	--accel tcg --timeout $TA >/dev/null 2>"$T/a.err" &
APID=$!
sleep 2
"$PMOVES_IMAGE" run "$IMG" --socket-net "connect:$PORT" --config "$T/b.json" --log "$T/b.log" \
	--accel tcg --timeout $TB >/dev/null 2>"$T/b.err" &
BPID=$!
until grep -aq 'MESH-RESULT: ' "$T/a.log" 2>/dev/null && grep -aq 'MESH-RESULT: ' "$T/b.log" 2>/dev/null; do
	kill -0 "$APID" 2>/dev/null && kill -0 "$BPID" 2>/dev/null || break
	sleep 2
done
stop_guests
for g in a b; do sed 's/\x1b\[[0-9;]*m//g' "$T/$g.log" | tr -d '\r' >"$T/$g.txt"; done
grep -aq 'MESH-RESULT: ' "$T/b.txt"
ok $? "guest B (connecting) provisions and reports"
grep -aq 'MESH-RESULT: ' "$T/a.txt"
ok $? "guest A (listening) provisions and reports"

# check_guest NAME FILE MY_MAC PEER_MAC ADDRESS GATEWAY PEER
check_guest() {
	local g=$1 f=$2 mac=$3 peer_mac=$4 addr=$5 gw=$6 peer=$7
	grep -aqF "pmoves-firstboot: step=mesh state=ok bat0 $addr/24, gateway $gw, batman-iv, MTU 1500 over $mac ethernet MTU 1532" "$f"
	ok $? "$g: first boot: the mesh step is ok (bat0 $addr/24, gateway $gw, $mac MTU 1532)"
	is "$(grep -ac 'Linux version' "$f")" $BOOTS "$g: the guest booted $BOOTS time(s)"
	awk '/Linux version/ { boot++ } /MESH-RESULT: / { print boot }' "$f" | grep -qx $BOOTS
	ok $? "$g: the evidence is from boot $BOOTS"
	grep -aqE "MESH-BOOT: networkd enabled, modules-load batman-adv, module " "$f"
	ok $? "$g: for later boots: systemd-networkd enabled, batman-adv in modules-load.d (and loaded)"
	grep -aqiE "MESH-N: .*$peer_mac" "$f"
	ok $? "$g: batctl n shows the neighbour $peer_mac"
	grep -aqE "MESH-MTU: hard [^ ]+ 1532$" "$f"
	ok $? "$g: the hard interface's MTU is 1532"
	grep -aqE "MESH-ADDR: .* inet $addr/24 " "$f"
	ok $? "$g: bat0 has $addr/24"
	# Its echo requests reach the peer and the peer's replies reach it: with both guests'
	# checks, both directions across bat0 from both ends.
	grep -aqE "MESH-RESULT: ping $peer ok$" "$f" && grep -aqE "MESH-PING: 3 packets transmitted, 3 received" "$f"
	ok $? "$g: ping -I bat0 $peer: 3 of 3 answered"
	diag "$g: ping rounds until 3 of 3: $(sed -n 's/.*MESH-PING-ROUNDS: //p' "$f")"
	grep -aqE "MESH-GW-MODE: $gw( |$)" "$f"
	ok $? "$g: batctl gw_mode is $gw"
	# With it on, batman-adv dropped every broadcast, ARP too, for 20-30 s after bat0 came up.
	grep -aqE "MESH-BLA: disabled$" "$f"
	ok $? "$g: bridge loop avoidance is off (bat0 is bridged into no LAN)"
}
check_guest A "$T/a.txt" "$MAC_A" "$MAC_B" 10.42.0.1 server 10.42.0.2
check_guest B "$T/b.txt" "$MAC_B" "$MAC_A" 10.42.0.2 client 10.42.0.1
# The client sees the server's gateway announcement.
grep -aqiE "MESH-GWL: .*$MAC_A" "$T/b.txt"
ok $? "B (client): batctl gwl lists A's gateway"
if [ $_failed -ne 0 ]; then
	for g in a b; do
		diag "--- guest $g: mesh lines"
		grep -aE '(MESH-|pmoves-firstboot: (step=mesh|done))' "$T/$g.txt" | sed 's/^/#   /'
	done
fi
done_testing
