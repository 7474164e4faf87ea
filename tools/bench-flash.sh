#!/bin/bash
# make bench, part 3 of issue 12: pmoves-image flash against `dd bs=4M conv=fsync` of the raw
# image and `bmaptool copy` with the same bmap, side by side in one run, interleaved, on loop
# devices backed by files on a tmpfs this script mounts (so the figures are the tools', not a
# shared disk's). Prints medians: bytes written (must equal the bmap's mapped bytes), the
# speed-up over dd and its ratio to the ideal (image size / mapped bytes, goal >= 0.9), flash's
# time over bmaptool's (goal <= 1.1), verify time over write time (goal <= 1), and two targets
# at once over one (goal < 1.5, the image read once). Writes images/bench-flash.json.
#
#   BENCH_RUNS=N        timed runs of each (default 3)
#   BENCH_FLASH_IMAGE   a raw image to write (default: base-debian, built here from the cache)
#
# The goals are reported, not asserted: the exit status is 0 unless something failed to run.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -eu

cd "$(dirname "$0")/.."
TOP=$PWD
RUNS=${BENCH_RUNS:-3}
BIN=$TOP/pmoves-image
JSON=$TOP/images/bench-flash.json

die() { echo "bench-flash: $*" >&2; exit 1; }
case $RUNS in '' | *[!0-9]*) die "BENCH_RUNS must be a positive number, not '$RUNS'" ;; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"
[ "$(id -u)" = 0 ] || die "must run as root (loop devices, a tmpfs)"
[ -x "$BIN" ] || die "no '$BIN' (run 'make' first)"
for t in bmaptool losetup dd python3 fallocate; do
	command -v "$t" >/dev/null || die "'$t' is not installed (run 'make deps')"
done

mkdir -p "$TOP/images"
WORK=$(mktemp -d "$TOP/images/.bench-flash.XXXXXX")
MNT=$WORK/tmpfs
LOOPS=
cleanup() {
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null || true; done
	mountpoint -q "$MNT" && umount "$MNT"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp -L "$BIN" "$WORK/pmoves-image"
cp -R "$(dirname "$(readlink -f "$BIN")")/target" "$WORK/target"
BIN=$WORK/pmoves-image

IMG=${BENCH_FLASH_IMAGE:-}
if [ -z "$IMG" ]; then
	echo "bench-flash: building base-debian (rootfs from the cache)"
	"$BIN" build base-debian -o "$WORK" >"$WORK/build.log" 2>&1 || die "building base-debian failed: '$WORK/build.log'"
	IMG=$WORK/base-debian/base-debian.img
fi
[ -f "$IMG" ] || die "no image '$IMG'"
BMAP=$WORK/image.bmap
bmaptool create -o "$BMAP" "$IMG" 2>/dev/null || die "bmaptool create failed"
SIZE=$(stat -c %s "$IMG")
MAPPED=$(($(sed -n 's/.*<MappedBlocksCount> *\([0-9]*\).*/\1/p' "$BMAP") * $(sed -n 's/.*<BlockSize> *\([0-9]*\).*/\1/p' "$BMAP")))

# Two targets on a tmpfs: room for both images' bytes, and memory to back them.
NEED=$((2 * SIZE + (64 << 20)))
AVAIL=$(($(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo) * 1024))
[ "$AVAIL" -gt $((NEED + (2 << 30))) ] || die "not enough memory for two $SIZE-byte targets on a tmpfs"
mkdir -p "$MNT"
mount -t tmpfs -o size=$NEED,mode=0700 pmoves-bench "$MNT"
truncate -s "$SIZE" "$MNT/a" "$MNT/b"
A=$(losetup -f --show "$MNT/a") && LOOPS="$LOOPS $A"
B=$(losetup -f --show "$MNT/b") && LOOPS="$LOOPS $B"
# an emptied target before every run: its pages given back, as a fresh card
fresh() { for f in "$@"; do fallocate -p -o 0 -l "$SIZE" "$MNT/$f"; done; }
secs() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
med() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(x.get(sys.argv[2],0) for x in d["devices"]))' "$1" "$2"; }
all_ok() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if all(x["result"]=="ok" for x in d["devices"]) else 1)' "$1"; }

# Every tool reads the image from the page cache, the first one too.
cat "$IMG" >/dev/null
echo "bench-flash: $IMG: $SIZE bytes, $MAPPED mapped; $RUNS runs each, interleaved, on tmpfs-backed loop devices"
: >"$WORK/dd" >"$WORK/bmaptool" >"$WORK/flash" >"$WORK/flash2" >"$WORK/write" >"$WORK/verify" >"$WORK/bytes"
for i in $(seq 1 "$RUNS"); do
	fresh a
	t0=$(secs); dd if="$IMG" of="$A" bs=4M conv=fsync status=none || die "dd failed"; t1=$(secs)
	sub "$t1" "$t0" >>"$WORK/dd"

	fresh a
	t0=$(secs); bmaptool -q copy --bmap "$BMAP" "$IMG" "$A" 2>"$WORK/bmaptool.err" || die "bmaptool copy failed: $(tail -n 3 "$WORK/bmaptool.err")"; t1=$(secs)
	sub "$t1" "$t0" >>"$WORK/bmaptool"

	fresh a
	t0=$(secs); "$BIN" flash "$IMG" "$A" --bmap "$BMAP" --force --yes --no-verify --json >"$WORK/f1.json" 2>"$WORK/f1.err" || die "flash failed: $(tail -n 3 "$WORK/f1.err")"; t1=$(secs)
	sub "$t1" "$t0" >>"$WORK/flash"
	json_field "$WORK/f1.json" bytes_written >>"$WORK/bytes"

	fresh a b
	t0=$(secs); "$BIN" flash "$IMG" "$A" "$B" --bmap "$BMAP" --force --yes --no-verify --json >"$WORK/f2.json" 2>"$WORK/f2.err" || die "flash of two failed: $(tail -n 3 "$WORK/f2.err")"; t1=$(secs)
	sub "$t1" "$t0" >>"$WORK/flash2"

	fresh a
	"$BIN" flash "$IMG" "$A" --bmap "$BMAP" --force --yes --json >"$WORK/fv.json" 2>"$WORK/fv.err" || die "flash with verify failed: $(tail -n 3 "$WORK/fv.err")"
	all_ok "$WORK/fv.json" || die "flash with verify: a device failed"
	json_field "$WORK/fv.json" write_seconds >>"$WORK/write"
	json_field "$WORK/fv.json" verify_seconds >>"$WORK/verify"
	echo "  run $i: dd $(tail -n1 "$WORK/dd") s, bmaptool $(tail -n1 "$WORK/bmaptool") s, flash $(tail -n1 "$WORK/flash") s, two $(tail -n1 "$WORK/flash2") s"
done
# the last flash (with verify) left the image on A: check it
cmp -s -n "$SIZE" "$IMG" "$A" || die "the flashed device differs from the image"

DD=$(med <"$WORK/dd") BM=$(med <"$WORK/bmaptool") FL=$(med <"$WORK/flash") F2=$(med <"$WORK/flash2")
WR=$(med <"$WORK/write") VE=$(med <"$WORK/verify") BY=$(med <"$WORK/bytes")
python3 - "$SIZE" "$MAPPED" "$BY" "$DD" "$BM" "$FL" "$F2" "$WR" "$VE" "$JSON" "$RUNS" <<'EOF'
import json, sys
size, mapped, written = (int(float(x)) for x in sys.argv[1:4])
dd, bm, fl, f2, wr, ve = (float(x) for x in sys.argv[4:10])
ideal = size / mapped
speedup = dd / fl
rows = [
    ("bytes written = mapped bytes", f"{written} = {mapped}", written == mapped),
    ("speed-up over dd bs=4M conv=fsync", f"{speedup:.2f}x (dd {dd:.2f} s, flash {fl:.2f} s; ideal {ideal:.2f}x)", None),
    ("  its ratio to the ideal (goal >= 0.9)", f"{speedup / ideal:.2f}", speedup / ideal >= 0.9),
    ("flash / bmaptool copy (goal <= 1.1)", f"{fl / bm:.2f} (bmaptool {bm:.2f} s)", fl / bm <= 1.1),
    ("verify / write (goal <= 1)", f"{ve / wr:.2f} (verify {ve:.2f} s, write {wr:.2f} s)", ve <= wr),
    ("two targets / one (goal < 1.5)", f"{f2 / fl:.2f} (two {f2:.2f} s)", f2 / fl < 1.5),
]
print("flash (medians of %s runs):" % sys.argv[11])
for name, val, good in rows:
    print(f"  {name:40} {val}{'' if good is None else ('  ok' if good else '  MISSED')}")
json.dump({"image_size": size, "mapped_bytes": mapped, "bytes_written": written, "dd_seconds": dd,
           "bmaptool_seconds": bm, "flash_seconds": fl, "flash_two_seconds": f2, "write_seconds": wr,
           "verify_seconds": ve, "speedup_over_dd": speedup, "ideal_speedup": ideal, "runs": int(sys.argv[11])},
          open(sys.argv[10], "w"), indent=1)
EOF
echo "bench-flash: figures in '$JSON'"
