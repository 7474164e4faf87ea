#!/bin/bash
# The build's outputs (raw, bmap, zst, xz, qcow2) checked with the tools that consume them:
# bmaptool create and copy, zstd -t, xz -t, qemu-img check and compare, sha256sum -c; then
# base-debian boots from its qcow2 with `pmoves-image run`.
#
# Two builds: a small profile (a tiny tarball root, 512 MiB disk) with all five outputs, so xz
# (preset 1, about 45 s on base-debian here) stays quick; and base-debian with bmap, zst and
# qcow2, for a bmap of a real image (mke2fs leaves unwritten extents in it) and the boot.
. "$(dirname "$0")/lib.sh"
need bmaptool zstd xz qemu-img qemu-system-x86_64 mmdebstrap mke2fs mkfs.vfat mcopy python3
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (mmdebstrap, file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-outputs.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000
plan 33

# The Range lines of a bmap: "first-last sha256" per line.
ranges() { sed -n 's|.*<Range chksum="\([0-9a-f]*\)"> \([0-9-]*\) </Range>|\2 \1|p' "$1"; }
# Mode of a file, octal.
mode() { stat -c %a "$1"; }

# ---- a small profile, every output ----
R=$T/root
tiny_root "$R"
tar -C "$R" -cf "$T/rootfs.tar" .
mkdir -p "$T/profiles"
cat >"$T/profiles/outs.json" <<JSON
{ "extends": "base-debian", "description": "every output of a small image",
  "rootfs": { "source": "tarball", "path": "$T/rootfs.tar" },
  "disk": { "size": "512M" },
  "outputs": ["raw", "bmap", "zst", "xz", "qcow2"] }
JSON
start=$(date +%s)
"$PMOVES_IMAGE" build "$T/profiles/outs.json" -o "$T/out" >"$T/outs.log" 2>&1
rc=$?; ok $rc "build a small profile with outputs raw, bmap, zst, xz, qcow2 ($(($(date +%s) - start)) s)"
[ $rc -eq 0 ] || tail -n 20 "$T/outs.log" | sed 's/^/# /'
D=$T/out/outs
IMG=$D/outs.img
FILES="outs.img outs.img.bmap outs.img.zst outs.img.xz outs.qcow2"
missing=; for f in $FILES; do [ -f "$D/$f" ] || missing="$missing $f"; done
is "$missing" "" "every output is there ($FILES)"
ls -a "$D" "$T/out" | grep -q 'tmp-'; ok $((!$?)) "no temp file left beside the outputs"
modes=; for f in outs.img outs.img.zst outs.img.xz outs.qcow2; do modes="$modes $(mode "$D/$f")"; done
is "$modes" " 600 600 600 600" "the image and every file holding its bytes are 0600"

check "sha256sum -c SHA256SUMS passes" sh -c "cd '$D' && sha256sum -c --strict SHA256SUMS"
is "$(cut -d' ' -f3 "$D/SHA256SUMS" | sort | tr '\n' ' ')" "$(echo $FILES | tr ' ' '\n' | sort | tr '\n' ' ')" \
	"SHA256SUMS lists every output, and only them"
man=$(python3 -c 'import json, sys
for a in json.load(open(sys.argv[1]))["artifacts"]:
    print(a["sha256"], a["file"], a["kind"])' "$D/manifest.json" 2>&1 | sort -k2)
sums=$(sort -k2 "$D/SHA256SUMS" | sed 's/  / /')
is "$(echo "$man" | cut -d' ' -f1,2)" "$sums" "manifest.json lists every output with the sha256 of SHA256SUMS"
is "$(echo "$man" | cut -d' ' -f3 | sort | tr '\n' ' ')" "bmap qcow2 raw xz zst " "... each with its kind"

bmaptool create "$IMG" -o "$T/ref.bmap" 2>"$T/create.err"
cmp -s "$D/outs.img.bmap" "$T/ref.bmap"; ok $? "the bmap is byte for byte what 'bmaptool create' writes for the image"
[ -s "$T/ref.bmap" ] || sed 's/^/# /' "$T/create.err"
check "zstd -t: the .zst is sound" zstd -t -q "$D/outs.img.zst"
check "xz -t: the .xz is sound" xz -t "$D/outs.img.xz"
for src in outs.img outs.img.zst outs.img.xz; do
	rm -f "$T/copy.img"
	bmaptool copy "$D/$src" "$T/copy.img" >"$T/copy.log" 2>&1
	rc=$?
	[ $rc -eq 0 ] && cmp -s "$IMG" "$T/copy.img"
	ok $? "bmaptool copy of $src with the bmap gives the image's bytes"
	[ $rc -eq 0 ] || tail -n 5 "$T/copy.log" | sed 's/^/# /'
done
grep -q "discovered bmap file '$D/outs.img.bmap'" "$T/copy.log"; ok $? "bmaptool finds NAME.img.bmap beside the .xz by itself"
# The copy holds data exactly where the image does: the copy's own map is the bmap's.
bmaptool create "$T/copy.img" -o "$T/copy.bmap" 2>/dev/null
[ -n "$(ranges "$D/outs.img.bmap")" ] && [ "$(ranges "$T/copy.bmap")" = "$(ranges "$D/outs.img.bmap")" ]
ok $? "the copy's mapped ranges and their sha256 are the image's ($(ranges "$D/outs.img.bmap" | wc -l) ranges)"
check "qemu-img check: the qcow2 is clean" qemu-img check -q "$D/outs.qcow2"
check "qemu-img compare: the qcow2 holds the image's bytes" qemu-img compare -q -f raw -F qcow2 "$IMG" "$D/outs.qcow2"
rm -f "$T/copy.img" "$T/copy.bmap"

# A profile asking for an output that does not exist is refused before anything is built.
sed 's/"qcow2"]/"qcow2", "vmdk"]/' "$T/profiles/outs.json" >"$T/profiles/bad.json"
"$PMOVES_IMAGE" build "$T/profiles/bad.json" -o "$T/bad" >"$T/bad.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "unknown output \"vmdk\"" "$T/bad.log" && [ ! -e "$T/bad/bad" ]
ok $? "an unknown output is refused with exit 2, nothing built (exit $rc)"

# ---- the same without "raw": the image is a step, not an output ----
sed -e 's/"outputs": .*/"outputs": ["zst"] }/' -e 's/"name": *"[^"]*",//' "$T/profiles/outs.json" >"$T/profiles/zonly.json"
"$PMOVES_IMAGE" build "$T/profiles/zonly.json" -o "$T/out" >"$T/zonly.log" 2>&1
rc=$?; ok $rc "build the small profile with outputs [\"zst\"] only"
[ $rc -eq 0 ] || tail -n 20 "$T/zonly.log" | sed 's/^/# /'
is "$(ls "$T/out/zonly" | sort | tr '\n' ' ')" "SHA256SUMS build.log manifest.json zonly.img.zst " \
	"... writes the zst and no raw image beside it"
check "... a whole zst (zstd -t)" zstd -tq "$T/out/zonly/zonly.img.zst"

# ---- base-debian: the bmap of a real image, and a boot from the qcow2 ----
cat >"$T/profiles/base-debian-outputs.json" <<JSON
{ "extends": "base-debian", "name": "base-debian", "outputs": ["raw", "bmap", "zst", "qcow2"] }
JSON
start=$(date +%s)
"$PMOVES_IMAGE" build "$T/profiles/base-debian-outputs.json" -o "$T/out" >"$T/base.log" 2>&1
rc=$?; ok $rc "build base-debian with outputs raw, bmap, zst, qcow2 ($(($(date +%s) - start)) s)"
[ $rc -eq 0 ] || tail -n 20 "$T/base.log" | sed 's/^/# /'
D=$T/out/base-debian
IMG=$D/base-debian.img
check "sha256sum -c SHA256SUMS passes" sh -c "cd '$D' && sha256sum -c --strict SHA256SUMS"
is "$(cut -d' ' -f3 "$D/SHA256SUMS" | sort | tr '\n' ' ')" \
	"base-debian.img base-debian.img.bmap base-debian.img.zst base-debian.qcow2 " "SHA256SUMS lists the four outputs"
bmaptool create "$IMG" -o "$T/ref.bmap" 2>/dev/null
cmp -s "$D/base-debian.img.bmap" "$T/ref.bmap"
ok $? "the bmap of base-debian is byte for byte 'bmaptool create's (unwritten extents mapped as it maps them)"
mapped=$(sed -n 's|.*<MappedBlocksCount> \([0-9]*\) *</MappedBlocksCount>|\1|p' "$D/base-debian.img.bmap")
alloc=$(($(du -B4096 "$IMG" | cut -f1)))
# du also counts the blocks of the file's own extent tree: a few more than its data.
[ -n "$mapped" ] && [ "$mapped" -le "$alloc" ] && [ $((alloc - mapped)) -le 16 ] && [ "$mapped" -lt 524288 ]
ok $? "the bmap maps the allocated blocks, not the whole disk ($mapped mapped, $alloc allocated, 524288 in all)"
start=$(date +%s)
bmaptool copy "$D/base-debian.img.zst" "$T/copy.img" >"$T/copy.log" 2>&1
rc=$?
[ $rc -eq 0 ] && cmp -s "$IMG" "$T/copy.img"
ok $? "bmaptool copy of base-debian.img.zst with the bmap gives the image's bytes ($(($(date +%s) - start)) s)"
[ $rc -eq 0 ] || tail -n 5 "$T/copy.log" | sed 's/^/# /'
rm -f "$T/copy.img"
check "qemu-img check: base-debian.qcow2 is clean" qemu-img check -q "$D/base-debian.qcow2"
[ "$(mode "$D/base-debian.qcow2")" = 600 ] && [ "$(mode "$D/base-debian.img.zst")" = 600 ]
ok $? "base-debian.qcow2 and .img.zst are 0600"

before=$(sha256sum <"$D/base-debian.qcow2")
"$PMOVES_IMAGE" run "$D/base-debian.qcow2" --expect 'Reached target.*Multi-User' --timeout 400 \
	--log "$T/console.log" -v >"$T/run.out" 2>"$T/run.err"
rc=$?
ok $rc "base-debian boots to multi-user from its qcow2 ($(grep -o 'after [0-9.]* s' "$T/run.err"))"
[ $rc -eq 0 ] || tail -n 20 "$T/run.err" | sed 's/^/# /'
grep -q -- "file=$D/base-debian.qcow2,format=qcow2,if=virtio,snapshot=on" "$T/run.err"
ok $? "run gives QEMU the qcow2 as format=qcow2, in snapshot mode"
[ -s "$D/base-debian.qcow2" ] && [ "$(sha256sum <"$D/base-debian.qcow2")" = "$before" ]
ok $? "the qcow2 is unchanged after a snapshot boot"
done_testing
