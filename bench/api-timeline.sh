#!/usr/bin/env bash
# When did each Genesys API call of a workload-(c) run go out? Runs the archiver once on
# 20,000 recordings of 32 KiB into a local directory with a trace log of its API calls, then
# prints the call timeline (bench/api_timeline.py): whether the run is bound by the rate
# budget, and how close to its floor. Run by hand; see docs/benchmarks.md, workload (c).
#
#   bench/api-timeline.sh [RATE] [archiver flags...]
#   bench/api-timeline.sh 300                                   # the budget, default settings
#   bench/api-timeline.sh 300 --batch-parallelism 16 --poll-initial 250ms
#   bench/api-timeline.sh 100000 --api-budget 100000            # no budget at all
set -euo pipefail
cd "$(dirname "$0")/.."
# The simulator's conversations lie between 3 and 1 days ago (its default range), well inside
# the details query's 35-day reach.
FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
rate=${1:-300}; shift || true
cargo build -q --release -p genesys-archiver
BIN=target/release/genesys-archiver
w=$(mktemp -d /tmp/api-timeline.XXXXXX)
port=$(python3 scripts/servers/free-port.py)
$BIN sim --listen "127.0.0.1:$port" --recordings 20000 --sizes 32768..32768 --rate-limit "$rate" \
  --urls-out "$w/urls.tsv" > "$w/sim.url" 2>/dev/null </dev/null &
sim=$!
trap 'kill $sim 2>/dev/null || true; rm -rf "$w"' EXIT
for _ in $(seq 1 600); do [ -s "$w/sim.url" ] && break; sleep 0.1; done
start=$(date +%s.%N)
GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE=$(cat "$w/sim.url") \
  RUST_LOG=warn,genesys_media::client=trace \
  $BIN archive --from "$FROM" --to "$TO" --workers 8 \
  --allow-loopback-media --out "$w/out" --progress never --state "$w/state.db" --create-ledger --log-format json \
  "$@" > "$w/stdout" 2> "$w/log"
end=$(date +%s.%N)
python3 -c "print(f'wall {$end - $start:.2f} s')"
tail -1 "$w/stdout"
python3 bench/api_timeline.py "$w/log" "$rate"
