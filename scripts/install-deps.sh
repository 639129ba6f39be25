#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the Rust components for fmt and
# clippy, s3s-fs (a Rust S3 server), Ceph (mon, osd, radosgw) and PostgreSQL. Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "installing s3s-fs 0.14.1 (about 2-7 minutes)"
  # The version pin is required: later versions need a newer rustc.
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

need_apt=()
for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=(ceph-mon ceph-osd radosgw ceph-common)
done
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The PostgreSQL test server's TLS certificates are made with openssl.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The shared-ledger tests need a PostgreSQL server (not just the psql client).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# The progress-bar test runs the CLI under a pseudo-terminal with script(1).
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
# The package check (scripts/check-package.sh) reads a man page and verifies systemd units.
command -v man >/dev/null 2>&1 || need_apt+=(man-db)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# The SDK contract test (scripts/sdk-contract.sh) installs the Python SDK into a venv.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
