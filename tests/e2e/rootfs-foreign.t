#!/bin/bash
# A cold root filesystem for another architecture (arm64 on x86_64) with this machine's own
# programs standing in while its packages install and its initramfs is made
# (builder/native-tools.c): they were used (the build says how many), the image holds no trace
# of them (no loader, no library directory of this machine's, no file set aside, no diversion),
# its programs are its own architecture's and its packages' own files (dpkg's md5sums), and its
# initramfs holds none of them (the builder checks every initramfs after such a build).
# In make check-all (PMOVES_E2E_SLOW=1), the same profile is built again with
# PMOVES_NATIVE_TOOLS=0, all emulated, and the two tarballs compared file by file (with
# SOURCE_DATE_EPOCH set, the initramfs is the same bytes too).
. "$(dirname "$0")/lib.sh"
need mmdebstrap tar md5sum readelf perl
[ "$(id -u)" = 0 ] || skip_all "building a root filesystem needs root (mmdebstrap, file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ "$(uname -m)" = x86_64 ] || skip_all "builds arm64 as the foreign architecture: this machine is $(uname -m)"
grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
	skip_all "qemu-aarch64 is not enabled in binfmt_misc (make deps)"
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
	skip_all "this machine runs ${VERSION_CODENAME:-an unknown release}, not bookworm: its programs are not the image's"

T=$(mktemp -d /tmp/pmoves-e2e-rootfs-foreign.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 16

cat >"$T/foreign.json" <<JSON
{ "extends": "base-debian", "arch": "aarch64",
  "rootfs": { "packages": [ "systemd-sysv", "udev", "kmod", "linux-image-arm64", "systemd-boot", "ca-certificates" ],
              "initramfs_modules": [ "ext4", "virtio_blk", "virtio_pci", "virtio_mmio" ] } }
JSON
export SOURCE_DATE_EPOCH=1700000000
build() { # build NAME [ENV...]: a cold build into its own cache; the tarball's path in $T/NAME.tar
	local name=$1
	shift
	start=$(date +%s)
	env XDG_CACHE_HOME="$T/cache-$name" "$@" "$PMOVES_IMAGE" build "$T/foreign.json" -o "$T/out-$name" \
		>"$T/$name.out" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	ln -sf "$(ls "$T/cache-$name"/pmoves-image/*.tar 2>/dev/null | head -n 1)" "$T/$name.tar"
	return $rc
}
diag "cold arm64 rootfs build with this machine's programs standing in (about 3 minutes)"
build native
ok $? "cold arm64 build ($secs s)" || tail -n 30 "$T/native.out" | sed 's/^/# /' >&2
n=$(sed -n 's/^rootfs: \([0-9]*\) programs of this machine.s (bookworm amd64) with .* stand in .*/\1/p' "$T/native.out")
[ "${n:-0}" -ge 100 ]; ok $? "the builder staged this machine's programs ($n)"
used=$(sed -n 's/^rootfs: \([0-9]*\) programs of this machine.s run natively .*/\1/p' "$T/out-native/foreign/build.log")
[ "${used:-0}" -ge 100 ]; ok $? "... and they stood in for the image's while its packages installed ($used)"

R=$T/root
mkdir -p "$R"
tar -C "$R" -xf "$T/native.tar" && [ -x "$R/usr/bin/dash" ]; ok $? "the cached tarball extracts"
# (each check below also needs the extracted root: none passes on an empty one)
have() { [ -x "$R/usr/bin/dash" ] && [ -d "$R/var/lib/dpkg/info" ]; }
have && [ ! -e "$R/.pmoves-native" ] && [ ! -e "$R/usr/lib/x86_64-linux-gnu" ] && [ ! -e "$R/lib/x86_64-linux-gnu" ]
ok $? "no loader or library directory of this machine's left in the image"
left=$(find "$R" -name '*.pmoves-native' | head -n 3)
have && [ -z "$left" ]; ok $? "no file set aside left (${left:-none})"
have && ! grep -rqs 'pmoves-native' "$R/var/lib/dpkg"; ok $? "no diversion of theirs left in the dpkg database (diversions, diversions-old)"
# Every ELF program in the image's bin directories is arm64 (EM_AARCH64 = 183).
bad=$(find "$R/usr/bin" "$R/usr/sbin" -type f -print0 | perl -0ne 'chomp; open(my $f, "<", $_) or next;
	read($f, my $h, 20) == 20 or next; next unless substr($h, 0, 4) eq "\x7fELF";
	my $m = unpack("v", substr($h, 18, 2)); print "$_ ($m)\n" if $m != 183' | head -n 5)
have && [ -z "$bad" ]; ok $? "every ELF program under /usr/bin and /usr/sbin is arm64${bad:+: $bad}"
is "$(readelf -h "$R/usr/bin/dash" | sed -n 's/^ *Machine: *//p')" AArch64 "/usr/bin/dash is the image's (AArch64)"
# They stood in while the initramfs was made too; the builder checked it holds none of them.
v=$(ls "$R/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -s "$R/boot/initrd.img-$v" ] && grep -q '^update-initramfs: Generating /boot/initrd.img-' "$T/out-native/foreign/build.log"
ok $? "the initramfs was made (initrd.img-$v)"
# The programs that stood in are back as their packages shipped them.
for p in dash coreutils sed dpkg; do
	sums=$(ls "$R/var/lib/dpkg/info/$p.md5sums" "$R/var/lib/dpkg/info/$p:arm64.md5sums" 2>/dev/null | head -n 1)
	# (its programs: documentation is left out of every image)
	grep -E '  (usr/)?s?bin/' "$sums" >"$T/sums-$p" 2>/dev/null
	(cd "$R" && md5sum --quiet -c "$T/sums-$p" 2>&1 | grep -v '^md5sum: WARNING' | head -n 3) >"$T/md5-$p"
	[ -s "$T/sums-$p" ] && [ ! -s "$T/md5-$p" ]
	ok $? "$p's $(wc -l <"$T/sums-$p") programs match its md5sums$( [ -s "$T/md5-$p" ] && echo ": $(head -n 1 "$T/md5-$p")")"
done

if slow; then
	diag "the same build all emulated (PMOVES_NATIVE_TOOLS=0), for comparison"
	build emulated PMOVES_NATIVE_TOOLS=0
	rc=$?
	# (and really all emulated: else the comparison below would compare a build with itself)
	[ $rc = 0 ] && grep -q 'every program runs under qemu-user (PMOVES_NATIVE_TOOLS=0)' "$T/emulated.out" &&
		! grep -q 'run natively' "$T/out-emulated/foreign/build.log"
	ok $? "cold arm64 build all emulated, none of this machine's programs used ($secs s)"
	diff=$(python3 - "$T/emulated.tar" "$T/native.tar" <<'PYEOF'
import hashlib, sys, tarfile
def load(p):
    d = {}
    with tarfile.open(p) as t:
        for m in t:
            h = hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else None
            d[m.name] = (m.type, m.mode, m.uid, m.gid, m.linkname, m.size, h)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
for k in sorted(set(a) | set(b)):
    if a.get(k) != b.get(k):
        print(k)
PYEOF
)
	[ -z "$diff" ]; ok $? "the two tarballs hold the same files, modes, owners and bytes, the initramfs's too${diff:+: $(echo $diff | cut -c1-200)}"
else
	skip 2 "the all-emulated build to compare with is in make check-all (PMOVES_E2E_SLOW=1)"
fi
done_testing
