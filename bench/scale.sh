#!/usr/bin/env bash
# The cost curve (run by hand, not in CI): discovery and archival of many small
# recordings from the simulator, at 10,000, 100,000 and (FULL=1) 1,000,000, into a local
# directory and (STORES="dir s3s") into s3s-fs. The API budget is lifted (--rate-limit on the
# simulator, --api-budget on the archiver) so the archiver's own costs show; the API-bound
# view at 300/min is workload (c) of bench/peers.sh.
#
#   bench/scale.sh                     10k and 100k into a directory
#   SIZES="10000" STORES="dir s3s" bench/scale.sh
#   FULL=1 bench/scale.sh              adds 1,000,000 (about half an hour)
#   LEDGER_DIR=/dev/shm bench/scale.sh the ledger on tmpfs (no fsync cost), to compare
#
# Per run: wall time, per-recording time, CPU seconds, peak RSS of the archiver (not of the
# simulator, a separate process), ledger file size, API calls per 1,000 recordings, ledger
# writes and the transactions (fsyncs) they took. Appends JSON lines to
# bench/results/scale.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/sim.sh
root=$(pwd)
SIZES=${SIZES:-10000 100000}
[ "${FULL:-0}" = 1 ] && SIZES="$SIZES 1000000"
STORES=${STORES:-dir}
WORKERS=${WORKERS:-8}
BODY=${BODY:-1024}
# BIN given: that build is measured as it is, and nothing is built (a build beside a run
# would disturb it, and sources being edited meanwhile do not matter).
[ -n "${BIN:-}" ] || cargo build --release -p genesys-archiver
# BIN=path LABEL=name: another build (e.g. the commit before a change), its rows labelled.
BIN=${BIN:-$root/target/release/genesys-archiver}
# Builds from before --create-ledger start a new ledger without being asked.
CREATE=$("$BIN" archive --help 2>/dev/null | grep -q -- --create-ledger && echo --create-ledger || true)
results=${RESULTS:-$root/bench/results/scale.jsonl}
work=$(mktemp -d /var/tmp/bench-scale.XXXXXX)
ledger_dir=${LEDGER_DIR:-$work}
AK=bench-access; SK=bench-secret-key-0123
s3port=""
simpid=""
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  [ -n "$s3port" ] && scripts/servers/s3s.sh stop "$work/s3s" || true
  rm -rf "$work" "$ledger_dir"/scale-*.db*
}
trap cleanup EXIT
if [[ " $STORES " == *" s3s "* ]]; then
  s3port=$(python3 scripts/servers/free-port.py)
  scripts/servers/s3s.sh start "$work/s3s" "$s3port" "$AK" "$SK" >/dev/null
fi

for n in $SIZES; do
  # The conversations spread over two days, three days ago: inside the details query's reach.
  start_sim "$work/sim.url" --recordings "$n" --sizes "$BODY..$BODY" --rate-limit 1000000
  FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
  TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
  for store in $STORES; do
    B="scale-$n-$RANDOM"
    state="$ledger_dir/scale-$B.db"
    common=(archive --from "$FROM" --to "$TO" --workers "$WORKERS" --allow-loopback-media
      --api-budget 1000000 --progress never --state "$state" $CREATE --report "$work/report-$B.json")
    if [ "$store" = dir ]; then
      target=(--out "$work/dir-$B")
    else
      mkdir -p "$work/s3s/data/$B"
      target=(--tag-mode disabled)
    fi
    line=$(env GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE="$SIM" \
      S3_BUCKET="$B" S3_FORCE_PATH_STYLE=true AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
      AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:${s3port:-1}" \
      python3 bench/measure.py -- "$BIN" "${common[@]}" "${target[@]}")
    python3 - "$line" "$work/report-$B.json" "$state" "$n" "$store" "$BODY" "$WORKERS" "$ledger_dir" >> "$results" <<'PY'
import json, os, sys, datetime
m = json.loads(sys.argv[1]); r = json.load(open(sys.argv[2]))
n = int(sys.argv[4]); s = r["summary"]
size = sum(os.path.getsize(sys.argv[3] + x) for x in ("", "-wal") if os.path.exists(sys.argv[3] + x))
row = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "recordings": n, "store": sys.argv[5], "body_bytes": int(sys.argv[6]),
       "workers": int(sys.argv[7]), "ledger_dir": sys.argv[8],
       "archived": s["archived"], "found": s["found"], "exit_code": r["exit_code"],
       "wall_s": round(m["wall"], 2), "us_per_recording": round(m["wall"] / n * 1e6, 1),
       "cpu_s": round(m["cpu"], 2), "peak_rss_mib": round(m["peak_rss"] / 2**20, 1),
       "ledger_mib": round(size / 2**20, 1),
       "api_calls": r["api_calls"], "api_calls_per_1000": round(r["api_calls"] / n * 1000, 1),
       "ledger_writes": r.get("ledger_writes"), "ledger_commits": r.get("ledger_commits"),
       **({"label": os.environ["LABEL"]} if os.environ.get("LABEL") else {})}
print(json.dumps(row))
PY
    tail -1 "$results"
    rm -rf "$work/dir-$B" "$work/s3s/data/$B" "$state" "$state"-*
  done
  kill "$simpid" 2>/dev/null || true; wait "$simpid" 2>/dev/null || true; simpid=""
done
