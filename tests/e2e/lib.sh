# TAP helpers for the shell end-to-end tests. Source it; set PLAN first or call plan N.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${PMOVES_BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
PMOVES_IMAGE=$BUILD/pmoves-image
export PMOVES_DATADIR=${PMOVES_DATADIR:-$TOP}
export MTOOLS_SKIP_CHECK=1
_n=0
_failed=0

plan() { echo "1..$1"; }
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
ok() { # ok COND-EXIT-STATUS DESCRIPTION; returns 0 for ok, 1 for not ok, so that
	# "ok $? ...; [ $? = 0 ] || diag ..." shows what failed
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_n - $2"; return 0; fi
	echo "not ok $_n - $2"
	_failed=$((_failed + 1))
	return 1
}
check() { # check DESCRIPTION CMD...: runs CMD, ok when it exits 0; shows its output when not
	_d=$1; shift
	_out=$("$@" 2>&1); _rc=$?
	ok $_rc "$_d"
	[ $_rc -eq 0 ] || printf '%s\n' "$_out" | tail -n 15 | sed 's/^/# /'
	return 0
}
is() { # is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; echo "# expected '$2', got '$1'"; fi
}
diag() { echo "# $*"; }
skip() { # skip N REASON: the next N tests are skipped
	for _i in $(seq "$1"); do _n=$((_n + 1)); echo "ok $_n # SKIP $2"; done
}
# Slower variants of what a test boots run in `make check-all` (PMOVES_E2E_SLOW=1), not in
# `make check`, to keep a cold make check within its hour: `if slow; then ...; else skip N
# "$SLOW"; fi`.
slow() { [ "${PMOVES_E2E_SLOW:-}" = 1 ]; }
SLOW="a slower variant: make check-all runs it"
done_testing() { [ $_failed -eq 0 ]; exit $?; }

# The first-boot service runs before the network; its timer retries 2 min after boot, then every
# 5 min. This test-only timer and service (no default dependencies, like pmoves-firstboot.timer:
# they would make an ordering cycle with the service, which runs before sysinit.target) start it
# every 20 s while it is enabled, so a test does not wait for the real timer. Unit texts with
# \n escapes, for a device config's "files" (enable and start pmoves-e2e-kick.timer).
KICK_TIMER='[Unit]\nDescription=pmoves e2e test: run pmoves-firstboot again soon\nDefaultDependencies=no\nConflicts=shutdown.target\nBefore=timers.target shutdown.target\n[Timer]\nOnActiveSec=20s\nOnUnitInactiveSec=20s\n[Install]\nWantedBy=timers.target\n'
KICK_SERVICE='[Unit]\nDescription=pmoves e2e test: run pmoves-firstboot again while it is enabled\n[Service]\nType=oneshot\nExecCondition=/usr/bin/systemctl -q is-enabled pmoves-firstboot.service\nExecStart=-/usr/bin/systemctl start pmoves-firstboot.service\n'

need() { # need PROG...: skip the whole test when a tool is missing
	for p in "$@"; do command -v "$p" >/dev/null 2>&1 || skip_all "'$p' is not installed (make deps)"; done
}

# Byte offset and size of partition N of IMG, from sfdisk's JSON (shell arithmetic: 64 bits).
part_offset() { echo $(($(sfdisk --json "$1" | sed -n 's/.*"start": *\([0-9]*\).*/\1/p' | sed -n "${2}p") * 512)); }
part_size() { echo $(($(sfdisk --json "$1" | sed -n 's/.*"size": *\([0-9]*\).*/\1/p' | sed -n "${2}p") * 512)); }
# Partition N of IMG copied out to FILE, sparse (e2fsck cannot replay a journal at an offset).
part_copy() { dd if="$1" of="$3" bs=512 skip=$(($(part_offset "$1" "$2") / 512)) count=$(($(part_size "$1" "$2") / 512)) conv=sparse status=none; }

# tiny_root DIR: the smallest tree every build stage accepts: a kernel and initrd (stand-in
# files), systemd-boot's EFI binary (a stand-in), merged /usr, and the host's copies of the
# shared libraries pmoves-firstboot links (the builder checks the image has them).
tiny_root() {
	mkdir -p "$1/etc" "$1/boot/efi" "$1/usr/lib/systemd/boot/efi" "$1/usr/lib/x86_64-linux-gnu" "$1/usr/local/bin"
	echo kernel >"$1/boot/vmlinuz-9.9.9-test"
	echo initrd >"$1/boot/initrd.img-9.9.9-test"
	echo efi >"$1/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	ln -s usr/lib "$1/lib"
	# and the libraries it loads when a step needs them (builder/firstboot-install.c)
	for so in $(readelf -d "$BUILD/target/$(uname -m)/pmoves-firstboot" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p') \
		libefiboot.so.1 libefivar.so.1; do
		cp -L "/lib/x86_64-linux-gnu/$so" "$1/usr/lib/x86_64-linux-gnu/$so"
	done
}
