# test_clock_skew.py - nodes whose clocks are wrong (libfaketime, Debian's
# faketime package, which deploy/setup.sh installs): retention is decided by
# the leader alone and applied by every node at the same point of the log,
# timestamps never go back across a leadership change, a clock that jumps
# forward on the leader does not carry records (or retention) into the
# future, and every node's clock offset shows in tally status.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_clock_skew.py [TEST...]

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
HOUR_MS = 3600 * 1000


def skewed(c, node_id, spec):
    """Run node @node_id's tallyd under libfaketime with its wall clock
    offset by @spec ("-1h", "+0"), changeable later with set_skew; the
    monotonic clock stays true."""
    if not os.path.exists(FAKETIME_LIB):
        raise TestFailure(f"{FAKETIME_LIB} is missing: install Debian's faketime package "
                          f"(deploy/setup.sh does)")
    path = os.path.join(c.tmp, f"node{node_id}.faketime")
    set_skew(path, spec)
    c.node_env[node_id] = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": path,
                           "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return path


def set_skew(path, spec):
    with open(path + ".tmp", "w") as f:
        f.write(spec + "\n")
    os.replace(path + ".tmp", path)


def records(c, topic, node_id, extra=()):
    """[(offset, timestamp, value)] of @topic as node @node_id serves it."""
    r = c.tally("consume", topic, "--node", c.nodes[node_id].client, "--format",
                "%o\\t%t\\t%v\\n", *extra)
    check(r.rc == 0, f"read {topic} from node {node_id}: {r!r}")
    out = []
    for ln in r.out.split(b"\n"):
        if ln:
            o, t, v = ln.split(b"\t", 2)
            out.append((int(o), int(t), v))
    return out


def member(c, node_id):
    st = c.status()
    for m in (st or {}).get("members", []):
        if m["id"] == node_id:
            return m
    return {}


def wait_offset(c, node_id, lo, hi, what):
    """Wait until node @node_id reports a clock offset in [lo, hi] ms."""
    last = [None]

    def pred():
        c.check_up()
        last[0] = member(c, node_id)
        off = last[0].get("clock_offset_ms")
        return off is not None and lo <= off <= hi
    try:
        wait_until(pred, 30, what, interval=0.5)
    except TestFailure as e:
        raise TestFailure(f"{e}; last status of node {node_id}: {last[0]}")


def transfer(c, node_id):
    if c.wait_leader() != node_id:
        c.tally_ok("member", "transfer", str(node_id))
        wait_until(lambda: c.leader() == node_id, 30, f"node {node_id} to lead")


def wait_records(c, topic, node_id, n):
    """Node @node_id's records of @topic once it serves at least @n."""
    got = []

    def pred():
        c.check_up()
        got[:] = records(c, topic, node_id)
        return len(got) >= n
    try:
        wait_until(pred, 30, f"node {node_id} to serve {n} records of {topic}", interval=0.3)
    except TestFailure:
        pass  # the caller's check says what it got
    return got


def start_right_first(c, skewed_id):
    """Start the nodes with right clocks first, so that the cluster's time
    comes from a right clock (the first leader's), then the skewed one."""
    right = [i for i in c.nodes if i != skewed_id]
    for i in right:
        c.spawn(i)
    c.wait_leader(ids=right)
    c.spawn(skewed_id)


def payload(n):
    """@n bytes that lz4 cannot shrink (so segment sizes are what they seem)."""
    return os.urandom(n // 2).hex().encode()


def produce(c, topic, values):
    for v in values:
        c.tally_ok("produce", topic, input=v + b"\n")


def test_slow_leader_retention():
    """The issue's scenario: node 3's clock is an hour slow and it leads; a
    topic keeps 30 minutes, in one-record segments. Nodes 1 and 2 used to
    delete four of the five records seconds after they were acknowledged
    (judging node 3's timestamps by their own clocks). Now no node deletes
    any, and a topic over its size limit is cut at the same start offset on
    every node at the same applied index."""
    with Cluster(name="clock-ret", extra_args=["--set", "retention_interval_ms=1000"]) as c:
        skewed(c, 3, "-1h")
        start_right_first(c, 3)
        wait_offset(c, 3, -HOUR_MS - 60000, -HOUR_MS + 60000, "node 3 to see its clock is slow")
        transfer(c, 3)
        c.tally_ok("topic", "create", "ret3", "--policy", "delete", "--retention-ms", "1800000",
                   "--segment-bytes", "4096")
        c.tally_ok("topic", "create", "size3", "--policy", "delete", "--retention-bytes", "10000",
                   "--segment-bytes", "4096")
        produce(c, "ret3", [b"r%d-" % i + payload(3000) for i in range(5)])
        produce(c, "size3", [b"s%d-" % i + payload(3000) for i in range(10)])
        # Retention runs every second: give it several rounds to go wrong.
        time.sleep(5)
        for n in (1, 2, 3):
            recs = wait_records(c, "ret3", n, 5)
            check([o for o, _, _ in recs] == [0, 1, 2, 3, 4],
                  f"node {n} serves ret3 offsets {[o for o, _, _ in recs]}, want 0..4")
            segs = [f for f in os.listdir(os.path.join(c.nodes[n].data, "topics", "ret3"))
                    if f.endswith(".seg")]
            check(len(segs) == 5, f"node {n} holds {len(segs)} segments of ret3, want 5")

        # size3: the same cut everywhere, at the same applied index.
        def same_cut():
            c.check_up()
            st1 = c.status()
            firsts = [records(c, "size3", n)[0][0] for n in (1, 2, 3)]
            st2 = c.status()
            idx = {m["applied_index"] for st in (st1, st2) for m in st["members"]}
            return len(idx) == 1 and len(set(firsts)) == 1 and firsts[0] > 0 and firsts
        firsts = wait_until(same_cut, 30, "every node to cut size3 at the same offset", interval=0.5)
        print(f"# size3 starts at {firsts[0]} on every node", flush=True)
        st = c.status()
        starts = {t["name"]: t["start_offset"] for t in st["topics"]}
        check(starts["size3"] == firsts[0] and starts["ret3"] == 0, f"status topics: {st}")
        # status shows node 3's slow clock, with a warning, and nodes 1 and 2
        # within clock_warn_ms of the cluster's time
        wait_offset(c, 3, -HOUR_MS - 60000, -HOUR_MS + 60000, "node 3 to report its slow clock")
        check(member(c, 3)["clock_warning"] is True, f"no clock warning: {member(c, 3)}")
        r = c.tally_ok("status")
        check(re.search(rb"\n3 .* -3[56]\d{5} ms !\n", r.out), f"status table: {r.out!r}")
        for n in (1, 2):
            m = member(c, n)
            check(m["clock_warning"] is False, f"node {n}: {m}")


def test_from_time_across_leadership_change():
    """Node 1 (right clock) leads and writes; leadership moves to node 2,
    whose clock is an hour slow, which writes more. Timestamps do not go
    back, and --from-time with a moment between the two writes returns
    exactly the second ones (they used to be stamped an hour earlier, so
    it returned nothing)."""
    with Cluster(name="clock-ft") as c:
        skewed(c, 2, "-1h")
        start_right_first(c, 2)
        transfer(c, 1)
        c.tally_ok("topic", "create", "ev")
        produce(c, "ev", [b"a%d" % i for i in range(3)])
        wait_offset(c, 2, -HOUR_MS - 60000, -HOUR_MS + 60000, "node 2 to see its clock is slow")
        time.sleep(0.2)
        mid = int(time.time() * 1000)
        time.sleep(0.2)
        transfer(c, 2)
        produce(c, "ev", [b"b%d" % i for i in range(3)])
        recs = wait_records(c, "ev", 3, 6)
        ts = [t for _, t, _ in recs]
        check(ts == sorted(ts), f"timestamps go back: {recs}")
        got = [v for _, _, v in records(c, "ev", 1, ["--from-time", str(mid)])]
        check(got == [b"b0", b"b1", b"b2"], f"--from-time {mid} read {got}; records: {recs}")
        # the new leader's time is the cluster's: its b records are not an
        # hour behind the wall clock of this machine
        check(all(abs(t - mid) < 10 * 60000 for _, t, v in recs if v.startswith(b"b")),
              f"records stamped far from now ({mid}): {recs}")
        # node 2 reports how far its clock is off the cluster's
        wait_offset(c, 2, -HOUR_MS - 60000, -HOUR_MS + 60000, "node 2 to report its correction")


def test_leader_clock_jumps_forward_and_back():
    """The leader's clock jumps an hour ahead, then back. Records written
    meanwhile are stamped at most max_clock_step_ms ahead of the time it
    kept (logged), not an hour; later ones do not go back; and retention
    (30 minutes) deletes nothing on any node."""
    with Cluster(name="clock-jump", extra_args=["--set", "retention_interval_ms=500",
                                                "--set", "max_clock_step_ms=5000"]) as c:
        path = skewed(c, 1, "+0")
        c.start()
        transfer(c, 1)
        c.tally_ok("topic", "create", "j", "--policy", "delete", "--retention-ms", "1800000",
                   "--segment-bytes", "4096")
        produce(c, "j", [b"before-" + payload(3000)])
        set_skew(path, "+1h")
        produce(c, "j", [b"ahead%d-" % i + payload(3000) for i in range(3)])
        time.sleep(2)  # several retention rounds with the clock ahead
        set_skew(path, "+0")
        produce(c, "j", [b"after-" + payload(3000)])
        recs = wait_records(c, "j", 1, 5)
        ts = [t for _, t, _ in recs]
        check([v[:6] for _, _, v in recs] == [b"before", b"ahead0", b"ahead1", b"ahead2", b"after-"],
              f"records: {[v[:8] for _, _, v in recs]}")
        check(ts == sorted(ts), f"timestamps go back: {ts}")
        check(ts[-1] - ts[0] < 10 * 60000, f"a record carried the clock jump: {ts}")
        for n in (1, 2, 3):
            got = [o for o, _, _ in wait_records(c, "j", n, 5)]
            check(got == [0, 1, 2, 3, 4], f"node {n} serves offsets {got}, want 0..4")
        with open(c.nodes[1].log_path, "rb") as f:
            check(b"max_clock_step_ms" in f.read(), "node 1 did not log the refused clock jump")


def test_jumped_leader_hands_over():
    """The leader's clock jumps an hour ahead and leadership then moves to
    a node with a right clock. The new leader takes over the cluster's time
    as the old one kept it (at most max_clock_step_ms ahead), not the old
    leader's wall clock: its records are not stamped an hour ahead and
    retention (30 minutes) deletes nothing. (The fault suite saw a new
    leader go on an hour ahead and delete acknowledged records.)"""
    with Cluster(name="clock-hand", extra_args=["--set", "retention_interval_ms=500",
                                                "--set", "max_clock_step_ms=5000"]) as c:
        path = skewed(c, 1, "+0")
        c.start()
        transfer(c, 1)
        c.tally_ok("topic", "create", "h", "--policy", "delete", "--retention-ms", "1800000",
                   "--segment-bytes", "4096")
        produce(c, "h", [b"before-" + payload(3000)])
        set_skew(path, "+1h")
        produce(c, "h", [b"ahead-" + payload(3000)])
        # Two clock measurements of the others against the jumped leader.
        time.sleep(5)
        transfer(c, 2)
        produce(c, "h", [b"new%d-" % i + payload(3000) for i in range(2)])
        time.sleep(2)  # retention rounds of the new leader
        set_skew(path, "+0")
        for n in (1, 2, 3):
            recs = wait_records(c, "h", n, 4)
            check([o for o, _, _ in recs] == [0, 1, 2, 3],
                  f"node {n} serves offsets {[o for o, _, _ in recs]}, want 0..3")
        ts = [t for _, t, _ in records(c, "h", 2)]
        check(ts == sorted(ts), f"timestamps go back: {ts}")
        check(ts[-1] - ts[0] < 10 * 60000, f"the new leader stamped the old one's jump: {ts}")


def test_follower_set_right_then_leads():
    """A follower's clock is an hour behind long enough to be measured, is
    set right, and the follower becomes leader at once (within the time its
    last measurement counts). It must go on with the cluster's time, not
    an hour ahead of it: its last measurement was taken with its clock an
    hour behind. (The fault suite saw such a leader delete a 30-minute
    topic's acknowledged records.) Failed on the old code: the records
    were stamped an hour ahead and retention deleted offsets 0-1."""
    with Cluster(name="clock-setright", extra_args=["--set", "retention_interval_ms=500"]) as c:
        path = skewed(c, 2, "+0")
        c.start()
        transfer(c, 1)
        c.tally_ok("topic", "create", "s", "--policy", "delete", "--retention-ms", "1800000",
                   "--segment-bytes", "4096")
        produce(c, "s", [b"before-%d-" % i + payload(3000) for i in range(2)])
        set_skew(path, "-1h")
        time.sleep(2.5)  # node 2 measures its clock against the leader's
        set_skew(path, "+0")
        transfer(c, 2)  # right away: its last measurement still counts
        produce(c, "s", [b"after-%d-" % i + payload(3000) for i in range(2)])
        time.sleep(2)  # retention rounds of the new leader
        for n in (1, 2, 3):
            recs = wait_records(c, "s", n, 4)
            check([o for o, _, _ in recs] == [0, 1, 2, 3],
                  f"node {n} serves offsets {[o for o, _, _ in recs]}, want 0..3")
        ts = [t for _, t, _ in records(c, "s", 2)]
        check(ts[-1] - ts[0] < 10 * 60000, f"the new leader stamped an hour ahead: {ts}")


if __name__ == "__main__":
    run_tests([test_slow_leader_retention, test_from_time_across_leadership_change,
               test_leader_clock_jumps_forward_and_back, test_jumped_leader_hands_over,
               test_follower_set_right_then_leads])
