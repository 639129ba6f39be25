#!/usr/bin/env python3
"""Reads the archiver's JSON log with genesys_media::client=trace and prints when its API
calls went out: totals by endpoint, the time of chosen calls, calls per 10 s, and the floor a
sliding window of BUDGET calls per 60 s puts under a run with these calls (call k cannot go
sooner than 60 s after call k - BUDGET)."""
import collections, datetime, json, sys

BUDGET = int(sys.argv[2]) if len(sys.argv) > 2 else 300
calls = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("fields", {}).get("message") == "API call":
        t = datetime.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
        calls.append((t, r["fields"]["endpoint"]))
if not calls:
    sys.exit("no 'API call' trace lines in the log")
t0, n = calls[0][0], len(calls)
at = lambda k: calls[k - 1][0] - t0  # seconds from the first call to call k (1-based)
print(f"{n} API calls; last at {at(n):.1f} s after the first")
for e, c in collections.Counter(e for _, e in calls).most_common():
    print(f"  {c:5d} {e}")
marks = sorted({k for k in (100, BUDGET - 1 if n > BUDGET else 0, BUDGET, BUDGET + 1, n - BUDGET, n) if 0 < k <= n})
print("  " + ", ".join(f"call {k} at {at(k):.1f} s" for k in marks))
per10 = collections.Counter(int((t - t0) // 10) for t, _ in calls)
print("calls per 10 s:", [per10[i] for i in range(max(per10) + 1)])
if n > BUDGET:
    floor = max(at(k - BUDGET) + 60 for k in range(BUDGET + 1, n + 1))
    print(f"floor for these calls at {BUDGET}/min: last call >= {floor:.1f} s "
          f"(60 s after call {n - BUDGET}); it went at {at(n):.1f} s")
