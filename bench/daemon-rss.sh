#!/usr/bin/env bash
# Daemon memory over many polls (run by hand): the release binary polls a simulator
# (2,000 recordings three days ago, a separate process) every 100 ms into a local directory,
# POLLS times (default 1,000); RSS after polls 1, 10, 100, 500 and the last.
# Results appended to bench/results/daemon-rss.jsonl. Usage: bench/daemon-rss.sh [POLLS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/sim.sh
POLLS=${1:-1000}
cargo build --release -p genesys-archiver
BIN=target/release/genesys-archiver
work=$(mktemp -d)
simpid=""
trap '[ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true; rm -rf "$work"' EXIT
start_sim "$work/sim.url" --recordings 2000 --rate-limit 1000000
python3 bench/daemon_rss.py "$BIN" "$SIM" "$work" "$POLLS" | tee -a bench/results/daemon-rss.jsonl
