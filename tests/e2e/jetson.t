#!/bin/bash
# The Jetson inference node (profiles/jetson-inference.json, boot loader extlinux), built once
# with a STAND-IN for NVIDIA's board support: a profile extending it with two apt repositories
# laid out as NVIDIA's Jetson repositories are (common and t234, tests/fixtures/l4t/make-repo.sh:
# packages named like L4T's, signed with a throwaway key), as a local mirror (file://), each
# pinned by its key's fingerprint and its InRelease's SHA-256 (rootfs.apt_sources); then
# - the stand-in's files in the image (/etc/nv_tegra_release, firmware), and no source of the
#   local mirror left in it; a wrong key, and a repository that is not the pinned one, fail
#   the build with nothing left under the final name;
# - boot.fdt: the Jetson Nano's device tree in both labels, u-boot-update agreeing; one the
#   image does not have fails the build;
# - the layout a Jetson's flash tools give an external root: GPT, partition 1 named APP, ext4
#   labelled APP, /boot/extlinux/extlinux.conf on it naming the kernel and initramfs that are
#   there, root=PARTUUID= partition 1's GUID, a rescue (fallback) label;
# - u-boot-menu's own u-boot-update, run from the image in a chroot (qemu-user) as the kernel
#   hook on the machine runs it, writes the same extlinux.conf; a second kernel version
#   installed in the image gets label l0 (the default) and the first moves to l1;
# - `run` boots it the way a board with U-Boot does: Debian's U-Boot for QEMU's virt machine
#   reads the image's extlinux.conf, to a login prompt with the hostname from device.json;
# - an extlinux.conf whose default label is missing, or whose kernel is not there, is refused
#   by run (exit 2) and named by inspect; a kernel U-Boot cannot start fails the run.
# - Ollama (the ollama step): the profile's Ollama artifacts replaced by a STAND-IN release
#   tarball (ollama-linux-arm64.tar.zst holding bin/ollama = tests/fixtures/standins/
#   ollama-server.py, not Ollama), baked from a local server; a model baked from a local store
#   (ollama_store; stand-in blobs). On the boot the artifacts step extracts the tarball into
#   /usr, systemd-sysusers makes the user, systemd starts ollama.service after its firewall,
#   and the step checks the baked model, the nftables table, /api/tags and /api/generate,
#   and ends degraded: the stand-in L4T says R36.4.0 but QEMU has no Jetson GPU.
# Debian's generic arm64 kernel stands in for NVIDIA's L4T kernel, which cannot be installed
# here; no Jetson board boots in this test.
. "$(dirname "$0")/lib.sh"
need qemu-system-aarch64 mmdebstrap sgdisk debugfs e2fsck blkid chroot gpg dpkg-deb dpkg-scanpackages zstd python3
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
	skip_all "no binfmt_misc entry for qemu-aarch64 (make deps): an arm64 root filesystem cannot be built here"
[ -r /usr/lib/u-boot/qemu_arm64/u-boot.bin ] || skip_all "no U-Boot for QEMU's arm64 virt machine (make deps: u-boot-qemu)"

T=$(mktemp -d /tmp/pmoves-e2e-jetson.XXXXXX)
MNT=
SERVER=
cleanup() {
	[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
	[ -n "$MNT" ] && { umount "$MNT/proc" 2>/dev/null; umount "$MNT" 2>/dev/null; }
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
plan 40
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
xl() { debugfs -R "cat /boot/extlinux/extlinux.conf" "$1?offset=$ROOT_OFF" 2>/dev/null; }
has_file() { debugfs -R "stat $2" "$1?offset=$ROOT_OFF" 2>/dev/null | grep -q '^Inode:.*Type: regular'; }

# Made once and kept beside the rootfs cache, one per version of make-repo.sh: the same key,
# path and InRelease each run give the same rootfs cache key, so the arm64 root filesystem is
# built once, not on every run (and the cache does not grow by one tarball a run).
L4T=${XDG_CACHE_HOME:-$HOME/.cache}/pmoves-image-tests/l4t-$(sha256sum <"$TOP/tests/fixtures/l4t/make-repo.sh" | cut -c1-16)
if [ ! -s "$L4T/jetson-ota-public.fpr" ]; then
	mkdir -p "${L4T%/*}" && rm -rf "$L4T.$$" && sh "$TOP/tests/fixtures/l4t/make-repo.sh" "$L4T.$$" >"$T/repo.log" 2>&1 &&
		{ mv -T "$L4T.$$" "$L4T" 2>/dev/null || rm -rf "$L4T.$$"; } # another run's, made meanwhile, is as good
fi
[ -s "$L4T/jetson-ota-public.fpr" ] && [ -s "$L4T/jetson/t234/dists/r36.4/InRelease" ]
ok $? "stand-in L4T repositories (common, t234), signed with a throwaway key ($L4T)"
FPR=$(cat "$L4T/jetson-ota-public.fpr")

# The stand-in Ollama release, served on 127.0.0.1 for the build to bake, and a model store.
mkdir -p "$T/ollama-release/bin" "$T/ollama-release/lib/ollama" "$T/files"
cp "$TOP/tests/fixtures/standins/ollama-server.py" "$T/ollama-release/bin/ollama"
echo "STAND-IN for Ollama's libraries (pmoves tests)" >"$T/ollama-release/lib/ollama/STAND-IN"
chmod 755 "$T/ollama-release/bin/ollama"
tar -C "$T/ollama-release" --owner=0 --group=0 -cf - bin lib | zstd -q -o "$T/files/ollama-linux-arm64.tar.zst"
OLLAMA_SHA=$(sha256sum <"$T/files/ollama-linux-arm64.tar.zst" | cut -c1-64)
python3 "$TOP/tests/fixtures/artifact-server.py" --port-file "$T/port" --files "$T/files" --log "$T/requests" \
	2>"$T/server.log" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
[ -n "$PORT" ] || { echo "Bail out! the artifact server did not start: $(cat "$T/server.log")"; exit 1; }
S=$T/ollama-store
mkdir -p "$S/blobs" "$S/manifests/registry.ollama.ai/library/tiny"
printf '{"model_format":"gguf","model_family":"stand-in"}' >"$T/mcfg"
head -c 100000 /dev/urandom >"$T/mweights"
MC=$(sha256sum <"$T/mcfg" | cut -c1-64) && cp "$T/mcfg" "$S/blobs/sha256-$MC"
MW=$(sha256sum <"$T/mweights" | cut -c1-64) && cp "$T/mweights" "$S/blobs/sha256-$MW"
printf '{"schemaVersion":2,"config":{"digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":100000}]}' \
	"$MC" "$(stat -c %s "$T/mcfg")" "$MW" >"$S/manifests/registry.ollama.ai/library/tiny/1b"
TINY=$(sha256sum <"$S/manifests/registry.ollama.ai/library/tiny/1b" | cut -c1-64)
mkdir -p "$T/profiles"
profile() { # profile NAME FINGERPRINT T234-PIN [MORE]: the profile extending jetson-inference with the
	# stand-in (MORE: top-level keys, each followed by a comma)
	cat >"$T/profiles/$1.json" <<JSON
{ "extends": "jetson-inference", ${4:-}
  "artifacts": [
    { "name": "ollama-linux-arm64.tar.zst", "kind": "tar", "target": "/usr", "bake": true,
      "url": "http://127.0.0.1:$PORT/ok/ollama-linux-arm64.tar.zst", "sha256": "$OLLAMA_SHA" } ],
  "ollama_store": "$S",
  "firstboot": { "ollama": { "models": [ { "name": "tiny:1b", "digest": "$TINY" } ] } },
  "rootfs": {
    "packages_add": ["nvidia-l4t-core", "nvidia-l4t-firmware", "cuda-toolkit-config-common", "python3"],
    "apt_sources": [
      { "name": "nvidia-common", "url": "file://$L4T/jetson/common", "suite": "r36.4", "components": ["main"],
        "key": "$L4T/jetson-ota-public.asc", "fingerprint": "$2",
        "release_sha256": "$(sha256sum <"$L4T/jetson/common/dists/r36.4/InRelease" | cut -c1-64)" },
      { "name": "nvidia-t234", "url": "file://$L4T/jetson/t234", "suite": "r36.4", "components": ["main"],
        "key": "$L4T/jetson-ota-public.asc", "fingerprint": "$2", "release_sha256": "$3" } ] } }
JSON
}
T234=$(sha256sum <"$L4T/jetson/t234/dists/r36.4/InRelease" | cut -c1-64)
profile jetson-standin "$FPR" "$T234"
start=$(date +%s)
"$PMOVES_IMAGE" build "$T/profiles/jetson-standin.json" -o "$T" >"$T/build.log" 2>&1; rc=$?
ok $rc "build jetson-inference with the stand-in L4T repositories ($(($(date +%s) - start)) s)"
[ $rc = 0 ] || { tail -n 15 "$T/build.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }
IMG=$T/jetson-standin/jetson-standin.img

# --- the layout ---
sgdisk -i 1 "$IMG" >"$T/p1.txt"
grep -q "^Partition name: 'APP'$" "$T/p1.txt"; ok $? "partition 1 is named APP (a Jetson's external root)"
GUID=$(sed -n 's/^Partition unique GUID: //p' "$T/p1.txt" | tr A-F a-f)
ROOT_OFF=$(part_offset "$IMG" 1)
part_copy "$IMG" 1 "$T/app.ext4"
is "$(blkid -o value -s TYPE "$T/app.ext4")/$(blkid -o value -s LABEL "$T/app.ext4")" "ext4/APP" "it holds ext4 labelled APP"
check "e2fsck -fn finds it clean" e2fsck -fn "$T/app.ext4"
rm -f "$T/app.ext4"
xl "$IMG" >"$T/extlinux.conf"
sed 's/^/# extlinux.conf: /' "$T/extlinux.conf" | grep -v ': ##' | grep -v ': *$'
grep -q '^default l0$' "$T/extlinux.conf"; ok $? "extlinux.conf: default l0"
K=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "linux" { print $2; exit }' "$T/extlinux.conf")
I=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "initrd" { print $2; exit }' "$T/extlinux.conf")
A=$(awk '$1 == "label" { l = $2 } l == "l0" && $1 == "append" { $1 = ""; print; exit }' "$T/extlinux.conf")
V=${K#/boot/vmlinuz-}
[ -n "$V" ] && [ "$I" = "/boot/initrd.img-$V" ] && has_file "$IMG" "$K" && has_file "$IMG" "$I"
ok $? "label l0: kernel '$K' and initramfs '$I', both on partition 1"
case " $A " in *" root=PARTUUID=$GUID "*) ok 0 "label l0: root=PARTUUID=$GUID, partition 1";;
	*) ok 1 "label l0: root=PARTUUID=$GUID, partition 1"; diag "append:$A";; esac
awk '$1 == "label" { l = $2 } l == "l0r" && $1 == "append" { print }' "$T/extlinux.conf" | grep -q " single$"
ok $? "a fallback label l0r: the same kernel, single user (rescue target)"
grep -q "fdtdir /usr/lib/linux-image-$V/" "$T/extlinux.conf"; ok $? "the kernel's device trees (fdtdir), the profile names none"
get() { debugfs -R "cat $1" "$IMG?offset=$ROOT_OFF" 2>/dev/null; }
get /etc/nv_tegra_release | grep -q '^# R36 (release), REVISION: 4.0, GCID: STAND-IN' &&
	[ "$(get /lib/firmware/nvidia/tegra234/xusb.bin)" = "STAND-IN for the XUSB firmware" ] &&
	[ -n "$(get /etc/ld.so.conf.d/988_cuda-12.conf)" ]
ok $? "the stand-in BSP's files from both repositories: /etc/nv_tegra_release (R36.4), firmware, CUDA's"
debugfs -R "ls -l /etc/apt/sources.list.d" "$IMG?offset=$ROOT_OFF" 2>/dev/null >"$T/sources.d"
! grep -q '\.sources' "$T/sources.d" && grep -q "apt source nvidia-t234: file://$L4T/jetson/t234 r36.4, key $FPR" \
	"$T/jetson-standin/build.log"
ok $? "the local mirror's sources are not left in the image; the build log names each source and key"
"$PMOVES_IMAGE" inspect "$IMG" >"$T/inspect.txt" 2>&1; rc=$?
ok $rc "inspect: the image agrees with its manifest, and extlinux.conf with the image"
[ $rc = 0 ] || sed 's/^/# /' "$T/inspect.txt" | tail -n 20
grep -q "^boot loader: extlinux" "$T/inspect.txt" && grep -q "^    | default l0" "$T/inspect.txt" &&
	grep -qi "^  ok       the default label's root=PARTUUID=$GUID is partition 1 (ext4)" "$T/inspect.txt" &&
	grep -q "^  ok       label l0: kernel '$K' is on partition 1" "$T/inspect.txt"
ok $? "inspect shows extlinux.conf and checks the default label, its kernel and its root"

# --- u-boot-menu's own u-boot-update, from the image, as the kernel hook runs it ---
mount_copy() { # mount_copy IMAGE: a copy of IMAGE's root mounted at $MNT, with /proc
	cp --sparse=always "$1" "$T/hook.img" && MNT=$T/mnt && mkdir -p "$MNT" &&
		mount -o loop,offset=$(part_offset "$1" 1),sizelimit=$(part_size "$1" 1) "$T/hook.img" "$MNT" &&
		mount -t proc proc "$MNT/proc"
}
unmount_copy() { umount "$MNT/proc" && umount "$MNT" && MNT= && rm -f "$T/hook.img"; }
mount_copy "$IMG"
ok $? "the copy's root mounted"
chroot "$MNT" /etc/kernel/postinst.d/zz-u-boot-menu "$V" >"$T/hook.log" 2>&1; ok $? "zz-u-boot-menu runs in the image (chroot, qemu-user)"
[ $? = 0 ] || sed 's/^/# /' "$T/hook.log" | tail -n 5
cmp -s "$MNT/boot/extlinux/extlinux.conf" "$T/extlinux.conf"; rc=$?
ok $rc "... and writes the same extlinux.conf"
[ $rc = 0 ] || diff "$T/extlinux.conf" "$MNT/boot/extlinux/extlinux.conf" | cat -A | sed 's/^/# /' | head -n 20
# A second, newer kernel version: its files under its name, as linux-image-* installs them.
V2=${V%%-*}.99-99-arm64
cp "$MNT/boot/vmlinuz-$V" "$MNT/boot/vmlinuz-$V2"
cp "$MNT/boot/initrd.img-$V" "$MNT/boot/initrd.img-$V2"
cp -a "$MNT/usr/lib/linux-image-$V" "$MNT/usr/lib/linux-image-$V2"
chroot "$MNT" /etc/kernel/postinst.d/zz-u-boot-menu "$V2" >"$T/hook.log" 2>&1; ok $? "the hook for a second kernel, $V2"
awk '$1 == "label" { l = $2 } l == "l0" && $1 == "linux" { print $2 }' "$MNT/boot/extlinux/extlinux.conf" >"$T/l0"
awk '$1 == "label" { l = $2 } l == "l1" && $1 == "linux" { print $2 }' "$MNT/boot/extlinux/extlinux.conf" >"$T/l1"
grep -q '^default l0$' "$MNT/boot/extlinux/extlinux.conf" && is "$(cat "$T/l0") $(cat "$T/l1")" \
	"/boot/vmlinuz-$V2 /boot/vmlinuz-$V" "extlinux.conf follows: the new kernel is l0 (the default), the first l1"
grep "append" "$MNT/boot/extlinux/extlinux.conf" | grep -vc "root=PARTUUID=$GUID " >"$T/wrong-root"
is "$(cat "$T/wrong-root")" 0 "every label keeps root=PARTUUID=$GUID and the profile's command line"
unmount_copy

# --- a board's device tree (boot.fdt): the Jetson Nano's, as Debian's kernel has it ---
DTB=nvidia/tegra210-p3450-0000.dtb
profile jetson-nano "$FPR" "$T234" "\"boot\": { \"fdt\": \"$DTB\" },"
"$PMOVES_IMAGE" build "$T/profiles/jetson-nano.json" -o "$T" >"$T/nano.log" 2>&1; rc=$?
ok $rc "build with boot.fdt $DTB (the same root filesystem)"
NANO=$T/jetson-nano/jetson-nano.img
debugfs -R "cat /boot/extlinux/extlinux.conf" "$NANO?offset=$(part_offset "$NANO" 1)" 2>/dev/null >"$T/nano.conf"
is "$(grep -c "^	fdt /usr/lib/linux-image-$V/$DTB\$" "$T/nano.conf")/$(grep -c fdtdir "$T/nano.conf")" "2/0" \
	"extlinux.conf: both labels name the board's device tree (fdt), no fdtdir"
mount_copy "$NANO" && chroot "$MNT" /etc/kernel/postinst.d/zz-u-boot-menu "$V" >"$T/hook.log" 2>&1 &&
	cmp -s "$MNT/boot/extlinux/extlinux.conf" "$T/nano.conf"
ok $? "u-boot-update writes the same from U_BOOT_FDT"
unmount_copy
rm -rf "$T/jetson-nano"
profile jetson-orin "$FPR" "$T234" '"boot": { "fdt": "nvidia/tegra234-p3768-0000+p3767-0005-nv.dtb" },'
"$PMOVES_IMAGE" build "$T/profiles/jetson-orin.json" -o "$T" >"$T/orin.log" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "boot.fdt: the device tree 'nvidia/tegra234-p3768-0000+p3767-0005-nv.dtb' is not in the image for kernel $V" \
	"$T/orin.log" && [ ! -e "$T/jetson-orin" ]
ok $? "a device tree the image does not have fails the build (exit $rc), no image"

# --- booted as a board with U-Boot boots it: QEMU's virt, U-Boot reading extlinux.conf ---
# The kick timer (lib.sh) runs the first boot again 20 s after the boot, for Ollama.
python3 - "$KICK_TIMER" "$KICK_SERVICE" >"$T/device.json" <<'PY'
import json, sys
print(json.dumps({"hostname": "jetson-7",
    "files": [{"path": "/etc/systemd/system/pmoves-e2e-kick.timer", "content": sys.argv[1].replace("\\n", "\n")},
              {"path": "/etc/systemd/system/pmoves-e2e-kick.service", "content": sys.argv[2].replace("\\n", "\n")}],
    "units": {"enable": ["systemd-networkd.service", "pmoves-e2e-kick.timer"], "start": ["pmoves-e2e-kick.timer"]},
    "finally": "poweroff"}))
PY
# The boot's run ends pending (Ollama waits for the boot), the next one degraded, then powers off.
"$PMOVES_IMAGE" run "$IMG" --config "$T/device.json" --timeout 900 --log "$T/boot.log" >/dev/null 2>"$T/boot.err"
rc=$?
clean "$T/boot.log" >"$T/boot.txt"
grep -aq 'jetson-7 login:' "$T/boot.txt"
ok $? "run: boots to a login prompt with the hostname from device.json"
[ $rc = 0 ] || sed 's/^/# /' "$T/boot.err" | tail -n 20
grep -aq '^U-Boot 20' "$T/boot.txt" && grep -aq 'Retrieving file: /boot/extlinux/extlinux.conf' "$T/boot.txt" &&
	grep -aq "Retrieving file: $K" "$T/boot.txt"
ok $? "U-Boot read the image's extlinux.conf and loaded its kernel"
grep -q "extlinux: /boot/extlinux/extlinux.conf, label 'l0': kernel '$K'" "$T/boot.err"
ok $? "run says which label and kernel it checked"
grep -aqE "pmoves-firstboot: step=growfs state=(ok|skipped)" "$T/boot.txt"; ok $? "growfs ran"
grep -aq "pmoves-firstboot: step=artifacts state=ok 1 of 1 artifacts installed" "$T/boot.txt"
ok $? "the artifacts step extracted the baked Ollama release (tar.zst) into /usr"
grep -aq "pmoves-firstboot: step=ollama state=pending Ollama starts once the boot is done" "$T/boot.txt"
ok $? "the boot's own run: the ollama step waits for the boot to be done"
W="pmoves-firstboot: step=ollama state=degraded 1 model on 0.0.0.0:11434, reachable from \"lo\", \"tailscale0\", \"bat0\" only; L4T R36.4.0 but no GPU device (/dev/nvgpu/igpu0, /dev/nvhost-gpu): Ollama runs on the CPU"
grep -aqF "$W" "$T/boot.txt"; rc=$?
ok $rc "the next run: ollama.service (user from systemd-sysusers, its firewall loaded) serves the baked model, /api/generate answers; degraded: L4T R36.4.0, no GPU device under QEMU"
[ $rc = 0 ] || grep -a 'pmoves-firstboot:' "$T/boot.txt" | sed 's/^/# /' | tail -n 30 >&2
! grep -aq "pmoves-firstboot: step=[a-z-]* state=failed" "$T/boot.txt"; ok $? "no step failed"
# After the ollama line: that run's done line, then the power-off it asks for ("finally").
[ $rc = 0 ] && sed -n '/pmoves-firstboot: step=ollama state=degraded/,$p' "$T/boot.txt" |
	grep -aqE "pmoves-firstboot: done status=degraded steps=[0-9]+ "
ok $? "that run ends: pmoves-firstboot: done status=degraded (no GPU), and the machine powers off (run exit $rc)"

# --- what U-Boot would not boot, run does not either ---
broken() { # broken DESCRIPTION WANT-IN-RUN-MESSAGE WANT-IN-INSPECT DEBUGFS-COMMAND...
	local what=$1 want=$2 winspect=$3
	shift 3
	cp --sparse=always "$IMG" "$T/broken.img"
	for c in "$@"; do debugfs -w -R "$c" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1; done
	"$PMOVES_IMAGE" run "$T/broken.img" --expect 'login:' --timeout 60 >/dev/null 2>"$T/broken.err"
	rc=$?
	[ $rc = 2 ] && grep -q "$want" "$T/broken.err"
	ok $? "$what: run refuses it (exit $rc)"
	[ $rc = 2 ] || sed 's/^/# /' "$T/broken.err" | tail -n 5
	"$PMOVES_IMAGE" inspect "$T/broken.img" >"$T/broken.inspect" 2>&1
	rc=$?
	[ $rc = 1 ] && grep -q "^  PROBLEM  $winspect" "$T/broken.inspect"
	ok $? "$what: inspect names the problem (exit $rc)"
}
broken "the default label's kernel removed" "kernel '$K' is not on partition 1" "label l0: kernel '$K' is not" "rm $K"
sed 's/^default l0$/default primary/' "$T/extlinux.conf" >"$T/extlinux.broken"
broken "extlinux.conf naming a default label it does not have" "names no default label that it has (default primary)" \
	"/boot/extlinux/extlinux.conf's default label primary is not there" \
	"rm /boot/extlinux/extlinux.conf" "write $T/extlinux.broken /boot/extlinux/extlinux.conf"
# A kernel file U-Boot cannot start: run's own check passes, the boot does not.
head -c 4096 /dev/zero >"$T/zero"
cp --sparse=always "$IMG" "$T/broken.img"
debugfs -w -R "rm $K" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1
debugfs -w -R "write $T/zero $K" "$T/broken.img?offset=$ROOT_OFF" >/dev/null 2>&1
"$PMOVES_IMAGE" run "$T/broken.img" --expect 'login:' --timeout 30 --log "$T/zero.log" >/dev/null 2>"$T/broken.err"
rc=$?
[ $rc = 1 ] && grep -aq 'Bad Linux ARM64 Image magic' "$T/zero.log"
ok $? "a kernel U-Boot cannot start fails the run (exit $rc, U-Boot says so)"
rm -f "$T/broken.img"

# --- the pins ---
gpg_home=$T/other-gnupg
mkdir -m 700 "$gpg_home"
OTHER=$(GNUPGHOME=$gpg_home gpg --batch --quiet --passphrase '' --quick-gen-key 'another key <x@invalid>' ed25519 sign never \
	2>/dev/null && GNUPGHOME=$gpg_home gpg --batch --with-colons --list-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
profile wrong-key "$OTHER" "$T234"
"$PMOVES_IMAGE" build "$T/profiles/wrong-key.json" -o "$T" >"$T/wrong-key.log" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "the key '$L4T/jetson-ota-public.asc' has the fingerprint $FPR, but the profile pins $OTHER" \
	"$T/wrong-key.log" && [ ! -e "$T/wrong-key" ]
ok $? "a key that is not the pinned one: the build fails naming both fingerprints (exit $rc), no image"
profile wrong-pin "$FPR" "$(printf '%064d' 0)"
"$PMOVES_IMAGE" build "$T/profiles/wrong-pin.json" -o "$T" >"$T/wrong-pin.log" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "rootfs.apt_sources nvidia-t234: no InRelease apt fetched has the pinned SHA-256 0\{64\}" \
	"$T/wrong-pin.log" && [ ! -e "$T/wrong-pin" ]
ok $? "a repository that is not the pinned one: the build fails before installing from it (exit $rc), no image"
[ $? = 0 ] || tail -n 5 "$T/wrong-pin.log" | sed 's/^/# /'
done_testing
