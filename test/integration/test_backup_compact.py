# test_backup_compact.py - a backup of a `compact` topic while the copied
# node compacts and takes snapshots (issue 30): the backup is paused
# (SIGSTOP) right after its cut, every key of the topic is rewritten and
# many more are written, snapshots are taken and compaction runs on the
# cluster; the backup, resumed, must still hold the state of its cut,
# every key with its value at the cut, and `restore --verify` must find it
# intact and matching its manifest.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_backup_compact.py

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, run_tally, run_tests, wait_until  # noqa: E402
from fake_server import xxh3  # noqa: E402
from test_backup import dump_records, manifest, paused_backup  # noqa: E402

SETTINGS = ["--set", "compaction_interval_ms=200", "--set", "snapshot_threshold=100",
            "--set", "snapshot_trailing=20", "--set", "delete_retention_ms=0",
            "--set", "min_compaction_lag_ms=0"]
KEYS = 2000


def keyed(c, topic, prefix, first, n, size=200):
    pad = "x" * size
    lines = "".join(f"k{i}\t{prefix}-{i}-{pad}\n" for i in range(first, first + n))
    c.tally_ok("produce", topic, "--keyed", input=lines.encode(), timeout=120)


def log_text(c, node_id):
    with open(c.nodes[node_id].log_path, "rb") as f:
        return f.read().decode(errors="replace")


def test_backup_paused_while_compacting():
    """Backup from a follower paused at its cut while every key of a
    compact topic is rewritten, 1,000 more keys and a few hundred small
    entries are written (Raft snapshots, key checkpoints) and the cluster
    compacts: the restored topic holds every key of the cut, with the
    value it had at the cut, and nothing after it."""
    with Cluster(n=3, name="backup-compact", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "big")  # copied first: the cut is taken before cc
        c.tally_ok("bench", "produce", "big", "--count", "20000", "--size", "1000",
                   "--inflight", "2000", timeout=300)
        c.tally_ok("topic", "create", "cc", "--policy", "compact", "--segment-bytes", "16384")
        c.tally_ok("topic", "create", "tick")
        keyed(c, "cc", "cut", 0, KEYS)
        leader = c.wait_leader()
        follower = next(i for i in c.nodes if i != leader)
        fclient = c.nodes[follower].client
        c.read_node("cc", follower, KEYS)  # the follower has applied them all
        bdir = os.path.join(c.tmp, "b")
        p, first = paused_backup(bdir, fclient)  # still connected, copying 'big'
        try:
            check(b"at applied index" in first and b"3 topics" in first, f"cut: {first!r}")
            # After the cut: every key again, 1,000 new ones, and small
            # entries enough for several snapshots (a key checkpoint each).
            keyed(c, "cc", "after", 0, KEYS)
            keyed(c, "cc", "new", KEYS, 1000)
            c.tally_ok("bench", "produce", "tick", "--count", "400", "--size", "10", timeout=300)

            # The follower would compact cc now; with the backup's pin it
            # says it waits instead. Either line ends the wait.
            def compaction_due():
                c.check_up()
                t = log_text(c, follower)
                return ("compact: topic cc" in t or "compaction waits: a backup" in t) or None
            wait_until(compaction_due, 90, f"node {follower} to compact cc or say it waits",
                       interval=0.5)
            # The leader, which no backup pins, compacts cc meanwhile.
            wait_until(lambda: "compact: topic cc" in log_text(c, leader), 90,
                       f"node {leader} to compact cc", interval=0.5)
            t = log_text(c, follower)
            print(f"# follower {follower}: "
                  f"{'compacted cc during the backup' if 'compact: topic cc' in t else 'compaction waited for the backup'}",
                  flush=True)
        finally:
            os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=300)
        check(p.returncode == 0, f"backup exit {p.returncode}: {out!r} {err!r}")
        m = manifest(bdir)
        check(m["topics"]["cc"]["start"] == 0 and m["topics"]["cc"]["next"] == KEYS,
              f"cc in the manifest: {m['topics'].get('cc')}")
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 0 and b"intact" in r.out, f"restore --verify: {r!r}")
        ddir = os.path.join(c.tmp, "d")
        r = run_tally(["restore", "--from", bdir, "--data-dir", ddir])
        check(r.rc == 0, f"restore: {r!r}")
        got = {}
        for line in dump_records(ddir, "cc"):
            mk = re.search(rb"key=(\S+)", line)
            mv = re.search(rb"value=(\S+)", line)
            if mk and mv:
                got[mk.group(1).decode().strip('"')] = mv.group(1).decode().strip('"')
        missing = [f"k{i}" for i in range(KEYS) if f"k{i}" not in got]
        check(not missing, f"{len(missing)} of {KEYS} keys of the cut are missing from the "
                           f"restored backup (first: {missing[:3]})")
        wrong = [k for k, v in got.items() if not v.startswith(f"cut-{k[1:]}-")]
        check(not wrong, f"{len(wrong)} keys hold a value from after the cut: {wrong[:3]}")
        # restore --verify checks each topic's records against its manifest
        # range, not only the files' checksums: a manifest (its checksum
        # recomputed) that claims more of cc than the files hold is refused.
        with open(os.path.join(bdir, "MANIFEST"), "rb") as f:
            text = f.read().decode()
        body = text[:text.rindex("checksum ")]
        body = re.sub(r"^(topic cc (?:\S+ ){5})%d$" % KEYS, lambda mt: mt.group(1) + str(KEYS + 5),
                      body, flags=re.M)
        check(f" {KEYS + 5}\n" in body, "could not edit the manifest")
        with open(os.path.join(bdir, "MANIFEST"), "wb") as f:
            f.write((body + "checksum %016x\n" % xxh3(body.encode())).encode())
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 1 and b"ends at offset %d, the manifest says %d" % (KEYS, KEYS + 5) in r.err,
              f"restore --verify of a backup shorter than its manifest: {r!r}")
        # Once the backup is gone, the follower compacts cc too.
        wait_until(lambda: "compact: topic cc" in log_text(c, follower), 90,
                   f"node {follower} to compact cc after the backup", interval=0.5)


if __name__ == "__main__":
    run_tests([test_backup_paused_while_compacting])
