# test_tls_backfill.py - a node's own connections to the other members'
# client ports speak TLS when the cluster does: backfill (a node that
# installed a snapshot fetches the history before it from a peer) and the
# clock check (a follower asks the leader for its clock). Before, both
# dialled in plaintext, so on a TLS cluster backfill never succeeded (the
# node never held its whole history again) and every clock check was
# refused with "does not speak TLS". Also with auth = required and
# authorize = acl: a member's certificate may read every topic for
# backfill, an ordinary user gains nothing.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_tls_backfill.py [NAME...]

import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TestFailure, check, run_tests, wait_until  # noqa: E402
from test_auth import AuthCluster, ok  # noqa: E402
from test_tls import TlsCluster, log_of, make_certs  # noqa: E402

# Raft snapshots every 16 entries, 8 kept behind: a short absence needs a
# snapshot install.
SETTINGS = ["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=8"]
FMT = "%o\\t%t\\t%k\\t%v\\n"
PLAIN = "does not speak TLS"


def dump(c, topic, node_id):
    r = c.tally("consume", topic, "--node", c.nodes[node_id].client, "--format", FMT)
    check(r.rc == 0, f"read {topic} from node {node_id}: {r!r}")
    return r.out


def write(c, topic, rounds, tag, ids=None):
    for i in range(rounds):
        lines = "".join(f"{tag}-{i}-{j}\n" for j in range(20))
        ok(c.tally("produce", topic, input=lines.encode(), ids=ids), "produce")


def no_plaintext_dials(c):
    for i in c.nodes:
        check(PLAIN not in log_of(c, i),
              f"node {i} was dialled in plaintext by a member: "
              + "; ".join(l for l in log_of(c, i).splitlines() if PLAIN in l)[:600])


def backfill_case(c):
    """Node 3 misses enough entries to need a snapshot, then backfills the
    topic from a peer over TLS and serves every record by itself."""
    c.start()
    ok(c.tally("topic", "create", "events"), "topic create")
    write(c, "events", 5, "a")
    c.kill(3)
    write(c, "events", 60, "b", ids=[1, 2])
    c.restart(3)
    wait_until(lambda: "installing snapshot" in log_of(c, 3), 60,
               "node 3 to install a snapshot")
    wait_until(lambda: re.search(r"topic events: backfilled offsets .*whole history",
                                 log_of(c, 3)) is not None, 60,
               "node 3 to backfill topic events over TLS")
    leader = c.leader()
    want, got = dump(c, "events", leader), dump(c, "events", 3)
    check(len(want.splitlines()) == 65 * 20, f"the leader serves {len(want.splitlines())}")
    check(got == want, f"node 3 serves {len(got.splitlines())} records, the leader "
                       f"{len(want.splitlines())}")
    check(re.search(r"backfill.*trying another node", log_of(c, 3)) is None,
          "a backfill attempt failed: " + "; ".join(
              l for l in log_of(c, 3).splitlines() if "trying another node" in l)[:600])
    no_plaintext_dials(c)


def test_tls_backfill():
    """On a TLS cluster a follower that installed a snapshot gets the
    history before it back from a peer over TLS."""
    tmp = tempfile.mkdtemp(prefix="tally-tlsbf-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        with TlsCluster(certs, name="tls-backfill", extra_args=SETTINGS) as c:
            backfill_case(c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_backfill_acl():
    """The same with auth = required and authorize = acl and no ACL at
    all: the peer authenticates the backfilling node by its certificate
    (node3) and lets it read the topic; a user without an ACL is still
    refused."""
    tmp = tempfile.mkdtemp(prefix="tally-tlsbf-acl-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        with AuthCluster(certs, name="tls-backfill-acl") as c:
            c.extra_args += SETTINGS + ["--set", "authorize=acl", "--set", "super_users=client"]
            backfill_case(c)
            ok(c.as_admin("user", "add", "node1", input=b"pw-node1-xyz\n"), "user add")
            # A user named like a node is no node: no right comes with the
            # name. (Retried while node 2 has not applied the new user yet.)
            def refused():
                r = c.as_user("node1", "pw-node1-xyz", "--timeout", "5000", "consume", "events",
                              "--node", c.nodes[2].client)
                if r.rc == 0 or "wrong user name or password" not in r.errtext:
                    check(r.rc != 0 and "not authorized" in r.errtext, f"user node1 read: {r!r}")
                    return True
                return False
            wait_until(refused, 20, "node 2 to know user node1")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_steady_no_plaintext():
    """A steady three-node TLS cluster: no member dials another's client
    port in plaintext (the clock check asks the leader every 2 s)."""
    tmp = tempfile.mkdtemp(prefix="tally-tlsclk-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        with TlsCluster(certs, name="tls-clock") as c:
            c.start()
            ok(c.tally("topic", "create", "t"), "topic create")
            time.sleep(7)
            no_plaintext_dials(c)
            for i in c.nodes:
                check("clock check" not in log_of(c, i),
                      f"node {i}: clock check failed: {log_of(c, i)[-600:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_tls_backfill, test_tls_backfill_acl, test_tls_steady_no_plaintext])
