# test_membership.py - real tallyd processes: leadership transfer, adding a
# fourth node to a running cluster (it catches up from the leader), and
# removing it again.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_membership.py

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLYD, Cluster, check, parse_records, run_tests, wait_until  # noqa: E402


class GrowingCluster(Cluster):
    """Nodes 1-3 form the cluster; node 4 starts empty, without --bootstrap,
    and learns the configuration when it is added."""

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        members = [1, 2, 3] if node_id <= 3 else [1, 2, 3, 4]
        for i in members:
            m = self.nodes[i]
            args += ["--peer", f"{m.id}={m.client}/{m.raft}"]
        if node_id <= 3:
            args.append("--bootstrap")
        return args + self.extra_args


def member_ids(st):
    return sorted(m["id"] for m in st["members"]) if st else []


def test_transfer_add_remove():
    """Leadership moves on request; a new node added to a running cluster
    becomes a voter and holds every record; a removed node leaves the
    configuration and the cluster keeps taking writes."""
    with GrowingCluster(n=4, name="members") as c:
        for i in (1, 2, 3):
            c.spawn(i)
        leader = c.wait_leader(ids=[1, 2, 3])
        c.tally_ok("topic", "create", "m", ids=[1, 2, 3])
        lines = "".join(f"rec-{i}\n" for i in range(200))
        c.tally_ok("produce", "m", input=lines.encode(), ids=[1, 2, 3])

        target = 1 if leader != 1 else 2
        r = c.tally_ok("member", "transfer", str(target), ids=[1, 2, 3])
        wait_until(lambda: c.leader(ids=[1, 2, 3]) == target, 15,
                   f"node {target} to lead after the transfer ({r.out.strip()})")

        c.spawn(4)
        n4 = c.nodes[4]
        c.tally_ok("member", "add", "4", f"{n4.client}/{n4.raft}", ids=[1, 2, 3], timeout=90)
        st = wait_until(lambda: (lambda s: s if member_ids(s) == [1, 2, 3, 4] else None)(
            c.status(ids=[1, 2, 3])), 20, "4 members in the configuration")
        check(all(m["voter"] for m in st["members"]), f"not all voters: {st['members']}")
        c.tally_ok("produce", "m", "after-add", ids=[1, 2, 3])
        recs = parse_records(c.read_node("m", 4, 201, ids=[1, 2, 3, 4]))
        check([v for _, v in recs] == [f"rec-{i}".encode() for i in range(200)] + [b"after-add"],
              "node 4 does not hold the same records as the cluster")
        # Node 4 redirects writes to the leader like any member.
        c.tally_ok("produce", "m", "via-4", ids=[4])

        c.tally_ok("member", "remove", "4", ids=[1, 2, 3], timeout=60)
        wait_until(lambda: member_ids(c.status(ids=[1, 2, 3])) == [1, 2, 3], 20,
                   "node 4 to leave the configuration")
        c.kill(4)
        c.tally_ok("produce", "m", "after-remove", ids=[1, 2, 3])
        # Read it back from the leader (a follower may lag a heartbeat).
        leader = c.wait_leader(ids=[1, 2, 3])
        recs = parse_records(c.read_node("m", leader, 203, ids=[1, 2, 3]))
        check(len(recs) == 203, f"want 203 records, got {len(recs)}")

        # Errors: an unknown member, a duplicate id.
        r = c.tally("member", "remove", "9", ids=[1, 2, 3])
        check(r.rc == 1 and r.err.strip(), f"removing an unknown member: {r!r}")
        m1 = c.nodes[1]
        r = c.tally("member", "add", "1", f"{m1.client}/{m1.raft}", ids=[1, 2, 3])
        check(r.rc == 1, f"adding an existing member must fail: {r!r}")


if __name__ == "__main__":
    run_tests([test_transfer_add_remove])
