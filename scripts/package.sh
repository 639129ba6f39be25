#!/usr/bin/env bash
# Builds the Debian package: both binaries, man pages and shell completions generated from the
# same clap definitions as --help, a commented /etc/genesys-archiver.toml, and the systemd units
# (packaging/). dpkg-deb directly: the layout is a dozen files, and no packaging tool has to be
# built first.
# Usage: scripts/package.sh [--debug] [--out DIR]
#   --debug  package the debug build already in target/ (what the test script checks);
#            default: a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=release
out="$root/target/package"
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --out) out=$2; shift ;;
    *) echo "usage: scripts/package.sh [--debug] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
target="${CARGO_TARGET_DIR:-$root/target}"
if [ "$profile" = release ]; then
  cargo build --release -p genesys-archiver
fi
bin="$target/$profile"
for b in genesys-archiver genesys-archiverd; do
  [ -x "$bin/$b" ] || { echo "package: $bin/$b is missing (cargo build -p genesys-archiver)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$bin/genesys-archiver" "$stage/usr/bin/genesys-archiver"
install -D -m 0755 "$bin/genesys-archiverd" "$stage/usr/bin/genesys-archiverd"
if [ "$profile" = release ]; then
  strip "$stage/usr/bin/genesys-archiver" "$stage/usr/bin/genesys-archiverd"
fi
man="$stage/usr/share/man/man1"
"$bin/genesys-archiver" manpages --out "$man" >/dev/null
gzip -9n "$man"/*.1
mkdir -p "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"
"$bin/genesys-archiver" completions bash > "$stage/usr/share/bash-completion/completions/genesys-archiver"
"$bin/genesys-archiver" completions zsh > "$stage/usr/share/zsh/vendor-completions/_genesys-archiver"
"$bin/genesys-archiver" completions fish > "$stage/usr/share/fish/vendor_completions.d/genesys-archiver.fish"
for unit in genesys-archiverd.service genesys-archiver-verify.service genesys-archiver-verify.timer; do
  install -D -m 0644 "packaging/$unit" "$stage/lib/systemd/system/$unit"
done
install -D -m 0644 packaging/genesys-archiver.toml "$stage/etc/genesys-archiver.toml"
install -D -m 0644 packaging/copyright "$stage/usr/share/doc/genesys-archiver/copyright"
install -D -m 0644 README.md "$stage/usr/share/doc/genesys-archiver/README.md"
for doc in operations guarantees; do
  install -D -m 0644 "docs/$doc.md" "$stage/usr/share/doc/genesys-archiver/$doc.md"
done
install -D -m 0755 packaging/postinst "$stage/DEBIAN/postinst"
echo /etc/genesys-archiver.toml > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: genesys-archiver
Version: $version
Architecture: $arch
Maintainer: recording-archiver maintainers <maintainers@example.invalid>
Installed-Size: $size
Depends: adduser, libc6
Section: utils
Priority: optional
Homepage: https://example.invalid/recording-archiver
Description: archive Genesys Cloud call recordings into S3, verified end to end
 genesys-archiver moves call recordings out of Genesys Cloud into Amazon S3 or an
 S3-compatible store (or a directory), verifying every byte (MD5, length, the store's
 checksum), keeping a resumable ledger and a signed chain-of-custody index.
 genesys-archiverd runs it continuously under systemd.
CONTROL
mkdir -p "$out"
deb="$out/genesys-archiver_${version}_${arch}.deb"
# The debug package only serves the test script's check: compressed fast, not small.
compression=()
[ "$profile" = debug ] && compression=(-Zgzip -z1)
dpkg-deb --build --root-owner-group "${compression[@]}" "$stage" "$deb" >/dev/null
echo "$deb"
