#!/bin/bash
# make bench: the builder against the naive shell pipeline, on the same cached rootfs tarball, in
# the same run, interleaved (B N B N ...). Prints median wall times, their ratio, the builder's
# peak RSS and per-stage medians, and checks that each image's allocated size (du) stays within
# 10% of the bytes its filesystems use. Writes the figures to images/bench.json.
#
#   BENCH_RUNS=N   timed runs of each (default 3)
#   BENCH_PROFILE  profile to build (default base-debian; the naive pipeline mirrors its layout:
#                  GPT 2G, 256M vfat ESP at 1 MiB, ext4 root filling the rest)
#
# The goal (builder at most half the naive time) is reported, not asserted: the exit status is 0
# unless something failed to run.
# The Makefile runs it with sh; it needs bash (process substitution, local).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -eu

cd "$(dirname "$0")/.."
TOP=$PWD
PROFILE=${BENCH_PROFILE:-base-debian}
RUNS=${BENCH_RUNS:-3}
BIN=$TOP/pmoves-image
JSON=$TOP/images/bench.json
TIME=/usr/bin/time

die() { echo "bench: $*" >&2; exit 1; }

case $RUNS in '' | *[!0-9]*) die "BENCH_RUNS must be a positive number, not '$RUNS'" ;; esac
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1, not '$RUNS'"
[ "$(id -u)" = 0 ] || die "must run as root (the naive pipeline extracts the tarball with its owners)"
[ -x "$BIN" ] || die "no '$BIN' (run 'make' first)"
[ -x "$TIME" ] || die "no '$TIME' (install the Debian package 'time', or run 'make deps')"
for t in sfdisk mkfs.vfat mcopy mmd mke2fs dumpe2fs fsck.fat tar dd truncate du awk; do
	command -v "$t" >/dev/null || die "'$t' is not installed (run 'make deps')"
done

mkdir -p "$TOP/images"
WORK=$(mktemp -d "$TOP/images/.bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A private copy of the builder and of the pmoves-firstboot it puts into images (target/ beside
# it), so that a rebuild in this tree during the runs does not change what is measured.
cp -L "$BIN" "$WORK/pmoves-image"
cp -R "$(dirname "$(readlink -f "$BIN")")/target" "$WORK/target"
BIN=$WORK/pmoves-image
COMMIT=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)

# The naive pipeline, the way a person would write it. $1 = rootfs tarball, $2 = work dir.
# Layout as in profiles/base-debian.json: GPT 2G, 256M ESP at 1 MiB, ext4 root filling the rest.
# shellcheck disable=SC2016 # expanded by the sh -c that runs it
NAIVE='set -eu
tarball=$1; cd "$2"
mkdir tree
tar -xf "$tarball" -C tree
truncate -s 2G disk.img
sfdisk -q disk.img <<EOF
label: gpt
start=1MiB, size=256MiB, type=U, name=esp
type=L, name=root
EOF
kver=$(ls tree/boot | sed -n "s/^vmlinuz-//p" | sort -V | tail -n 1)
uuid=$(cat /proc/sys/kernel/random/uuid)
mkfs.vfat -C esp.fat 262144 -F 32 -n ESP >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i esp.fat ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i esp.fat tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i esp.fat "tree/boot/vmlinuz-$kver" ::/vmlinuz
mcopy -i esp.fat "tree/boot/initrd.img-$kver" ::/initrd.img
printf "title Debian\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=UUID=%s console=tty0 console=ttyS0,115200 rw\n" "$uuid" >entry.conf
mcopy -i esp.fat entry.conf ::/loader/entries/debian.conf
set -- $(sfdisk -d disk.img | sed -n "s/^disk.img2 : start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p")
mke2fs -q -F -t ext4 -L root -U "$uuid" -d tree -E offset=$(($1 * 512)) disk.img $(($2 / 2))k
dd if=esp.fat of=disk.img bs=1M seek=1 conv=notrunc,sparse status=none
'

# median of the numbers on stdin (one per line); the mean of the middle two for an even count
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (!NR) exit 1; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The rootfs tarball the builder used, from its "rootfs: using the cached '...'" line.
tarball_of() {
	sed -n "s/^rootfs: using the cached '\(.*\)'\$/\1/p" "$1" | tail -n 1
}

# "USED DU TABLE VFAT EXT4" (bytes) of a GPT disk image with a vfat partition 1 and an ext4
# partition 2. Used: the GPT (protective MBR, both headers, both entry arrays), the FAT's reserved
# sectors and FATs plus its used clusters, the ext4 blocks in use (metadata included).
alloc_of() {
	local img=$1 dump start1 size1 start2 fat data_start csize used_cl n_ent ent_size
	dump=$(sfdisk -d "$img") || return 1
	read -r start1 size1 < <(printf '%s\n' "$dump" | sed -n 's/^[^ ]*1 : start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p')
	start2=$(printf '%s\n' "$dump" | sed -n 's/^[^ ]*2 : start= *\([0-9]*\),.*/\1/p')
	# number and size of the GPT entries, from the primary header at LBA 1 (bytes 80..87)
	read -r n_ent ent_size < <(od -An -tu4 -j $((512 + 80)) -N 8 "$img")
	if [ -z "$start1" ] || [ -z "$start2" ] || [ -z "$n_ent" ] || [ -z "$ent_size" ]; then
		echo "bench: cannot read the partition table of '$img'" >&2
		return 1
	fi
	local es=$(((n_ent * ent_size + 511) / 512))
	local table=$(((3 + 2 * es) * 512))

	fat=$WORK/esp.check
	dd if="$img" of="$fat" bs=1M iflag=skip_bytes,count_bytes skip=$((start1 * 512)) count=$((size1 * 512)) \
		conv=sparse status=none
	local fsck
	fsck=$(fsck.fat -n -v "$fat" 2>&1) || { echo "bench: fsck.fat -n failed on the ESP of '$img'" >&2; return 1; }
	rm -f "$fat"
	data_start=$(printf '%s\n' "$fsck" | sed -n 's/^Data area starts at byte \([0-9]*\).*/\1/p')
	csize=$(printf '%s\n' "$fsck" | sed -n 's/^ *\([0-9]*\) bytes per cluster$/\1/p')
	used_cl=$(printf '%s\n' "$fsck" | sed -n 's/.*, \([0-9]*\)\/\([0-9]*\) clusters$/\1/p')
	if [ -z "$data_start" ] || [ -z "$csize" ] || [ -z "$used_cl" ]; then
		echo "bench: cannot read the FAT figures of '$img'" >&2
		return 1
	fi
	local vfat=$((data_start + used_cl * csize))

	local d bc fb bs
	d=$(dumpe2fs -h "$img?offset=$((start2 * 512))" 2>/dev/null) || {
		echo "bench: dumpe2fs failed on the root partition of '$img'" >&2
		return 1
	}
	bc=$(printf '%s\n' "$d" | sed -n 's/^Block count: *//p')
	fb=$(printf '%s\n' "$d" | sed -n 's/^Free blocks: *//p')
	bs=$(printf '%s\n' "$d" | sed -n 's/^Block size: *//p')
	if [ -z "$bc" ] || [ -z "$fb" ] || [ -z "$bs" ]; then
		echo "bench: cannot read the ext4 figures of '$img'" >&2
		return 1
	fi
	local ext4=$(((bc - fb) * bs))

	echo "$((table + vfat + ext4)) $(du -B1 "$img" | cut -f1) $table $vfat $ext4"
}

# 1. Warm-up build (untimed): fills the rootfs cache if needed (mmdebstrap, needs the network)
#    and the page cache, and tells us which tarball the builder reads.
echo "bench: warm-up build of '$PROFILE' (not timed; a cold rootfs cache runs mmdebstrap, ~2 min)"
mkdir -p "$WORK/warm"
if ! "$BIN" build "$PROFILE" -o "$WORK/warm" >"$WORK/warm.log" 2>&1; then
	tail -n 20 "$WORK/warm.log" >&2
	die "warm-up build of '$PROFILE' failed"
fi
TARBALL=$(tarball_of "$WORK/warm.log")
if [ -z "$TARBALL" ]; then
	# The build made the cache itself this time; it is the newest tarball there.
	CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/pmoves-image
	# shellcheck disable=SC2012 # cache names are hex digests
	TARBALL=$(ls -t "$CACHE"/*.tar 2>/dev/null | head -n 1 || true)
fi
if [ -z "$TARBALL" ] || [ ! -f "$TARBALL" ]; then
	tail -n 20 "$WORK/warm.log" >&2
	die "cannot tell which rootfs tarball the build used"
fi
rm -rf "$WORK/warm"
echo "bench: rootfs tarball '$TARBALL' ($(du -m --apparent-size "$TARBALL" | cut -f1) MB)"
echo "bench: $RUNS timed run(s) each, interleaved builder/naive"

# 2. Timed runs, interleaved. Each run's outputs are removed outside the timed region.
: >"$WORK/b.times"
: >"$WORK/n.times"
for i in $(seq 1 "$RUNS"); do
	out=$WORK/b$i
	mkdir -p "$out"
	sync
	if ! "$TIME" -o "$WORK/b$i.time" -f '%e %M' "$BIN" build "$PROFILE" -o "$out" >"$WORK/b$i.log" 2>&1; then
		tail -n 20 "$WORK/b$i.log" >&2
		die "builder run $i failed"
	fi
	tail -n 1 "$WORK/b$i.time" >>"$WORK/b.times"
	if [ "$i" = "$RUNS" ]; then
		mv "$out/$PROFILE/$PROFILE.img" "$WORK/builder.img"
	fi
	rm -rf "$out"

	out=$WORK/n$i
	mkdir -p "$out"
	sync
	if ! "$TIME" -o "$WORK/n$i.time" -f '%e %M' sh -c "$NAIVE" naive "$TARBALL" "$out" >"$WORK/n$i.log" 2>&1; then
		tail -n 20 "$WORK/n$i.log" >&2
		die "naive pipeline run $i failed"
	fi
	tail -n 1 "$WORK/n$i.time" >>"$WORK/n.times"
	if [ "$i" = "$RUNS" ]; then
		mv "$out/disk.img" "$WORK/naive.img"
	fi
	rm -rf "$out"
	printf 'bench: run %d/%d: builder %s s, naive %s s\n' "$i" "$RUNS" \
		"$(cut -d' ' -f1 <"$WORK/b$i.time" | tail -n 1)" "$(tail -n 1 "$WORK/n$i.time" | cut -d' ' -f1)"
done

b_wall=$(cut -d' ' -f1 "$WORK/b.times" | median)
n_wall=$(cut -d' ' -f1 "$WORK/n.times" | median)
b_rss=$(cut -d' ' -f2 "$WORK/b.times" | median)
n_rss=$(cut -d' ' -f2 "$WORK/n.times" | median)
ratio=$(awk -v n="$n_wall" -v b="$b_wall" 'BEGIN { printf "%.2f", (b > 0) ? n / b : 0 }')
goal=$(awk -v n="$n_wall" -v b="$b_wall" 'BEGIN { print (b <= n / 2) ? "PASS" : "FAIL" }')

# Stage medians, in the order the builder prints them; "(other)" is wall minus the stage sum.
stages=$(sed -n 's/^\[[0-9]*\/[0-9]*\] \([^:]*\): \([0-9.]*\) s$/\1/p' "$WORK/b1.log")
: >"$WORK/stages"
for s in $stages; do
	all=$(for i in $(seq 1 "$RUNS"); do
		sed -n "s/^\[[0-9]*\/[0-9]*\] $s: \([0-9.]*\) s\$/\1/p" "$WORK/b$i.log"
	done)
	echo "$s $(printf '%s\n' "$all" | median) $(printf '%s\n' "$all" | paste -sd,)" >>"$WORK/stages"
done
for i in $(seq 1 "$RUNS"); do
	w=$(tail -n 1 "$WORK/b$i.time" | cut -d' ' -f1)
	sed -n 's/^\[[0-9]*\/[0-9]*\] [^:]*: \([0-9.]*\) s$/\1/p' "$WORK/b$i.log" |
		awk -v w="$w" '{ s += $1 } END { printf "%.2f\n", w - s }'
done >"$WORK/other"
echo "(other) $(median <"$WORK/other") $(paste -sd, "$WORK/other")" >>"$WORK/stages"

# 3. Allocation check on the last run's images.
read -r b_used b_du b_table b_vfat b_ext4 < <(alloc_of "$WORK/builder.img") || die "allocation check of the builder's image failed"
read -r n_used n_du n_table n_vfat n_ext4 < <(alloc_of "$WORK/naive.img") || die "allocation check of the naive image failed"
pct() { awk -v d="$1" -v u="$2" 'BEGIN { printf "%+.1f", (d - u) * 100 / u }'; }
verdict() { awk -v d="$1" -v u="$2" 'BEGIN { print (d <= u * 1.10) ? "PASS" : "FAIL" }'; }
b_pct=$(pct "$b_du" "$b_used")
n_pct=$(pct "$n_du" "$n_used")
b_alloc=$(verdict "$b_du" "$b_used")
n_alloc=$(verdict "$n_du" "$n_used")

# 4. The table.
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
echo
echo "pmoves-image bench: profile '$PROFILE', builder at $COMMIT, $RUNS run(s), medians"
printf '  %-34s %10s %10s\n' "" builder naive
printf '  %-34s %10s %10s\n' "wall time (s)" "$b_wall" "$n_wall"
printf '  %-34s %10s %10s\n' "peak RSS (KiB, largest process)" "$b_rss" "$n_rss"
printf '  %-34s %10s\n' "ratio naive/builder" "$ratio"
printf '  %-34s %10s\n' "goal: builder <= naive/2" "$goal"
echo "  builder stages (s):"
while read -r s m _; do printf '    %-32s %10s\n' "$s" "$m"; done <"$WORK/stages"
echo "  allocation (MiB): du vs used = table + vfat + ext4"
printf '    %-32s %10s %10s\n' "du -B1" "$(mb "$b_du")" "$(mb "$n_du")"
printf '    %-32s %10s %10s\n' "used" "$(mb "$b_used")" "$(mb "$n_used")"
printf '    %-32s %10s %10s\n' "  partition tables" "$(mb "$b_table")" "$(mb "$n_table")"
printf '    %-32s %10s %10s\n' "  vfat" "$(mb "$b_vfat")" "$(mb "$n_vfat")"
printf '    %-32s %10s %10s\n' "  ext4" "$(mb "$b_ext4")" "$(mb "$n_ext4")"
printf '    %-32s %9s%% %9s%%\n' "du over used" "$b_pct" "$n_pct"
printf '    %-32s %10s %10s\n' "within 10%" "$b_alloc" "$n_alloc"

# 5. JSON.
{
	printf '{\n  "profile": "%s",\n  "commit": "%s",\n  "runs": %d,\n  "tarball": "%s",\n' "$PROFILE" "$COMMIT" "$RUNS" "$TARBALL"
	printf '  "builder": {\n    "wall_s": [%s],\n    "max_rss_kib": [%s],\n' \
		"$(cut -d' ' -f1 "$WORK/b.times" | paste -sd,)" "$(cut -d' ' -f2 "$WORK/b.times" | paste -sd,)"
	printf '    "median_wall_s": %s,\n    "median_max_rss_kib": %s,\n    "median_stage_s": {' "$b_wall" "$b_rss"
	awk '{ printf "%s\"%s\": %s", (NR > 1 ? ", " : ""), $1, $2 }' "$WORK/stages"
	printf '},\n    "stage_s": {'
	awk '{ printf "%s\"%s\": [%s]", (NR > 1 ? ", " : ""), $1, $3 }' "$WORK/stages"
	printf '},\n    "alloc": {"du_bytes": %s, "used_bytes": %s, "table_bytes": %s, "vfat_bytes": %s, "ext4_bytes": %s, "over_pct": %s, "pass": %s}\n  },\n' \
		"$b_du" "$b_used" "$b_table" "$b_vfat" "$b_ext4" "$b_pct" "$([ "$b_alloc" = PASS ] && echo true || echo false)"
	printf '  "naive": {\n    "wall_s": [%s],\n    "max_rss_kib": [%s],\n' \
		"$(cut -d' ' -f1 "$WORK/n.times" | paste -sd,)" "$(cut -d' ' -f2 "$WORK/n.times" | paste -sd,)"
	printf '    "median_wall_s": %s,\n    "median_max_rss_kib": %s,\n' "$n_wall" "$n_rss"
	printf '    "alloc": {"du_bytes": %s, "used_bytes": %s, "table_bytes": %s, "vfat_bytes": %s, "ext4_bytes": %s, "over_pct": %s, "pass": %s}\n  },\n' \
		"$n_du" "$n_used" "$n_table" "$n_vfat" "$n_ext4" "$n_pct" "$([ "$n_alloc" = PASS ] && echo true || echo false)"
	printf '  "ratio_naive_over_builder": %s,\n  "goal_builder_at_most_half": %s\n}\n' \
		"$ratio" "$([ "$goal" = PASS ] && echo true || echo false)"
} >"$JSON.tmp"
mv "$JSON.tmp" "$JSON"
echo "  figures written to '${JSON#"$TOP"/}'"
echo
echo "bench: builder ${b_wall} s vs naive ${n_wall} s (ratio ${ratio}, goal ${goal}), builder peak RSS ${b_rss} KiB, allocation builder ${b_pct}% ${b_alloc} / naive ${n_pct}% ${n_alloc}"
