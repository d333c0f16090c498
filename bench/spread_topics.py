#!/usr/bin/env python3
"""Produce spread over many topics (issue 24) against the same load on one
topic, in the same run, on a fresh three-node cluster (free ports):
P producer threads each send one record per request (`tally bench
produce --batch 1`), round robin over the T topics spread-0 ..
spread-(T-1) (`--topics T`), or all to the topic `single`; the two
alternate for R rounds, so that the machine's load falls on both alike.

  bench/spread_topics.py [--topics 1000] [--producers 4] [--count 20000]
                         [--size 100] [--rounds 3] BUILD_DIR

Prints each run's msgs/s and p99, then the medians and the ratio
spread/single (the issue's goal: at least 0.8). The CLI runs as
installed, not through libtool's wrapper. Figures only: nothing here is
asserted."""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


def field(line, name):
    for tok in line.split():
        if tok.startswith(name + "="):
            return float(tok.split("=", 1)[1])
    raise ValueError(f"no {name} in {line!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    harness.use_build(os.path.abspath(a.build), direct=True)
    with harness.Cluster(3, name="spread-topics") as c:
        leader = c.start()
        brokers = c.nodes[leader].client
        t0 = time.monotonic()
        c.tally_ok("topic", "create", "single", brokers=brokers)
        for i in range(a.topics):
            c.tally_ok("topic", "create", f"spread-{i}", brokers=brokers)
        print(f"created {a.topics + 1} topics in {time.monotonic() - t0:.1f} s", flush=True)
        runs = {"single": [], "spread": []}
        p99 = {"single": [], "spread": []}
        common = ["--count", a.count, "--size", a.size, "--producers", a.producers,
                  "--batch", 1]
        for r in range(1, a.rounds + 1):
            for kind in ("single", "spread"):
                args = ["bench", "produce"] + (["single"] if kind == "single" else
                                               ["spread", "--topics", a.topics])
                out = c.tally_ok(*(args + common), brokers=brokers, timeout=600)
                line = out.text.strip().splitlines()[-1]
                runs[kind].append(field(line, "msgs/s"))
                p99[kind].append(field(line, "p99_ms"))
                print(f"round {r} {kind:6s}: {line}", flush=True)
        single = statistics.median(runs["single"])
        spread = statistics.median(runs["spread"])
        print(f"medians of {a.rounds} rounds: single {single:.0f} msgs/s "
              f"(p99 {statistics.median(p99['single']):.2f} ms), spread over {a.topics} "
              f"topics {spread:.0f} msgs/s (p99 {statistics.median(p99['spread']):.2f} ms), "
              f"ratio {spread / single:.2f}")
        c.check_up()


if __name__ == "__main__":
    main()
