#!/usr/bin/env bash
# Start s3s-fs on 127.0.0.1. Usage: s3s.sh start DIR PORT ACCESS_KEY SECRET_KEY | stop DIR
set -euo pipefail
cmd=${1:?start|stop}; D=${2:?dir}
if [ "$cmd" = stop ]; then
  [ -f "$D/pid" ] && kill "$(cat "$D/pid")" 2>/dev/null || true
  exit 0
fi
PORT=${3:?port}; AK=${4:?access key}; SK=${5:?secret key}
rm -rf "$D"; mkdir -p "$D/data"
s3s-fs --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$D/data" \
  </dev/null >"$D/log" 2>&1 &
echo $! > "$D/pid"
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/" && { echo "s3s-fs ready on http://127.0.0.1:$PORT"; exit 0; }
  sleep 0.2
done
echo "s3s-fs did not start; log:" >&2; cat "$D/log" >&2; exit 1
