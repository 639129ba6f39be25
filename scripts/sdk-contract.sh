#!/usr/bin/env bash
# Contract test of the Genesys Cloud simulator (crates/genesys-sim) against the official
# Genesys Cloud Python SDK's models (PyPI purecloudplatformclientv2, pinned below): installs the
# SDK into a venv under .test-servers/ (reused when it holds the pinned version), starts two
# simulators on 127.0.0.1, runs the real archiver against the first with its requests
# captured (sim --capture-requests), and runs scripts/sdk_contract.py, which drives the second
# through every endpoint the Rust client uses, checks each answer against the SDK model of its
# endpoint and the captured requests against the SDK's request models. Any mismatch fails.
# Usage: scripts/sdk-contract.sh [GENESYS_ARCHIVER_BINARY]
#   (default: the debug build in $CARGO_TARGET_DIR or target/; build it first)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

SDK_VERSION=269.0.0
venv="$root/.test-servers/sdk-venv"
bin=${1:-"${CARGO_TARGET_DIR:-$root/target}/debug/genesys-archiver"}
if [ ! -x "$bin" ]; then
  echo "sdk-contract: no archiver binary at $bin (cargo build -p genesys-archiver)" >&2
  exit 1
fi

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('PureCloudPlatformClientV2') != '$SDK_VERSION')" 2>/dev/null; then
  echo "== installing purecloudplatformclientv2 $SDK_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "purecloudplatformclientv2==$SDK_VERSION"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Both simulated orgs: two days of conversations that ended at least a day ago.
start=$(date -u -d '3 days ago' +%Y-%m-%dT%H:%M:00Z)
end=$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:00Z)
# The archiver's interval reaches up to a minute ago (not now: what lies ahead of the
# service's clock is reported as not discoverable yet, which fails the run).
recent=$(date -u -d '1 minute ago' +%Y-%m-%dT%H:%M:%SZ)

# start_sim NAME ARGS...: starts a simulator, sets $url to its base URL.
start_sim() {
  local name=$1
  shift
  "$bin" sim --listen 127.0.0.1:0 --start "$start" --span 2d "$@" \
    >"$work/$name.url" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    url=$(head -n1 "$work/$name.url")
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "sdk-contract: the $name simulator did not start; its log:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

# 1. The real client's requests, captured by the simulator: the archiver's discovery through
#    analytics jobs up to the data lake's availability (a day ago) and the details query after
#    it, with batch downloads, then once more per recording.
start_sim client --recordings 20 --capture-requests "$work/requests.jsonl"
for source in batch per-recording; do
  if ! GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE="$url" \
    "$bin" archive --from "$start" --to "$recent" --out "$work/archive-$source" \
    --state "$work/ledger-$source.db" --create-ledger \
    --source "$source" --analytics jobs --allow-loopback-media --poll-initial 100ms \
    >"$work/archive-$source.log" 2>&1; then
    echo "sdk-contract: the archiver failed against the simulator (--source $source):" >&2
    tail -20 "$work/archive-$source.log" >&2
    exit 1
  fi
done

# 2. The simulator's answers, with what makes them vary: an archived recording, one of two
#    files, a conversation still in progress, orphans, a 429 (the first API call); no rate
#    limit otherwise (the test is quick).
start_sim answers --recordings 30 --rate-limit 0 --fault 2=archived --fault 4=twofiles \
  --hold-open 1 --orphans 2 --throttle-first 1
"$venv/bin/python" scripts/sdk_contract.py --base "$url" --interval "$start/$end" \
  --captured "$work/requests.jsonl"
