#!/bin/bash
# make bench, part 4 (issue 13): a cold arm64 root filesystem build against a cold amd64 one of
# the same package list, side by side in one run, interleaved (amd64 then arm64 in each run),
# each with pmoves-image itself: `pmoves-image build` of a small profile with that list, into a
# throwaway rootfs cache (XDG_CACHE_HOME under the work directory; the real cache is not
# touched), then the same build again from that cache (warm). Prints the median whole-process
# wall and CPU times (/usr/bin/time; CPU is user+sys of the builder and everything it ran, less
# bent than wall time by other work on a shared machine) and rootfs stage times, the cold ratio
# arm64/amd64 against the goal (at most 4x, on wall time), and the warm ratio. Writes the
# figures to images/bench-arm64.json.
#
#   BENCH_RUNS=N   cold+warm runs of each architecture (default 1: a cold arm64 build takes
#                  minutes); medians when more
#
# The package list is the Raspberry Pi mesh node's without raspi-firmware (it exists for arm
# only): the architecture's own kernel, systemd-sysv, udev, kmod, openssh-server, batctl, iw,
# wpasupplicant, nftables, dnsmasq-base, ca-certificates, zstd (the initramfs's compressor, as
# on the node), systemd-boot (base-debian's boot loader, which the build needs), and the
# libraries pmoves-firstboot needs (the builder adds them); and an initramfs of listed drivers (rootfs.initramfs_modules): for arm64 the mesh
# node's, for amd64 the same drivers where a PC has them (no Pi SD, regulator or reset drivers;
# ahci for SATA instead). What makes the initramfs is most of the foreign build's time when it
# holds all the drivers (MODULES=most).
#
# The goal is reported, not asserted: the exit status is 0 unless something failed to run. Cold
# builds download their packages from the profile's mirror each time.
# The Makefile runs it with sh; it needs bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -eu

cd "$(dirname "$0")/.."
TOP=$PWD
RUNS=${BENCH_RUNS:-1}
BIN=$TOP/pmoves-image
JSON=$TOP/images/bench-arm64.json
TIME=/usr/bin/time
GOAL=4

die() { echo "bench-arm64: $*" >&2; exit 1; }

case $RUNS in '' | *[!0-9]*) die "BENCH_RUNS must be a positive number, not '$RUNS'" ;; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1, not '$RUNS'"
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, file owners)"
[ -x "$BIN" ] || die "no '$BIN' (run 'make' first)"
[ -x "$TIME" ] || die "no '$TIME' (install the Debian package 'time', or run 'make deps')"
command -v mmdebstrap >/dev/null || die "'mmdebstrap' is not installed (run 'make deps')"
[ "$(uname -m)" = x86_64 ] || die "compares arm64 under qemu-user with the native amd64: this machine is $(uname -m)"
grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
	die "qemu-aarch64 is not enabled in binfmt_misc (run 'make deps')"

mkdir -p "$TOP/images"
WORK=$(mktemp -d "$TOP/images/.bench-arm64.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy of the builder and of the pmoves-firstboot builds it puts into images, so that
# a rebuild in this tree during the runs does not change what is measured.
cp -L "$BIN" "$WORK/pmoves-image"
cp -R "$(dirname "$(readlink -f "$BIN")")/target" "$WORK/target"
BIN=$WORK/pmoves-image
COMMIT=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
[ -x "$WORK/target/aarch64/pmoves-firstboot" ] ||
	die "pmoves-firstboot for aarch64 is not built (make deps installs the cross compiler, then make)"

LIST='"systemd-sysv", "udev", "kmod", "openssh-server", "batctl", "iw", "wpasupplicant", "nftables",
      "dnsmasq-base", "ca-certificates", "zstd", "systemd-boot"'
# The initramfs drivers: profiles/pi-mesh-node.json's rootfs.initramfs_modules for arm64.
MODS_arm64='"ext4", "crc32c", "sdhci_iproc", "bcm2835", "fixed", "gpio_regulator", "reset_raspberrypi", "xhci_pci",
      "dwc2", "phy_generic", "usb_storage", "uas", "sd_mod", "nvme", "usbhid", "hid_generic",
      "virtio_blk", "virtio_mmio", "virtio_pci"'
MODS_amd64='"ext4", "crc32c", "xhci_pci", "usb_storage", "uas", "sd_mod", "nvme", "ahci", "usbhid", "hid_generic",
      "virtio_blk", "virtio_pci"'
for a in amd64:x86_64 arm64:aarch64; do
	mods=MODS_${a%%:*}
	cat >"$WORK/bench-${a%%:*}.json" <<JSON
{ "extends": "base-debian", "description": "make bench: the mesh node's packages for ${a%%:*}",
  "arch": "${a#*:}",
  "rootfs": { "packages": [ "linux-image-${a%%:*}", $LIST ], "initramfs_modules": [ ${!mods} ] } }
JSON
done

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Each line of the input with the seconds since the first one in front ("  12.34 line").
stamp() { perl -MTime::HiRes=time -ne 'BEGIN { $| = 1; $t0 = time } printf "%8.2f %s", time - $t0, $_'; }
# The rootfs stage's seconds from a build's stamped output ("S0 [1/N] rootfs: S s").
rootfs_s() { sed -n 's|^ *[0-9.]* \[[0-9]*/[0-9]*\] rootfs: \([0-9.]*\) s$|\1|p' "$1" | tail -n 1; }

# build ARCH RUN KIND: one timed build into the run's cache; appends "WALL CPU ROOTFS" to
# $WORK/ARCH.KIND and prints the wall time.
build() {
	local arch=$1 i=$2 kind=$3 out=$WORK/out-$1-$2-$3
	sync
	# -v: mmdebstrap's whole output, stamped as it comes (outside the timed process)
	XDG_CACHE_HOME=$WORK/cache-$arch-$i "$TIME" -o "$out.time" -f '%e %U %S' \
		"$BIN" build -v "$WORK/bench-$arch.json" -o "$out" 2>&1 | stamp >"$out.log"
	if [ "${PIPESTATUS[0]}" != 0 ]; then
		tail -n 30 "$out.log" >&2
		die "$kind $arch build, run $i, failed"
	fi
	if [ "$kind" = cold ] && grep -q 'rootfs: using the cached' "$out.log"; then
		die "the cold $arch build, run $i, found a cached rootfs"
	fi
	if [ "$kind" = warm ] && ! grep -q 'rootfs: using the cached' "$out.log"; then
		die "the warm $arch build, run $i, did not use the cached rootfs"
	fi
	local wall user sys
	read -r wall user sys < <(tail -n 1 "$out.time")
	echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') $(rootfs_s "$out.log")" \
		>>"$WORK/$arch.$kind"
	[ "$kind" = cold ] && cp "$out.log" "$WORK/build-$arch-$i.log"
	rm -rf "$out"
	echo "$wall"
}

echo "bench-arm64: $RUNS run(s) of cold + warm builds, amd64 then arm64 (a cold arm64 build takes minutes)"
for i in $(seq 1 "$RUNS"); do
	for arch in amd64 arm64; do
		c=$(build "$arch" "$i" cold)
		w=$(build "$arch" "$i" warm)
		rm -rf "$WORK/cache-$arch-$i"
		printf 'bench-arm64: run %d/%d %s: cold %s s, warm %s s\n' "$i" "$RUNS" "$arch" "$c" "$w"
	done
done

col() { cut -d' ' -f"$2" "$WORK/$1" | median; }
div() { awk -v a="$1" -v r="$2" 'BEGIN { printf "%.2f", (a > 0) ? r / a : 0 }'; }
a_cold=$(col amd64.cold 1) a_cold_c=$(col amd64.cold 2) a_cold_r=$(col amd64.cold 3) a_warm=$(col amd64.warm 1)
r_cold=$(col arm64.cold 1) r_cold_c=$(col arm64.cold 2) r_cold_r=$(col arm64.cold 3) r_warm=$(col arm64.warm 1)
ratio=$(div "$a_cold" "$r_cold")
ratio_c=$(div "$a_cold_c" "$r_cold_c")
ratio_r=$(div "$a_cold_r" "$r_cold_r")
wratio=$(div "$a_warm" "$r_warm")
goal=$(awk -v x="$ratio" -v g="$GOAL" 'BEGIN { print (x <= g) ? "PASS" : "FAIL" }')

# Where the last cold arm64 build spent its time: how often it made the initramfs and the
# certificate store (once each is the design), and its slowest steps: the lines of its output followed by the longest silences.
# That build's stamped output is kept as images/bench-arm64.log.
LOG=$TOP/images/bench-arm64.log
cp "$WORK/build-arm64-$RUNS.log" "$LOG"
gens=$(grep -c ' update-initramfs: Generating ' "$LOG" || true)
certs=$(grep -c ' Updating certificates in ' "$LOG" || true)
slow=$(awk 'NR > 1 { printf "%8.1f  %s\n", $1 - t, prev } { t = $1; prev = substr($0, 10) }' "$LOG" |
	sort -rn | head -n 8 | cut -c1-110)

echo
echo "pmoves-image bench-arm64: builder at $COMMIT, $RUNS run(s), medians"
printf '  %-38s %10s %10s %8s\n' "" amd64 arm64 ratio
printf '  %-38s %10s %10s %8s\n' "cold build, whole process (s)" "$a_cold" "$r_cold" "$ratio"
printf '  %-38s %10s %10s %8s\n' "  of which the rootfs stage (s)" "$a_cold_r" "$r_cold_r" "$ratio_r"
printf '  %-38s %10s %10s %8s\n' "cold build, CPU user+sys (s)" "$a_cold_c" "$r_cold_c" "$ratio_c"
printf '  %-38s %10s %10s %8s\n' "warm build, cached rootfs (s)" "$a_warm" "$r_warm" "$wratio"
printf '  %-38s %10s\n' "goal: cold arm64 <= ${GOAL}x amd64" "$goal"
printf '  %-38s %10s\n' "initramfs generations (arm64 build)" "$gens"
printf '  %-38s %10s\n' "/etc/ssl/certs updates (arm64 build)" "$certs"
echo "  slowest steps of the cold arm64 build (s until its next line of output; all in '${LOG#"$TOP"/}'):"
printf '%s\n' "$slow" | sed 's/^/  /'

{
	printf '{\n  "commit": "%s",\n  "runs": %d,\n' "$COMMIT" "$RUNS"
	for arch in amd64 arm64; do
		printf '  "%s": {\n    "cold_wall_s": [%s],\n    "cold_cpu_s": [%s],\n    "cold_rootfs_s": [%s],\n' "$arch" \
			"$(cut -d' ' -f1 "$WORK/$arch.cold" | paste -sd,)" "$(cut -d' ' -f2 "$WORK/$arch.cold" | paste -sd,)" \
			"$(cut -d' ' -f3 "$WORK/$arch.cold" | paste -sd,)"
		printf '    "warm_wall_s": [%s],\n    "median_cold_wall_s": %s,\n    "median_cold_cpu_s": %s,\n' \
			"$(cut -d' ' -f1 "$WORK/$arch.warm" | paste -sd,)" "$(col "$arch.cold" 1)" "$(col "$arch.cold" 2)"
		printf '    "median_cold_rootfs_s": %s,\n    "median_warm_wall_s": %s\n  },\n' \
			"$(col "$arch.cold" 3)" "$(col "$arch.warm" 1)"
	done
	printf '  "ratio_cold_arm64_over_amd64": %s,\n  "ratio_cold_cpu_arm64_over_amd64": %s,\n' "$ratio" "$ratio_c"
	printf '  "ratio_cold_rootfs_arm64_over_amd64": %s,\n' "$ratio_r"
	printf '  "ratio_warm_arm64_over_amd64": %s,\n  "goal_cold_at_most_%dx": %s\n}\n' "$wratio" "$GOAL" \
		"$([ "$goal" = PASS ] && echo true || echo false)"
} >"$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "  figures written to '${JSON#"$TOP"/}'"
echo
echo "bench-arm64: cold amd64 ${a_cold} s, cold arm64 ${r_cold} s (ratio ${ratio}, goal <= ${GOAL}x ${goal}; CPU ratio ${ratio_c}), warm amd64 ${a_warm} s, warm arm64 ${r_warm} s (ratio ${wratio})"
