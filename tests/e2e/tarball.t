#!/bin/bash
# "source": "tarball" from an https URL pinned by sha256, against a local TLS server
# (openssl s_server -WWW on 127.0.0.1) serving a small tarball the test makes.
. "$(dirname "$0")/lib.sh"
need openssl tar mke2fs mkfs.vfat mcopy
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-tarball.XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache
plan 14

# A tiny root filesystem: enough for every stage (a kernel file, systemd-boot's EFI binary).
R=$T/root
tiny_root "$R"
mkdir -p "$T/www"
tar -C "$R" -cf "$T/www/rootfs.tar" .
SHA=$(sha256sum "$T/www/rootfs.tar" | cut -d' ' -f1)

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
PORT=$((20000 + $$ % 20000))
(cd "$T/www" && exec openssl s_server -accept 127.0.0.1:$PORT -cert "$T/cert.pem" -key "$T/key.pem" -WWW -quiet) \
	>"$T/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

mkdir -p "$T/profiles"
profile() { # profile NAME URL SHA
	cat >"$T/profiles/$1.json" <<JSON
{ "extends": "base-debian", "description": "tarball test",
  "rootfs": { "source": "tarball", "url": "$2", "sha256": "$3" } }
JSON
}
URL=https://127.0.0.1:$PORT/rootfs.tar

profile good "$URL" "$SHA"
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/good.json" -o "$T/out" >"$T/good.log" 2>&1
rc=$?; ok $rc "build from an https tarball"
[ $rc -eq 0 ] || tail -n 20 "$T/good.log" | sed 's/^/# /'
grep -q 'sha256 verified' "$T/good.log"; ok $? "the download is checked against the pinned sha256"
test -f "$T/cache/pmoves-image/download-$SHA.tar"; ok $? "the download is cached under its sha256"
grep -q "\"sha256\": \"$SHA\"" "$T/out/good/manifest.json"; ok $? "the manifest records the tarball's sha256"
OFF=$(part_offset "$T/out/good/good.img" 1)
dd if="$T/out/good/good.img" of="$T/esp.fat" bs=1M skip=$((OFF / 1048576)) count=256 conv=sparse status=none
is "$(mtype -i "$T/esp.fat" ::/pmoves/9.9.9-test/linux 2>/dev/null)" kernel "the tarball's kernel is on the ESP"

kill $SERVER; wait $SERVER 2>/dev/null; SERVER=
"$PMOVES_IMAGE" build "$T/profiles/good.json" -o "$T/out" >"$T/again.log" 2>&1
ok $? "a second build uses the cached download (the server is gone)"
grep -q 'using the cached download' "$T/again.log"; ok $? "... and says so"

(cd "$T/www" && exec openssl s_server -accept 127.0.0.1:$PORT -cert "$T/cert.pem" -key "$T/key.pem" -WWW -quiet) \
	>"$T/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

WRONG=0000000000000000000000000000000000000000000000000000000000000000
profile wrong "$URL" "$WRONG"
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/wrong.json" -o "$T/out" >"$T/wrong.log" 2>&1
rc=$?; [ $rc -ne 0 ]; ok $? "a checksum mismatch fails the build (exit $rc)"
grep -q "has sha256 $SHA, but $WRONG is pinned" "$T/wrong.log"; ok $? "the message gives both hashes"
! ls "$T/cache/pmoves-image/" | grep -q "$WRONG"; ok $? "nothing is cached for a mismatch"
test ! -e "$T/out/wrong"; ok $? "no output for a mismatch"

profile untrusted "$URL" "$SHA"
"$PMOVES_IMAGE" build "$T/profiles/untrusted.json" -o "$T/out" --refresh >"$T/untrusted.log" 2>&1
rc=$?; [ $rc -ne 0 ]; ok $? "a server certificate nobody trusts is refused (exit $rc)"
grep -q "cannot download '$URL'" "$T/untrusted.log"; ok $? "... with a message naming the URL"

profile missing "https://127.0.0.1:$PORT/nope.tar" "$SHA"
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/missing.json" -o "$T/out" --refresh >"$T/missing.log" 2>&1
# (openssl s_server -WWW answers a missing file with an error text, not a 404 status.)
rc=$?; [ $rc -ne 0 ] && grep -qE "cannot download|has sha256 [0-9a-f]{64}, but" "$T/missing.log"
ok $? "a missing file on the server fails the build"
done_testing
