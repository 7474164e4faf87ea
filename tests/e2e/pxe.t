#!/bin/bash
# The output "pxe" and its live mode, booted through QEMU's own iPXE ROMs (Debian's ipxe-qemu):
# `pmoves-image run --pxe` serves the bundle on 127.0.0.1 with `pmoves-image serve`, the
# user-mode network's DHCP sends the firmware's iPXE to boot.ipxe, and the machine, with no
# disk, boots the image's kernel and initramfs; pmoves-firstboot netboot downloads the squashfs
# root into RAM, checks its pinned SHA-256, and the live system runs its first boot.
# Once under SeaBIOS, once under OVMF (the second boot starts clean: nothing persists); then a
# bundle whose root.squashfs does not match its pin is refused before anything is mounted.
# The install mode: under OVMF a blank disk is written and the machine reboots from it into its
# first boot; two disks and no rule, a BIOS netboot of a UEFI-only image, and an image that does
# not match its pin are refused, each leaving the disks in the state it says.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap mksquashfs python3 sha256sum zstd bmaptool mtype
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || skip_all "QEMU's iPXE ROMs are not installed (package ipxe-qemu)"
[ -f /usr/lib/ipxe/undionly.kpxe ] || skip_all "iPXE is not installed (package ipxe)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-pxe.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 84

# mksquashfs reads SOURCE_DATE_EPOCH itself and refuses its time options beside it
export SOURCE_DATE_EPOCH=1700000000
mkdir -p "$T/profiles"
cat >"$T/profiles/netboot.json" <<'JSON'
{ "extends": "base-debian", "description": "base-debian as a network-boot bundle",
  "outputs": ["pxe"] }
JSON
"$PMOVES_IMAGE" build "$T/profiles/netboot.json" -o "$T/out" >"$T/build.log" 2>&1
rc=$?; ok $rc "build a profile with the output pxe"
[ $rc = 0 ] || tail -n 20 "$T/build.log" | sed 's/^/# /'
D=$T/out/netboot
B=$D/netboot.pxe
for f in boot.ipxe vmlinuz initrd.img netboot.cpio root.squashfs image.img.zst image.bmap undionly.kpxe ipxe.efi dnsmasq.conf; do
	[ -s "$B/$f" ]; ok $? "the bundle has $f"
done
[ ! -e "$D/netboot.img" ]; ok $? "without the output raw, no disk image is left"
rc=0
for f in boot.ipxe vmlinuz initrd.img netboot.cpio root.squashfs image.img.zst image.bmap undionly.kpxe ipxe.efi dnsmasq.conf; do
	grep -q "  netboot.pxe/$f\$" "$D/SHA256SUMS" || rc=1
done
(cd "$D" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1 || rc=1
ok $rc "SHA256SUMS lists every file of the bundle, and checks"
SHA=$(sha256sum "$B/root.squashfs" | cut -d' ' -f1)
grep -q "pmoves.root_sha256=$SHA " "$B/boot.ipxe"; ok $? "boot.ipxe pins the squashfs root's SHA-256"
ZSHA=$(sha256sum "$B/image.img.zst" | cut -d' ' -f1)
BSHA=$(sha256sum "$B/image.bmap" | cut -d' ' -f1)
grep -q "pmoves.image_sha256=$ZSHA .*pmoves.bmap_sha256=$BSHA pmoves.image_firmware=uefi " "$B/boot.ipxe"
ok $? "boot.ipxe pins the install's image and bmap, and says the image boots by UEFI only"
zstd -dc "$B/image.img.zst" >"$T/image.raw" 2>/dev/null && bmaptool copy --bmap "$B/image.bmap" "$T/image.raw" "$T/bmap-check.img" >/dev/null 2>&1
ok $? "image.img.zst is a zstd image that bmaptool copies with image.bmap (their checksums agree)"
rm -f "$T/bmap-check.img"
is "$(($(stat -c %s "$B/initrd.img") % 4))" 0 "initrd.img ends on a 4-byte boundary (the EFI stub appends netboot.cpio to it)"
cmp -s /usr/lib/ipxe/undionly.kpxe "$B/undionly.kpxe"; ok $? "undionly.kpxe is Debian's iPXE"

# netboot.cpio (newc), listed: scripts/pmoves, /pmoves/bin, its libraries, modules in order.
python3 - "$B/netboot.cpio" "$T/order.txt" >"$T/cpio.txt" <<'PYEOF'
import sys
d = open(sys.argv[1], 'rb').read(); o = 0
while True:
    h = d[o:o + 110]
    assert h[:6] == b'070701', 'not a newc archive'
    size, nsz = int(h[54:62], 16), int(h[94:102], 16)
    name = d[o + 110:o + 110 + nsz - 1].decode()
    o = (o + 110 + nsz + 3) & ~3
    if name == 'TRAILER!!!':
        break
    print(name)
    if name == 'pmoves/modules/order':
        open(sys.argv[2], 'w').write(d[o:o + size].decode())
    o = (o + size + 3) & ~3
PYEOF
ok $? "netboot.cpio is a newc archive"
for f in scripts/pmoves pmoves/bin/pmoves-firstboot pmoves/lib/libc.so.6 pmoves/lib/libcurl.so.4 \
	pmoves/lib/ld-linux-x86-64.so.2 pmoves/modules/squashfs.ko pmoves/modules/overlay.ko; do
	grep -qx "$f" "$T/cpio.txt"; ok $? "netboot.cpio holds $f"
done
grep -v '^scripts$' "$T/cpio.txt" | grep -qv '^pmoves\|^scripts/pmoves$'; ok $((!$?)) "netboot.cpio adds nothing outside /pmoves but its boot script"
rc=0
for m in loop squashfs overlay; do grep -qx "$m.ko" "$T/order.txt" && grep -qx "pmoves/modules/$m.ko" "$T/cpio.txt" || rc=1; done
ok $rc "modules/order lists the live root's modules, each one in the archive"
rc=0
for m in vfat fat nls_cp437; do grep -qx "$m.ko" "$T/order.txt" && grep -qx "pmoves/modules/$m.ko" "$T/cpio.txt" || rc=1; done
grep -qx pmoves/modules/efivarfs.ko "$T/cpio.txt" && grep -qx pmoves/modules/order.efi "$T/cpio.txt" &&
	grep -qx pmoves/lib/libefiboot.so.1 "$T/cpio.txt" && grep -qx pmoves/lib/libefivar.so.1 "$T/cpio.txt" || rc=1
ok $rc "the install's modules (FAT for the ESP; efivarfs apart, for UEFI machines) and libefiboot are in it"

clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
# The inventory gives the BIOS machine its config by its MAC; the UEFI one gets its config by
# fw_cfg (--config) and no entry.
MAC=52:54:00:aa:bb:01
cat >"$T/fleet.json" <<JSON
{ "devices": [ { "name": "live-1", "mac": "$MAC", "config": { "hostname": "live-1" } } ] }
JSON
cat >"$T/device.json" <<'JSON'
{ "hostname": "live-2" }
JSON
cat >"$T/bad-fleet.json" <<JSON
{ "devices": [ { "name": "live-1", "mac": "$MAC", "config": { "hostname": "-bad-" } } ] }
JSON
"$PMOVES_IMAGE" serve "$B" --listen 127.0.0.1:0 --inventory "$T/bad-fleet.json" >/dev/null 2>"$T/bad-fleet.err"
is $? 2 "serve --inventory with an invalid config: exit 2, before serving"
grep -q 'devices\[0\].config' "$T/bad-fleet.err"; ok $? "... naming the entry's config"

# ---- BIOS ----
"$PMOVES_IMAGE" run --pxe "$B" --firmware bios --mac "$MAC" --inventory "$T/fleet.json" \
	--expect 'pmoves-firstboot: done status=' --timeout 500 --log "$T/bios.log" >"$T/bios.out" 2>"$T/bios.err"
rc=$?; ok $rc "SeaBIOS + iPXE: the live system comes to the end of its first boot"
clean "$T/bios.log" >"$T/bios.txt"
[ $rc = 0 ] || tail -n 15 "$T/bios.txt" "$T/bios.err" | sed 's/^/# /' >&2
grep -q 'done status=ok' "$T/bios.out"; ok $? "BIOS: done status=ok"
grep -aq "pmoves-netboot: step=fetch state=ok bytes=$(stat -c %s "$B/root.squashfs") sha256=$SHA" "$T/bios.txt"
ok $? "BIOS: the squashfs root came whole and matched its pin"
grep -aq 'pmoves-netboot: step=mount state=ok root=squashfs overlay=ram' "$T/bios.txt"; ok $? "BIOS: the root is the squashfs under a RAM overlay"
grep -aq 'pmoves-firstboot: step=hostname state=ok live-1' "$T/bios.txt"; ok $? "BIOS: the hostname from the inventory's entry for its MAC"
grep -q '"GET /machine/52-54-00-aa-bb-01.ipxe" 200' "$T/bios.err" && grep -q '"GET /machine/52-54-00-aa-bb-01.json" 200' "$T/bios.err"
ok $? "BIOS: the machine's own script and config were served"
grep -aq "pmoves.config_sha256=[0-9a-f]\{64\}" "$T/bios.txt"; ok $? "BIOS: the kernel command line pins the config's SHA-256"
grep -aq 'step=growfs state=skipped' "$T/bios.txt"; ok $? "BIOS: growfs has no disk to grow"
grep -q '"GET /boot.ipxe"' "$T/bios.err" && grep -q '"GET /root.squashfs"' "$T/bios.err"
ok $? "serve logged the machine's requests"
KEY1=$(grep -ao 'step=ssh state=ok .*' "$T/bios.txt")

# ---- UEFI, the second boot: nothing of the first persisted ----
"$PMOVES_IMAGE" run --pxe "$B" --config "$T/device.json" \
	--expect 'pmoves-firstboot: done status=' --timeout 500 --log "$T/uefi.log" >"$T/uefi.out" 2>"$T/uefi.err"
rc=$?; ok $rc "OVMF + iPXE (UEFI, the default): the live system comes to the end of its first boot"
clean "$T/uefi.log" >"$T/uefi.txt"
[ $rc = 0 ] || tail -n 15 "$T/uefi.txt" "$T/uefi.err" | sed 's/^/# /' >&2
grep -q 'done status=ok' "$T/uefi.out"; ok $? "UEFI: done status=ok"
grep -aq 'pmoves-firstboot: step=hostname state=ok live-2' "$T/uefi.txt"; ok $? "UEFI: the hostname from --config (no inventory)"
grep -q '"GET /machine/52-54-00-12-34-56.ipxe" 404' "$T/uefi.err"; ok $? "UEFI: no script of its own, boot.ipxe went on without"
KEY2=$(grep -ao 'step=ssh state=ok .*' "$T/uefi.txt")
[ -n "$KEY1" ] && [ -n "$KEY2" ] && [ "$KEY1" != "$KEY2" ]
ok $? "the second boot made its own SSH host keys: it started clean"

# ---- a root that is not the pinned one ----
cp -a "$B" "$T/bad.pxe"
printf 'X' | dd of="$T/bad.pxe/root.squashfs" bs=1 seek=4096 conv=notrunc status=none
"$PMOVES_IMAGE" run --pxe "$T/bad.pxe" --firmware bios \
	--expect 'pmoves-netboot: step=(fetch|mount) state=(failed|ok)' --timeout 400 --log "$T/bad.log" >"$T/bad.out" 2>"$T/bad.err"
ok $? "a bundle whose squashfs does not match: the boot gets to the fetch"
grep -q 'step=fetch state=failed' "$T/bad.out"; ok $? "the download is refused"
grep 'step=fetch state=failed' "$T/bad.out" | grep -q "$SHA" && grep 'step=fetch state=failed' "$T/bad.out" | grep -q "$(sha256sum "$T/bad.pxe/root.squashfs" | cut -d' ' -f1)"
ok $? "the refusal names the pinned SHA-256 and the one that came"

# ---- install: a blank disk written, the machine reboots from it ----
# The inventory sets the machine's mode; the disk is the only one, so no rule is needed.
IMAC=52:54:00:aa:bb:02
cat >"$T/install-fleet.json" <<JSON
{ "devices": [ { "name": "metal-1", "mac": "$IMAC", "netboot": { "mode": "install" },
                 "config": { "hostname": "metal-1" } } ] }
JSON
blank() { rm -f "$1" && truncate -s "$2" "$1"; }
zeros() { [ "$(tr -d '\0' <"$1" | head -c 1 | wc -c)" = 0 ]; }
blank "$T/disk1.img" 4G
"$PMOVES_IMAGE" run --pxe "$B" --mac "$IMAC" --inventory "$T/install-fleet.json" --disk "$T/disk1.img" --persist \
	--expect 'pmoves-firstboot: done status=|pmoves-install: stopped' --timeout 900 --log "$T/install.log" >"$T/install.out" 2>"$T/install.err"
rc=$?; clean "$T/install.log" >"$T/install.txt"
grep -q 'done status=ok' "$T/install.out"; ok $? "install (UEFI): the installed system comes to the end of its first boot"
[ $rc = 0 ] && grep -q 'done status=ok' "$T/install.out" || tail -n 25 "$T/install.txt" "$T/install.err" | sed 's/^/# /' >&2
grep -aq 'pmoves-install: step=disk state=ok disk=/dev/vda vda (4.0 GiB, serial pmoves-disk1' "$T/install.txt"; ok $? "install: the only disk is the one written"
grep -aq "pmoves-install: step=write state=ok disk=/dev/vda written=[0-9]* verified=yes sha256=$ZSHA" "$T/install.txt"
ok $? "install: the image streamed, matched its pin and was verified by reading back"
grep -aq 'pmoves-install: done disk=/dev/vda' "$T/install.txt" && grep -aq 'BdsDxe: starting Boot[0-9A-F]* "PMOVES"' "$T/install.txt"
ok $? "install: the machine rebooted through the UEFI boot entry the install made"
grep -aq 'pmoves-firstboot: step=hostname state=ok metal-1' "$T/install.txt"; ok $? "install: the hostname the inventory gives its MAC"
grep -aq "step=growfs state=ok partition 2 of '/dev/vda'" "$T/install.txt"; ok $? "install: the first boot grew the root over the disk"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(520); sys.exit(not (d[510:512]==b"\x55\xaa" and d[450]==0xee and d[512:520]==b"EFI PART"))' "$T/disk1.img"
ok $? "install: the disk has a protective MBR and a GPT"
MTOOLS_SKIP_CHECK=1 mtype -i "$T/disk1.img@@1M" ::/pmoves/device.json 2>/dev/null | grep -q '"hostname": *"metal-1"'
ok $? "install: the machine's config is the ESP's pmoves/device.json"
grep -q '"GET /image.img.zst" 200' "$T/install.err"; ok $? "install: serve logged the image's download"
# Netbooted again in install mode (a firmware that keeps the network first): the disk holds this
# image already, so the machine is sent to boot it (a boot entry, BootNext) instead of writing
# it again. (Under --network-first OVMF then drops that entry and netboots again: the reboot
# into the disk is what the install above showed.)
"$PMOVES_IMAGE" run --pxe "$B" --mac "$IMAC" --inventory "$T/install-fleet.json" --disk "$T/disk1.img" --persist \
	--network-first --expect 'pmoves-install: (done|stopped)' --timeout 600 --log "$T/again.log" >"$T/again.out" 2>"$T/again.err"
clean "$T/again.log" >"$T/again.txt"
grep -aq "pmoves-install: step=installed state=ok this image (sha256 $ZSHA) is on /dev/vda already: booting it, nothing written" "$T/again.txt" &&
	grep -aq 'pmoves-install: step=boot state=ok .*BootNext' "$T/again.txt" && grep -q 'pmoves-install: done disk=/dev/vda installed=already' "$T/again.out"
ok $? "install again (the network first): the disk holds the image already, the machine is sent to boot it"
! grep -aq 'step=write' "$T/again.txt" && ! grep -q '"GET /image.img.zst"' "$T/again.err"; ok $? "... without downloading or writing it"

# ---- install refused: two disks and no rule; a BIOS netboot of a UEFI-only image ----
# (test-fb-disk.c checks the disk rules without a boot)
if slow; then
blank "$T/disk1.img" 3G
blank "$T/disk2.img" 3G
"$PMOVES_IMAGE" run --pxe "$B" --mode install --disk "$T/disk1.img" --disk "$T/disk2.img" --persist \
	--expect 'pmoves-install: stopped|pmoves-firstboot: done' --timeout 600 --log "$T/two.log" >"$T/two.out" 2>"$T/two.err"
clean "$T/two.log" >"$T/two.txt"
grep -aq 'pmoves-install: stopped: no disk chosen: nothing written' "$T/two.txt"; ok $? "two disks and no rule: the install stops"
grep -a 'step=disk state=failed' "$T/two.txt" | grep -q 'more than one disk.*serial pmoves-disk1.*serial pmoves-disk2.*pmoves.disk=serial:S'
ok $? "... naming both disks and how to choose one"
zeros "$T/disk1.img" && zeros "$T/disk2.img"; ok $? "... both disks are still blank"

# ---- install refused: a BIOS netboot of an image that boots only by UEFI ----
"$PMOVES_IMAGE" run --pxe "$B" --firmware bios --mode install --disk "$T/disk1.img" --persist \
	--expect 'pmoves-install: stopped|pmoves-firstboot: done' --timeout 600 --log "$T/biosi.log" >"$T/biosi.out" 2>"$T/biosi.err"
clean "$T/biosi.log" >"$T/biosi.txt"
grep -aq 'pmoves-install: step=check state=failed the image boots only by UEFI, and this machine netbooted by BIOS: nothing written' "$T/biosi.txt"
ok $? "a BIOS netboot of a UEFI-only image: refused with that reason"
zeros "$T/disk1.img"; ok $? "... the disk is still blank"
else
	skip 5 "$SLOW"
fi

# ---- install refused: the image does not match its pin ----
# Its bmap matches, so every range is written and checked, but the download's SHA-256 is not
# the pinned one: the disk ends up the image past its first MiB, and zeros there (no GPT).
mkdir "$T/badpin.pxe" && cp -al "$B"/. "$T/badpin.pxe"/ && rm "$T/badpin.pxe/boot.ipxe"
sed "s/pmoves.image_sha256=$ZSHA/pmoves.image_sha256=$(printf '%064d' 0)/" "$B/boot.ipxe" >"$T/badpin.pxe/boot.ipxe"
blank "$T/disk1.img" 3G
"$PMOVES_IMAGE" run --pxe "$T/badpin.pxe" --mode install --disk "$T/disk1.img" --persist \
	--expect 'pmoves-install: stopped|pmoves-firstboot: done' --timeout 600 --log "$T/pin.log" >"$T/pin.out" 2>"$T/pin.err"
clean "$T/pin.log" >"$T/pin.txt"
grep -aq 'pmoves-install: stopped: the disk.s first MiB is zeros: it holds no partition table and does not boot' "$T/pin.txt"
ok $? "an image that does not match its pin: the install stops"
grep -a 'step=write state=failed' "$T/pin.txt" | grep -q "sha256 $ZSHA, but 0\{64\} is pinned"; ok $? "... naming both SHA-256s"
head -c 1M "$T/disk1.img" | zeros /dev/stdin; ok $? "... the disk's first MiB is zeros: no partition table"
cmp -s -i 1M -n $(($(stat -c %s "$T/image.raw") - 1048576)) "$T/image.raw" "$T/disk1.img"
ok $? "... past it, the disk holds the image (every range was written and checked before the pin)"
! grep -aq 'BdsDxe: starting Boot[0-9A-F]* "PMOVES"' "$T/pin.txt"; ok $? "... and the machine did not reboot into it"
rm -f "$T/disk1.img" "$T/disk2.img" "$T/image.raw"

# ---- profiles the output cannot make a bundle of ----
cat >"$T/profiles/var.json" <<'JSON'
{ "extends": "base-debian", "outputs": ["pxe"],
  "disk": { "partitions": [
    { "name": "esp", "type": "esp", "size": "256M", "fs": "vfat", "mount": "/boot/efi" },
    { "name": "var", "type": "linux", "size": "512M", "fs": "ext4", "mount": "/var" },
    { "name": "root", "type": "root", "size": "fill", "fs": "ext4", "mount": "/" } ] } }
JSON
"$PMOVES_IMAGE" validate "$T/profiles/var.json" >/dev/null 2>"$T/var.err"
is "$? $(grep -c 'partitions\[1\].mount: output .pxe. makes the live root of the root filesystem only' "$T/var.err")" "2 1" \
	"a partition mounted at /var: refused, naming it"
cat >"$T/profiles/dollar.json" <<'JSON'
{ "extends": "base-debian", "outputs": ["pxe"], "boot": { "cmdline": "console=ttyS0 x=${y}" } }
JSON
"$PMOVES_IMAGE" validate "$T/profiles/dollar.json" >/dev/null 2>"$T/dollar.err"
is "$? $(grep -c 'boot.cmdline: output .pxe. puts the command line in an iPXE script' "$T/dollar.err")" "2 1" \
	"a command line with \${...}: refused"

cat >"$T/profiles/arm.json" <<'JSON'
{ "extends": "pi-mesh-node", "outputs": ["pxe"] }
JSON
"$PMOVES_IMAGE" validate "$T/profiles/arm.json" >/dev/null 2>"$T/arm.err"
is "$? $(grep -c 'outputs: output .pxe. is for x86_64 profiles' "$T/arm.err")" "2 1" "an aarch64 profile: refused"

# ---- usage ----
# On this machine, whose kernel command line has no pmoves.root: refused before anything.
"$BUILD/target/$(uname -m)/pmoves-firstboot" netboot live --mount "$T/nowhere" >"$T/nb.out" 2>"$T/nb.err"
is $? 2 "netboot live without pmoves.root on the kernel command line: exit 2"
grep -q 'pmoves.root=URL and pmoves.root_sha256=HEX' "$T/nb.err"; ok $? "... saying what it needs"
"$PMOVES_IMAGE" run --pxe "$T/nowhere" >/dev/null 2>&1
is $? 3 "run --pxe of a directory that is not a bundle: exit 3"
"$PMOVES_IMAGE" run --pxe "$B" --firmware coreboot >/dev/null 2>&1
is $? 2 "--firmware other than uefi or bios: exit 2"
"$PMOVES_IMAGE" run --pxe "$B" --mode reinstall >/dev/null 2>&1
is $? 2 "--mode other than live or install: exit 2"
"$PMOVES_IMAGE" run --pxe "$B" --disk "$T/nowhere.img" >/dev/null 2>&1
is $? 3 "--disk that does not exist: exit 3"
"$PMOVES_IMAGE" run --pxe "$B" --persist >/dev/null 2>&1
is $? 2 "--persist with --pxe and no --disk: exit 2"
"$PMOVES_IMAGE" run --pxe "$B" --network-first >/dev/null 2>&1
is $? 2 "--network-first without --disk: exit 2"
"$BUILD/target/$(uname -m)/pmoves-firstboot" netboot install >"$T/nbi.out" 2>"$T/nbi.err"
is $? 2 "netboot install without pmoves.image on the kernel command line: exit 2"
grep -q 'pmoves.image=URL and pmoves.image_sha256=HEX' "$T/nbi.err"; ok $? "... saying what it needs"
"$PMOVES_IMAGE" serve "$B" --mode reinstall >/dev/null 2>&1
is $? 2 "serve --mode other than live or install: exit 2"
cat >"$T/badnb-fleet.json" <<JSON
{ "devices": [ { "name": "m", "mac": "$MAC", "netboot": { "disk": "serial:a b" }, "config": {} } ] }
JSON
"$PMOVES_IMAGE" serve "$B" --listen 127.0.0.1:0 --inventory "$T/badnb-fleet.json" >/dev/null 2>"$T/badnb.err"
is "$? $(grep -c 'devices\[0\].netboot.disk' "$T/badnb.err")" "2 1" "an inventory entry's netboot.disk that is not a rule: refused, named"
done_testing
