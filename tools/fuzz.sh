#!/bin/sh
# make fuzz: run each libFuzzer harness for a set time, one after the other, on one core.
# Usage: tools/fuzz.sh BUILD SECONDS NAME... (make fuzz passes FUZZ_BUILD, FUZZ_SECONDS and
# FUZZ_TARGETS; FUZZ_ARGS adds libFuzzer options). docs/fuzzing.md says what each harness covers.
#
# Each harness NAME reads its corpus tests/fuzz/NAME/ (seeds and past crashes; not written)
# and BUILD/fuzz-corpus/NAME/ (what earlier runs found; new inputs go there), with a
# dictionary when there is one (below). A crash, leak,
# timeout or out-of-memory stops that harness: the input is saved as
# BUILD/fuzz-artifacts/NAME/crash-* (timeout-*, leak-*, oom-*), the next harness runs, and the
# exit status is 1. The full output is in BUILD/fuzz-log/NAME.log.
set -u
build=$1 seconds=$2
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
shift 2
failed=
summary=
tmp=
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
for name in "$@"; do
	prog=$build/fuzz/$name
	seeds=tests/fuzz/$name
	corpus=$build/fuzz-corpus/$name
	artifacts=$build/fuzz-artifacts/$name
	log=$build/fuzz-log/$name.log
	# The harnesses write their inputs as files: on a tmpfs they run about three times as fast.
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
		tmp=/dev/shm/pmoves-fuzz-$$-$name
	else
		tmp=$build/fuzz-tmp/$name
	fi
	# Inputs: several small JSON files, or a disk image's head and tail (fuzz.h).
	case $name in
	profile | fb-config) max_len=16384 ;;
	*) max_len=65536 ;;
	esac
	mkdir -p "$corpus" "$artifacts" "$(dirname "$log")" "$tmp" "$build/fuzz-dict"
	# The dictionary: what make made from a schema (BUILD/fuzz-dict/NAME.dict) and
	# tests/fuzz/NAME.dict.
	dict=$build/fuzz-dict/$name.all.dict
	cat "$build/fuzz-dict/$name.dict" "tests/fuzz/$name.dict" >"$dict" 2>/dev/null
	[ -s "$dict" ] && dict_opt=-dict=$dict || dict_opt=
	touch "$log.start"
	echo "fuzz: $name for $seconds s (log: $log)"
	# One process, one core (no -jobs/-workers: they start more). -close_fd_mask=3: the
	# programs' own messages are silenced; libFuzzer's and the sanitizers' reports stay.
	# shellcheck disable=SC2086
	TMPDIR=$tmp PMOVES_SRCDIR=. "$prog" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
		-max_len="$max_len" -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$artifacts/" \
		$dict_opt ${FUZZ_ARGS-} "$corpus" "$seeds" >"$log" 2>&1
	status=$?
	rm -rf "$tmp"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -n1)
	line="$name: ${execs:-?} executions, ${cov:-no coverage line}"
	if [ "$status" != 0 ]; then
		found=$(find "$artifacts" -type f -newer "$log.start" | head -n1)
		line="$line, FAILED (exit $status)${found:+: $found}"
		failed="$failed $name"
		grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | head -n5 | sed 's/^/    /'
	fi
	rm -f "$log.start"
	echo "fuzz: $line"
	summary="$summary$line
"
done
printf '\nfuzz summary (%s s each):\n%s' "$seconds" "$summary"
if [ -n "$failed" ]; then
	echo "fuzz: found a problem in:$failed: see docs/fuzzing.md (keep the input as a regression test)" >&2
	exit 1
fi
