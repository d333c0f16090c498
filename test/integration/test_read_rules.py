# test_read_rules.py - issue 28, items 4 and 5: a linearizable read
# (`tally consume --linearizable`) and the warning on a read from a node
# that knows no leader; one rule for the minimum segment size.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_read_rules.py [NAME...]

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD_DIR, TALLYD, Cluster, check, parse_records,  # noqa: E402
                     reexec_for_libtally, run_tests, wait_until)
import ctypes  # noqa: E402
import fake_server  # noqa: E402  (its ctypes binding of libtally)


def libtally_fetch(lib, brokers, topic, linearizable, node=None):
    """(rv, record count, possibly_stale) of one tally_fetch through libtally."""
    cl = fake_server.Client(lib, brokers, timeout_ms=3000)
    try:
        lib.tally_set_linearizable.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.tally_fetch_possibly_stale.argtypes = [ctypes.c_void_p]
        lib.tally_set_linearizable(cl.h, 1 if linearizable else 0)
        opts = fake_server.FetchOptions()
        lib.tally_fetch_options_init(ctypes.byref(opts))
        if node:
            opts.node = node.encode()
        res = fake_server.FetchResult()
        rv = lib.tally_fetch(cl.h, topic.encode(), 0, ctypes.byref(opts), ctypes.byref(res))
        if rv != 0:
            return rv, 0, 0
        stale = lib.tally_fetch_possibly_stale(ctypes.byref(res))
        n = res.n
        lib.tally_fetch_result_free(ctypes.byref(res))
        return rv, n, stale
    finally:
        cl.close()


def knows_no_leader(c, i):
    st = c.status(ids=[i])
    return st is not None and st.get("leader_id") == 0


def test_linearizable_read_in_a_partition():
    """A node cut off from the majority: a plain read warns that it may be
    stale; a linearizable read fails instead of returning stale data."""
    with Cluster(name="read-part") as c:
        leader = c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        c.tally_ok("produce", "t", input=b"a\nb\nc\n")
        alone = next(i for i in (1, 2, 3) if i != leader)
        for i in (1, 2, 3):
            c.read_node("t", i, 3)
        others = [i for i in (1, 2, 3) if i != alone]
        for i in others:
            c.pause(i)
        try:
            wait_until(lambda: knows_no_leader(c, alone), 30,
                       f"node {alone} to know no leader")
            r = c.tally("--timeout", "3000", "consume", "t", "--format", "%o\\t%v\\n",
                        ids=[alone])
            check(r.rc == 0 and len(parse_records(r.out)) == 3, f"a plain read answers: {r!r}")
            check(b"may miss acknowledged writes" in r.err,
                  f"a plain read from a node without a leader warns: {r!r}")
            r = c.tally("--timeout", "3000", "consume", "t", "--linearizable", ids=[alone],
                        timeout=60)
            check(r.rc != 0 and r.out == b"",
                  f"a linearizable read without a majority fails, prints nothing: {r!r}")
            # The same through libtally: the flag, and the option.
            lib = fake_server.load_lib(os.path.join(BUILD_DIR, ".libs", "libtally.so"))
            rv, n, stale = libtally_fetch(lib, c.nodes[alone].client, "t", False)
            check(rv == 0 and n == 3 and stale == 1, f"libtally: stale flag set: {rv} {n} {stale}")
            rv, n, stale = libtally_fetch(lib, c.nodes[alone].client, "t", True)
            check(rv != 0, f"libtally: a linearizable fetch without a majority fails: {rv}")
        finally:
            for i in others:
                c.resume(i)
        c.wait_leader(timeout=60)


def test_linearizable_read_sees_a_write_through_another_node():
    """A write acknowledged through the leader is in a linearizable read
    served by a follower right after."""
    with Cluster(name="read-lin") as c:
        leader = c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        follower = next(i for i in (1, 2, 3) if i != leader)
        for k in range(20):
            c.tally_ok("produce", "t", f"w{k}", ids=[leader])
            r = c.tally_ok("consume", "t", "--linearizable", "--node", c.nodes[follower].client,
                           "--format", "%o\\t%v\\n")
            recs = parse_records(r.out)
            check(len(recs) == k + 1 and recs[-1][1] == f"w{k}".encode(),
                  f"read {k}: the write just acknowledged is there: {recs[-2:]}")
            check(b"warning" not in r.err, f"no stale warning: {r!r}")
        lib = fake_server.load_lib(os.path.join(BUILD_DIR, ".libs", "libtally.so"))
        c.tally_ok("produce", "t", "last", ids=[leader])
        rv, n, stale = libtally_fetch(lib, c.brokers(), "t", True, node=c.nodes[follower].client)
        check(rv == 0 and n == 21 and stale == 0,
              f"libtally: a linearizable fetch on a follower sees the last write: {rv} {n}")


def test_segment_size_rule():
    """The node setting and the topic option take the same segment sizes."""
    with Cluster(n=1, name="read-seg") as c:
        c.start(timeout=60)
        r = c.tally("topic", "create", "small", "--segment-bytes", "2048")
        check(r.rc == 1 and b"4096" in r.err and b"segment_bytes" in r.err,
              f"2048 is refused, naming the rule: {r!r}")
        c.tally_ok("topic", "create", "ok", "--segment-bytes", "4096")
        r = c.tally("topic", "create", "big", "--segment-bytes", str(2 << 30))
        check(r.rc == 1, f"2 GiB is refused: {r!r}")
        data = os.path.join(c.tmp, "other")
    p = subprocess.run([TALLYD, "--id", "1", "--data", data, "--set",
                        "segment_bytes=2048", "--listen", "127.0.0.1:1", "--raft",
                        "127.0.0.1:2", "--peer", "1=127.0.0.1:1/127.0.0.1:2"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode == 2 and b"segment_bytes" in p.stderr,
          f"the node setting refuses 2048 too: {p.returncode} {p.stderr[-300:]!r}")
    check(not os.path.exists(data), "a refused start made no data directory")


if __name__ == "__main__":
    reexec_for_libtally()
    run_tests([test_linearizable_read_in_a_partition,
               test_linearizable_read_sees_a_write_through_another_node, test_segment_size_rule])
