# test_recover.py - losing two of three nodes for good: SIGKILL two nodes and
# delete their data directories, run `tallyd recover` on the survivor, start
# it with its usual command line, and check that it serves every
# acknowledged record and new writes alone, then that a new node added with
# `tally member add` catches up. Also the refusals of `tallyd recover`.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_recover.py

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLYD, Cluster, check, parse_records, run_tests, wait_until  # noqa: E402


class RecoverCluster(Cluster):
    """Nodes 1-3 form the cluster; node 4 joins later as a new member of the
    recovered one-node cluster of self.survivor."""

    survivor = None

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        members = [1, 2, 3] if node_id <= 3 else [self.survivor, 4]
        for i in members:
            m = self.nodes[i]
            args += ["--peer", f"{m.id}={m.client}/{m.raft}"]
        if node_id <= 3:
            args.append("--bootstrap")
        return args + self.extra_args


def recover_cmd(c, node_id, form="recover"):
    argv = c.argv(node_id)
    if form == "recover":
        return [TALLYD, "recover"] + argv[1:]
    return [TALLYD, "--recover"] + argv[1:]


def run(cmd, timeout=60):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def applied(c, node_id):
    st = c.status(ids=[node_id])
    if st is None:
        return 0
    for m in st["members"]:
        if m["id"] == node_id:
            return m.get("applied_index", 0)
    return 0


def test_recover_survivor():
    """Two of three nodes and their disks are lost; the survivor is
    recovered, serves every acknowledged record and new writes alone, and a
    new node added afterwards catches up."""
    with RecoverCluster(n=4, name="recover") as c:
        for i in (1, 2, 3):
            c.spawn(i)
        leader = c.wait_leader(ids=[1, 2, 3])
        ids = [1, 2, 3]
        c.tally_ok("topic", "create", "t", ids=ids)
        c.tally_ok("topic", "create", "k", ids=ids)
        r = c.tally_ok("produce", "t", input="".join(f"rec-{i}\n" for i in range(300)).encode(),
                       ids=ids)
        acked = [int(x) for x in r.out.split()]
        check(acked == list(range(300)), f"offsets {acked[:3]}...")
        c.tally_ok("produce", "k", "--keyed",
                   input="".join(f"key{i % 5}\tv{i}\n" for i in range(50)).encode(), ids=ids)
        c.tally_ok("consume", "t", "--group", "g", "-n", "120", ids=ids)
        # The survivor: a follower (the harder case: it must take over).
        s = next(i for i in (1, 2, 3) if i != leader)
        c.survivor = s
        lost = [i for i in (1, 2, 3) if i != s]
        st = c.status(ids=[leader])
        commit = st["commit_index"]
        wait_until(lambda: applied(c, s) >= commit, 20, f"node {s} to apply index {commit}")

        # recover refuses to run under a running tallyd.
        rc, out, err = run(recover_cmd(c, s))
        check(rc == 1 and "in use" in err, f"recover under a running node: {rc} {out} {err}")

        for i in lost:
            c.kill(i)
            shutil.rmtree(c.nodes[i].data)
        # Alone, the survivor cannot commit anything.
        r = c.tally("--timeout", "3000", "produce", "t", "lonely", ids=[s], timeout=60)
        check(r.rc == 1, f"a write without quorum succeeded: {r!r}")
        c.kill(s)

        # recover: bad flags, then an empty data dir, then the real thing.
        rc, out, err = run([TALLYD, "recover", "--id", "0"])
        check(rc == 2, f"recover with bad flags: {rc} {err}")
        empty = os.path.join(c.tmp, "empty")
        rc, out, err = run([TALLYD, "recover", "--id", "9", "--data", empty, "--listen",
                            "127.0.0.1:1", "--raft", "127.0.0.1:2",
                            "--peer", "9=127.0.0.1:1/127.0.0.1:2"])
        check(rc == 1 and "no Raft state" in err, f"recover of an empty dir: {rc} {err}")
        rc, out, err = run(recover_cmd(c, s, form="--recover"))
        check(rc == 0 and "recovered" in out, f"recover failed: {rc} {out} {err}")
        print(f"# {out.strip().splitlines()[0]}")

        c.restart(s)
        wait_until(lambda: c.leader(ids=[s]) == s, 30, f"node {s} to lead alone")
        st = c.status(ids=[s])
        check(sorted(m["id"] for m in st["members"]) == [s],
              f"configuration after recovery: {st['members']}")
        recs = parse_records(c.read_node("t", s, 300, ids=[s]))
        check([o for o, _ in recs] == list(range(300)) and
              [v for _, v in recs] == [f"rec-{i}".encode() for i in range(300)],
              f"acknowledged records lost: {len(recs)} records")
        r = c.tally_ok("produce", "t", "after-recover", ids=[s])
        check(r.out.split() == [b"300"], f"new write at {r!r}")
        r = c.tally_ok("consume", "t", "--group", "g", "-n", "1", ids=[s])
        check(r.out.split(b"\t")[0] == b"120", f"group position lost: {r!r}")
        r = c.tally_ok("produce", "k", "-k", "key3", "--expect-version", "10", "v", ids=[s])
        check(r.out.split() == [b"50"], f"key versions lost: {r!r}")
        # A restart keeps the recovered configuration.
        c.stop(s)
        c.restart(s)
        wait_until(lambda: c.leader(ids=[s]) == s, 30, f"node {s} to lead after a restart")

        # A new node joins the recovered cluster and catches up.
        c.spawn(4)
        n4 = c.nodes[4]
        c.tally_ok("member", "add", "4", f"{n4.client}/{n4.raft}", ids=[s], timeout=90)
        wait_until(lambda: (lambda st: st and sorted(m["id"] for m in st["members"]) ==
                            sorted([s, 4]))(c.status(ids=[s])), 30, "node 4 in the configuration")
        c.tally_ok("produce", "t", "with-two", ids=[s, 4])
        recs4 = parse_records(c.read_node("t", 4, 302, ids=[s, 4]))
        check(recs4 == recs + [(300, b"after-recover"), (301, b"with-two")],
              f"node 4 differs: {len(recs4)} records, last {recs4[-2:]}")
        k4 = c.consume("k", node_id=4, ids=[s, 4])
        check(k4.rc == 0 and k4.out.count(b"\n") == 51, f"node 4 topic k: {k4!r}")
        # Both voters now: the cluster survives neither losing one (2 voters
        # need both), so check it simply takes writes with both up.
        r = c.tally_ok("produce", "t", "last", ids=[4])
        check(r.out.split() == [b"302"], f"write through node 4: {r!r}")


if __name__ == "__main__":
    run_tests([test_recover_survivor])
