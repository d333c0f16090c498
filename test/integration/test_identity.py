# test_identity.py - a data directory and a cluster know who they are
# (issues 28 and 23): a start that fails writes nothing, a directory
# refuses another node's --id, a taken Raft port is exit 2 with its reason,
# and a --peer line that disagrees with the stored membership is reported.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_identity.py [NAME...]

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, TALLYD, Cluster, TestFailure, check, free_ports,  # noqa: E402
                     parse_records, run_tests, wait_until)


def run(cmd, timeout=60):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def holder(port):
    """A socket listening on 127.0.0.1:@port (another process's port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    return s


def written(data_dir):
    """What a start left in @data_dir, besides the lock file."""
    out = []
    for root, dirs, files in os.walk(data_dir):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), data_dir)
            if rel != "LOCK":
                out.append(rel)
        for d in dirs:
            out.append(os.path.relpath(os.path.join(root, d), data_dir) + "/")
    return sorted(out)


def members_seen(c, node_id):
    st = c.status(ids=[node_id])
    if st is None:
        return None
    return sorted((m["id"], m["raft"]) for m in st["members"])


def test_failed_first_start_writes_nothing():
    """A first start that fails (client port taken) with a mistyped --peer
    writes nothing; the next start with the right peers forms one cluster."""
    with Cluster(name="ident-first") as c:
        good = c.argv(1)
        bad_port = free_ports(1)[0]
        bad = [a.replace(c.nodes[2].raft, f"127.0.0.1:{bad_port}") for a in good]
        check(bad != good, "the mistyped argv differs")
        s = holder(c.nodes[1].client_port)
        try:
            rc, out, err = run(bad, timeout=60)
        finally:
            s.close()
        check(rc == 2, f"a taken client port exits 2, got {rc}: {err[-400:]}")
        check("address already in use" in err, f"the reason is given: {err[-400:]}")
        left = written(c.nodes[1].data)
        check(left == [], f"a failed start wrote nothing to its data directory, found {left}")
        leader = c.start(timeout=60)
        check(leader in (1, 2, 3), "a leader")
        c.tally_ok("topic", "create", "t")
        vals = "".join(f"v{i}\n" for i in range(20))
        c.tally_ok("produce", "t", input=vals.encode())
        want = sorted((i, c.nodes[i].raft) for i in (1, 2, 3))
        for i in (1, 2, 3):
            got = wait_until(lambda: members_seen(c, i) == want, 30,
                             f"node {i} to hold the right membership")
            check(got, f"node {i}: membership {members_seen(c, i)}, want {want}")
            recs = parse_records(c.read_node("t", i, 20))
            check([o for o, _ in recs] == list(range(20)), f"node {i} holds every record")


def test_wrong_id_refused():
    """A data directory refuses a start under another node's --id."""
    with Cluster(n=3, name="ident-id") as c:
        c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        c.stop(1)
        c.stop(2)
        argv = [a if a != c.nodes[2].data else c.nodes[1].data for a in c.argv(2)]
        argv[argv.index("--data") + 1] = c.nodes[1].data
        try:
            rc, out, err = run(argv, timeout=20)
        except subprocess.TimeoutExpired:
            check(False, "tallyd --id 2 on node 1's data directory started (it ran 20 s)")
        check(rc == 2, f"exit 2, got {rc}: {err[-400:]}")
        check("belongs to node 1" in err and "--id 2" in err,
              f"the message names both ids: {err[-400:]}")
        c.restart(1)
        c.restart(2)
        c.wait_leader(timeout=60)


def test_raft_port_taken():
    """A taken Raft port: exit 2 with the reason, nothing written."""
    with Cluster(n=1, name="ident-raftport") as c:
        s = holder(c.nodes[1].raft_port)
        try:
            rc, out, err = run(c.argv(1), timeout=60)
        finally:
            s.close()
        check(rc == 2, f"exit 2, got {rc}: {err[-400:]}")
        check("address already in use" in err and c.nodes[1].raft in err,
              f"the message says which address and why: {err[-400:]}")
        left = written(c.nodes[1].data)
        check(left == [], f"nothing written, found {left}")
        c.start(timeout=60)


class MetricsCluster(Cluster):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.metrics = {i: p for i, p in zip(self.nodes, free_ports(len(self.nodes)))}
        self.wrong = None  # (node started with the wrong line, peer, address)

    def argv(self, node_id):
        args = super().argv(node_id) + ["--metrics", f"127.0.0.1:{self.metrics[node_id]}"]
        if self.wrong is not None and self.wrong[0] == node_id:
            args = [a.replace(self.nodes[self.wrong[1]].raft, self.wrong[2]) for a in args]
        return args


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def test_peer_mismatch_reported():
    """A --peer line that disagrees with the stored membership is said in the
    log and on /health, not silently ignored."""
    with MetricsCluster(n=3, name="ident-peer") as c:
        c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        c.stop(3)
        wrong = f"127.0.0.1:{free_ports(1)[0]}"
        c.wrong = (3, 2, wrong)
        c.restart(3)
        st = wait_until(lambda: (lambda h: h if wrong in h[1] else None)(health(c.metrics[3])),
                        30, "/health of node 3 to report the disagreement")
        check(st[0] == 503, f"/health is not ok while it lasts: {st}")
        with open(c.nodes[3].log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        check("membership disagrees" in log and wrong in log, "the log says so")
        code, body = health(c.metrics[1])
        check(wrong not in body, f"node 1 agrees with its lines: {code} {body}")


def test_two_memberships_reported():
    """A node that bootstrapped alone with a mistyped --peer holds another
    membership than the others: tally status and the node itself say so."""
    with Cluster(name="ident-two") as c:
        bad_port = free_ports(1)[0]
        good = c.argv(3)
        bad = [a.replace(c.nodes[2].raft, f"127.0.0.1:{bad_port}") for a in good]
        first = os.path.join(c.tmp, "node3-first.log")
        with open(first, "wb") as out:
            p = subprocess.Popen(bad, stdout=out, stderr=out)
            try:
                # "started" comes after raft_start: the bootstrap is on disk.
                wait_until(lambda: b"node 3 started on" in open(first, "rb").read(), 30,
                           "node 3 to bootstrap alone")
            finally:
                p.kill()
                p.wait(timeout=10)
        c.start(timeout=60)
        c.tally_ok("topic", "create", "t")

        def said():
            r = c.tally("status")
            return r if b"disagree on the membership" in r.err else None
        r = wait_until(said, 30, "tally status to report two memberships")
        check(f"127.0.0.1:{bad_port}".encode() in r.err, f"it names the address: {r.err!r}")
        wait_until(lambda: "membership disagrees" in log_of(c, 3), 30,
                   "node 3 to say that its membership is not its --peer lines")


def log_of(c, i):
    with open(c.nodes[i].log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def identity(c, i):
    out = {}
    try:
        with open(os.path.join(c.nodes[i].data, "identity")) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                out[k] = v
    except OSError:
        pass
    return out


def wait_identities(c, ids, soft=False):
    """Until every node of @ids knows the cluster id and has applied the
    record of every member's data directory."""
    def pred():
        c.check_up()
        for i in ids:
            if identity(c, i).get("cluster_id", "0" * 16) == "0" * 16:
                return False
            log = log_of(c, i)
            if any(f"member {m}: data directory" not in log for m in ids):
                return False
        return True
    what = "every node to know the cluster id and every member's directory"
    if soft:
        settle(pred, 60, what)
    else:
        wait_until(pred, 60, what)


def settle(pred, timeout, what):
    """Wait up to @timeout s for @pred, without failing: the checks after
    it say what went wrong (so that old code fails on the harm itself)."""
    try:
        wait_until(pred, timeout, what)
        return True
    except TestFailure:
        print(f"# did not see: {what}", flush=True)
        return False


def produce(c, topic, prefix, n, ids=None):
    vals = "".join(f"{prefix}{k}\n" for k in range(n))
    c.tally_ok("produce", topic, input=vals.encode(), ids=ids)


def test_lost_disk_rejoins_not_as_itself():
    """Issue 23: a node that lost its disk and restarts with its usual line
    (--bootstrap) does not count as its old self; no acknowledged record is
    lost; after 'tally member replace' it holds everything and votes."""
    with Cluster(n=3, name="ident-disk") as c:
        c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        produce(c, "t", "a", 100)
        wait_identities(c, [1, 2, 3], soft=True)
        def lead3():
            if c.leader() == 3:
                return True
            c.tally("member", "transfer", "3")
            return c.leader() == 3
        wait_until(lead3, 60, "node 3 to lead")
        c.kill(2)
        produce(c, "t", "b", 100, ids=[1, 3])  # acknowledged: on 3 and 1
        c.kill(1)
        shutil.rmtree(c.nodes[1].data)
        os.makedirs(c.nodes[1].data)
        c.restart(1)  # the same command line, --bootstrap included
        settle(lambda: "not bootstrapping" in log_of(c, 1), 30,
               "node 1 to refuse to form a new cluster")
        c.kill(3)
        c.restart(2)
        settle(lambda: "refusing the raft connection to node 1" in log_of(c, 2), 30,
               "node 2 to refuse node 1's new directory")
        # Nodes 1 and 2 must not form a majority: node 1 is not its old self.
        for _ in range(10):
            c.check_up()
            check(c.leader(ids=[1, 2]) == 0, "nodes 1 and 2 elected a leader without node 3")
            time.sleep(1)
        c.restart(3)
        leader = c.wait_leader(timeout=60, ids=[2, 3])
        check(leader in (2, 3), "a leader among 2 and 3")
        recs = parse_records(c.read_node("t", leader, 200, ids=[2, 3]))
        check([v for _, v in recs] == [f"a{k}".encode() for k in range(100)] +
              [f"b{k}".encode() for k in range(100)], "every acknowledged record is kept")
        check("not bootstrapping" in log_of(c, 1), "node 1 said why it did not bootstrap")
        log2 = log_of(c, 2)
        check("refusing the raft connection to node 1" in log2 and "tally member replace 1"
              in log2, "node 2 said why it refuses node 1, and the remedy")
        r = c.tally("member", "replace", "1", f"{c.nodes[1].client}/{c.nodes[1].raft}",
                    "--wait-timeout", "120", ids=[2, 3], timeout=180)
        check(r.rc == 0, f"member replace: {r!r}")
        recs = parse_records(c.read_node("t", 1, 200, ids=[1]))
        check(len(recs) == 200, "node 1 holds every record after its replacement")
        c.kill(2)  # node 1 must vote now: 1 and 3 are the majority
        c.wait_leader(timeout=60, ids=[1, 3])
        produce(c, "t", "c", 10, ids=[1, 3])
        recs = parse_records(c.read_node("t", 1, 210, ids=[1]))
        check(len(recs) == 210, "nodes 1 and 3 keep writing")


def test_wiped_follower_replaced_under_a_running_leader():
    """A follower loses its disk and restarts while the leader keeps
    running; the leader refuses its new directory until 'tally member
    replace', and after the replace records the new directory, not the one
    it had accepted from the node before the wipe (the fault suite saw the
    old one recorded: the node was then refused for good and the replace
    had said it was done)."""
    with Cluster(n=3, name="ident-wipe") as c:
        leader = c.start(timeout=60)
        c.tally_ok("topic", "create", "t")
        produce(c, "t", "a", 50)
        wait_identities(c, [1, 2, 3], soft=True)
        f = [i for i in (1, 2, 3) if i != leader]
        wiped, other = f[0], f[1]
        c.kill(wiped)
        shutil.rmtree(c.nodes[wiped].data)
        os.makedirs(c.nodes[wiped].data)
        c.restart(wiped)
        settle(lambda: f"refusing the raft connection from node {wiped}" in log_of(c, leader) or
               f"refusing the raft connection to node {wiped}" in log_of(c, leader), 30,
               "the leader to refuse the wiped node's new directory")
        new_dir = identity(c, wiped).get("directory_id")
        check(new_dir, f"node {wiped} wrote no directory id")
        # Paused while the replace forgets the old directory and adds the
        # node back, so that the leader's once-a-second identity check runs
        # before any new hello from it: what it records then is what it
        # remembered (a new hello would mask the bug).
        c.pause(wiped)
        rep = subprocess.Popen([TALLY, "-b", c.brokers([leader, other]), "member", "replace",
                                str(wiped), f"{c.nodes[wiped].client}/{c.nodes[wiped].raft}",
                                "--wait-timeout", "40"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            settle(lambda: f"member {wiped}: its data directory is forgotten" in log_of(c, leader),
                   30, "the replace to forget the old directory")
            time.sleep(3)
        finally:
            c.resume(wiped)
        out, err = rep.communicate(timeout=120)
        recorded = [ln.split("data directory ")[1].split()[0] for ln in log_of(c, leader).splitlines()
                    if f"member {wiped}: data directory " in ln and " recorded" in ln]
        check(recorded and recorded[-1] == new_dir,
              f"the leader recorded {recorded[-1:]} for node {wiped}, whose directory is {new_dir}")
        check(rep.returncode == 0, f"member replace: exit {rep.returncode}: {err!r}")
        # The wiped node must count now: with the other follower gone, the
        # leader and it are the majority.
        c.kill(other)
        lead = c.wait_leader(timeout=60, ids=[leader, wiped])
        check(lead in (leader, wiped), "a leader among the leader and the replaced node")
        produce(c, "t", "b", 10, ids=[leader, wiped])
        recs = parse_records(c.read_node("t", wiped, 60, ids=[wiped]))
        check(len(recs) == 60, f"the replaced node holds {len(recs)} of 60 records")


def test_other_cluster_refused():
    """A data directory of another cluster at a member's addresses is refused
    on both sides, with both cluster ids in the logs."""
    with Cluster(n=3, name="ident-cluster") as c:
        c.start(timeout=60)
        c.tally_ok("topic", "create", "old")
        wait_identities(c, [1, 2, 3])
        old_id = identity(c, 3)["cluster_id"]
        for i in (1, 2, 3):
            c.stop(i)
        saved = os.path.join(c.tmp, "old-node3")
        shutil.copytree(c.nodes[3].data, saved)
        for i in (1, 2, 3):
            shutil.rmtree(c.nodes[i].data)
            os.makedirs(c.nodes[i].data)
        c.start(timeout=60)
        wait_identities(c, [1, 2, 3])
        new_id = identity(c, 1)["cluster_id"]
        check(new_id != old_id, "a new cluster gets a new id")
        c.stop(3)
        shutil.rmtree(c.nodes[3].data)
        shutil.copytree(saved, c.nodes[3].data)
        c.restart(3)
        wait_until(lambda: f"belongs to cluster {old_id}" in log_of(c, 1) + log_of(c, 2), 60,
                   "nodes 1 or 2 to refuse node 3 of the old cluster")
        wait_until(lambda: f"belongs to cluster {new_id}" in log_of(c, 3), 60,
                   "node 3 to refuse the new cluster")
        c.tally_ok("topic", "create", "new", ids=[1, 2])
        r = c.tally("topic", "list", ids=[3])
        check(b"new" not in r.out, f"node 3 got nothing from the new cluster: {r!r}")


if __name__ == "__main__":
    run_tests([test_failed_first_start_writes_nothing, test_wrong_id_refused,
               test_raft_port_taken, test_peer_mismatch_reported,
               test_lost_disk_rejoins_not_as_itself,
               test_wiped_follower_replaced_under_a_running_leader, test_other_cluster_refused,
               test_two_memberships_reported])
