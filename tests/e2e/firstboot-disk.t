#!/bin/bash
# pmoves-firstboot's disk steps on real boots: base-debian copied to a bigger (sparse) disk and
# booted in QEMU with a persistent OVMF VARS file (run --vars).
# - growfs: the root partition and its ext4 grow to the end of the disk; afterwards (offline)
#   sgdisk --verify is clean, the partition ends at the last usable LBA (within the 1 MiB
#   alignment) and the filesystem fills the partition.
# - efiboot: the first boot registers a Boot#### entry "PMOVES" for the ESP's loader; the
#   second boot, with the same VARS file, has the firmware load that entry (OVMF prints
#   'BdsDxe: loading Boot#### "PMOVES" from HD(...)' on the serial console).
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap sgdisk sfdisk e2fsck dumpe2fs
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-firstboot-disk.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 19

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1; rc=$?
ok $rc "build base-debian"
[ $rc = 0 ] || { tail -n 15 "$T/build.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }
IMG=$T/base-debian/base-debian.img
cp --sparse=always "$IMG" "$T/disk.img"
truncate -s 3G "$T/disk.img"
DISK_BYTES=$(stat -c %s "$T/disk.img")
is "$DISK_BYTES" $((3 * 1024 * 1024 * 1024)) "the copy is enlarged to 3 GiB"
printf '{ "hostname": "fleet-disk-1" }\n' >"$T/device.json"
VARS=$T/vars.fd
PMOVES_UTF16='P\x00M\x00O\x00V\x00E\x00S\x00'

clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
"$PMOVES_IMAGE" run "$T/disk.img" --persist --vars "$VARS" --config "$T/device.json" \
	--expect 'fleet-disk-1 login:' --timeout 400 --log "$T/boot1.log" >/dev/null 2>"$T/run1.err"
ok $? "first boot of the enlarged disk comes to a login prompt"
[ $? = 0 ] || sed 's/^/# /' "$T/run1.err" | tail -n 25
clean "$T/boot1.log" >"$T/boot1.txt"
grep -aq 'pmoves-firstboot: step=growfs state=ok' "$T/boot1.txt"; ok $? "console: step=growfs state=ok"
grep -a 'pmoves-firstboot: step=growfs state=ok' "$T/boot1.txt" | sed 's/^/# /'
EFI_LINE=$(grep -a 'pmoves-firstboot: step=efiboot state=ok' "$T/boot1.txt")
diag "$EFI_LINE"
BOOTNUM=$(printf '%s\n' "$EFI_LINE" | sed -n "s/.*Boot\([0-9A-F]\{4\}\) 'PMOVES' made for .* on partition 1, first in BootOrder.*/\1/p")
[ -n "$BOOTNUM" ]; ok $? "console: step=efiboot state=ok, Boot#### 'PMOVES' made for the ESP (partition 1)"
grep -aqE 'pmoves-firstboot: done status=ok steps=[0-9]+ seconds=[0-9.]+' "$T/boot1.txt"; ok $? "console: done status=ok"
grep -aq 'Ordering cycle' "$T/boot1.txt"; ok $((!$?)) "no ordering cycle in the boot"
[ -f "$VARS" ] && [ "$(stat -c %s "$VARS")" = "$(stat -c %s /usr/share/OVMF/OVMF_VARS_4M.fd)" ]
ok $? "--vars created the VARS file from the template"
LC_ALL=C grep -qaP "$PMOVES_UTF16" /usr/share/OVMF/OVMF_VARS_4M.fd; t=$?
LC_ALL=C grep -qaP "$PMOVES_UTF16" "$VARS"; ok $(( $? || !t )) "the VARS file (not the template) holds the entry's UTF-16 description 'PMOVES'"

# QEMU is stopped, not shut down: replay the journal on a copy before looking.
cp --sparse=always "$T/disk.img" "$T/look.img"
sgdisk --verify "$T/look.img" >"$T/verify.txt" 2>&1; rc=$?
[ $rc = 0 ] && grep -q 'No problems found' "$T/verify.txt"; ok $? "sgdisk --verify is clean"
[ $? = 0 ] || sed 's/^/# /' "$T/verify.txt"
sfdisk --json "$T/look.img" >"$T/table.json"
LASTLBA=$(sed -n 's/.*"lastlba": *\([0-9]*\).*/\1/p' "$T/table.json")
is "$LASTLBA" $((DISK_BYTES / 512 - 34)) "the GPT's last usable LBA is at the end of the 3 GiB disk (backup header moved)"
ROOT_START=$(sed -n 's/.*"start": *\([0-9]*\).*/\1/p' "$T/table.json" | sed -n 2p)
ROOT_SECTORS=$(sed -n 's/.*"size": *\([0-9]*\).*/\1/p' "$T/table.json" | sed -n 2p)
ROOT_END=$((ROOT_START + ROOT_SECTORS - 1))
diag "root partition: sectors $ROOT_START..$ROOT_END, last usable LBA $LASTLBA"
[ -n "$LASTLBA" ] && [ "$ROOT_END" -le "$LASTLBA" ] && [ $((LASTLBA - ROOT_END)) -lt 2048 ]
ok $? "the root partition ends at the end of the disk (within 1 MiB of the last usable LBA)"
[ -n "$ROOT_SECTORS" ] && [ $((ROOT_START + ROOT_SECTORS)) -eq $(((ROOT_START + ROOT_SECTORS) / 2048 * 2048)) ]
ok $? "the root partition ends on a 1 MiB boundary"
# The root partition in a file of its own: e2fsck cannot reopen "IMG?offset=N" after replaying
# the journal ("Bad magic number ... while trying to re-open").
ROOT=$T/root.img
dd if="$T/look.img" of="$ROOT" bs=1M skip=$((ROOT_START / 2048)) count=$((${ROOT_SECTORS:-0} / 2048)) \
	conv=sparse status=none
e2fsck -fy "$ROOT" >"$T/fsck.txt" 2>&1; rc=$?
e2fsck -fn "$ROOT" >>"$T/fsck.txt" 2>&1; rc2=$?
[ $rc -le 1 ] && [ $rc2 = 0 ]; ok $? "the grown root is clean (e2fsck -fy replays the journal: exit $rc; then e2fsck -fn: exit $rc2)"
[ $rc -le 1 ] && [ $rc2 = 0 ] || sed 's/^/# /' "$T/fsck.txt" | tail -n 15
dumpe2fs -h "$ROOT" >"$T/dumpe2fs.txt" 2>/dev/null
BLOCKS=$(sed -n 's/^Block count: *//p' "$T/dumpe2fs.txt")
BSIZE=$(sed -n 's/^Block size: *//p' "$T/dumpe2fs.txt")
is "$((${BLOCKS:-0} * ${BSIZE:-0}))" "$((${ROOT_SECTORS:-1} * 512))" "the ext4 filesystem fills the root partition (dumpe2fs -h)"

"$PMOVES_IMAGE" run "$T/disk.img" --persist --vars "$VARS" --config "$T/device.json" \
	--expect 'Reached target.*Multi-User' --timeout 400 --log "$T/boot2.log" >/dev/null 2>"$T/run2.err"
ok $? "second boot, same VARS file, reaches multi-user"
[ $? = 0 ] || sed 's/^/# /' "$T/run2.err" | tail -n 25
clean "$T/boot2.log" >"$T/boot2.txt"
grep -a 'BdsDxe: \(loading\|starting\)' "$T/boot2.txt" | sed 's/^/# /'
grep -aq "BdsDxe: loading Boot${BOOTNUM:-none} \"PMOVES\" from HD(1,GPT," "$T/boot2.txt"
ok $? "the firmware loads Boot${BOOTNUM:-####} \"PMOVES\" from the ESP on the second boot"
grep -aq "BdsDxe: loading Boot${BOOTNUM:-none} \"PMOVES\"" "$T/boot1.txt"
ok $((!$?)) "the first boot did not have that entry (the firmware booted another)"
grep -aq 'pmoves-firstboot: step=' "$T/boot2.txt"; ok $((!$?)) "the second boot runs no step again"
done_testing
