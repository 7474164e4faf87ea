#!/bin/bash
# pmoves-firstboot built for aarch64 with Debian's cross toolchain ($BUILD/target/aarch64):
# an AArch64 ELF linking the same libraries as the x86_64 build and no newer glibc than
# Debian 12's; run under qemu-user on the arm64 multiarch libraries it behaves exactly like the
# x86_64 build (version, config validation, a provisioning run on a --root tree); and the
# builder puts it, unchanged, into an aarch64 image.
. "$(dirname "$0")/lib.sh"
need readelf
X86=$BUILD/target/x86_64/pmoves-firstboot
A64=$BUILD/target/aarch64/pmoves-firstboot
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
	skip_all "the aarch64 cross compiler 'aarch64-linux-gnu-gcc' is not installed (make deps)"
[ -x "$A64" ] || skip_all "'$A64' is not built: its arm64 libraries are missing (make deps) or make was not run"
[ -x "$X86" ] || skip_all "'$X86' is not built (make)"
[ "$(uname -m)" = x86_64 ] || skip_all "compares with the x86_64 build run natively: this machine is $(uname -m)"
QEMU=
for q in qemu-aarch64 qemu-aarch64-static; do command -v $q >/dev/null 2>&1 && { QEMU=$q; break; }; done
[ -n "$QEMU" ] || skip_all "neither 'qemu-aarch64' nor 'qemu-aarch64-static' is installed (package qemu-user; make deps)"
[ -e /lib/ld-linux-aarch64.so.1 ] || skip_all "the arm64 C library is not installed (package libc6:arm64; make deps)"

T=$(mktemp -d /tmp/pmoves-e2e-cross.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
skip() { _n=$((_n + 1)); echo "ok $_n # SKIP $*"; }
plan 21
diag "running the aarch64 build with $QEMU"

# The ELF.
is "$(readelf -h "$A64" | sed -n 's/^ *Machine: *//p')" AArch64 "readelf: the machine is AArch64"
is "$(readelf -h "$A64" | sed -n 's/^ *Class: *//p')" ELF64 "readelf: 64-bit"
is "$(readelf -l "$A64" | sed -n 's/.*interpreter: \(.*\)]/\1/p')" /lib/ld-linux-aarch64.so.1 \
	"its interpreter is Debian's arm64 dynamic loader"
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }
is "$(needed "$A64")" "libjson-c.so.5 libcurl.so.4 libcrypto.so.3 libblkid.so.1 libzstd.so.1 liblzma.so.5 libc.so.6 " \
	"it links exactly json-c, libcurl, libcrypto, libblkid, libzstd, liblzma (the network install's flash engine) and libc by soname"
is "$(needed "$A64")" "$(needed "$X86")" "... the same libraries as the x86_64 build"
glibc_max() { readelf -V "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1; }
G=$(glibc_max "$A64")
is "$(printf '%s\n' "$G" 2.36 | sort -V | tail -n 1)" 2.36 "it needs glibc $G, not newer than Debian 12's 2.36"
readelf -S "$A64" | grep -q asan; ok $((!$?)) "no sanitizer in the target build"

# Run under qemu-user, next to the x86_64 build: same output and exit status.
same() { # same DESCRIPTION ARGS...: both builds, stdout+stderr and exit status compared
	local d=$1 xo ao xr ar; shift
	xo=$("$X86" "$@" 2>&1); xr=$?
	ao=$("$QEMU" -L / "$A64" "$@" 2>&1); ar=$?
	if [ "$xo" = "$ao" ] && [ $xr = $ar ]; then ok 0 "$d"; else
		ok 1 "$d"; diag "x86_64 ($xr): $xo"; diag "aarch64 ($ar): $ao"
	fi
	LAST=$ao LAST_RC=$ar
}
same "--version: same output as the x86_64 build" --version
is "$LAST" "pmoves-firstboot $(sed -n 's/^PMOVES_VERSION := //p' "$TOP/Makefile")" "... which is the version"

cat >"$T/good.json" <<'JSON'
{ "hostname": "fleet-arm-1", "sysctl": { "vm.swappiness": "10" },
  "files": [ { "path": "/etc/pmoves/hello.txt", "content": "hello\n", "mode": "0640" } ] }
JSON
echo '{ "hostname": "bad_host!" }' >"$T/bad-hostname.json"
echo '{ "hostname": 5 }' >"$T/bad-type.json"
echo '{ "colour": "blue" }' >"$T/bad-key.json"
echo '{ "hostname": ' >"$T/bad-json.json"
same "validate a good config: same as x86_64" validate "$T/good.json"
is "$LAST_RC" 0 "... valid (exit 0)"
for b in hostname type key json; do
	same "validate a bad config ($b): same message and status as x86_64" validate "$T/bad-$b.json"
done
is "$LAST_RC" 2 "... invalid (exit 2): $LAST"

# A provisioning run on a tree by each build: the same steps, states and files.
for a in x86 a64; do
	mkdir -p "$T/$a/etc/pmoves"
	cp "$T/good.json" "$T/$a/etc/pmoves/firstboot.json"
	echo 'root:x:0:0:root:/root:/bin/sh' >"$T/$a/etc/passwd"
	echo 'root:x:0:' >"$T/$a/etc/group"
done
norm() { sed -e 's/SHA256:[^ ,]*/SHA256:X/g' -e 's/seconds=[0-9.]*/seconds=S/' "$1"; }
"$X86" run --root "$T/x86" >"$T/x86.out" 2>"$T/x86.err"; xr=$?
"$QEMU" -L / "$A64" run --root "$T/a64" >"$T/a64.out" 2>"$T/a64.err"; ar=$?
if [ "$ar" = 2 ] && grep -q "cannot use '$T/a64' as the root: Function not implemented" "$T/a64.err"; then
	# --root confines paths with openat2, which Debian 12's qemu-user (7.2) does not emulate;
	# without it a tree is refused, never opened by plain DIR/path strings.
	ok 0 "run --root: the aarch64 build, under a qemu-user without openat2, refuses the tree saying why (exit 2)"
	why="$(basename "$QEMU") $("$QEMU" --version | sed -n '1s/.*version \([0-9.]*\).*/\1/p') does not emulate openat2, which --root needs"
	skip "run --root: the aarch64 build provisions the tree: $why"
	skip "... printing the same step lines as x86_64: $why"
	skip "... and writing the same files: $why"
else
	is "$ar" "$xr" "run --root: same exit status as x86_64 ($xr)"
	grep -q 'pmoves-firstboot: done status=ok' "$T/a64.out"; ok $? "run --root: the aarch64 build provisions the tree (done status=ok)"
	diff <(norm "$T/x86.out") <(norm "$T/a64.out") >"$T/run.diff"; ok $? "... printing the same step lines as x86_64"
	[ -s "$T/run.diff" ] && sed 's/^/# /' "$T/run.diff"
	diff -r -x ssh -x status.json "$T/x86" "$T/a64" >"$T/tree.diff" && cmp -s "$T/x86/etc/hostname" "$T/a64/etc/hostname"
	ok $? "... and writing the same files (host keys and times aside)"
	[ -s "$T/tree.diff" ] && head -n 20 "$T/tree.diff" | sed 's/^/# /'
fi

# The builder takes it into an aarch64 image, from a tree with the arm64 libraries it needs.
if [ "$(id -u)" != 0 ]; then
	skip "building an image needs root (file owners)"
elif ! [ -x "$PMOVES_IMAGE" ] || ! command -v debugfs >/dev/null; then
	skip "'$PMOVES_IMAGE' is not built or debugfs is not installed"
else
	R=$T/root
	mkdir -p "$R/etc" "$R/boot/efi" "$R/usr/lib/systemd/boot/efi" "$R/usr/lib/aarch64-linux-gnu"
	echo kernel >"$R/boot/vmlinuz-9.9.9-test"
	echo initrd >"$R/boot/initrd.img-9.9.9-test"
	echo efi >"$R/usr/lib/systemd/boot/efi/systemd-bootaa64.efi"
	ln -s usr/lib "$R/lib"
	for so in $(needed "$A64") libefiboot.so.1 libefivar.so.1; do cp -L "/usr/lib/aarch64-linux-gnu/$so" "$R/usr/lib/aarch64-linux-gnu/"; done
	tar -C "$R" -cf "$T/rootfs.tar" .
	cat >"$T/arm.json" <<JSON
{ "extends": "base-debian", "description": "aarch64 cross test", "arch": "aarch64",
  "rootfs": { "source": "tarball", "path": "$T/rootfs.tar" } }
JSON
	"$PMOVES_IMAGE" build "$T/arm.json" -o "$T/out" >"$T/build.log" 2>&1
	IMG=$T/out/arm/arm.img
	debugfs -R "dump /usr/bin/pmoves-firstboot $T/from-image" "$IMG?offset=$(part_offset "$IMG" 2)" >/dev/null 2>&1
	cmp -s "$T/from-image" "$A64"
	rc=$?; ok $rc "an aarch64 image gets the aarch64 build as /usr/bin/pmoves-firstboot"
	[ $rc -eq 0 ] || tail -n 15 "$T/build.log" | sed 's/^/# /'
fi
done_testing
