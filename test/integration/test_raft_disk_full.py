# test_raft_disk_full.py - a node's Raft log cannot be written (its raft/
# directory is a full tmpfs) while clients write, on the leader and on a
# follower.
#
# libraft 0.22's raft_uv retries a failed write every second until it
# succeeds and reports nothing to raft (docs/raft.md, "Failed writes"): the
# node stops storing entries but does not fail. tallyd must notice (the
# raft/ file system's free space, or a write pending for seconds), refuse
# writes with a clear error and hand leadership to another node, while the
# other two go on acknowledging; every write acknowledged must be in the
# log at the offset it named, no write refused may be there, and once space
# is freed the node must catch up to the same log without a restart.
# (On libraft 0.15 the same fault needed the node to exit at once: a leader
# there mixed up its clients' answers and then crashed.)
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_raft_disk_full.py
# Needs root (it mounts a tmpfs); exits 77 (skip) otherwise.

import base64
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SKIP, TALLY, Cluster, check, parse_records, run_tests,  # noqa: E402
                     wait_until)

# Small Raft segments so the tmpfs's few prepared segments are used up
# after a few hundred writes and raft_uv must allocate a new one.
# A 1 MiB reserve, so that node 1 can lead on its 4 MiB raft/ until the
# ballast fills it.
NODE_ARGS = ["--set", "raft_segment_bytes=256K", "--set", "group_commit_bytes=64K",
             "--set", "max_batch_bytes=64K", "--set", "disk_reserve_bytes=1M"]
WRITERS = 6
# The raft disk is filled by volume, not by time: ~30 KiB records use up
# the few prepared 256 KiB segments within some dozens of writes however
# slow the machine is. The writers stop 3 s after node 1 says it refuses
# writes, or after WRITES_PER_WRITER each (about 50 MiB in all: a node that
# never notices is caught then). WRITE_SECONDS only bounds the test.
WRITES_PER_WRITER = 300
WRITE_SECONDS = 300
VALUE_BYTES = 30000  # random text, new for every record: batches are lz4-compressed


def fill(path):
    """Write @path until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 512):
            try:
                while True:
                    f.write(b"\xba" * chunk)
            except OSError:
                pass


def write_one(brokers, value):
    """One `tally produce`: ('ok', offset), ('fail', msg) or ('unknown', msg)."""
    p = subprocess.run([TALLY, "-b", brokers, "--timeout", "5000", "produce", "ledger", value],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode(errors="replace").strip()
    if p.returncode == 0:
        return "ok", int(out.split()[0])
    if "may or may not" in err:
        return "unknown", err
    return "fail", err


def test_leader_raft_write_fails():
    """Node 1 leads with a full raft/ tmpfs under writes from 6 clients: it
    says it refuses writes and hands leadership away, and the others go on
    acknowledging; each acknowledged record is at its offset on every node,
    refused ones are nowhere, and node 1 catches up to the same log once
    space is freed, without a restart."""
    full_raft_disk(lead=True)


def test_follower_raft_write_fails():
    """The same with node 1 a follower (node 2 leads)."""
    full_raft_disk(lead=False)


def full_raft_disk(lead):
    c = Cluster(name="disk-full-" + ("leader" if lead else "follower"), extra_args=NODE_ARGS)
    raft_dir = os.path.join(c.nodes[1].data, "raft")
    os.makedirs(raft_dir)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", raft_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(p.returncode == 0, f"mount tmpfs: {p.stdout!r}")
    try:
        with c:
            run(c, raft_dir, lead)
    finally:
        subprocess.run(["umount", "-l", raft_dir])


def run(c, raft_dir, lead):
    leader = c.start()
    want = 1 if lead else 2
    if leader != want:
        c.tally_ok("--timeout", "10000", "member", "transfer", want)
        wait_until(lambda: c.leader() == want, 20, f"node {want} to lead")
    c.tally_ok("topic", "create", "ledger")
    ballast = os.path.join(raft_dir, "ballast")
    fill(ballast)
    results = []  # (value, kind, offset-or-msg)
    lock = threading.Lock()
    stop = time.monotonic() + WRITE_SECONDS
    node1 = c.nodes[1]
    refused_at = []

    def node1_refuses():
        with open(node1.log_path, "rb") as f:
            return b"refusing writes" in f.read()

    def writer(w):
        i = 0
        while time.monotonic() < stop and i < WRITES_PER_WRITER:
            if refused_at or (w == 0 and node1_refuses()):
                if not refused_at:
                    refused_at.append(time.monotonic())
                if time.monotonic() > refused_at[0] + 3:
                    return  # a few writes through the others, then done
            value = f"w{w}-{i:05d}-{base64.b64encode(os.urandom(VALUE_BYTES * 3 // 4)).decode()}"
            i += 1
            kind, what = write_one(c.brokers(), value)
            with lock:
                results.append((value, kind, what))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WRITE_SECONDS + 90)
    n_ok = sum(1 for r in results if r[1] == "ok")
    check(refused_at, f"node 1 never said it refuses writes after {len(results)} writes of "
          f"{VALUE_BYTES // 1024} KiB of random text on a full raft disk ({n_ok} acknowledged)")
    c.check_up()  # node 1 must not have exited
    check(c.leader() != 1, "node 1 still leads on a raft disk that cannot store")
    ok_after = sum(1 for r in results[-20:] if r[1] == "ok")
    check(ok_after > 0, f"the last writes were all refused: {str(results[-1][2])[-300:]}")

    # Space is freed: the ballast goes and the file system grows to hold
    # what node 1 missed (more than its 4 MiB).
    os.unlink(ballast)
    p = subprocess.run(["mount", "-o", "remount,size=128m", raft_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(p.returncode == 0, f"remount tmpfs: {p.stdout!r}")
    wait_until(lambda: b"accepting writes" in open(node1.log_path, "rb").read(), 30,
               "node 1 to accept writes again once space is freed")
    counts = {}
    for kind in ("ok", "fail", "unknown"):
        counts[kind] = sum(1 for r in results if r[1] == kind)
    logs = {}
    for i in c.nodes:
        recs = parse_records(c.read_node("ledger", i, counts["ok"], timeout=60))
        logs[i] = recs
    check(logs[1] == logs[2] == logs[3],
          f"nodes differ: {[len(v) for v in logs.values()]} records")
    at = {off: val.decode() for off, val in logs[1]}
    where = {}
    for off, val in logs[1]:
        where.setdefault(val.decode(), []).append(off)
    for value, kind, what in results:
        short = value[:12]
        check(len(where.get(value, [])) <= 1, f"{short} is in the log {len(where.get(value, []))} times")
        if kind == "ok":
            check(at.get(what) == value,
                  f"{short} was acknowledged at offset {what}, the log has "
                  f"{(at.get(what) or '(nothing)')[:12]} there and {short} at {where.get(value)}")
        elif kind == "fail":
            check(value not in where, f"{short} is in the log at {where.get(value)} although tally "
                  f"said the write failed: {what[-200:]}")
    print(f"#   writes: {counts['ok']} acknowledged, {counts['fail']} refused, "
          f"{counts['unknown']} unknown outcome; node 1 refused writes, then caught up to the "
          f"same log")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: needs root to mount a tmpfs")
        sys.exit(SKIP)
    run_tests([test_leader_raft_write_fails, test_follower_raft_write_fails])
