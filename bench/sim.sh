# Sourced by the bench scripts: starts the simulator of "$BIN" in the background.
#
#   start_sim URL_FILE SIM_FLAGS...
#
# listens on a free loopback port, waits (up to a minute) until the simulator has printed its
# base URL into URL_FILE, and sets `simpid` (to kill it) and `SIM` (its base URL).
start_sim() {
  local url_file=$1; shift
  local port; port=$(python3 scripts/servers/free-port.py)
  "$BIN" sim --listen "127.0.0.1:$port" "$@" > "$url_file" 2>/dev/null &
  simpid=$!
  for _ in $(seq 1 600); do [ -s "$url_file" ] && break; sleep 0.1; done
  SIM=$(head -1 "$url_file" | grep -o 'http://[0-9.:]*')
}
