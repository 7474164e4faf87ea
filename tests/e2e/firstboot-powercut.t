#!/bin/bash
# A power cut during provisioning: QEMU is killed the moment a step starts (run --expect stops
# it without a shutdown), then the same disk boots again. Every step must end applied exactly
# once: the user exists once, the files are whole, the run ends `done status=ok`.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap ssh-keygen openssl debugfs e2fsck
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-powercut.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 11

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1
ok $? "build base-debian"
cp --sparse=always "$T/base-debian/base-debian.img" "$T/disk.img"
ssh-keygen -q -t ed25519 -N "" -C ops@test -f "$T/key"
cat >"$T/device.json" <<JSON
{ "hostname": "cut-1",
  "users": [{ "name": "ops", "password_hash": "$(openssl passwd -6 -salt cutsalt pw)",
              "ssh_authorized_keys": ["$(cat "$T/key.pub")"] }],
  "sysctl": { "vm.swappiness": "10" },
  "files": [{ "path": "/etc/pmoves/cut.txt", "content": "whole\n" }] }
JSON
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }

# The cut: as soon as the users step has started (its files may be half-written).
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --expect 'pmoves-firstboot: step=users state=start' \
	--timeout 400 --log "$T/boot1.log" >/dev/null 2>"$T/run1.err"
ok $? "first boot: QEMU killed when the users step starts"
clean "$T/boot1.log" >"$T/boot1.txt"
grep -aq 'pmoves-firstboot: done' "$T/boot1.txt"; ok $((!$?)) "the first boot did not get to the end"

"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --expect 'pmoves-firstboot: done status=' \
	--timeout 400 --log "$T/boot2.log" >"$T/run2.out" 2>"$T/run2.err"
ok $? "second boot: provisioning runs to the end"
clean "$T/boot2.log" >"$T/boot2.txt"
grep -aq 'pmoves-firstboot: done status=ok' "$T/boot2.txt"; ok $? "... with status ok"
# The kill lands a little after the line is printed: the step may have finished, or not.
n=$(cat "$T/boot1.txt" "$T/boot2.txt" | grep -ac 'step=users state=ok')
[ "$n" -le 1 ]; ok $? "the users step is not applied twice ($n ok line(s) over both boots)"
grep -aqE 'step=hostname state=ok' "$T/boot2.txt"; ok $((!$?)) "the hostname step done before the cut is not applied again"

part_copy "$T/disk.img" 2 "$T/root.ext4"
e2fsck -fy "$T/root.ext4" >/dev/null 2>&1
passwd=$(debugfs -R 'cat /etc/passwd' "$T/root.ext4" 2>/dev/null)
is "$(echo "$passwd" | grep -c '^ops:')" 1 "the user exists exactly once"
shadow=$(debugfs -R 'cat /etc/shadow' "$T/root.ext4" 2>/dev/null)
is "$(echo "$shadow" | grep -c '^ops:\$6\$cutsalt\$')" 1 "its password hash is in /etc/shadow once"
is "$(debugfs -R 'cat /etc/pmoves/cut.txt' "$T/root.ext4" 2>/dev/null)" whole "the file is whole"
is "$(debugfs -R 'cat /home/ops/.ssh/authorized_keys' "$T/root.ext4" 2>/dev/null)" "$(cat "$T/key.pub")" "the SSH key is in place"
done_testing
