#!/usr/bin/env bash
# The PostgreSQL ledger's commits per recording (run by hand, not in CI):
# the release binary archives N recordings of 1 KiB from the simulator into a local directory
# with a PostgreSQL ledger whose server flushes its WAL on every commit (fsync on, data on
# disk), and reports the wall time, the server's WAL flushes per recording (pg_stat_wal.wal_sync
# before and after: the fsyncs; the server serves nothing else), its committed transactions
# (pg_stat_database.xact_commit of the run's database; read-only ones count too) and the run
# report's grouped writes and commits.
#
#   bench/pg-ledger.sh                      2,000 recordings, 8 workers
#   N=10000 WORKERS=16 bench/pg-ledger.sh
#   BIN=/path/to/older/genesys-archiver LABEL=before bench/pg-ledger.sh
#
# Appends JSON lines to bench/results/pg-ledger.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/sim.sh
root=$(pwd)
N=${N:-2000}
WORKERS=${WORKERS:-8}
LABEL=${LABEL:-current}
if [ -z "${BIN:-}" ]; then
  cargo build --release -p genesys-archiver
  BIN=$root/target/release/genesys-archiver
fi
results=${RESULTS:-$root/bench/results/pg-ledger.jsonl}
work=$(mktemp -d /var/tmp/bench-pg.XXXXXX)
simpid=""
cleanup() {
  [ -n "$simpid" ] && kill "$simpid" 2>/dev/null || true
  scripts/servers/postgres.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
pgport=$(python3 scripts/servers/free-port.py)
PG_FSYNC=on PG_DATA_PARENT=/var/tmp scripts/servers/postgres.sh start "$work/pg" "$pgport" >/dev/null
psql_() { psql -h 127.0.0.1 -p "$pgport" -U postgres -At "$@"; }
db=bench_$RANDOM
psql_ -d postgres -c "CREATE DATABASE $db" >/dev/null
[ -n "${LOG_MOD:-}" ] && psql_ -d postgres -c "ALTER DATABASE $db SET log_statement = 'mod'" >/dev/null
start_sim "$work/sim.url" --recordings "$N" --sizes 1024..1024 --rate-limit 1000000
FROM=$(date -u -d '4 days ago' +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d '1 hour ago' +%Y-%m-%dT%H:%M:%SZ)
url="postgres://postgres@127.0.0.1:$pgport/$db"
# Open the ledger once (migrations) so that the count covers the run's own work only.
env GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE="$SIM" \
  "$BIN" ledger list --state "$url" >/dev/null 2>&1 || true
commits() { psql_ -d postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"; }
syncs() { psql_ -d postgres -c "SELECT wal_sync FROM pg_stat_wal"; }
sleep 1  # statistics are reported by backends at most every second
before=$(commits); syncs_before=$(syncs)
line=$(env GENESYS_CLIENT_ID=sim-client GENESYS_CLIENT_SECRET=sim-secret GENESYS_API_BASE="$SIM" \
  python3 bench/measure.py -- "$BIN" archive --from "$FROM" --to "$TO" --workers "$WORKERS" \
  --allow-loopback-media --api-budget 1000000 --progress never --state "$url" \
  --report "$work/report.json" --out "$work/out")
sleep 2
after=$(commits); syncs_after=$(syncs)
python3 - "$line" "$work/report.json" "$N" "$WORKERS" "$LABEL" "$before" "$after" "$syncs_before" "$syncs_after" >> "$results" <<'PY'
import json, sys, datetime
m = json.loads(sys.argv[1]); r = json.load(open(sys.argv[2]))
n = int(sys.argv[3]); xacts = int(sys.argv[7]) - int(sys.argv[6])
syncs = int(sys.argv[9]) - int(sys.argv[8])
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "label": sys.argv[5], "recordings": n, "workers": int(sys.argv[4]),
    "archived": r["summary"]["archived"], "exit_code": r["exit_code"],
    "wall_s": round(m["wall"], 2), "cpu_s": round(m["cpu"], 2),
    "wal_syncs": syncs, "wal_syncs_per_recording": round(syncs / n, 3),
    "server_commits": xacts, "server_commits_per_recording": round(xacts / n, 3),
    "ledger_writes": r.get("ledger_writes"), "ledger_commits": r.get("ledger_commits")}))
PY
tail -1 "$results"
if [ -n "${LOG_MOD:-}" ]; then grep -oE "(statement|execute [^:]*): [A-Za-z]+ [A-Za-z_]+( [A-Za-z_]+)?" "$(cat "$work/pg/datadir")/log" | sed -E "s/execute [^:]*:/execute:/" | sort | uniq -c | sort -rn | head -20; fi
