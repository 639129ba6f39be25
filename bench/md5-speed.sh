#!/usr/bin/env bash
# MD5 and SHA-256 throughput on this machine: md-5 (portable, and with its `asm` feature) and sha2 against
# OpenSSL's assembly MD5, one core each. Run by hand; see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/md5-speed"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/md5-speed-target}
echo "md-5 0.10, portable:"; cargo run -q --release
echo "md-5 0.10, asm feature:"; cargo run -q --release --features asm
echo "openssl speed md5 (bytes/s, by block size):"; openssl speed -seconds 3 md5 2>/dev/null | tail -1
