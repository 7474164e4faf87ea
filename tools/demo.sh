#!/bin/sh
# make demo: build the default profile's image, show its layout, boot it in QEMU.
set -eu
PROFILE=${PROFILE:-base-debian}
IMG=images/$PROFILE/$PROFILE.img
LOG=images/$PROFILE/console.log

./pmoves-image build "$PROFILE"
echo
./pmoves-image inspect "$IMG"
echo
echo "demo: booting '$IMG' in QEMU (a minute or two under emulation)..."
if ./pmoves-image run "$IMG" --expect 'Reached target.*Multi-User' --timeout 600 --log "$LOG" >images/.demo-match 2>images/.demo-err; then
	echo
	echo "demo: '$IMG' booted to multi-user: $(cat images/.demo-match)"
	grep 'accelerator:\|console matched' images/.demo-err | sed 's/^/demo: /' || true
	echo "demo: the whole console is in '$LOG'"
	echo "demo: boot it yourself with: ./pmoves-image run $IMG"
	rm -f images/.demo-match images/.demo-err
else
	rc=$?
	cat images/.demo-err >&2
	echo "demo: '$IMG' did not reach multi-user (exit $rc); console in '$LOG'" >&2
	rm -f images/.demo-match images/.demo-err
	exit $rc
fi
