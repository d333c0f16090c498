#!/usr/bin/env python3
"""Consume throughput of a shared consumer group (issue 29, docs/groups.md)
of 1, 2 and 4 members on one topic, against one plain consumer (tally_fetch
from the start, no group) in the same run, on a fresh three-node cluster
(free ports). Every consumer is its own process on libtally (ctypes) and
does a fixed amount of work per record (--work-us, slept: an I/O-bound
handler such as a database write), so that sharing the work is what can
help; on this 2-core machine a CPU-bound handler could not go past 2x.

Each round: the consumers start on a fresh group (all members joined and
holding shares before anything is written), then COUNT keyed records
(KEYS keys, SIZE bytes) are produced, and the time from the produce to the
last record processed is measured. Rounds alternate the kinds so that the
machine's load falls on all alike.

  bench/shared_groups.py [--count 20000] [--keys 1000] [--size 100]
                         [--work-us 200] [--rounds 3] BUILD_DIR

Prints each run's records/s, then the medians and the ratios against the
plain consumer. Figures only: nothing here is asserted."""
import argparse
import ctypes as C
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


class Record(C.Structure):
    _fields_ = [("offset", C.c_uint64), ("timestamp_ms", C.c_int64), ("key", C.c_void_p),
                ("key_len", C.c_size_t), ("value", C.c_void_p), ("value_len", C.c_size_t)]


class Result(C.Structure):
    _fields_ = [("records", C.POINTER(Record)), ("n", C.c_size_t), ("next_offset", C.c_uint64),
                ("high_offset", C.c_uint64), ("start_offset", C.c_uint64),
                ("applied_index", C.c_uint64), ("impl", C.c_void_p)]


class Opts(C.Structure):
    _fields_ = [("shares", C.c_uint), ("session_ms", C.c_uint32), ("commit_ms", C.c_uint32),
                ("filter", C.c_char_p), ("max_bytes", C.c_uint32)]


class FetchOpts(C.Structure):
    _fields_ = [("max_bytes", C.c_uint32), ("max_wait_ms", C.c_uint32),
                ("min_index", C.c_uint64), ("node", C.c_char_p)]


def consumer(lib_path, brokers, topic, group, count, work_us, out_path):
    """One consumer process: a member of @group (or a plain reader when
    @group is "-"); writes "ready" when it holds shares (or at once), then
    "done <seconds>" once the records it processed, with the others', reach
    @count (it counts its own; the parent sums)."""
    lib = C.CDLL(lib_path)
    lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.tally_group_join.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.POINTER(Opts),
                                     C.POINTER(C.c_void_p)]
    lib.tally_group_poll.argtypes = [C.c_void_p, C.c_uint32, C.POINTER(Result)]
    lib.tally_group_member_shares.argtypes = [C.c_void_p, C.c_void_p, C.c_uint,
                                              C.POINTER(C.c_uint32)]
    lib.tally_group_member_shares.restype = C.c_uint
    lib.tally_group_member_commit.argtypes = [C.c_void_p, C.c_uint64]
    lib.tally_group_leave.argtypes = [C.c_void_p]
    lib.tally_fetch.argtypes = [C.c_void_p, C.c_char_p, C.c_uint64, C.POINTER(FetchOpts),
                                C.POINTER(Result)]
    lib.tally_fetch_result_free.argtypes = [C.POINTER(Result)]
    cl = C.c_void_p()
    assert lib.tally_client_create(brokers.encode(), C.byref(cl)) == 0
    out = open(out_path, "w", buffering=1)
    m = None
    if group != "-":
        o = Opts(16, 10000, 1000, None, 1 << 20)
        mp = C.c_void_p()
        assert lib.tally_group_join(cl, group.encode(), topic.encode(), C.byref(o),
                                    C.byref(mp)) == 0
        m = mp
    stop_path = out_path + ".stop"
    offset, done, sent_ready = 0, 0, False
    while not os.path.exists(stop_path):
        res = Result()
        if m is not None:
            rc = lib.tally_group_poll(m, 200, C.byref(res))
            ready = lib.tally_group_member_shares(m, None, 0, None) > 0
        else:
            fo = FetchOpts(1 << 20, 200, 0, None)
            rc = lib.tally_fetch(cl, topic.encode(), offset, C.byref(fo), C.byref(res))
            ready = True
        if ready and not sent_ready:
            out.write("ready\n")
            sent_ready = True
        if rc != 0:
            time.sleep(0.05)
            continue
        n = res.n
        if m is None:
            offset = res.next_offset
        lib.tally_fetch_result_free(C.byref(res))
        if n > 0:
            time.sleep(n * work_us / 1e6)  # the handler's work, record by record
            done += n
            out.write(f"done {done} {time.time():.6f}\n")
    if m is not None:
        lib.tally_group_member_commit(m, 2**64 - 1)
        lib.tally_group_leave(m)


def last_done(path):
    """(records, wall time) of a consumer's last progress line."""
    n, t = 0, 0.0
    with open(path) as f:
        for line in f:
            if line.startswith("done "):
                _, a, b = line.split()
                n, t = int(a), float(b)
    return n, t


def run(c, lib, brokers, topic, group, members, a, tmp, rnd):
    outs = [os.path.join(tmp, f"{topic}-{group}-{rnd}-{i}.out") for i in range(members)]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--consumer", lib,
                               brokers, topic, group, str(a.count), str(a.work_us), p])
             for p in outs]
    try:
        def all_ready():
            for p in outs:
                if not os.path.exists(p) or "ready" not in open(p).read():
                    return False
            return True
        harness.wait_until(all_ready, 60, f"{members} consumers of {group} to be ready", 0.1)
        if group != "-":  # stable: every member holds shares
            time.sleep(1.0)
        lines = "".join(f"k{i % a.keys}\t{'x' * a.size}\n" for i in range(a.count))
        t0 = time.time()
        c.tally_ok("produce", topic, "--keyed", input=lines.encode(), brokers=brokers,
                   timeout=300)

        def finished():
            return sum(last_done(p)[0] for p in outs) >= a.count
        harness.wait_until(finished, 600, f"{a.count} records to be processed", 0.1)
        t1 = max(last_done(p)[1] for p in outs)
        shares = [last_done(p)[0] for p in outs]
        return a.count / (t1 - t0), shares
    finally:
        for p in outs:
            open(p + ".stop", "w").close()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    if len(sys.argv) == 9 and sys.argv[1] == "--consumer":
        consumer(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]),
                 float(sys.argv[7]), sys.argv[8])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--work-us", type=float, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    harness.use_build(build, direct=True)
    lib = os.path.join(build, ".libs", "libtally.so")
    kinds = [("plain", "-", 1), ("group-1", "g", 1), ("group-2", "g", 2), ("group-4", "g", 4)]
    rates = {k: [] for k, _, _ in kinds}
    with harness.Cluster(3, name="shared-bench") as c:
        leader = c.start()
        brokers = c.brokers()
        tmp = c.tmp
        for rnd in range(1, a.rounds + 1):
            for kind, group, members in kinds:
                topic = f"{kind}-{rnd}"  # a fresh topic: every run reads from 0
                c.tally_ok("topic", "create", topic, brokers=c.nodes[leader].client)
                rate, split = run(c, lib, brokers, topic, "-" if group == "-" else topic,
                                  members, a, tmp, rnd)
                rates[kind].append(rate)
                print(f"round {rnd} {kind}: {rate:,.0f} records/s (records per consumer "
                      f"{split})", flush=True)
    base = statistics.median(rates["plain"])
    print(f"\n{a.count} records of {a.size} B over {a.keys} keys, {a.work_us:g} us of work "
          f"per record, medians of {a.rounds} rounds:")
    summary = {}
    for kind, _, _ in kinds:
        med = statistics.median(rates[kind])
        summary[kind] = med
        print(f"  {kind:8s} {med:10,.0f} records/s  {med / base:5.2f}x of one plain consumer")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
