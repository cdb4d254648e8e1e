#!/usr/bin/env python3
"""From pgbench's per-transaction logs (-l): the commit gap across a
migration's pause (from the last commit before it to the first after it),
the largest gap between two consecutive commits anywhere in the run, and
latency percentiles.

usage: pgbench_gaps.py PAUSE_UNIX_MS LOG...
  -> "pause_gap_ms worst_gap_ms p50_ms p99_ms max_ms transactions failed"
"""
import bisect
import sys

pause = int(sys.argv[1]) / 1000
ends, lat, failed = [], [], 0
for path in sys.argv[2:]:
    with open(path) as f:
        for line in f:
            p = line.split()
            # client_id transaction_no time script_no time_epoch time_us
            if len(p) < 6:
                continue
            if p[2] in ("failed", "skipped"):
                failed += 1
                continue
            lat.append(int(p[2]) / 1000)
            ends.append(int(p[4]) + int(p[5]) / 1e6)
if not ends:
    raise SystemExit("no transactions in the logs")
ends.sort()
lat.sort()
i = bisect.bisect_left(ends, pause)
if 0 < i < len(ends):
    pause_gap = (ends[i] - ends[i - 1]) * 1000
else:
    pause_gap = float("nan")  # the pause was outside the run
worst = max((b - a for a, b in zip(ends, ends[1:])), default=0) * 1000
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{pause_gap:.0f} {worst:.0f} {pct(0.5):.0f} {pct(0.99):.0f} {lat[-1]:.0f} {len(lat)} {failed}")
