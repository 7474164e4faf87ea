#!/bin/bash
# Temporary names: nothing the builder writes by a name another user could plant or predict, and
# the sweep of a killed build's leftovers removes only the builder's own directories. The rootfs
# cache: mmdebstrap writes its tarball by name, here a stand-in (a script on PATH that records
# where it was told to write). The staging directory: a build from a small local tarball. No
# Debian mirror, no QEMU.
. "$(dirname "$0")/lib.sh"
need tar mke2fs mkfs.vfat mcopy
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-temps.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 11
mkdir -p "$T/bin" "$T/cache"
cat >"$T/bin/mmdebstrap" <<'SH'
#!/bin/sh
# stand-in for mmdebstrap: records its target (the argument after the suite) and its directory's
# mode and owner, writes a token tarball there, and exits with $STANDIN_RC
for a; do case $a in --*) ;; *) set -- "$@" "$a" ;; esac; shift; done
target=$2
echo "$target" >"$STANDIN_LOG"
stat -c '%a %u' "$(dirname "$target")" >>"$STANDIN_LOG"
echo token >"$target"
exit "$STANDIN_RC"
SH
chmod +x "$T/bin/mmdebstrap"
export PATH="$T/bin:$PATH" XDG_CACHE_HOME="$T/cache" STANDIN_LOG="$T/argv"

STANDIN_RC=1 "$PMOVES_IMAGE" build base-debian -o "$T/out" >"$T/fail.log" 2>&1
ok $((! $?)) "mmdebstrap (stand-in) failing fails the build"
target=$(sed -n 1p "$T/argv")
dir=$(dirname "$target")
[ -n "$target" ] && [ "$dir" != "$T/cache/pmoves-image" ]; ok $? "its target is not a name in the cache directory itself ($target)"
is "$(sed -n 2p "$T/argv")" "700 $(id -u)" "... but in a directory only the builder can enter"
[ -z "$(ls -A "$T/cache/pmoves-image")" ]; ok $? "the failed run leaves nothing in the cache"
ls -A "$T/cache/pmoves-image" | sed 's/^/# /'

STANDIN_RC=0 "$PMOVES_IMAGE" build base-debian -o "$T/out" >"$T/ok.log" 2>&1
is "$(cat "$T"/cache/pmoves-image/*.tar 2>/dev/null)" "token" "a successful run moves the tarball into the cache"
is "$(find "$T/cache/pmoves-image" -name '.tmp-*' | wc -l)" "0" "... and leaves no temp directory"

# Leftovers in the work directory, named as a killed build (PID gone) leaves them: ours is
# removed; another user's directory and a symlink with such names are not, nor what it points to.
unset XDG_CACHE_HOME
mkdir -p "$T/data/profiles" "$T/wd" "$T/victim"
cp "$TOP/profiles/base-debian.json" "$T/data/profiles/"
cp -R "$TOP/overlays" "$T/data/"
tiny_root "$T/root"
tar -C "$T/root" -cf "$T/root.tar" .
cat >"$T/data/profiles/tiny.json" <<JSON
{ "extends": "base-debian", "rootfs": { "source": "tarball", "path": "$T/root.tar" } }
JSON
dead=$(sh -c 'echo $$')
mkdir "$T/wd/pmoves-image-tiny-$dead-AbCdEf" "$T/wd/pmoves-image-tiny-$dead-GhIjKl"
chown 65534 "$T/wd/pmoves-image-tiny-$dead-GhIjKl"
touch "$T/victim/keep"
ln -s "$T/victim" "$T/wd/pmoves-image-tiny-$dead-MnOpQr"
PMOVES_DATADIR=$T/data PMOVES_WORKDIR=$T/wd "$PMOVES_IMAGE" build tiny -o "$T/out2" >"$T/tiny.log" 2>&1
grep -q "^tree: staging in '$T/wd/pmoves-image-tiny-[0-9]*-[A-Za-z0-9]\{6\}' " "$T/tiny.log"
ok $? "the staging directory's name ends in a random suffix"
test ! -e "$T/wd/pmoves-image-tiny-$dead-AbCdEf"; ok $? "a killed build's staging directory (ours) is removed"
test -d "$T/wd/pmoves-image-tiny-$dead-GhIjKl"; ok $? "another user's directory of that name is not"
test -L "$T/wd/pmoves-image-tiny-$dead-MnOpQr" && test -e "$T/victim/keep"; ok $? "nor a symlink of that name, nor what it points to"
ls -A "$T/out2" | grep -Eq '^\.tmp-tiny-[0-9]+-[A-Za-z0-9]{6}$'; ok $((! $?)) "no build directory left in the output directory"
done_testing
