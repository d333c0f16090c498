#!/usr/bin/env python3
"""Where a node spends its CPU: `perf record` on the leader during
single-record produce and batched produce, and on a follower during a
consume, on a fresh three-node cluster (free ports). Writes one perf
report per workload (top symbols, children excluded) under OUT_DIR and
prints the top lines.

  bench/profile_server.py [--out DIR] BUILD_DIR

Needs perf (Debian: linux-perf) and a build with symbols (the default
-O2 -g build is fine)."""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


def record(pid, out, fn):
    """perf record -g on @pid while fn() runs; returns the report text."""
    data = out + ".data"
    p = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        fn()
    finally:
        p.send_signal(2)
        p.wait(timeout=60)
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                          "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.7"],
                         capture_output=True, text=True).stdout
    with open(out + ".txt", "w") as f:
        f.write(rep)
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--out", default="/tmp/tally-profile")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    b = os.path.abspath(a.build)
    harness.TALLYD = os.path.join(b, "src", "tallyd")
    harness.TALLY = os.path.join(b, "src", "tally")
    with harness.Cluster(3, name="profile") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "p")
        lpid = c.nodes[leader].proc.pid
        follower = next(i for i in c.nodes if i != leader)
        fpid = c.nodes[follower].proc.pid
        results = {}

        def single():
            r = c.tally_ok("bench", "produce", "p", "--count", 20000, "--size", 100,
                           "--batch", 1, brokers=c.nodes[leader].client, timeout=300)
            results["single"] = r.text.strip().splitlines()[-1]

        def batched():
            r = c.tally_ok("bench", "produce", "p", "--count", 1000000, "--size", 100,
                           "--batch", 1000, "--producers", 2, brokers=c.nodes[leader].client,
                           timeout=300)
            results["batched"] = r.text.strip().splitlines()[-1]

        def consume():
            import fetch_bench  # noqa: E402 (same directory)
            t0 = time.monotonic()
            n = 0
            for _ in range(5):
                recs, nbytes, secs = fetch_bench.read_all(c.nodes[follower].client, "p", 1020000,
                                                          4 << 20)
                n += recs
            results["consume"] = f"{n / (time.monotonic() - t0):,.0f} records/s (5 reads)"

        sys.path.insert(0, HERE)
        for name, pid, fn in (("single", lpid, single), ("batched", lpid, batched),
                              ("consume", fpid, consume)):
            rep = record(pid, os.path.join(a.out, name), fn)
            print(f"==== {name} ({'leader' if pid == lpid else 'follower'}): {results.get(name)}")
            lines = [l for l in rep.splitlines() if l.strip() and not l.startswith("#")]
            print("\n".join(lines[:25]))


if __name__ == "__main__":
    main()
