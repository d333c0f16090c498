# test_raft_disk_full.py - a node's Raft log write fails (its raft/
# directory is a full tmpfs) while clients write, on the leader and on a
# follower.
#
# canonical/raft 0.15 answers only the first request of a failed leader
# write, truncates its in-memory log and stays leader: the other requests
# stay queued under indexes that new proposals reuse and would be given
# those entries' results (the fault suite caught two conditional appends
# swapping answers), and going on crashed libraft. A follower keeps the
# entries it failed to write in memory and later counts them as stored.
# tallyd must exit 1 at once (its clients see an unknown outcome); every
# write acknowledged must be in the log at the offset it named, no write
# refused may be there, and the node must come back with the same log once
# space is freed.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_raft_disk_full.py
# Needs root (it mounts a tmpfs); exits 77 (skip) otherwise.

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
NODE_ARGS = ["--set", "raft_segment_bytes=256K", "--set", "group_commit_bytes=64K",
             "--set", "max_batch_bytes=64K"]
WRITERS = 6
WRITE_SECONDS = 40
VALUE_PAD = "x" * 900  # ~1 KiB records fill segments faster


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
    exits 1 saying its raft log write failed; each acknowledged record is at
    its offset on every node, refused ones are nowhere, and node 1 serves
    the same log after a restart with space freed."""
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
    node1_exit_at = []

    def writer(w):
        i = 0
        while time.monotonic() < stop:
            if node1.proc.poll() is not None:
                if not node1_exit_at:
                    node1_exit_at.append(time.monotonic())
                if time.monotonic() > node1_exit_at[0] + 2:
                    return  # a few writes through the new leader, then done
            value = f"w{w}-{i:05d}-{VALUE_PAD}"
            i += 1
            kind, what = write_one(c.brokers(), value)
            with lock:
                results.append((value, kind, what))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WRITE_SECONDS + 90)
    node1.expected_up = False
    rc = node1.proc.poll()
    with open(node1.log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    n_ok = sum(1 for r in results if r[1] == "ok")
    check(rc is not None, f"node 1 still runs after {WRITE_SECONDS} s of writes on a full raft "
          f"disk ({n_ok} acknowledged): its raft log never failed, or it failed and it kept going")
    check(rc == 1, f"node 1 exited with {rc}, want 1")
    check("writing the raft log failed" in log and "exiting now" in log,
          "node 1's log does not say its raft log write failed and it exits")

    os.unlink(ballast)
    c.restart(1)
    c.wait_leader()
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
        check(len(where.get(value, [])) <= 1, f"{short} is in the log {len(where[value])} times")
        if kind == "ok":
            check(at.get(what) == value,
                  f"{short} was acknowledged at offset {what}, the log has "
                  f"{(at.get(what) or '(nothing)')[:12]} there and {short} at {where.get(value)}")
        elif kind == "fail":
            check(value not in where, f"{short} is in the log at {where[value]} although tally "
                  f"said the write failed: {what[-200:]}")
    print(f"#   writes: {counts['ok']} acknowledged, {counts['fail']} refused, "
          f"{counts['unknown']} unknown outcome; node 1 exited 1 and came back with the same log")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: needs root to mount a tmpfs")
        sys.exit(SKIP)
    run_tests([test_leader_raft_write_fails, test_follower_raft_write_fails])
