#!/usr/bin/env bash
# Backfills split across instances (run by hand, not in CI): `archive --scale-out` by one
# instance, then by three started together, on one PostgreSQL ledger (its server flushing the
# WAL on every commit, as in production), with the store (s3s-fs) and the simulator (API and
# media) behind the delay proxy, so that the round trips to the store bound each instance.
# Every run archives the same interval of a fresh simulator into a fresh bucket and database.
#
#   bench/scale-out.sh                      2,000 x 256 KiB, 8 workers an instance, 40 ms, 2 runs
#   N=4000 RTT_MS=80 WORKERS=8 INSTANCES="1 3" RUNS=1 bench/scale-out.sh
#   WORKERS=auto bench/scale-out.sh         each instance adapts its worker count
#   BIN=/path/to/genesys-archiver LABEL=before bench/scale-out.sh
#
# Per run: the wall time from the first start to the last exit, the CPU and summed peak RSS of
# the instances, recordings archived (the store's object count, and the instances' reports
# added up), and the API calls of all instances together (their reports). Appends JSON lines
# to bench/results/scale-out.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
N=${N:-2000}
SIZE=${SIZE:-262144}
RTT_MS=${RTT_MS:-40}
WORKERS=${WORKERS:-8}
INSTANCES=${INSTANCES:-1 3}
RUNS=${RUNS:-2}
LABEL=${LABEL:-}
# BIN given: that build is measured as it is, and nothing is built.
[ -n "${BIN:-}" ] || cargo build --release -p genesys-archiver
BIN=${BIN:-$root/target/release/genesys-archiver}
(cd bench/delay-proxy && CARGO_TARGET_DIR=${PROXY_TARGET:-/tmp/delay-proxy-target} cargo build -q --release)
PROXY=${PROXY_TARGET:-/tmp/delay-proxy-target}/release/delay-proxy
results=${RESULTS:-$root/bench/results/scale-out.jsonl}
work=$(mktemp -d /var/tmp/bench-scale-out.XXXXXX)
AK=bench-access; SK=bench-secret-key-0123
simpid=""
proxies=()
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  for p in "${proxies[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/servers/s3s.sh stop "$work/s3s" || true
  scripts/servers/postgres.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 scripts/servers/free-port.py; }
# delay PORT UPSTREAM_PORT: the delay proxy (RTT_MS) on PORT in front of UPSTREAM_PORT.
delay() {
  "$PROXY" "127.0.0.1:$1" "127.0.0.1:$2" "$RTT_MS" > "$work/proxy-$1.out" &
  proxies+=($!)
  for _ in $(seq 1 100); do [ -s "$work/proxy-$1.out" ] && break; sleep 0.05; done
}
s3port=$(port)
scripts/servers/s3s.sh start "$work/s3s" "$s3port" "$AK" "$SK" >/dev/null
front=$(port); delay "$front" "$s3port"
pgport=$(port)
PG_FSYNC=${PG_FSYNC:-on} PG_DATA_PARENT=/var/tmp scripts/servers/postgres.sh start "$work/pg" "$pgport" >/dev/null
FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
workers=(--workers "$WORKERS"); [ "$WORKERS" = auto ] && workers=()

for run in $(seq 1 "$RUNS"); do
  for k in $INSTANCES; do
    # A fresh simulator (its API and media behind the proxy too), bucket and database.
    [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
    simport=$(port); simfront=$(port); delay "$simfront" "$simport"
    rm -f "$work/sim.url"
    "$BIN" sim --listen "127.0.0.1:$simport" --recordings "$N" --sizes "$SIZE..$SIZE" \
      --rate-limit 1000000 --public-url "http://127.0.0.1:$simfront" > "$work/sim.url" 2>/dev/null &
    simpid=$!
    for _ in $(seq 1 600); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
    SIM="http://127.0.0.1:$simfront"
    B="so$RANDOM$RANDOM"; mkdir -p "$work/s3s/data/$B"
    db="so_$RANDOM$RANDOM"
    psql -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -qc "CREATE DATABASE $db"
    url="postgres://postgres@127.0.0.1:$pgport/$db"
    rm -f "$work"/report-*.json
    cmds=""
    for i in $(seq 1 "$k"); do
      cmds+="env GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE=$SIM \
        S3_BUCKET=$B S3_FORCE_PATH_STYLE=true AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
        AWS_REGION=us-east-1 AWS_ENDPOINT_URL=http://127.0.0.1:$front \
        $BIN archive --scale-out --from $FROM --to $TO ${workers[*]} --allow-loopback-media \
        --api-budget 1000000 --tag-mode disabled --progress never --state $url \
        --report $work/report-$i.json > $work/out-$i.txt 2>&1 & "
    done
    line=$(python3 bench/measure.py -- bash -c "$cmds wait")
    stored=$(find "$work/s3s/data/$B" -type f ! -name '.*' ! -path '*/index/*' | wc -l)
    python3 - "$line" "$work" "$k" "$N" "$SIZE" "$RTT_MS" "$WORKERS" "$stored" "$LABEL" >> "$results" <<'PY'
import json, sys, datetime, glob
m = json.loads(sys.argv[1]); work = sys.argv[2]; k = int(sys.argv[3])
reports = [json.load(open(p)) for p in sorted(glob.glob(f"{work}/report-*.json"))]
row = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "instances": k, "recordings": int(sys.argv[4]), "body_bytes": int(sys.argv[5]),
       "rtt_ms": int(sys.argv[6]), "workers": sys.argv[7], "stored": int(sys.argv[8]),
       "reports": len(reports),
       "archived": sum(r["summary"]["archived"] for r in reports),
       "per_instance": [r["summary"]["archived"] for r in reports],
       "exit_codes": [r["exit_code"] for r in reports],
       "api_calls": sum(r["api_calls"] for r in reports),
       "wall_s": round(m["wall"], 2), "cpu_s": round(m["cpu"], 2),
       "peak_rss_mib": round(m["peak_rss"] / 2**20, 1)}
if sys.argv[9]:
    row["label"] = sys.argv[9]
print(json.dumps(row))
PY
    echo "run $run, $k instance(s): $(tail -1 "$results")"
    for i in $(seq 1 "$k"); do tail -2 "$work/out-$i.txt" | sed "s/^/  instance $i: /"; done
    rm -rf "${work:?}/s3s/data/$B"
  done
done
