# test_compaction.py - keyed compaction on a real three-node cluster:
# a model test (random writes and deletes over a few hundred keys against a
# reference map, checked on every node after compaction and after a
# restart), and SIGKILL at random moments while a node compacts.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_compaction.py [TEST...]
#
# Compaction only runs on offsets a key-index checkpoint covers, and
# checkpoints come with Raft snapshots, so the cluster takes a snapshot
# every 16 entries here; segments are 4 KiB so that many get sealed.

import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, check, run_tests, wait_until  # noqa: E402

N_KEYS = 300

SETTINGS = ["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=16",
            "--set", "compaction_interval_ms=100", "--set", "delete_retention_ms=0"]


class Model:
    """What was written: per key the latest value (None: deleted) and how
    many records it has had (its version)."""

    def __init__(self):
        self.latest = {}
        self.version = {}
        self.records = 0

    def put(self, key, value):
        self.latest[key] = value
        self.version[key] = self.version.get(key, 0) + 1
        self.records += 1


def write_round(c, topic, model, rnd, rng, n, avoid=()):
    keys = rng.sample([k for k in range(N_KEYS) if f"key-{k}" not in avoid], n)
    lines = []
    for k in keys:
        key, value = f"key-{k}", f"v{rnd}-{k}-" + "x" * rng.randrange(10, 60)
        lines.append(f"{key}\t{value}\n")
        model.put(key, value)
    c.tally_ok("produce", topic, "--keyed", input="".join(lines).encode())


def delete_keys(c, topic, model, rng, n):
    keys = [f"key-{k}" for k in rng.sample(range(N_KEYS), n)]
    for key in keys:
        c.tally_ok("produce", topic, "-k", key, "--tombstone")
        model.put(key, None)
    return set(keys)


def read(c, topic, node_id):
    """[(offset, key, value or None)] from one node. The CLI prints a
    tombstone as an empty value; the model's values are never empty."""
    r = c.tally_ok("consume", topic, "--node", c.nodes[node_id].client,
                   "--format", "%o\\t%k\\t%v\\n")
    out = []
    for line in r.out.split(b"\n"):
        if line:
            off, key, val = line.decode().split("\t", 2)
            out.append((int(off), key, val if val else None))
    return out


def check_latest(recs, model, node_id):
    offsets = [o for o, _, _ in recs]
    check(offsets == sorted(set(offsets)), f"node {node_id}: offsets not strictly increasing")
    last = {}
    for _, k, v in recs:
        last[k] = v
    for k, v in model.latest.items():
        if v is None:
            # deleted: the tombstone, or nothing once the tombstone is gone
            check(last.get(k) is None, f"node {node_id}: deleted {k} reads {last.get(k)!r}")
        else:
            check(last.get(k) == v, f"node {node_id}: {k} reads {last.get(k)!r}, want {v!r}")
    check(set(last) <= set(model.latest), f"node {node_id}: keys nobody wrote")


def compacted(c, topic, node_id, max_records):
    """Wait until the node's copy of the topic holds at most @max_records."""
    def pred():
        c.check_up()
        n = len(read(c, topic, node_id))
        return n <= max_records
    wait_until(pred, 60, f"node {node_id} to compact {topic} to <= {max_records} records",
               interval=0.5)


def log_verify(c, topic, node_id):
    d = os.path.join(c.nodes[node_id].data, "topics", topic)
    r = subprocess.run([TALLY, "log", "verify", d], capture_output=True, timeout=120)
    check(r.returncode == 0, f"node {node_id}: tally log verify {d}: {r.stdout!r} {r.stderr!r}")


def test_model_compact_restart():
    """Random writes and deletes over 300 keys: after compaction and after
    restarting every node, each node serves exactly the model's latest
    values, far fewer records than were written, with versions intact."""
    rng = random.Random(42)
    with Cluster(name="compact", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "state", "--policy", "compact", "--segment-bytes", "4096")
        model = Model()
        for rnd in range(30):
            write_round(c, "state", model, rnd, rng, 120)
            if rnd % 6 == 5:
                delete_keys(c, "state", model, rng, 12)
        # Keys deleted for good, then more rounds over the others so the
        # deletes are sealed and checkpointed too.
        dead = delete_keys(c, "state", model, rng, 15)
        for rnd in range(30, 40):
            write_round(c, "state", model, rnd, rng, 120, avoid=dead)
        live = sum(1 for v in model.latest.values() if v is not None)
        # Compaction reaches the offsets of the last key checkpoint, taken
        # at a Raft snapshot (every 16 entries here): 17 more entries, to
        # another topic, make one come after the last write, wherever the
        # cluster's own entries (cluster id, directories) put the others.
        c.tally_ok("topic", "create", "filler")
        for k in range(17):
            c.tally_ok("produce", "filler", f"f{k}")
        bound = len(model.latest) + 40 * 120 // 4  # the keys, plus an unsealed tail
        check(model.records > 2 * bound, "the test writes too little to see compaction")
        for i in c.nodes:
            compacted(c, "state", i, bound)
            wait_until(lambda: _latest_ok(c, i, model), 30, f"node {i} to serve the model")
        r = c.tally_ok("topic", "list")
        check(re.search(rb"state\s+compact", r.out), f"topic list does not show the policy: {r!r}")
        # Restart everything: compacted segments reopen, key versions survive.
        for i in c.nodes:
            c.stop(i)
        for i in c.nodes:
            log_verify(c, "state", i)
        c.start()
        for i in c.nodes:
            wait_until(lambda: _latest_ok(c, i, model), 30, f"node {i} to serve the model")
        key = next(k for k, v in model.latest.items() if v is not None)
        c.tally_ok("produce", "state", "-k", key, "--expect-version", str(model.version[key]),
                   "after")
        model.put(key, "after")
        wrong = c.tally("produce", "state", "-k", key, "--expect-version", "1", "nope")
        check(wrong.rc != 0 and b"condition failed" in wrong.err,
              f"a stale version must be refused after compaction: {wrong!r}")
        for i in c.nodes:
            wait_until(lambda: dict((k, v) for _, k, v in read(c, "state", i)).get(key)
                       == "after", 30, f"node {i} to read the new write")
        print(f"# {model.records} records written over {len(model.latest)} keys "
              f"({live} live); nodes hold "
              f"{[len(read(c, 'state', i)) for i in c.nodes]}", flush=True)


def test_sigkill_during_compaction():
    """SIGKILL node 3 at random moments while it compacts (12 times, while
    writes go on): it always restarts, catches up, serves the model's
    latest values, and its files verify."""
    rng = random.Random(7)
    settings = SETTINGS + ["--set", "compaction_interval_ms=20"]
    with Cluster(name="compact-kill", extra_args=settings) as c:
        c.start()
        c.tally_ok("topic", "create", "state", "--policy", "compact", "--segment-bytes", "4096")
        model = Model()
        rnd = 0
        for _ in range(15):
            write_round(c, "state", model, rnd, rng, 200)
            rnd += 1
        kills = 0
        compactions_seen = 0
        for it in range(12):
            for _ in range(3):
                write_round(c, "state", model, rnd, rng, 200)
                rnd += 1
            if it % 4 == 3:
                delete_keys(c, "state", model, rng, 5)
            # Compaction runs every 20 ms on every node; kill at a random point.
            time.sleep(rng.uniform(0.0, 0.3))
            c.kill(3)
            kills += 1
            with open(c.nodes[3].log_path, "rb") as f:
                compactions_seen = len(re.findall(rb"compact: topic state", f.read()))
            c.restart(3)
            wait_until(lambda: c.status(ids=[3]) is not None, 30, "node 3 to answer again")
        for rnd2 in range(rnd, rnd + 3):
            write_round(c, "state", model, rnd2, rng, 200)
        for i in c.nodes:
            wait_until(lambda: _latest_ok(c, i, model), 60, f"node {i} to serve the model")
        check(compactions_seen > 0, "node 3 never finished a compaction: the kills hit nothing")
        print(f"# {kills} kills; node 3 logged {compactions_seen} finished compactions",
              flush=True)
        for i in c.nodes:
            c.stop(i)
            log_verify(c, "state", i)


def _latest_ok(c, node_id, model):
    """True once the node serves the model (wait_until retries failures)."""
    c.check_up()
    check_latest(read(c, "state", node_id), model, node_id)
    return True


if __name__ == "__main__":
    run_tests([test_model_compact_restart, test_sigkill_during_compaction])
