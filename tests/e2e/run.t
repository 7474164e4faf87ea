#!/bin/sh
# pmoves-image run: argument errors, and real boots of empty disks under OVMF/AAVMF with TCG.
# An empty disk makes the firmware print "BdsDxe: failed to load Boot0001 ..." on the serial
# console within seconds (its boot manager finds nothing to boot), which is what we expect.
cd "$(dirname "$0")/../.." || exit 1
BIN="$PWD/${PMOVES_BUILD:-build}/pmoves-image"
[ -x "$BIN" ] || { echo "1..0 # SKIP '$BIN' not built"; exit 0; }
command -v qemu-system-x86_64 >/dev/null || { echo "1..0 # SKIP qemu-system-x86_64 missing"; exit 0; }
[ -r /usr/share/OVMF/OVMF_CODE_4M.fd ] || { echo "1..0 # SKIP OVMF missing (package ovmf)"; exit 0; }

T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
mkdir "$T/tmp" && export TMPDIR="$T/tmp" # the runner's temp directories go here
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
diag() { sed 's/^/# /' "$@"; }
# check NAME WANT_STATUS WANT_TEXT ARGS...: exit status and a fragment of stderr/stdout
check() {
	name=$1 want=$2 text=$3; shift 3
	"$BIN" run "$@" >"$T/out" 2>&1; got=$?
	r=0; [ "$got" = "$want" ] || r=1
	grep -qF -- "$text" "$T/out" || r=1
	ok $r "$name (exit $want, says '$text')"
	[ $r = 0 ] || { echo "# got exit $got:"; diag "$T/out"; }
}
echo "1..27"

truncate -s 64M "$T/empty.img"
printf '{"hostname": "x"}\n' >"$T/good.json"
printf '{"hostname": \n' >"$T/bad.json"
printf '[1, 2]\n' >"$T/array.json"

check "no IMAGE" 2 "missing IMAGE" --
check "bad regex" 2 "is not a valid regular expression" "$T/empty.img" --expect 'a('
check "bad --timeout" 2 "--timeout 'soon' is not a whole number" "$T/empty.img" --timeout soon
check "zero --timeout" 2 "--timeout '0' is not a whole number" "$T/empty.img" --timeout 0
check "nonexistent --config" 2 "config '$T/none.json' cannot be read" "$T/empty.img" --config "$T/none.json"
check "invalid JSON --config" 2 "config '$T/bad.json' is not valid JSON" "$T/empty.img" --config "$T/bad.json"
check "non-object --config" 2 "is not a JSON object" "$T/empty.img" --config "$T/array.json"
check "nonexistent image" 3 "image '$T/nope.img' cannot be used" "$T/nope.img"
check "bad --arch" 2 "architecture 'mips' is not supported" "$T/empty.img" --arch mips
check "bad --accel" 2 "accelerator 'hvf' is not supported" "$T/empty.img" --accel hvf
check "bad --socket-net" 2 "--socket-net 'bind:5000' is not listen:PORT or connect:PORT" "$T/empty.img" --socket-net bind:5000
check "too many --socket-net" 2 "--socket-net given more than 4 times" "$T/empty.img" --socket-net listen:1 \
	--socket-net listen:2 --socket-net listen:3 --socket-net listen:4 --socket-net listen:5

sha_before=$(sha256sum <"$T/empty.img")
EXPECT='BdsDxe: failed to load Boot0001'

# 11-14: x86_64, accelerator chosen by the probe, with a config, a log and -v.
start=$(date +%s)
"$BIN" run "$T/empty.img" --expect "$EXPECT" --timeout 120 --log "$T/x86.log" \
	--config "$T/good.json" -v >"$T/out" 2>"$T/err"; got=$?
ok $([ $got = 0 ] && echo 0 || echo 1) "x86_64 OVMF boot of an empty disk matches '$EXPECT' ($(($(date +%s) - start)) s)"
[ $got = 0 ] || { diag "$T/out" "$T/err"; }
grep -qE '^accelerator: (kvm|tcg) \(.+\)$' "$T/err"; ok $? "the accelerator and the reason are reported"
grep '^accelerator:' "$T/err" | sed 's/^/# /'
grep -q "^BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from .*: Not Found$" "$T/out"
ok $? "the whole matching line, cleaned of ANSI escapes and carriage returns, is printed on stdout"
grep -q "$(printf '\033')\[2J" "$T/x86.log" && grep -q "$EXPECT" "$T/x86.log"
ok $? "--log keeps the raw console, escape sequences included"

# 15: -v shows the command line we promise.
grep -q -- "-machine q35 .*if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd .*if=pflash,format=raw,unit=1,file=/.*/pmoves-run-.*/OVMF_VARS_4M.fd .*file=$T/empty.img,format=raw,if=virtio,snapshot=on .*-nic user,model=virtio-net-pci,restrict=on .*-fw_cfg name=opt/ai.pmoves/device.json,file=$T/good.json" "$T/err"
ok $? "-v prints q35, OVMF with a private VARS copy, snapshot=on, restrict=on and fw_cfg"

# 16-17: no match before the timeout.
start=$(date +%s)
# 60 s: OVMF prints its first lines within seconds, even on a machine loaded by other boots.
"$BIN" run "$T/empty.img" --expect 'never-printed' --timeout 60 --accel tcg >"$T/out" 2>&1; got=$?
took=$(($(date +%s) - start))
ok $([ $got = 1 ] && [ $took -lt 90 ] && echo 0 || echo 1) "--expect never-printed --timeout 60 exits 1 (exit $got after $took s)"
grep -q "timed out after 60 s waiting for 'never-printed'" "$T/out" && grep -q "^  | ." "$T/out"
ok $? "the timeout names the regex and prints the last console lines"
[ $? = 0 ] || diag "$T/out"

# 18: snapshot mode did not change the image; no temp directory is left.
[ "$(sha256sum <"$T/empty.img")" = "$sha_before" ] && [ -z "$(ls -A "$TMPDIR")" ]
ok $? "snapshot mode leaves the image bytes unchanged and the VARS copy is removed"

# 19: --persist drops snapshot=on and needs a writable image. OVMF never writes to an empty
# disk, so this proves the command line, not a write.
"$BIN" run "$T/empty.img" --persist --expect "$EXPECT" --timeout 120 --accel tcg -v >"$T/out" 2>&1; got=$?
grep -q -- "file=$T/empty.img,format=raw,if=virtio -nic" "$T/out"; seen=$?
ok $([ $got = 0 ] && [ $seen = 0 ] && echo 0 || echo 1) "--persist boots the disk without snapshot=on"

# --iommu and --socket-net on the command line, and the firmware still boots.
"$BIN" run "$T/empty.img" --iommu --socket-net listen:$((20000 + $$ % 20000)) \
	--expect "$EXPECT" --timeout 120 --accel tcg -v >"$T/out" 2>&1; got=$?
P=$((20000 + $$ % 20000))
MAC=$(printf '52:54:00:%02x:%02x:01' $((P >> 8)) $((P & 255)))
[ $got = 0 ] && grep -q -- "-machine q35,kernel-irqchip=split -accel tcg -cpu qemu64,vendor=GenuineIntel -device intel-iommu,intremap=on " "$T/out" &&
	grep -q -- "-netdev socket,id=sock0,listen=127.0.0.1:$P -device virtio-net-pci,netdev=sock0,mac=$MAC " "$T/out"
ok $? "--iommu (VT-d, split irqchip, Intel CPU) and --socket-net reach QEMU, which boots"
[ $? = 0 ] || diag "$T/out"

# 20-22: --vars keeps the firmware variables in a file: created from the template when
# missing, then used in place.
check "--vars a directory" 2 "firmware variables '$T' is not a regular file" "$T/empty.img" --vars "$T"
"$BIN" run "$T/empty.img" --vars "$T/vars.fd" --expect "$EXPECT" --timeout 120 --accel tcg -v >"$T/out" 2>&1; got=$?
[ $got = 0 ] && [ "$(stat -c %s "$T/vars.fd" 2>/dev/null)" = "$(stat -c %s /usr/share/OVMF/OVMF_VARS_4M.fd)" ] &&
	grep -q "firmware variables '$T/vars.fd' created from" "$T/out" &&
	grep -q -- "if=pflash,format=raw,unit=1,file=$T/vars.fd " "$T/out"
ok $? "--vars FILE: created from the template and given to QEMU"
[ $? = 0 ] || diag "$T/out"
ino=$(stat -c %i "$T/vars.fd")
"$BIN" run "$T/empty.img" --vars "$T/vars.fd" --expect "$EXPECT" --timeout 120 --accel tcg -v >"$T/out" 2>&1; got=$?
[ $got = 0 ] && [ "$(stat -c %i "$T/vars.fd")" = "$ino" ] && ! grep -q "created from" "$T/out" &&
	grep -q -- "if=pflash,format=raw,unit=1,file=$T/vars.fd " "$T/out"
ok $? "--vars FILE that exists is used in place, not recreated"
[ $? = 0 ] || diag "$T/out"

# 23: SIGINT stops QEMU and exits 130.
"$BIN" run "$T/empty.img" --accel tcg >"$T/out" 2>&1 &
pid=$!
sleep 3
kill -INT $pid
wait $pid; got=$?
ok $([ $got = 130 ] && echo 0 || echo 1) "SIGINT stops QEMU and exits 130 (exit $got)"

# 24: aarch64 under AAVMF.
if [ -r /usr/share/AAVMF/AAVMF_CODE.fd ] && command -v qemu-system-aarch64 >/dev/null; then
	start=$(date +%s)
	"$BIN" run "$T/empty.img" --arch aarch64 --expect "$EXPECT" --timeout 120 >"$T/out" 2>&1; got=$?
	ok $([ $got = 0 ] && echo 0 || echo 1) "aarch64 AAVMF boot of an empty disk matches '$EXPECT' ($(($(date +%s) - start)) s)"
	[ $got = 0 ] || diag "$T/out"
else
	n=$((n + 1)); echo "ok $n - aarch64 AAVMF boot # SKIP AAVMF or qemu-system-aarch64 missing (packages qemu-efi-aarch64, qemu-system-arm)"
fi
[ $failed = 0 ]
