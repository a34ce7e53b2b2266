#!/usr/bin/env bash
# Runs every test binary (cmocka, TAP output) and every tests/*/test_*.sh
# script (TAP too), then prints one line: "N passed, N failed".
# A binary that crashes or times out without reporting a failure counts as
# one failure, so a dead test can never look green; so does a test that
# leaves a process running.
set -u
BUILD=${BUILD:-build}
which=${1:-all}
logs=$BUILD/test-logs
mkdir -p "$logs"
pass=0
fail=0

# Pids of the processes still running in session sid (zombies waiting for
# init to reap them aside).
session_pids() {
	ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'
}

# Each test runs in a session of its own (setsid), so that every process
# it starts can be found afterwards, whatever became of the test. On
# timeout the test gets SIGTERM (the harness kills its stacks), then
# SIGKILL; its children die with it (PR_SET_PDEATHSIG). Any process left
# in the session after that is a leak: killed by pid and counted as a
# failure.
run_one() {
	local name=$1; shift
	local log=$logs/$name.log
	mkdir -p "$(dirname "$log")"
	local start=$SECONDS limit=${TEST_TIMEOUT:-600} timedout=0 rc p f pid left
	CMOCKA_MESSAGE_OUTPUT=TAP BUILD=$BUILD setsid "$@" >"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - start)) -lt "$limit" ]; do
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		timedout=1
		kill -TERM -- "-$pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	wait "$pid"
	rc=$?
	# children killed with the test (or by it, as it exited) may take a
	# moment to go on a busy machine
	for _ in $(seq 30); do
		left=$(session_pids "$pid")
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		kill -KILL $left 2>/dev/null
		echo "not ok - $name left processes running: $(echo $left)" >>"$log"
	fi
	[ "$timedout" -eq 1 ] && echo "not ok - $name timed out after ${limit}s" >>"$log"
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
one) shift; run_one "$(basename "$1")" "$@" ;;    # tests/run.sh one BINARY [ARGS]
unit) run_set unit ;;
integration) run_set integration ;;
all) run_set unit; run_set integration ;;
*) echo "usage: $0 [unit|integration|all | one BINARY [ARGS]]" >&2; exit 2 ;;
esac

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
