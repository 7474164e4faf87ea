#!/bin/bash
# The rootfs cache: mmdebstrap writes its tarball by name, so that name must be one nobody else
# can plant or predict. mmdebstrap here is a stand-in (a script on PATH that records where it
# was told to write); no Debian mirror, no QEMU.
. "$(dirname "$0")/lib.sh"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-cache.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 6
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
done_testing
