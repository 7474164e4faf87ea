#!/bin/bash
# pmoves-sandbox with its QEMU backend, for real on this host (TCG), booting the guest
# pmoves-image builds from profiles/sandbox-guest.json (its output "microvm": the root
# filesystem, the kernel, vmlinux, the initramfs with pmoves-sandbox-init): a microVM per task,
# its output and exit status back, nothing of it left on disk, both audit lines, its time to
# live, and its network: the "Internet" (a network namespace the test makes, reached through
# the uplink) yes; a LAN address, the host's own services and a tailnet address no. The
# launcher runs in a network namespace of its own (the "host"), so nothing here touches this
# machine's network.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || skip_all "needs root: the launcher makes taps and the test network namespaces"
[ "$(uname -m)" = x86_64 ] || skip_all "the test guest's kernel is Debian's amd64 one"
for p in qemu-system-x86_64 busybox ip nft e2fsck python3 setpriv; do
	command -v $p >/dev/null || skip_all "$p is not installed (make deps)"
done
SBX=$BUILD/pmoves-sandbox
[ -x "$SBX" ] && [ -x "$BUILD/target/x86_64/pmoves-sandbox-init" ] || skip_all "build pmoves-sandbox first (make)"

T=$(mktemp -d /tmp/pmoves-sandbox-test.XXXXXX)
chmod 711 "$T" # the VMM runs as the sandbox user: it reads the kernel and initramfs from here
NS=pmsbx$$
H=$NS-h W=$NS-w L=$NS-l
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
UNIT=pmoves-sandbox-test-$$ # a cgroup standing for pmoves-sandbox@NAME.service's
cleanup() {
	for p in $(cat "$T"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null; done
	[ -z "$CG2" ] || rmdir "$CG2/$UNIT" 2>/dev/null
	for n in $H $W $L; do ip netns del $n 2>/dev/null; done
	mountpoint -q "$T/state" && umount "$T/state"
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

plan 58

# ---- the guest, built ----
"$PMOVES_IMAGE" build "$TOP/profiles/sandbox-guest.json" -o "$T" >"$T/build.log" 2>&1
ok $? "pmoves-image builds the sandbox-guest profile" || { tail -20 "$T/build.log" | sed 's/^/# /'; exit 1; }
G=$T/sandbox-guest/sandbox-guest.microvm
chmod 755 "$T/sandbox-guest" # the VMM, as the sandbox user, reads the kernel and initramfs
(cd "$T/sandbox-guest" && sha256sum -c --quiet SHA256SUMS) && python3 - "$T/sandbox-guest/manifest.json" <<'PYEOF2'
import json, sys
m = json.load(open(sys.argv[1]))
files = {a["file"] for a in m["artifacts"] if a["kind"] == "microvm"}
want = {"sandbox-guest.microvm/" + f for f in ("rootfs.ext4", "vmlinuz", "vmlinux", "initrd.img")}
assert files == want, files
PYEOF2
ok $? "output microvm: root filesystem, kernel, vmlinux, initramfs, in the manifest with their SHA-256s"
python3 -c 'import sys; h = open(sys.argv[1], "rb").read(64)
sys.exit(not (h[:5] == b"\x7fELF\x02" and int.from_bytes(h[18:20], "little") == 62 and int.from_bytes(h[16:18], "little") == 2))' "$G/vmlinux"
ok $? "vmlinux is the kernel uncompressed: an x86_64 ELF file, as Firecracker boots it"
e2fsck -fn "$G/rootfs.ext4" >/dev/null 2>&1; ok $? "rootfs.ext4 is a clean ext4 filesystem"
busybox cpio -i --to-stdout lib/pmoves-sandbox/modules < "$G/initrd.img" 2>/dev/null > "$T/modules"
busybox cpio -t < "$G/initrd.img" 2>/dev/null | grep -qx init && grep -qx virtio_mmio.ko "$T/modules" &&
	grep -qx virtio_blk.ko "$T/modules" && grep -qx virtio_net.ko "$T/modules" && grep -qx overlay.ko "$T/modules" &&
	[ "$(grep -n . "$T/modules" | grep -m1 'virtio.ko$' | cut -d: -f1)" -lt "$(grep -n . "$T/modules" | grep virtio_mmio.ko | cut -d: -f1)" ]
ok $? "the initramfs has pmoves-sandbox-init as /init, the virtio modules and overlay, what they need first" ||
	sed 's/^/# /' "$T/modules"
echo '{"name": "sg-raw", "extends": "sandbox-guest", "outputs": ["raw"]}' > "$T/sg-raw.json"
out=$("$PMOVES_IMAGE" validate "$T/sg-raw.json" 2>&1); rc=$?
[ $rc != 0 ] && echo "$out" | grep -q ".boot.loader: boot loader 'direct' puts none on the disk"
ok $? "a profile with boot loader 'direct' but no output 'microvm' is refused, saying why" || echo "$out" | sed 's/^/# /'
root_sum=$(sha256sum < "$G/rootfs.ext4")

id pmoves-sandbox >/dev/null 2>&1 ||
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pmoves-sandbox
mkdir -p "$T/state" && mount -t tmpfs -o mode=0711 tmpfs "$T/state"
AUDIT=$T/log/audit.log
cat > "$T/cfg.json" <<EOF
{"backend": "qemu", "accel": "tcg", "kernel": "$G/vmlinuz", "initrd": "$G/initrd.img",
 "rootfs": "$G/rootfs.ext4", "state_dir": "$T/state", "audit_log": "$AUDIT", "bridge": "sbx0",
 "subnet": "10.77.0.0/24"}
EOF
# Every run in the "host" namespace.
sbx() { ip netns exec $H "$SBX" -c "$T/cfg.json" "$@"; }
# A command in the "host" with the cgroup v2 hierarchy mounted where the jailer looks for it
# (ip netns exec gives it a /sys of its own, without the cgroup mounts).
in_h() { ip netns exec $H sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"' sh "$@"; }
# The address and id locks (net/, uid/) are slots, not a sandbox's data.
left() { find "$T/state" -mindepth 1 -not -path "$T/state/net" -not -path "$T/state/net/*" -not -path "$T/state/uid" -not -path "$T/state/uid/*"; }
POOL_LO=1879048192 POOL_HI=1879050239 # the launcher's default 'uids'
in_pool() { [ -n "$1" ] && [ "$1" -ge $POOL_LO ] && [ "$1" -le $POOL_HI ]; }

# ---- the networks: host, "Internet", LAN ----
for n in $H $W $L; do ip netns add $n && ip -n $n link set lo up; done
ip link add up0 netns $H type veth peer name w0 netns $W
ip link add lan0 netns $H type veth peer name l0 netns $L
ip -n $H addr add 198.51.100.2/24 dev up0 && ip -n $H link set up0 up
ip -n $W addr add 198.51.100.1/24 dev w0 && ip -n $W addr add 100.100.7.1/32 dev w0 && ip -n $W link set w0 up
ip -n $H route add default via 198.51.100.1
ip -n $H route add 100.64.0.0/10 via 198.51.100.1 # the tailnet routes there: the firewall, not routing, stops it
ip -n $W route add 10.77.0.0/24 via 198.51.100.2
ip -n $H addr add 192.168.77.2/24 dev lan0 && ip -n $H link set lan0 up
ip -n $L addr add 192.168.77.1/24 dev l0 && ip -n $L link set l0 up && ip -n $L route add default via 192.168.77.2
for n in $H $W $L; do
	mkdir -p "$T/www-$n" && echo "answer-from-$n" > "$T/www-$n/index.html"
	ip netns exec $n python3 -m http.server 8080 --bind 0.0.0.0 --directory "$T/www-$n" >/dev/null 2>&1 &
	echo $! > "$T/http-$n.pid"
done

# ---- usage and bad input ----
check "--help says what run does" sh -c "'$SBX' --help | grep -q 'run \[--json\] SPEC'"
echo '{"command": ["true"], "ttl": 5}' > "$T/bad.json"
out=$(sbx run "$T/bad.json" 2>&1); rc=$?
is "$rc" 125 "a spec with an unknown key: exit 125"
echo "$out" | grep -q "bad.json: 'ttl' is not a key here" ; ok $? "... naming the file and the key"
[ ! -e "$AUDIT" ] && [ -z "$(left)" ]; ok $? "... and nothing made: no audit line, nothing in the state directory"
mkdir -p "$T/disk-state"
sed "s|\"state_dir\": \"$T/state\"|\"state_dir\": \"$T/disk-state\"|" "$T/cfg.json" > "$T/cfg-disk.json"
echo '{"command": ["true"]}' > "$T/true.json"
out=$(ip netns exec $H "$SBX" -c "$T/cfg-disk.json" run "$T/true.json" 2>&1); rc=$?
is "$rc" 125 "a state_dir that is not a tmpfs is refused"
echo "$out" | grep -q "is not a tmpfs"; ok $? "... saying why"

# ---- a task: output, exit status, audit, nothing left ----
cat > "$T/hello.json" <<'EOF'
{"vcpus": 1, "memory_mib": 192, "ttl_s": 120, "network": false,
 "command": ["sh", "-c", "echo hello from $(uname -s) $(id -u); touch /written-by-task; echo to stderr >&2; exit 7"]}
EOF
out=$(sbx run "$T/hello.json" 2>"$T/hello.err"); rc=$?
is "$rc" 7 "run: the exit code is the command's (7)"
printf '%s\n' "$out" | grep -qx "hello from Linux 0"; ok $? "run: the command's output comes back" ||
	{ printf '%s\n' "$out" | sed 's/^/# out: /'; sed 's/^/# err: /' "$T/hello.err"; }
printf '%s\n' "$out" | grep -qx "to stderr"; ok $? "... its standard error too"
id=$(sed -n 's/^\(sbx-[0-9a-f]\{16\}\): creating.*/\1/p' "$T/hello.err")
spec_sum=$(sha256sum < "$T/hello.json" | cut -d' ' -f1)
grep -q " create id=$id spec=$spec_sum backend=qemu vcpus=1 memory_mib=192 ttl_s=120 network=no uid=[0-9]*\$" "$AUDIT"
ok $? "the audit log has the create line: id, the spec's sha256, the backend"
grep -Eq " destroy id=$id spec=$spec_sum start=[0-9T:.-]+Z end=[0-9T:.-]+Z status=exited:7 bytes_discarded=[1-9][0-9]*\$" "$AUDIT"
ok $? "... and the destroy line: start, end, status, bytes discarded" || tail -2 "$AUDIT" | sed 's/^/# /'
[ -z "$(left)" ]; ok $? "nothing of the sandbox is left in the state directory" || left | sed 's/^/# /'
is "$(sha256sum < "$G/rootfs.ext4")" "$root_sum" "the guest's root image is unchanged: the task wrote to its overlay"
echo '{"network": false, "command": ["sh", "-c", "test -e /written-by-task && echo still-there || echo gone"]}' > "$T/again.json"
is "$(sbx run "$T/again.json" 2>/dev/null)" "gone" "the next sandbox starts from the image, not from what the last one wrote"
# Two at once on the one image: each sees it read only, under an overlay of its own.
cat > "$T/ro.json" <<'EOF'
{"network": false, "command": ["sh", "-c", "echo ro=$(cat /sys/block/vda/ro) root=$(awk '$2 == \"/\" {print $3}' /proc/mounts); echo x > /mine && ls /mine"]}
EOF
sbx run "$T/ro.json" > "$T/ro1.out" 2>"$T/ro1.err" & p1=$!
sbx run "$T/ro.json" > "$T/ro2.out" 2>"$T/ro2.err" & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
is "$r1 $r2" "0 0" "two sandboxes run at once on the shared root image" || sed 's/^/# /' "$T/ro1.err" "$T/ro2.err"
is "$(cat "$T/ro1.out" "$T/ro2.out" | sort -u | tr '\n' ' ')" "/mine ro=1 root=overlay " \
	"... each sees its root disk read only and writes to an overlay"
is "$(sha256sum < "$G/rootfs.ext4")" "$root_sum" "... and the image is still unchanged"
u1=$(sed -n "s/.* create id=$(sed -n 's/^\(sbx-[0-9a-f]*\): creating.*/\1/p' "$T/ro1.err") .* uid=\([0-9]*\)\$/\1/p" "$AUDIT")
u2=$(sed -n "s/.* create id=$(sed -n 's/^\(sbx-[0-9a-f]*\): creating.*/\1/p' "$T/ro2.err") .* uid=\([0-9]*\)\$/\1/p" "$AUDIT")
in_pool "$u1" && in_pool "$u2" && [ "$u1" != "$u2" ]
ok $? "... each VMM under an id of its own from the pool (audited: $u1, $u2)"
is "$(stat -c '%U %a' "$AUDIT")" "root 640" "the audit log is root's, mode 640"
setpriv --reuid=pmoves-sandbox --regid=pmoves-sandbox --init-groups sh -c "echo forged >> '$AUDIT'" 2>/dev/null
[ $? != 0 ] && ! grep -q forged "$AUDIT"; ok $? "... and the sandbox user cannot write it"

out=$(sbx run --json "$T/hello.json" 2>/dev/null); rc=$?
printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "exited" and r["exit_status"] == 7 and r["exit_code"] == 7, r
assert "hello from Linux 0\n" in r["output"], r
assert r["id"].startswith("sbx-") and len(r["spec_sha256"]) == 64 and r["bytes_discarded"] > 0, r'
ok $? "--json: status, exit status, output, id, spec sha256, bytes discarded"

echo '{"network": false, "command": ["no-such-program"]}' > "$T/noexec.json"
out=$(sbx run "$T/noexec.json" 2>/dev/null); rc=$?
is "$rc" 127 "a command the guest does not have: exit 127"
echo "$out" | grep -q "cannot run 'no-such-program': No such file or directory"; ok $? "... saying so"

cat > "$T/bg.json" <<'EOF'
{"network": false, "ttl_s": 100, "command": ["sh", "-c", "sleep 600 & printf 'left running \\302\\233[31m\\n'"]}
EOF
start=$(date +%s)
out=$(sbx run --json "$T/bg.json" 2>/dev/null); rc=$?
took=$(($(date +%s) - start))
[ $rc = 0 ] && [ $took -lt 90 ] && printf '%s' "$out" | grep -qF '"output":"left running \u009b[31m\n"'
ok $? "a process the command leaves running does not hold the sandbox ($took s); --json escapes the guest's C1 controls" ||
	printf '%s\n' "$out" | sed 's/^/# /'

# ---- time to live; the VMM's user ----
echo '{"network": false, "ttl_s": 20, "command": ["sleep", "600"]}' > "$T/sleep.json"
sbx run "$T/sleep.json" > /dev/null 2> "$T/sleep.err" &
sbx_pid=$!
vmm_user=
for _ in $(seq 100); do
	vmm_user=$(ps -o uid=,args= -C qemu-system-x86_64 | awk -v s="$T/state/" 'index($0, s) { print $1; exit }')
	[ -n "$vmm_user" ] && break
	sleep 0.2
done
in_pool "$vmm_user"; ok $? "the VMM runs as an id of the pool ($vmm_user), neither root nor an account"
sdir=$(ls -d "$T"/state/sbx-* 2>/dev/null | head -1)
[ "$(stat -c '%U %a' "$sdir")" = "root 711" ] && [ "$(stat -c '%u %a' "$sdir/io.img")" = "$vmm_user 600" ] &&
	[ ! -e "$sdir/root.ext4" ] &&
	! setpriv --reuid=pmoves-sandbox --regid=pmoves-sandbox --init-groups ln -s /etc/shadow "$sdir/console.log.x" 2>/dev/null
ok $? "the sandbox's directory is root's (the user cannot rename or add names in it), its I/O disk the VMM's id's, no copy of the root"
# A pool of one id, that one taken by the running sandbox: refused before anything is made.
sed "s|\"subnet\": \"10.77.0.0/24\"|\"subnet\": \"10.77.0.0/24\", \"uids\": \"$vmm_user-$vmm_user\"|" "$T/cfg.json" >"$T/cfg-one.json"
lines=$(wc -l < "$AUDIT")
out=$(ip netns exec $H "$SBX" -c "$T/cfg-one.json" run "$T/true.json" 2>&1); rc=$?
[ $rc = 125 ] && echo "$out" | grep -q "every id of 'uids' (1) is a running sandbox's" && [ "$(wc -l < "$AUDIT")" = "$lines" ]
ok $? "a sandbox finds every id of its pool taken: refused (125), saying why, nothing audited" || echo "$out" | sed 's/^/# /'
wait $sbx_pid; rc=$?
is "$rc" 124 "its time to live running out ends it: exit 124"
id=$(sed -n 's/^\(sbx-[0-9a-f]\{16\}\): creating.*/\1/p' "$T/sleep.err")
grep -q " destroy id=$id .* status=expired bytes_discarded=" "$AUDIT" && [ -z "$(left)" ]
ok $? "... audited as expired, nothing left"
# A process that has ended (a zombie whose new parent has not reaped it yet counts).
gone() { local st; st=$(ps -o stat= -p "$1"); [ -z "$st" ] || [ "${st#Z}" != "$st" ]; }
# A launcher killed outright: its undertaker ends the sandbox in its place.
# $1: the config, $2: what for, $3: "both" kills the undertaker too (then the sandbox stays
# until the next launcher sweeps it). Its launcher's stderr in $T/orphan.err, its sandbox's id
# in $id, its VMM's pid in $vmm.
orphan() {
	cp "$T/sleep.json" "$T/orphan.json"
	sed -i 's/"ttl_s": 20/"ttl_s": 600/' "$T/orphan.json"
	STANDIN_LOG=$T/orphan.log in_h "$SBX" -c "$1" run "$T/orphan.json" >/dev/null 2>"$T/orphan.err" &
	local launcher= i
	vmm=
	for i in $(seq 150); do
		launcher=$(pgrep -o -f -- "run $T/orphan.json")
		vmm=$(ps -o pid=,args= -C qemu-system-x86_64 | awk -v s="$T/state/" 'index($0, s) { print $1; exit }')
		# The launcher and its undertaker (forked once the VMM runs).
		[ -n "$vmm" ] && [ "$(pgrep -c -f -- "run $T/orphan.json")" = 2 ] && break
		sleep 0.2
	done
	id=$(sed -n 's/^\(sbx-[0-9a-f]\{16\}\): creating.*/\1/p' "$T/orphan.err")
	[ -n "$launcher" ] && [ -n "$vmm" ] && [ -n "$id" ] || { echo "# $2: no launcher, VMM or id"; return 1; }
	if [ "${3:-}" = both ]; then
		kill -9 $(pgrep -f -- "run $T/orphan.json")
		sleep 1
		[ -d "$T/state/$id" ] || { echo "# $2: the sandbox's directory went with its killed launcher"; return 1; }
		return 0
	fi
	kill -9 "$launcher"
	for i in $(seq 100); do
		gone "$vmm" && grep -q " destroy id=$id " "$AUDIT" && [ -z "$(left)" ] && return 0
		sleep 0.2
	done
	echo "# $2: VMM $(gone "$vmm" && echo gone || echo alive), left: $(left | tr '\n' ' ')"
	return 1
}
orphan "$T/cfg.json" qemu &&
	grep -Eq " destroy id=$id spec=[0-9a-f]{64} start=\S+ end=\S+ status=abandoned bytes_discarded=[0-9]+\$" "$AUDIT"
ok $? "a launcher killed outright (kill -9): its undertaker kills the VMM, removes the sandbox, audits it abandoned"
# Both killed (as systemctl kill -s KILL would): the next launcher finds the directory no one
# holds and ends that sandbox first.
echo '{"network": false, "command": ["true"]}' > "$T/nonet.json"
orphan "$T/cfg.json" "qemu, both" both && out=$(sbx run "$T/nonet.json" 2>&1) &&
	echo "$out" | grep -q "$id: its launcher was killed with its undertaker" &&
	grep -Eq " destroy id=$id spec=[0-9a-f]{64} start=\S+ end=\S+ status=abandoned bytes_discarded=[0-9]+\$" "$AUDIT" &&
	[ -z "$(left)" ]
ok $? "launcher and undertaker both killed: the next launcher sweeps what they left, audited abandoned" ||
	{ echo "$out" | sed 's/^/# /'; left | sed 's/^/# left: /'; }
# A guest writing to its console without end: stopped when the console log passes console_max,
# not when its time to live ends (the tmpfs is shared by every sandbox).
sed 's|"subnet": "10.77.0.0/24"|"subnet": "10.77.0.0/24", "console_max": 65536|' "$T/cfg.json" >"$T/cfg-flood.json"
echo '{"ttl_s": 300, "network": false, "command": ["sh", "-c", "yes flood-the-console >/dev/console"]}' >"$T/flood.json"
start=$(date +%s)
ip netns exec $H "$SBX" -c "$T/cfg-flood.json" run "$T/flood.json" >/dev/null 2>"$T/flood.err"; rc=$?
took=$(($(date +%s) - start))
[ $rc = 125 ] && [ $took -lt 200 ] && grep -q "its console or the VMM's log grew past console_max (65536 bytes): destroyed" "$T/flood.err"
ok $? "a guest flooding its console is destroyed at console_max (exit $rc after $took s), saying why" || tail -5 "$T/flood.err" | sed 's/^/# /'
id=$(sed -n 's/^\(sbx-[0-9a-f]\{16\}\): creating.*/\1/p' "$T/flood.err")
grep -q " destroy id=$id .* status=failed bytes_discarded=" "$AUDIT" && [ -z "$(left)" ]
ok $? "... audited as failed, nothing left"

# ---- the network ----
# net-up on a machine whose DHCP has not answered yet (no default route): the bridge and the
# tables, nothing forwarded; the first sandbox after the route appears follows it.
ip -n $H route del default
check "net-up makes the bridge and the firewall (no default route yet)" sbx net-up
ip netns exec $H nft list chain inet pmoves_sandbox forward | grep -qE '^[[:space:]]+iifname "sbx0" drop$'
ok $? "... the table is loaded, forwarding nothing from the bridge while there is no route"
ip -n $H route add default via 198.51.100.1
cat > "$T/net.json" <<'EOF'
{"ttl_s": 120, "command": ["sh", "-c",
 "for u in 198.51.100.1 192.168.77.1 10.77.0.1 198.51.100.2 100.100.7.1; do echo \"$u $(curl -sf --max-time 3 http://$u:8080/ || echo unreachable)\"; done"]}
EOF
out=$(sbx run "$T/net.json" 2>"$T/net.err"); rc=$?
printf '%s\n' "$out" | grep -qx "198.51.100.1 answer-from-$W" && grep -q "the default route now leads through up0: sandboxes leave there" "$T/net.err"
ok $? "a sandbox reaches the Internet through the uplink (the table followed the route that appeared)" ||
	{ printf '%s\n' "$out" | sed 's/^/# /'; tail -5 "$T/net.err" | sed 's/^/# /'; }
printf '%s\n' "$out" | grep -qx "192.168.77.1 unreachable"; ok $? "... not a LAN address"
printf '%s\n' "$out" | grep -qx "10.77.0.1 unreachable" && printf '%s\n' "$out" | grep -qx "198.51.100.2 unreachable"
ok $? "... not the host's own services (on the bridge's address or the uplink's)"
printf '%s\n' "$out" | grep -qx "100.100.7.1 unreachable"; ok $? "... not the tailnet, though a route leads there"
fwd() { ip netns exec $H cat /proc/sys/net/ipv4/$1; }
is "$(fwd ip_forward) $(fwd conf/sbx0/forwarding) $(fwd conf/up0/forwarding) $(fwd conf/lan0/forwarding)" "0 1 1 0" \
	"forwarding on for the bridge and the uplink only, not host-wide (ip_forward, sbx0, up0, lan0)"
# A guest that takes another sandbox's address, then its MAC too (0a:50:4d + the address's low
# 24 bits, as the launcher makes them): the bridge drops what its tap sends, ARP with it, so the
# host never learns the address there and no reply of another sandbox can be taken.
cat > "$T/spoof.json" <<'EOF'
{"ttl_s": 120, "command": ["sh", "-c",
 "get() { curl -sf --max-time 3 http://198.51.100.1:8080/ || echo unreachable; }; echo \"own $(get)\"; ip addr flush dev eth0; ip addr add 10.77.0.77/24 dev eth0; ip route add default via 10.77.0.1; echo \"address $(get)\"; ip link set eth0 down; ip link set eth0 address 0a:50:4d:4d:00:4d; ip link set eth0 up; ip route replace default via 10.77.0.1; echo \"mac $(get)\""]}
EOF
out=$(sbx run "$T/spoof.json" 2>"$T/spoof.err")
printf '%s\n' "$out" | grep -qx "own answer-from-$W" && printf '%s\n' "$out" | grep -qx "address unreachable" &&
	printf '%s\n' "$out" | grep -qx "mac unreachable"
ok $? "a guest that takes another address, then its MAC too, reaches nothing (its own address did)" ||
	{ printf '%s\n' "$out" | sed 's/^/# /'; tail -5 "$T/spoof.err" | sed 's/^/# /'; }
! ip -n $H neigh show 10.77.0.77 | grep -q lladdr; ok $? "... the host never learned 10.77.0.77 there (its ARP was dropped)"
! ip netns exec $H nft list set bridge pmoves_sandbox bound | grep -q elements &&
	! ip netns exec $H nft list set bridge pmoves_sandbox ports | grep -q elements
ok $? "... and the taps' bindings go with them" || ip netns exec $H nft list table bridge pmoves_sandbox | sed 's/^/# /'
# ---- Firecracker, through a stand-in ----
# Neither Firecracker nor its jailer can be installed here: the stand-in takes the jailer's
# command line and the VM config, checks them against Firecracker v1.16.1's jailer.md and API
# definitions, and boots the same VM with QEMU (tests/fixtures/standins/firecracker-jailer.py).
printf '#!/bin/sh\necho "stand-in firecracker: only the jailer stand-in runs the VM" >&2\nexit 1\n' > "$T/firecracker"
chmod 755 "$T/firecracker"
sed -e "s|\"backend\": \"qemu\"|\"backend\": \"firecracker\", \"firecracker\": \"$T/firecracker\", \"jailer\": \"$TOP/tests/fixtures/standins/firecracker-jailer.py\", \"vmlinux\": \"$G/vmlinux\"|" \
	"$T/cfg.json" > "$T/cfg-fc.json"
if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	skip 8 "/dev/kvm does not open here: the firecracker backend needs it"
else
	# In a cgroup of its own, as in its unit: the jail's cgroup goes under it.
	mkdir "$CG2/$UNIT"
	out=$(STANDIN_LOG=$T/fc.log sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$CG2/$UNIT" \
		ip netns exec $H sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"' sh \
		"$SBX" -c "$T/cfg-fc.json" run "$T/net.json" 2>"$T/fc.err"); rc=$?
	is "$rc" 0 "firecracker backend: the task runs (through the stand-in) and exits 0" || sed 's/^/# /' "$T/fc.err"
	printf '%s\n' "$out" | grep -qx "198.51.100.1 answer-from-$W" && printf '%s\n' "$out" | grep -qx "192.168.77.1 unreachable"
	ok $? "... its output comes back: the Internet reached by the named tap, the LAN not" || printf '%s\n' "$out" | sed 's/^/# /'
	python3 - "$T/fc.log" $POOL_LO $POOL_HI "$UNIT" "$CG2" <<'PYEOF2'
import json, os, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
j, c = r["jailer"], r["config"]
assert r["checked"] == "ok", r
assert j["parent-cgroup"] == sys.argv[4] + "/" + j["id"] and r["cgroup"] == os.path.join("/sys/fs/cgroup", sys.argv[4], j["id"]), (j, r["cgroup"])
assert j["cgroup-version"] == "2" and int(sys.argv[2]) <= int(j["uid"]) <= int(sys.argv[3]) and j["uid"] == j["gid"], j
assert j["id"].startswith("sbx-"), j
assert r["firecracker"] == ["--no-api", "--config-file", "/vm.json"], r["firecracker"]
assert c["boot-source"]["kernel_image_path"] == "/vmlinux" and c["boot-source"]["initrd_path"] == "/initrd.img", c
assert "reboot=k" in c["boot-source"]["boot_args"], c
assert [(d["path_on_host"], d["is_read_only"]) for d in c["drives"]] == [("/root.ext4", True), ("/io.img", False)], c["drives"]
assert c["network-interfaces"][0]["host_dev_name"].startswith("sbx"), c
PYEOF2
	ok $? "... the jailer got cgroup v2 and the VMM's own cgroup, made under the launcher's, and an id of the pool; the config the vmlinux, the initramfs, the root (read only) then the I/O disk, the tap"
	id=$(sed -n 's/^\(sbx-[0-9a-f]\{16\}\): creating.*/\1/p' "$T/fc.err")
	grep -q " create id=$id .* backend=firecracker " "$AUDIT" && grep -q " destroy id=$id .* status=exited:0 " "$AUDIT"
	ok $? "... both audit lines, backend firecracker"
	cg=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["cgroup"] or "")' "$T/fc.log")
	[ -z "$(left)" ] && ! ip -n $H -o link show | grep -Eq 'sbx[0-9a-f]{12}' && [ -n "$cg" ] && [ ! -e "$CG2/${cg#/sys/fs/cgroup/}" ]
	ok $? "... nothing left: the jail, its disks, the named tap, the jailer's cgroup${cg:+ ($CG2/${cg#/sys/fs/cgroup/})}"
	ip netns exec $H "$SBX" -c "$T/cfg-fc.json" backends | grep -q "^firecracker  *usable"
	ok $? "backends: firecracker usable where its binaries are and /dev/kvm opens"
	# The jailer's change of user cleared the VMM's parent-death signal: only the undertaker
	# ends it when the launcher is killed outright.
	orphan "$T/cfg-fc.json" firecracker && grep -q " destroy id=$id .* status=abandoned " "$AUDIT" &&
		! ip -n $H -o link show | grep -Eq 'sbx[0-9a-f]{12}' && grep -q "\"cgroup\": \"/sys/fs/cgroup/firecracker/$id\"" "$T/orphan.log" &&
		[ ! -e "$CG2/firecracker/$id" ]
	ok $? "firecracker: a launcher killed outright: the undertaker kills the jailed VMM, removes the jail, tap and cgroup"
	# Both killed: the jailed VMM runs on (no parent-death signal); the next launcher kills it
	# through its cgroup and removes the rest.
	orphan "$T/cfg-fc.json" "firecracker, both" both && ! gone "$vmm" && [ -d "$CG2/firecracker/$id" ] &&
		out=$(in_h "$SBX" -c "$T/cfg.json" run "$T/true.json" 2>&1) && gone "$vmm" &&
		grep -q " destroy id=$id .* status=abandoned " "$AUDIT" && [ -z "$(left)" ] && [ ! -e "$CG2/firecracker/$id" ] &&
		! ip -n $H -o link show | grep -Eq 'sbx[0-9a-f]{12}'
	ok $? "firecracker, launcher and undertaker both killed: the next launcher kills the VMM through its cgroup, removes jail, tap and cgroup" ||
		{ echo "$out" | sed 's/^/# /'; left | sed 's/^/# left: /'; }
fi
check "net-down removes the bridge and the table" sh -c "ip netns exec $H '$SBX' -c '$T/cfg.json' net-down &&
	! ip -n $H link show sbx0 2>/dev/null && ! ip netns exec $H nft list table inet pmoves_sandbox 2>/dev/null"
