#!/bin/bash
# make bench, part 2: pmoves-firstboot on real boots of base-debian in QEMU (TCG here).
# For each run, two boots of fresh copies of the same image, interleaved:
#   provisioned: with a device config (hostname, a user with a password hash and an SSH key,
#                SSH host keys, a sysctl, a file, growfs) -> time to multi-user, and the
#                provisioner's own and external-command time from its status.json;
#   plain:       the same image with /etc/pmoves/firstboot.disabled -> time to multi-user;
#   cloud-init:  for comparison, tools/bench/cloudinit-debian.json: base-debian with Debian's
#                cloud-init and a NoCloud seed doing the same work (tools/bench/), firstboot
#                disabled -> time to multi-user, time to cloud-init's "finished" line, and
#                cloud-init's own time (its four stages, from its status.json and the console).
#                BENCH_CLOUDINIT=0 leaves it out.
# Also the provisioner's own time natively, on the same config applied with --root to the
# image's root tree. Prints medians; the goals (own time < 100 ms, provisioning adds < 30% to
# boot) are reported, not asserted. Appends the figures to images/bench-firstboot.json.
set -eu
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
RUNS=${BENCH_RUNS:-3}
CLOUDINIT=${BENCH_CLOUDINIT:-1}
JSON=$TOP/images/bench-firstboot.json
mkdir -p "$TOP/images"
WORK=$(mktemp -d "$TOP/images/.bench-fb.XXXXXX")
WATCH_PID=
trap '[ -z "$WATCH_PID" ] || kill "$WATCH_PID" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
# On failure the work directory stays, for the logs the message points at.
die() { echo "bench-firstboot: $*" >&2; KEEP=1; exit 1; }
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

# The cloud-init variant. Its overlay is found by name under $PMOVES_DATADIR/overlays, so a data
# directory of its own holds the profiles (for "extends": "base-debian") and the overlay, with
# the NoCloud user-data made from tools/bench/cloudinit-user-data.in with this run's password
# hash and SSH key.
if [ "$CLOUDINIT" = 1 ]; then
	command -v python3 >/dev/null || die "the cloud-init variant needs python3 (BENCH_CLOUDINIT=0 leaves it out)"
	echo "bench-firstboot: building cloudinit-debian (tools/bench/cloudinit-debian.json; the first build runs mmdebstrap)"
	mkdir -p "$WORK/data/overlays"
	ln -s "$TOP/profiles" "$WORK/data/profiles"
	cp -R tools/bench/cloudinit-overlay "$WORK/data/overlays/bench-cloudinit"
	userdata=$(cat tools/bench/cloudinit-user-data.in)
	userdata=${userdata//@PASSWORD_HASH@/"$HASH"}
	userdata=${userdata//@SSH_KEY@/"$(cat "$WORK/key.pub")"}
	seed=$WORK/data/overlays/bench-cloudinit/var/lib/cloud/seed/nocloud
	(umask 077 && printf '%s\n' "$userdata" >"$seed/user-data")
	grep -q '@[A-Z_]*@' "$seed/user-data" && die "a marker is left in '$seed/user-data'"
	PMOVES_DATADIR=$WORK/data ./pmoves-image build tools/bench/cloudinit-debian.json -o "$WORK/ci-out" >"$WORK/ci-build.log" 2>&1 ||
		die "the cloud-init variant's build failed, see $WORK/ci-build.log"
	CI_IMG=$WORK/ci-out/cloudinit-debian/cloudinit-debian.img
	CI_START=$(sfdisk --json "$CI_IMG" | sed -n 's/.*"start": *\([0-9]*\).*/\1/p' | sed -n 2p)
	CI_SECTORS=$(sfdisk --json "$CI_IMG" | sed -n 's/.*"size": *\([0-9]*\).*/\1/p' | sed -n 2p)
fi

# A boot of a fresh copy, $WORK/NAME.img, made by prep_NAME. A boot that times out is tried
# once more on a new copy: under load, TCG guests here have been seen to stop making progress
# after the login prompt (no console output for minutes, multi-user never reached), in any
# variant. The hung console is kept as images/bench-firstboot-NAME-hung.log and the retry is
# counted in the JSON ("boot_retries"); anything else, or a second timeout, ends the bench.
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-400}
prep_prov() { cp --sparse=always "$IMG" "$WORK/prov.img"; }
prep_plain() {
	cp --sparse=always "$IMG" "$WORK/plain.img"
	debugfs -w -R "write /dev/null /etc/pmoves/firstboot.disabled" "$WORK/plain.img?offset=$ROOT_OFF" >/dev/null 2>&1
}
prep_cloudinit() { cp --sparse=always "$CI_IMG" "$WORK/cloudinit.img"; }
: >"$WORK/retries"
boot_failed() { # boot_failed NAME ATTEMPT: returns 0 when a retry is due
	if [ "$2" = 1 ] && grep -q 'timed out after' "$WORK/$1.err"; then
		cp "$WORK/$1.log" "$TOP/images/bench-firstboot-$1-hung.log"
		echo "bench-firstboot: boot '$1' timed out (last console line: $(tail -n 1 "$WORK/$1.log" | tr -d '\r' | cut -c1-80)), console kept as images/bench-firstboot-$1-hung.log; trying once more" >&2
		echo "$1" >>"$WORK/retries"
		return 0
	fi
	die "boot '$1' failed, see $WORK/$1.err and $WORK/$1.log"
}

# Wall seconds from starting QEMU to the first console line matching REGEX (whole process,
# firmware included); the console stays in $WORK/NAME.log.
boot() { # boot NAME REGEX
	local start now attempt
	for attempt in 1 2; do
		"prep_$1"
		start=$(date +%s.%N)
		if ./pmoves-image run "$WORK/$1.img" --persist --config "$WORK/device.json" --expect "$2" \
			--timeout "$BOOT_TIMEOUT" --log "$WORK/$1.log" >"$WORK/$1.match" 2>"$WORK/$1.err"; then
			now=$(date +%s.%N)
			awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }'
			return 0
		fi
		boot_failed "$1" "$attempt"
	done
}

# The cloud-init boot: QEMU runs until cloud-init's final line ("Cloud-init v. X finished at
# ... Up N seconds", after multi-user: cloud-final.service is ordered after it); the time to
# multi-user is taken meanwhile by watching the console log (0.1 s steps). Writes
# "MULTI_USER DONE", wall seconds from starting QEMU, to $WORK/NAME.times.
boot_ci() { # boot_ci NAME
	local start now pid rc attempt mu
	for attempt in 1 2; do
		"prep_$1"
		start=$(date +%s.%N)
		: >"$WORK/$1.log"
		./pmoves-image run "$WORK/$1.img" --persist --expect 'Cloud-init v\. .* finished at' \
			--timeout $((BOOT_TIMEOUT * 2)) --log "$WORK/$1.log" >"$WORK/$1.match" 2>"$WORK/$1.err" &
		pid=$!
		WATCH_PID=$pid
		mu=
		while kill -0 "$pid" 2>/dev/null; do
			if [ -z "$mu" ] && grep -aq 'Reached target.*Multi-User' "$WORK/$1.log"; then
				mu=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }')
			fi
			sleep 0.1
		done
		rc=0
		wait "$pid" || rc=$?
		WATCH_PID=
		now=$(date +%s.%N)
		if [ $rc -eq 0 ]; then
			[ -n "$mu" ] || die "boot '$1': cloud-init finished but no multi-user line, see $WORK/$1.log"
			echo "$mu $(awk -v a="$start" -v b="$now" 'BEGIN { printf "%.1f\n", b - a }')" >"$WORK/$1.times"
			return 0
		fi
		boot_failed "$1" "$attempt"
	done
}

# After a cloud-init boot: check on the disk that cloud-init did the work (else its time means
# nothing) and print its own time: the sum of its four stages, init-local, init and
# modules-config from /var/lib/cloud/data/status.json, modules-final from the console's
# "running 'modules:final' ... Up A" and "finished ... Up B" (QEMU stops at that line, before
# the final status.json reaches the disk); then its "Up B". Writes "OWN_S UP_S" to
# $WORK/NAME.own.
ci_check() { # ci_check IMG NAME
	local root=$WORK/ci-root.ext4 key
	dd if="$1" of="$root" bs=512 skip="$CI_START" count="$CI_SECTORS" conv=sparse status=none
	e2fsck -fy "$root" >/dev/null 2>&1 || true
	rd() { debugfs -R "cat $1" "$root" 2>/dev/null; }
	key=$(cat "$WORK/key.pub")
	[ "$(rd /etc/hostname)" = bench-1 ] || die "cloud-init did not set the hostname, see $WORK/$2.log"
	[ "$(rd /home/ops/.ssh/authorized_keys)" = "$key" ] || die "cloud-init did not install ops's SSH key, see $WORK/$2.log"
	rd /etc/shadow | grep -qF "ops:$HASH:" || die "cloud-init did not set ops's password hash, see $WORK/$2.log"
	rd /etc/group | grep -q '^sudo:.*ops' || die "cloud-init did not put ops in group sudo"
	[ -n "$(rd /etc/ssh/ssh_host_ed25519_key.pub)" ] && [ -n "$(rd /etc/ssh/ssh_host_ecdsa_key.pub)" ] ||
		die "cloud-init made no SSH host keys, see $WORK/$2.log"
	[ "$(rd /etc/pmoves/bench.txt)" = bench ] || die "cloud-init did not write /etc/pmoves/bench.txt"
	rd /var/lib/cloud/data/status.json >"$WORK/$2.status.json"
	sed 's/\x1b\[[0-9;]*m//g' "$WORK/$2.log" | tr -d '\r' >"$WORK/$2.txt"
	python3 - "$WORK/$2.status.json" "$WORK/$2.txt" >"$WORK/$2.own" <<'PY' || die "cloud-init reported a problem, see $WORK/$2.status.json and $WORK/$2.log"
import json, re, sys
v1 = json.load(open(sys.argv[1]))["v1"]
con = open(sys.argv[2], errors="replace").read()
errors = [e for st in ("init-local", "init", "modules-config", "modules-final") for e in v1[st]["errors"]]
if errors or "util.py[WARNING]" in con:
    sys.exit("cloud-init errors: %s" % (errors or "a WARNING on the console"))
final = re.search(r"running 'modules:final' at .*Up ([0-9.]+) seconds", con)
done = re.search(r"Cloud-init v\. \S+ finished at .*Up ([0-9.]+) seconds", con)
if not final or not done:
    sys.exit("no modules:final or finished line on the console")
own = sum(v1[st]["finished"] - v1[st]["start"] for st in ("init-local", "init", "modules-config"))
own += float(done.group(1)) - float(final.group(1))
print("%.1f %.1f" % (own, float(done.group(1))))
PY
}

: >"$WORK/prov_mu"; : >"$WORK/plain_mu"; : >"$WORK/own"; : >"$WORK/ext"
: >"$WORK/ci_mu"; : >"$WORK/ci_done"; : >"$WORK/ci_own"; : >"$WORK/ci_up"
for i in $(seq 1 "$RUNS"); do
	boot prov 'Reached target.*Multi-User' >>"$WORK/prov_mu"
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

	boot plain 'Reached target.*Multi-User' >>"$WORK/plain_mu"
	echo "bench-firstboot: run $i: provisioned multi-user $(tail -n 1 "$WORK/prov_mu") s (own $(tail -n 1 "$WORK/own") ms), plain multi-user $(tail -n 1 "$WORK/plain_mu") s"

	if [ "$CLOUDINIT" = 1 ]; then
		boot_ci cloudinit
		ci_check "$WORK/cloudinit.img" cloudinit
		read -r mu done_s <"$WORK/cloudinit.times"
		read -r ci_own ci_up <"$WORK/cloudinit.own"
		echo "$mu" >>"$WORK/ci_mu"; echo "$done_s" >>"$WORK/ci_done"
		echo "$ci_own" >>"$WORK/ci_own"; echo "$ci_up" >>"$WORK/ci_up"
		echo "bench-firstboot: run $i: cloud-init multi-user $mu s, finished $done_s s (its own time $ci_own s, Up $ci_up s)"
	fi
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
	# The provisioner makes its steps durable with syncfs: without this sync its first syncfs
	# would write back the ~700 MB just extracted here (0.5-1 s, depending on the kernel's
	# writeback), which is the bench's work, not the provisioner's (a booted machine's root is
	# clean).
	sync
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
if [ "$CLOUDINIT" = 1 ]; then
	cimu=$(median <"$WORK/ci_mu"); cidone=$(median <"$WORK/ci_done")
	ciown=$(median <"$WORK/ci_own"); ciup=$(median <"$WORK/ci_up")
	ciadded=$(awk -v p="$cidone" -v q="$plmu" 'BEGIN { printf "%.1f", (p - q) * 100 / q }')
	civer=$(sed -n 's/.*Cloud-init v\. \([0-9][^ ]*\) finished at.*/\1/p' "$WORK/cloudinit.txt" | head -n 1)
	printf '  %-52s %8s\n' "cloud-init $civer, same work: boot to multi-user (s)" "$cimu"
	printf '  %-52s %8s\n' "cloud-init: boot to its 'finished' line (s)" "$cidone"
	printf '  %-52s %7s%%\n' "added by cloud-init, to 'finished'" "$ciadded"
	printf '  %-52s %8s\n' "cloud-init's own time, its 4 stages (s)" "$ciown"
	printf '  %-52s %8s\n' "cloud-init's 'Up' (guest uptime) at 'finished' (s)" "$ciup"
fi
[ -s "$WORK/retries" ] && printf '  %-52s %8s\n' "boots tried again after a hang (see above)" "$(paste -sd, "$WORK/retries")"
printf '  %-52s %8s\n' "goal: own time < 100 ms (native)" "$own_goal"
printf '  %-52s %8s\n' "goal: provisioning adds < 30%" "$add_goal"
cat >"$JSON" <<EOF2
{ "runs": $RUNS, "native_own_ms": [$(paste -sd, "$WORK/native_own")], "own_ms": [$(paste -sd, "$WORK/own")], "external_ms": [$(paste -sd, "$WORK/ext")],
  "multi_user_provisioned_s": [$(paste -sd, "$WORK/prov_mu")],
  "multi_user_plain_s": [$(paste -sd, "$WORK/plain_mu")], "median_native_own_ms": $native, "median_guest_own_ms": $own,
  "median_added_pct": $added,
  "goal_own_under_100ms": "$own_goal", "goal_added_under_30pct": "$add_goal",
  "boot_retries": [$(sed 's/.*/"&"/' "$WORK/retries" | paste -sd,)],
  "cloudinit": $(if [ "$CLOUDINIT" = 1 ]; then
	printf '{ "multi_user_s": [%s], "finished_s": [%s], "own_s": [%s], "up_at_finished_s": [%s],\n' \
		"$(paste -sd, "$WORK/ci_mu")" "$(paste -sd, "$WORK/ci_done")" "$(paste -sd, "$WORK/ci_own")" "$(paste -sd, "$WORK/ci_up")"
	printf '    "version": "%s", "median_multi_user_s": %s, "median_finished_s": %s, "median_own_s": %s, "median_added_pct": %s }' \
		"$civer" "$cimu" "$cidone" "$ciown" "$ciadded"
else echo null; fi) }
EOF2
echo "bench-firstboot: own ${native} ms natively (${own_goal}; ${own} ms in the TCG guest), provisioning adds ${added}% to boot (${add_goal})"
[ "$CLOUDINIT" = 1 ] && echo "bench-firstboot: cloud-init $civer doing the same work: done ${cidone} s after start (${ciadded}% over the plain boot), its own time ${ciown} s"
exit 0
