# test_membership.py - real tallyd processes: leadership transfer, adding a
# fourth node to a running cluster (it catches up from the leader), and
# removing it again; a node added while it is not running stays a standby
# that does not count towards a majority until it is promoted.
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
        # An id that is a member already: with other addresses it is
        # refused (and its client address left alone); with its own, the
        # add is a no-op that succeeds (an add run again).
        m1, m4 = c.nodes[1], c.nodes[4]
        r = c.tally("member", "add", "1", f"{m4.client}/{m4.raft}", ids=[1, 2, 3])
        check(r.rc == 1 and "already a member" in r.errtext,
              f"adding another node under an existing id must fail: {r!r}")
        st = c.status(ids=[1, 2, 3])
        check(next(m["client"] for m in st["members"] if m["id"] == 1) == m1.client,
              f"node 1's client address changed: {st['members']}")
        r = c.tally_ok("member", "add", "1", f"{m1.client}/{m1.raft}", ids=[1, 2, 3])
        check(r.out.strip() == f"added member 1 at {m1.client}/{m1.raft}".encode(),
              f"adding a member again: {r!r}")


def voter_of(st, node_id):
    return next((m["voter"] for m in st["members"] if m["id"] == node_id), None) if st else None


def test_standby_until_caught_up():
    """`member add` of a node that is not running gives up waiting after
    --wait-timeout and leaves it a standby: it does not vote, so two of the
    three voters still commit writes. Once it runs, `member promote` makes
    it a voter; after that two nodes of four are not a majority."""
    with GrowingCluster(n=4, name="standby") as c:
        for i in (1, 2, 3):
            c.spawn(i)
        leader = c.wait_leader(ids=[1, 2, 3])
        c.tally_ok("topic", "create", "s", ids=[1, 2, 3])
        c.tally_ok("produce", "s", input=b"".join(b"r-%d\n" % i for i in range(50)),
                   ids=[1, 2, 3])
        n4 = c.nodes[4]
        r = c.tally("member", "add", "4", f"{n4.client}/{n4.raft}", "--wait-timeout", "2",
                    ids=[1, 2, 3], timeout=60)
        check(r.rc == 1 and "stays a standby" in r.errtext and "not answering" in r.errtext,
              f"member add of a stopped node: {r!r}")
        st = wait_until(lambda: (lambda s: s if member_ids(s) == [1, 2, 3, 4] else None)(
            c.status(ids=[1, 2, 3])), 20, "4 members in the configuration")
        check(voter_of(st, 4) is False, f"node 4 must be a standby: {st['members']}")
        # A standby is not part of any majority: one voter down, two commit.
        down = next(i for i in (1, 2, 3) if i != leader)
        c.kill(down)
        c.tally_ok("produce", "s", "with-a-standby", ids=[1, 2, 3])
        c.restart(down)
        # Start it and promote it: it catches up first.
        c.spawn(4)
        r = c.tally_ok("member", "promote", "4", ids=[1, 2, 3], timeout=90)
        check(r.out.strip() == b"member 4 is a voter" and "caught up" in r.errtext,
              f"member promote: {r!r}")
        st = c.status(ids=[1, 2, 3, 4])
        check(voter_of(st, 4) is True, f"node 4 must vote now: {st['members']}")
        recs = parse_records(c.read_node("s", 4, 51, ids=[1, 2, 3, 4]))
        check(len(recs) == 51, f"node 4 holds {len(recs)} records, want 51")
        r = c.tally_ok("member", "promote", "4", ids=[1, 2, 3])
        check(r.out.strip() == b"member 4 is a voter", f"promoting a voter again: {r!r}")
        # Four voters: two of them are not a majority any more.
        leader = c.wait_leader(ids=[1, 2, 3, 4])
        others = [i for i in (1, 2, 3, 4) if i != leader]
        c.kill(others[0])
        c.kill(others[1])
        r = c.tally("produce", "s", "no-majority", "--timeout", "3000", ids=[1, 2, 3, 4])
        check(r.rc == 1, f"a write with 2 of 4 voters up must fail: {r!r}")
        r = c.tally("member", "promote", "9", ids=[1, 2, 3, 4], timeout=30)
        check(r.rc == 1 and "not a member" in r.errtext, f"promoting an unknown node: {r!r}")


if __name__ == "__main__":
    run_tests([test_transfer_add_remove, test_standby_until_caught_up])
