#!/usr/bin/env bash
# Runs every test of the workspace on this machine: formatting, clippy, unit tests, and the
# integration tests against real S3 servers (s3s-fs and Ceph RADOS Gateway on 127.0.0.1) and a
# real PostgreSQL (the shared ledger),
# which this script installs (if missing) and starts. A server that cannot start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/install-deps.sh

# No stowaways: every clone carries every tracked file forever. A tracked file over 1 MB outside
# the fuzz corpus (a wheel, an archive, a build output) fails the run.
echo "== no large tracked files"
large=$(git ls-files -z | grep -zv '^fuzz/corpus/' | xargs -0 -r stat -c '%s %n' 2>/dev/null \
  | awk '$1 > 1048576 { print }')
if [ -n "$large" ]; then
  echo "tracked files over 1 MB (remove them, or keep them out with .gitignore):" >&2
  echo "$large" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
cargo build --workspace --all-targets
# The simulator against the official Genesys Cloud Python SDK's models, and the archiver's
# requests against its request models (installs the pinned SDK into .test-servers/ once).
echo "== SDK contract"
scripts/sdk-contract.sh
# The Debian package: contents, systemd units, man pages, the example configuration.
echo "== package"
scripts/check-package.sh
# The library crates' documentation builds without warnings (broken links, missing docs).
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# The examples a dependent service would start from, run as its authors would.
echo "== examples"
for example in archive_from_service custom_sink custom_key_layout; do
  cargo run -q -p examples --example "$example" > /dev/null
done
# The README's first command, as a newcomer types it (debug build, a throwaway directory):
# catches a workspace change that makes `cargo run -p genesys-archiver` ambiguous or broken.
echo "== README demo command"
demo_dir=$(mktemp -d)
cargo run -q -p genesys-archiver -- demo --out "$demo_dir/archive" | tail -1
rm -rf "$demo_dir"

state="$root/.test-servers"
mkdir -p "$state"
cleanup() {
  "$root/scripts/servers/s3s.sh" stop "$state/s3s" || true
  "$root/scripts/servers/ceph.sh" stop "$state/ceph" || true
  "$root/scripts/servers/postgres.sh" stop "$state/postgres" || true
}
trap cleanup EXIT

export E2E_S3_ACCESS_KEY="e2e-access-key"
export E2E_S3_SECRET_KEY="e2e-secret-key-$(date +%s)"
s3s_port=$(python3 scripts/servers/free-port.py)
ceph_port=$(python3 scripts/servers/free-port.py)
echo "== starting s3s-fs and Ceph RGW"
scripts/servers/s3s.sh start "$state/s3s" "$s3s_port" "$E2E_S3_ACCESS_KEY" "$E2E_S3_SECRET_KEY"
scripts/servers/ceph.sh start "$state/ceph" "$ceph_port" "$E2E_S3_ACCESS_KEY" "$E2E_S3_SECRET_KEY"
pg_port=$(python3 scripts/servers/free-port.py)
echo "== starting PostgreSQL"
scripts/servers/postgres.sh start "$state/postgres" "$pg_port"
export E2E_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export E2E_POSTGRES_CA="$state/postgres/ca.pem"
export E2E_POSTGRES_OTHER_CA="$state/postgres/other-ca.pem"
export E2E_S3S_ENDPOINT="http://127.0.0.1:$s3s_port"
export E2E_CEPH_ENDPOINT="http://127.0.0.1:$ceph_port"

echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== all tests passed"
