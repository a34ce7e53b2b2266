#!/usr/bin/env bash
# Keeps `make bench` from rotting without timing anything: runs the bench's
# orchestrator in a tiny mode (one round of 1 s on plain, the first spogate
# configuration and the agent alone, then a one-round saturation sweep of
# plain and spogate-token at 32 and 128 connections) and checks that results.json has every
# field the README's Performance section and the issue's targets rely on.
# TAP output. Needs wrk and haproxy (make deps); skips if they are missing.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; }

if ! command -v wrk >/dev/null || [ ! -x "${SPOGATE_HAPROXY:-/usr/sbin/haproxy}" ]; then
	echo "1..0 # SKIP wrk or haproxy not installed (make deps)"
	exit 0
fi
echo "1..5"
if /usr/bin/python3 tests/bench/bench.py --build "$BUILD" --only plain,spogate-token,agent-d64-token \
	--rounds 1 --duration 1 --warmup 0 \
	--sweep 32,128 --sweep-configs plain,spogate-token --sweep-rounds 1 --sweep-duration 2 --out "$out/results.json" >"$out/stdout" 2>&1; then
	ok "bench_orchestrator_runs_one_round"
else
	nok "bench_orchestrator_runs_one_round"
	sed 's/^/# /' "$out/stdout"
fi
if grep -q '^configuration .*req/s .*p50 .*p99 .*server CPU us/req .*agent CPU us/req' "$out/stdout" &&
	grep -q '^configuration .*c32 req/s .*c32 p99 us .*c128 req/s .*best req/s' "$out/stdout"; then
	ok "bench_prints_the_table"
else
	nok "bench_prints_the_table"
fi
/usr/bin/python3 - "$out/results.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
n = 2
def check(name, cond):
    global n
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, name))
    return cond

confs = {c["name"]: c for c in doc.get("configurations", [])}
fields = ("req_per_s", "p50_us", "p99_us", "server_cpu_us_per_req", "agent_cpu_us_per_req", "rounds")
good = (set(confs) == {"plain", "spogate-token", "agent-d64-token"}
        and all(all(f in c for f in fields) for c in confs.values())
        and all(c["req_per_s"] > 0 and c["server_cpu_us_per_req"] > 0 for c in confs.values())
        and confs["spogate-token"]["agent_cpu_us_per_req"] is not None
        and not any(c["errors"] for c in confs.values()))
if not check("results_json_has_every_configuration_and_figure", good):
    print("# " + json.dumps(doc.get("configurations"))[:2000])
ids = {t["id"] for t in doc.get("targets", [])}
want = {"pipeline_vs_native_rs256_rps", "pipeline_vs_native_hs256_rps",
        "pipeline_server_cpu_us_per_req", "agent_cpu_us_per_cache_hit_decision",
        "pipeline_p99_vs_plain"}
good = (want <= ids and all({"value", "status", "target", "basis"} <= set(t) for t in doc["targets"])
        and doc["machine"]["nproc"] > 0 and doc["machine"]["cpu_model"] is not None
        and doc["date"] and doc["settings"]["rounds"] == 1 and not doc["errors"])
if not check("results_json_has_targets_machine_facts_and_date", good):
    print("# " + json.dumps({k: doc.get(k) for k in ("targets", "machine", "errors")})[:2000])
# The sweep: every point measured with wrk's connections held open by HAProxy
# (sampled from /proc/net/tcp over the first 3/4 of each 2 s point, so a
# loaded machine may catch a few still connecting: 3/4 is the bound; 1 s
# points left too few samples and failed now and then at load average 4); plain is its own reference, so its
# best is its top eligible point.
sw = doc.get("sweep") or {}
rows = {r["name"]: r for r in sw.get("configurations", [])}
pf = ("connections", "req_per_s", "p99_us", "p99_vs_plain", "eligible", "non_2xx", "timeouts")
good = (sw.get("connections") == [32, 128] and set(rows) == {"plain", "spogate-token"}
        and all([p["connections"] for p in r["points"]] == [32, 128] for r in rows.values())
        and all(all(f in p for f in pf) and p["req_per_s"] > 0 and not p["socket_errors"]
                and (p["client_connections"] or 0) * 4 >= p["connections"] * 3
                for r in rows.values() for p in r["points"])
        and all("best_req_per_s" in r and "best_connections" in r for r in rows.values())
        and rows["plain"]["best_req_per_s"] == max([p["req_per_s"] for p in rows["plain"]["points"]
                                                    if p["eligible"]] or [None]))
if not check("results_json_has_the_saturation_sweep", good):
    print("# " + json.dumps(sw)[:2000])
PY
