#!/bin/bash
# Build base-debian for real (mmdebstrap on a cold cache, then cached) and check the image with
# the tools people use: sgdisk, sfdisk, fsck.vfat, e2fsck, debugfs, mtools, sha256sum.
. "$(dirname "$0")/lib.sh"
need mmdebstrap mke2fs mkfs.vfat mcopy sgdisk sfdisk e2fsck fsck.vfat debugfs
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (mmdebstrap, file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-build.XXXXXX)
trap 'rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000
plan 33

"$PMOVES_IMAGE" build base-debian -o "$T/a" >"$T/a.log" 2>&1
rc=$?
ok $rc "build base-debian"
[ $rc -eq 0 ] || { tail -n 30 "$T/a.log" | sed 's/^/# /'; }
D=$T/a/base-debian
IMG=$D/base-debian.img
for f in base-debian.img manifest.json SHA256SUMS build.log; do
	test -f "$D/$f"; ok $? "output has $f"
done
ls -a "$T/a" | grep -q '^\.tmp-'; ok $((!$?)) "no temp directory left behind"
where=$(sed -n "s/^tree: staging in '\(.*\)' (.*)\$/\1/p" "$T/a.log")
[ -n "$where" ] && [ ! -e "$where" ]; ok $? "the build says where it staged the tree ('$where'), and removed it"
# "[N/M] stage: S s" for each of the M stages, manifest last.
M=$(sed -n 's|^\[\([0-9]*\)/\1\] manifest: [0-9.]* s$|\1|p' "$T/a.log")
[ -n "$M" ] && [ "$(grep -cE "^\[[0-9]+/$M\] [a-z]+: [0-9.]+ s\$" "$T/a.log")" = "$M" ]
ok $? "every stage reports its elapsed time"
check "SHA256SUMS verifies with sha256sum" sh -c "cd '$D' && sha256sum -c SHA256SUMS"
out=$(sgdisk --verify "$IMG" 2>&1)
echo "$out" | grep -q 'No problems found'; ok $? "sgdisk --verify finds no problem"
out=$(sfdisk --verify "$IMG" 2>&1)
echo "$out" | grep -q 'No errors detected' && ! echo "$out" | grep -qi warn; ok $? "sfdisk --verify prints no warning"
ESP_OFF=$(part_offset "$IMG" 1); ESP_SIZE=$(part_size "$IMG" 1); ROOT_OFF=$(part_offset "$IMG" 2)
is "$ESP_OFF" 1048576 "ESP at 1 MiB"
dd if="$IMG" of="$T/esp.fat" bs=1M skip=1 count=$((ESP_SIZE / 1048576)) conv=sparse status=none
check "fsck.vfat -n finds the ESP clean" fsck.vfat -n "$T/esp.fat"
check "e2fsck -fn finds the root clean" e2fsck -fn "$IMG?offset=$ROOT_OFF"
mdir -i "$T/esp.fat" ::/EFI/BOOT 2>/dev/null | grep -q 'BOOTX64 *EFI'; ok $? "ESP holds EFI/BOOT/BOOTX64.EFI"
entry=$(mtype -i "$T/esp.fat" '::/loader/entries/*.conf' 2>/dev/null)
root_uuid=$(blkid -p -o value -s UUID -O "$ROOT_OFF" "$IMG")
echo "$entry" | grep -q "options *root=UUID=$root_uuid "; ok $? "loader entry boots root=UUID=$root_uuid"
kver=$(echo "$entry" | sed -n 's/^version *//p')
mdir -i "$T/esp.fat" "::/pmoves/$kver" 2>/dev/null | grep -q initrd; ok $? "kernel and initrd on the ESP in kernel-install's layout"
fstab=$(debugfs -R 'cat /etc/fstab' "$IMG?offset=$ROOT_OFF" 2>/dev/null)
echo "$fstab" | grep -qE "^UUID=$root_uuid[[:space:]]+/[[:space:]]+ext4"; ok $? "fstab mounts / by UUID"
echo "$fstab" | grep -qE "^UUID=[0-9A-F]{4}-[0-9A-F]{4}[[:space:]]+/boot/efi[[:space:]]+vfat"; ok $? "fstab mounts the ESP at /boot/efi"
mid=$(debugfs -R 'stat /etc/machine-id' "$IMG?offset=$ROOT_OFF" 2>/dev/null | sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -n 1)
is "$mid" 0 "/etc/machine-id is empty"
keys=$(debugfs -R 'ls -l /etc/ssh' "$IMG?offset=$ROOT_OFF" 2>/dev/null | grep -c ssh_host_)
is "$keys" 0 "no SSH host keys shipped in the image"
debugfs -R 'cat /etc/ssh/sshd_config.d/40-pmoves-hardening.conf' "$IMG?offset=$ROOT_OFF" 2>/dev/null |
	grep -qx 'PermitRootLogin no'
ok $? "the overlay 'common' is in the image (sshd hardening drop-in)"
host=$(debugfs -R 'cat /etc/hostname' "$IMG?offset=$ROOT_OFF" 2>/dev/null)
is "$host" base-debian "hostname from the profile"
alloc=$(du -B1 "$IMG" | cut -f1)
[ "$alloc" -lt $((1024 * 1024 * 1024)) ]; ok $? "image is sparse ($alloc bytes allocated of 2 GiB)"

# Reproducible: the same inputs give the same bytes, wherever the tree was staged (the first
# build on tmpfs when /dev/shm has room, this one in a directory on disk).
mkdir "$T/wd"
PMOVES_WORKDIR=$T/wd "$PMOVES_IMAGE" build base-debian -o "$T/b" >"$T/b.log" 2>&1
ok $? "second build from the cached rootfs"
grep -q "rootfs: using the cached" "$T/b.log"; ok $? "second build does not run mmdebstrap again"
grep -q "^tree: staging in '$T/wd/pmoves-image-base-debian-[0-9]*-[A-Za-z0-9]\{6\}' (in \$PMOVES_WORKDIR)\$" "$T/b.log" &&
	[ -z "$(ls -A "$T/wd")" ]
ok $? "PMOVES_WORKDIR holds the staging tree, and nothing after the build"
cmp -s "$IMG" "$T/b/base-debian/base-debian.img"; ok $? "two builds give byte-identical images"
cmp -s "$D/manifest.json" "$T/b/base-debian/manifest.json"; ok $? "... and identical manifests"

# Another seed, other identifiers.
"$PMOVES_IMAGE" build base-debian --seed other -v -o "$T/c" >"$T/c.log" 2>&1
g1=$(sfdisk --json "$IMG" | sed -n 's/.*"id": *"\(.*\)".*/\1/p')
g2=$(sfdisk --json "$T/c/base-debian/base-debian.img" | sed -n 's/.*"id": *"\(.*\)".*/\1/p')
[ -n "$g1" ] && [ "$g1" != "$g2" ]; ok $? "--seed changes the disk GUID ($g1 vs $g2)"
grep -q '^+ mke2fs .* -d ' "$T/c.log" && grep -q '^+ mkfs.vfat ' "$T/c.log"; ok $? "-v shows the external commands"
grep -q '^+ mke2fs' "$T/a.log"; ok $((!$?)) "... which stay in build.log without -v"
grep -q '^+ mke2fs' "$D/build.log"; ok $? "build.log records the commands"
done_testing
