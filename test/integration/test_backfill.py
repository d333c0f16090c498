# test_backfill.py - a node that installs a snapshot from the leader gets
# the history before it back from a peer (backfill):
#   - a follower stopped while the leader's Raft log moves past it;
#   - a fourth node added to a loaded cluster, then another node removed.
# Raft snapshots are taken every 16 entries and keep 16 behind, so a short
# absence is enough to need a snapshot install.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_backfill.py [TEST...]

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402
from test_membership import GrowingCluster, member_ids  # noqa: E402

SETTINGS = ["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=16",
            "--set", "compaction_interval_ms=200"]
FMT = "%o\\t%t\\t%k\\t%v\\n"


def dump(c, topic, node_id, ids=None):
    """Every record of @topic as node @node_id serves it: offset,
    timestamp, key, value."""
    r = c.tally("consume", topic, "--node", c.nodes[node_id].client, "--format", FMT, ids=ids)
    check(r.rc == 0, f"read {topic} from node {node_id}: {r!r}")
    return r.out


def write(c, topic, rounds, tag, ids=None, keyed=False):
    for i in range(rounds):
        if keyed:
            lines = "".join(f"k{j % 40}\t{tag}-{i}-{j}\n" for j in range(50))
            c.tally_ok("produce", topic, "--keyed", input=lines.encode(), ids=ids)
        else:
            lines = "".join(f"{tag}-{i}-{j}-" + "x" * 80 + "\n" for j in range(50))
            c.tally_ok("produce", topic, input=lines.encode(), ids=ids)


def log_text(c, node_id):
    with open(c.nodes[node_id].log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def keyed_state(out):
    """key -> (value, timestamp) of the latest record of each key."""
    state = {}
    for line in out.split(b"\n"):
        if line:
            _, ts, key, val = line.split(b"\t", 3)
            state[key] = (val, ts)
    return state


def same_as_leader(c, topics, node_id, ids=None, compacted=()):
    """Node @node_id serves exactly what the leader serves (retried: the
    node may still be catching up or backfilling). For the @compacted
    topics only the latest record of each key must agree: each node
    compacts on its own schedule, so which older records are still there
    differs."""
    def pred():
        c.check_up()
        leader = c.leader(ids=ids)
        if leader is None:
            return False
        for t in list(topics) + list(compacted):
            want, got = dump(c, t, leader, ids), dump(c, t, node_id, ids)
            if t in compacted:
                want, got = keyed_state(want), keyed_state(got)
            if want != got:
                raise TestFailure(f"{t}: node {node_id} serves {len(got)} records/keys, "
                                  f"the leader {len(want)}")
        return True
    wait_until(pred, 90, f"node {node_id} to serve the leader's records", interval=0.5)


def test_follower_backfills_after_snapshot_install():
    """Node 3 is killed; 150 entries later the leader's log no longer
    reaches back to it, so on restart it installs a snapshot, then fetches
    the history before the snapshot from a peer, and ends serving records
    identical to the leader's (offsets, timestamps, keys, values) for a
    plain topic, and the same latest record of every key for a compacted
    one."""
    with Cluster(name="backfill", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "events", "--segment-bytes", "65536")
        c.tally_ok("topic", "create", "state", "--policy", "compact", "--segment-bytes", "8192")
        write(c, "events", 10, "a")
        write(c, "state", 10, "a", keyed=True)
        c.kill(3)
        write(c, "events", 80, "b", ids=[1, 2])
        write(c, "state", 80, "b", ids=[1, 2], keyed=True)
        c.restart(3)
        wait_until(lambda: "installing snapshot" in log_text(c, 3), 60,
                   "node 3 to install a snapshot")
        wait_until(lambda: len(re.findall(r"backfilled offsets", log_text(c, 3))) >= 2, 60,
                   "node 3 to backfill both topics")
        same_as_leader(c, ["events"], 3, compacted=["state"])
        # Its files are whole again: stop it and verify them offline.
        c.stop(3)
        for t in ("events", "state"):
            d = os.path.join(c.nodes[3].data, "topics", t)
            r = c.tally("log", "verify", d)
            check(r.rc == 0, f"tally log verify {d}: {r!r}")
        c.restart(3)
        write(c, "events", 2, "c")
        same_as_leader(c, ["events"], 3)
        check("UNAVAILABLE" not in log_text(c, 3), "node 3 logged UNAVAILABLE reads")


def test_added_node_full_history_then_remove():
    """A fourth node added to a cluster whose leader has snapshotted past
    its first entries ends with the whole history of every topic; then node
    1 is removed and the cluster (2, 3, 4) keeps taking writes."""
    with GrowingCluster(n=4, name="backfill-add", extra_args=SETTINGS) as c:
        for i in (1, 2, 3):
            c.spawn(i)
        c.wait_leader(ids=[1, 2, 3])
        c.tally_ok("topic", "create", "events", "--segment-bytes", "65536", ids=[1, 2, 3])
        c.tally_ok("topic", "create", "state", "--policy", "compact", "--segment-bytes", "8192",
                   ids=[1, 2, 3])
        write(c, "events", 60, "a", ids=[1, 2, 3])
        write(c, "state", 60, "a", ids=[1, 2, 3], keyed=True)
        c.spawn(4)
        n4 = c.nodes[4]
        c.tally_ok("member", "add", "4", f"{n4.client}/{n4.raft}", ids=[1, 2, 3], timeout=90)
        wait_until(lambda: member_ids(c.status(ids=[1, 2, 3])) == [1, 2, 3, 4], 30,
                   "4 members in the configuration")
        # It votes only once it holds the whole history: no waiting here.
        st = c.status(ids=[1, 2, 3, 4])
        check(all(m["voter"] for m in st["members"]), f"node 4 is not a voter: {st['members']}")
        check("installing snapshot" in log_text(c, 4) and
              log_text(c, 4).count("backfilled offsets") >= 2,
              "node 4 was to install a snapshot and backfill both topics before it was promoted")
        leader = c.leader(ids=[1, 2, 3])
        check(dump(c, "events", 4, ids=[1, 2, 3, 4]) == dump(c, "events", leader, ids=[1, 2, 3]),
              "node 4 was made a voter before it held the history of events")
        check(keyed_state(dump(c, "state", 4, ids=[1, 2, 3, 4])) ==
              keyed_state(dump(c, "state", leader, ids=[1, 2, 3])),
              "node 4 was made a voter before it held the keyed state of state")
        write(c, "events", 5, "b", ids=[1, 2, 3])
        wait_until(lambda: "backfilled offsets" in log_text(c, 4) or
                   "installing snapshot" not in log_text(c, 4), 60,
                   "node 4 to backfill what its snapshot left out")
        same_as_leader(c, ["events"], 4, ids=[1, 2, 3, 4], compacted=["state"])
        # Remove node 1 (leader or not); the rest keeps working.
        c.tally_ok("member", "remove", "1", ids=[1, 2, 3, 4], timeout=60)
        wait_until(lambda: member_ids(c.status(ids=[2, 3, 4])) == [2, 3, 4], 30,
                   "node 1 to leave the configuration")
        c.kill(1)
        c.wait_leader(ids=[2, 3, 4])
        write(c, "events", 3, "c", ids=[2, 3, 4])
        same_as_leader(c, ["events"], 4, ids=[2, 3, 4], compacted=["state"])
        print(f"# node 4 installed a snapshot: {'installing snapshot' in log_text(c, 4)}",
              flush=True)


if __name__ == "__main__":
    run_tests([test_follower_backfills_after_snapshot_install,
               test_added_node_full_history_then_remove])
