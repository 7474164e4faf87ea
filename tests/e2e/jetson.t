#!/bin/bash
# The Jetson inference node (profiles/jetson-inference.json, boot loader extlinux): built once, then
# - the layout a Jetson's flash tools give an external root: GPT, partition 1 named APP, ext4
#   labelled APP, /boot/extlinux/extlinux.conf on it naming the kernel and initramfs that are
#   there, root=PARTUUID= partition 1's GUID, a rescue (fallback) label;
# - u-boot-menu's own u-boot-update, run from the image in a chroot (qemu-user) as the kernel
#   hook on the machine runs it, writes the same extlinux.conf; a second kernel version
#   installed in the image gets label l0 (the default) and the first moves to l1;
# - `run` boots it the way a board with U-Boot does: Debian's U-Boot for QEMU's virt machine
#   reads the image's extlinux.conf, to a login prompt with the hostname from device.json;
# - an extlinux.conf whose default label is missing, or whose kernel is not there, is refused
#   by run (exit 2) and named by inspect; a kernel U-Boot cannot start fails the run.
# Debian's generic arm64 kernel stands in for NVIDIA's L4T kernel, which cannot be installed
# here; no Jetson board boots in this test.
. "$(dirname "$0")/lib.sh"
need qemu-system-aarch64 mmdebstrap sgdisk debugfs e2fsck blkid chroot
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
	skip_all "no binfmt_misc entry for qemu-aarch64 (make deps): an arm64 root filesystem cannot be built here"
[ -r /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || skip_all "no U-Boot for QEMU's arm64 virt machine (make deps: u-boot-qemu)"

T=$(mktemp -d /tmp/pmoves-e2e-jetson.XXXXXX)
MNT=
cleanup() {
	[ -n "$MNT" ] && { umount "$MNT/proc" 2>/dev/null; umount "$MNT" 2>/dev/null; }
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
plan 27
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
xl() { debugfs -R "cat /boot/extlinux/extlinux.conf" "$1?offset=$ROOT_OFF" 2>/dev/null; }
has_file() { debugfs -R "stat $2" "$1?offset=$ROOT_OFF" 2>/dev/null | grep -q '^Inode:.*Type: regular'; }

start=$(date +%s)
"$PMOVES_IMAGE" build jetson-inference -o "$T" >"$T/build.log" 2>&1; rc=$?
ok $rc "build jetson-inference ($(($(date +%s) - start)) s)"
[ $rc = 0 ] || { tail -n 15 "$T/build.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }
IMG=$T/jetson-inference/jetson-inference.img

# --- the layout ---
sgdisk -i 1 "$IMG" >"$T/p1.txt"
grep -q "^Partition name: 'APP'$" "$T/p1.txt"; ok $? "partition 1 is named APP (a Jetson's external root)"
GUID=$(sed -n 's/^Partition unique GUID: //p' "$T/p1.txt" | tr A-F a-f)
ROOT_OFF=$(part_offset "$IMG" 1)
part_copy "$IMG" 1 "$T/app.ext4"
is "$(blkid -o value -s TYPE "$T/app.ext4")/$(blkid -o value -s LABEL "$T/app.ext4")" "ext4/APP" "it holds ext4 labelled APP"
check "e2fsck -fn finds it clean" e2fsck -fn "$T/app.ext4"
rm -f "$T/app.ext4"
xl "$IMG" >"$T/extlinux.conf"
sed 's/^/# extlinux.conf: /' "$T/extlinux.conf" | grep -v ': ##' | grep -v ': *$'
grep -q '^default l0$' "$T/extlinux.conf"; ok $? "extlinux.conf: default l0"
K=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "linux" { print $2; exit }' "$T/extlinux.conf")
I=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "initrd" { print $2; exit }' "$T/extlinux.conf")
A=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "append" { $1 = ""; print; exit }' "$T/extlinux.conf")
V=${K#/boot/vmlinuz-}
[ -n "$V" ] && [ "$I" = "/boot/initrd.img-$V" ] && has_file "$IMG" "$K" && has_file "$IMG" "$I"
ok $? "label l0: kernel '$K' and initramfs '$I', both on partition 1"
case " $A " in *" root=PARTUUID=$GUID "*) ok 0 "label l0: root=PARTUUID=$GUID, partition 1";;
	*) ok 1 "label l0: root=PARTUUID=$GUID, partition 1"; diag "append:$A";; esac
awk '$1 == "label" { l = $2 } l == "l0r" && $1 == "append" { print }' "$T/extlinux.conf" | grep -q " single$"
ok $? "a fallback label l0r: the same kernel, single user (rescue target)"
grep -q "fdtdir /usr/lib/linux-image-$V/" "$T/extlinux.conf"; ok $? "the kernel's device trees (fdtdir), the profile names none"
"$PMOVES_IMAGE" inspect "$IMG" >"$T/inspect.txt" 2>&1; rc=$?
ok $rc "inspect: the image agrees with its manifest, and extlinux.conf with the image"
[ $rc = 0 ] || sed 's/^/# /' "$T/inspect.txt" | tail -n 20
grep -q "^boot loader: extlinux" "$T/inspect.txt" && grep -q "^    | default l0" "$T/inspect.txt" &&
	grep -qi "^  ok       the default label's root=PARTUUID=$GUID is partition 1 (ext4)" "$T/inspect.txt" &&
	grep -q "^  ok       label l0: kernel '$K' is on partition 1" "$T/inspect.txt"
ok $? "inspect shows extlinux.conf and checks the default label, its kernel and its root"

# --- u-boot-menu's own u-boot-update, from the image, as the kernel hook runs it ---
cp --sparse=always "$IMG" "$T/hook.img"
MNT=$T/mnt
mkdir -p "$MNT"
mount -o loop,offset=$ROOT_OFF,sizelimit=$(part_size "$IMG" 1) "$T/hook.img" "$MNT" && mount -t proc proc "$MNT/proc"
ok $? "the copy's root mounted"
chroot "$MNT" /etc/kernel/postinst.d/zz-u-boot-menu "$V" >"$T/hook.log" 2>&1; ok $? "zz-u-boot-menu runs in the image (chroot, qemu-user)"
[ $? = 0 ] || sed 's/^/# /' "$T/hook.log" | tail -n 5
cmp -s "$MNT/boot/extlinux/extlinux.conf" "$T/extlinux.conf"; rc=$?
ok $rc "... and writes the same extlinux.conf"
[ $rc = 0 ] || diff "$T/extlinux.conf" "$MNT/boot/extlinux/extlinux.conf" | cat -A | sed 's/^/# /' | head -n 20
# A second, newer kernel version: its files under its name, as linux-image-* installs them.
V2=${V%%-*}.99-99-arm64
cp "$MNT/boot/vmlinuz-$V" "$MNT/boot/vmlinuz-$V2"
cp "$MNT/boot/initrd.img-$V" "$MNT/boot/initrd.img-$V2"
cp -a "$MNT/usr/lib/linux-image-$V" "$MNT/usr/lib/linux-image-$V2"
chroot "$MNT" /etc/kernel/postinst.d/zz-u-boot-menu "$V2" >"$T/hook.log" 2>&1; ok $? "the hook for a second kernel, $V2"
awk '$1 == "label" { l = $2 } l == "l0" && $1 == "linux" { print $2 }' "$MNT/boot/extlinux/extlinux.conf" >"$T/l0"
awk '$1 == "label" { l = $2 } l == "l1" && $1 == "linux" { print $2 }' "$MNT/boot/extlinux/extlinux.conf" >"$T/l1"
grep -q '^default l0$' "$MNT/boot/extlinux/extlinux.conf" && is "$(cat "$T/l0") $(cat "$T/l1")" \
	"/boot/vmlinuz-$V2 /boot/vmlinuz-$V" "extlinux.conf follows: the new kernel is l0 (the default), the first l1"
grep "append" "$MNT/boot/extlinux/extlinux.conf" | grep -vc "root=PARTUUID=$GUID " >"$T/wrong-root"
is "$(cat "$T/wrong-root")" 0 "every label keeps root=PARTUUID=$GUID and the profile's command line"
umount "$MNT/proc" && umount "$MNT" && MNT=
rm -f "$T/hook.img"

# --- booted as a board with U-Boot boots it: QEMU's virt, U-Boot reading extlinux.conf ---
printf '{ "hostname": "jetson-7" }\n' >"$T/device.json"
"$PMOVES_IMAGE" run "$IMG" --config "$T/device.json" --expect 'jetson-7 login:' --timeout 900 \
	--log "$T/boot.log" >/dev/null 2>"$T/boot.err"
rc=$?
ok $rc "run: boots to a login prompt with the hostname from device.json"
[ $rc = 0 ] || sed 's/^/# /' "$T/boot.err" | tail -n 20
clean "$T/boot.log" >"$T/boot.txt"
grep -aq '^U-Boot 20' "$T/boot.txt" && grep -aq 'Retrieving file: /boot/extlinux/extlinux.conf' "$T/boot.txt" &&
	grep -aq "Retrieving file: $K" "$T/boot.txt"
ok $? "U-Boot read the image's extlinux.conf and loaded its kernel"
grep -q "extlinux: /boot/extlinux/extlinux.conf, label 'l0': kernel '$K'" "$T/boot.err"
ok $? "run says which label and kernel it checked"
grep -aq 'pmoves-firstboot: done status=ok' "$T/boot.txt"; rc=$?; ok $rc "done status=ok"
[ $rc = 0 ] || grep -a 'pmoves-firstboot:' "$T/boot.txt" | sed 's/^/# /' | tail -n 20 >&2
grep -aqE "pmoves-firstboot: step=growfs state=(ok|skipped)" "$T/boot.txt"; ok $? "growfs ran"

# --- what U-Boot would not boot, run does not either ---
broken() { # broken DESCRIPTION WANT-IN-RUN-MESSAGE WANT-IN-INSPECT DEBUGFS-COMMAND...
	local what=$1 want=$2 winspect=$3
	shift 3
	cp --sparse=always "$IMG" "$T/broken.img"
	for c in "$@"; do debugfs -w -R "$c" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1; done
	"$PMOVES_IMAGE" run "$T/broken.img" --expect 'login:' --timeout 60 >/dev/null 2>"$T/broken.err"
	rc=$?
	[ $rc = 2 ] && grep -q "$want" "$T/broken.err"
	ok $? "$what: run refuses it (exit $rc)"
	[ $rc = 2 ] || sed 's/^/# /' "$T/broken.err" | tail -n 5
	"$PMOVES_IMAGE" inspect "$T/broken.img" >"$T/broken.inspect" 2>&1
	rc=$?
	[ $rc = 1 ] && grep -q "^  PROBLEM  $winspect" "$T/broken.inspect"
	ok $? "$what: inspect names the problem (exit $rc)"
}
broken "the default label's kernel removed" "kernel '$K' is not on partition 1" "label l0: kernel '$K' is not" "rm $K"
sed 's/^default l0$/default primary/' "$T/extlinux.conf" >"$T/extlinux.broken"
broken "extlinux.conf naming a default label it does not have" "names no default label that it has (default primary)" \
	"/boot/extlinux/extlinux.conf's default label primary is not there" \
	"rm /boot/extlinux/extlinux.conf" "write $T/extlinux.broken /boot/extlinux/extlinux.conf"
# A kernel file U-Boot cannot start: run's own check passes, the boot does not.
head -c 4096 /dev/zero >"$T/zero"
cp --sparse=always "$IMG" "$T/broken.img"
debugfs -w -R "rm $K" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1
debugfs -w -R "write $T/zero $K" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1
"$PMOVES_IMAGE" run "$T/broken.img" --expect 'login:' --timeout 30 --log "$T/zero.log" >/dev/null 2>"$T/broken.err"
rc=$?
[ $rc = 1 ] && grep -aq 'Bad Linux ARM64 Image magic' "$T/zero.log"
ok $? "a kernel U-Boot cannot start fails the run (exit $rc, U-Boot says so)"
rm -f "$T/broken.img"
done_testing
