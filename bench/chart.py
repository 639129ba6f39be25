#!/usr/bin/env python3
"""Reads bench/results/peers.jsonl; prints Markdown tables (medians per workload and tool,
ratios to the fastest peer) and writes bench/results/peers.svg.

A row with "sample_of" ran on a sample of the workload's URLs (the AWS CLI on (c)): it is
shown apart, with its measured time and the time for the whole list projected from its
per-object rate (marked as a projection), and never counts as the fastest peer."""
import json, statistics, sys
from collections import defaultdict

path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/peers.jsonl"
rows = [json.loads(l) for l in open(path) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[(r["workload"], r["tool"])].append(r)
PEERS = {"rclone-copyurl", "aws-cli", "s5cmd", "boto3"}
MiB, GiB = 1 << 20, 1 << 30
summary = {}
for (w, tool), rs in sorted(by.items()):
    total = rs[0]["n"] * rs[0]["size"]
    wall = statistics.median(r["wall"] for r in rs)
    summary[(w, tool)] = {
        "runs": len(rs),
        "wall": wall,
        "mibs": total / MiB / wall,
        "cpu_per_gib": statistics.median(r["cpu"] for r in rs) / (total / GiB),
        "rss": max(r["peak_rss"] for r in rs) / MiB,
        "ok": all(r["stored"] == r["n"] and r["exit"] == 0 for r in rs),
        "calls_per_1000": (statistics.median(r["api_calls"] for r in rs) * 1000 / rs[0]["n"])
        if rs[0].get("api_calls") is not None else None,
        "throttled": max((r["throttled"] or 0) for r in rs) if rs[0].get("api_calls") is not None else None,
        "sample_of": rs[0].get("sample_of"),
        "n": rs[0]["n"],
    }
def full_wall(s):  # measured, or projected from a sample's per-object rate
    return s["wall"] * s["sample_of"] / s["n"] if s["sample_of"] else s["wall"]


for w in sorted({w for w, _ in summary}):
    tools = [t for (ww, t) in summary if ww == w]
    peer_walls = {t: summary[(w, t)]["wall"] for t in tools
                  if t in PEERS and summary[(w, t)]["ok"] and not summary[(w, t)]["sample_of"]}
    fastest = min(peer_walls, key=peer_walls.get) if peer_walls else None
    print(f"\n### Workload {w}\n")
    print("| tool | runs | wall s (median) | MiB/s | CPU s per GiB | peak RSS MiB | all stored | API calls per 1000 | 429s | speed vs fastest peer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in sorted(tools, key=lambda t: full_wall(summary[(w, t)])):
        s = summary[(w, t)]
        ratio = f"{peer_walls[fastest] / s['wall']:.2f}x ({fastest})" if fastest else "-"
        if s["sample_of"]:
            t = f"{t} (on {s['n']} of {s['sample_of']} URLs)"
            ratio = f"projected for all {s['sample_of']}: {full_wall(s):.0f} s"
            if fastest:
                ratio += f", {peer_walls[fastest] / full_wall(s):.2f}x ({fastest})"
        calls = f"{s['calls_per_1000']:.0f}" if s["calls_per_1000"] is not None else "-"
        thr = str(s["throttled"]) if s["throttled"] is not None else "-"
        print(f"| {t} | {s['runs']} | {s['wall']:.2f} | {s['mibs']:.1f} | {s['cpu_per_gib']:.1f} | {s['rss']:.1f} | {'yes' if s['ok'] else 'NO'} | {calls} | {thr} | {ratio} |")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ws = [w for w in sorted({w for w, _ in summary}) if len([t for (ww, t) in summary if ww == w]) > 1]
    if ws:
        tools = ["genesys-archiver", "archiver-tuned", "archiver-noindex", "archiver-dir", "rclone-copyurl", "aws-cli", "s5cmd", "boto3", "raw-put", "pipe-put"]
        fig, axes = plt.subplots(1, len(ws), figsize=(6 * len(ws), 4))
        if len(ws) == 1:
            axes = [axes]
        for ax, w in zip(axes, ws):
            ts = [t for t in tools if (w, t) in summary]
            labels = [f"{t} (sample)" if summary[(w, t)]["sample_of"] else t for t in ts]
            ax.bar(labels, [summary[(w, t)]["mibs"] for t in ts],
                   color=["#d62728" if t.startswith(("genesys-archiver", "archiver-")) else "#7f7f7f" if t in ("raw-put", "pipe-put") else "#1f77b4" for t in ts])
            ax.set_title(f"workload {w}: MiB/s (median)")
            ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        out = path.rsplit("/", 1)[0] + "/peers.svg"
        fig.savefig(out)
        print(f"\nchart: {out}")
except ImportError:
    print("matplotlib missing: no chart", file=sys.stderr)
