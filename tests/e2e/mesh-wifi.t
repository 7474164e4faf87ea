#!/bin/bash
# The mesh step's encrypted radios for real: one QEMU guest of tests/fixtures/mesh/mesh-test.json
# (base-debian plus batctl, iw, iputils-ping, Debian's wpasupplicant and wireless-regdb) with three
# simulated radios (mac80211_hwsim radios=3, in the Debian kernel; loaded after the step ran, so
# their units start when the devices appear). wlan0 and wlan1 have the same key and must form an
# 802.11s mesh secured with SAE by the real wpa_supplicant 2.10 (an established peer link each
# way, key_mgmt=SAE, mesh_fwding 0, both active in bat0, the regulatory domain set); wlan2 has a
# wrong key and must not get a peer link with either. The key must not be on the console, in
# the guest's status.json or state.json (printed base64-encoded by the evidence unit, decoded and
# searched here), and the supplicant config must be 0600 root:root. All three radios are one
# batman-adv node: this checks the radio side, not the routing (tests/e2e/mesh.t does that).
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap base64
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-mesh-wifi.XXXXXX)
cleanup() { [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 23

KEY='mesh-wifi.t "right" key #1'
WRONG='mesh-wifi.t wrong key #2'

"$PMOVES_IMAGE" build "$TOP/tests/fixtures/mesh/mesh-test.json" -o "$T" >"$T/build.log" 2>&1
ok $? "build the mesh test image (tests/fixtures/mesh/mesh-test.json)"
IMG=$T/mesh-test/mesh-test.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; done_testing; }

cat >"$T/wifi.sh" <<'EOF'
#!/bin/sh
# mesh-wifi.t: evidence of the radios on the console.
exec >/dev/console 2>&1
echo
modprobe mac80211_hwsim radios=3
# wlan0 and wlan1 peered both ways, then time for wlan2's (failing) SAE attempts.
n=0
until { iw dev wlan0 station dump; iw dev wlan1 station dump; } 2>/dev/null | grep -c 'mesh plink:.*ESTAB' | grep -qx '[2-9]' ||
	[ $n -ge 180 ]; do sleep 1; n=$((n + 1)); done
sleep 20
echo "WIFI-WAITED: $n s"
for i in wlan0 wlan1 wlan2; do
	echo "WIFI-MAC-$i: $(cat /sys/class/net/$i/address)"
	echo "WIFI-UNIT-$i: $(systemctl is-active pmoves-mesh-$i.service)"
	iw dev $i info 2>&1 | sed "s/^/WIFI-INFO-$i: /"
	echo "WIFI-FWD-$i: $(iw dev $i get mesh_param mesh_fwding 2>&1)"
	echo "WIFI-MTU-$i: $(cat /sys/class/net/$i/mtu)"
	wpa_cli -i $i status 2>&1 | sed "s/^/WIFI-WPA-$i: /"
	echo "WIFI-KEYMGMT-$i: $(wpa_cli -i $i get_network 0 key_mgmt 2>&1)"
	# Per peer: the peer link state, and the station flags wpa_supplicant's secured peering
	# sets (MFP: protected management frames; authorized: the keys are in place).
	iw dev $i station dump 2>&1 | awk -v i=$i '/^Station/ { sta = $2 } /mesh plink:/ { print "WIFI-STA-" i ": " sta " " $3 }
		/^[ \t]*MFP:/ { print "WIFI-MFP-" i ": " sta " " $2 } /^[ \t]*authorized:/ { print "WIFI-AUTHZ-" i ": " sta " " $2 }'
	journalctl -b -u pmoves-mesh-$i.service --no-pager 2>&1 | grep -oE 'MESH-[A-Z-]+ addr=[0-9a-f:]+' | sort -u | sed "s/^/WIFI-EVENT-$i: /"
	echo "WIFI-CONF-$i: $(stat -c '%a %U:%G' /etc/wpa_supplicant/pmoves-mesh-$i.conf 2>&1)"
done
batctl meshif bat0 if 2>&1 | sed 's/^/WIFI-BATIF: /'
iw reg get 2>&1 | grep -m1 country | sed 's/^/WIFI-REG: /'
echo "WIFI-STATUS: $(base64 -w0 /var/lib/pmoves/firstboot/status.json)"
echo "WIFI-STATE: $(base64 -w0 /var/lib/pmoves/firstboot/state.json)"
echo
echo "WIFI-RESULT: done"
EOF
unit=$(printf '[Unit]\nDescription=mesh-wifi.t evidence\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/wifi-evidence\n' | base64 -w0)
radio() { # radio NAME KEY
	printf '{ "name": "%s", "type": "80211s", "mesh_id": "pmoves-test", "channel": 1, "key": "%s" }' "$1" "$(printf '%s' "$2" | sed 's/"/\\"/g')"
}
cat >"$T/wifi.json" <<EOF
{
  "mesh": { "interfaces": [ $(radio wlan0 "$KEY"), $(radio wlan1 "$KEY"), $(radio wlan2 "$WRONG") ],
            "address": "10.42.0.3/24", "country": "DE" },
  "files": [
    { "path": "/usr/local/sbin/wifi-evidence", "mode": "0755", "content_base64": "$(base64 -w0 <"$T/wifi.sh")" },
    { "path": "/etc/systemd/system/wifi-evidence.service", "content_base64": "$unit" }
  ],
  "units": { "start": ["wifi-evidence.service"], "mask": ["ssh.service"] },
  "steps": { "ssh": { "enabled": false }, "efiboot": { "enabled": false } }
}
EOF
# TCG without the KVM probe (guests hang under KVM here); a boot takes 1 to 4 minutes here.
"$PMOVES_IMAGE" run "$IMG" --config "$T/wifi.json" --log "$T/wifi.log" --accel tcg \
	--expect 'WIFI-RESULT: ' --timeout 600 >/dev/null 2>"$T/wifi.err"
ok $? "the guest with three simulated radios provisions and reports"
sed 's/\x1b\[[0-9;]*m//g' "$T/wifi.log" | tr -d '\r' >"$T/wifi.txt"
f=$T/wifi.txt
val() { sed -n "s/^.*$1: //p" "$f" | head -n 1; }
M0=$(val WIFI-MAC-wlan0) M1=$(val WIFI-MAC-wlan1) M2=$(val WIFI-MAC-wlan2)
diag "radios: wlan0 $M0, wlan1 $M1, wlan2 $M2 (waited $(val WIFI-WAITED))"

grep -aqF "pmoves-firstboot: step=mesh state=ok bat0 10.42.0.3/24, gateway client, batman-iv, MTU 1500 over wlan0 80211s MTU 1532, wlan1 80211s MTU 1532, wlan2 80211s MTU 1532" "$f"
ok $? "the mesh step is ok with the three radios"
is "$(grep -aE 'WIFI-UNIT-wlan[012]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "active " "the three radios' units run (wpa_supplicant)"
is "$(grep -aE 'WIFI-CONF-wlan[012]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "600 root:root " "the supplicant configs are 0600 root:root"
is "$(grep -aE 'WIFI-INFO-wlan[01]: .*type ' "$f" | sed 's/.*type //' | sort -u | tr '\n' ' ')" "mesh point " "wlan0 and wlan1 are mesh points"
grep -aqiE "WIFI-STA-wlan0: $M1 ESTAB" "$f"
ok $? "wlan0 has an established 802.11s peer link with wlan1 ($M1)"
grep -aqiE "WIFI-STA-wlan1: $M0 ESTAB" "$f"
ok $? "wlan1 has an established 802.11s peer link with wlan0 ($M0)"
is "$(grep -aE '^WIFI-KEYMGMT-wlan[01]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "SAE " "wpa_supplicant's mesh network on wlan0 and wlan1: key_mgmt SAE"
grep -aqiE "WIFI-MFP-wlan0: $M1 yes" "$f" && grep -aqiE "WIFI-MFP-wlan1: $M0 yes" "$f" &&
	grep -aqiE "WIFI-AUTHZ-wlan0: $M1 yes" "$f" && grep -aqiE "WIFI-AUTHZ-wlan1: $M0 yes" "$f"
ok $? "wlan0 and wlan1 see each other MFP and authorized (a secured peering: SAE, then AMPE's keys)"
grep -aqiE "WIFI-AUTHZ-wlan0: $M2 no" "$f" && grep -aqiE "WIFI-AUTHZ-wlan1: $M2 no" "$f"
ok $? "wlan0 and wlan1 see wlan2 ($M2) but not authorized"
grep -aqiE "WIFI-EVENT-wlan2: MESH-SAE-AUTH-FAILURE addr=($M0|$M1)" "$f" || grep -aqiE "WIFI-EVENT-wlan[01]: MESH-SAE-AUTH-FAILURE addr=$M2" "$f"
ok $? "SAE with wlan2 (wrong key) failed (MESH-SAE-AUTH-FAILURE in wpa_supplicant's log)"
is "$(grep -aE '^WIFI-WPA-wlan[01]: (mode|wpa_state)=' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "mode=mesh wpa_state=COMPLETED " "wpa_supplicant on wlan0 and wlan1: mode=mesh, COMPLETED"
[ -n "$M2" ] && ! grep -aqiE "WIFI-STA-wlan[01]: $M2 ESTAB" "$f"
ok $? "wlan2 (wrong key, $M2) has no established peer link with wlan0 or wlan1"
! grep -aqE "WIFI-STA-wlan2: .* ESTAB" "$f"
ok $? "wlan2 has no established peer link at all"
is "$(grep -aE 'WIFI-FWD-wlan[01]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "0 " "802.11s forwarding off on wlan0 and wlan1 (mesh_fwding=0): batman-adv routes"
is "$(grep -aE 'WIFI-MTU-wlan[01]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "1532 " "wlan0 and wlan1 have MTU 1532"
is "$(grep -acE 'WIFI-BATIF: wlan[01]: active' "$f")" 2 "batctl if: wlan0 and wlan1 active in bat0"
grep -aqE "WIFI-REG: country DE" "$f"
ok $? "the regulatory domain is DE (wpa_supplicant's country=)"
! grep -aqF "$KEY" "$f" && ! grep -aqF "$WRONG" "$f"
ok $? "neither key is on the console"
st=$(val WIFI-STATUS | base64 -d 2>/dev/null)
[ -n "$st" ] && ! printf '%s' "$st" | grep -qF "$KEY" && ! printf '%s' "$st" | grep -qF "$WRONG"
ok $? "the guest's status.json ($(printf '%s' "$st" | wc -c) bytes) has neither key"
st=$(val WIFI-STATE | base64 -d 2>/dev/null)
[ -n "$st" ] && ! printf '%s' "$st" | grep -qF "$KEY" && ! printf '%s' "$st" | grep -qF "$WRONG"
ok $? "the guest's state.json ($(printf '%s' "$st" | wc -c) bytes) has neither key"
printf '%s' "$st" | grep -q '"mesh"'
ok $? "state.json has the mesh step (the search above looked at the right file)"
[ $_failed -eq 0 ] || grep -aE 'WIFI-|step=mesh|pmoves-mesh' "$f" | grep -v -e WIFI-STATUS -e WIFI-STATE | sed 's/^/#   /'
done_testing
