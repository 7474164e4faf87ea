#!/bin/bash
# The iommu step on a real boot and its reboot: base-debian on q35 with an emulated Intel
# IOMMU (pmoves-image run --iommu: intel-iommu with interrupt remapping, an Intel CPU). The
# device config turns the step on with "without_gpu" (QEMU has no NVIDIA card): the first boot
# writes the IOMMU flags into /etc/kernel/cmdline, refreshes the systemd-boot entry with
# kernel-install and reboots; the second boot has the flags on its command line and the step
# verifies that IOMMU groups exist, then the run is done.
# The reboot is a power cycle: the first run (--persist --no-reboot, on a copy of the image) ends
# when the guest reboots, the second boots what it wrote. (A reset inside one QEMU process hung
# in the firmware once in about seven runs with the emulated VT-d under TCG.)
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-iommu.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 10

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1
ok $? "build base-debian"
echo '{ "iommu": { "without_gpu": true } }' >"$T/device.json"

cp --sparse=always "$T/base-debian/base-debian.img" "$T/disk.img"
"$PMOVES_IMAGE" run "$T/disk.img" --persist --no-reboot --iommu --config "$T/device.json" \
	--vars "$T/vars.fd" --timeout 900 --log "$T/boot1.log" >/dev/null 2>"$T/run1.err"
rc=$?
grep -aq 'reboot: Restarting system' "$T/boot1.log"
seen=$?
ok $([ $rc = 0 ] && [ $seen = 0 ] && echo 0 || echo 1) "first boot: provisions, then reboots, and QEMU exits (--no-reboot; exit $rc)"
"$PMOVES_IMAGE" run "$T/disk.img" --iommu --config "$T/device.json" --vars "$T/vars.fd" \
	--expect '^pmoves-firstboot: done ' --timeout 900 --log "$T/boot2.log" >/dev/null 2>"$T/run2.err"
ok $? "second boot: finishes provisioning"
cat "$T/boot1.log" "$T/boot2.log" | sed 's/\x1b\[[0-9;]*m//g' | tr -d '\r' >"$T/boot.txt"

grep -aqE "^pmoves-firstboot: step=iommu state=reboot intel_iommu=on iommu=pt in '/etc/kernel/cmdline'" "$T/boot.txt"
ok $? "first boot: the step writes the Intel flags into /etc/kernel/cmdline and asks for a reboot"
is "$(grep -ac 'Linux version' "$T/boot.txt")" 2 "the machine booted twice"
grep -a 'Command line:' "$T/boot.txt" | sed -n 1p | grep -aq 'iommu='
ok $((!$?)) "the first boot's kernel command line has no IOMMU flags"
grep -a 'Command line:' "$T/boot.txt" | sed -n 2p | grep -aqE ' intel_iommu=on iommu=pt( |$)'
ok $? "the second boot's kernel command line has 'intel_iommu=on iommu=pt' (the boot entry was refreshed)"
grep -aqE '^pmoves-firstboot: step=iommu state=start after reboot$' "$T/boot.txt"
ok $? "second boot: the step only verifies"
grep -aqE '^pmoves-firstboot: step=iommu state=ok IOMMU on \([1-9][0-9]* groups\); no GPU to bind$' "$T/boot.txt"
ok $? "second boot: IOMMU groups exist, no GPU bound"
grep -aqE '^pmoves-firstboot: done status=ok ' "$T/boot.txt"
ok $? "the run is done, status ok"
done_testing
