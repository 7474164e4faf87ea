#!/bin/bash
# make install: the installed tree works on its own, away from the source tree: list and
# validate find the installed profiles and overlays, and validate runs the installed
# pmoves-firstboot for a profile's firstboot section. Builds in a build directory of its own.
. "$(dirname "$0")/lib.sh"
need make cc
T=$(mktemp -d /tmp/pmoves-e2e-install.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
plan 11
unset PMOVES_DATADIR PMOVES_FIRSTBOOT_DIR
B=$T/build
ARCH=$(uname -m)

# Where a user installs it: everything under PREFIX, the program finds it without help.
P=$T/prefix
make -C "$TOP" --no-print-directory install BUILD="$B" PREFIX="$P" >"$T/install.log" 2>&1
rc=$?; ok $rc "make install PREFIX=DIR"
[ $rc -eq 0 ] || tail -n 15 "$T/install.log" | sed 's/^/# /'
test -x "$P/bin/pmoves-image" && test -x "$P/bin/pmoves-firstboot" &&
	test -f "$P/share/pmoves-image/profiles/base-debian.json" &&
	test -f "$P/share/pmoves-image/overlays/common/etc/ssh/sshd_config.d/40-pmoves-hardening.conf" &&
	test -x "$P/lib/pmoves-image/$ARCH/pmoves-firstboot" && test -f "$P/lib/pmoves-image/$ARCH/pmoves-firstboot.service" &&
	grep -q '"\$schema": "https://json-schema.org/draft/2020-12/schema"' "$P/share/pmoves-image/schema/profile.schema.json"
ok $? "the programs, profiles, overlays, the profile JSON Schema and pmoves-firstboot for images are installed"
# The first-boot config's JSON Schema beside the profile's: what the installed program prints.
S=$P/share/pmoves-image/schema/firstboot.schema.json
grep -q '"\$id": "https://pmoves.invalid/schema/firstboot.schema.json"' "$S" && "$P/bin/pmoves-firstboot" schema | cmp -s - "$S"
ok $? "the first-boot config's JSON Schema is installed as schema/firstboot.schema.json"

mkdir "$T/elsewhere"
cd "$T/elsewhere" || exit 1
out=$("$P/bin/pmoves-image" list 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q '^base-debian ' && echo "$out" | grep -q '^proxmox-core '
ok $? "installed list shows the installed profiles (exit $rc)"
out=$("$P/bin/pmoves-image" validate base-debian headscale-hub gateway proxmox-core 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c ': ok$')" -eq 4 ]
ok $? "installed validate: every machine profile ok, firstboot sections checked by the installed pmoves-firstboot (exit $rc)"
[ $rc -eq 0 ] || echo "$out" | sed 's/^/# /'

# A firstboot section the installed pmoves-firstboot refuses: validate says so, naming the path.
mkdir -p "$T/p"
cat >"$T/p/bad.json" <<'JSON'
{ "extends": "base-debian", "firstboot": { "hostname": "bad_name!" } }
JSON
cp "$P/share/pmoves-image/profiles/base-debian.json" "$T/p/"
out=$("$P/bin/pmoves-image" validate "$T/p/bad.json" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q '\.firstboot\.hostname'
ok $? "installed validate refuses a bad firstboot section, naming .firstboot.hostname (exit $rc)"

# Packaging: DESTDIR stages the same tree under another root.
D=$T/dest
touch "$T/before"
make -C "$TOP" --no-print-directory install BUILD="$B" PREFIX=/usr DESTDIR="$D" >"$T/install2.log" 2>&1
ok $? "make install PREFIX=/usr DESTDIR=DIR"
test -x "$D/usr/bin/pmoves-image" && test -d "$D/usr/share/pmoves-image/overlays/common" &&
	test -x "$D/usr/lib/pmoves-image/$ARCH/pmoves-firstboot"
ok $? "DESTDIR holds usr/bin, usr/share/pmoves-image and usr/lib/pmoves-image"
[ -z "$(find /usr/bin /usr/share/pmoves-image /usr/lib/pmoves-image -maxdepth 1 -newer "$T/before" 2>/dev/null)" ]
ok $? "nothing was written outside DESTDIR"
# The staged programs look in /usr (compiled in); pointed at the staged tree they work.
out=$(PMOVES_DATADIR=$D/usr/share/pmoves-image PMOVES_FIRSTBOOT_DIR=$D/usr/lib/pmoves-image \
	"$D/usr/bin/pmoves-image" validate base-debian 2>&1); rc=$?
[ $rc -eq 0 ]; ok $? "the staged tree's validate works with PMOVES_DATADIR and PMOVES_FIRSTBOOT_DIR (exit $rc: $out)"
strings "$D/usr/bin/pmoves-image" | grep -qx '/usr/share/pmoves-image'
ok $? "the staged pmoves-image looks for its data in /usr/share/pmoves-image"
done_testing
