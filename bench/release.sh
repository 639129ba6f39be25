#!/usr/bin/env bash
# Release at the source (run by hand, not in CI): API calls and time to release N recordings
# at a given --release-rate, the CLI against the simulator, into a local directory.
#
#   archive   N recordings of conversations that ended 4 to 6 days ago (past the late
#             window), late window off, indexed
#   dry-run   `release --older-than 0s`: the protection checks only
#   execute   `release --older-than 0s --execute --release-rate RATE`
#   rerun     the same again: nothing left to release, no call
#
# Usage: bench/release.sh [N=600] [RATE=60]. Appends one JSON line per step to
# bench/results/release.jsonl. Calls come from the reports (the archive run's `api_calls`; the
# release's protection checks and delete dates), time from the wall clock.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
N=${1:-600}
RATE=${2:-60}
PROFILE=${PROFILE:-debug}
if [ "$PROFILE" = release ]; then cargo build --release -q -p genesys-archiver; else cargo build -q -p genesys-archiver; fi
BIN=$root/target/$PROFILE/genesys-archiver
work=$(mktemp -d)
simpid=""
cleanup() { [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. bench/sim.sh
START=$(date -u -d "6 days ago" +%Y-%m-%dT%H:%M:00Z)
END=$(date -u -d "4 days ago" +%Y-%m-%dT%H:%M:00Z)
start_sim "$work/sim.url" --recordings "$N" --start "$START" --span 2d --rate-limit 100000
export GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE=$SIM
common=(--out "$work/store" --state "$work/state.db" --allow-loopback-media)

step() { # name command...
  local name=$1; shift
  local t0 t1; t0=$(date +%s.%N)
  "$@" > "$work/$name.out" 2> "$work/$name.err" || { echo "$name failed:"; cat "$work/$name.out" "$work/$name.err"; exit 1; }
  t1=$(date +%s.%N)
  python3 - "$name" "$N" "$RATE" "$t0" "$t1" "$work/$name.out" "$work/report.json" <<'PY' | tee -a "$root/bench/results/release.jsonl"
import json, sys
name, n, rate, t0, t1, out, report = sys.argv[1:]
line = {"step": name, "recordings": int(n), "release_rate": int(rate),
        "seconds": round(float(t1) - float(t0), 1)}
if name == "archive":
    r = json.load(open(report))
    line.update({"archived": r["summary"]["archived"], "api_calls": r["api_calls"]})
else:
    r = json.loads(open(out).read())
    line.update({k: r[k] for k in ("considered", "eligible", "released")})
    line["api_calls"] = r["api_calls"]["protection"] + r["api_calls"]["put"]
    line["calls_by_kind"] = r["api_calls"]
print(json.dumps(line))
PY
}

step archive "$BIN" archive --from "$START" --to "$END" --late-window 0s --progress never --report "$work/report.json" --create-ledger "${common[@]}"
step dry-run "$BIN" release --older-than 0s --json "${common[@]}"
step execute "$BIN" release --older-than 0s --execute --release-rate "$RATE" --json "${common[@]}"
step rerun "$BIN" release --older-than 0s --execute --release-rate "$RATE" --json "${common[@]}"
