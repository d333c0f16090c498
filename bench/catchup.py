#!/usr/bin/env python3
# bench/catchup.py - two figures of issue 4 on a fresh local cluster:
#   1. a new node added to a cluster holding SIZE of one topic: seconds
#      from `tally member add` until it serves the whole topic (it installs
#      a snapshot, then backfills the history from a peer), next to the
#      seconds the same bytes took to write, measured in the same run;
#   2. a Raft snapshot of KEYS distinct keys: its size, the time it held
#      up the loop and the time it took on the thread pool (from the log).
# Not part of make check. Needs a release build (no --enable-sanitize).
#
#   /usr/bin/python3 bench/catchup.py BUILD_DIR [--size-mb 1024] [--keys 1000000]

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--skip-catchup", action="store_true", help="only the snapshot figure")
    a = ap.parse_args()
    os.environ["TALLY_BUILD_DIR"] = os.path.abspath(a.build)
    sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
    from harness import check, wait_until  # noqa: E402
    from test_membership import GrowingCluster, member_ids  # noqa: E402

    if not a.skip_catchup:
        catchup(a, GrowingCluster, member_ids, wait_until)
    snapshot_size(a, GrowingCluster, check)


def catchup(a, GrowingCluster, member_ids, wait_until):
    records = a.size_mb * 1024  # 1 KiB records
    with GrowingCluster(n=4, name="catchup") as c:
        for i in (1, 2, 3):
            c.spawn(i)
        c.wait_leader(ids=[1, 2, 3])
        c.tally_ok("topic", "create", "big", ids=[1, 2, 3])
        t0 = time.monotonic()
        r = c.tally_ok("bench", "produce", "big", "--count", str(records), "--size", "1024",
                       "--producers", "2", "--batch", "200", ids=[1, 2, 3], timeout=3600)
        write_s = time.monotonic() - t0
        print(f"wrote {a.size_mb} MiB in {write_s:.1f} s: {r.out.decode().strip().splitlines()[-1]}",
              flush=True)
        c.spawn(4)
        n4 = c.nodes[4]
        t0 = time.monotonic()
        c.tally_ok("member", "add", "4", f"{n4.client}/{n4.raft}", ids=[1, 2, 3], timeout=600)
        wait_until(lambda: member_ids(c.status(ids=[1, 2, 3])) == [1, 2, 3, 4], 600,
                   "4 members")

        def caught_up():
            r = c.tally("bench", "consume", "big", "--node", n4.client, "--count", str(records),
                        ids=[4], timeout=600)
            return r.rc == 0 and b"msgs/s=" in r.out
        wait_until(caught_up, 1800, "node 4 to serve the whole topic", interval=1.0)
        catch_s = time.monotonic() - t0
        with open(n4.log_path) as f:
            log = f.read()
        how = ("snapshot + backfill" if "installing snapshot" in log else "Raft log only")
        bf = re.findall(r"backfill: topic big: (\d+) offsets from node \d+ in ([0-9.]+) s", log)
        print(f"node 4 caught up {a.size_mb} MiB in {catch_s:.1f} s ({how}; backfill {bf}); "
              f"writing it took {write_s:.1f} s: ratio {catch_s / write_s:.2f}", flush=True)


def snapshot_size(a, GrowingCluster, check):
    with GrowingCluster(n=3, name="snapkeys",
                        extra_args=["--set", "snapshot_threshold=100"]) as c:
        c.start()
        c.tally_ok("topic", "create", "state", "--policy", "compact")
        # (the asynchronous mode: --batch does not apply --keys)
        r = c.tally_ok("bench", "produce", "state", "--count", str(a.keys), "--size", "100",
                       "--keys", str(a.keys), "--inflight", "5000", "--batch-bytes", "131072",
                       timeout=3600)
        print(f"wrote {a.keys} keys: {r.out.decode().strip().splitlines()[-1]}", flush=True)
        time.sleep(3)
        for i in c.nodes:
            with open(c.nodes[i].log_path) as f:
                snaps = re.findall(r"snapshot at index (\d+) \((\d+) bytes; ([0-9.]+) s on the "
                                   r"loop, ([0-9.]+) s on the thread pool", f.read())
            check(snaps, f"node {i} took no snapshot")
            idx, size, loop_s, pool_s = snaps[-1]
            print(f"node {i}: snapshot at index {idx}: {int(size) / 1e6:.1f} MB (about "
                  f"{int(size) // 32} keys at 32 bytes each), "
                  f"{float(loop_s) * 1000:.0f} ms on the loop, {float(pool_s):.2f} s on the "
                  f"thread pool", flush=True)


if __name__ == "__main__":
    main()
