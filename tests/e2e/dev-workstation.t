#!/bin/bash
# profiles/dev-workstation.json built and booted (x86_64, OVMF, TCG): the real pinokiod 5.3.28
# from npm, baked at build time by the image's own npm (its native module built by node-gyp for
# the image's Node), started by the pinokio step as its own user, answering and listing the
# fleet's three apps; its port reachable from loopback and an interface named tailscale0, not
# from another. No Tailscale here (not installable): the tailnet step is off, and the
# "tailnet" is a veth named tailscale0 into a network namespace the test makes in the guest.
# The ci-runner step, with stand-ins for GitHub's API (tests/fixtures/standins/github-api.py, on
# the guest's 127.0.0.1) and the Actions runner (a run.sh that "runs one job" and exits): neither
# is reachable or installable here.
# The sandbox step: the guest built by the same pmoves-image (profiles/sandbox-guest.json) and
# pmoves-sandbox baked in, the network service up and leaving through the uplink DHCP gives the
# machine, a task run through pmoves-sandbox@.service by the workstation's own QEMU. Firecracker
# is not installable here (its artifact is off, and the guest has no /dev/kvm).
# RustDesk is not installable here either (its .deb cannot be fetched: no network), so the
# artifacts and rustdesk steps are off too: with them on, the first boot would stay pending, as
# on a machine that is offline (tests/test-fb-net.c and test-fb-services.c cover the rustdesk
# step with a stand-in).
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap base64 python3 debugfs
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-devws.XXXXXX)
cleanup() { [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
plan 42

start=$(date +%s)
"$PMOVES_IMAGE" build "$TOP/profiles/dev-workstation.json" -o "$T" >"$T/build.log" 2>&1
ok $? "build profiles/dev-workstation.json ($(($(date +%s) - start)) s)"
IMG=$T/dev-workstation/dev-workstation.img
[ -f "$IMG" ] || { tail -n 20 "$T/build.log" | sed 's/^/# /'; echo "Bail out! the image did not build"; exit 1; }

M=$T/dev-workstation/manifest.json
python3 - "$M" "$TOP/npm/pinokiod/package-lock.json" "$TOP/npm/e2b/package-lock.json" >"$T/manifest.check" 2>&1 <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
t = m["npm"][0]
lock = open(sys.argv[2], "rb").read()
assert t["name"] == "pinokiod" and t["prefix"] == "/usr/lib/pmoves/pinokiod", t
assert t["lockfile_sha256"] == hashlib.sha256(lock).hexdigest(), "lockfile hash"
d = t["dependencies"][0]
assert d == {"name": "pinokiod", "version": "5.3.28",
             "integrity": "sha512-o1BmDfl8q3cz29IImKWynD1kLA6ID0SwT3CGgBY1wEnLrw5zOxVgIuJoI5pvwAo81/7jzlpyedWwx8xHKylHYA=="}, d
assert t["build_from_source"] == ["@homebridge/node-pty-prebuilt-multiarch"]
e = m["npm"][1]
elock = json.load(open(sys.argv[3]))["packages"]
assert e["name"] == "e2b" and e["prefix"] == "/usr/lib/pmoves/e2b", e
assert e["lockfile_sha256"] == hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest(), "e2b lockfile hash"
got = {d["name"]: (d["version"], d["integrity"]) for d in e["dependencies"]}
assert got == {n: ("1.9.2" if n == "@e2b/cli" else "1.13.2", elock["node_modules/" + n]["integrity"]) for n in ("@e2b/cli", "e2b")}, got
print("ok")
PY
ok $? "manifest.json: pinokiod 5.3.28 with its integrity, the lockfile's SHA-256, the module built from source; @e2b/cli 1.9.2 and e2b 1.13.2 likewise"
[ -s "$T/manifest.check" ] && grep -q '^ok$' "$T/manifest.check" || sed 's/^/# /' "$T/manifest.check"

ROOT_OFF=$(part_offset "$IMG" 2)
get() { debugfs -R "cat $1" "$IMG?offset=$ROOT_OFF" 2>/dev/null; }
ls_() { debugfs -R "ls -l $1" "$IMG?offset=$ROOT_OFF" 2>/dev/null; }
P=/usr/lib/pmoves/pinokiod/node_modules
get $P/pinokiod/package.json | python3 -c 'import json,sys; assert json.load(sys.stdin)["version"] == "5.3.28"'
ok $? "the image holds pinokiod 5.3.28 under /usr/lib/pmoves/pinokiod"
N=$P/@homebridge/node-pty-prebuilt-multiarch
ls_ $N/build/Release | grep -q ' pty.node$' && ! ls_ $N | grep -q ' prebuilds$'
ok $? "node-pty: built here (build/Release/pty.node), its bundled prebuilt binaries gone"
[ -z "$(ls_ /tmp/pmoves-npm)" ] && ! ls_ /root | grep -q '\.npm$'
ok $? "npm left no home or cache in the image"
for a in comfyui facefusion ollama; do get /usr/share/pmoves/pinokio/$a/pinokio.js | grep -q 'version: "4.0"' || echo "$a" ; done >"$T/apps.missing"
[ ! -s "$T/apps.missing" ]; ok $? "the fleet's launchers in /usr/share/pmoves/pinokio: comfyui, facefusion, ollama"

# The sandbox guest, built by the same pmoves-image from profiles/sandbox-guest.json, baked in
# with the launcher for the image's architecture.
python3 - "$M" >"$T/guest.list" 2>&1 <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["sandbox_guest"]
assert g["profile"] == "sandbox-guest", g
for f in g["files"]:
    print(f["file"], f["sha256"])
PY
: >"$T/guest.bad"
while read -r f sha; do
	[ "$(get "$f" | sha256sum | cut -d' ' -f1)" = "$sha" ] || echo "$f" >>"$T/guest.bad"
done <"$T/guest.list"
[ "$(cut -d' ' -f1 "$T/guest.list" | sort | tr '\n' ' ')" = "/usr/lib/pmoves/sandbox/initrd.img /usr/lib/pmoves/sandbox/rootfs.ext4 /usr/lib/pmoves/sandbox/vmlinux /usr/lib/pmoves/sandbox/vmlinuz " ] &&
	[ ! -s "$T/guest.bad" ]
ok $? "the sandbox guest in /usr/lib/pmoves/sandbox: kernel, vmlinux, initramfs, root filesystem, as manifest.json lists them (SHA-256)"
[ -s "$T/guest.bad" ] && sed 's/^/# differs: /' "$T/guest.bad"; grep -v '^/' "$T/guest.list" | sed 's/^/# /'
[ "$(get /usr/bin/pmoves-sandbox | sha256sum)" = "$(sha256sum <"$BUILD/target/x86_64/pmoves-sandbox")" ]
ok $? "pmoves-sandbox in /usr/bin, as built for x86_64"
! debugfs -R "ls -p /" "$IMG?offset=$ROOT_OFF" 2>/dev/null | grep -q sandbox-guest && [ ! -e "$T/dev-workstation/.sandbox-guest" ]
ok $? "the guest's own build left nothing in the image's output"

# A profile's own app with a link in it: the build refuses it (the first boot would, on every
# machine), names it, and leaves no image.
mkdir -p "$T/apps/badapp" "$T/profiles"
echo 'module.exports = { title: "Bad" }' >"$T/apps/badapp/pinokio.js"
ln -s /etc/shadow "$T/apps/badapp/start.js"
printf '{ "extends": "dev-workstation", "pinokio_apps": ["comfyui", "%s"] }\n' "$T/apps/badapp" >"$T/profiles/bad-app.json"
"$PMOVES_IMAGE" build "$T/profiles/bad-app.json" -o "$T" >"$T/bad-app.log" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "'$T/apps/badapp/start.js' is not a file or a directory" "$T/bad-app.log" && [ ! -e "$T/bad-app" ]
ok $? "an app with a symbolic link in it: the build fails (exit $rc), naming it, no image"

# The evidence, once the first boot is done: pinokiod from loopback, from a peer behind an
# interface named tailscale0 (allowed), and from one behind lan0 (not).
cat >"$T/evidence.sh" <<'SH'
#!/bin/sh
exec >/dev/console 2>&1
n=0
until [ "$(systemctl is-enabled pmoves-firstboot.service 2>/dev/null)" = disabled ] || [ $n -ge 600 ]; do sleep 2; n=$((n + 2)); done
echo "DEV-WAITED: $n s for the first boot to end"
echo "DEV-CHECK: $(curl -sS -m 10 http://127.0.0.1:42000/check 2>&1)"
echo "DEV-VERSION: $(curl -sS -m 10 http://127.0.0.1:42000/pinokio/version 2>&1)"
echo "DEV-APPS: $(curl -sS -m 30 http://127.0.0.1:42000/info/apps 2>&1)"
echo "DEV-USER: $(ps -o user= -C node | sort -u | tr '\n' ' ')"
for f in /home/pinokio/pinokio/api/*/*.js; do node --check "$f" 2>&1 | head -n 3 | sed "s|^|DEV-JS-BAD: $f: |"; done
echo "DEV-JS: $(ls /home/pinokio/pinokio/api/*/*.js | wc -l) launcher scripts checked"
echo "DEV-E2B: $(timeout 120 e2b --version 2>&1 | tail -n 1)"
echo "DEV-E2B-SDK: $(cd /tmp && timeout 120 node -e 'const { Sandbox } = require("/usr/lib/pmoves/e2b/node_modules/e2b"); console.log(typeof Sandbox.create)' 2>&1 | tail -n 1)"
echo "DEV-DOCKER: $(systemctl is-active docker.service) $(docker info --format '{{.ServerVersion}}' 2>&1 | head -n 1)"
echo "DEV-ACTIVE: $(systemctl is-active pinokio.service pmoves-pinokio-firewall.service | tr '\n' ' ')"
peer() { # peer IFNAME NS HOST-ADDR PEER-ADDR
	ip netns add "$2" && ip link add "$1" type veth peer name p-"$2" && ip link set p-"$2" netns "$2" &&
	ip addr add "$3"/30 dev "$1" && ip link set "$1" up && ip -n "$2" addr add "$4"/30 dev p-"$2" &&
	ip -n "$2" link set lo up && ip -n "$2" link set p-"$2" up
}
peer tailscale0 tailnet 100.64.0.1 100.64.0.2
peer lan0 lan 192.0.2.1 192.0.2.2
sleep 1
echo "DEV-TAILNET: $(ip netns exec tailnet curl -sS -m 10 http://100.64.0.1:42000/check 2>&1)"
echo "DEV-LAN: $(ip netns exec lan curl -sS -m 5 http://192.0.2.1:42000/check 2>&1)"
mkdir -p /run/control && echo control-page >/run/control/index.html
python3 -m http.server 8099 --bind 0.0.0.0 --directory /run/control >/dev/null 2>&1 &
sleep 2
echo "DEV-LAN-CONTROL: $(ip netns exec lan curl -sS -m 10 http://192.0.2.1:8099/ 2>&1)"
nft list table inet pmoves_pinokio | sed 's/^/DEV-NFT: /'
n=0
until [ "$(grep -c '"auth": "ok"' /run/github-api.log 2>/dev/null)" -ge 2 ] || [ $n -ge 120 ]; do sleep 2; n=$((n + 2)); done
sed 's/^/DEV-CI-API: /' /run/github-api.log
journalctl -b -u pmoves-ci-runner.service -o cat | grep -E 'STANDIN-RUNNER|ci-runner:' | sed 's/^/DEV-CI-JOURNAL: /'
echo "DEV-CI-LEAK: $(journalctl -b -o cat | grep -c github_pat_) $(grep -c github_pat_ /var/lib/pmoves/firstboot/status.json)"
echo "DEV-CI-TOKEN: $(stat -c '%a %U' /etc/pmoves/ci-runner/token)"
echo "DEV-ROUTE: $(ip -4 route show default | tr '\n' ';')"
echo "DEV-SBX-ACTIVE: $(systemctl is-active pmoves-sandbox-net.service)"
journalctl -b -u pmoves-sandbox-net.service -o cat | sed 's/^/DEV-SBX-NETLOG: /'
echo "DEV-SBX-BRIDGE: $(ip -br -4 addr show sbx0 | awk '{print $1, $3}')"
echo "DEV-SBX-MOUNT: $(findmnt -no FSTYPE,OPTIONS /run/pmoves-sandbox)"
echo "DEV-SBX-USER: $(id -nG pmoves-sandbox)"
nft list table inet pmoves_sandbox >/dev/null 2>&1 && echo "DEV-SBX-NFT: loaded"
pmoves-sandbox backends | sed 's/^/DEV-SBX-BACKEND: /'
{
	systemctl start pmoves-sandbox@hello.service
	n=0
	while systemctl is-active -q pmoves-sandbox@hello.service && [ $n -lt 600 ]; do sleep 5; n=$((n + 5)); done
	echo "DEV-SBX-TASK-WAITED: $n s"
	journalctl -b -u pmoves-sandbox@hello.service -o cat | sed 's/^/DEV-SBX-TASK: /'
	echo "DEV-SBX-TASK-RESULT: $(systemctl show -P Result pmoves-sandbox@hello.service) $(systemctl show -P ExecMainStatus pmoves-sandbox@hello.service)"
	echo "DEV-SBX-LEFT: $(ls -A /run/pmoves-sandbox | grep -Ev '^(net|uid)$' | wc -l)"
	sed 's/^/DEV-SBX-AUDIT: /' /var/log/pmoves/sandbox/audit.log
	nft list chain inet pmoves_sandbox forward | sed 's/^/DEV-SBX-FWD: /'
}
echo "DEV-RESULT: done"
SH
api_unit='[Unit]\nDescription=STAND-IN for GitHub API (dev-workstation.t)\n[Service]\nType=exec\nExecStart=/usr/bin/python3 /usr/local/sbin/github-api --port 8765 --log /run/github-api.log --token github_pat_11AAAAAAA0aBcDeFgHiJkL_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU\n'
unit='[Unit]\nDescription=dev-workstation.t evidence (Type=exec: a start job that waited for it would keep the boot from ending)\n[Service]\nType=exec\nExecStart=/usr/local/sbin/dev-evidence\n'
python3 - "$KICK_TIMER" "$KICK_SERVICE" "$unit" "$(base64 -w0 <"$T/evidence.sh")" "$api_unit" \
	"$(base64 -w0 <"$TOP/tests/fixtures/standins/github-api.py")" \
	"$(base64 -w0 <"$TOP/tests/fixtures/standins/actions-runner-run.sh")" >"$T/device.json" <<'PY'
import json, sys
u = lambda s: s.replace("\\n", "\n")
print(json.dumps({
    "files": [{"path": "/etc/systemd/system/pmoves-e2e-kick.timer", "content": u(sys.argv[1])},
              {"path": "/etc/systemd/system/pmoves-e2e-kick.service", "content": u(sys.argv[2])},
              {"path": "/etc/systemd/system/dev-evidence.service", "content": u(sys.argv[3])},
              {"path": "/usr/local/sbin/dev-evidence", "mode": "0755", "content_base64": sys.argv[4]},
              {"path": "/etc/systemd/system/github-api-standin.service", "content": u(sys.argv[5])},
              {"path": "/usr/local/sbin/github-api", "mode": "0755", "content_base64": sys.argv[6]},
              {"path": "/home/ci-runner/actions-runner/run.sh", "mode": "0755", "content_base64": sys.argv[7]},
              # The profile's DHCP, with a gateway: QEMU's restricted user network answers DHCP
              # without one (the guest reaches nothing outside anyway).
              {"path": "/etc/systemd/network/80-pmoves-dhcp.network",
               "content": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\nGateway=10.0.2.2\n"}]
             + [{"path": "/etc/pmoves/sandbox/tasks/hello.json",
                 "content": json.dumps({"command": ["/bin/sh", "-c", "echo sandbox-says-$((6 * 7)); exit 3"],
                                        "ttl_s": 600, "network": True, "memory_mib": 256})}],
    "units": {"enable": ["systemd-networkd.service", "pmoves-e2e-kick.timer"],
              "start": ["systemd-networkd.service", "pmoves-e2e-kick.timer", "github-api-standin.service", "dev-evidence.service"]},
    "ci_runner": {"url": "https://github.com/pmoves-fleet", "api_url": "http://127.0.0.1:8765",
                  "token": "github_pat_11AAAAAAA0aBcDeFgHiJkL_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
                  "labels": ["self-hosted", "pmoves", "dev"]},
    "steps": {"tailnet": {"enabled": False}, "apt-repositories": {"enabled": False}, "efiboot": {"enabled": False},
              "artifacts": {"enabled": False}, "rustdesk": {"enabled": False}}}))
PY
"$PMOVES_IMAGE" run "$IMG" --config "$T/device.json" --log "$T/boot.log" --accel tcg --memory 2048 \
	--expect '^DEV-RESULT: ' --timeout 900 >/dev/null 2>"$T/boot.err"
rc=$?
ok $rc "boots, provisions and reports (run exit $rc)"
[ $rc = 0 ] || tail -n 20 "$T/boot.err" | sed 's/^/# /'
sed -E 's/\x1b\[[0-9;]*m//g' "$T/boot.log" | tr -d '\r' | sed -E 's/^.*((DEV-[A-Z0-9-]+|pmoves-firstboot): )/\1/' >"$T/boot.txt"
B=$T/boot.txt
grep -aq "^pmoves-firstboot: step=pinokio state=pending Pinokio starts once the boot is done" "$B"
ok $? "the boot's own run: the pinokio step waits for the boot to be done"
W='pmoves-firstboot: step=pinokio state=ok pinokiod 5.3.28 answers on port 42000, reachable from "lo", "tailscale0" only; apps: comfyui, facefusion, ollama'
grep -aqF "$W" "$B"; rc=$?
ok $rc "the next run: pinokio ok, pinokiod 5.3.28 answers and lists comfyui, facefusion, ollama"
[ $rc = 0 ] || grep -a 'pmoves-firstboot:' "$B" | sed 's/^/# /' | tail -n 30
grep -aqE '^pmoves-firstboot: done status=ok ' "$B"; ok $? "the first boot ends: done status=ok"
grep -aqE '^DEV-DOCKER: active [0-9]+\.[0-9]+' "$B"; ok $? "Docker's daemon runs and answers (docker info)"
grep -aqx 'DEV-CHECK: {"success":true}' "$B"; ok $? "GET /check on 127.0.0.1:42000: {\"success\":true}"
grep -aq '^DEV-VERSION: {"pinokiod":"5.3.28"' "$B"; ok $? "GET /pinokio/version: pinokiod 5.3.28"
python3 - "$B" <<'PY'
import json, sys
line = next(l for l in open(sys.argv[1], errors="replace") if l.startswith("DEV-APPS: "))
names = sorted(a["name"] for a in json.loads(line[len("DEV-APPS: "):])["apps"])
assert names == ["comfyui", "facefusion", "ollama"], names
PY
ok $? "GET /info/apps: comfyui, facefusion, ollama (their titles and icons from the launchers)"
grep -aqx 'DEV-USER: pinokio ' "$B"; ok $? "pinokiod runs as the user pinokio"
grep -aqx 'DEV-E2B: 1.9.2' "$B"; ok $? "the E2B command line runs on the image's Node: e2b --version says 1.9.2 (on PATH)"
grep -aqx 'DEV-E2B-SDK: function' "$B"; ok $? "the E2B SDK loads: Sandbox.create is a function"
grep -aqx 'DEV-JS: 12 launcher scripts checked' "$B" && ! grep -aq '^DEV-JS-BAD' "$B"
ok $? "the 12 launcher scripts in the user's api/ are valid JavaScript (node --check, the image's Node)"
grep -aqx 'DEV-ACTIVE: active active ' "$B"; ok $? "pinokio.service and its firewall unit are active"
grep -aqx 'DEV-TAILNET: {"success":true}' "$B"; ok $? "from a peer behind tailscale0: answers"
grep -aqE '^DEV-LAN: curl: \(28\)' "$B"; ok $? "from a peer behind lan0: no answer (dropped: curl times out)"
grep -aqx 'DEV-LAN-CONTROL: control-page' "$B"
ok $? "control: the same peer reaches a server on another port of the machine (the drop is the table's, for 42000 only)"
grep -aqE '^DEV-NFT:[[:space:]]+tcp dport 42000 drop$' "$B" && grep -aqE '^DEV-NFT:[[:space:]]+iifname \{ "lo", "tailscale0" \} tcp dport 42000 accept$' "$B"; ok $? "the table pmoves_pinokio is loaded with its drop"
# The run after the boot's: apply waits for the service to be active, or check already finds it
# so (between two jobs the runner is restarted: either can come first). The journal's
# "registered" lines lose their DEV-CI-JOURNAL prefix to the console clean-up above.
W='pmoves-firstboot: step=ci-runner state=ok an ephemeral runner registered just in time for each job, from http://127.0.0.1:8765/orgs/pmoves-fleet/actions/runners/generate-jitconfig'
sed -n '/step=ci-runner state=pending the runner starts once the boot is done/,$p' "$B" >"$T/ci-after.txt"
{ grep -aqF "$W" "$T/ci-after.txt" || grep -aqx 'pmoves-firstboot: step=ci-runner state=skipped already done' "$T/ci-after.txt"; } &&
	grep -aq '^pmoves-firstboot: ci-runner: runner .dev-workstation-[0-9a-f]\{8\}. (id [0-9]*) registered just in time for one job$' "$B"
ok $? "ci-runner: after the boot, its service runs after a just-in-time registration (stand-in GitHub API)"
python3 - "$B" <<'PY'
import json, sys
reqs = [json.loads(l[len("DEV-CI-API: "):]) for l in open(sys.argv[1], errors="replace") if l.startswith("DEV-CI-API: ")]
ok = [r for r in reqs if r["auth"] == "ok" and r["path"] == "/orgs/pmoves-fleet/actions/runners/generate-jitconfig"
      and r["api_version"] == "2022-11-28" and r["body"]["labels"] == ["self-hosted", "pmoves", "dev"]]
names = {r["body"]["name"] for r in ok}
assert len(ok) >= 2 and len(names) == len(ok) and all(n.startswith("dev-workstation-") for n in names), reqs
PY
ok $? "the stand-in API got two or more registrations: the token, GitHub's API version, the labels, a new name each"
grep -aqE '^DEV-CI-JOURNAL: STANDIN-RUNNER: runner dev-workstation-[0-9a-f]{8} as ci-runner in /home/ci-runner/actions-runner, 0 arguments, config from the environment$' "$B" &&
	grep -aqE '^DEV-CI-JOURNAL: STANDIN-RUNNER: runner dev-workstation-[0-9a-f]{8} ran its one job$' "$B"
ok $? "the stand-in runner ran as ci-runner with its config in the environment (no arguments), one job"
[ "$(grep -acE '^DEV-CI-JOURNAL: STANDIN-RUNNER: runner .* as ci-runner' "$B")" -ge 2 ]
ok $? "after its job the runner was started again, with a new registration"
grep -aqx 'DEV-CI-LEAK: 0 0' "$B"; ok $? "the token is in neither the journal nor status.json"
grep -aqx 'DEV-CI-TOKEN: 600 root' "$B"; ok $? "the token is kept in /etc/pmoves/ci-runner/token, 0600 root"
# The sandbox step: on the machine, the network service up and the QEMU backend usable (no
# Firecracker: its artifact is not fetched here, and the machine has no /dev/kvm).
# The boot's own run sets it up and waits; the next finds the network service started by then
# (already done), or starts it and says what can run.
sed -n '/step=sandbox state=pending the sandboxes.* network starts once the boot is done/,$p' "$B" >"$T/sbx-after.txt"
grep -aqE '^pmoves-firstboot: step=sandbox state=ok sandboxes ready: firecracker: .*; qemu: usable \(Firecracker when it is installed\)$' "$T/sbx-after.txt" ||
	grep -aqx 'pmoves-firstboot: step=sandbox state=skipped already done' "$T/sbx-after.txt"
ok $? "sandbox step: pending in the boot's run, then done (the network service up)"
grep -aqx 'DEV-SBX-ACTIVE: active' "$B" && grep -aqx 'DEV-SBX-BRIDGE: sbx0 10.77.0.1/24' "$B" && grep -aqx 'DEV-SBX-NFT: loaded' "$B"
ok $? "pmoves-sandbox-net.service active: bridge sbx0 at 10.77.0.1/24, the table pmoves_sandbox loaded"
# net-up at boot may come before DHCP's answer (network-online.target does not wait for it
# here): then the first sandbox's launcher finds the route and the table follows it.
{ grep -aqE '^DEV-SBX-NETLOG: bridge sbx0 at 10.77.0.1/24, sandboxes leave through en[a-z0-9]+$' "$B" ||
	grep -aqE '^DEV-SBX-TASK: the default route now leads through en[a-z0-9]+: sandboxes leave there$' "$B"; } &&
	grep -aqE '^DEV-SBX-FWD:[[:space:]]+iifname "sbx0" oifname != "en[a-z0-9]+" drop$' "$B"
ok $? "... leaving through the machine's uplink (the default route's, from DHCP)" || grep -a '^DEV-SBX-NETLOG\|^DEV-SBX-FWD' "$B" | sed 's/^/# /'
grep -aqE '^DEV-SBX-MOUNT: tmpfs +rw,nosuid,.*mode=711' "$B" && ! grep -aqE '^DEV-SBX-MOUNT: .*(nodev|noexec)' "$B"
ok $? "the sandboxes' state: a tmpfs of its own, mode 711, without nodev or noexec"
grep -aqE '^DEV-SBX-USER: pmoves-sandbox( .*)? kvm( |$)' "$B"; ok $? "the user pmoves-sandbox, in group kvm"
grep -aqE '^DEV-SBX-BACKEND: qemu +usable$' "$B"; ok $? "pmoves-sandbox backends on the machine: qemu usable"
# A task through the template: the baked guest boots under the workstation's own QEMU (TCG
# inside the TCG-emulated workstation: about 15 s here).
grep -aqx 'DEV-SBX-TASK: sandbox-says-42' "$B" && grep -aqx 'DEV-SBX-TASK-RESULT: exit-code 3' "$B"
ok $? "pmoves-sandbox@hello: the task ran in a microVM inside the workstation, its output in the journal, its exit code the unit's"
grep -aqE '^DEV-SBX-AUDIT: .* create id=sbx-[0-9a-f]{16} .* network=yes uid=1879048[0-9]{3}$' "$B" &&
	grep -aqE '^DEV-SBX-AUDIT: .* destroy id=sbx-[0-9a-f]{16} .* status=exited:3 ' "$B" && grep -aqx 'DEV-SBX-LEFT: 0' "$B"
ok $? "... with a tap on the bridge; the audit log has both lines, nothing is left on the tmpfs"
grep -a '^DEV-SBX-TASK' "$B" | sed 's/^/# /' | tail -n 20
! grep -aq "pmoves-firstboot: step=[a-z-]* state=failed" "$B"; ok $? "no step failed"
grep -a "^DEV-\|step=pinokio\|step=ci-runner\|step=sandbox" "$B" | grep -v DEV-NFT | sed 's/^/# /' | cut -c1-300
done_testing
