#!/bin/bash
# The headscale-hub profile on a real boot. Headscale and Tailscale cannot be installed here:
# STAND-INS (tests/fixtures/standins/: shell scripts that play Headscale 0.29's CLI forms and
# serve HTTPS with openssl s_server, and Tailscale's CLI, whose "up" connects over TLS with
# openssl s_client and verifies the certificate against the roots tailscaled would use) are put
# in the image by the device config's "files", with stand-in units; the stand-in server runs as
# the user "headscale", as Headscale's package runs it. The hub gets a certificate and key for
# its name from a test CA made here.
#   Boot 1, the negative control: the hub trusts another CA. Headscale's files, service, users
#   and pre-auth keys are made; the hub's own join fails on the certificate (pending). The
#   test stops the machine once the console says so.
#   Boot 2: the hub trusts the test CA; the join over https verifies and succeeds, done
#   status=ok, the guest powers off.
# Then, from the disk: the key files (TLS key 0600 owned by headscale, pre-auth keys 0600), the
# stand-ins' records, and no pre-auth key value nor the TLS key on the consoles, in the guest's
# journal (journald closes its files at the power-off) or in the first boot's state and status
# files. It proves nothing about the real Headscale or Tailscale.
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 mmdebstrap python3 debugfs openssl
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || skip_all "OVMF is not installed (package ovmf)"
[ "$(id -u)" = 0 ] || skip_all "building an image needs root"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-hub.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 24
STANDINS=$TOP/tests/fixtures/standins
HUB=hub-test.fleet.example.org

"$PMOVES_IMAGE" build headscale-hub -o "$T" >"$T/build.log" 2>&1
ok $? "build headscale-hub"
python3 - "$T/headscale-hub/manifest.json" <<'PY'
import json, sys
a = [x for x in json.load(open(sys.argv[1]))["third_party"] if x["name"] == "headscale_0.29.2_linux_amd64.deb"]
sys.exit(0 if a and a[0].get("version") == "0.29.2" and "NOT VERIFIED" in a[0].get("note", "") else 1)
PY
ok $? "manifest.json: Headscale's .deb with its version, its pin marked as not verified"

# The test CA, the hub's certificate (its name in subjectAltName) and key, and a CA that signed
# nothing here.
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30"
(cd "$T" && openssl req -x509 $ec -keyout ca.key -out ca.pem -subj "/CN=pmoves hub.t CA" &&
	openssl req $ec -keyout hub.key -out hub.csr -subj "/CN=$HUB" &&
	printf 'subjectAltName=DNS:%s\n' "$HUB" >ext &&
	openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out hub.pem -days 30 -extfile ext &&
	openssl req -x509 $ec -keyout wrong.key -out wrong.pem -subj "/CN=pmoves hub.t wrong CA") >"$T/pki.log" 2>&1
ok $? "a test CA and the hub's certificate (openssl)"

device() { # device CA_FILE: the device config, the hub trusting CA_FILE
	python3 - "$STANDINS" "$T" "$1" "$HUB" "$KICK_TIMER" "$KICK_SERVICE" <<'PY'
import json, sys
d, t, ca, hub, kick_timer, kick_service = sys.argv[1:]
unit = "[Unit]\nDescription=STAND-IN for %s (pmoves tests)\n[Service]\n%sExecStart=%s\n[Install]\nWantedBy=multi-user.target\n"
server = ("User=headscale\nGroup=headscale\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nStateDirectory=headscale\n"
          "Restart=on-failure\nRestartSec=2\n")
print(json.dumps({
    "hostname": hub,
    # Headscale's package makes this user and runs the server as it.
    "users": [{"name": "headscale", "shell": "/usr/sbin/nologin"}],
    "files": [
        {"path": "/usr/bin/headscale", "content": open(d + "/headscale").read(), "mode": "0755"},
        {"path": "/usr/bin/tailscale", "content": open(d + "/tailscale").read(), "mode": "0755"},
        {"path": "/etc/systemd/system/headscale.service", "content": unit % ("headscale", server, "/usr/bin/headscale serve")},
        {"path": "/etc/systemd/system/tailscaled.service", "content": unit % ("tailscaled", "", "/bin/sleep infinity")},
        # Where tailscaled (Go's crypto/x509) finds roots: any file in /etc/ssl/certs.
        {"path": "/etc/ssl/certs/pmoves-fleet-ca.pem", "content": open(ca).read()},
        # lib.sh's: the first boot's run after the boot 20 s after it, not 2 min
        {"path": "/etc/systemd/system/pmoves-e2e-kick.timer", "content": kick_timer.replace("\\n", "\n")},
        {"path": "/etc/systemd/system/pmoves-e2e-kick.service", "content": kick_service.replace("\\n", "\n")},
    ],
    "units": {"enable": ["systemd-networkd.service", "pmoves-e2e-kick.timer"],
              "start": ["systemd-networkd.service", "pmoves-e2e-kick.timer"]},
    "headscale": {"server_url": "https://" + hub,
                  "tls": {"cert": open(t + "/hub.pem").read(), "key": open(t + "/hub.key").read()}},
    "tailnet": {"login_server": "https://" + hub},
    "finally": "poweroff",
    # The stand-ins take the place of Tailscale's repository and package and of the profile's
    # Headscale .deb (whose pin is a placeholder here).
    "steps": {"apt-repositories": {"enabled": False}, "artifacts": {"enabled": False}},
}))
PY
}
device "$T/wrong.pem" >"$T/device-wrong.json" && device "$T/ca.pem" >"$T/device.json"
ok $? "device configs: the hub trusting another CA, then the test CA"
cp --sparse=always "$T/headscale-hub/headscale-hub.img" "$T/disk.img"
clean() { sed 's/\x1b\[[0-9;]*m//g' "$1" | tr -d '\r' >"$2"; }

# Boot 1. The boot's own run comes before sysinit.target: headscale and the join wait (pending)
# for the run after the boot (the kick timer's, 20 s after it; the real timer's is 2 min).
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device-wrong.json" --timeout 800 --log "$T/boot1.log" \
	--expect "^pmoves-firstboot: step=tailnet state=pending not joined" >/dev/null 2>"$T/run1.err"
ok $? "boot 1 (hub trusting another CA): the join ends pending"
clean "$T/boot1.log" "$T/boot1.txt"
grep -aqE "^pmoves-firstboot: step=headscale state=pending config written, headscale enabled; users and keys once the boot is done$" "$T/boot1.txt"
ok $? "boot 1: during the boot, headscale waits for the boot to finish"
grep -aqE "^pmoves-firstboot: step=headscale state=ok https on 0\.0\.0\.0:443 with the certificate in /etc/headscale/tls\.crt; 2 users and 3 pre-auth keys made; keys \(0600\) in /var/lib/pmoves/headscale/fleet\.key, /var/lib/pmoves/headscale/mesh\.key, /var/lib/pmoves/headscale/ci\.key$" "$T/boot1.txt"
ok $? "boot 1: https on 443 with the certificate; users and keys made, the key files named"
grep -aqE "^pmoves-firstboot: step=tailnet state=pending not joined to 'https://$HUB' after 3 attempts" "$T/boot1.txt"
ok $? "boot 1: the hub cannot join its own tailnet: the certificate does not verify"

# Boot 2.
"$PMOVES_IMAGE" run "$T/disk.img" --persist --config "$T/device.json" --timeout 800 --log "$T/boot2.log" \
	>/dev/null 2>"$T/run2.err"
ok $? "boot 2 (hub trusting the test CA): done status=ok and powers off (QEMU exits 0)"
clean "$T/boot2.log" "$T/boot2.txt"
grep -aqE "^pmoves-firstboot: step=tailnet state=ok on the tailnet as hub-test\.fleet\.internal\. 100\.64\.0\.1$" "$T/boot2.txt"
ok $? "boot 2: the hub joined its own tailnet over https (stand-in's status)"
grep -aqE '^pmoves-firstboot: done status=ok ' "$T/boot2.txt"
ok $? "boot 2: done status=ok"

part_copy "$T/disk.img" 2 "$T/root.ext4"
e2fsck -fy "$T/root.ext4" >/dev/null 2>&1
get() { debugfs -R "cat $1" "$T/root.ext4" 2>/dev/null; }
stat_of() { debugfs -R "stat $1" "$T/root.ext4" 2>/dev/null; }
mode() { stat_of "$1" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p'; }
owner() { stat_of "$1" | sed -n 's/.*User: *\([0-9]*\) *Group: *\([0-9]*\).*/\1:\2/p'; }
hs_ids=$(get /etc/passwd | awk -F: '$1 == "headscale" { print $3 ":" $4 }')
[ -n "$hs_ids" ] && [ "$(mode /etc/headscale/tls.key)" = 0600 ] && [ "$(owner /etc/headscale/tls.key)" = "$hs_ids" ]
ok $? "the TLS key is 0600, owned by headscale ($hs_ids), the user the server runs as"
[ "$(get /etc/headscale/tls.key)" = "$(cat "$T/hub.key")" ] && [ "$(mode /etc/headscale/tls.crt)" = 0644 ]
ok $? "the key file holds the key; the certificate is 0644"
is "$(mode /var/lib/pmoves/headscale/fleet.key)" "0600" "the fleet key file is 0600"
keys=$(for k in fleet mesh ci; do get /var/lib/pmoves/headscale/$k.key; done)
[ "$(echo "$keys" | grep -c '^hskey-auth-')" = 3 ]
ok $? "the three key files hold keys (the values searched for below)"
# The policy the hub wrote: CI runners (tag:ci, the ephemeral "ci" key) reach only what the
# profile lists; the fleet reaches everything. Checked as Headscale reads it (HuJSON: the
# comment line off), not by Headscale (not installable here).
get /etc/headscale/acl.hujson | python3 -c '
import json, sys
p = json.loads("".join(l for l in sys.stdin if not l.lstrip().startswith("//")))
acls = p["acls"]
ci = [a for a in acls if "tag:ci" in a["src"]]
assert ci == [{"action": "accept", "src": ["tag:ci"], "dst": ["tag:core:22,443"]}], ci
assert not any("*" in a["src"] or "autogroup:member" in a["src"] for a in acls), acls
assert "tag:ci" in p["tagOwners"] and "tag:dev" in p["tagOwners"], p["tagOwners"]
'
ok $? "acl.hujson: tag:ci may reach tag:core:22,443 only (the profile's list); no rule for everyone"

# The guest's journal, as journald left it at the power-off, read with the host's journalctl.
rm -rf "$T/journal" && mkdir "$T/journal"
debugfs -R "rdump /var/log/journal $T/journal" "$T/root.ext4" >/dev/null 2>&1
journalctl --file "$T/journal/journal/*/*.journal" -o cat >"$T/journal.txt" 2>/dev/null
grep -aqE '^pmoves-firstboot: step=tailnet state=ok on the tailnet' "$T/journal.txt" &&
	grep -aq 'pmoves-firstboot: done status=ok' "$T/journal.txt"
ok $? "the guest's journal holds the first boot's lines (so the search below covers it)"
rm -rf "$T/state" && mkdir "$T/state"
debugfs -R "rdump /var/lib/pmoves/firstboot $T/state" "$T/root.ext4" >/dev/null 2>&1
[ -s "$T/state/firstboot/status.json" ] && [ -s "$T/state/firstboot/state.json" ]
ok $? "the first boot's status.json and state.json are there"
# A line from the middle of the TLS key: what a leak of it would show.
tls_line=$(sed -n 2p "$T/hub.key")
leaks=0
for f in "$T/boot1.txt" "$T/boot2.txt" "$T/journal.txt" "$T/state/firstboot/status.json" "$T/state/firstboot/state.json"; do
	for k in $keys "$tls_line"; do grep -aqF -- "$k" "$f" && { diag "leak in $f"; leaks=1; }; done
done
ok $leaks "no pre-auth key and no TLS key on the consoles, in the journal ($(wc -l <"$T/journal.txt") lines), status.json or state.json"

calls=$(get /var/lib/standin/headscale.calls)
is "$(echo "$calls" | grep '^preauthkeys create')" "preauthkeys create --user 1 --reusable --expiration 720h --tags tag:core -o json
preauthkeys create --user 1 --reusable --expiration 720h --tags tag:mesh -o json
preauthkeys create --user 2 --reusable --ephemeral --expiration 720h --tags tag:ci -o json" \
	"three keys asked of the stand-in by numeric user ID (0.29's form)"
tcalls=$(get /var/lib/standin/tailscale.calls)
echo "$tcalls" | grep -q "^up --reset --login-server=https://$HUB --auth-key=file:/var/lib/pmoves/headscale/fleet.key --hostname=hub-test --advertise-tags=tag:core --timeout=60s$"
ok $? "tailscale up with the key file and the core tag"
is "$(echo "$tcalls" | grep -c "^up: TLS to '$HUB:443' failed: verify error:num=20:unable to get local issuer certificate$")" 3 \
	"boot 1: the certificate refused on each of the 3 attempts (another CA)"
echo "$tcalls" | grep -q "^up: TLS to '$HUB:443' verified: depth=0 CN = $HUB$"
ok $? "boot 2: the certificate verified against the test CA"
grep -q "server_url: https://$HUB" <(get /etc/headscale/config.yaml) &&
	grep -q '^tls_cert_path: /etc/headscale/tls.crt$' <(get /etc/headscale/config.yaml)
ok $? "the device's server_url and the certificate are in Headscale's config"
done_testing
