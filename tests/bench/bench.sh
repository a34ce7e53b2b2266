#!/usr/bin/env bash
# make bench: runs tests/bench/bench.py (Python 3 standard library) with
# Debian's python3. BUILD is the build directory, QUICK=1 the short run;
# extra arguments go to bench.py (--only, --rounds, --duration, --out).
# SPOGATE_HAPROXY is the HAProxy to measure (make bench HAPROXY_VERSION=3.2
# sets it); results.json records its version.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
args=(--build "$BUILD")
case ${QUICK:-} in
""|0) ;;
*) args+=(--quick) ;;
esac
for tool in wrk "${SPOGATE_HAPROXY:-/usr/sbin/haproxy}" /usr/sbin/nginx /usr/bin/redis-server openssl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (make deps)" >&2; exit 1; }
done
exec /usr/bin/python3 tests/bench/bench.py "${args[@]}" "$@"
