#!/bin/bash
# The bundle of the output "pxe" on a LAN of its own, as the README tells: its dnsmasq.conf (the
# full-DHCP variant) in a real dnsmasq, `pmoves-image serve` on the LAN's address, and a machine
# whose NIC has no option ROM: OVMF's own PXE client gets ipxe.efi by TFTP, and that iPXE gets
# boot.ipxe (DHCP option 175) and boots the live system. A slower variant of pxe.t's UEFI live
# boot (its own build of the bundle): in make check-all.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap mksquashfs dnsmasq ip
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ -f /usr/lib/ipxe/ipxe.efi ] || skip_all "iPXE is not installed (package ipxe)"
[ "$(id -u)" = 0 ] || skip_all "building an image and making a network namespace need root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-pxe-lan.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 7

export SOURCE_DATE_EPOCH=1700000000
mkdir -p "$T/profiles"
cat >"$T/profiles/netboot.json" <<'JSON'
{ "extends": "base-debian", "description": "base-debian as a network-boot bundle",
  "outputs": ["pxe"] }
JSON
"$PMOVES_IMAGE" build "$T/profiles/netboot.json" -o "$T/out" >"$T/build.log" 2>&1
rc=$?; ok $rc "build a profile with the output pxe"
[ $rc = 0 ] || tail -n 20 "$T/build.log" | sed 's/^/# /'
B=$T/out/netboot/netboot.pxe
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }

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

done_testing
