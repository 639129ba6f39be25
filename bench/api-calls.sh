#!/usr/bin/env bash
# API calls per 1,000 recordings outside the happy path (run by hand, not in CI): the CLI
# against the simulator, into a local directory (the store does not change API calls).
#
#   clean      N recordings, no fault
#   faulted    N recordings, every 10th media URL refused (403) on first use, and the first
#              6 API requests answered 429 (Retry-After 1 s)
#   rerun      the clean interval again with the same ledger: nothing new
#   daemon     `daemon --once` over the clean interval with the same ledger: one poll with
#              nothing new
#   clean-jobs, faulted-jobs
#              the clean and faulted workloads with `--analytics jobs` against a data lake one
#              hour behind (the interval lies in the lake: one details job, pages of 1,000)
#   clean-slow-jobs
#              the clean workload against batch jobs that take 5 s to be ready (the
#              simulator's default is 200 ms; the real time is not documented)
#
# Usage: bench/api-calls.sh [N=2000]. BIN=path runs another build of the archiver against this
# checkout's simulator (e.g. an earlier commit's, for a side-by-side run) and LABEL=text is appended to the workload names. Appends one JSON line per workload to
# bench/results/api-calls.jsonl and prints a table. Counts come from the run report
# (`api_calls`: every API request, 429s included; OAuth token requests excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
N=${1:-2000}
# Call counts do not depend on optimisation: the debug build (kept warm by the test script)
# is used unless PROFILE=release.
PROFILE=${PROFILE:-debug}
if [ "$PROFILE" = release ]; then cargo build --release -q -p genesys-archiver; else cargo build -q -p genesys-archiver; fi
# The simulator always comes from this checkout; BIN may be another build of the archiver.
SIM=$root/target/$PROFILE/genesys-archiver
BIN=${BIN:-$SIM}
LABEL=${LABEL:-}
work=$(mktemp -d)
simpid=""
cleanup() { [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret

start_sim() { # extra sim flags...
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  local port; port=$(python3 scripts/servers/free-port.py)
  rm -f "$work/sim.url"
  $SIM sim --listen "127.0.0.1:$port" --recordings "$N" "$@" > "$work/sim.url" 2>/dev/null &
  simpid=$!
  for _ in $(seq 1 600); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
  export GENESYS_API_BASE; GENESYS_API_BASE=$(cat "$work/sim.url")
}

# The simulator's default org: conversations from 3 days ago (minute-floored) for 2 days.
FROM=$(date -u -d "3 days ago" +%Y-%m-%dT%H:%M:00Z)
TO=$(date -u -d "1 day ago" +%Y-%m-%dT%H:%M:00Z)

run() { # name command... ; the command writes $work/$name.json
  local name=$1; shift
  local t0 t1; t0=$(date +%s.%N)
  "$@" > "$work/$name.out" 2>&1 || true
  t1=$(date +%s.%N)
  python3 - "$work/$name.json" "$name" "$N" "$t0" "$t1" "$LABEL" <<'PY' | tee -a "$root/bench/results/api-calls.jsonl"
import json, sys
path, name, n, t0, t1, label = sys.argv[1:]
r = json.load(open(path))
s = r["summary"]
done = s["archived"] + s["skipped"]
print(json.dumps({
    "workload": name + label, "recordings": int(n), "archived": s["archived"], "skipped": s["skipped"],
    "failed": s["failed"], "known_conversations": s.get("known_conversations", 0),
    "api_calls": r["api_calls"], "throttled": r["api_throttled"], "exit_code": r["exit_code"],
    "calls_per_1000": round(r["api_calls"] * 1000 / int(n), 1),
    "seconds": round(float(t1) - float(t0), 1),
    "by_endpoint": r.get("api_calls_by_endpoint", {}),
}))
PY
}

archive() { # name state extra-flags...
  local name=$1 state=$2; shift 2
  run "$name" $BIN archive --from "$FROM" --to "$TO" --out "$work/store-$state" \
    --state "$work/$state.db" --create-ledger --allow-loopback-media --progress never \
    --report "$work/$name.json" "$@"
}

start_sim
archive clean clean
archive rerun clean
run daemon $BIN daemon --once --since "$FROM" --out "$work/store-clean" --state "$work/clean.db" --create-ledger \
  --allow-loopback-media --report "$work/daemon.json"

faults=()
for i in $(seq 0 10 $((N - 1))); do faults+=(--fault "$i=expiredx1"); done
start_sim "${faults[@]}" --throttle-first 6 --retry-after 1
archive faulted faulted

start_sim --data-lake-lag 1h
archive clean-jobs clean-jobs --analytics jobs
start_sim "${faults[@]}" --throttle-first 6 --retry-after 1 --data-lake-lag 1h
archive faulted-jobs faulted-jobs --analytics jobs

start_sim --job-ready-after 5s
archive clean-slow-jobs clean-slow-jobs
