#!/bin/bash
# A build that fails or is interrupted leaves the previous output untouched and no temp files;
# an invalid profile writes nothing at all.
. "$(dirname "$0")/lib.sh"
need mmdebstrap mke2fs mkfs.vfat mcopy
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-atomic.XXXXXX)
trap 'rm -rf "$T"' EXIT
plan 23

# An invalid profile: exit 2, one message naming the file and path, nothing written.
mkdir -p "$T/profiles"
cat >"$T/profiles/bad.json" <<'JSON'
{ "extends": "base-debian", "disk": { "size": "12Q" } }
JSON
cp profiles/base-debian.json "$T/profiles/" 2>/dev/null || cp "$TOP/profiles/base-debian.json" "$T/profiles/"
"$PMOVES_IMAGE" build "$T/profiles/bad.json" -o "$T/out-bad" >"$T/bad.log" 2>&1
is $? 2 "invalid profile: exit status 2"
grep -q "bad.json: .disk.size: " "$T/bad.log"; ok $? "the message names the file and the JSON path"
test ! -e "$T/out-bad"; ok $? "nothing written for an invalid profile"

# A good build to protect.
"$PMOVES_IMAGE" build base-debian -o "$T/out" >"$T/good.log" 2>&1
ok $? "first build"
sum=$(cat "$T/out/base-debian/SHA256SUMS" 2>/dev/null)

# A failing stage: a rootfs tarball that is not a tarball, under the same name.
printf 'not a tarball\n' >"$T/broken.tar"
cat >"$T/profiles/broken.json" <<JSON
{ "extends": "base-debian", "name": "base-debian",
  "rootfs": { "source": "tarball", "path": "$T/broken.tar" } }
JSON
"$PMOVES_IMAGE" build "$T/profiles/broken.json" -o "$T/out" >"$T/fail.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 2 ]; ok $? "a failing stage fails the build (exit $rc)"
grep -q "stage 'tree' failed" "$T/fail.log"; ok $? "the failing stage is named"
is "$(cat "$T/out/base-debian/SHA256SUMS")" "$sum" "the previous output is untouched"
ls -A "$T/out" | grep -q '^\.tmp-'; ok $((!$?)) "no temp directory left after a failure"

# Interrupted: SIGINT in the filesystems stage, SIGTERM in the tree stage, SIGINT while the
# outputs stage waits for the image's checksum. The staging tree may be on a tmpfs
# (/dev/shm/pmoves-image-NAME-PID-XXXXXX): nothing of it may stay either.
for case in INT:filesystems TERM:tree INT:outputs; do
	sig=${case%%:*} stage=${case#*:}
	"$PMOVES_IMAGE" build base-debian -o "$T/out" >"$T/int.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do
		grep -q "\] $stage\$" "$T/int.log" && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	[ $stage = outputs ] && sleep 0.2 # inside the wait for the checksum, before it ends (a small image hashes in a second)
	kill -$sig $pid
	started=$(date +%s)
	wait $pid
	rc=$?
	is $rc 130 "SIG$sig during '$stage': exit status 130 ($(($(date +%s) - started)) s after the signal)"
	grep -q "interrupted during stage '$stage'" "$T/int.log"; ok $? "SIG$sig: says which stage was interrupted"
	is "$(cat "$T/out/base-debian/SHA256SUMS")" "$sum" "SIG$sig: the previous output is untouched"
	ls -A "$T/out" | grep -q '^\.tmp-'; ok $((!$?)) "SIG$sig: no temp directory left"
	! ls -d /dev/shm/pmoves-image-base-debian-$pid-* >/dev/null 2>&1; ok $? "SIG$sig: no staging directory left on tmpfs"
done
done_testing
