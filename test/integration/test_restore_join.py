# test_restore_join.py - issue 22: a node added to a restored cluster by the
# normal procedure (docs/operations.md sections 7 and 14) gets every
# restored topic, key version, group position and the whole history, before
# it votes; then, node 1 removed, the cluster keeps serving and writing with
# nodes 3 and 4 only.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_restore_join.py

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLYD, Cluster, check, parse_records, run_tally, run_tests, wait_until  # noqa: E402


class Restored(Cluster):
    """Nodes 1-3 start from restored directories with --bootstrap; node 4
    starts empty, without --bootstrap, and is added with member add."""

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        for i in ([1, 2, 3] if node_id <= 3 else [1, 2, 3, 4]):
            m = self.nodes[i]
            args += ["--peer", f"{m.id}={m.client}/{m.raft}"]
        return args + (["--bootstrap"] if node_id <= 3 else []) + self.extra_args

    def brokers(self, ids=None):
        return super().brokers(ids if ids is not None else (self.alive_ids() or None))


def test_node_added_to_restored_cluster():
    """A node added after a restore holds every restored record, key version
    and group position, and the cluster runs on it."""
    with Cluster(name="rjoin-src") as src:
        src.start(timeout=60)
        src.tally_ok("topic", "create", "t")
        lines = "".join(f"k{i % 10}\tv{i}\n" for i in range(1000))
        src.tally_ok("produce", "t", "--keyed", input=lines.encode(), timeout=120)
        src.tally_ok("consume", "t", "--group", "g", "-n", "300")
        # Where g is now (it reads one more: g is then at pos + 1).
        r = src.tally_ok("consume", "t", "--group", "g", "-n", "1")
        group_pos = int(r.out.split(b"\t")[0]) + 1
        leader = src.wait_leader()
        follower = next(i for i in (1, 2, 3) if i != leader)
        src.read_node("t", follower, 1000)

        def applied_all():
            st = src.status()
            return st and all(m["applied_index"] >= st["commit_index"] for m in st["members"])
        wait_until(applied_all, 30, "every node to apply the group commit")
        bdir = os.path.join(src.tmp, "backup")

        def backup():
            shutil.rmtree(bdir, ignore_errors=True)
            r = run_tally(["backup", "--to", bdir, "--node", src.nodes[follower].client],
                          timeout=120)
            check(r.rc == 0, f"backup: {r!r}")
            return b" 1 group position" in r.out or b" 1 group position" in r.err
        wait_until(backup, 60, "a backup with the group position", interval=0.5)
        truth = parse_records(src.read_node("t", follower, 1000))
        with Restored(n=4, name="rjoin-dst") as dst:
            for i in (1, 2, 3):
                r = run_tally(["restore", "--from", bdir, "--data-dir", dst.nodes[i].data])
                check(r.rc == 0 and b"1 group position" in r.out, f"restore node {i}: {r!r}")
                dst.spawn(i)
            dst.wait_leader(timeout=60, ids=[1, 2, 3])
            dst.spawn(4)
            n4 = dst.nodes[4]
            r = dst.tally("member", "add", "4", f"{n4.client}/{n4.raft}", "--wait-timeout", "120",
                          ids=[1, 2, 3], timeout=180)
            check(r.rc == 0, f"member add 4: {r!r}")
            # Right when member add returns, node 4 serves the whole history.
            got = parse_records(dst.consume("t", node_id=4, ids=[4]).out)
            check(got == truth, f"node 4 serves {len(got)} of the {len(truth)} restored records")
            # Node 4 leads: the restored key version holds there.
            wait_until(lambda: dst.tally("member", "transfer", "4", ids=[1, 2, 3]).rc == 0
                       and dst.leader(ids=[1, 2, 3, 4]) == 4, 60, "node 4 to lead")
            r = dst.tally("produce", "t", "-k", "k3", "--expect-version", "100", "good",
                          ids=[4])
            check(r.rc == 0 and r.out.split()[0] == b"1000",
                  f"conditional append on k3 at its restored version on node 4: {r!r}")
            r = dst.tally_ok("consume", "t", "--group", "g", "-n", "1", ids=[4])
            check(int(r.out.split(b"\t")[0]) == group_pos,
                  f"group g resumes at {group_pos} on node 4: {r!r}")
            # Nodes 1 and 2 stop: 3 and 4 keep serving and writing. (Four
            # voters need three: node 1 is removed first, so that 3 and 4
            # are a majority of the three left and node 4's vote counts.)
            dst.tally_ok("member", "remove", "1", ids=[3, 4])
            dst.stop(1)
            dst.stop(2)
            dst.wait_leader(timeout=60, ids=[3, 4])
            dst.tally_ok("produce", "t", "after", ids=[3, 4])
            for i in (3, 4):
                got = parse_records(dst.read_node("t", i, 1002, ids=[3, 4]))
                check(len(got) == 1002 and got[-1] == (1001, b"after"),
                      f"node {i} after the stop: {got[-2:]}")


if __name__ == "__main__":
    run_tests([test_node_added_to_restored_cluster], per_test_timeout=400)
