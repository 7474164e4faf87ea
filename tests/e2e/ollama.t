#!/bin/bash
# The ollama step (firstboot/step-ollama.c): pmoves-firstboot runs on a tree taken for the
# running system (PMOVES_FIRSTBOOT_LIVE=1) inside a network namespace of this test's, so that:
#   - the step's nftables table is loaded by the real nft in that namespace, and real TCP
#     connections come in over veth pairs named as on a node: tailscale0 (the tailnet), bat0
#     (the mesh), both allowed, and eth0 (a LAN), which is not;
#   - the step's HTTP requests go to a stand-in for `ollama serve`
#     (tests/fixtures/standins/ollama-server.py: Ollama cannot be installed here) that keeps
#     Ollama's store layout and speaks /api/tags, /api/pull, /api/generate and /api/delete as
#     Ollama documents them; its "registry" for pulls is a directory;
#   - systemctl, systemd-sysusers and nvidia-smi are the stand-in runner's (below): systemctl
#     starts the stand-in server with the OLLAMA_HOST and OLLAMA_MODELS that the step's
#     ollama.service says.
# Verified against the stand-ins only; nothing here is the real Ollama or a real GPU.
. "$(dirname "$0")/lib.sh"
need nft ip python3 curl sha256sum
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, nftables)"
ip netns add pmoves-probe-$$ 2>/dev/null || skip_all "cannot make a network namespace here"
ip netns del pmoves-probe-$$
FB=$BUILD/pmoves-firstboot
[ -x "$FB" ] || skip_all "$FB is not built (make)"

T=$(mktemp -d /tmp/pmoves-ollama.XXXXXX)
SRV=pmoves-osrv-$$
CLI=pmoves-ocli-$$
cleanup() {
	[ -f "$T/ollama.pid" ] && kill "$(cat "$T/ollama.pid")" 2>/dev/null
	[ -f "$T/other.pid" ] && kill "$(cat "$T/other.pid")" 2>/dev/null
	ip netns del "$SRV" 2>/dev/null
	ip netns del "$CLI" 2>/dev/null
	[ -n "${KEEP:-}" ] && { echo "# kept $T" >&2; return; }
	rm -rf "$T"
}
trap cleanup EXIT
plan 49

# ---- the network: SRV holds the node, CLI the clients on each of its three interfaces ----
ip netns add "$SRV" && ip netns add "$CLI" || exit 1
n=1
for ifc in tailscale0 bat0 eth0; do
	ip link add "$ifc" netns "$SRV" type veth peer name "c$n" netns "$CLI"
	ip -n "$SRV" addr add "10.77.$n.1/24" dev "$ifc"
	ip -n "$CLI" addr add "10.77.$n.2/24" dev "c$n"
	ip -n "$SRV" link set "$ifc" up
	ip -n "$CLI" link set "c$n" up
	n=$((n + 1))
done
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up

# ---- models: blobs and manifests in Ollama's layout ----
# blob DIR CONTENT -> prints its sha256 and writes DIR/blobs/sha256-HEX
blob() {
	local h
	h=$(printf '%s' "$2" | sha256sum | cut -d' ' -f1)
	mkdir -p "$1/blobs"
	printf '%s' "$2" > "$1/blobs/sha256-$h"
	echo "$h"
}
# model DIR NAME TAG CONFIG-HEX CONFIG-SIZE LAYER-HEX LAYER-SIZE -> prints the manifest's sha256
model() {
	local m="$1/manifests/registry.ollama.ai/library/$2"
	mkdir -p "$m"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%s}]}' \
		"$4" "$5" "$6" "$7" > "$m/$3"
	sha256sum "$m/$3" | cut -d' ' -f1
}
CONFIG='{"model_format":"gguf","model_family":"stand-in"}'
WEIGHTS1='stand-in weights of tiny:1b, not a model'
WEIGHTS2='stand-in weights of pulled:2b, not a model'
EVIL='stand-in weights of evil:1b'
REG=$T/registry
cfg_hex=$(blob "$REG" "$CONFIG")
w2=$(blob "$REG" "$WEIGHTS2")
PULLED=$(model "$REG" pulled 2b "$cfg_hex" ${#CONFIG} "$w2" ${#WEIGHTS2})
we=$(blob "$REG" "$EVIL")
EVIL_REAL=$(model "$REG" evil 1b "$cfg_hex" ${#CONFIG} "$we" ${#EVIL})
EVIL_PIN=$(printf 'what the site pinned' | sha256sum | cut -d' ' -f1)

# tree NAME: a root with the stand-in ollama binary, accounts, and a baked store at /data/ollama
# holding tiny:1b and tiny:2b (which share the config blob); prints the root
tree() {
	local r=$T/$1
	mkdir -p "$r/etc/pmoves" "$r/usr/bin" "$r/data/ollama"
	printf 'root:x:0:0:root:/root:/bin/bash\n' > "$r/etc/passwd"
	printf 'root:x:0:\nvideo:x:44:\nrender:x:105:\n' > "$r/etc/group"
	printf '#!/bin/sh\necho "stand-in: the runner starts tests/fixtures/standins/ollama-server.py" >&2\nexit 1\n' > "$r/usr/bin/ollama"
	chmod 755 "$r/usr/bin/ollama"
	echo "$r"
}
bake() { # bake ROOT: tiny:1b and tiny:2b in ROOT's store; sets TINY1, TINY2, W1
	local s=$1/data/ollama c w
	c=$(blob "$s" "$CONFIG")
	W1=$(blob "$s" "$WEIGHTS1")
	w=$(blob "$s" "$WEIGHTS1 (2b)")
	TINY1=$(model "$s" tiny 1b "$c" ${#CONFIG} "$W1" ${#WEIGHTS1})
	TINY2=$(model "$s" tiny 2b "$c" ${#CONFIG} "$w" $((${#WEIGHTS1} + 5)))
}

# The stand-in runner: every command pmoves-firstboot runs comes here (PMOVES_FIRSTBOOT_RUNNER).
cat > "$T/runner" <<EOF
#!/bin/bash
# stand-in for systemctl, systemd-sysusers and nvidia-smi (not the real programs); nft is the real one
echo "\$*" >> $T/calls
[ "\$1" = chroot ] && shift 2
case \$1 in
nft) exec "\$@";;
systemd-sysusers)
	grep -q '^ollama:' \$ROOT/etc/passwd || echo 'ollama:x:990:990:Ollama:/var/lib/ollama:/usr/sbin/nologin' >> \$ROOT/etc/passwd
	grep -q '^ollama:' \$ROOT/etc/group || echo 'ollama:x:990:' >> \$ROOT/etc/group
	exit 0;;
nvidia-smi)
	[ -n "\${STANDIN_GPU:-}" ] && { echo "\$STANDIN_GPU"; exit 0; }
	echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver (stand-in)"; exit 9;;
systemctl) shift;;
*) exit 0;;
esac
case \$1 in --root=*|--quiet|--no-block) shift;; esac
verb=\$1; shift
mkdir -p $T/units
case \$verb in
is-system-running) echo "\${STANDIN_STATE:-running}";;
is-enabled) [ -e $T/units/\$1.enabled ] && { echo enabled; exit 0; }; echo disabled; exit 1;;
is-active)
	if [ "\$1" = ollama.service ]; then kill -0 "\$(cat $T/ollama.pid 2>/dev/null)" 2>/dev/null; exit; fi
	[ -e $T/units/\$1.active ] && { echo active; exit 0; }; echo inactive; exit 3;;
enable) for u; do : > $T/units/\$u.enabled; done;;
disable) for u; do rm -f $T/units/\$u.enabled; done;;
start|restart)
	for u; do
		: > $T/units/\$u.active
		# as the firewall unit's ExecStart does
		[ "\$u" = pmoves-ollama-firewall.service ] && nft -f \$ROOT/etc/pmoves/ollama.nft
		[ "\$u" = ollama.service ] || continue
		[ -f $T/ollama.pid ] && kill "\$(cat $T/ollama.pid)" 2>/dev/null && sleep 0.3
		unit=\$ROOT/etc/systemd/system/ollama.service
		h=\$(sed -n 's/^Environment="OLLAMA_HOST=\(.*\)"\$/\1/p' \$unit)
		m=\$(sed -n 's/^Environment="OLLAMA_MODELS=\(.*\)"\$/\1/p' \$unit)
		OLLAMA_HOST=\$h OLLAMA_MODELS=\$ROOT\$m STANDIN_REGISTRY=$REG STANDIN_LOG=$T/api.log \
			setsid python3 $TOP/tests/fixtures/standins/ollama-server.py serve </dev/null >>$T/server.log 2>&1 &
		echo \$! > $T/ollama.pid
	done;;
stop) for u; do rm -f $T/units/\$u.active; done;;
esac
exit 0
EOF
chmod 755 "$T/runner"

OFF='"steps": {"growfs": {"enabled": false}, "ssh": {"enabled": false}, "efiboot": {"enabled": false}}'
# fb ROOT [ENV...]: pmoves-firstboot run on ROOT in SRV; output in $T/out, exit status in $RC
fb() {
	local root=$1; shift
	: > "$T/api.log"
	ip netns exec "$SRV" env ROOT="$root" PMOVES_FIRSTBOOT_LIVE=1 PMOVES_FIRSTBOOT_RUNNER="$T/runner" "$@" \
		"$FB" run --root "$root" > "$T/out" 2>&1
	RC=$?
}
line() { grep "step=ollama state=$1" "$T/out"; }
status_of() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print([x["state"] for x in s["steps"] if x["name"]=="ollama"][0], s["status"])' "$1/var/lib/pmoves/firstboot/status.json"; }

# ---- 1: a baked model and a pulled one, no GPU: degraded, and the port on the tailnet and the mesh only ----
R1=$(tree one)
bake "$R1"
mkdir -p "$R1/data/ollama/notes" && echo mine > "$R1/data/ollama/notes/site.txt"
cat > "$R1/etc/pmoves/firstboot.json" <<EOF
{$OFF, "ollama": {"models_dir": "/data/ollama",
  "models": [{"name": "tiny:1b", "digest": "$TINY1"}, {"name": "pulled:2b", "digest": "$PULLED"}]}}
EOF
fb "$R1"
is "$RC" 1 "no GPU: the run exits 1 (degraded)"
line degraded > /dev/null; ok $? "the ollama step ends degraded"
grep -q "step=ollama state=degraded 2 models on 0.0.0.0:11434, reachable from \"lo\", \"tailscale0\", \"bat0\" only; no GPU (no /etc/nv_tegra_release; nvidia-smi: failed): Ollama runs on the CPU" "$T/out"
ok $? "its message: the models, the address, who may connect, and that it runs on the CPU" || sed 's/^/# /' "$T/out"
grep -q "done status=degraded" "$T/out"; ok $? "the run ends degraded, not failed"
is "$(status_of "$R1")" "degraded degraded" "status.json: the step and the run degraded"
grep -qx 'GET /api/tags -' "$T/api.log"; ok $? "the step asked GET /api/tags"
grep -qx 'POST /api/pull {"model":"pulled:2b","stream":false}' "$T/api.log"; ok $? "it pulled the model not in the store: POST /api/pull {model, stream: false}"
! grep -q 'POST /api/pull {"model":"tiny:1b"' "$T/api.log"; ok $? "it did not pull the baked one"
grep -qx 'POST /api/generate {"model":"tiny:1b","options":{"num_predict":8},"prompt":"Reply with one word: ready.","stream":false}' "$T/api.log"
ok $? "a short POST /api/generate" || sed 's/^/# /' "$T/api.log"
[ -f "$R1/data/ollama/manifests/registry.ollama.ai/library/pulled/2b" ] && [ -f "$R1/data/ollama/blobs/sha256-$w2" ]
ok $? "the pulled model is in the store"
is "$(stat -c %u:%g "$R1/data/ollama" "$R1/data/ollama/blobs/sha256-$W1" "$R1/var/lib/ollama" | sort -u)" "990:990" "the store and the home are the ollama user's"
is "$(stat -c %u:%g "$R1/data/ollama/notes" "$R1/data/ollama/notes/site.txt" | sort -u)" "0:0" "what else is in the store's directory is left as it was"
grep -qx 'Environment="OLLAMA_HOST=0.0.0.0:11434"' "$R1/etc/systemd/system/ollama.service" &&
	grep -qx 'Environment="OLLAMA_MODELS=/data/ollama"' "$R1/etc/systemd/system/ollama.service" &&
	grep -qx 'User=ollama' "$R1/etc/systemd/system/ollama.service" &&
	grep -qx 'Requires=pmoves-ollama-firewall.service' "$R1/etc/systemd/system/ollama.service"
ok $? "ollama.service: OLLAMA_HOST, OLLAMA_MODELS, the user, and it requires the firewall"
[ -e "$T/units/ollama.service.enabled" ] && [ -e "$T/units/pmoves-ollama-firewall.service.enabled" ]
ok $? "both units enabled"
grep -qx 'u ollama - "Ollama" /var/lib/ollama' "$R1/etc/sysusers.d/pmoves-ollama.conf" && grep -q '^systemd-sysusers /etc/sysusers.d/pmoves-ollama.conf' "$T/calls"
ok $? "the user comes from systemd-sysusers"
out=$(ip netns exec "$SRV" nft list table inet pmoves_ollama 2>&1)
printf '%s' "$out" | grep 'tcp dport 11434 accept' | grep '"lo"' | grep '"tailscale0"' | grep -q '"bat0"' && printf '%s' "$out" | grep -q 'tcp dport 11434 drop'
ok $? "the nftables table is loaded in the node's namespace" || printf '%s\n' "$out" | sed 's/^/# /'

# The firewall, with real connections: a control server on another port shows eth0 works.
ip netns exec "$SRV" setsid python3 -m http.server --bind 0.0.0.0 8080 </dev/null >/dev/null 2>&1 &
echo $! > "$T/other.pid"
sleep 1
get() { ip netns exec "$CLI" curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$@"; }
is "$(get http://10.77.1.1:11434/api/tags)" 200 "the API answers from the tailnet (tailscale0)"
is "$(get http://10.77.2.1:11434/api/tags)" 200 "the API answers from the mesh (bat0)"
is "$(get http://10.77.3.1:11434/api/tags)" 000 "the API is dropped from a LAN (eth0)"
is "$(get http://10.77.3.1:8080/)" 200 "another port answers on eth0: the drop is the API's port only"
is "$(ip netns exec "$SRV" curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:11434/api/tags)" 200 "the API answers on loopback"

# Run again, same config: the step is done, and the run still says degraded.
fb "$R1"
grep -q "step=ollama state=degraded already done (degraded)" "$T/out" && grep -q "done status=degraded" "$T/out"
ok $? "a second run: already done, still degraded"

# ---- 2: a baked blob with a wrong digest ----
R2=$(tree two)
bake "$R2"
printf '%s' "${WEIGHTS1/tiny/TINY}" > "$R2/data/ollama/blobs/sha256-$W1" # same size, other bytes
bad=$(sha256sum "$R2/data/ollama/blobs/sha256-$W1" | cut -d' ' -f1)
cat > "$R2/etc/pmoves/firstboot.json" <<EOF
{$OFF, "ollama": {"models_dir": "/data/ollama", "models": [{"name": "tiny:1b", "digest": "$TINY1"}]}}
EOF
rm -f "$T/units/"*
fb "$R2"
is "$RC" 1 "a wrong blob: the run exits 1"
grep -q "step=ollama state=failed model 'tiny:1b': blob sha256:$W1 holds sha256:$bad: refused, removed from the store" "$T/out"
ok $? "the step fails naming the model, the blob and both hashes" || sed 's/^/# /' "$T/out"
[ ! -e "$R2/data/ollama/blobs/sha256-$W1" ] && [ ! -e "$R2/data/ollama/manifests/registry.ollama.ai/library/tiny/1b" ]
ok $? "the wrong blob and the model's manifest are gone from the store"
[ -e "$R2/data/ollama/blobs/sha256-$cfg_hex" ]; ok $? "the config blob kept: tiny:2b, in the store though not configured, lists it"
! grep -q /api/ "$T/api.log" && [ ! -e "$T/units/ollama.service.enabled" ]
ok $? "Ollama was not started with it"

# ---- 3: a pulled model that is not the pinned one ----
R3=$(tree three)
cat > "$R3/etc/pmoves/firstboot.json" <<EOF
{$OFF, "ollama": {"models_dir": "/data/ollama", "models": [{"name": "evil:1b", "digest": "$EVIL_PIN"}]}}
EOF
fb "$R3"
grep -q "step=ollama state=failed model 'evil:1b' pulled as sha256:$EVIL_REAL, not the pinned sha256:$EVIL_PIN: deleted" "$T/out"
ok $? "a pulled model with another digest: the step fails naming both" || sed 's/^/# /' "$T/out"
grep -qx 'DELETE /api/delete {"model":"evil:1b"}' "$T/api.log"; ok $? "it asked DELETE /api/delete for it"
[ ! -e "$R3/data/ollama/manifests/registry.ollama.ai/library/evil/1b" ]; ok $? "its manifest is gone"

# ---- 4: a model neither baked nor pullable, with pull off ----
R4=$(tree four)
cat > "$R4/etc/pmoves/firstboot.json" <<EOF
{$OFF, "ollama": {"models_dir": "/data/ollama", "pull": false, "models": [{"name": "pulled:2b", "digest": "$PULLED"}]}}
EOF
fb "$R4"
grep -q "step=ollama state=failed model 'pulled:2b' is not in the store '/data/ollama', and \"pull\" is off" "$T/out"
ok $? "pull off and the model not baked: failed, saying so"
! grep -q /api/pull "$T/api.log"; ok $? "nothing pulled"

# ---- 5: GPUs: a Jetson Orin (L4T 36), a Nano (L4T 32), a discrete GPU ----
R5=$(tree five)
bake "$R5"
mkdir -p "$R5/dev/nvgpu/igpu0"
: > "$R5/dev/nvgpu/igpu0/ctrl"
echo '# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024' > "$R5/etc/nv_tegra_release"
cat > "$R5/etc/pmoves/firstboot.json" <<EOF
{$OFF, "ollama": {"listen": "10.77.1.1", "port": 11500, "allow": ["tailscale0"], "models_dir": "/data/ollama",
  "models": [{"name": "tiny:2b", "digest": "$TINY2"}]}}
EOF
fb "$R5"
is "$RC" 0 "a Jetson Orin: the run exits 0"
grep -q "step=ollama state=ok 1 model on 10.77.1.1:11500, reachable from \"lo\", \"tailscale0\" only; L4T R36.4.0, GPU /dev/nvgpu/igpu0/ctrl" "$T/out"
ok $? "the step reports the L4T release and the GPU device" || sed 's/^/# /' "$T/out"
is "$(get http://10.77.1.1:11500/api/tags)" 200 "bound to the configured address and port: answers there"
is "$(get http://10.77.2.1:11500/api/tags)" 000 "and only there (bat0 is not in this allow list)"
# gpu NAME RELEASE-LINE: a tree with the baked models and that /etc/nv_tegra_release (none if empty)
gpu() {
	local r
	r=$(tree "$1")
	bake "$r"
	[ -n "$2" ] && echo "$2" > "$r/etc/nv_tegra_release"
	echo "{$OFF, \"ollama\": {\"models_dir\": \"/data/ollama\", \"models\": [{\"name\": \"tiny:1b\", \"digest\": \"$TINY1\"}]}}" > "$r/etc/pmoves/firstboot.json"
	echo "$r"
}
fb "$(gpu nano '# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64, DATE: Fri Jun  9 04:25:08 UTC 2023')"
grep -q "step=ollama state=degraded .*L4T R32.7.4: Ollama has no GPU build for L4T before 35 (Jetson Nano): it runs on the CPU" "$T/out"
ok $? "a Nano (L4T 32): degraded, on the CPU" || sed 's/^/# /' "$T/out"
fb "$(gpu orin-nodev '# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024')"
grep -q "step=ollama state=degraded .*L4T R36.4.0 but no GPU device (/dev/nvgpu/igpu0, /dev/nvhost-gpu): Ollama runs on the CPU" "$T/out"
ok $? "L4T 36 without the GPU's device nodes: degraded, on the CPU" || sed 's/^/# /' "$T/out"
fb "$(gpu discrete '')" STANDIN_GPU="NVIDIA GeForce RTX 3090, 535.183.01, 24576 MiB"
grep -q "step=ollama state=ok .*GPU: NVIDIA GeForce RTX 3090, 535.183.01, 24576 MiB (nvidia-smi)" "$T/out"
ok $? "a discrete GPU: nvidia-smi's view, ok" || sed 's/^/# /' "$T/out"

# ---- 6: without /usr/bin/ollama, pending ----
R6=$(tree six)
rm "$R6/usr/bin/ollama"
echo "{$OFF, \"ollama\": {}}" > "$R6/etc/pmoves/firstboot.json"
fb "$R6"
grep -q "step=ollama state=pending Ollama is not installed yet" "$T/out"; ok $? "no Ollama installed: pending"

# ---- 7: the boot's own run, then the next one ----
R7=$(tree seven)
bake "$R7"
echo "{$OFF, \"ollama\": {\"models_dir\": \"/data/ollama\", \"models\": [{\"name\": \"tiny:1b\", \"digest\": \"$TINY1\"}]}}" > "$R7/etc/pmoves/firstboot.json"
fb "$R7" STANDIN_STATE=starting
grep -q "step=ollama state=pending Ollama starts once the boot is done" "$T/out" && [ ! -e "$R7/var/lib/pmoves/ollama/served" ]
ok $? "while the machine boots: pending, nothing recorded as served" || sed 's/^/# /' "$T/out"
fb "$R7"
grep -q "step=ollama state=degraded 1 model on 0.0.0.0:11434" "$T/out" && grep -qx "tiny:1b $TINY1" "$R7/var/lib/pmoves/ollama/served"
ok $? "the next run asks Ollama (Ollama already running is not the step done) and records what it serves" || sed 's/^/# /' "$T/out"

# ---- 8: bad configs ----
echo '{"ollama": {"models": [{"name": "../../etc/x", "digest": "'"$PULLED"'"}]}}' > "$T/bad1.json"
"$FB" validate "$T/bad1.json" > "$T/v" 2>&1
is "$?:$(grep -c "models\[0\].name: '../../etc/x' is not a model name" "$T/v")" "2:1" "a model name that would leave the store: refused"
echo '{"ollama": {"models": [{"name": "a:1", "digest": "sha256:'"$PULLED"'"}]}}' > "$T/bad2.json"
"$FB" validate "$T/bad2.json" > "$T/v" 2>&1
is "$?:$(grep -c "models\[0\].digest: .* is not a model digest" "$T/v")" "2:1" "a digest with its 'sha256:' prefix: refused, saying what a digest is"
echo '{"ollama": {"models": [{"name": "a:1", "digest": "'"$PULLED"'"}, {"name": "a:1", "digest": "'"$PULLED"'"}], "port": 80}}' > "$T/bad3.json"
"$FB" validate "$T/bad3.json" > "$T/v" 2>&1
is "$?" 2 "a model listed twice or a port below 1024: refused"
for d in /etc/ollama /usr/share/ollama /var/lib /srv; do
	echo "{\"ollama\": {\"models_dir\": \"$d\"}}" > "$T/bad4.json"
	"$FB" validate "$T/bad4.json" > "$T/v" 2>&1
	is "$?:$(grep -c "models_dir: '$d' is" "$T/v")" "2:1" "models_dir '$d' (the store becomes the ollama user's): refused"
done

done_testing
