#!/usr/bin/env python3
"""Spurious elections under load: are the Raft timeouts safe on this box?

Starts two three-node clusters with the same settings: LOADED, which gets
batched produce (2 producers, 1000 x 100 B records per request, so
segment rolls and snapshots happen) and follower consumes in a loop, and
IDLE, which gets nothing but shares the CPU with LOADED. After SECONDS,
counts in each node's log the elections after the first one ("role
follower -> candidate") and the leader changes, and prints them with the
produce rate reached. Run it with other work on the machine too: the
point is a loaded two-core box.

  bench/election_churn.py [--seconds 180] [--set KEY=VALUE]... BUILD_DIR"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


def elections(c):
    cand = lead = 0
    for n in c.nodes.values():
        with open(n.log_path, errors="replace") as f:
            text = f.read()
        cand += len(re.findall(r"role (?:follower|candidate) -> candidate", text))
        lead += len(re.findall(r"-> leader", text))
    return cand, lead


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    b = os.path.abspath(a.build)
    harness.TALLYD = os.path.join(b, "src", "tallyd")
    harness.TALLY = os.path.join(b, "src", "tally")
    extra = []
    for s in a.set:
        extra += ["--set", s]
    with harness.Cluster(3, name="churn-idle", extra_args=extra) as idle, \
            harness.Cluster(3, name="churn-load", extra_args=extra) as load:
        idle.start()
        leader = load.start()
        load.tally_ok("topic", "create", "t")
        start_idle, start_load = elections(idle), elections(load)
        follower = next(i for i in load.nodes if i != leader)
        t_end = time.monotonic() + a.seconds
        records = rounds = 0
        while time.monotonic() < t_end:
            r = load.tally("bench", "produce", "t", "--count", 100000, "--size", 100,
                           "--batch", 1000, "--producers", 2, timeout=300)
            if r.rc == 0:
                records += 100000
            subprocess.run([harness.TALLY, "-b", load.nodes[follower].client, "consume", "t",
                            "-n", "200000", "--format", "%o\n"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300)
            rounds += 1
        secs = a.seconds
        ci, li = elections(idle)
        cl, ll = elections(load)
        print(f"settings {a.set or 'defaults'}: {secs} s, {rounds} produce+consume rounds, "
              f"{records} records ({records / secs:,.0f}/s)")
        print(f"  idle cluster:   {ci - start_idle[0]} candidate transitions, "
              f"{li - start_idle[1]} new leaders after the first election")
        print(f"  loaded cluster: {cl - start_load[0]} candidate transitions, "
              f"{ll - start_load[1]} new leaders after the first election")


if __name__ == "__main__":
    main()
