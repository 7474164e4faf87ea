#!/bin/sh
# Install the Debian packages pmoves-image needs to build, test and run, and prepare the host
# for foreign-architecture root filesystems. Idempotent: only what is missing is installed or
# changed, and apt is not touched when nothing is missing.
#
# What it changes on the host (README, "make deps"):
#   - installs the packages below (apt-get, --no-install-recommends);
#   - adds the foreign architecture (arm64 on amd64, amd64 on arm64) to dpkg, for the cross
#     build of pmoves-firstboot's libraries;
#   - mounts binfmt_misc on /proc/sys/fs/binfmt_misc if it is not, and enables qemu-user-static's
#     handler for the foreign architecture, so mmdebstrap can run its maintainer scripts.
# When apt refuses the foreign packages, pmoves-image still builds and make skips the foreign
# pmoves-firstboot with a note.
set -eu

# One package a line, then what uses it.
PKGS=$(sed -e 's/#.*//' <<'EOF'
build-essential    # compiler and make
pkg-config         # the Makefile finds the libraries with it
perl               # gateway.t edits a generated config
ca-certificates    # libcurl's https: rootfs tarball and artifact downloads
libarchive-dev     # the tree stage reads rootfs tarballs
libjson-c-dev      # profiles, manifests, first-boot configs
libcurl4-openssl-dev # downloads (builder and pmoves-firstboot)
libssl-dev         # libcrypto: SHA-256 of images and files; libssl: serve --tls-cert (HTTPS)
libblkid-dev       # inspect, run's architecture detection, growfs
libext2fs-dev      # ext4 timestamps clamped for reproducible images
libefivar-dev      # EFI variables (the efiboot step)
libefiboot-dev     # EFI load options (the efiboot step)
libzstd-dev        # the output "zst" (multithreaded zstd); flash and the network install read .zst images
liblzma-dev        # the output "xz" (multithreaded xz); flash reads .xz images
liblz4-dev         # the output "microvm": vmlinux out of an LZ4-compressed bzImage (Debian's 6.1)
mmdebstrap         # the rootfs source "mmdebstrap"
e2fsprogs          # mke2fs -d, resize2fs (growfs), debugfs in tests
dosfstools         # mkfs.vfat
mtools             # mcopy/mmd into FAT images; flash writes pmoves/device.json with them
fdisk              # sfdisk: tests and fixtures
gdisk              # sgdisk --verify in tests
zstd               # tests: zstd -t of the output "zst", .zst images for flash
xz-utils           # tests: xz -t of the output "xz", .xz images for flash
bmap-tools         # bmaptool: tests check the output "bmap" with it; make bench compares flash with 'bmaptool copy'
qemu-system-x86    # run, demo and tests: x86_64 guests
qemu-system-arm    # run: aarch64 guests
ovmf               # UEFI firmware for x86_64 guests
qemu-efi-aarch64   # UEFI firmware for aarch64 guests
u-boot-qemu        # run: U-Boot for aarch64 virt, the boot loader "extlinux" (Jetson) boots with it
qemu-utils         # qemu-img: the output "qcow2", qemu-img check in tests
squashfs-tools     # mksquashfs: the output "pxe" (the live root)
ipxe               # the output "pxe": iPXE for PXE ROMs (undionly.kpxe, ipxe.efi)
ipxe-qemu          # run --pxe: QEMU's NIC ROMs (iPXE) boot from the network
qemu-user-static   # mmdebstrap for a foreign architecture (binfmt, below)
binfmt-support     # update-binfmts, to enable qemu-user-static's handler
arch-test          # mmdebstrap checks that the foreign architecture runs
time               # make bench: whole-process time and memory
python3            # test servers (HTTP, HTTPS) on 127.0.0.1
python3-jsonschema # test-profile checks the JSON Schema against the validator
openssl            # test certificates and checksums
gnupg              # signed apt repositories in tests; the steps check keys with gpg
openssh-client     # ssh-keygen in tests
dpkg-dev           # dpkg-scanpackages: stand-in apt repositories in tests
nftables           # gateway and service firewall tests; pmoves-sandbox net-up
busybox-static     # sandbox.t: cpio, to read the sandbox guest's initramfs
dnsmasq-base       # gateway tests: the LAN's DHCP and DNS
valgrind           # test-profile runs a failing build under it
clang              # make CC=clang check; make fuzz builds the libFuzzer harnesses with it
libclang-rt-14-dev # make fuzz: libclang_rt.fuzzer of bookworm's clang 14 (clang only recommends it)
EOF
)

# pmoves-firstboot's libraries (FB_PKGS in the Makefile), for the foreign architecture.
FB_DEV="libjson-c-dev libcurl4-openssl-dev libssl-dev libblkid-dev libefivar-dev libefiboot-dev libzstd-dev liblzma-dev"
case $(dpkg --print-architecture) in
amd64) FOREIGN=arm64 CROSS=gcc-aarch64-linux-gnu QEMU_ARCH=aarch64 ;;
arm64) FOREIGN=amd64 CROSS=gcc-x86-64-linux-gnu QEMU_ARCH=x86_64 ;;
*) FOREIGN='' CROSS='' QEMU_ARCH='' ;;
esac
# The cross compiler and the foreign -dev packages (the same version as the native ones, so apt
# may upgrade a few native libraries to match); qemu-user runs the cross-built binary in tests.
CROSS_PKGS=
if [ -n "$FOREIGN" ]; then
	CROSS_PKGS="$CROSS qemu-user"
	for p in $FB_DEV; do CROSS_PKGS="$CROSS_PKGS $p:$FOREIGN"; done
fi

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf ' %s' "$p"
	done
}

# The foreign architecture's binfmt handler, enabled (needs root; a no-op once done).
binfmt() {
	[ -n "$QEMU_ARCH" ] || return 0
	state=/proc/sys/fs/binfmt_misc/qemu-$QEMU_ARCH
	[ -f "$state" ] && head -n1 "$state" | grep -qx enabled && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: qemu-$QEMU_ARCH is not enabled in binfmt_misc: run 'sudo make deps'" >&2
		return 0
	fi
	[ -f /proc/sys/fs/binfmt_misc/status ] ||
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
		{ echo "deps: cannot mount binfmt_misc: $FOREIGN root filesystems cannot be built here" >&2; return 0; }
	update-binfmts --enable "qemu-$QEMU_ARCH" ||
		echo "deps: cannot enable qemu-$QEMU_ARCH in binfmt_misc: $FOREIGN root filesystems cannot be built here" >&2
}

# shellcheck disable=SC2086
missing=$(missing $PKGS)
# shellcheck disable=SC2086
cross_missing=$(missing $CROSS_PKGS)
if [ -z "$missing$cross_missing" ]; then
	binfmt
	exit 0
fi
echo "deps: installing$missing$cross_missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: need root to install packages (run 'sudo make deps')" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$cross_missing" ] && ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN"; then
	dpkg --add-architecture "$FOREIGN"
fi
apt-get update -qq
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$cross_missing" ]; then
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $cross_missing ||
		echo "deps: cross build packages not installed (above); pmoves-firstboot is built for this machine's architecture only" >&2
fi
binfmt
