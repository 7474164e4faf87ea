#!/bin/sh
# Install the Debian packages pmoves-image needs to build, test and run. Idempotent: only
# missing packages are installed, and apt is not touched when nothing is missing.
#
# Also the cross toolchain and foreign multiarch libraries that build pmoves-firstboot for the
# other image architecture (aarch64 on an amd64 machine, x86_64 on an arm64 one), and
# qemu-user to run that build in tests. The foreign -dev packages must be the same version as
# the native ones, so apt may upgrade a few native libraries to match. On Debian 12 amd64 this
# adds about 300 MB installed (80 MB download: the cross gcc and foreign libraries 200 MB,
# qemu-user 100 MB) and under a minute. When apt refuses them, pmoves-image still builds and
# make skips the foreign pmoves-firstboot with a note.
set -eu
PKGS="build-essential pkg-config perl ca-certificates
libarchive-dev libjson-c-dev libcurl4-openssl-dev libssl-dev libblkid-dev libext2fs-dev libefivar-dev libefiboot-dev
mmdebstrap e2fsprogs dosfstools mtools fdisk gdisk squashfs-tools zstd bmap-tools
qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 time
python3 openssl gnupg openssh-client dpkg-dev nftables dnsmasq-base"

# pmoves-firstboot's libraries (FB_PKGS in the Makefile), for the foreign architecture.
FB_DEV="libjson-c-dev libcurl4-openssl-dev libblkid-dev"
case $(dpkg --print-architecture) in
amd64) FOREIGN=arm64 CROSS=gcc-aarch64-linux-gnu ;;
arm64) FOREIGN=amd64 CROSS=gcc-x86-64-linux-gnu ;;
*) FOREIGN='' CROSS='' ;;
esac
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
# shellcheck disable=SC2086
missing=$(missing $PKGS)
# shellcheck disable=SC2086
cross_missing=$(missing $CROSS_PKGS)
[ -z "$missing$cross_missing" ] && exit 0
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
