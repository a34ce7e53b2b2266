#!/usr/bin/env bash
# Replays every fuzz target's seed corpus (tests/fuzz/corpus/<target>/)
# through the target built without libFuzzer (tests/fuzz/driver.c): a
# target that crashes, leaks under ASan or lost its seeds fails the suite.
# `make fuzz` is what explores; this only keeps the targets honest. TAP.
set -u
BUILD=${BUILD:-build}
n=0
fail=0
for bin in "$BUILD"/tests/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	n=$((n + 1))
	seeds=tests/fuzz/corpus/$name
	if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
		echo "not ok $n - $name has no seed corpus in $seeds"
		fail=1
		continue
	fi
	out=$("$bin" "$seeds" 2>&1)
	rc=$?
	count=$(grep -c '^ok ' <<<"$out")
	if [ "$rc" -ne 0 ] || grep -q '^not ok' <<<"$out"; then
		echo "not ok $n - $name over $seeds (exit $rc)"
		tail -n 30 <<<"$out" | sed 's/^/# /'
		fail=1
	else
		echo "ok $n - $name over $count seeds"
	fi
done
if [ "$n" -eq 0 ]; then
	echo "not ok 1 - no fuzz target built in $BUILD/tests/fuzz"
	exit 1
fi
echo "1..$n"
exit $fail
