#!/bin/bash
# pmoves-firstboot on a real boot: base-debian in QEMU, the device config given by fw_cfg
# (opt/ai.pmoves/device.json). The first boot provisions; a second boot of the same disk
# (--persist) does not run the steps again.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap ssh-keygen openssl
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-firstboot.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 16

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1
ok $? "build base-debian"
IMG=$T/base-debian/base-debian.img
cp --sparse=always "$IMG" "$T/disk.img"
ssh-keygen -q -t ed25519 -N "" -C ops@test -f "$T/key"
HASH=$(openssl passwd -6 -salt fbsalt pw)
cat >"$T/device.json" <<JSON
{ "hostname": "fleet-test-1",
  "users": [ { "name": "ops", "password_hash": "$HASH",
               "ssh_authorized_keys": [ "$(cat "$T/key.pub")" ] } ],
  "sysctl": { "vm.swappiness": "10" },
  "files": [ { "path": "/etc/pmoves/hello.txt", "content": "hello from device.json\n", "mode": "0640" } ] }
JSON

clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --expect 'fleet-test-1 login:' \
	--timeout 400 --log "$T/boot1.log" >/dev/null 2>"$T/run1.err"
ok $? "first boot comes to a login prompt with the hostname from fw_cfg's device.json"
clean "$T/boot1.log" >"$T/boot1.txt"
# The lines stand alone on the console, in the stable format, without journald's prefix.
for step in hostname users ssh sysctl files; do
	grep -aqE "^pmoves-firstboot: step=$step state=ok( |\$)" "$T/boot1.txt"; ok $? "console: step=$step state=ok"
done
grep -aq 'pmoves-firstboot: step=hostname state=ok fleet-test-1' "$T/boot1.txt"; ok $? "the hostname comes from fw_cfg's device.json"
grep -aqE '^pmoves-firstboot: done status=ok steps=[0-9]+ seconds=[0-9.]+$' "$T/boot1.txt"; ok $? "console: done status=ok, exactly"
grep -aqF "$HASH" "$T/boot1.txt" || grep -aqF 'fbsalt' "$T/boot1.txt"; ok $((!$?)) "the password hash never reaches the console"
grep -aq 'Reached target.*Multi-User' "$T/boot1.txt"; ok $? "first boot reaches multi-user"
grep -aq 'Ordering cycle' "$T/boot1.txt"; ok $((!$?)) "no ordering cycle in the boot"

# QEMU is stopped, not shut down: replay the journal on a copy of the root before looking.
part_copy "$T/disk.img" 2 "$T/root.ext4"
e2fsck -fy "$T/root.ext4" >/dev/null 2>&1
ROOT=$T/root.ext4
is "$(debugfs -R 'cat /etc/pmoves/hello.txt' "$ROOT" 2>/dev/null)" "hello from device.json" "the file was written on the disk"
is "$(debugfs -R 'cat /home/ops/.ssh/authorized_keys' "$ROOT" 2>/dev/null)" "$(cat "$T/key.pub")" "the user's SSH key is in place"

"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --expect 'Reached target.*Multi-User' \
	--timeout 400 --log "$T/boot2.log" >/dev/null 2>"$T/run2.err"
ok $? "second boot reaches multi-user"
clean "$T/boot2.log" >"$T/boot2.txt"
grep -aq 'pmoves-firstboot: step=' "$T/boot2.txt"; ok $((!$?)) "the second boot runs no step again"
done_testing
