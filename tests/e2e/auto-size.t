#!/bin/bash
# Disk size "auto" (docs/profiles.md): base-debian with "size": "auto" and a 64M margin is
# built as small as its root's files, the ext4 overhead and the margin (from the cached
# rootfs), twice with the same bytes; inspect agrees with its manifest. A copy made 3 GiB
# boots in QEMU, and its first boot grows the partition and the filesystem to the end of the
# disk (pmoves-firstboot's growfs, the backup GPT moved): checked on the console and offline.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap sgdisk sfdisk e2fsck dumpe2fs
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-auto-size.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export SOURCE_DATE_EPOCH=1700000000
MiB=1048576
MARGIN=$((64 * MiB))
plan 20

mkdir -p "$T/profiles"
cat >"$T/profiles/auto-debian.json" <<'EOF'
{ "extends": "base-debian", "description": "base-debian sized from its files",
  "disk": { "size": "auto", "margin": "64M" } }
EOF
"$PMOVES_IMAGE" build "$T/profiles/auto-debian.json" -o "$T/a" >"$T/a.log" 2>&1; rc=$?
ok $rc "build base-debian with \"size\": \"auto\""
[ $rc = 0 ] || { tail -n 15 "$T/a.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }
IMG=$T/a/auto-debian/auto-debian.img
grep -a '^size: ' "$T/a.log" | sed 's/^/# /'
grep -q "^size: partition 'root' is [0-9.]* MiB (its files, the ext4 overhead and a margin of 64.0 MiB)" "$T/a.log"
ok $? "the size stage says what it decided"

SIZE=$(stat -c %s "$IMG")
ROOT_OFF=$(part_offset "$IMG" 2); ROOT_SIZE=$(part_size "$IMG" 2)
is "$((SIZE % MiB))" 0 "the image is a whole number of MiB ($SIZE bytes)"
is "$SIZE" "$(((ROOT_OFF + ROOT_SIZE + 33 * 512 + MiB - 1) / MiB * MiB))" \
	"the disk ends after the root partition and the backup GPT"
check "sgdisk --verify is clean" sh -c "sgdisk --verify '$IMG' | grep -q 'No problems found'"
check "e2fsck -fn finds the root clean" e2fsck -fn "$IMG?offset=$ROOT_OFF"
dumpe2fs -h "$IMG?offset=$ROOT_OFF" >"$T/dump.txt" 2>/dev/null
val() { sed -n "s/^$1: *//p" "$T/dump.txt"; }
BS=$(val 'Block size'); BLOCKS=$(val 'Block count'); FREE=$(val 'Free blocks'); RSV=$(val 'Reserved block count')
is "$((BLOCKS * BS))" "$ROOT_SIZE" "the ext4 filesystem fills its partition"
AVAIL=$(((FREE - RSV) * BS))
diag "root: $ROOT_SIZE bytes, $((BLOCKS - FREE)) of $BLOCKS blocks used, $AVAIL bytes free for users"
[ "$AVAIL" -ge "$MARGIN" ]; ok $? "at least the 64M margin is free for users ($((AVAIL / MiB)) MiB)"
# Close to content + overhead + margin: what is free beyond the margin is the size bound's
# slack and the 1 MiB rounding.
[ "$((AVAIL - MARGIN))" -le $((2 * MiB + ROOT_SIZE / 50)) ]
ok $? "and not much more: $(((AVAIL - MARGIN) / 1024)) KiB beyond the margin (at most 2 MiB + 2%)"
# base-debian's fixed 2G, for comparison: the auto-sized image is much smaller.
[ "$SIZE" -lt $((1536 * MiB)) ]; ok $? "smaller than 1.5 GiB (base-debian is 2 GiB)"
"$PMOVES_IMAGE" inspect "$IMG" >"$T/inspect.txt" 2>&1; rc=$?
ok $rc "inspect: the image matches its manifest"
[ $rc = 0 ] || sed 's/^/# /' "$T/inspect.txt" | tail -n 10
grep -q "\"size\": $SIZE" "$T/a/auto-debian/manifest.json"; ok $? "manifest.json records the disk's size"

# Reproducible: the same bytes again, the tree staged elsewhere.
mkdir "$T/wd"
PMOVES_WORKDIR=$T/wd "$PMOVES_IMAGE" build "$T/profiles/auto-debian.json" -o "$T/b" >"$T/b.log" 2>&1
cmp -s "$IMG" "$T/b/auto-debian/auto-debian.img"; ok $? "a second build gives the same bytes"

# The first boot of a copy on a larger disk grows the root to its end.
cp --sparse=always "$IMG" "$T/disk.img"
rm -rf "$T/b" "$T/wd"
truncate -s 3G "$T/disk.img"
DISK_BYTES=$(stat -c %s "$T/disk.img")
printf '{ "hostname": "auto-1" }\n' >"$T/device.json"
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" \
	--expect 'auto-1 login:' --timeout 400 --log "$T/boot.log" >/dev/null 2>"$T/run.err"
ok $? "the enlarged copy boots to a login prompt"
[ $? = 0 ] || sed 's/^/# /' "$T/run.err" | tail -n 25
clean "$T/boot.log" >"$T/boot.txt"
LINE=$(grep -a 'pmoves-firstboot: step=growfs state=ok' "$T/boot.txt")
diag "$LINE"
case $LINE in *"partition 2 of '/dev/"*" -> "*", ext4 grown"*) r=0 ;; *) r=1 ;; esac
ok $r "console: growfs grew partition 2 and its ext4"

# QEMU is stopped, not shut down: look at a copy, its journal replayed.
cp --sparse=always "$T/disk.img" "$T/look.img"
check "sgdisk --verify is clean after the growth" sh -c "sgdisk --verify '$T/look.img' | grep -q 'No problems found'"
sfdisk --json "$T/look.img" >"$T/table.json"
LASTLBA=$(sed -n 's/.*"lastlba": *\([0-9]*\).*/\1/p' "$T/table.json")
is "$LASTLBA" $((DISK_BYTES / 512 - 34)) "the GPT's last usable LBA is at the end of the 3 GiB disk (backup header moved)"
ROOT_START=$(sed -n 's/.*"start": *\([0-9]*\).*/\1/p' "$T/table.json" | sed -n 2p)
ROOT_SECTORS=$(sed -n 's/.*"size": *\([0-9]*\).*/\1/p' "$T/table.json" | sed -n 2p)
ROOT_END=$((ROOT_START + ROOT_SECTORS - 1))
[ -n "$LASTLBA" ] && [ "$ROOT_END" -le "$LASTLBA" ] && [ $((LASTLBA - ROOT_END)) -lt 2048 ]
ok $? "the root partition ends within 1 MiB of the disk's end (sectors $ROOT_START..$ROOT_END)"
ROOT=$T/root.img
dd if="$T/look.img" of="$ROOT" bs=1M skip=$((ROOT_START / 2048)) count=$((${ROOT_SECTORS:-0} / 2048)) \
	conv=sparse status=none
e2fsck -fy "$ROOT" >"$T/fsck.txt" 2>&1; rc=$?
e2fsck -fn "$ROOT" >>"$T/fsck.txt" 2>&1; rc2=$?
[ $rc -le 1 ] && [ $rc2 = 0 ]; ok $? "the grown root is clean (e2fsck -fy: exit $rc; e2fsck -fn: exit $rc2)"
dumpe2fs -h "$ROOT" >"$T/dump.txt" 2>/dev/null
is "$(($(val 'Block count') * $(val 'Block size')))" "$((${ROOT_SECTORS:-1} * 512))" \
	"the ext4 filesystem fills the grown partition"
done_testing
