#!/bin/bash
# Ollama models baked at build time (builder/ollama-bake.c): the profile's "ollama_store" is a
# local store in Ollama's layout (made here: small stand-in blobs, not models) and
# firstboot.ollama.models pins each model by its manifest's digest. The build copies each model
# into the image's store (firstboot.ollama.models_dir) after checking it: the manifest against
# the pin, every blob's size and SHA-256 as the image holds it. A wrong pin, a blob that is not
# what its manifest says, a model not in the store and a blob that is a symlink out of the
# store fail the build, naming what is wrong, with no image under the final name. Then the
# ollama step, on a tree holding the image's store, takes the baked models as they are.
. "$(dirname "$0")/lib.sh"
need python3 tar mke2fs mkfs.vfat mcopy debugfs sfdisk sha256sum
[ "$(id -u)" = 0 ] || skip_all "building an image needs root (file owners)"
[ -x "$PMOVES_IMAGE" ] || skip_all "'$PMOVES_IMAGE' is not built"
FB=$BUILD/pmoves-firstboot
[ -x "$FB" ] || skip_all "'$FB' is not built"

T=$(mktemp -d /tmp/pmoves-e2e-ollama-bake.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 16

R=$T/root
tiny_root "$R"
tar -C "$R" -cf "$T/rootfs.tar" .

# A store as `ollama pull` leaves it: blobs/sha256-HEX and manifests/HOST/NS/MODEL/TAG.
S=$T/store
blob() { # blob CONTENT-FILE -> its sha256, the file now in the store
	local h
	h=$(sha256sum "$1" | cut -d' ' -f1)
	mkdir -p "$S/blobs"
	cp "$1" "$S/blobs/sha256-$h"
	echo "$h"
}
manifest() { # manifest REL CONFIG-HEX CONFIG-SIZE LAYER-HEX LAYER-SIZE -> its sha256
	mkdir -p "$(dirname "$S/manifests/$1")"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%s}]}' \
		"$2" "$3" "$4" "$5" >"$S/manifests/$1"
	sha256sum "$S/manifests/$1" | cut -d' ' -f1
}
printf '{"model_format":"gguf","model_family":"stand-in"}' >"$T/config"
head -c 3000000 /dev/urandom >"$T/weights1"
head -c 200000 /dev/urandom >"$T/weights2"
C=$(blob "$T/config")
W1=$(blob "$T/weights1")
W2=$(blob "$T/weights2")
TINY=$(manifest registry.ollama.ai/library/tiny/1b "$C" "$(stat -c %s "$T/config")" "$W1" 3000000)
FLEET=$(manifest registry.ollama.ai/fleet/small/latest "$C" "$(stat -c %s "$T/config")" "$W2" 200000)

mkdir -p "$T/profiles"
profile() { # profile NAME STORE MODELS-JSON
	cat >"$T/profiles/$1.json" <<JSON
{ "extends": "base-debian", "description": "ollama bake test",
  "rootfs": { "source": "tarball", "path": "$T/rootfs.tar" },
  "disk": { "size": "auto", "partitions": [
      { "name": "esp", "type": "esp", "size": "64M", "fs": "vfat", "mount": "/boot/efi" },
      { "name": "root", "type": "root", "size": "fill", "fs": "ext4", "mount": "/" } ] },
  "ollama_store": "$2",
  "firstboot": { "ollama": { "models_dir": "/srv/ollama", "models": $3 } } }
JSON
}
GOOD="[{\"name\": \"tiny:1b\", \"digest\": \"$TINY\"}, {\"name\": \"fleet/small\", \"digest\": \"$FLEET\"}]"
profile good "$S" "$GOOD"
"$PMOVES_IMAGE" build "$T/profiles/good.json" -o "$T/out" >"$T/good.log" 2>&1
rc=$?; ok $rc "build with two models baked from a local store"
[ $rc -eq 0 ] || tail -n 20 "$T/good.log" | sed 's/^/# /'
grep -q "ollama: 'tiny:1b' baked into '/srv/ollama': $((3000000 + $(stat -c %s "$T/config") + $(stat -c %s "$S/manifests/registry.ollama.ai/library/tiny/1b"))) bytes, every blob's sha256 verified" "$T/good.log"
ok $? "the log says what was baked, and that it was verified"

IMG=$T/out/good/good.img
part_copy "$IMG" 2 "$T/root.ext4"
got() { debugfs -R "dump $1 $T/got" "$T/root.ext4" >/dev/null 2>&1 && sha256sum <"$T/got" | cut -d' ' -f1; }
is "$(got /srv/ollama/manifests/registry.ollama.ai/library/tiny/1b)" "$TINY" "tiny:1b's manifest is in the image's store, as pinned"
is "$(got /srv/ollama/manifests/registry.ollama.ai/fleet/small/latest)" "$FLEET" "fleet/small (no tag: latest) too"
is "$(got /srv/ollama/blobs/sha256-$W1)" "$W1" "its weights blob, whole"
is "$(got /srv/ollama/blobs/sha256-$W2)" "$W2" "the other model's blob"
is "$(got /srv/ollama/blobs/sha256-$C)" "$C" "the config blob both list"
is "$(debugfs -R "ls /srv/ollama/blobs" "$T/root.ext4" 2>/dev/null | grep -o 'sha256-[0-9a-f]*' | sort | tr '\n' ' ')" \
	"$(printf 'sha256-%s\n' "$C" "$W1" "$W2" | sort | tr '\n' ' ')" "nothing else in the image's blobs"

# The step, on a tree holding the image's store, finds the models as baked (a tree: pending
# until the running system starts Ollama).
F=$T/fb/root
mkdir -p "$F/etc/pmoves" "$F/usr/bin" "$F/srv"
debugfs -R "rdump /srv/ollama $F/srv" "$T/root.ext4" >/dev/null 2>&1
printf 'root:x:0:0:root:/root:/bin/bash\nollama:x:990:990::/var/lib/ollama:/usr/sbin/nologin\n' >"$F/etc/passwd"
printf 'root:x:0:\nollama:x:990:\n' >"$F/etc/group"
printf '#!/bin/sh\nexit 1\n' >"$F/usr/bin/ollama"
debugfs -R "dump /etc/pmoves/firstboot.json $T/firstboot.json" "$T/root.ext4" >/dev/null 2>&1
python3 - "$T/firstboot.json" "$F/etc/pmoves/firstboot.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["steps"] = {s: {"enabled": False} for s in ("growfs", "ssh", "efiboot")}
json.dump(c, open(sys.argv[2], "w"))
PY
printf '#!/bin/sh\n# stand-in runner: records argv, exits 0\necho "$*" >>%s/calls\nexit 0\n' "$T/fb" >"$T/fb/stand-in"
chmod +x "$T/fb/stand-in"
PMOVES_FIRSTBOOT_RUNNER=$T/fb/stand-in "$FB" run --root "$F" >"$T/fb/out" 2>&1
grep -q "step=ollama state=pending Ollama is set up; it starts, and its models are checked, on the running system" "$T/fb/out"
ok $? "the ollama step takes the baked store (every blob hashed) and is pending until the running system" || sed 's/^/# /' "$T/fb/out"
is "$(stat -c %u "$F/srv/ollama/blobs/sha256-$W1")" 990 "and gives it to the ollama user"

# What is not the pinned model fails the build.
fails() { # fails NAME WANT DESCRIPTION
	"$PMOVES_IMAGE" build "$T/profiles/$1.json" -o "$T/out" >"$T/$1.log" 2>&1
	local rc=$?
	[ $rc -ne 0 ] && grep -qF "$2" "$T/$1.log" && [ ! -e "$T/out/$1" ]
	ok $? "$3 (exit $rc)" || tail -n 5 "$T/$1.log" | sed 's/^/# /'
}
OTHER=$(printf other | sha256sum | cut -d' ' -f1)
profile wrongpin "$S" "[{\"name\": \"tiny:1b\", \"digest\": \"$OTHER\"}]"
fails wrongpin "model 'tiny:1b': its manifest in '$S' is sha256:$TINY, not the pinned sha256:$OTHER" \
	"a pin that is not the store's manifest: the build fails naming both, no image"
profile missing "$S" "[{\"name\": \"llama3.2:3b\", \"digest\": \"$OTHER\"}]"
fails missing "model 'llama3.2:3b' is not in the ollama_store '$S' (no 'manifests/registry.ollama.ai/library/llama3.2/3b'): \`ollama pull llama3.2:3b\` there first" \
	"a model not in the store: the build fails saying how to get it"
cp -a "$S" "$T/bad"
head -c 3000000 /dev/urandom >"$T/bad/blobs/sha256-$W1"
BADSUM=$(sha256sum "$T/bad/blobs/sha256-$W1" | cut -d' ' -f1)
profile badblob "$T/bad" "[{\"name\": \"tiny:1b\", \"digest\": \"$TINY\"}]"
fails badblob "model 'tiny:1b': blob sha256:$W1 in '$T/bad' holds sha256:$BADSUM" \
	"a blob that is not what the manifest says: the build fails naming both hashes"
cp -a "$S" "$T/link"
rm "$T/link/blobs/sha256-$W1"
ln -s "$S/blobs/sha256-$W1" "$T/link/blobs/sha256-$W1"
profile link "$T/link" "[{\"name\": \"tiny:1b\", \"digest\": \"$TINY\"}]"
fails link "cannot read '$T/link/blobs/sha256-$W1' (it leads out of the store)" \
	"a blob that is a symlink out of the store: refused"
profile nomodels "$S" "[]"
fails nomodels "ollama_store '$S' is given, but firstboot.ollama names no models to bake from it" \
	"a store without models to bake: refused"
profile nostore "$T/nowhere" "$GOOD"
fails nostore "ollama_store: cannot open the directory '$T/nowhere'" "a store that is not there: refused"
done_testing
