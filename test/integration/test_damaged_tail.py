# test_damaged_tail.py - a node whose topic log lost its last batches (a
# damaged tail cut at open) after its checkpoints had counted them: the
# key index (versions), the producer table (exactly-once) and the catalog
# must not count what the log no longer holds, or the node refuses or
# skips the replayed writes and ends with fewer records than the others
# (the fault suite found this, seeds 101 and 45891).
#
# A follower is stopped cleanly (its final checkpoint counts every record),
# a bit of one of its last batches is flipped, and it is started again. It
# must end with exactly the leader's records, and keep agreeing when it
# later becomes the leader. Three forms:
#   - no Raft snapshot yet: Raft replays the whole log;
#   - a Raft snapshot older than the lost batches;
#   - lost batches older than the node's last Raft snapshot.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_damaged_tail.py [TEST...]

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, check, run_tests, wait_until  # noqa: E402
from test_backfill import dump, log_text  # noqa: E402

TOPIC = "acc"
KEY = "acct"
BATCH_AT = re.compile(rb"^batch base_offset=(\d+) .* at=(\S+):(\d+)$", re.M)


def cas_writes(c, first_version, n, ids=None):
    """@n conditional appends to KEY, each expecting the version the one
    before it left, plus a plain idempotent produce after each."""
    for v in range(first_version, first_version + n):
        c.tally_ok("produce", TOPIC, "-k", KEY, "--expect-version", str(v), f"v{v}", ids=ids)
        c.tally_ok("produce", TOPIC, f"plain-{v}", ids=ids)


def batches(c, node_id):
    """(base offset, segment file, position) of every batch of TOPIC in the
    node's data directory, read offline."""
    r = subprocess.run([TALLY, "log", "dump", c.nodes[node_id].data, "--topic", TOPIC],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(r.returncode == 0, f"log dump of node {node_id}: {r.stderr!r}")
    return [(int(m.group(1)), m.group(2).decode(), int(m.group(3)))
            for m in BATCH_AT.finditer(r.stdout)]


def damage(c, node_id, back):
    """Flip a bit in the header of the @back-th last batch of TOPIC on the
    (stopped) node: the open cuts the log there. Returns the offset the
    node's log then ends at."""
    found = batches(c, node_id)
    check(len(found) >= back, f"node {node_id} holds {len(found)} batches, want {back}+")
    base, seg, pos = found[-back]
    path = os.path.join(c.nodes[node_id].data, "topics", TOPIC, seg)
    if not os.path.exists(path):
        path = seg
    with open(path, "r+b") as f:
        f.seek(pos + 20)
        b = f.read(1)
        f.seek(pos + 20)
        f.write(bytes([b[0] ^ 0x10]))
    return base


def leader_records(c):
    return dump(c, TOPIC, c.leader())


def damaged_follower(settings, writes_before, back, writes_after, expect):
    with Cluster(name="damaged", extra_args=settings) as c:
        c.start()
        c.tally_ok("topic", "create", TOPIC)
        cas_writes(c, 0, writes_before)
        leader = c.leader()
        f = next(i for i in c.nodes if i != leader)
        # Every node holds every record before the follower stops.
        want = leader_records(c)
        wait_until(lambda: dump(c, TOPIC, f) == want, 30, f"node {f} to hold every record")
        c.stop(f)  # the final checkpoint counts every record
        cut = damage(c, f, back)
        c.restart(f)
        wait_until(lambda: "truncating corrupt tail" in log_text(c, f), 30,
                   f"node {f} to cut its damaged tail")
        cas_writes(c, writes_before, writes_after)
        want = leader_records(c)
        wait_until(lambda: dump(c, TOPIC, f) == want, 60,
                   f"node {f} to serve the leader's records again (its log was cut at {cut})")
        for what in expect:
            check(what in log_text(c, f), f"node {f} did not log {what!r}")
        # The damaged node leads: it must accept the next version, at the
        # next offset, like the others would.
        c.tally_ok("member", "transfer", str(f))
        wait_until(lambda: c.leader() == f, 30, f"node {f} to lead")
        v = writes_before + writes_after
        r = c.tally_ok("produce", TOPIC, "-k", KEY, "--expect-version", str(v), f"v{v}")
        check(int(r.out.split()[0]) == 2 * v,
              f"node {f} as leader wrote version {v} at offset {r.out.strip()}, want {2 * v}")
        want = leader_records(c)
        for i in c.nodes:
            wait_until(lambda: dump(c, TOPIC, i) == want, 30, f"node {i} to agree")


def test_damaged_tail_no_snapshot():
    """No Raft snapshot: the node replays the whole Raft log over a log
    whose last 3 batches were cut."""
    damaged_follower([], 12, 3, 5, ["rebuilding the producer table and key index from the log"])


def test_damaged_tail_after_snapshot():
    """A Raft snapshot older than the cut batches."""
    damaged_follower(["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=64"],
                     24, 3, 5, ["rebuilding the producer table and key index from the log",
                                "going back to the snapshot at index"])


def test_damaged_tail_before_snapshot():
    """The cut goes back past the node's last Raft snapshot: its history
    comes back from a peer (backfill)."""
    damaged_follower(["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=16"],
                     30, 30, 5, ["rebuilding the producer table and key index from the log",
                                 "records were lost here", "backfilled offsets"])


if __name__ == "__main__":
    run_tests([test_damaged_tail_no_snapshot, test_damaged_tail_after_snapshot,
               test_damaged_tail_before_snapshot])
