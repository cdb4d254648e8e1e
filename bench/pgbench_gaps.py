#!/usr/bin/env python3
"""From pgbench's per-transaction logs (-l): the largest gap between two
consecutive commits (any client), and latency percentiles.

usage: pgbench_gaps.py LOG... -> "gap_ms p50_ms p99_ms max_ms transactions failed"
on stdout, and the gap's start (Unix ms) on stderr
"""
import sys

ends, lat, failed = [], [], 0
for path in sys.argv[1:]:
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
gap, at = max(((b - a, a) for a, b in zip(ends, ends[1:])), default=(0, 0))
gap *= 1000
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{gap:.0f} {pct(0.5):.0f} {pct(0.99):.0f} {lat[-1]:.0f} {len(lat)} {failed}")
# Where the gap began (Unix ms), for lining up with the migration's pause.
print(f"{at * 1000:.0f}", file=sys.stderr)
