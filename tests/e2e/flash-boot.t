#!/bin/bash
# base-debian flashed to loop devices (--force: loop devices are not removable) and booted from
# the device in QEMU: the raw image with its bmap and --config, and the .zst with an inventory
# entry; each boot comes to a login prompt with the hostname its device.json gave.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap losetup bmaptool zstd mtype
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image and loop devices need root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-flash-boot.XXXXXX)
LOOPS=
cleanup() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
loop() { # loop VAR FILE: a loop device on FILE into VAR, detached at exit
	_l=$(losetup -f --show "$2") || { echo "# losetup failed" >&2; exit 1; }
	LOOPS="$LOOPS $_l"
	printf -v "$1" '%s' "$_l"
}
plan 12

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1
ok $? "build base-debian"
IMG=$T/base-debian/base-debian.img
bmaptool create -o "$IMG.bmap" "$IMG" 2>/dev/null
ok $? "bmaptool create"
zstd -q -T0 "$IMG" -o "$T/base-debian.img.zst"
cp "$IMG.bmap" "$T/base-debian.img.bmap"
SIZE=$(stat -c %s "$IMG")

truncate -s 3G "$T/one.back" "$T/two.back"
loop L1 "$T/one.back"
loop L2 "$T/two.back"

printf '{ "hostname": "flashed-one" }\n' >"$T/one.json"
"$PMOVES_IMAGE" flash "$IMG" "$L1" --force --yes --config "$T/one.json" >"$T/flash1.out" 2>"$T/flash1.err"
rc=$?
ok $rc "flash base-debian (raw + bmap) with --config to '$L1'"
[ $rc -eq 0 ] || tail -n 8 "$T/flash1.err" "$T/flash1.out" | sed 's/^/# /'
cat >"$T/inventory.json" <<'EOF'
{ "devices": [
  { "name": "one", "config": { "hostname": "flashed-one" } },
  { "name": "two", "mac": "52:54:00:00:00:02", "config": { "hostname": "fleet-two" } }
] }
EOF
"$PMOVES_IMAGE" flash "$T/base-debian.img.zst" "$L2" --force --yes --inventory "$T/inventory.json" --name two \
	>"$T/flash2.out" 2>"$T/flash2.err"
rc=$?
ok $rc "flash base-debian.img.zst with an inventory entry to '$L2'"
[ $rc -eq 0 ] || tail -n 8 "$T/flash2.err" "$T/flash2.out" | sed 's/^/# /'

ESP=$(part_offset "$IMG" 1)
MTOOLS_SKIP_CHECK=1 mtype -i "$L1@@$ESP" ::/pmoves/device.json 2>/dev/null | grep -q '"flashed-one"'
ok $? "'$L1': pmoves/device.json on the ESP holds the config"
MTOOLS_SKIP_CHECK=1 mtype -i "$L2@@$ESP" ::/pmoves/device.json 2>/dev/null | grep -q '"fleet-two"'
ok $? "'$L2': pmoves/device.json on the ESP holds the inventory entry's config"
# apart from the FAT the config went into, the devices hold the image
cmp -s -n "$ESP" "$IMG" "$L1"; ok $? "'$L1' before the ESP is the image"
cmp -s -i $((ESP + $(part_size "$IMG" 1))) -n $((SIZE - ESP - $(part_size "$IMG" 1))) "$IMG" "$L2"
ok $? "'$L2' after the ESP is the image"

"$PMOVES_IMAGE" run "$L1" --arch x86_64 --expect 'flashed-one login:' --timeout 500 --log "$T/console1.log" \
	>"$T/run1.out" 2>"$T/run1.err"
rc=$?
ok $rc "'$L1' boots in QEMU to a login prompt with the hostname from --config ($(grep -o 'after [0-9.]* s' "$T/run1.err"))"
[ $rc -eq 0 ] || tail -n 15 "$T/run1.err" | sed 's/^/# /'
grep -aq 'pmoves-firstboot: step=hostname state=ok flashed-one' "$T/console1.log"
ok $? "pmoves-firstboot applied the hostname from the device's device.json"
"$PMOVES_IMAGE" run "$L2" --arch x86_64 --expect 'fleet-two login:' --timeout 500 --log "$T/console2.log" \
	>"$T/run2.out" 2>"$T/run2.err"
rc=$?
ok $rc "'$L2' boots to a login prompt with the inventory entry's hostname ($(grep -o 'after [0-9.]* s' "$T/run2.err"))"
[ $rc -eq 0 ] || tail -n 15 "$T/run2.err" | sed 's/^/# /'
grep -aq 'pmoves-firstboot: step=hostname state=ok fleet-two' "$T/console2.log"
ok $? "pmoves-firstboot applied the inventory entry's hostname"
done_testing
