# test_upgrade.py - data directories written by an older build open with
# this one and serve the same state: test/data/raft015-cluster.tar.xz holds
# the three data directories of a cluster that ran commit f6f14e8 on
# libraft 0.15.0 (test/data/make-upgrade-data.sh wrote it: a keyed topic
# with conditional appends, a plain topic, a group position, Raft snapshots
# taken and older Raft segments removed). This build must serve every
# record, key version and group position exactly as the old one did, from
# every node, and go on writing. docs/operations.md ("Upgrading") has the
# rolling upgrade, old and new nodes side by side, that was run by hand.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_upgrade.py

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, run_tests, wait_until  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                    "raft015-cluster.tar.xz")
# The addresses the old cluster's Raft configuration holds.
CLIENT_BASE = 7540
RAFT_BASE = 7640


def expected_sections():
    """expected.txt of the data set as {section title: [lines]}."""
    out = subprocess.run(["tar", "-xJOf", DATA, "expected.txt"], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    sections, cur = {}, None
    for line in out.splitlines():
        if line.startswith("# "):
            cur = line[2:]
            sections[cur] = []
        else:
            sections[cur].append(line)
    return sections


def old_cluster():
    c = Cluster(3, "upgrade")
    subprocess.run(["tar", "-xJf", DATA, "-C", c.tmp, "node1", "node2", "node3"], check=True)
    for i, n in c.nodes.items():
        n.client_port = CLIENT_BASE + i
        n.raft_port = RAFT_BASE + i
    return c


def test_old_data_serves_the_same():
    want = expected_sections()
    check(len(want["kv"]) == 320 and len(want["ev"]) == 270,
          f"the data set is not what its script writes: {[(k, len(v)) for k, v in want.items()]}")
    with old_cluster() as c:
        c.start()
        # Every node serves both topics exactly, once it has applied the log.
        for i in c.nodes:
            for topic in ("kv", "ev"):
                def same():
                    r = c.tally("consume", topic, "--node", c.nodes[i].client, "--format",
                                "%o\t%k\t%v\n")
                    return r.rc == 0 and r.out.decode().splitlines() == want[topic]
                wait_until(same, 60, f"node {i} to serve topic {topic} as the old build did")
        # Key versions: k0..k19 were at 9 after the conditional appends,
        # k20..k39 at 7; a stale expectation is refused with the real one.
        r = c.tally("produce", "kv", "-k", "k3", "--expect-version", "8", "stale")
        check(r.rc == 1 and b"version 9" in r.err, f"stale expectation on k3: {r!r}")
        c.tally_ok("produce", "kv", "-k", "k3", "--expect-version", "9", "after-upgrade")
        c.tally_ok("produce", "kv", "-k", "k25", "--expect-version", "7", "after-upgrade")
        # The group resumes where the old build left it.
        r = c.tally_ok("consume", "ev", "--group", "billing", "-n", "1", "--format", "%o\n")
        check(r.out.decode().strip() == str(int(want["group billing on ev"][0]) + 1),
              f"group billing resumed at {r.out!r}, want one past {want['group billing on ev']}")
        # New writes land after the old offsets, on every node.
        r = c.tally_ok("produce", "ev", "new-event")
        check(r.out.decode().strip() == str(len(want["ev"])), f"next offset of ev: {r!r}")
        for i in c.nodes:
            def has_new():
                r = c.tally("consume", "ev", "--node", c.nodes[i].client, "--from",
                            str(len(want["ev"])), "--format", "%v\n")
                return r.rc == 0 and r.out == b"new-event\n"
            wait_until(has_new, 30, f"node {i} to serve the write made after the upgrade")


if __name__ == "__main__":
    run_tests([test_old_data_serves_the_same])
