#!/bin/bash
# pmoves-image serve, with the real curl: a bundle directory on 127.0.0.1 (port 0, the port read
# from the stdout line), whole files and ranges byte for byte, HEAD, traversal and symlinks out
# refused, 405, the log, concurrent downloads past an idle client, the connection cap (503),
# timeouts (--timeout 2), start-up errors, SIGTERM; then HTTPS with a self-signed certificate;
# then a short session under valgrind. Only 127.0.0.1 is ever contacted (curl --noproxy).
. "$(dirname "$0")/lib.sh"
need curl openssl sha256sum timeout
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-serve.XXXXXX)
PIDS=
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 71

c() { curl --noproxy '*' -s --max-time 30 "$@"; }
code() { c -o /dev/null -w '%{http_code}' "$@"; }
sha() { sha256sum | cut -d' ' -f1; }

# start NAME ARGS...: `serve ARGS` in the background, stdout and stderr in $T/NAME.out and
# .err; PID and PORT set once it has printed its line. 1 when it exits or is silent for 10 s.
start() {
	local name=$1 i
	shift
	rm -f "$T/$name.out" "$T/$name.err"
	"$PMOVES_IMAGE" serve "$@" >"$T/$name.out" 2>"$T/$name.err" &
	PID=$!
	PIDS="$PIDS $PID"
	PORT=
	for i in $(seq 100); do
		PORT=$(sed -n 's|^serving .* on https\{0,1\}://127\.0\.0\.1:\([0-9][0-9]*\)/$|\1|p' "$T/$name.out" 2>/dev/null)
		[ -n "$PORT" ] && return 0
		kill -0 "$PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# stop: SIGTERM, and the exit status
stop() {
	kill -TERM "$PID"
	wait "$PID"
}

D=$T/bundle
mkdir -p "$D/sub" "$D/dir with space"
head -c 5000000 /dev/urandom >"$D/root.squashfs"
printf '#!ipxe\nkernel vmlinuz\nboot\n' >"$D/boot.ipxe"
echo in-sub >"$D/dir with space/f.txt"
echo secret-outside-the-bundle >"$T/secret"
ln -s ../secret "$D/leak"
ln -s "$T/secret" "$D/leak-abs"
ln -s .. "$D/up"
ln -s boot.ipxe "$D/alias.ipxe"
truncate -s 64M "$D/zeros.img"
WANT=$(sha <"$D/root.squashfs")

start main "$D" --listen 127.0.0.1:0
ok $? "serve starts on 127.0.0.1:0 and prints its line (port $PORT)"
[ -n "$PORT" ] || { diag "$(cat "$T/main.err")"; done_testing; }
U=http://127.0.0.1:$PORT
is "$(cat "$T/main.out")" "serving $D on $U/" "the stdout line: the directory and the real port"

# whole files
is "$(c "$U/root.squashfs" | sha)" "$WANT" "GET of a 5 MB random file: the same SHA-256"
c -D "$T/h" -o /dev/null "$U/root.squashfs"
grep -q $'^Content-Length: 5000000\r$' "$T/h" && grep -q $'^Accept-Ranges: bytes\r$' "$T/h" &&
	grep -q '^Last-Modified: [A-Z][a-z][a-z], [0-9][0-9] [A-Z][a-z][a-z] 20[0-9][0-9] [0-9:]* GMT' "$T/h"
ok $? "its headers: Content-Length, Accept-Ranges: bytes, Last-Modified"
c -I -o /dev/null -D "$T/h" -w '%{http_code} %{size_download}' "$U/root.squashfs" >"$T/w"
is "$(cat "$T/w")" "200 0" "HEAD: 200 without a body"
grep -q $'^Content-Length: 5000000\r$' "$T/h"
ok $? "HEAD: the file's Content-Length"
is "$(c -D "$T/h" "$U/boot.ipxe")" "$(printf '#!ipxe\nset pmoves-base %s/\nkernel vmlinuz\nboot' "$U")" \
	"GET of boot.ipxe: 'set pmoves-base' to the address asked at, after its first line"
grep -qi $'^Content-Type: text/plain' "$T/h"
ok $? "... as text/plain"
is "$(c "$U/dir%20with%20space/f.txt")" "in-sub" "a percent-encoded path in a subdirectory"
is "$(c -H 'Host: 10.0.2.2:8080' "$U/boot.ipxe" | sed -n 2p)" "set pmoves-base http://10.0.2.2:8080/" \
	"boot.ipxe: the base is the Host the machine sent"
is "$(c -H 'Host: x${y}' "$U/boot.ipxe")" "$(cat "$D/boot.ipxe")" "boot.ipxe: a Host that is not a plain name or address is not put in the script"
is "$(c "$U/alias.ipxe?mac=52:54:00:12:34:56")" "$(cat "$D/boot.ipxe")" "a symlink inside the directory, query ignored"

# ranges
is "$(c -r 0-99 -w '%{http_code}' -o "$T/r" "$U/root.squashfs")" 206 "Range bytes=0-99: 206"
head -c 100 "$D/root.squashfs" | cmp -s - "$T/r"
ok $? "... the first 100 bytes"
c -r 1000000-1999999 -D "$T/h" -o "$T/r" "$U/root.squashfs"
tail -c +1000001 "$D/root.squashfs" | head -c 1000000 | cmp -s - "$T/r" &&
	grep -q $'^Content-Range: bytes 1000000-1999999/5000000\r$' "$T/h" && grep -q $'^Content-Length: 1000000\r$' "$T/h"
ok $? "Range bytes=1000000-1999999: those bytes, Content-Range and Content-Length"
c -r 4999900- -o "$T/r" "$U/root.squashfs"
tail -c 100 "$D/root.squashfs" | cmp -s - "$T/r"
ok $? "Range bytes=4999900-: the last 100 bytes"
c -H 'Range: bytes=-300' -o "$T/r" "$U/root.squashfs"
tail -c 300 "$D/root.squashfs" | cmp -s - "$T/r"
ok $? "Range bytes=-300: the last 300 bytes"
c -r 4999000-9999999 -o "$T/r" "$U/root.squashfs"
tail -c 1000 "$D/root.squashfs" | cmp -s - "$T/r"
ok $? "Range past the end: up to the end"
is "$(c -r 5000000- -D "$T/h" -o /dev/null -w '%{http_code}' "$U/root.squashfs")" 416 "Range bytes=5000000-: 416"
grep -q $'^Content-Range: bytes \*/5000000\r$' "$T/h"
ok $? "... with Content-Range: bytes */5000000"
is "$(code -H 'Range: bytes=-0' "$U/root.squashfs")" 416 "Range bytes=-0: 416"
is "$(code -H 'Range: bytes=99999999999999999999-' "$U/root.squashfs")" 416 "Range past 64 bits: 416"
is "$(c -r 0-1,5-6 -w '%{http_code} %{size_download}' -o /dev/null "$U/root.squashfs")" "200 5000000" \
	"two ranges: ignored, the whole file"
is "$(c -H 'Range: bytes=9-5' -w '%{http_code} %{size_download}' -o /dev/null "$U/root.squashfs")" "200 5000000" \
	"Range bytes=9-5 (invalid): ignored, the whole file"

# nothing outside the directory, no directories
n=0 leaked=0
for p in /../secret /%2e%2e/secret /sub/../../secret /%2E%2E%2Fsecret /leak /leak-abs /up/secret \
	"/up/$(basename "$T")/secret" //etc/passwd /%00 /sub/ /sub / /no-such; do
	got=$(c --path-as-is -w ' %{http_code}' "$U$p")
	case $got in *secret-outside* | *root:*) leaked=$((leaked + 1)) ;; esac
	case $got in *\ 400 | *\ 404) n=$((n + 1)) ;; *) diag "$p: $got" ;; esac
done
is "$n $leaked" "14 0" "traversal, symlinks out, NUL, directories: 400 or 404 each, the secret never sent"
is "$(code --path-as-is "$U/../secret")" 400 "'..' in the path: 400"
is "$(code "$U/leak")" 404 "a symlink to a file beside the directory: 404"

# methods
c -X POST -d x -D "$T/h" -o /dev/null "$U/boot.ipxe"
head -n 1 "$T/h" | grep -q '^HTTP/1.1 405 ' && grep -q $'^Allow: GET, HEAD\r$' "$T/h"
ok $? "POST: 405 with Allow: GET, HEAD"

# the log
grep -q '^serve: 127\.0\.0\.1 "GET /root\.squashfs" 200 5000000 [0-9]*\.[0-9][0-9][0-9]$' "$T/main.err"
ok $? "a line a request on stderr: client, method and path, status, bytes, seconds"
grep -q '^serve: 127\.0\.0\.1 "POST /boot\.ipxe" 405 ' "$T/main.err"
ok $? "... a 405 too"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /\033[2J\001 HTTP/1.1\r\nHost: x\r\n\r\n' >&3
reply=$(timeout 10 cat <&3)
exec 3<&-
case $reply in "HTTP/1.1 400 "*) r=0 ;; *) r=1 ;; esac
ok $r "a request with control bytes: 400"
sleep 0.2
grep -qF 'serve: 127.0.0.1 "GET /\x1b[2J\x01 HTTP/1.1" 400 ' "$T/main.err" && ! grep -q $'\033' "$T/main.err"
ok $? "... logged with the control bytes escaped"
long=$(printf 'a%.0s' $(seq 500))
code "$U/$long" >/dev/null
grep -q "^serve: 127\.0\.0\.1 \"GET /a\{199\}\.\.\.\" 404 " "$T/main.err"
ok $? "a 501-byte path is logged cut at 200 bytes"

# concurrency: an idle client, a stalled one (64 MiB asked for and not read: its thread blocks
# in sendfile once the socket buffers are full), and two downloads at once meanwhile
exec 4<>"/dev/tcp/127.0.0.1/$PORT"
exec 6<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /zeros.img HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&6
sleep 0.5
timeout 60 curl --noproxy '*' -s -o "$T/dl1" "$U/root.squashfs" &
p1=$!
timeout 60 curl --noproxy '*' -s -o "$T/dl2" "$U/root.squashfs" &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
is "$r1 $r2 $(sha <"$T/dl1") $(sha <"$T/dl2")" "0 0 $WANT $WANT" \
	"two downloads at once, with an idle and a stalled client connected: both complete"
timeout 60 cat <&6 >"$T/stalled"
exec 6<&-
is "$(head -n 1 "$T/stalled" | tr -d '\r') $(tail -c 67108864 "$T/stalled" | tr -d '\0' | wc -c) $(($(wc -c <"$T/stalled") > 67108864))" \
	"HTTP/1.1 200 OK 0 1" "... and the stalled one gets its 64 MiB once it reads"

# the cap: 64 connections served; one more gets 503; once they close, 200 again
fds=4
for i in $(seq 63); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	fds="$fds $fd"
done
sleep 0.3
c -D "$T/h" -o /dev/null -w '%{http_code}' "$U/boot.ipxe" >"$T/w"
is "$(cat "$T/w")" 503 "64 connections open: the 65th is answered 503"
grep -q $'^Retry-After: 1\r$' "$T/h"
ok $? "... with Retry-After"
for fd in $fds; do exec {fd}<&-; done
for i in $(seq 50); do
	[ "$(code "$U/boot.ipxe")" = 200 ] && break
	sleep 0.1
done
is "$(code "$U/boot.ipxe")" 200 "the 64 closed: served again"

# start-up errors
"$PMOVES_IMAGE" serve "$T/none" --listen 127.0.0.1:0 >/dev/null 2>"$T/e"
is "$?" 3 "DIR missing: exit 3"
grep -qF "'$T/none' does not exist" "$T/e"
ok $? "... naming it"
"$PMOVES_IMAGE" serve "$D/boot.ipxe" --listen 127.0.0.1:0 >/dev/null 2>"$T/e"
is "$? $(grep -c 'is not a directory' "$T/e")" "3 1" "DIR a file: exit 3, 'is not a directory'"
"$PMOVES_IMAGE" serve "$D" --listen 127.0.0.1:99999 >/dev/null 2>"$T/e"
is "$? $(grep -c "not ADDR:PORT" "$T/e")" "2 1" "--listen with a bad port: exit 2, says so"
"$PMOVES_IMAGE" serve "$D" --listen "127.0.0.1:$PORT" >/dev/null 2>"$T/e"
is "$? $(grep -c 'Address already in use' "$T/e")" "1 1" "--listen on a port in use: exit 1, says so"
"$PMOVES_IMAGE" serve "$D" --listen 127.0.0.1:0 --tls-cert "$T/secret" >/dev/null 2>"$T/e"
is "$? $(grep -c 'go together' "$T/e")" "2 1" "--tls-cert without --tls-key: exit 2"

# The dnsmasq lines: for a bundle served on the LAN, not on loopback. Listening on 0.0.0.0
# for the moment it takes to print them; nothing connects.
grep -q 'dhcp-boot' "$T/main.err"; ok $((!$?)) "on 127.0.0.1: no dnsmasq lines"
timeout 3 "$PMOVES_IMAGE" serve "$D" --listen 0.0.0.0:0 --quiet >"$T/lan.out" 2>"$T/lan.err"
LPORT=$(sed -n 's|^serving .* on http://0\.0\.0\.0:\([0-9]*\)/$|\1|p' "$T/lan.out")
grep -q "^  dhcp-boot=tag:ipxe,http://[0-9.]*:$LPORT/boot.ipxe\$" "$T/lan.err" && grep -qx "  tftp-root=$D" "$T/lan.err"
ok $? "on 0.0.0.0: the dnsmasq lines with this machine's address and port, and the bundle as TFTP root"

# per-machine scripts and configs from an inventory
cat >"$T/fleet.json" <<'JSON'
{ "devices": [ { "name": "n1", "mac": "52:54:00:AA:BB:01", "config": { "hostname": "n1" },
                 "netboot": { "mode": "install", "disk": "serial:pmoves-disk1" } },
               { "name": "n2", "config": { "hostname": "n2" } } ] }
JSON
INV_PID=$PID INV_PORT=$PORT
start inv "$D" --listen 127.0.0.1:0 --inventory "$T/fleet.json" --mode live
ok $? "serve --inventory starts"
grep -q "inventory '$T/fleet.json': 1 machine by MAC" "$T/inv.err"; ok $? "... and counts the machines it knows by MAC"
V=http://127.0.0.1:$PORT
c "$V/machine/52-54-00-aa-bb-01.ipxe" >"$T/m.ipxe"
c "$V/machine/52-54-00-aa-bb-01.json" >"$T/m.json"
is "$(sed -n 1,3p "$T/m.ipxe")" "$(printf '#!ipxe\nset pmoves-base %s/\nset pmoves-machine 52:54:00:aa:bb:01' "$V")" \
	"machine/MAC.ipxe: the base and the machine, after the first line"
grep -qx "set pmoves-config pmoves.config=$V/machine/52-54-00-aa-bb-01.json pmoves.config_sha256=$(sha <"$T/m.json")" "$T/m.ipxe"
ok $? "... its config's URL and the SHA-256 of what that URL serves"
tail -n 2 "$T/m.ipxe" | cmp -s - <(tail -n 2 "$D/boot.ipxe"); ok $? "... then the bundle's boot.ipxe"
grep -qx 'set pmoves-mode install' "$T/m.ipxe" && grep -qx 'set pmoves-disk pmoves.disk=serial:pmoves-disk1' "$T/m.ipxe"
ok $? "... and the entry's netboot mode and disk rule"
is "$(c "$V/boot.ipxe" | sed -n 3p)" 'isset ${pmoves-mode} || set pmoves-mode live' "serve --mode: boot.ipxe defaults the mode, after the machine's script had its say"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == {"hostname": "n1"}' "$T/m.json"
ok $? "machine/MAC.json: the entry's config"
is "$(code "$V/machine/52-54-00-aa-bb-02.ipxe") $(code "$V/machine/52-54-00-aa-bb-02.json")" "404 404" \
	"a MAC the inventory does not have: 404"
is "$(code "$V/machine/52-54-00-aa-bb-0.ipxe") $(code --path-as-is "$V/machine/../boot.ipxe")" "404 400" "a malformed MAC: 404; a way up: 400"
kill -TERM "$PID"; wait "$PID"
PID=$INV_PID PORT=$INV_PORT

stop
is "$?" 0 "SIGTERM: exit 0"
grep -q '^serve: stopped$' "$T/main.err"
ok $? "... 'serve: stopped'"

# timeouts, on a server with --timeout 2
start short "$D" --listen 127.0.0.1:0 --timeout 2 --quiet
ok $? "serve --timeout 2 --quiet starts"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
exec 5<>"/dev/tcp/127.0.0.1/$PORT"
printf 'GET /boot.ipxe HTTP/1.1\r\n' >&5
t0=$(date +%s)
got3=$(timeout 20 cat <&3)
r3=$?
got5=$(timeout 20 cat <&5)
t1=$(date +%s)
exec 3<&- 5<&-
is "$r3:$got3" "0:" "a silent client is closed after its timeout"
case $got5 in "HTTP/1.1 408 "*) r=0 ;; *) r=1 ;; esac
ok $r "a head begun and not finished: 408"
[ $((t1 - t0)) -le 8 ]
ok $? "... both within the timeout ($((t1 - t0)) s)"
[ ! -s "$T/short.err" ]
ok $? "--quiet: no request lines"
stop

# HTTPS
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout "$T/key.pem" \
	-out "$T/cert.pem" >/dev/null 2>&1
"$PMOVES_IMAGE" serve "$D" --listen 127.0.0.1:0 --tls-cert "$T/cert.pem" --tls-key "$T/none.pem" >/dev/null 2>"$T/e"
is "$? $(grep -cF "'$T/none.pem'" "$T/e")" "3 1" "a missing key: exit 3, naming it"
"$PMOVES_IMAGE" serve "$D" --listen 127.0.0.1:0 --tls-cert "$D/boot.ipxe" --tls-key "$T/key.pem" >/dev/null 2>"$T/e"
is "$? $(grep -cF "'$D/boot.ipxe' is not a PEM certificate" "$T/e")" "2 1" "a certificate that is not one: exit 2, naming it"
start tls "$D" --listen 127.0.0.1:0 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
ok $? "serve with --tls-cert and --tls-key starts"
grep -q "^serving $D on https://127.0.0.1:$PORT/\$" "$T/tls.out"
ok $? "... and says https://"
S=(--cacert "$T/cert.pem" --resolve "localhost:$PORT:127.0.0.1")
is "$(c "${S[@]}" "https://localhost:$PORT/root.squashfs" | sha)" "$WANT" "HTTPS GET of the 5 MB file: the same SHA-256"
c "${S[@]}" -r 4999900- -o "$T/r" "https://localhost:$PORT/root.squashfs"
tail -c 100 "$D/root.squashfs" | cmp -s - "$T/r"
ok $? "HTTPS Range: the last 100 bytes"
stop
is "$?" 0 "HTTPS server: SIGTERM, exit 0"

# valgrind: a short session, plain and TLS requests, no error
if ! command -v valgrind >/dev/null || ldd "$PMOVES_IMAGE" | grep -q libasan; then
	ok 0 "valgrind # SKIP valgrind missing, or an ASan build"
else
	rm -f "$T/vg.out"
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		"$PMOVES_IMAGE" serve "$D" --listen 127.0.0.1:0 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
		>"$T/vg.out" 2>"$T/vg.err" &
	PID=$!
	PIDS="$PIDS $PID"
	for i in $(seq 300); do
		PORT=$(sed -n 's|.*:\([0-9][0-9]*\)/$|\1|p' "$T/vg.out" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.1
	done
	S=(--cacert "$T/cert.pem" --resolve "localhost:$PORT:127.0.0.1")
	got=$(c "${S[@]}" "https://localhost:$PORT/root.squashfs" | sha)
	c "${S[@]}" -r 0-9 -o /dev/null "https://localhost:$PORT/root.squashfs"
	c "${S[@]}" -o /dev/null "https://localhost:$PORT/no-such"
	c "${S[@]}" -o /dev/null "https://localhost:$PORT/boot.ipxe"
	c -o /dev/null "http://127.0.0.1:$PORT/boot.ipxe" # not TLS: the handshake fails
	stop
	rc=$?
	is "$rc $got" "0 $WANT" "under valgrind: served, stopped with exit 0, no error (99) or definite leak"
	[ "$rc" = 0 ] || sed 's/^/# /' "$T/vg.err" | head -n 30
fi
done_testing
