#!/bin/bash
# The acceptance test of the builder: base-debian boots in QEMU (UEFI, systemd-boot) to
# multi-user, under TCG unless the KVM probe shows KVM works.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-boot.XXXXXX)
trap 'rm -rf "$T"' EXIT
plan 5

"$PMOVES_IMAGE" build base-debian -o "$T" >"$T/build.log" 2>&1
ok $? "build base-debian"
IMG=$T/base-debian/base-debian.img
before=$(sha256sum "$IMG" | cut -d' ' -f1)
"$PMOVES_IMAGE" run "$IMG" --expect 'Reached target.*Multi-User' --timeout 400 --log "$T/console.log" >"$T/run.out" 2>"$T/run.err"
rc=$?
ok $rc "boots to multi-user ($(grep -o 'after [0-9.]* s' "$T/run.err"))"
[ $rc -eq 0 ] || tail -n 20 "$T/run.err" | sed 's/^/# /'
grep -aq 'Started.*ssh.service' "$T/console.log"; ok $? "sshd started with host keys made on this first boot"
grep -aqE 'FAILED|emergency mode' "$T/console.log"; ok $((!$?)) "no unit failed on the way"
after=$(sha256sum "$IMG" | cut -d' ' -f1)
is "$after" "$before" "the image is unchanged after a snapshot boot"
done_testing
