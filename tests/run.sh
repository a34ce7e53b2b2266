#!/usr/bin/env bash
# Runs every test binary (cmocka, TAP output) and every tests/*/test_*.sh
# script (TAP too), then prints one line: "N passed, N failed".
# A binary that crashes or times out without reporting a failure counts as
# one failure, so a dead test can never look green.
set -u
BUILD=${BUILD:-build}
which=${1:-all}
logs=$BUILD/test-logs
mkdir -p "$logs"
pass=0
fail=0

run_one() {
	local name=$1; shift
	local log=$logs/$name.log
	mkdir -p "$(dirname "$log")"
	local start=$SECONDS
	CMOCKA_MESSAGE_OUTPUT=TAP BUILD=$BUILD timeout -k 10 ${TEST_TIMEOUT:-600} "$@" >"$log" 2>&1
	local rc=$?
	local p f
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	printf '%-40s %3d passed, %3d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
	if [ "$f" -ne 0 ]; then
		grep -E '^not ok|^# |ERROR|error:' "$log" | head -n 40 | sed 's/^/    /'
		echo "    (full log: $log)"
	fi
}

run_set() {
	local dir=$1 t
	for t in "$BUILD"/tests/"$dir"/test_*; do
		[ -x "$t" ] || continue
		run_one "$dir/$(basename "$t")" "$t"
	done
	for t in tests/"$dir"/test_*.sh; do
		[ -f "$t" ] || continue
		run_one "$dir/$(basename "$t" .sh)" bash "$t"
	done
}

case $which in
unit) run_set unit ;;
integration) run_set integration ;;
all) run_set unit; run_set integration ;;
*) echo "usage: $0 [unit|integration|all]" >&2; exit 2 ;;
esac

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
