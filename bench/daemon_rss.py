#!/usr/bin/env python3
"""Daemon memory over many polls: runs the release `genesys-archiver daemon` against
a simulator (a separate process) into a local directory with a short --interval, counts its
"poll finished" log lines and samples its RSS (from /proc) after polls 1, 10, 100, 500 and
the last; then stops it with SIGTERM. Prints one JSON line.
Usage: bench/daemon_rss.py BIN SIM_URL WORKDIR POLLS"""
import json, os, signal, subprocess, sys, time

def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def main():
    binary, sim, work, polls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    env = dict(os.environ, GENESYS_CLIENT_ID="sim-client", GENESYS_CLIENT_SECRET="sim-secret",
               GENESYS_API_BASE=sim, RUST_LOG="info", GENESYS_ARCHIVER_LOG_FORMAT="json")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 4 * 86400))
    cmd = [binary, "daemon", "--since", since, "--interval", "100ms", "--settle", "0s",
           "--allow-loopback-media", "--api-budget", "1000000", "--progress", "never",
           "--state", os.path.join(work, "daemon.db"), "--create-ledger", "--out", os.path.join(work, "out")]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marks, seen, peak, started, first = {}, 0, 0, time.time(), {}
    for line in p.stderr:
        if "poll finished" not in line:
            continue
        seen += 1
        if seen == 1:
            try:
                first = json.loads(line).get("fields", {})
            except ValueError:
                first = {}
        r = rss(p.pid)
        peak = max(peak, r)
        if seen in (1, 10, 100, 500) or seen == polls:
            marks[seen] = round(r / 2**20, 1)
        if seen >= polls:
            break
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    print(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "polls": seen, "seconds": round(time.time() - started, 1),
                      "first_poll_archived": first.get("archived"),
                      "rss_mib_after_poll": marks, "peak_sampled_mib": round(peak / 2**20, 1)}))

if __name__ == "__main__":
    main()
