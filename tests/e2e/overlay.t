#!/bin/bash
# Overlays are copied into the image with their modes, owned by root; a hostile rootfs tarball
# (an entry outside the root, a symlink pointing out of it) cannot make the builder write
# outside its tree. Uses a small local tarball, so no mmdebstrap.
. "$(dirname "$0")/lib.sh"
need tar mke2fs mkfs.vfat mcopy debugfs
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-overlay.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 19
export PMOVES_DATADIR=$T/data
mkdir -p "$T/data/profiles" "$T/data/overlays/site/etc/pmoves" "$T/data/overlays/site/usr/local/bin"
cp "$TOP/profiles/base-debian.json" "$T/data/profiles/"
cp -R "$TOP/overlays/common" "$T/data/overlays/"

tiny_root "$T/root"
tar -C "$T/root" -cf "$T/root.tar" .

# The overlay: a secret-like file 0600, a script 0755, a directory 0700, a symlink, and a file
# under /lib, which is a symlink to usr/lib in the tree (merged /usr).
echo 'setting=1' >"$T/data/overlays/site/etc/pmoves/site.conf"
chmod 0600 "$T/data/overlays/site/etc/pmoves/site.conf"
chmod 0700 "$T/data/overlays/site/etc/pmoves"
printf '#!/bin/sh\necho hi\n' >"$T/data/overlays/site/usr/local/bin/hello"
chmod 0755 "$T/data/overlays/site/usr/local/bin/hello"
ln -s hello "$T/data/overlays/site/usr/local/bin/hi"
mkdir -p "$T/data/overlays/site/lib/pmoves"
echo lib >"$T/data/overlays/site/lib/pmoves/marker"
chown -R 1234:1234 "$T/data/overlays/site"

cat >"$T/data/profiles/ov.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/root.tar" },
  "overlays": ["site"] }
JSON
"$PMOVES_IMAGE" build ov -o "$T/out" >"$T/ov.log" 2>&1
rc=$?; ok $rc "build with an overlay"
[ $rc -eq 0 ] || tail -n 20 "$T/ov.log" | sed 's/^/# /'
IMG=$T/out/ov/ov.img
ROOT="$IMG?offset=$(part_offset "$IMG" 2)"
mode_of() { debugfs -R "stat $1" "$ROOT" 2>/dev/null | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p' | head -n 1; }
owner_of() { debugfs -R "stat $1" "$ROOT" 2>/dev/null | sed -n 's/.*User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p' | head -n 1; }
is "$(debugfs -R 'cat /etc/pmoves/site.conf' "$ROOT" 2>/dev/null)" "setting=1" "overlay file content"
is "$(mode_of /etc/pmoves/site.conf)" 0600 "file mode 0600 kept"
is "$(mode_of /etc/pmoves)" 0700 "directory mode 0700 kept"
is "$(mode_of /usr/local/bin/hello)" 0755 "script mode 0755 kept"
is "$(owner_of /etc/pmoves/site.conf)" 0:0 "owned by root, not by the overlay's owner"
is "$(debugfs -R 'stat /usr/local/bin/hi' "$ROOT" 2>/dev/null | sed -n 's/.*Fast link dest: "\(.*\)"/\1/p')" hello \
	"symlink copied as a symlink"
is "$(debugfs -R 'cat /usr/lib/pmoves/marker' "$ROOT" 2>/dev/null)" lib "a path through the tree's /lib symlink lands in /usr/lib"

# pmoves-firstboot goes into every image, enabled, its config readable by root only.
is "$(mode_of /usr/bin/pmoves-firstboot)" 0755 "pmoves-firstboot installed in /usr/bin"
is "$(mode_of /etc/pmoves/firstboot.json)" 0600 "its config is 0600"
debugfs -R 'stat /etc/systemd/system/sysinit.target.wants/pmoves-firstboot.service' "$ROOT" 2>/dev/null |
	grep -q 'Fast link dest: "/usr/lib/systemd/system/pmoves-firstboot.service"'
ok $? "its unit is enabled"

# An image without a library pmoves-firstboot needs: caught at build time.
mkdir -p "$T/nolib"
tiny_root "$T/nolib"
rm "$T/nolib/usr/lib/x86_64-linux-gnu/libcurl.so.4"
tar -C "$T/nolib" -cf "$T/nolib.tar" .
cat >"$T/data/profiles/nolib.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/nolib.tar" } }
JSON
"$PMOVES_IMAGE" build nolib -o "$T/out" >"$T/nolib.log" 2>&1
rc=$?; [ $rc -ne 0 ] && grep -q "needs 'libcurl.so.4', which the image does not have (package libcurl4)" "$T/nolib.log"
ok $? "a missing runtime library of pmoves-firstboot fails the build, naming it (exit $rc)"

# An image whose glibc is older than the one pmoves-firstboot was built against: caught at build
# time. Its libc.so.6 is a small library that defines only GLIBC_2.2.5 (made here with a version
# script), standing in for an old distribution's.
mkdir -p "$T/oldc"
tiny_root "$T/oldc"
printf 'GLIBC_2.2.5 { global: *; };\n' >"$T/old.map"
printf 'int old_libc_marker(void) { return 1; }\n' >"$T/old.c"
cc -shared -fPIC -nostdlib -Wl,--version-script="$T/old.map" -Wl,-soname,libc.so.6 -o "$T/oldc/usr/lib/x86_64-linux-gnu/libc.so.6" "$T/old.c"
tar -C "$T/oldc" -cf "$T/oldc.tar" .
cat >"$T/data/profiles/oldc.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/oldc.tar" } }
JSON
"$PMOVES_IMAGE" build oldc -o "$T/out" >"$T/oldc.log" 2>&1
rc=$?; [ $rc -ne 0 ] && grep -qE "pmoves-firstboot needs GLIBC_2\.[0-9]+, but the image's glibc is 2\.2" "$T/oldc.log"
ok $? "an image with an older glibc than pmoves-firstboot needs fails the build (exit $rc)"
test ! -e "$T/out/oldc"; ok $? "... and writes no output"

# Hostile tarballs.
mkdir -p "$T/evil1"
tiny_root "$T/evil1"
echo x >"$T/escape"
tar -C "$T/evil1" -cf "$T/evil1.tar" . -P "$T/escape" --transform "s,^$T/escape,../../escape,"
cat >"$T/data/profiles/evil1.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/evil1.tar" } }
JSON
"$PMOVES_IMAGE" build evil1 -o "$T/out" >"$T/evil1.log" 2>&1
rc=$?; [ $rc -ne 0 ]; ok $? "a tarball entry outside the root fails the build (exit $rc)"
grep -q "has an entry outside its root: '../../escape'" "$T/evil1.log"; ok $? "... naming the entry"
test ! -e "$T/out/evil1"; ok $? "... and writes no output"

mkdir -p "$T/evil2" "$T/host-etc"
tiny_root "$T/evil2"
rmdir "$T/evil2/etc"
ln -s "$T/host-etc" "$T/evil2/etc"
tar -C "$T/evil2" -cf "$T/evil2.tar" .
cat >"$T/data/profiles/evil2.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/evil2.tar" } }
JSON
"$PMOVES_IMAGE" build evil2 -o "$T/out" >"$T/evil2.log" 2>&1
is "$(ls -A "$T/host-etc")" "" "an absolute /etc symlink in the rootfs does not make the builder write on the host"
# Inside the image the link dangles (the tree has no such directory), so the build stops at the
# first write there: the overlay 'common' (base-debian's) or /etc/fstab.
grep -qE "overlay 'common': cannot copy directory '/etc'|cannot write '/etc/fstab' in the image" "$T/evil2.log" &&
	test ! -e "$T/out/evil2"
ok $? "... the build stops with a message and no output"
done_testing
