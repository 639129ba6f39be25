#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 (trust auth, user postgres), with TLS offered:
# a fresh self-signed CA ($DIR/ca.pem) signs the server certificate, which names `localhost`
# only (so verify-full to 127.0.0.1 fails and to localhost passes); $DIR/other-ca.pem is a CA
# that signed nothing. Plain connections are still accepted.
# Usage: postgres.sh start DIR PORT | stop DIR
# Tests run it with fsync off. Benchmarks of the ledger set PG_FSYNC=on (every commit waits
# for its WAL flush, as in production) and PG_DATA_PARENT to a directory on disk.
# PostgreSQL refuses to run as root, so as root the cluster lives in a directory owned by the
# `postgres` user (created by Debian's package) and the server runs as that user.
set -euo pipefail
cmd=${1:?start|stop}; D=${2:?dir}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bindir" ] || { echo "PostgreSQL server binaries not found (install Debian's postgresql)" >&2; exit 1; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$cmd" = stop ]; then
  if [ -f "$D/datadir" ]; then
    as_pg "$bindir/pg_ctl" -D "$(cat "$D/datadir")" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$(cat "$D/datadir")"
  fi
  exit 0
fi
PORT=${3:?port}
rm -rf "$D"; mkdir -p "$D"
data=$(mktemp -d "${PG_DATA_PARENT:-/tmp}/e2e-pg.XXXXXX")
echo "$data" > "$D/datadir"
if [ "$(id -u)" = 0 ]; then chown postgres: "$data"; fi
as_pg "$bindir/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 >"$D/initdb.log" 2>&1 \
  || { echo "initdb failed:" >&2; cat "$D/initdb.log" >&2; exit 1; }
tls="$data/tls"; mkdir -p "$tls"
{
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=e2e test CA" -keyout "$tls/ca.key" -out "$D/ca.pem"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=unrelated CA" -keyout "$tls/other.key" -out "$D/other-ca.pem"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr"
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$tls/ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$D/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$tls/ext" -out "$tls/server.crt"
} >"$D/openssl.log" 2>&1 || { echo "creating test certificates failed:" >&2; cat "$D/openssl.log" >&2; exit 1; }
chmod 600 "$tls/server.key"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls"; fi
as_pg "$bindir/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
  -o "-h 127.0.0.1 -p $PORT -k $data -c fsync=${PG_FSYNC:-off} -c max_connections=200 -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key" start >/dev/null \
  || { echo "PostgreSQL did not start; log:" >&2; cat "$data/log" >&2; exit 1; }
echo "PostgreSQL ready on 127.0.0.1:$PORT"
