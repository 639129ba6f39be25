#!/usr/bin/env python3
"""Tables of the real-network benchmark (bench/peers.sh with RTT_MS): per workload and round
trip, each tool's median wall time and throughput, and the archiver rows' ratios to boto3 at 8
threads and to s5cmd, measured in the same session. Usage: network_table.py RESULTS.jsonl"""
import json, statistics, sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
groups = defaultdict(list)
for r in rows:
    groups[(r["workload"], r.get("rtt_ms", 0), r["tool"])].append(r)
for (w, rtt) in sorted({(w, rtt) for w, rtt, _ in groups}):
    tools = {t: g for (ww, rr, t), g in groups.items() if (ww, rr) == (w, rtt)}
    med = {t: statistics.median(r["wall"] for r in g) for t, g in tools.items()}
    print(f"\n### workload {w}, {rtt} ms round trip\n")
    print("| tool | concurrency | runs | wall s (median) | MiB/s | all stored | vs boto3 (8) | vs s5cmd |")
    print("|---|---|---|---|---|---|---|---|")
    for t, g in sorted(tools.items(), key=lambda kv: med[kv[0]]):
        n, size = g[0]["n"], g[0]["size"]
        mibs = n * size / med[t] / 2**20
        ok = all(r["stored"] >= r["n"] and r["exit"] == 0 for r in g)
        ratio = lambda peer: f"{med[peer] / med[t]:.2f}x" if peer in med and t != peer else "-"
        print(f"| {t} | {g[0]['concurrency']} | {len(g)} | {med[t]:.1f} | {mibs:.1f} | {'yes' if ok else 'NO'} | {ratio('boto3')} | {ratio('s5cmd')} |")
