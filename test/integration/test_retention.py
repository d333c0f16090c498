# test_retention.py - topics with a delete policy on a real three-node
# cluster: retention by size and by age removes whole sealed segments only
# (never the active one, never a partial segment), every node ends with the
# same start offset and records, and a node that installs a snapshot and
# backfills from a peer starts where the peer's retention left the topic.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_retention.py [TEST...]

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

SETTINGS = ["--set", "retention_interval_ms=200", "--set", "snapshot_threshold=16",
            "--set", "snapshot_trailing=16"]


def write(c, topic, rounds, tag, ids=None):
    for i in range(rounds):
        # random hex: incompressible enough that sizes are what they seem
        lines = "".join(f"{tag}-{i}-{j}-" + os.urandom(30).hex() + "\n" for j in range(40))
        c.tally_ok("produce", topic, input=lines.encode(), ids=ids)


def records(c, topic, node_id, ids=None):
    r = c.tally("consume", topic, "--node", c.nodes[node_id].client, "--format", "%o\\t%v\\n",
                ids=ids)
    check(r.rc == 0, f"read {topic} from node {node_id}: {r!r}")
    return [(int(o), v) for o, v in (ln.split(b"\t", 1) for ln in r.out.split(b"\n") if ln)]


def segments(c, topic, node_id):
    """(base offset, size) of each segment file of the node's topic."""
    d = os.path.join(c.nodes[node_id].data, "topics", topic)
    return sorted((int(n[:20]), os.path.getsize(os.path.join(d, n)))
                  for n in os.listdir(d) if n.endswith(".seg"))


def check_whole_segments(c, topic, node_id):
    """The node's first record is the first of its first segment file:
    retention removed whole segments, not parts of one."""
    segs = segments(c, topic, node_id)
    recs = records(c, topic, node_id)
    check(recs and segs, f"node {node_id}: no records or segments of {topic}")
    check(recs[0][0] == segs[0][0],
          f"node {node_id}: first record {recs[0][0]}, first segment {segs[0][0]}")
    return segs, recs


def test_retention_by_size_and_age():
    """By size: a topic kept under 30 KB in 8 KiB segments drops its oldest
    segments on every node, all nodes keep the same records, the kept size
    stays within the limit plus one segment. By age: once segments are
    older than 1.5 s they go, but the active segment stays readable."""
    with Cluster(name="retention", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "bysize", "--policy", "delete", "--retention-bytes",
                   "30000", "--segment-bytes", "8192")
        c.tally_ok("topic", "create", "byage", "--policy", "delete", "--retention-ms", "1500",
                   "--segment-bytes", "8192")
        write(c, "bysize", 40, "s")
        write(c, "byage", 10, "a")
        for i in c.nodes:
            wait_until(lambda: segments(c, "bysize", i)[0][0] > 0, 30,
                       f"node {i} to drop old segments of bysize")
        leader = c.wait_leader()
        want = records(c, "bysize", leader)
        for i in c.nodes:
            def kept(i=i):
                segs, recs = check_whole_segments(c, "bysize", i)
                total = sum(size for _, size in segs)
                check(total <= 30000 + 8192 + 8192, f"node {i}: {total} bytes kept over the limit")
                # (a follower may not have applied the newest write yet)
                check(recs[-1][0] == want[-1][0], f"node {i} does not end where the leader does")
                return True
            wait_until(kept, 30, f"node {i} to keep whole segments up to the leader's end")
        wait_until(lambda: len({records(c, "bysize", i)[0][0] for i in c.nodes}) == 1, 30,
                   "every node to start bysize at the same offset")
        # Age: wait past the limit, write more so new segments exist.
        time.sleep(2.0)
        write(c, "byage", 4, "b")
        for i in c.nodes:
            def aged():
                segs, recs = check_whole_segments(c, "byage", i)
                if any(v.startswith(b"a-") for _, v in recs[:1]) and len(segs) > 1:
                    raise TestFailure(f"node {i} still holds old segments: {segs}")
                # (a follower may not have applied the newest write yet)
                if not recs[-1][1].startswith(b"b-3-39"):
                    raise TestFailure(f"node {i}: newest record missing: {recs[-1]}")
                return recs
            wait_until(aged, 30, f"node {i} to drop the aged segments of byage and keep the "
                       "newest")


def test_backfill_starts_at_the_peers_retention():
    """Node 3 is away while the leader's retention drops the oldest
    segments and its Raft log moves on: on restart it installs a snapshot
    and backfills only what the peers still hold, and serves exactly the
    leader's records."""
    with Cluster(name="retention-bf", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "t", "--policy", "delete", "--retention-bytes", "30000",
                   "--segment-bytes", "8192")
        write(c, "t", 5, "a")
        c.kill(3)
        write(c, "t", 60, "b", ids=[1, 2])
        wait_until(lambda: segments(c, "t", c.wait_leader(ids=[1, 2]))[0][0] > 0, 30,
                   "the leader to drop old segments")
        c.restart(3)

        def same():
            c.check_up()
            leader = c.leader()
            if leader is None:
                return False
            want, got = records(c, "t", leader), records(c, "t", 3)
            if want != got:
                raise TestFailure(f"node 3 serves {len(got)} records from "
                                  f"{got[0][0] if got else None}, the leader {len(want)} from "
                                  f"{want[0][0] if want else None}")
            return True
        wait_until(same, 60, "node 3 to serve the leader's records", interval=0.5)
        with open(c.nodes[3].log_path, "rb") as f:
            log = f.read()
        check(b"installing snapshot" in log, "node 3 did not install a snapshot")
        # The snapshot carries the topic's start offset (TOPIC_TRIM), so the
        # backfill asks only for what is above it; a peer may still answer
        # that the oldest part is gone when retention moved on meanwhile.
        fetched = re.findall(rb"fetching offsets (\d+)\.\.", log)
        # Or nothing was fetched at all: the leader's later TOPIC_TRIM moved
        # the start past the whole history the snapshot left out, before
        # the backfill began (the CI run of 336a4f2 saw this order).
        lacked = re.search(rb"history (\d+)\.\.(\d+) is not on this node", log)
        starts = [int(x) for x in re.findall(rb"topic t: start offset (\d+) at index", log)]
        trimmed_away = (not fetched and lacked is not None and starts and
                        max(starts) >= int(lacked.group(2)))
        check(b"gone (retention)" in log or b"gone everywhere (retention)" in log or
              (fetched and int(fetched[0]) > 0) or trimmed_away,
              f"node 3's backfill did not start at the peer's retention (fetched from "
              f"{fetched[0].decode() if fetched else None})")
        for line in log.decode().splitlines():
            if "backfill" in line:
                print(f"# node 3: {line}", flush=True)


if __name__ == "__main__":
    run_tests([test_retention_by_size_and_age, test_backfill_starts_at_the_peers_retention])
