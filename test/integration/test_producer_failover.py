# test_producer_failover.py - libtally's pipelined producer (through
# `tally bench produce` with a large in-flight window) follows the leader
# across leadership transfers made while it runs, completes, and every
# record is in the topic exactly once, in the order it was sent.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_producer_failover.py
#
# Reported as: `tally bench produce ... --inflight 2000` stopped making
# progress after a leader change and failed 30 s later with "not
# acknowledged within 30000 ms" (test_compact_gaps.py failed whenever an
# election happened during its bench rounds).

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

COUNT = 300000
TRANSFERS = 5


def keys_in_topic(c, topic, want):
    """The keys of @topic, in offset order, read from the leader once it
    serves at least @want records."""
    last = [None]

    def pred():
        c.check_up()
        r = c.tally("consume", topic, "--format", "%o\\t%k\\n", timeout=120)
        last[0] = r
        if r.rc != 0:
            return None
        lines = [ln for ln in r.out.split(b"\n") if ln]
        return lines if len(lines) >= want else None
    try:
        lines = wait_until(pred, 60, f"{topic} to hold {want} records", interval=0.5)
    except TestFailure as e:
        raise TestFailure(f"{e}; last read: {last[0]!r}")
    out = []
    for ln in lines:
        off, _, key = ln.partition(b"\t")
        out.append((int(off), key.decode()))
    return out


def test_bench_follows_leader():
    """bench produce --inflight 2000 completes across leadership transfers,
    every record exactly once and in order"""
    with Cluster(3, name="pfail") as c:
        c.start()
        c.tally_ok("topic", "create", "pf")
        # Unique keys k0..k{COUNT-1}, in send order (one producer).
        cmd = [TALLY, "-b", c.brokers(), "bench", "produce", "pf", "--count", str(COUNT),
               "--size", "100", "--keys", str(COUNT), "--inflight", "2000",
               "--batch-bytes", "16384"]
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            transfers = 0
            deadline = time.monotonic() + 90
            # Leadership moves to each other node in turn while the bench
            # writes (bounded in count and time).
            while transfers < TRANSFERS and bench.poll() is None and time.monotonic() < deadline:
                time.sleep(0.3)
                old = c.wait_leader()
                target = [i for i in sorted(c.nodes) if i != old][transfers % 2]
                r = c.tally("member", "transfer", str(target), timeout=30)
                if r.rc != 0:
                    continue  # e.g. an election under way: try again
                wait_until(lambda: c.leader() not in (0, old), 30,
                           f"leadership to move from node {old}")
                transfers += 1
            try:
                out, err = bench.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                bench.kill()
                out, err = bench.communicate()
                raise TestFailure(f"bench did not finish: {err!r}")
        finally:
            if bench.poll() is None:
                bench.kill()
                bench.communicate()
        check(bench.returncode == 0,
              f"bench failed (rc {bench.returncode}) after {transfers} leadership transfers: "
              f"{err.decode(errors='replace').strip()}")
        print(f"# {transfers} leadership transfers during the bench", flush=True)
        check(transfers >= 1, "the bench ended before leadership could be moved; "
                              "raise COUNT")
        recs = keys_in_topic(c, "pf", COUNT)
        keys = [k for _, k in recs]
        want = [f"k{i}" for i in range(COUNT)]
        if keys != want:
            seen = {}
            for k in keys:
                seen[k] = seen.get(k, 0) + 1
            dups = [k for k, n in seen.items() if n > 1]
            missing = [k for k in want if k not in seen]
            first = next((i for i, (a, b) in enumerate(zip(keys, want)) if a != b),
                         min(len(keys), len(want)))
            raise TestFailure(f"{len(keys)} records, not {COUNT}: {len(dups)} duplicated "
                              f"(e.g. {dups[:5]}), {len(missing)} missing (e.g. {missing[:5]}), "
                              f"first out of order at position {first}")
        offs = [o for o, _ in recs]
        check(offs == list(range(offs[0], offs[0] + COUNT)), "offsets are not contiguous")


if __name__ == "__main__":
    run_tests([test_bench_follows_leader], per_test_timeout=300)
