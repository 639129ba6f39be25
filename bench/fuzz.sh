#!/usr/bin/env bash
# Fuzzing (run by hand, not in CI): each cargo-fuzz target for SECONDS (default 300) on the
# committed corpus in fuzz/corpus/<target>, which grows as libFuzzer finds new paths.
# cargo fuzz needs unstable compiler flags; the machine's one toolchain is stable, so
# RUSTC_BOOTSTRAP=1 enables them. Usage: bench/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}; shift || true
targets=("$@"); [ ${#targets[@]} -eq 0 ] && targets=(api_json media_url key_template tags_and_headers)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=4096 2>&1 | tail -4
  # Keep the corpus small enough to commit: merge to a minimal set covering the same edges.
  mkdir -p "corpus/$t.min"
  cargo fuzz run "$t" "corpus/$t.min" "corpus/$t" -- -merge=1 >/dev/null 2>&1
  rm -rf "corpus/$t"; mv "corpus/$t.min" "corpus/$t"
  echo "   corpus: $(ls "corpus/$t" | wc -l) inputs"
done
