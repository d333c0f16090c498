#!/usr/bin/env python3
"""Failover time: SIGKILL the leader -> the next acknowledged produce, as
bench/cluster.sh measures it (a `tally produce --timeout 2000` run again
until one succeeds), on free ports, for one or more builds in the same run.

Each round starts a fresh three-node cluster per build (alternating
builds), writes a record, waits a random 0-200 ms (so the kill lands
anywhere between heartbeats), kills the leader with SIGKILL and times
until a `tally produce` through all three nodes is acknowledged. Prints
each round and the median, min and max per build, and the ratio of the
medians with two builds.

  bench/failover.py [--rounds 7] [--set KEY=VALUE]... BUILD_DIR [BUILD_DIR...]

--set passes `--set KEY=VALUE` to every tallyd (e.g. to try other
election timeouts on one build); BUILD_DIR may be written
BUILD_DIR@KEY=VALUE,KEY=VALUE to give one build its own settings."""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


def one_round(build, sets):
    harness.TALLYD = os.path.join(build, "src", "tallyd")
    harness.TALLY = os.path.join(build, "src", "tally")
    extra = []
    for s in sets:
        extra += ["--set", s]
    with harness.Cluster(3, name="failover", extra_args=extra) as c:
        leader = c.start()
        c.tally_ok("topic", "create", "f")
        c.tally_ok("produce", "f", input=b"x\n")
        leader = c.wait_leader()
        time.sleep(random.uniform(0, 0.2))
        t0 = time.monotonic()
        c.kill(leader)
        for _ in range(100):
            p = subprocess.run([harness.TALLY, "-b", c.brokers(), "produce", "f", "--timeout",
                                "2000"], input=b"y\n", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
            if p.returncode == 0:
                return time.monotonic() - t0
        raise RuntimeError("no produce acknowledged after 100 tries")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    builds = []
    for b in a.builds:
        path, _, own = b.partition("@")
        builds.append((b, os.path.abspath(path), a.set + [s for s in own.split(",") if s]))
    res = {b[0]: [] for b in builds}
    for r in range(a.rounds):
        for name, path, sets in builds:
            secs = one_round(path, sets)
            res[name].append(secs)
            print(f"round {r + 1} {name}: failover_s={secs:.3f}", flush=True)
    meds = []
    for name, _, _ in builds:
        v = res[name]
        meds.append(statistics.median(v))
        print(f"{name}: median {statistics.median(v):.3f} s, min {min(v):.3f}, max {max(v):.3f}"
              f" ({len(v)} rounds)")
    if len(meds) == 2:
        print(f"ratio of medians (second/first): {meds[1] / meds[0]:.2f}")


if __name__ == "__main__":
    main()
