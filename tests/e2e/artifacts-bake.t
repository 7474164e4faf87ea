#!/bin/bash
# "artifacts" with "bake": true: pmoves-image build downloads the artifact (HTTPS from a local
# server on 127.0.0.1 with a self-signed certificate: tests/fixtures/artifact-server.py, a
# stand-in for a vendor's download server), verifies its sha256, caches it by hash and puts it
# in the image at /var/cache/pmoves/artifacts/NAME; the profile's artifacts reach
# /etc/pmoves/firstboot.json; manifest.json lists every artifact. Then pmoves-firstboot, on a
# tree holding the image's firstboot.json and baked file, installs it with the server gone.
. "$(dirname "$0")/lib.sh"
need python3 openssl tar mke2fs mkfs.vfat mcopy debugfs sfdisk
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
FB=$BUILD/pmoves-firstboot
[ -x "$FB" ] || skip_all "'$FB' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-bake.XXXXXX)
SERVER=
stop_server() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; SERVER=; return 0; }
trap 'stop_server; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
export XDG_CACHE_HOME=$T/cache
plan 14

R=$T/root
tiny_root "$R"
tar -C "$R" -cf "$T/rootfs.tar" .

mkdir -p "$T/files"
head -c 300000 /dev/urandom >"$T/files/tool"
SHA=$(sha256sum "$T/files/tool" | cut -d' ' -f1)
OTHER=$(printf other | sha256sum | cut -d' ' -f1)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.log" 2>&1 || skip_all "openssl cannot make a certificate"
python3 "$TOP/tests/fixtures/artifact-server.py" --port-file "$T/port" --files "$T/files" --log "$T/requests" \
	--cert "$T/cert.pem" --key "$T/key.pem" 2>"$T/server.log" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
[ -n "$PORT" ] || { echo "Bail out! the artifact server did not start: $(cat "$T/server.log")"; exit 1; }

mkdir -p "$T/profiles"
profile() { # profile NAME SHA-OF-BAKED
	cat >"$T/profiles/$1.json" <<JSON
{ "extends": "base-debian", "description": "bake test",
  "rootfs": { "source": "tarball", "path": "$T/rootfs.tar" },
  "disk": { "size": "300M", "partitions": [
      { "name": "esp", "type": "esp", "size": "64M", "fs": "vfat", "mount": "/boot/efi" },
      { "name": "root", "type": "root", "size": "fill", "fs": "ext4", "mount": "/" } ] },
  "artifacts": [
    { "name": "tool", "url": "https://127.0.0.1:$PORT/ok/tool", "sha256": "$2", "kind": "binary",
      "target": "/usr/local/bin/tool", "bake": true },
    { "name": "later", "url": "https://127.0.0.1:$PORT/ok/tool", "sha256": "$SHA", "kind": "binary",
      "target": "/usr/local/bin/later" } ] }
JSON
}

profile good "$SHA"
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/good.json" -o "$T/out" >"$T/good.log" 2>&1
rc=$?; ok $rc "build with a baked artifact from an https server"
[ $rc -eq 0 ] || tail -n 20 "$T/good.log" | sed 's/^/# /'
grep -q "artifacts: 'tool': downloaded 300000 bytes, sha256 verified" "$T/good.log"; ok $? "the download is verified"
is "$(grep -c 'GET /ok/tool' "$T/requests")" 1 "only the baked artifact is downloaded at build time"
test -f "$T/cache/pmoves-image/artifacts/$SHA"; ok $? "the download is cached under its sha256"

part_copy "$T/out/good/good.img" 2 "$T/root.ext4"
debugfs -R "dump /var/cache/pmoves/artifacts/tool $T/baked" "$T/root.ext4" >/dev/null 2>&1
is "$(sha256sum <"$T/baked" | cut -d' ' -f1)" "$SHA" "the image holds /var/cache/pmoves/artifacts/tool with the pinned content"
debugfs -R "dump /etc/pmoves/firstboot.json $T/firstboot.json" "$T/root.ext4" >/dev/null 2>&1
python3 - "$T/firstboot.json" "$SHA" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
a = c["artifacts"]
assert [x["name"] for x in a] == ["tool", "later"], a
assert a[0]["sha256"] == sys.argv[2] and a[0]["bake"] is True
PY
ok $? "/etc/pmoves/firstboot.json in the image lists both artifacts"
python3 - "$T/out/good/manifest.json" "$SHA" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t = {x["name"]: x for x in m["third_party"]}
assert t["tool"]["baked"] is True and t["tool"]["sha256"] == sys.argv[2], t
assert t["tool"]["path"] == "/var/cache/pmoves/artifacts/tool", t
assert t["later"]["baked"] is False and t["later"]["url"].endswith("/ok/tool"), t
PY
ok $? "manifest.json lists every artifact: name, url, sha256, baked or not"

# First boot with the network off: the baked one installs, the other is pending.
stop_server
F=$T/fb/root
mkdir -p "$F/etc/pmoves" "$F/var/cache/pmoves/artifacts"
python3 - "$T/firstboot.json" "$F/etc/pmoves/firstboot.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["steps"] = {s: {"enabled": False} for s in ("growfs", "ssh", "efiboot")}
c["artifacts"][1]["attempts"] = 1
json.dump(c, open(sys.argv[2], "w"))
PY
cp "$T/baked" "$F/var/cache/pmoves/artifacts/tool"
printf '#!/bin/sh\n# stand-in runner: records argv, exits 0\necho "$*" >>%s/calls\nexit 0\n' "$T/fb" >"$T/fb/stand-in"
chmod +x "$T/fb/stand-in"
PMOVES_FIRSTBOOT_RUNNER=$T/fb/stand-in "$FB" run --root "$F" >"$T/fb/out" 2>&1
grep -q "step=artifacts state=pending artifact 'later': cannot download" "$T/fb/out"; ok $? "first boot without network: the artifact not baked is pending"
grep -q "1 installed, 1 pending, 0 failed" "$T/fb/out"; ok $? "... and the baked one is installed"
cmp -s "$F/usr/local/bin/tool" "$T/files/tool" && [ "$(stat -c %a "$F/usr/local/bin/tool")" = 755 ]
ok $? "/usr/local/bin/tool is the baked file, mode 0755"
test ! -e "$F/usr/local/bin/later"; ok $? "nothing installed for the pending one"

# A wrong pin for a baked artifact fails the build, naming both hashes.
python3 "$TOP/tests/fixtures/artifact-server.py" --port-file "$T/port2" --files "$T/files" --log "$T/requests" \
	--cert "$T/cert.pem" --key "$T/key.pem" 2>"$T/server.log" &
SERVER=$!
for _ in $(seq 100); do [ -s "$T/port2" ] && break; sleep 0.1; done
PORT=$(cat "$T/port2")
profile wrong "$OTHER"
SSL_CERT_FILE=$T/cert.pem "$PMOVES_IMAGE" build "$T/profiles/wrong.json" -o "$T/out" >"$T/wrong.log" 2>&1
rc=$?; [ $rc -ne 0 ]; ok $? "a wrong sha256 for a baked artifact fails the build (exit $rc)"
grep -q "artifact 'tool': 'https://127.0.0.1:$PORT/ok/tool' has sha256 $SHA, but $OTHER is pinned" "$T/wrong.log"
ok $? "the message names the artifact and both hashes"
test ! -e "$T/out/wrong" && test ! -e "$T/cache/pmoves-image/artifacts/$OTHER"; ok $? "no output and nothing cached for a mismatch"
done_testing
