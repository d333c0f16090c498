# test_snapshot_overlap.py - a follower on a slow disk gets the leader's
# snapshot while it is writing its own.
#
# libraft 0.22.1 parks an InstallSnapshot that arrives while the node takes
# a snapshot, and when the take completes it dereferences NULL instead of
# starting the parked install: the follower dies by SIGSEGV (the fault
# suite saw it on a node whose disk was full). tallyd holds such an install
# back until the take is written (src/repl/snapguard.c, docs/raft.md).
#
# Node 3 writes its Raft snapshot files slowly (test/lib/slowfsync.c: each
# fsync of one waits 3 s of the time the process runs, and a flag file
# exists meanwhile). libraft writes a snapshot into an unnamed O_TMPFILE
# file in raft/ (/proc names it raft/#INODE) and links it in once synced,
# so "raft/#" picks those syncs out and no other. Each round waits for the flag, so that
# node 3 is in the middle of writing its own snapshot; pauses it (SIGSTOP),
# which keeps the rest of the wait for later; lets the leader write more
# than its trailing log keeps; and resumes it: the leader then sends its
# snapshot while node 3's take is still in flight, seconds from done. Node 3
# must hold the install, stay up, and once the writes stop hold every
# record, as the others do.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_snapshot_overlap.py

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, TALLY, Cluster, check, parse_records, run_tests, wait_until  # noqa: E402

SHIM = os.path.join(BUILD_DIR, "test", "lib", ".libs", "libslowfsync.so")
HELD = b"holding the leader's snapshot"
# Snapshots every 32 entries keeping 8: the slow node soon needs installs.
NODE_ARGS = ["--set", "snapshot_threshold=32", "--set", "snapshot_trailing=8"]
BATCH = 60
ROUNDS = 5


def node_log(c, i):
    with open(c.nodes[i].log_path, "rb") as f:
        return f.read()


def test_install_during_take():
    """The slow follower holds the leader's snapshot while it takes its
    own, stays up, and ends with every record."""
    check(os.path.exists(SHIM), f"{SHIM} is not built")
    with Cluster(name="snapovl", extra_args=NODE_ARGS) as c:
        flag = os.path.join(c.tmp, "node3-writing-snapshot")
        c.node_env[3] = {"LD_PRELOAD": SHIM, "TALLY_SLOW_FSYNC_MS": "3000",
                         "TALLY_SLOW_FSYNC_MATCH": "raft/#",
                         "TALLY_SLOW_FSYNC_FLAG": flag}
        c.start(timeout=60)
        if c.leader() == 3:
            c.tally_ok("member", "transfer", "1")
            wait_until(lambda: c.leader() in (1, 2), 30, "node 1 or 2 to lead")
        c.tally_ok("topic", "create", "t", ids=[1, 2])
        sent = 0

        def produce():
            """BATCH records, a line at a time with --linger-ms 0: about
            one Raft entry each, so the leader's log moves past its
            trailing entries quickly."""
            nonlocal sent
            p = subprocess.Popen([TALLY, "-b", c.brokers([1, 2]), "produce", "t",
                                  "--linger-ms", "0"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for i in range(BATCH):
                p.stdin.write(f"v{sent + i}-{'x' * 100}\n".encode())
                p.stdin.flush()
                time.sleep(0.002)
            _, err = p.communicate(timeout=60)
            check(p.returncode == 0, f"produce: exit {p.returncode}: {err!r}")
            sent += BATCH

        for _ in range(ROUNDS):
            # node 3 applies these and, within a few batches, takes a snapshot
            deadline = time.monotonic() + 60
            while not os.path.exists(flag) and time.monotonic() < deadline:
                produce()
            if not os.path.exists(flag):
                continue
            c.pause(3)
            produce()  # past the leader's trailing log
            produce()
            c.resume(3)
            wait_until(lambda: node_log(c, 3).count(HELD) >= 1 or not os.path.exists(flag),
                       30, "node 3 to hold the install or finish its take")
            c.check_up()
            if node_log(c, 3).count(HELD) >= 1:
                break
        held = node_log(c, 3).count(HELD)
        print(f"# {sent} records written; node 3 held {held} snapshot installs")
        check(held >= 1, "node 3 never got an install while taking a snapshot: "
                         "the test did not exercise the overlap")
        c.check_up()
        want = [(i, f"v{i}-{'x' * 100}".encode()) for i in range(sent)]
        for i in (1, 2, 3):
            got = parse_records(c.read_node("t", i, sent, timeout=120))
            check(got == want,
                  f"node {i} holds {len(got)} records, not the {sent} written")
        c.check_up()


if __name__ == "__main__":
    run_tests([test_install_during_take], per_test_timeout=450)
