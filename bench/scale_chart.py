#!/usr/bin/env python3
"""Reads bench/results/scale.jsonl (bench/scale.sh) and writes bench/results/scale.svg: time
per recording and peak RSS against the number of recordings, one line per store (ledger on
disk; the latest run of each size), with the 128 MiB peak-RSS target. Prints the points."""
import json, sys
from collections import OrderedDict

path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/scale.jsonl"
out = sys.argv[2] if len(sys.argv) > 2 else "bench/results/scale.svg"
rows = [json.loads(l) for l in open(path) if l.strip()]
series = OrderedDict()
for r in rows:
    if r["ledger_dir"].startswith("/dev/shm"):
        continue
    series.setdefault(r["store"], {})[r["recordings"]] = r  # the latest run of each size wins
for store, pts in series.items():
    for n in sorted(pts):
        r = pts[n]
        print(f"{store:4} {n:>9,} recordings: {r['us_per_recording'] / 1000:.2f} ms each, "
              f"peak RSS {r['peak_rss_mib']} MiB, {r['api_calls_per_1000']} API calls per 1,000")
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
for store, pts in series.items():
    ns = sorted(pts)
    a.plot(ns, [pts[n]["us_per_recording"] / 1000 for n in ns], marker="o", label=store)
    b.plot(ns, [pts[n]["peak_rss_mib"] for n in ns], marker="o", label=store)
b.axhline(128, linestyle="--", color="grey", label="target 128 MiB")
for ax, title, unit in ((a, "time per recording", "ms"), (b, "peak RSS of the archiver", "MiB")):
    ax.set_xscale("log")
    ax.set_xlabel("recordings in the run (1 KiB each)")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.legend()
fig.tight_layout()
fig.savefig(out)
print("chart:", out)
