#!/bin/bash
# The output "pxe" and its live mode, booted through QEMU's own iPXE ROMs (Debian's ipxe-qemu):
# `pmoves-image run --pxe` serves the bundle on 127.0.0.1 with `pmoves-image serve`, the
# user-mode network's DHCP sends the firmware's iPXE to boot.ipxe, and the machine, with no
# disk, boots the image's kernel and initramfs; pmoves-firstboot netboot downloads the squashfs
# root into RAM, checks its pinned SHA-256, and the live system runs its first boot.
# Once under SeaBIOS, once under OVMF (the second boot starts clean: nothing persists); then a
# bundle whose root.squashfs does not match its pin is refused before anything is mounted.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap mksquashfs python3 sha256sum dnsmasq ip
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || skip_all "QEMU's iPXE ROMs are not installed (package ipxe-qemu)"
[ -f /usr/lib/ipxe/undionly.kpxe ] || skip_all "iPXE is not installed (package ipxe)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-pxe.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 56

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
for f in boot.ipxe vmlinuz initrd.img netboot.cpio root.squashfs undionly.kpxe ipxe.efi dnsmasq.conf; do
	[ -s "$B/$f" ]; ok $? "the bundle has $f"
done
[ ! -e "$D/netboot.img" ]; ok $? "without the output raw, no disk image is left"
rc=0
for f in boot.ipxe vmlinuz initrd.img netboot.cpio root.squashfs undionly.kpxe ipxe.efi dnsmasq.conf; do
	grep -q "  netboot.pxe/$f\$" "$D/SHA256SUMS" || rc=1
done
(cd "$D" && sha256sum --quiet -c SHA256SUMS) >/dev/null 2>&1 || rc=1
ok $rc "SHA256SUMS lists every file of the bundle, and checks"
SHA=$(sha256sum "$B/root.squashfs" | cut -d' ' -f1)
grep -q "pmoves.root_sha256=$SHA " "$B/boot.ipxe"; ok $? "boot.ipxe pins the squashfs root's SHA-256"
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

# ---- a LAN of its own: the bundle's dnsmasq.conf, OVMF's own PXE, TFTP, ipxe.efi ----
# A network namespace made here holds a bridge (10.77.0.1/24) with a tap device for QEMU, a real
# dnsmasq running the bundle's dnsmasq.conf (the full-DHCP variant, with the substitutions its
# comment asks for) and `pmoves-image serve` on the bridge's address. The NIC has no option ROM:
# OVMF's own PXE client gets ipxe.efi by TFTP, and that iPXE (DHCP option 175) gets boot.ipxe.
NS=pmoves-pxe-$$
LAN_PIDS=
lan_down() {
	for p in $LAN_PIDS; do kill "$p" 2>/dev/null; done
	for p in $LAN_PIDS; do wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
}
trap 'lan_down; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
ip netns add "$NS" && ip -n "$NS" link set lo up && ip -n "$NS" link add br0 type bridge &&
	ip -n "$NS" addr add 10.77.0.1/24 dev br0 && ip -n "$NS" link set br0 up &&
	ip -n "$NS" tuntap add tap0 mode tap && ip -n "$NS" link set tap0 master br0 up
ok $? "a network namespace with a bridge and a tap device"
sed -e "s|/srv/netboot.pxe|$B|" -e 's/192\.168\.1\.10:/10.77.0.1:/' \
	-e 's/192\.168\.1\.100,192\.168\.1\.199/10.77.0.100,10.77.0.199/' \
	-e '/,proxy$/d' -e '/^pxe-service=/d' -e 's/^#dhcp-/dhcp-/' "$B/dnsmasq.conf" >"$T/dnsmasq.conf"
# root: the bundle is under images/NAME, 0700
ip netns exec "$NS" dnsmasq --keep-in-foreground --log-facility=- --log-dhcp --user=root --port=0 \
	--interface=br0 --bind-interfaces --dhcp-leasefile="$T/leases" --pid-file="$T/dnsmasq.pid" \
	--conf-file="$T/dnsmasq.conf" >"$T/dnsmasq.log" 2>&1 &
LAN_PIDS="$LAN_PIDS $!"
ip netns exec "$NS" "$PMOVES_IMAGE" serve "$B" --listen 10.77.0.1:8080 >"$T/lan-serve.out" 2>"$T/lan-serve.err" &
LAN_PIDS="$LAN_PIDS $!"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$T/lan-vars.fd"
ip netns exec "$NS" qemu-system-x86_64 -nodefaults -machine q35 -accel tcg -m 1024 -display none \
	-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
	-drive if=pflash,format=raw,file="$T/lan-vars.fd" \
	-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0,romfile=,bootindex=0 \
	-serial file:"$T/lan.log" >"$T/lan-qemu.err" 2>&1 &
QPID=$!
LAN_PIDS="$LAN_PIDS $QPID"
for i in $(seq 400); do
	grep -aq 'pmoves-firstboot: done status=' "$T/lan.log" 2>/dev/null && break
	kill -0 "$QPID" 2>/dev/null || break
	sleep 1
done
clean "$T/lan.log" >"$T/lan.txt" 2>/dev/null
grep -aq 'pmoves-firstboot: done status=ok' "$T/lan.txt"; rc=$?
ok $rc "the LAN: OVMF's PXE, TFTP ipxe.efi, boot.ipxe over HTTP: the live system's first boot is done"
[ $rc = 0 ] || tail -n 15 "$T/lan.txt" "$T/dnsmasq.log" "$T/lan-serve.err" | sed 's/^/# /' >&2
grep -q 'bootfile-name  ipxe.efi' "$T/dnsmasq.log" && grep -q 'sent .*/ipxe.efi to 10.77.0.' "$T/dnsmasq.log"
ok $? "dnsmasq gave the firmware ipxe.efi and sent it by TFTP"
grep -q 'bootfile-name  http://10.77.0.1:8080/boot.ipxe' "$T/dnsmasq.log"; ok $? "... and iPXE the URL of boot.ipxe"
grep -q '^serve: 10\.77\.0\.[0-9]* "GET /root.squashfs" 200' "$T/lan-serve.err"; ok $? "serve on the LAN address served the machine its root"
grep -aq 'pmoves.root=http://10.77.0.1:8080/root.squashfs' "$T/lan.txt"; ok $? "the script's base is the address the machine asked at"
lan_down

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
done_testing
