#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 (trust auth, user postgres).
# Usage: postgres.sh start DIR PORT | stop DIR
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
data=$(mktemp -d /tmp/e2e-pg.XXXXXX)
echo "$data" > "$D/datadir"
if [ "$(id -u)" = 0 ]; then chown postgres: "$data"; fi
as_pg "$bindir/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 >"$D/initdb.log" 2>&1 \
  || { echo "initdb failed:" >&2; cat "$D/initdb.log" >&2; exit 1; }
as_pg "$bindir/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
  -o "-h 127.0.0.1 -p $PORT -k $data -c fsync=off -c max_connections=200" start >/dev/null \
  || { echo "PostgreSQL did not start; log:" >&2; cat "$data/log" >&2; exit 1; }
echo "PostgreSQL ready on 127.0.0.1:$PORT"
