#!/bin/bash
# The HaLow path of the mesh step, end to end with STAND-INS: a radio whose driver Debian does
# not ship comes as the vendor's out-of-tree module package, a pinned artifact baked into the
# image, and the mesh step brings the radios up with SAE once they exist.
#
# The stand-in vendor driver package (a .deb built here with dpkg-deb, named a stand-in in its
# name and description; no HaLow driver is installable here) holds: /etc/modules-load.d and
# /etc/modprobe.d files that load mac80211_hwsim (in the Debian kernel) with radios=2 at boot,
# a postinst that loads it now, and a stand-in vendor supplicant,
# /opt/pmoves-stand-in-vendor/sbin/wpa_supplicant_s1g, a script that says it is a stand-in and
# execs Debian's /usr/sbin/wpa_supplicant. It is served by tests/fixtures/artifact-server.py on
# 127.0.0.1 at build time and baked (the guest has no network out).
#
# The profile's firstboot section has the mesh without the keys, as a profile for many cards
# would (pmoves-image build validates it); the key comes in the device config (fw_cfg), which
# repeats the whole mesh section (each config source is validated alone, arrays replace). Radio
# 02:00:00:00:00:00 is named by MAC (Debian's supplicant), wlan1 by name with the stand-in
# vendor supplicant. Checked: the artifacts step installs the package, the radios exist with
# the module's options, the mesh step is ok, both units run, wlan1's runs the stand-in that
# became /usr/sbin/wpa_supplicant, an established SAE peer link each way, and the key on no
# console line, nor in status.json or state.json. Not tested: HaLow hardware, a vendor's driver
# and supplicant, S1G channels and widths, DKMS builds (docs/firstboot.md).
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap python3 dpkg-deb base64
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-mesh-halow.XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
plan 22

KEY='mesh-halow.t key "#1"'
VENDOR=/opt/pmoves-stand-in-vendor/sbin/wpa_supplicant_s1g
PKG=pmoves-stand-in-halow-driver

# The stand-in vendor driver package.
D=$T/deb
mkdir -p "$D/DEBIAN" "$D/etc/modules-load.d" "$D/etc/modprobe.d" "$D/opt/pmoves-stand-in-vendor/sbin"
cat >"$D/DEBIAN/control" <<EOF
Package: $PKG
Version: 1.0
Architecture: all
Maintainer: pmoves tests <tests@example.org>
Description: STAND-IN for a vendor's HaLow driver package (tests/e2e/mesh-halow.t)
 Not a real driver: loads mac80211_hwsim, the Debian kernel's simulated radios.
EOF
printf '#!/bin/sh\n# stand-in vendor driver postinst: load the (simulated) driver now\nset -e\n[ "$1" != configure ] || modprobe mac80211_hwsim\n' >"$D/DEBIAN/postinst"
chmod 755 "$D/DEBIAN/postinst"
echo mac80211_hwsim >"$D/etc/modules-load.d/$PKG.conf"
echo 'options mac80211_hwsim radios=2' >"$D/etc/modprobe.d/$PKG.conf"
cat >"$D$VENDOR" <<'EOF'
#!/bin/sh
# STAND-IN for a vendor's wpa_supplicant build (tests/e2e/mesh-halow.t): runs Debian's.
echo "stand-in vendor supplicant: exec /usr/sbin/wpa_supplicant $*" >&2
exec /usr/sbin/wpa_supplicant "$@"
EOF
chmod 755 "$D$VENDOR"
mkdir -p "$T/files"
dpkg-deb --root-owner-group -b "$D" "$T/files/driver.deb" >/dev/null || skip_all "dpkg-deb cannot build the stand-in package"
SHA=$(sha256sum "$T/files/driver.deb" | cut -d' ' -f1)

python3 "$TOP/tests/fixtures/artifact-server.py" --port-file "$T/port" --files "$T/files" --log "$T/requests" 2>"$T/server.log" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
[ -n "$PORT" ] || { echo "Bail out! the artifact server did not start: $(cat "$T/server.log")"; exit 1; }

# The evidence, on the console once wlan0 and wlan1 have peered (or after 180 s); then one
# reboot, and on the second boot (first boot done, nothing run by it) the same radios again.
cat >"$T/halow.sh" <<'EOF'
#!/bin/sh
# mesh-halow.t: evidence of the stand-in driver and the radios on the console.
exec >/dev/console 2>&1
echo
peered() {
	n=0
	until { iw dev wlan0 station dump; iw dev wlan1 station dump; } 2>/dev/null | grep -c 'mesh plink:.*ESTAB' | grep -qx '[2-9]' ||
		[ $n -ge 180 ]; do sleep 1; n=$((n + 1)); done
}
if [ -e /var/lib/halow-evidence-boot1 ]; then
	peered
	echo "HALOW2-WAITED: $n s"
	echo "HALOW2-MODLOAD: $(journalctl -b -u systemd-modules-load.service --no-pager -o cat | grep -c "Inserted module 'mac80211_hwsim'")"
	echo "HALOW2-FIRSTBOOT: $(journalctl -b -u pmoves-firstboot.service --no-pager -o cat | grep -c 'step=[a-z-]* state=')"
	echo "HALOW2-RADIOS: $(cat /sys/module/mac80211_hwsim/parameters/radios 2>&1)"
	for i in wlan0 wlan1; do
		echo "HALOW2-UNIT-$i: $(systemctl is-active pmoves-mesh-$i.service)"
		iw dev $i station dump 2>&1 | awk -v i=$i '/^Station/ { sta = $2 } /mesh plink:/ { print "HALOW2-STA-" i ": " sta " " $3 }
			/^[ \t]*authorized:/ { print "HALOW2-AUTHZ-" i ": " sta " " $2 }'
	done
	echo
	echo "HALOW-RESULT: done"
	exit 0
fi
n=0
until { iw dev wlan0 station dump; iw dev wlan1 station dump; } 2>/dev/null | grep -c 'mesh plink:.*ESTAB' | grep -qx '[2-9]' ||
	[ $n -ge 180 ]; do sleep 1; n=$((n + 1)); done
echo "HALOW-WAITED: $n s"
echo "HALOW-DPKG: $(dpkg-query -W -f '${Status}' pmoves-stand-in-halow-driver 2>&1)"
echo "HALOW-RADIOS: $(cat /sys/module/mac80211_hwsim/parameters/radios 2>&1)"
for i in wlan0 wlan1; do
	echo "HALOW-MAC-$i: $(cat /sys/class/net/$i/address)"
	echo "HALOW-UNIT-$i: $(systemctl is-active pmoves-mesh-$i.service)"
	echo "HALOW-EXECSTART-$i: $(systemctl show -p ExecStart --value pmoves-mesh-$i.service | sed -n 's/.*argv\[\]=\([^ ]*\) .*/\1/p')"
	pid=$(systemctl show -p MainPID --value pmoves-mesh-$i.service)
	echo "HALOW-EXE-$i: $(readlink /proc/$pid/exe 2>&1)"
	echo "HALOW-KEYMGMT-$i: $(wpa_cli -i $i get_network 0 key_mgmt 2>&1)"
	iw dev $i station dump 2>&1 | awk -v i=$i '/^Station/ { sta = $2 } /mesh plink:/ { print "HALOW-STA-" i ": " sta " " $3 }
		/^[ \t]*authorized:/ { print "HALOW-AUTHZ-" i ": " sta " " $2 }'
	journalctl -b -u pmoves-mesh-$i.service --no-pager -o cat 2>&1 | grep -m1 'stand-in vendor supplicant' | sed "s/^/HALOW-LOG-$i: /"
done
echo "HALOW-STATUS: $(base64 -w0 /var/lib/pmoves/firstboot/status.json)"
echo "HALOW-STATE: $(base64 -w0 /var/lib/pmoves/firstboot/state.json)"
echo "HALOW-FIRSTBOOT: $(journalctl -b -u pmoves-firstboot.service --no-pager -o cat | grep -c 'step=[a-z-]* state=')"
echo "HALOW-BOOT1: done, rebooting"
touch /var/lib/halow-evidence-boot1
sync
systemctl --no-block reboot
EOF
radio_mesh='"type": "80211s", "mesh_id": "pmoves-halow", "channel": 1'
mkdir -p "$T/profiles"
cp "$TOP/tests/fixtures/mesh/mesh-test.json" "$T/profiles/"
cat >"$T/profiles/halow.json" <<JSON
{ "extends": "mesh-test", "description": "mesh-halow.t: the stand-in vendor driver baked, the mesh without keys",
  "artifacts": [
    { "name": "$PKG.deb", "url": "http://127.0.0.1:$PORT/ok/driver.deb", "sha256": "$SHA", "kind": "deb", "bake": true,
      "note": "a stand-in made by tests/e2e/mesh-halow.t" } ],
  "firstboot": { "mesh": { "interfaces": [ { "mac": "02:00:00:00:00:00", $radio_mesh },
                                           { "name": "wlan1", $radio_mesh, "supplicant": "$VENDOR" } ],
                           "address": "10.42.0.5/24", "country": "DE" } } }
JSON
"$PMOVES_IMAGE" build "$T/profiles/halow.json" -o "$T/out" >"$T/build.log" 2>&1
rc=$?; ok $rc "build: the stand-in driver package baked, the mesh's radios without keys in the profile"
[ $rc -eq 0 ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; exit 1; }
kill "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=

esc() { printf '%s' "$1" | sed 's/"/\\"/g'; }
unit=$(printf '[Unit]\nDescription=mesh-halow.t evidence\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/halow-evidence\n[Install]\nWantedBy=multi-user.target\n' | base64 -w0)
cat >"$T/device.json" <<EOF
{
  "mesh": { "interfaces": [ { "mac": "02:00:00:00:00:00", $radio_mesh, "key": "$(esc "$KEY")" },
                            { "name": "wlan1", $radio_mesh, "supplicant": "$VENDOR", "key": "$(esc "$KEY")" } ],
            "address": "10.42.0.5/24", "country": "DE" },
  "files": [
    { "path": "/usr/local/sbin/halow-evidence", "mode": "0755", "content_base64": "$(base64 -w0 <"$T/halow.sh")" },
    { "path": "/etc/systemd/system/halow-evidence.service", "content_base64": "$unit" }
  ],
  "units": { "enable": ["halow-evidence.service"], "start": ["halow-evidence.service"], "mask": ["ssh.service"] },
  "steps": { "ssh": { "enabled": false }, "efiboot": { "enabled": false } }
}
EOF
# TCG without the KVM probe (guests hang under KVM here).
"$PMOVES_IMAGE" run "$T/out/halow/halow.img" --config "$T/device.json" --log "$T/halow.log" --accel tcg \
	--expect 'HALOW-RESULT: ' --timeout 600 >/dev/null 2>"$T/run.err"
ok $? "the guest provisions and reports"
sed 's/\x1b\[[0-9;]*m//g' "$T/halow.log" | tr -d '\r' >"$T/halow.txt"
f=$T/halow.txt
val() { sed -n "s/^.*$1: //p" "$f" | head -n 1; }
M0=$(val HALOW-MAC-wlan0) M1=$(val HALOW-MAC-wlan1)
diag "radios: wlan0 $M0, wlan1 $M1 (waited $(val HALOW-WAITED))"
grep -aE '^pmoves-firstboot: (step=(artifacts|mesh) |done)' "$f" | sed 's/^/# /'

grep -aqF "pmoves-firstboot: step=artifacts state=ok 1 of 1 artifacts installed" "$f"
ok $? "the artifacts step installs the baked stand-in driver package"
is "$(val HALOW-DPKG)" "install ok installed" "dpkg has the stand-in driver package installed"
is "$(val HALOW-RADIOS)" 2 "mac80211_hwsim is loaded with the package's modprobe.d option (radios=2)"
is "$M0" "02:00:00:00:00:00" "the radio named by MAC is there as wlan0"
grep -aqF "pmoves-firstboot: step=mesh state=ok bat0 10.42.0.5/24, gateway client, batman-iv, MTU 1500 over 02:00:00:00:00:00 80211s MTU 1532, wlan1 80211s MTU 1532" "$f"
ok $? "the mesh step is ok on the first run (the radios exist once the artifacts step has run)"
! grep -aqE "pmoves-firstboot: step=mesh state=(pending|failed)" "$f"
ok $? "the mesh step was neither pending nor failed"
is "$(val HALOW-UNIT-wlan0) $(val HALOW-UNIT-wlan1)" "active active" "both radios' units run"
is "$(val HALOW-EXECSTART-wlan0) $(val HALOW-EXECSTART-wlan1)" "/usr/sbin/wpa_supplicant $VENDOR" \
	"the MAC radio's unit runs Debian's supplicant, wlan1's the configured (stand-in) vendor one"
is "$(val HALOW-LOG-wlan1)" "stand-in vendor supplicant: exec /usr/sbin/wpa_supplicant -D nl80211 -i wlan1 -c /etc/wpa_supplicant/pmoves-mesh-wlan1.conf" \
	"wlan1's unit ran the stand-in at the configured path"
is "$(val HALOW-EXE-wlan1)" "/usr/sbin/wpa_supplicant" "... which exec'd Debian's wpa_supplicant (the unit's main process)"
grep -aqiE "HALOW-STA-wlan0: $M1 ESTAB" "$f" && grep -aqiE "HALOW-STA-wlan1: $M0 ESTAB" "$f"
ok $? "an established 802.11s peer link each way"
is "$(grep -aE '^HALOW-KEYMGMT-wlan[01]: ' "$f" | sed 's/.*: //' | sort -u | tr '\n' ' ')" "SAE " "key_mgmt SAE on both"
grep -aqiE "HALOW-AUTHZ-wlan0: $M1 yes" "$f" && grep -aqiE "HALOW-AUTHZ-wlan1: $M0 yes" "$f"
ok $? "each sees the other authorized (SAE and AMPE done)"
! grep -aqF "$KEY" "$f"
ok $? "the key is not on the console"
st=$(val HALOW-STATUS | base64 -d 2>/dev/null)$(val HALOW-STATE | base64 -d 2>/dev/null)
printf '%s' "$st" | grep -q '"mesh"' && ! printf '%s' "$st" | grep -qF "$KEY"
ok $? "nor in the guest's status.json or state.json ($(printf '%s' "$st" | wc -c) bytes, with the mesh step)"

# The second boot: the package's modules-load.d file loads the driver, the radios' units start
# with their devices, first boot does not run again.
grep -aqF "HALOW-BOOT1: done, rebooting" "$f" && [ -n "$(val HALOW2-WAITED)" ]
ok $? "the guest rebooted and reported again (waited $(val HALOW2-WAITED))"
is "$(val HALOW2-MODLOAD) $(val HALOW2-RADIOS)" "1 2" "second boot: systemd-modules-load loaded mac80211_hwsim (the package's file), radios=2"
[ "$(val HALOW-FIRSTBOOT)" -gt 0 ] 2>/dev/null && [ "$(val HALOW2-FIRSTBOOT)" = 0 ]
ok $? "second boot: pmoves-firstboot ran no step (its journal: $(val HALOW-FIRSTBOOT) step lines on the first boot, $(val HALOW2-FIRSTBOOT) on this one)"
is "$(val HALOW2-UNIT-wlan0) $(val HALOW2-UNIT-wlan1)" "active active" "second boot: both radios' units run"
grep -aqiE "HALOW2-STA-wlan0: $M1 ESTAB" "$f" && grep -aqiE "HALOW2-STA-wlan1: $M0 ESTAB" "$f" &&
	grep -aqiE "HALOW2-AUTHZ-wlan0: $M1 yes" "$f" && grep -aqiE "HALOW2-AUTHZ-wlan1: $M0 yes" "$f"
ok $? "second boot: an established, authorized peer link each way"
[ $_failed -eq 0 ] || grep -aE 'HALOW-|step=|pmoves-mesh|hwsim' "$f" | grep -v -e HALOW-STATUS -e HALOW-STATE | sed 's/^/#   /'
done_testing
