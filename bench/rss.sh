#!/usr/bin/env bash
# Memory benchmark (run by hand, not in CI): peak RSS of `genesys-archiver archive` streaming
# (a) one 1 GiB recording and (b) 16 recordings of 200 MiB with 16 workers from the simulator
# into s3s-fs. The simulator runs as a separate process, so only the archiver is measured.
# Usage: bench/rss.sh            (prints a Markdown table; needs s3s-fs, /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
# The simulator's conversations lie between 3 and 1 days ago (its default range), well inside
# the details query's 35-day reach.
FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
cargo build --release -p genesys-archiver
BIN=target/release/genesys-archiver
work=$(mktemp -d)
AK=bench-access; SK=bench-secret-key
s3port=$(python3 scripts/servers/free-port.py)
scripts/servers/s3s.sh start "$work/s3s" "$s3port" "$AK" "$SK" >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; scripts/servers/s3s.sh stop "$work/s3s"; rm -rf "$work"; }
trap cleanup EXIT

run_case() { # name recordings size workers
  local name=$1 n=$2 size=$3 workers=$4
  local simport; simport=$(python3 scripts/servers/free-port.py)
  $BIN sim --listen "127.0.0.1:$simport" --recordings "$n" --sizes "$size..$size" > "$work/sim-$name.url" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 50); do [ -s "$work/sim-$name.url" ] && break; sleep 0.1; done
  local bucket="bench-$name-$RANDOM"
  mkdir -p "$work/s3s/data/$bucket"   # s3s-fs keeps each bucket as a directory
  local start end
  start=$(date +%s.%N)
  GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE="$(cat "$work/sim-$name.url")" \
  S3_BUCKET=$bucket AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$s3port" \
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK S3_FORCE_PATH_STYLE=true \
  /usr/bin/time -v "$BIN" archive --from "$FROM" --to "$TO" \
    --workers "$workers" --allow-loopback-media --verify-source-etag --tag-mode disabled \
    > "$work/$name.out" 2> "$work/$name.time" || { echo "archive failed:" >&2; cat "$work/$name.out" "$work/$name.time" >&2; }
  end=$(date +%s.%N)
  local rss_kb; rss_kb=$(grep "Maximum resident set size" "$work/$name.time" | awk '{print $NF}')
  local total=$((n * size))
  local secs; secs=$(python3 -c "print(f'{$end-$start:.2f}')")
  local mibs; mibs=$(python3 -c "print(f'{$total/1048576/($end-$start):.0f}')")
  printf '| %s | %d x %d MiB | %d | %s | %s | %.1f MiB | %s |\n' "$name" "$n" $((size / 1048576)) "$workers" "$secs" "$mibs" \
    "$(python3 -c "print($rss_kb/1024)")" "$(tail -1 "$work/$name.out")"
}

echo "| case | data | workers | wall s | MiB/s | peak RSS | summary |"
echo "|---|---|---|---|---|---|---|"
run_case large 1 $((1024 * 1048576)) 4
run_case concurrent 16 $((200 * 1048576)) 16
# Above the 4 GiB multipart threshold (a single PUT holds at most 5 GiB): 8 MiB parts.
run_case huge 1 $((5632 * 1048576)) 4
