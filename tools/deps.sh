#!/bin/sh
# Install the Debian packages pmoves-image needs to build, test and run. Idempotent: only
# missing packages are installed, and apt is not touched when nothing is missing.
set -eu
PKGS="build-essential pkg-config perl ca-certificates
libarchive-dev libjson-c-dev libcurl4-openssl-dev libblkid-dev libext2fs-dev libefivar-dev libefiboot-dev
mmdebstrap e2fsprogs dosfstools mtools fdisk gdisk squashfs-tools zstd bmap-tools
qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 time"

missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
	echo "deps: need root to install packages (run 'sudo make deps')" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
