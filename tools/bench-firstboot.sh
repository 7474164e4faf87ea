#!/bin/bash
# make bench, part 2: pmoves-firstboot on real boots of base-debian in QEMU (TCG here).
# For each run, two boots of fresh copies of the same image, interleaved:
#   provisioned: with a device config (hostname, a user with a password hash and an SSH key,
#                SSH host keys, a sysctl, a file, growfs) -> time to multi-user, and the
#                provisioner's own and external-command time from its status.json;
#   plain:       the same image with /etc/pmoves/firstboot.disabled -> time to multi-user.
# Also the provisioner's own time natively, on the same config applied with --root to the
# image's root tree. Prints medians; the goals (own time < 100 ms, provisioning adds < 30% to
# boot) are reported, not asserted. Appends the figures to images/bench-firstboot.json.
set -eu
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
RUNS=${BENCH_RUNS:-3}
JSON=$TOP/images/bench-firstboot.json
WORK=$(mktemp -d "$TOP/images/.bench-fb.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT INT TERM
die() { echo "bench-firstboot: $*" >&2; exit 1; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "bench-firstboot: building base-debian (cached rootfs)"
./pmoves-image build base-debian -o "$WORK/out" >"$WORK/build.log" 2>&1 || die "build failed, see $WORK/build.log"
IMG=$WORK/out/base-debian/base-debian.img
ROOT_START=$(sfdisk --json "$IMG" | sed -n 's/.*"start": *\([0-9]*\).*/\1/p' | sed -n 2p)
ROOT_SECTORS=$(sfdisk --json "$IMG" | sed -n 's/.*"size": *\([0-9]*\).*/\1/p' | sed -n 2p)
ROOT_OFF=$((ROOT_START * 512))

ssh-keygen -q -t ed25519 -N "" -C ops@bench -f "$WORK/key"
HASH=$(openssl passwd -6 -salt benchsalt bench)
cat >"$WORK/device.json" <<JSON
{ "hostname": "bench-1",
  "users": [{ "name": "ops", "sudo": true, "password_hash": "$HASH",
              "ssh_authorized_keys": ["$(cat "$WORK/key.pub")"] }],
  "sysctl": { "vm.swappiness": "10" },
  "files": [{ "path": "/etc/pmoves/bench.txt", "content": "bench\n" }] }
JSON
./build/pmoves-firstboot validate "$WORK/device.json" >/dev/null || die "the bench's device.json is invalid"

# Wall seconds from starting QEMU to the first console line matching REGEX (whole process,
# firmware included); the console stays in $WORK/NAME.log.
boot() { # boot IMG NAME REGEX
	local start now
	start=$(date +%s.%N)
	./pmoves-image run "$1" --persist --config "$WORK/device.json" --expect "$3" --timeout 600 \
		--log "$WORK/$2.log" >"$WORK/$2.match" 2>"$WORK/$2.err" || die "boot '$2' failed, see $WORK/$2.err"
	now=$(date +%s.%N)
	awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
}

: >"$WORK/prov_mu"; : >"$WORK/plain_mu"; : >"$WORK/own"; : >"$WORK/ext"
for i in $(seq 1 "$RUNS"); do
	cp --sparse=always "$IMG" "$WORK/prov.img"
	boot "$WORK/prov.img" prov 'Reached target.*Multi-User' >>"$WORK/prov_mu"
	# The provisioner's own time, from status.json on the disk: the root partition copied out
	# and its journal replayed (QEMU was stopped, not shut down).
	dd if="$WORK/prov.img" of="$WORK/root.ext4" bs=512 skip="$ROOT_START" count="$ROOT_SECTORS" conv=sparse status=none
	e2fsck -fy "$WORK/root.ext4" >/dev/null 2>&1 || true
	status=$(debugfs -R 'cat /var/lib/pmoves/firstboot/status.json' "$WORK/root.ext4" 2>/dev/null)
	own=$(echo "$status" | sed -n 's/.*"own_ms": *\([0-9]*\).*/\1/p' | head -n 1)
	ext=$(echo "$status" | sed -n 's/.*"external_ms": *\([0-9]*\).*/\1/p' | head -n 1)
	[ -n "$own" ] && [ -n "$ext" ] || die "no own_ms/external_ms in the guest's status.json after run $i"
	echo "$own" >>"$WORK/own"
	echo "$ext" >>"$WORK/ext"

	cp --sparse=always "$IMG" "$WORK/plain.img"
	debugfs -w -R "write /dev/null /etc/pmoves/firstboot.disabled" "$WORK/plain.img?offset=$ROOT_OFF" >/dev/null 2>&1
	boot "$WORK/plain.img" plain 'Reached target.*Multi-User' >>"$WORK/plain_mu"
	echo "bench-firstboot: run $i: provisioned multi-user $(tail -n 1 "$WORK/prov_mu") s (own $(tail -n 1 "$WORK/own") ms), plain multi-user $(tail -n 1 "$WORK/plain_mu") s"
done

# The provisioner's own time natively (not under emulation): the same config applied with
# --root to the image's root filesystem extracted from the cached rootfs tarball, external
# commands going to a stand-in that only exits 0 (ssh-keygen runs for real: the ssh step checks
# its keys).
TARBALL=$(sed -n "s/^rootfs: using the cached '\(.*\)'$/\1/p" "$WORK/build.log" | head -n 1)
[ -n "$TARBALL" ] || die "cannot tell which rootfs tarball the build used"
printf '#!/bin/sh\ncase "$1" in ssh-keygen) exec "$@";; esac\nexit 0\n' >"$WORK/stand-in"
chmod +x "$WORK/stand-in"
: >"$WORK/native_own"
for i in $(seq 1 "$RUNS"); do
	rm -rf "$WORK/tree" && mkdir "$WORK/tree"
	tar -xf "$TARBALL" -C "$WORK/tree"
	mkdir -p "$WORK/tree/etc/pmoves" && cp "$WORK/device.json" "$WORK/tree/etc/pmoves/firstboot.json"
	PMOVES_FIRSTBOOT_RUNNER=$WORK/stand-in ./build/pmoves-firstboot run --root "$WORK/tree" >"$WORK/native.out" 2>&1 ||
		die "native run failed: $(tail -n 3 "$WORK/native.out")"
	sed -n 's/.*"own_ms": *\([0-9]*\).*/\1/p' "$WORK/tree/var/lib/pmoves/firstboot/status.json" | head -n 1 >>"$WORK/native_own"
done
rm -rf "$WORK/tree"
native=$(median <"$WORK/native_own")

own=$(median <"$WORK/own"); ext=$(median <"$WORK/ext")
pmu=$(median <"$WORK/prov_mu"); plmu=$(median <"$WORK/plain_mu")
added=$(awk -v p="$pmu" -v q="$plmu" 'BEGIN { printf "%.1f", (p - q) * 100 / q }')
own_goal=$(awk -v o="$native" 'BEGIN { print (o < 100) ? "PASS" : "FAIL" }')
add_goal=$(awk -v p="$pmu" -v q="$plmu" 'BEGIN { print ((p - q) * 100 / q < 30) ? "PASS" : "FAIL" }')
echo
echo "pmoves-firstboot bench: base-debian in QEMU (TCG), $RUNS run(s), medians"
printf '  %-52s %8s\n' "provisioner's own time, native --root run (ms)" "$native"
printf '  %-52s %8s\n' "provisioner's own time in the TCG guest (ms)" "$own"
printf '  %-52s %8s\n' "time in external commands (ms)" "$ext"
printf '  %-52s %8s\n' "boot to multi-user, provisioning (s)" "$pmu"
printf '  %-52s %8s\n' "boot to multi-user, firstboot disabled (s)" "$plmu"
printf '  %-52s %7s%%\n' "added by provisioning" "$added"
printf '  %-52s %8s\n' "goal: own time < 100 ms (native)" "$own_goal"
printf '  %-52s %8s\n' "goal: provisioning adds < 30%" "$add_goal"
cat >"$JSON" <<EOF2
{ "runs": $RUNS, "native_own_ms": [$(paste -sd, "$WORK/native_own")], "own_ms": [$(paste -sd, "$WORK/own")], "external_ms": [$(paste -sd, "$WORK/ext")],
  "multi_user_provisioned_s": [$(paste -sd, "$WORK/prov_mu")],
  "multi_user_plain_s": [$(paste -sd, "$WORK/plain_mu")], "median_native_own_ms": $native, "median_guest_own_ms": $own,
  "median_added_pct": $added,
  "goal_own_under_100ms": "$own_goal", "goal_added_under_30pct": "$add_goal" }
EOF2
echo "bench-firstboot: own ${native} ms natively (${own_goal}; ${own} ms in the TCG guest), provisioning adds ${added}% to boot (${add_goal})"
