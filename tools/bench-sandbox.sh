#!/bin/bash
# make bench, part 5: a sandbox's start, pmoves-sandbox with the QEMU backend (TCG here: KVM
# guests hang on this machine; BENCH_SANDBOX_ACCEL=kvm where it works). Per run, interleaved:
#   run:    `pmoves-sandbox run` of a task that prints the guest's uptime, whole process: wall
#           seconds and the largest resident set (the VMM's);
#   guest:  the guest's uptime when the command ran (kernel and pmoves-sandbox-init, to the
#           command), what the launcher and the VMM's start are not;
#   copy:   for comparison, a copy of the root image on the tmpfs, holes kept: what every
#           sandbox's start cost before the root was shared read only under an overlay.
# Firecracker's goal (about 150 ms to a running guest on real hardware) cannot be measured
# here: Firecracker cannot be installed and KVM guests hang. Prints medians; the figures go
# to images/bench-sandbox.json. BENCH_RUNS=N sets the number of runs (5).
set -eu
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
RUNS=${BENCH_RUNS:-5}
ACCEL=${BENCH_SANDBOX_ACCEL:-tcg}
JSON=$TOP/images/bench-sandbox.json
mkdir -p "$TOP/images"
WORK=$(mktemp -d "$TOP/images/.bench-sbx.XXXXXX")
trap 'mountpoint -q "$WORK/state" && umount "$WORK/state"; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
die() { echo "bench-sandbox: $*" >&2; KEEP=1; exit 1; }
med() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
[ "$(id -u)" = 0 ] || die "needs root: the launcher runs the VMM as the sandbox user and writes the audit log"
command -v /usr/bin/time >/dev/null 2>&1 || die "needs GNU time (/usr/bin/time, package time)"

echo "bench-sandbox: building sandbox-guest (cached rootfs)"
./pmoves-image build sandbox-guest -o "$WORK/out" >"$WORK/build.log" 2>&1 || die "build failed, see $WORK/build.log"
G=$WORK/out/sandbox-guest/sandbox-guest.microvm
id pmoves-sandbox >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pmoves-sandbox
# The VMM, as an unprivileged id, reads the guest (an output directory is 0700) and reaches
# its files in the state directory.
chmod 0711 "$WORK" "$WORK/out" "$WORK/out/sandbox-guest" && chmod 0755 "$G"
mkdir -p "$WORK/state" && mount -t tmpfs -o mode=0711 tmpfs "$WORK/state"
cat >"$WORK/cfg.json" <<EOF
{"backend": "qemu", "accel": "$ACCEL", "kernel": "$G/vmlinuz", "initrd": "$G/initrd.img",
 "rootfs": "$G/rootfs.ext4", "state_dir": "$WORK/state", "audit_log": "$WORK/audit.log", "bridge": ""}
EOF
echo '{"vcpus": 1, "memory_mib": 256, "ttl_s": 120, "network": false, "command": ["cat", "/proc/uptime"]}' >"$WORK/task.json"

for i in $(seq "$RUNS"); do
	/usr/bin/time -f "%e %M" -o "$WORK/time" ./build/pmoves-sandbox -c "$WORK/cfg.json" run "$WORK/task.json" \
		>"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt" >&2; die "run $i failed"; }
	read -r wall rss <"$WORK/time"
	read -r up _ <"$WORK/out.txt"
	echo "$wall" >>"$WORK/wall"
	echo "$rss" >>"$WORK/rss"
	echo "$up" >>"$WORK/guest"
	s=$(date +%s.%N)
	cp --sparse=always "$G/rootfs.ext4" "$WORK/state/copy.ext4"
	e=$(date +%s.%N)
	rm -f "$WORK/state/copy.ext4"
	awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }' >>"$WORK/copy"
	echo "  run $i: run $wall s (guest up $up s), $((rss / 1024)) MiB resident; a root copy $(tail -n1 "$WORK/copy") s"
done
[ -z "$(find "$WORK/state" -mindepth 1 -maxdepth 1 -name 'sbx-*')" ] || die "the runs left a sandbox in the state directory"

W=$(med <"$WORK/wall") R=$(med <"$WORK/rss") U=$(med <"$WORK/guest") C=$(med <"$WORK/copy")
ROOT=$(stat -c %s "$G/rootfs.ext4") USED=$(du -B1 "$G/rootfs.ext4" | cut -f1)
python3 - "$W" "$R" "$U" "$C" "$ROOT" "$USED" "$ACCEL" "$RUNS" "$JSON" <<'EOF'
import json, sys
wall, rss, up, copy = (float(x) for x in sys.argv[1:5])
size, used = int(sys.argv[5]), int(sys.argv[6])
accel, runs = sys.argv[7], int(sys.argv[8])
print(f"sandbox (QEMU, {accel}; medians of {runs} runs):")
print(f"  {'run, whole (start to destroyed)':44} {wall:.2f} s")
print(f"  {'  the guest up when the command ran':44} {up:.2f} s")
print(f"  {'  outside the guest (QEMU, the kernel unpacking, the launcher)':44} {wall - up:.2f} s")
print(f"  {'largest resident set (the VMM)':44} {rss / 1024:.0f} MiB")
print(f"  {'a copy of the root per sandbox (no more)':44} {copy:.3f} s ({used >> 20} MiB of {size >> 20} MiB)")
print("  Firecracker's start (goal about 150 ms on real hardware): not measurable here")
json.dump({"accel": accel, "runs": runs, "run_seconds": wall, "guest_uptime_seconds": up,
           "max_rss_kib": int(rss), "root_copy_seconds": copy, "root_size": size, "root_allocated": used},
          open(sys.argv[9], "w"), indent=1)
EOF
echo "bench-sandbox: figures in '$JSON'"
