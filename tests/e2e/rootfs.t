#!/bin/bash
# The mmdebstrap root filesystem (builder/rootfs-mmdebstrap.c; docs/profiles.md, "How the
# mmdebstrap root filesystem is made"). First what mmdebstrap is told, through a stand-in
# mmdebstrap on PATH that records its argv. Then a real cold build into a private cache, and its
# tarball checked: the initramfs and /etc/ssl/certs made once, by Debian's own update-initramfs
# and update-ca-certificates, and valid; no SSH host key made; the initramfs holds the profile's initramfs_modules and
# refuses a module the kernel lacks; none of the build's shortcuts left in the image (no
# diversion, no unsafe dpkg I/O); the kernel upgrade path on the machine works; documentation left
# out but copyright files kept.
#
#   ROOTFS_ARCH=aarch64  the real build for arm64 instead of x86_64 (under qemu-user: 10 minutes
#                        or more; the same checks, the target's own tools run emulated)
. "$(dirname "$0")/lib.sh"
need mmdebstrap tar md5sum chroot mke2fs mkfs.vfat mcopy
[ "$(id -u)" = 0 ] || skip_all "building a root filesystem needs root (mmdebstrap, file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
ARCH=${ROOTFS_ARCH:-x86_64}
case $ARCH in
x86_64) KERNEL=linux-image-amd64 ;;
aarch64) KERNEL=linux-image-arm64 ;;
*) skip_all "ROOTFS_ARCH must be x86_64 or aarch64, not '$ARCH'" ;;
esac

T=$(mktemp -d /tmp/pmoves-e2e-rootfs.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 32

# 1. The argv, from a stand-in mmdebstrap that records it and fails (nothing is built).
mkdir -p "$T/bin" "$T/standin-cache"
cat >"$T/bin/mmdebstrap" <<'SH'
#!/bin/sh
# stand-in for mmdebstrap: records its arguments, one a line, and fails
for a; do printf '%s\n' "$a"; done >"$STANDIN_LOG"
exit 1
SH
chmod +x "$T/bin/mmdebstrap"
argv_of() { # argv_of VARIANT: the stand-in's argv for base-debian with that variant
	printf '{ "extends": "base-debian", "rootfs": { "variant": "%s" } }\n' "$1" >"$T/$1.json"
	PATH="$T/bin:$PATH" XDG_CACHE_HOME=$T/standin-cache STANDIN_LOG=$T/$1.argv \
		"$PMOVES_IMAGE" build "$T/$1.json" -o "$T/standin-out" >"$T/$1.log" 2>&1
	cat "$T/$1.argv" 2>/dev/null
}
A=$(argv_of minbase)
echo "$A" | grep -qx -- '--dpkgopt=path-exclude=/usr/share/doc/\*' &&
	echo "$A" | grep -qx -- '--dpkgopt=path-include=/usr/share/doc/\*/copyright'
ok $? "mmdebstrap leaves out /usr/share/doc but the copyright files"
[ "$(echo "$A" | grep -c -- '--setup-hook=\|--essential-hook=\|--customize-hook=')" = 4 ]
ok $? "... and gets the setup, essential and two customize hooks (unsafe dpkg I/O, deferrals, initramfs_modules, each deferred program once)"
echo "$A" | grep -q -- '--dpkgopt=.*unsafe-io'; ok $((!$?)) "... unsafe dpkg I/O not as a --dpkgopt (those stay in the image)"
A=$(argv_of custom)
[ -n "$A" ] && ! echo "$A" | grep -q -- '-hook='
ok $? "variant custom (no essential hook): no hooks, Debian's own initramfs generation"

# 2. A real cold build, into a private cache.
if [ "$ARCH" = x86_64 ]; then
	cat >"$T/rootfs.json" <<JSON
{ "extends": "base-debian",
  "rootfs": { "packages_add": [ "ca-certificates" ],
              "initramfs_modules": [ "ext4", "virtio_blk", "virtio_pci", "sd_mod", "ahci", "nvme" ] } }
JSON
else
	cat >"$T/rootfs.json" <<JSON
{ "extends": "base-debian", "arch": "aarch64",
  "rootfs": { "packages": [ "systemd-sysv", "udev", "kmod", "$KERNEL", "systemd-boot", "openssh-server",
                            "ca-certificates" ],
              "initramfs_modules": [ "ext4", "virtio_blk", "virtio_pci", "virtio_mmio", "sd_mod", "nvme" ] } }
JSON
fi
export XDG_CACHE_HOME=$T/cache SOURCE_DATE_EPOCH=1700000000
diag "cold $ARCH rootfs build (mmdebstrap; x86_64 takes a minute or two)"
start=$(date +%s)
"$PMOVES_IMAGE" build "$T/rootfs.json" -o "$T/out" >"$T/build.out" 2>&1
rc=$?
ok $rc "cold build of a $ARCH profile with $KERNEL ($(($(date +%s) - start)) s)"
[ $rc -eq 0 ] || tail -n 30 "$T/build.out" | sed 's/^/# /'
LOG=$T/out/rootfs/build.log
gen=$(grep -c '^update-initramfs: Generating /boot/initrd.img-' "$LOG" 2>/dev/null)
is "$gen" 1 "the initramfs is generated once (build.log)"
[ "$gen" = 1 ] || grep -n 'update-initramfs\|Processing triggers for initramfs' "$LOG" | sed 's/^/# /'
upd=$(grep -c '^Updating certificates in /etc/ssl/certs' "$LOG" 2>/dev/null)
is "$upd" 1 "/etc/ssl/certs is made once (build.log)"

TAR=$(ls "$T"/cache/pmoves-image/*.tar 2>/dev/null | head -n 1)
R=$T/root
mkdir -p "$R"
[ -n "$TAR" ] && tar -C "$R" -xf "$TAR"
ok $? "the cached tarball extracts"

# The image's own dpkg state, as a machine will see it.
for p in /usr/sbin/update-initramfs:initramfs-tools /usr/sbin/update-ca-certificates:ca-certificates \
	/usr/bin/ssh-keygen:openssh-client; do
	f=${p%%:*} pkg=${p#*:}
	! grep -qx "$f" "$R/var/lib/dpkg/diversions" 2>/dev/null
	ok $? "no diversion of $f left in the dpkg database"
	want=$(sed -n "s|^\\([0-9a-f]*\\)  ${f#/}\$|\\1|p" "$R/var/lib/dpkg/info/$pkg"*.md5sums 2>/dev/null)
	got=$(md5sum <"$R$f" 2>/dev/null | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ]; ok $? "$f is $pkg's own file (md5 $got)"
	[ -z "$(find "$R${f%/*}" -name "${f##*/}.*")" ]; ok $? "no renamed ${f##*/} left behind"
done
# openssh-server's postinst ran without making host keys (each machine makes its own).
[ -f "$R/etc/ssh/sshd_config" ] && [ -z "$(find "$R/etc/ssh" -name 'ssh_host_*')" ]
ok $? "openssh-server is configured and the tarball holds no SSH host key"
n=$(grep -c 'BEGIN CERTIFICATE' "$R/etc/ssl/certs/ca-certificates.crt" 2>/dev/null)
links=$(find "$R/etc/ssl/certs" -name '*.0' -type l | wc -l)
[ "${n:-0}" -ge 100 ] && [ "$links" -ge 100 ]
ok $? "/etc/ssl/certs holds the bundle and the hashed links ($n certificates, $links links)"
! grep -rqs unsafe-io "$R/etc/dpkg/dpkg.cfg.d"; ok $? "the image's dpkg keeps safe I/O (no force-unsafe-io in dpkg.cfg.d)"

# The initramfs: one per kernel, and Debian's own tools read it.
kvers=$(ls "$R/boot" | sed -n 's/^vmlinuz-//p')
[ -n "$kvers" ]; ok $? "a kernel in /boot ($kvers)"
all=0
for v in $kvers; do [ -s "$R/boot/initrd.img-$v" ] || all=1; done
ok $all "an initrd.img for each kernel"
v=$(echo "$kvers" | sort -V | tail -n 1)
chroot "$R" lsinitramfs "/boot/initrd.img-$v" >"$T/initrd.list" 2>"$T/initrd.err"
ok $? "lsinitramfs (the image's own) reads the initrd"
[ -s "$T/initrd.err" ] && sed 's/^/# /' "$T/initrd.err" | head -n 5
grep -q "lib/modules/$v/modules.dep\$" "$T/initrd.list" && grep -q '/virtio_blk\.ko' "$T/initrd.list" &&
	grep -qx 'init' "$T/initrd.list"
ok $? "... which holds /init, modules.dep and the storage drivers (virtio_blk): $(wc -l <"$T/initrd.list") entries"
# rootfs.initramfs_modules: those modules and what they need, not MODULES=most's hundreds
kos=$(grep -c '\.ko\(\.[a-z]*\)\?$' "$T/initrd.list")
grep -q '/kernel/fs/ext4/ext4\.ko' "$T/initrd.list" && grep -q '/kernel/drivers/nvme/host/nvme\.ko' "$T/initrd.list" &&
	! grep -q '/kernel/drivers/net/' "$T/initrd.list" && [ "$kos" -lt 60 ]
ok $? "... the listed modules and their dependencies, no network driver ($kos modules)"
chroot "$R" ldconfig -p 2>/dev/null | grep -q 'libc\.so\.6 '; ok $? "ldconfig's cache lists libc.so.6"

# A module the kernel does not have fails the initramfs (the hook's check), not the next boot.
H=$R/etc/initramfs-tools/hooks/pmoves-image
cp "$H" "$T/hook.orig"
sed -i 's/ nvme/ nvme pmoves_no_such_module/' "$H"
chroot "$R" update-initramfs -u -k "$v" >"$T/bad.log" 2>&1
rc=$?
cp "$T/hook.orig" "$H"
[ $rc != 0 ] && grep -q 'pmoves_no_such_module' "$T/bad.log" && grep -q 'E: pmoves-image: a module of rootfs.initramfs_modules' "$T/bad.log"
ok $? "an initramfs_modules name the kernel does not have fails update-initramfs, naming it (exit $rc)"
[ $rc != 0 ] || sed 's/^/# /' "$T/bad.log" | tail -n 5

# A kernel upgrade on the machine runs update-initramfs -u: it works on the image as built.
cp "$R/boot/initrd.img-$v" "$T/initrd.before"
diag "update-initramfs -u in the image (the path a kernel upgrade takes)"
chroot "$R" update-initramfs -u -k "$v" >"$T/update.log" 2>&1
rc=$?
ok $rc "update-initramfs -u -k $v in the image succeeds"
[ $rc -eq 0 ] || tail -n 10 "$T/update.log" | sed 's/^/# /'
[ -s "$R/boot/initrd.img-$v" ] && [ "$R/boot/initrd.img-$v" -nt "$T/initrd.before" ]
ok $? "... and writes a new initrd"

# Documentation: left out, copyright files kept; the rule stays for packages added later.
[ -z "$(find "$R/usr/share/doc" -type f ! -name copyright | head -n 1)" ]
ok $? "no file under /usr/share/doc but copyright files"
n=$(find "$R/usr/share/doc" -name copyright | wc -l)
[ "$n" -ge 20 ]; ok $? "... of which there are $n"
# (info's "dir" is the index install-info writes, no package's file)
[ -z "$(find "$R/usr/share/man" "$R/usr/share/info" -type f ! -path '*/info/dir' 2>/dev/null | head -n 1)" ] &&
	[ -z "$(find "$R/usr/share/locale" -type f ! -name locale.alias 2>/dev/null | head -n 1)" ]
ok $? "no man pages, info pages or translations"
done_testing
