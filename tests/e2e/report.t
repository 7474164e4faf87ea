#!/bin/bash
# pmoves-firstboot's report_url: status.json POSTed over HTTPS (libcurl) with retries, against a
# local HTTPS server on 127.0.0.1 (tests/fixtures/https-server.py, a self-signed certificate
# for IP 127.0.0.1 given to the program with SSL_CERT_FILE). `run --root` on small fixture
# trees, external commands going to a stand-in that records its argv and exits 0.
. "$(dirname "$0")/lib.sh"
need python3 openssl
FB=$BUILD/pmoves-firstboot
[ -x "$FB" ] || skip_all "'$FB' is not built"
[ "$(id -u)" = 0 ] || skip_all "the users and files steps chown: needs root"
SERVER=$TOP/tests/fixtures/https-server.py

T=$(mktemp -d /tmp/pmoves-e2e-report.XXXXXX)
SERVER_PID=
stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=
	fi
	return 0
}
trap 'stop_server; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
plan 40

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/key.pem" -out "$T/cert.pem" >"$T/openssl.log" 2>&1 || skip_all "openssl cannot make a certificate"

# Secrets of the config: a user's password hash and a secret file's content.
HASH=$(openssl passwd -6 -salt rptsalt4242 'clear-pw')
SECRET='REPORT-SECRET-7f3a91'

printf '#!/bin/sh\n# stand-in for systemctl and the other commands: records argv, exits 0\necho "$*" >>%s/calls\nexit 0\n' "$T" >"$T/stand-in"
chmod +x "$T/stand-in"

# start_server NAME ARGS...: an HTTPS server recording into $T/NAME/req; sets PORT.
start_server() {
	local name=$1 i
	shift
	mkdir -p "$T/$name/req"
	python3 "$SERVER" --port-file "$T/$name/port" --dir "$T/$name/req" \
		--cert "$T/cert.pem" --key "$T/key.pem" "$@" 2>"$T/$name/server.log" &
	SERVER_PID=$!
	for i in $(seq 100); do
		[ -s "$T/$name/port" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	PORT=$(cat "$T/$name/port" 2>/dev/null)
	[ -n "$PORT" ] || { echo "Bail out! the HTTPS server did not start: $(cat "$T/$name/server.log")"; exit 1; }
}

# run_fb NAME URL [degraded] [ENV...]: a fresh tree $T/NAME/root whose firstboot.json has
# hostname, a user with a password hash, a secret file and, when URL is not empty, report_url.
# "degraded": an optional files step that fails (an owner the tree does not have). EXTRA, when
# set, is more of the config ('"key": value, ...').
# Leaves $T/NAME/{out,err,rc,seconds}.
run_fb() {
	local name=$1 url=$2 kind=${3:-ok} root start
	shift 3 2>/dev/null || shift $#
	root=$T/$name/root
	mkdir -p "$root/etc/pmoves"
	printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	local owner='' steps='"ssh": {"enabled": false}'
	if [ "$kind" = degraded ]; then
		owner=', "owner": "ghost:ghost"'
		steps="$steps"', "files": {"required": false}'
	fi
	cat >"$root/etc/pmoves/firstboot.json" <<JSON
{ "hostname": "report-test",
  "users": [{ "name": "ops", "password_hash": "$HASH", "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReport ops@test"] }],
  "files": [{ "path": "/etc/app/token", "content": "$SECRET", "secret": true$owner }],
  "steps": { $steps }${EXTRA:+, $EXTRA}${url:+,
  \"report_url\": \"$url\"} }
JSON
	start=$(date +%s.%N)
	env -u CURL_CA_BUNDLE -u https_proxy -u HTTPS_PROXY -u all_proxy -u ALL_PROXY SSL_CERT_FILE="$T/cert.pem" PMOVES_FIRSTBOOT_RUNNER="$T/stand-in" "$@" \
		"$FB" run --root "$root" >"$T/$name/out" 2>"$T/$name/err"
	echo $? >"$T/$name/rc"
	awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$T/$name/seconds"
}
nreq() { find "$T/$1/req" -name '*.body' | wc -l; }
same_json() { python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$1" "$2"; }
WARN="cannot send the report to 'report_url', ignoring"

# The runs without report_url: the exit status the others must keep.
run_fb base ''
run_fb base-degraded '' degraded
is "$(cat "$T/base/rc")" 0 "without report_url: the run exits 0"
is "$(cat "$T/base-degraded/rc")" 1 "without report_url: the degraded run exits 1"

# 1. A server answering 200 gets one POST of status.json.
start_server ok
URL="https://127.0.0.1:$PORT/fleet/report?machine=t1"
run_fb ok "$URL"
stop_server
is "$(cat "$T/ok/rc")" 0 "200: the run exits 0"
grep -qE '^pmoves-firstboot: done status=ok ' "$T/ok/out"; ok $? "200: done status=ok"
is "$(nreq ok)" 1 "200: the server got one request"
is "$(cat "$T/ok/req/1.method" 2>/dev/null)" POST "200: it is a POST"
is "$(cat "$T/ok/req/1.path" 2>/dev/null)" "/fleet/report?machine=t1" "200: to the configured path and query"
is "$(cat "$T/ok/req/1.type" 2>/dev/null)" application/json "200: Content-Type: application/json"
STATUS=$T/ok/root/var/lib/pmoves/firstboot/status.json
same_json "$T/ok/req/1.body" "$STATUS" 2>"$T/ok/json.err"
rc=$?
ok $rc "200: the body parses and equals the status.json written under the tree"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/ok/json.err"
python3 - "$T/ok/req/1.body" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = {x["name"]: x["state"] for x in s["steps"]}
sys.exit(not (s["status"] == "ok" and s.get("finished") and
              st.get("hostname") == st.get("users") == st.get("files") == "ok"))
PY
ok $? "200: the posted status is final: status ok, finished set, hostname/users/files ok"
[ -s "$T/ok/err" ]; ok $((!$?)) "200: nothing on stderr"
[ -s "$T/ok/err" ] && sed 's/^/# /' "$T/ok/err"

# 2. 500 twice, then 200: three requests, 1 s and 2 s apart, and the run ends ok.
start_server retry --fail 2
run_fb retry "https://127.0.0.1:$PORT/r"
stop_server
is "$(nreq retry)" 3 "500, 500, 200: three requests"
is "$(cat "$T/retry/rc")" 0 "500, 500, 200: the run exits 0"
grep -qE '^pmoves-firstboot: done status=ok ' "$T/retry/out"; ok $? "500, 500, 200: done status=ok"
cmp -s "$T/retry/req/1.body" "$T/retry/req/3.body" && cmp -s "$T/retry/req/2.body" "$T/retry/req/3.body"
ok $? "500, 500, 200: the same body each time"
same_json "$T/retry/req/3.body" "$T/retry/root/var/lib/pmoves/firstboot/status.json" 2>/dev/null
ok $? "500, 500, 200: the body equals status.json"
grep -qF "$WARN" "$T/retry/err"; ok $((!$?)) "500, 500, 200: no warning"
awk -v s="$(cat "$T/retry/seconds")" 'BEGIN { exit !(s >= 2.5) }'
ok $? "500, 500, 200: the retries wait (1 s + 2 s; took $(cat "$T/retry/seconds") s)"

# 3. 500 every time: three tries, no more, a warning, the exit status unchanged.
start_server fail --fail 1000
run_fb fail "https://127.0.0.1:$PORT/r"
stop_server
is "$(nreq fail)" 3 "always 500: three tries, no more"
grep -qF "$WARN" "$T/fail/err"; ok $? "always 500: a warning on stderr"
is "$(cat "$T/fail/rc")" "$(cat "$T/base/rc")" "always 500: exit status as without report_url"

# 4. A closed port: a warning, the exit status unchanged, ok and degraded alike.
start_server closed --closed
run_fb closed "https://127.0.0.1:$PORT/r"
run_fb closed-degraded "https://127.0.0.1:$PORT/r" degraded
stop_server
grep -qF "$WARN" "$T/closed/err"; rc=$?
ok $rc "closed port: a warning on stderr"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/closed/err"
is "$(cat "$T/closed/rc")" "$(cat "$T/base/rc")" "closed port: exit status as without report_url (ok run)"
grep -qE '^pmoves-firstboot: done status=ok ' "$T/closed/out"; ok $? "closed port: done status=ok"
is "$(cat "$T/closed-degraded/rc")" "$(cat "$T/base-degraded/rc")" "closed port: exit status as without report_url (degraded run)"
grep -qF "$WARN" "$T/closed-degraded/err"; ok $? "closed port, degraded run: a warning on stderr"

# 5. A degraded run is reported too.
start_server degraded
run_fb degraded "https://127.0.0.1:$PORT/r" degraded
stop_server
is "$(cat "$T/degraded/rc")" 1 "degraded: the run exits 1, as without report_url"
is "$(nreq degraded)" 1 "degraded: the server got the report"
grep -q '"status": *"degraded"' "$T/degraded/req/1.body" 2>/dev/null; ok $? "degraded: the posted status says degraded"

# 6. The certificate is verified: without SSL_CERT_FILE the self-signed server is not trusted.
start_server untrusted
run_fb untrusted "https://127.0.0.1:$PORT/r" ok env -u SSL_CERT_FILE
stop_server
is "$(nreq untrusted)" 0 "untrusted certificate: no request reaches the server"
grep -qF "$WARN" "$T/untrusted/err"; ok $? "untrusted certificate: a warning on stderr"
is "$(cat "$T/untrusted/rc")" 0 "untrusted certificate: the run still exits 0"

# 7. URLs with user:password and a token: report_url's, and an artifact's whose download fails
# (nothing listens on port 1: its step ends pending with a message naming the URL). The body
# posted, the outputs and status.json name neither password nor token.
start_server creds
EXTRA='"artifacts": [{ "name": "a", "url": "https://alice:hunter2pw@127.0.0.1:1/a.bin?token=TOKSECRET1",
  "sha256": "0000000000000000000000000000000000000000000000000000000000000001", "kind": "binary",
  "target": "/usr/local/bin/a", "attempts": 1 }]' \
	run_fb creds "https://alice:hunter2pw@127.0.0.1:$PORT/r?token=TOKSECRET1"
stop_server
is "$(nreq creds)" 1 "URLs with credentials: the server got the report"
grep -q '"name": *"artifacts", *"state": *"pending"' "$T/creds/req/1.body" 2>/dev/null ||
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not any(x["name"]=="artifacts" and x["state"]=="pending" for x in s["steps"]))' "$T/creds/req/1.body"
ok $? "URLs with credentials: the posted status has the artifact pending"
grep -qF "https://127.0.0.1:1/a.bin" "$T/creds/req/1.body"; ok $? "URLs with credentials: the posted message names the artifact's URL without them"
leaks=$(grep -rlaF -e hunter2pw -e TOKSECRET1 -e alice: "$T/creds/req"/*.body "$T/creds/out" "$T/creds/err" "$T/creds/root/var/lib/pmoves" 2>/dev/null)
is "$leaks" "" "URLs with credentials: no password or token in the posted body, the outputs, status.json or state.json"

# 8. Secrets: they were applied (so the search means something), and appear in no posted
# body, no output of any run, no status.json.
grep -qF "ops:$HASH:" "$T/ok/root/etc/shadow" 2>/dev/null; ok $? "the password hash is in the tree's /etc/shadow"
is "$(cat "$T/ok/root/etc/app/token" 2>/dev/null)" "$SECRET" "the secret file is in the tree"
leaks=$(grep -rlaF -e "$HASH" -e "$SECRET" -e rptsalt4242 "$T"/*/req "$T"/*/out "$T"/*/err "$T"/*/server.log \
	"$T"/*/root/var/lib/pmoves 2>/dev/null)
is "$leaks" "" "no secret in any posted body, any output, any status or state file"
[ "$(find "$T"/*/req -name '*.body' | wc -l)" -ge 8 ]; ok $? "the secret search covered the posted bodies ($(find "$T"/*/req -name '*.body' | wc -l))"
done_testing
