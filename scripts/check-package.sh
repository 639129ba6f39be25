#!/usr/bin/env bash
# Checks the Debian package as an operator would meet it: builds it from the debug build
# (scripts/package.sh --debug), lists its contents, verifies its systemd units with
# systemd-analyze (in a scratch root holding the package and the host's units), unpacks it
# into that root and runs both binaries' --version, reads a man page, and loads the example
# configuration. Any failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb=$(scripts/package.sh --debug --out "$work")
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/genesys-archiver ./usr/bin/genesys-archiverd \
  ./usr/share/man/man1/genesys-archiver.1.gz ./usr/share/man/man1/genesys-archiverd.1.gz \
  ./usr/share/man/man1/genesys-archiver-verify.1.gz \
  ./usr/share/bash-completion/completions/genesys-archiver \
  ./usr/share/zsh/vendor-completions/_genesys-archiver \
  ./lib/systemd/system/genesys-archiverd.service \
  ./lib/systemd/system/genesys-archiver-verify.service \
  ./lib/systemd/system/genesys-archiver-verify.timer \
  ./etc/genesys-archiver.toml ./usr/share/doc/genesys-archiver/copyright; do
  if ! grep -q " $path\$" <<<"$contents"; then
    echo "package: $path is missing from $deb" >&2
    exit 1
  fi
done
dpkg-deb --field "$deb" Package Version Depends | sed 's/^/package: /'
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -c conffiles)" = 1 ]
root="$work/root"
dpkg -x "$deb" "$root"
"$root/usr/bin/genesys-archiver" --version
"$root/usr/bin/genesys-archiverd" --version | grep -q '^genesys-archiverd '
MANPAGER=cat man -l "$root/usr/share/man/man1/genesys-archiver-archive.1.gz" 2>/dev/null \
  | grep -q -- '--from'
# The example configuration parses (the ledger named on the command line does not exist:
# exit 2 about the ledger, never about --config).
if out=$("$root/usr/bin/genesys-archiver" --config "$root/etc/genesys-archiver.toml" \
  ledger list --state "$work/none.db" 2>&1); then
  echo "package: ledger list on a missing ledger succeeded?" >&2
  exit 1
fi
if grep -q -- '--config' <<<"$out"; then
  echo "package: the example configuration does not load: $out" >&2
  exit 1
fi
# The units, against the host's systemd units (targets, the network) in the scratch root.
mkdir -p "$root/lib/systemd/system"
cp -rn /lib/systemd/system/. "$root/lib/systemd/system/" 2>/dev/null || true
analysis=$(cd "$root" && systemd-analyze verify --root="$root" \
  lib/systemd/system/genesys-archiverd.service \
  lib/systemd/system/genesys-archiver-verify.service \
  lib/systemd/system/genesys-archiver-verify.timer 2>&1) || {
  echo "package: systemd-analyze verify failed: $analysis" >&2
  exit 1
}
if [ -n "$analysis" ]; then
  echo "package: systemd-analyze verify complained: $analysis" >&2
  exit 1
fi
echo "package: $(basename "$deb") checked ($(du -h "$deb" | cut -f1))"
