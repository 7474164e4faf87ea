#!/bin/bash
# A rootfs tarball with FIFOs where the builder reads files (dpkg's status, the kernel): the
# build fails at once, naming the file, and never waits on the FIFO. Uses a small local
# tarball, so no mmdebstrap and no QEMU. A hang is cut short by timeout (exit 124): a failure.
. "$(dirname "$0")/lib.sh"
need tar mke2fs mkfs.vfat mcopy timeout
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-fifo.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 5
export PMOVES_DATADIR=$T/data
mkdir -p "$T/data/profiles"
cp "$TOP/profiles/base-debian.json" "$T/data/profiles/"
cp -R "$TOP/overlays" "$T/data/"

try() { # try NAME: build the tarball $T/NAME.tar, exit status and log
	cat >"$T/data/profiles/$1.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/$1.tar" } }
JSON
	timeout 120 "$PMOVES_IMAGE" build "$1" -o "$T/out" >"$T/$1.log" 2>&1
}

tiny_root "$T/status"
mkdir -p "$T/status/var/lib/dpkg"
mkfifo "$T/status/var/lib/dpkg/status"
tar -C "$T/status" -cf "$T/status.tar" .
try status; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ]; ok $? "a FIFO as /var/lib/dpkg/status: the build fails, without waiting (exit $rc)"
grep -q "'/var/lib/dpkg/status' in the tree is not a regular file" "$T/status.log"; ok $? "... and says so"
[ $rc -eq 0 ] || [ $rc -eq 124 ] && tail -n 5 "$T/status.log" | sed 's/^/# /'

tiny_root "$T/kernel"
rm "$T/kernel/boot/vmlinuz-9.9.9-test"
mkfifo "$T/kernel/boot/vmlinuz-9.9.9-test"
tar -C "$T/kernel" -cf "$T/kernel.tar" .
try kernel; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ]; ok $? "a FIFO as the kernel: the build fails, without waiting (exit $rc)"
grep -q "'/boot/vmlinuz-9.9.9-test' in the tree is not a regular file" "$T/kernel.log"; ok $? "... and says so"
[ $rc -eq 0 ] || [ $rc -eq 124 ] && tail -n 5 "$T/kernel.log" | sed 's/^/# /'
ls -A "$T/out" 2>/dev/null | grep -q .; ok $((!$?)) "nothing left in the output directory"
done_testing
