#!/usr/bin/env python3
"""fsync_baseline.py DIR [COUNT] - the disk's own write+fdatasync latency.

Appends 4 KiB blocks to a new file in DIR, each followed by fdatasync, the
way a log commits; prints 'fdatasync_4k: n=... p50_ms=... p99_ms=... per_s=...'.
Measured in the same run as a benchmark, it is the baseline that tally's
latency is compared with (the machine drifts by up to 1.8x between runs).
"""
import os
import sys
import time

d = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
path = os.path.join(d, "fsync-baseline.dat")
block = os.urandom(4096)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
lat = []
try:
    for _ in range(count):
        t0 = time.perf_counter()
        os.write(fd, block)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t0)
finally:
    os.close(fd)
    os.unlink(path)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
print("fdatasync_4k: n=%d p50_ms=%.3f p99_ms=%.3f per_s=%.0f"
      % (count, p(0.5), p(0.99), count / sum(lat)))
