#!/bin/bash
# The headscale-hub profile on a real boot. Headscale and Tailscale cannot be installed here:
# STAND-INS (tests/fixtures/standins/: shell scripts that record their argv and answer like
# Headscale 0.23 and Tailscale's CLI) are put in the image by the device config's "files", with
# stand-in units. What this proves on a real boot: the headscale step's files, service, users and
# pre-auth keys (0600), the hub joining its own tailnet with the key file, done status=ok, and no
# key value on the console, in the guest's journal (the guest powers off when done, so journald
# closes its files on the disk) or in the first boot's state and status files. It proves
# nothing about the real Headscale or Tailscale.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap python3 debugfs
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-hub.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 15
STANDINS=$TOP/tests/fixtures/standins

"$PMOVES_IMAGE" build headscale-hub -o "$T" >"$T/build.log" 2>&1
ok $? "build headscale-hub"
python3 - "$STANDINS" >"$T/device.json" <<'PY'
import json, sys
d = sys.argv[1]
unit = "[Unit]\nDescription=STAND-IN for %s (pmoves tests)\n[Service]\nExecStart=%s\n[Install]\nWantedBy=multi-user.target\n"
print(json.dumps({
    "hostname": "hub-test",
    "files": [
        {"path": "/usr/bin/headscale", "content": open(d + "/headscale").read(), "mode": "0755"},
        {"path": "/usr/bin/tailscale", "content": open(d + "/tailscale").read(), "mode": "0755"},
        {"path": "/etc/systemd/system/headscale.service", "content": unit % ("headscale", "/usr/bin/headscale serve")},
        {"path": "/etc/systemd/system/tailscaled.service", "content": unit % ("tailscaled", "/bin/sleep infinity")},
    ],
    "headscale": {"server_url": "https://hs.fleet.example.org"},
    "tailnet": {"login_server": "https://hs.fleet.example.org"},
    "finally": "poweroff",
    # The stand-in tailscale above stands for the profile's Tailscale repository and package.
    "steps": {"apt-repositories": {"enabled": False}},
}))
PY
cp --sparse=always "$T/headscale-hub/headscale-hub.img" "$T/disk.img"
# The boot's own run comes before sysinit.target: headscale and the join wait (pending) for the
# timer's run after the boot (OnBootSec=2min), which finishes them and powers the guest off.
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --timeout 800 --log "$T/boot.log" \
	>/dev/null 2>"$T/run.err"
ok $? "the hub provisions to done status=ok and powers off (QEMU exits 0)"
sed 's/\x1b\[[0-9;]*m//g' "$T/boot.log" | tr -d '\r' >"$T/boot.txt"
grep -aqE "^pmoves-firstboot: step=headscale state=pending config written, headscale enabled; users and keys once the boot is done$" "$T/boot.txt"
ok $? "console: during the boot, headscale waits for the boot to finish"
grep -aqE "^pmoves-firstboot: step=headscale state=ok 2 users and 3 pre-auth keys made; keys \(0600\) in /var/lib/pmoves/headscale/fleet.key, /var/lib/pmoves/headscale/mesh.key, /var/lib/pmoves/headscale/ci.key$" "$T/boot.txt"
ok $? "console: users and keys made, the key files named"
grep -aqE '^pmoves-firstboot: step=tailnet state=ok on the tailnet as hub-test.fleet.internal. 100.64.0.1$' "$T/boot.txt"
ok $? "console: the hub joined its own tailnet (stand-in's status)"
grep -aqE '^pmoves-firstboot: done status=ok ' "$T/boot.txt"
ok $? "console: done status=ok"
grep -aq 'standinkey' "$T/boot.txt"
ok $((!$?)) "no key value on the console"

part_copy "$T/disk.img" 2 "$T/root.ext4"
e2fsck -fy "$T/root.ext4" >/dev/null 2>&1
get() { debugfs -R "cat $1" "$T/root.ext4" 2>/dev/null; }
mode() { debugfs -R "stat $1" "$T/root.ext4" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p'; }
is "$(mode /var/lib/pmoves/headscale/fleet.key)" "0600" "the fleet key file is 0600"
get /var/lib/pmoves/headscale/fleet.key | grep -q '^standinkey'
ok $? "the fleet key file holds the key (the value searched for below)"
# The guest's journal, as journald left it at the power-off, read with the host's journalctl.
rm -rf "$T/journal" && mkdir "$T/journal"
debugfs -R "rdump /var/log/journal $T/journal" "$T/root.ext4" >/dev/null 2>&1
journalctl --file "$T/journal/journal/*/*.journal" -o cat >"$T/journal.txt" 2>/dev/null
grep -aqE '^pmoves-firstboot: step=headscale state=ok 2 users and 3 pre-auth keys made' "$T/journal.txt" &&
	grep -aq 'pmoves-firstboot: done status=ok' "$T/journal.txt"
ok $? "the guest's journal holds the first boot's lines (so the search below covers it)"
grep -aq 'standinkey' "$T/journal.txt"
ok $((!$?)) "no key value in the guest's journal ($(wc -l <"$T/journal.txt") lines)"
rm -rf "$T/state" && mkdir "$T/state"
debugfs -R "rdump /var/lib/pmoves/firstboot $T/state" "$T/root.ext4" >/dev/null 2>&1
[ -s "$T/state/firstboot/status.json" ] && [ -s "$T/state/firstboot/state.json" ] && ! grep -rq 'standinkey' "$T/state"
ok $? "no key value in the first boot's status.json or state.json"
is "$(get /var/lib/standin/headscale.calls | grep -c 'preauthkeys create')" "3" "three keys asked of the stand-in"
get /var/lib/standin/tailscale.calls | grep -q '^up --reset --login-server=https://hs.fleet.example.org --auth-key=file:/var/lib/pmoves/headscale/fleet.key --hostname=hub-test --advertise-tags=tag:core --timeout=60s$'
ok $? "tailscale up with the key file and the core tag"
grep -q 'server_url: https://hs.fleet.example.org' <(get /etc/headscale/config.yaml)
ok $? "the device's server_url is in Headscale's config"
done_testing
