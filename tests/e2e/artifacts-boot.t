#!/bin/bash
# Baked artifacts on a real first boot: base-debian with three artifacts baked at build time
# from a local HTTPS server (tests/fixtures/artifact-server.py: a stand-in for vendors'
# servers) -- a real .deb made here with dpkg-deb (a stand-in package, installed by the
# guest's real dpkg), a tarball and a binary -- and one not baked whose URL cannot be reached.
# The guest has no network out (restrict=on): the baked ones install, the other is pending,
# the boot goes on.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap python3 openssl dpkg-deb debugfs e2fsck
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-artifacts-boot.XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
plan 10

# The stand-in artifacts.
mkdir -p "$T/files" "$T/deb/DEBIAN" "$T/deb/usr/bin" "$T/tar/bin"
cat >"$T/deb/DEBIAN/control" <<EOF
Package: pmoves-stand-in-hello
Version: 1.0
Architecture: all
Maintainer: pmoves tests <tests@example.org>
Description: stand-in package for the artifacts test (not a real vendor package)
EOF
printf '#!/bin/sh\necho hello from a deb\n' >"$T/deb/usr/bin/pmoves-stand-in-hello"
chmod 755 "$T/deb/usr/bin/pmoves-stand-in-hello"
dpkg-deb --root-owner-group -b "$T/deb" "$T/files/hello.deb" >/dev/null || skip_all "dpkg-deb cannot build the stand-in package"
printf '#!/bin/sh\necho hello from a tarball\n' >"$T/tar/bin/hello"
chmod 755 "$T/tar/bin/hello"
tar -C "$T/tar" -czf "$T/files/hello.tar.gz" bin
head -c 200000 /dev/urandom >"$T/files/tool"
sha() { sha256sum "$1" | cut -d' ' -f1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.log" 2>&1 || skip_all "openssl cannot make a certificate"
python3 "$TOP/tests/fixtures/artifact-server.py" --port-file "$T/port" --files "$T/files" --log "$T/requests" \
	--cert "$T/cert.pem" --key "$T/key.pem" 2>"$T/server.log" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
[ -n "$PORT" ] || { echo "Bail out! the artifact server did not start: $(cat "$T/server.log")"; exit 1; }
U=https://127.0.0.1:$PORT/ok

mkdir -p "$T/profiles"
cat >"$T/profiles/art.json" <<JSON
{ "extends": "base-debian", "description": "artifacts boot test",
  "firstboot": { "hostname": "art-test" },
  "artifacts": [
    { "name": "hello.deb", "url": "$U/hello.deb", "sha256": "$(sha "$T/files/hello.deb")", "kind": "deb", "bake": true },
    { "name": "hello.tar.gz", "url": "$U/hello.tar.gz", "sha256": "$(sha "$T/files/hello.tar.gz")", "kind": "tar",
      "target": "/opt/hello", "bake": true },
    { "name": "tool", "url": "$U/tool", "sha256": "$(sha "$T/files/tool")", "kind": "binary",
      "target": "/usr/local/bin/tool", "bake": true },
    { "name": "later", "url": "https://127.0.0.1:1/later", "sha256": "$(sha "$T/files/tool")", "kind": "binary",
      "target": "/usr/local/bin/later", "attempts": 1 } ] }
JSON
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/art.json" -o "$T/out" >"$T/build.log" 2>&1
rc=$?; ok $rc "build base-debian with three baked artifacts"
[ $rc -eq 0 ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; exit 1; }
kill "$SERVER"; wait "$SERVER" 2>/dev/null; SERVER=

IMG=$T/out/art/art.img
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r'; }
"$PMOVES_IMAGE" run "$IMG" --persist --expect 'pmoves-firstboot: done status=' --timeout 400 \
	--log "$T/boot.log" >/dev/null 2>"$T/run.err"
ok $? "the first boot provisions without network"
clean "$T/boot.log" >"$T/boot.txt"
grep -aE '^pmoves-firstboot: (step=artifacts|done)' "$T/boot.txt" | sed 's/^/# /'
grep -aq "^pmoves-firstboot: step=artifacts state=pending artifact 'later': cannot download" "$T/boot.txt"
ok $? "console: the artifact not baked is pending (no network)"
grep -aq "(3 installed, 1 pending, 0 failed)" "$T/boot.txt"; ok $? "console: the three baked ones are installed"
grep -aqE '^pmoves-firstboot: done status=degraded' "$T/boot.txt"; ok $? "console: the run ends degraded, not failed"

part_copy "$IMG" 2 "$T/root.ext4"
e2fsck -fy "$T/root.ext4" >/dev/null 2>&1
R=$T/root.ext4
is "$(debugfs -R 'cat /usr/bin/pmoves-stand-in-hello' "$R" 2>/dev/null)" "$(cat "$T/deb/usr/bin/pmoves-stand-in-hello")" \
	"deb: the guest's dpkg installed the stand-in package's file"
debugfs -R 'cat /var/lib/dpkg/status' "$R" 2>/dev/null | grep -A1 '^Package: pmoves-stand-in-hello' | grep -q 'install ok installed'
ok $? "deb: dpkg's status has the package installed"
is "$(debugfs -R 'cat /opt/hello/bin/hello' "$R" 2>/dev/null)" "$(cat "$T/tar/bin/hello")" "tar: extracted into /opt/hello"
debugfs -R 'dump /usr/local/bin/tool '"$T/tool.out" "$R" >/dev/null 2>&1
cmp -s "$T/tool.out" "$T/files/tool"; ok $? "binary: /usr/local/bin/tool is the baked file"
debugfs -R 'stat /usr/local/bin/tool' "$R" 2>/dev/null | grep -q 'Mode:  0755'; ok $? "binary: mode 0755"
done_testing
