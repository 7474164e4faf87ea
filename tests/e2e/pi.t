#!/bin/bash
# The Raspberry Pi mesh node (profiles/pi-mesh-node.json, boot loader raspi): built once, then
# - the card's layout: an MBR (sfdisk), a clean FAT first (fsck.fat) holding the Pi 4 boot
#   firmware, the kernel's device trees, the kernel and initramfs, and config.txt and
#   cmdline.txt whose root=PARTUUID= is the MBR's id and partition 2;
# - raspi-firmware's own kernel hook, run from the image in a chroot (qemu-user) as a kernel
#   upgrade on the card runs it (on the firmware partition's files), writes the same
#   config.txt and cmdline.txt, and a
#   second kernel version installed in the image is followed on the firmware partition;
# - `run` boots the card as the Pi's firmware does, on QEMU's raspi3b (the kernel, initramfs
#   and device tree config.txt names, the card rounded up to a power of two and 2 GiB more),
#   to pmoves-firstboot's done line with growfs ok; and on virt with a device.json;
# - a config.txt without arm_64bit=1, or naming a kernel that is not there, fails the run.
. "$(dirname "$0")/lib.sh"
need qemu-system-aarch64 qemu-img mmdebstrap sfdisk fsck.fat mcopy mtype mdir e2fsck chroot
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
	skip_all "no binfmt_misc entry for qemu-aarch64 (make deps): an arm64 root filesystem cannot be built here"

T=$(mktemp -d /tmp/pmoves-e2e-pi.XXXXXX)
MNT=
cleanup() {
	[ -n "$MNT" ] && { umount "$MNT/proc" 2>/dev/null; umount "$MNT" 2>/dev/null; }
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
export MTOOLS_SKIP_CHECK=1
plan 36
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }

start=$(date +%s)
"$PMOVES_IMAGE" build pi-mesh-node -o "$T" >"$T/build.log" 2>&1; rc=$?
ok $rc "build pi-mesh-node ($(($(date +%s) - start)) s)"
[ $rc = 0 ] || { tail -n 15 "$T/build.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }
IMG=$T/pi-mesh-node/pi-mesh-node.img

# --- the card ---
sfdisk --dump "$IMG" >"$T/sfdisk.txt"
grep -q '^label: dos$' "$T/sfdisk.txt"; ok $? "sfdisk: an MBR (label dos)"
grep -q 'pi-mesh-node.img1 : start= *2048, .*type=c' "$T/sfdisk.txt"; ok $? "partition 1 is FAT32 LBA (type c) at 1 MiB"
grep -q 'pi-mesh-node.img2 : .*type=83' "$T/sfdisk.txt"; ok $? "partition 2 is Linux (type 83)"
ID=$(sed -n 's/^label-id: 0x//p' "$T/sfdisk.txt")
FW=$(part_offset "$IMG" 1)
part_copy "$IMG" 1 "$T/fw.fat"
check "fsck.fat finds the firmware partition clean" fsck.fat -n "$T/fw.fat"
mdir -b -i "$T/fw.fat" :: | sed 's|^::/||' | sort >"$T/fw.list"
missing=
for f in start4.elf fixup4.dat bootcode.bin bcm2711-rpi-4-b.dtb bcm2711-rpi-400.dtb bcm2711-rpi-cm4-io.dtb \
	bcm2837-rpi-3-b.dtb config.txt cmdline.txt; do
	grep -qx "$f" "$T/fw.list" || missing="$missing $f"
done
is "$missing" "" "the firmware partition has the Pi 4 firmware, the device trees, config.txt and cmdline.txt"
mtype -i "$T/fw.fat" ::config.txt >"$T/config.txt"
mtype -i "$T/fw.fat" ::cmdline.txt >"$T/cmdline.txt"
sed 's/^/# config.txt: /' "$T/config.txt" | grep -v '^# config.txt: #' | grep -v ': $'
sed 's/^/# cmdline.txt: /' "$T/cmdline.txt"
grep -qx 'arm_64bit=1' "$T/config.txt"; ok $? "config.txt: arm_64bit=1"
grep -qx 'enable_uart=1' "$T/config.txt"; ok $? "config.txt: enable_uart=1"
K=$(sed -n 's/^kernel=//p' "$T/config.txt"); I=$(sed -n 's/^initramfs \([^ ]*\).*/\1/p' "$T/config.txt")
grep -qx "$K" "$T/fw.list" && grep -qx "$I" "$T/fw.list"
ok $? "config.txt's kernel '$K' and initramfs '$I' are on the partition"
grep -q " root=PARTUUID=$ID-02 " "$T/cmdline.txt"; ok $? "cmdline.txt: root=PARTUUID=$ID-02, the MBR's id"
grep -q " console=ttyS1,115200 " "$T/cmdline.txt"; ok $? "cmdline.txt: the serial console (ttyS1, the GPIO header's UART)"
is "$(wc -l <"$T/cmdline.txt")" 1 "cmdline.txt is one line"
"$PMOVES_IMAGE" inspect "$IMG" >"$T/inspect.txt" 2>&1; rc=$?
ok $rc "inspect: the card agrees with its manifest, and its boot files with the card"
[ $rc = 0 ] || sed 's/^/# /' "$T/inspect.txt" | tail -n 20
grep -q "^  ok       cmdline.txt's root=PARTUUID=$ID-02 is partition 2 (ext4)" "$T/inspect.txt" &&
	grep -q "^    | arm_64bit=1" "$T/inspect.txt" && grep -q "^  ok       kernel '$K' is on the firmware partition" "$T/inspect.txt"
ok $? "inspect shows config.txt and cmdline.txt and checks the root, the kernel and the firmware"
ROOT_OFF=$(part_offset "$IMG" 2)
check "e2fsck -fn finds the root clean" e2fsck -fn "$IMG?offset=$ROOT_OFF"

# --- raspi-firmware's own hook, from the image, as a kernel upgrade on the card runs it ---
cp --sparse=always "$IMG" "$T/hook.img"
MNT=$T/mnt
mkdir -p "$MNT"
# The root mounted; the firmware partition's files copied into its /boot/firmware (this
# machine's kernel may have no vfat: the mounted FAT is what the boots below use).
mount -o loop,offset=$ROOT_OFF,sizelimit=$(part_size "$IMG" 2) "$T/hook.img" "$MNT" &&
	mcopy -s -n -i "$T/fw.fat" '::*' "$MNT/boot/firmware/" && mount -t proc proc "$MNT/proc"
ok $? "the copy's root mounted, the firmware partition's files in its /boot/firmware"
V=${K#vmlinuz-}
hook() { chroot "$MNT" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$1" >"$T/hook.log" 2>&1; }
hook "$V"; ok $? "z50-raspi-firmware runs in the image (chroot, qemu-user)"
[ $? = 0 ] || sed 's/^/# /' "$T/hook.log" | tail -n 5
cmp -s "$MNT/boot/firmware/config.txt" "$T/config.txt"; ok $? "... and writes the same config.txt"
cmp -s "$MNT/boot/firmware/cmdline.txt" "$T/cmdline.txt"; ok $? "... and the same cmdline.txt"
[ $? = 0 ] || { diag "hook: $(cat -A "$MNT/boot/firmware/cmdline.txt")"; diag "build: $(cat -A "$T/cmdline.txt")"; }
# A second, newer kernel version: its files under its name, as linux-image-* installs them.
V2=${V%%-*}.99-99-arm64
cp "$MNT/boot/vmlinuz-$V" "$MNT/boot/vmlinuz-$V2"
cp "$MNT/boot/initrd.img-$V" "$MNT/boot/initrd.img-$V2"
cp -a "$MNT/usr/lib/linux-image-$V" "$MNT/usr/lib/linux-image-$V2"
hook "$V2"; ok $? "the hook for a second kernel, $V2"
grep -qx "kernel=vmlinuz-$V2" "$MNT/boot/firmware/config.txt" &&
	grep -qx "initramfs initrd.img-$V2" "$MNT/boot/firmware/config.txt" &&
	cmp -s "$MNT/boot/vmlinuz-$V2" "$MNT/boot/firmware/vmlinuz-$V2" &&
	cmp -s "$MNT/boot/initrd.img-$V2" "$MNT/boot/firmware/initrd.img-$V2"
ok $? "the firmware partition follows: config.txt names the new kernel and initramfs, both copied"
cmp -s "$MNT/boot/firmware/cmdline.txt" "$T/cmdline.txt"; ok $? "cmdline.txt stays the same (root, console)"
# The initramfs holds the profile's rootfs.initramfs_modules and what they need, not all of
# MODULES=most's: the SD card's (Pi 4 sdhci-iproc and its regulators, Pi 3 sdhost), the USB
# hosts' (Pi 4 xhci-pci and the reset it needs, Pi 3 dwc2), a USB disk's, NVMe, ext4 and
# virtio's (the virt machine), no network driver (genet, the Pi 4's Ethernet; virtio_net).
# Listed by the image's own lsinitramfs.
chroot "$MNT" lsinitramfs "/boot/initrd.img-$V" >"$T/initrd.list" 2>"$T/lsinitramfs.err"
ok $? "lsinitramfs lists the image's initramfs (chroot, qemu-user)"
has() { grep -q "/kernel/$1\$" "$T/initrd.list"; }
kos=$(grep -c '\.ko\(\.[a-z]*\)\?$' "$T/initrd.list")
has drivers/mmc/host/sdhci-iproc.ko && has drivers/mmc/host/bcm2835.ko && has fs/ext4/ext4.ko &&
	has drivers/usb/storage/usb-storage.ko && has drivers/scsi/sd_mod.ko && has drivers/regulator/gpio-regulator.ko &&
	has drivers/reset/reset-raspberrypi.ko && has drivers/usb/host/xhci-pci.ko && has drivers/usb/dwc2/dwc2.ko &&
	has drivers/block/virtio_blk.ko && has drivers/nvme/host/nvme.ko &&
	! has drivers/net/ethernet/broadcom/genet/genet.ko && ! has drivers/net/virtio_net.ko && [ "$kos" -lt 80 ]
ok $? "... the listed drivers and what they need ($kos modules), no network driver (rootfs.initramfs_modules)"
grep -qx MODULES=list "$MNT/etc/initramfs-tools/conf.d/pmoves-image" && [ -x "$MNT/etc/initramfs-tools/hooks/pmoves-image" ]
ok $? "... and the setting stays in the image, for the initramfs of a kernel upgrade on the card"
umount "$MNT/proc" && umount "$MNT" && MNT=
rm -f "$T/hook.img"

# --- booted as the Pi's firmware boots it: QEMU's raspi3b, the card 2 GiB larger ---
SIZE=$(stat -c %s "$IMG")
CARD=$(((SIZE + (2 << 30))))
"$PMOVES_IMAGE" run "$IMG" --disk-size "$CARD" --expect 'pmoves-firstboot: done status=' --timeout 900 \
	--log "$T/pi.log" >"$T/pi.out" 2>"$T/pi.err"
rc=$?
ok $rc "raspi3b: the card boots to pmoves-firstboot's done line"
[ $rc = 0 ] || sed 's/^/# /' "$T/pi.err" | tail -n 20
clean "$T/pi.log" >"$T/pi.txt"
grep -q "raspi: config.txt: kernel '$K', initramfs '$I', device tree bcm2837-rpi-3-b.dtb" "$T/pi.err"
ok $? "run took the kernel, initramfs and device tree config.txt names"
grep -q 'an SD card is a power of two in size' "$T/pi.err"; ok $? "run says the card is rounded up to a power of two"
grep -aq 'pmoves-firstboot: done status=ok' "$T/pi.txt"; rc=$?; ok $rc "done status=ok"
# The first-boot lines on stderr, which prove shows without -v (failed once in CI, cause unknown).
[ $rc = 0 ] || grep -a 'pmoves-firstboot:' "$T/pi.txt" | sed 's/^/# /' | tail -n 20 >&2
grep -aqE "pmoves-firstboot: step=growfs state=ok .*partition 2 of '/dev/mmcblk0'" "$T/pi.txt"
ok $? "growfs grew partition 2 of the SD card"

# --- on virt: the same kernel, initramfs and command line; device.json through fw_cfg ---
printf '{ "hostname": "pi-node-7" }\n' >"$T/device.json"
"$PMOVES_IMAGE" run "$IMG" --machine virt --config "$T/device.json" --expect 'pi-node-7 login:' --timeout 600 \
	--log "$T/virt.log" >/dev/null 2>"$T/virt.err"
rc=$?
ok $rc "virt: boots to a login prompt with the hostname from device.json"
[ $rc = 0 ] || sed 's/^/# /' "$T/virt.err" | tail -n 20
clean "$T/virt.log" >"$T/virt.txt"
grep -aq 'pmoves-firstboot: done status=ok' "$T/virt.txt"; ok $? "virt: done status=ok"

# --- what the Pi's firmware would not boot, run does not either ---
broken() { # broken DESCRIPTION WANT-IN-RUN-MESSAGE SED-ON-CONFIG.TXT WANT-IN-INSPECT
	cp --sparse=always "$IMG" "$T/broken.img"
	sed "$3" "$T/config.txt" >"$T/config.broken"
	mcopy -o -i "$T/broken.img@@$FW" "$T/config.broken" ::config.txt
	"$PMOVES_IMAGE" run "$T/broken.img" --expect 'login:' --timeout 60 >/dev/null 2>"$T/broken.err"
	rc=$?
	[ $rc = 2 ] && grep -q "$2" "$T/broken.err"
	ok $? "$1: run refuses it (exit $rc)"
	[ $rc = 2 ] || sed 's/^/# /' "$T/broken.err" | tail -n 5
	"$PMOVES_IMAGE" inspect "$T/broken.img" >"$T/broken.inspect" 2>&1
	rc=$?
	[ $rc = 1 ] && grep -q "^  PROBLEM  $4" "$T/broken.inspect"
	ok $? "$1: inspect names the problem (exit $rc)"
}
broken "config.txt without arm_64bit=1" "does not set arm_64bit=1" '/^arm_64bit=1$/d' "config.txt does not set arm_64bit=1"
broken "config.txt naming a kernel that is not there" "'vmlinuz-0.0' is not on the firmware partition" \
	's/^kernel=.*/kernel=vmlinuz-0.0/' "kernel 'vmlinuz-0.0' is not on the firmware partition"
rm -f "$T/broken.img"
done_testing
