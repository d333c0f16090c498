# test_backup.py - tally backup and tally restore on real clusters: an online
# backup of a loaded three-node cluster while a producer keeps writing, a
# restore into a fresh three-node cluster that must hold exactly the data of
# the cut (offsets, keys, values, headers, timestamps, group positions, key
# versions) and take new writes at the right offsets; and the failures: a
# damaged or unfinished backup is refused naming the file, bad targets and
# unreachable nodes fail cleanly.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_backup.py

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, TALLYD, Cluster, TestFailure, check, free_ports, run_tally,  # noqa: E402
                     run_tests, wait_until)
from fake_server import xxh3, frame, s_, blob_, Reader  # noqa: E402

PRODUCE, FETCH = 6, 7
HEADER = struct.Struct("<IHBBHHI")


# -- raw protocol: a batch with record headers (the CLI cannot write them) --

def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def svarint(n):
    return uvarint((n << 1) ^ (n >> 63) if n >= 0 else ((-n) << 1) - 1)


def make_batch(records):
    """records: list of (key or None, value, [(name, value), ...])."""
    payload = b""
    keyed = False
    for i, (k, v, hdrs) in enumerate(records):
        body = uvarint(i) + uvarint(0)
        if k is None:
            body += svarint(-1)
        else:
            keyed = True
            body += svarint(len(k)) + k
        body += svarint(len(v)) + v + uvarint(len(hdrs))
        for hn, hv in hdrs:
            body += uvarint(len(hn)) + hn + uvarint(len(hv)) + hv
        payload += uvarint(len(body)) + body
    n = len(records)
    head = b"TLYB" + bytes([1, 0x02 if keyed else 0, 0, 0]) + struct.pack(
        "<IIQqqQQQIIQ", 88 + len(payload), n, 0, 0, 0, 0, 0, 0, len(payload), n - 1,
        xxh3(payload))
    return head + struct.pack("<Q", xxh3(head)) + payload


def call(addr, type_, body, timeout=10):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(frame(type_, 0, 1, body))
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack("<I", data[:4])[0]:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
    _, _, _, flags, _, _, _ = HEADER.unpack(data[:16])
    return flags, data[16:]


def produce_raw(addr, topic, batch):
    body = s_(topic) + struct.pack("<IQI", 10000, 2**64 - 1, 0) + blob_(batch)
    flags, resp = call(addr, PRODUCE, body)
    check(flags & 2 == 0, f"raw produce failed: {resp!r}")
    return struct.unpack("<QIQ", resp[:20])


# -- helpers ------------------------------------------------------------------

def read_all(c, topic, ids=None, node=None):
    """Every record of @topic as 'offset key value timestamp' lines."""
    args = ["consume", topic, "--from", "beginning", "--format", "%o\\t%k\\t%v\\t%t\\n"]
    if node is not None:
        args += ["--node", node]
    return c.tally_ok(*args, ids=ids).out.splitlines()


def dump_records(data_dir, topic):
    """Record lines of `tally log dump` of one topic in a data dir, without
    the batch lines (which show the raft index, re-stamped by restore)."""
    r = run_tally(["log", "dump", os.path.join(data_dir, "topics", topic)])
    check(r.rc == 0, f"log dump failed: {r!r}")
    return [ln.strip() for ln in r.out.splitlines() if ln.strip().startswith(b"offset=")]


def manifest(bdir):
    m = {"topics": {}, "groups": [], "files": []}
    with open(os.path.join(bdir, "MANIFEST"), "rb") as f:
        for line in f.read().decode().splitlines():
            w = line.split(" ")
            if w[0] == "topic":
                m["topics"][w[1]] = {"policy": int(w[2]), "retention_ms": int(w[3]),
                                     "retention_bytes": int(w[4]), "segment_bytes": int(w[5]),
                                     "start": int(w[6]), "next": int(w[7])}
            elif w[0] == "group":
                m["groups"].append((w[1], w[2], int(w[3])))
            elif w[0] == "file":
                m["files"].append(w[1])
            elif w[0] in ("applied_index", "node"):
                m[w[0]] = int(w[1])
    return m


class Writer:
    """A producer that keeps writing to 'live' and 'orders' until stopped."""

    def __init__(self, c):
        self.c = c
        self.stop = threading.Event()
        self.count = 0
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            lines = "".join(f"w{self.count + i}\n" for i in range(20)).encode()
            for topic in ("live", "orders"):
                r = self.c.tally("produce", topic, input=lines, timeout=30)
                if r.rc != 0:
                    self.errors.append(r)
                    return
            self.count += 20

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(timeout=60)
        return False


class DstCluster(Cluster):
    """The restored cluster: nodes 1-3 bootstrap it; node 4 joins later
    (restored from the same backup, no --bootstrap). Clients are pointed at
    the running nodes only."""

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


def load(c):
    """Topics with different settings, keyed records, headers, groups."""
    c.tally_ok("topic", "create", "orders")
    c.tally_ok("topic", "create", "users", "--policy", "delete", "--retention-ms", "86400000",
               "--segment-bytes", "65536")
    c.tally_ok("topic", "create", "empty")
    c.tally_ok("topic", "create", "live")
    # Small segments (test_backup_retention_race restores a topic whose
    # start retention moved).
    c.tally_ok("topic", "create", "trim", "--policy", "delete", "--segment-bytes", "4096",
               "--retention-bytes", "8192")
    for b in range(10):  # one batch (one 4 KiB segment, incompressible) per call
        c.tally_ok("produce", "trim", input="".join(f"t{b * 40 + i:05d}-{os.urandom(50).hex()}\n"
                                                    for i in range(40)).encode())
    lines = "".join(f"k{i % 7}\tvalue-{i}-{'x' * (i % 50)}\n" for i in range(3000))
    c.tally_ok("produce", "orders", "--keyed", input=lines.encode(), timeout=120)
    c.tally_ok("produce", "users", input="".join(f"u{i}\n" for i in range(2000)).encode())
    leader = c.nodes[c.wait_leader()].client
    base, count, _ = produce_raw(leader, "orders", make_batch([
        (b"hk", b"with-headers", [(b"trace", b"abc"), (b"bin", bytes(range(5)))]),
        (None, b"no-key", [(b"h", b"")]),
    ]))
    check(count == 2, "raw batch not written whole")
    # Groups: g1 read 100 records of orders; "g 2" (a name with a space) 5 of users.
    c.tally_ok("consume", "orders", "--group", "g1", "-n", "100")
    c.tally_ok("consume", "users", "--group", "g 2", "-n", "5")


def test_backup_restore_roundtrip():
    """Back up a loaded cluster from a follower while a producer writes;
    restore three new nodes from it; the new cluster holds exactly the
    records of the cut and takes new writes at the next offsets."""
    with Cluster(n=3, name="backup-src") as src:
        src.start()
        load(src)
        leader = src.wait_leader()
        follower = next(i for i in src.nodes if i != leader)
        fclient = src.nodes[follower].client
        bdir = os.path.join(src.tmp, "backup")
        with Writer(src) as w:
            wait_until(lambda: w.count >= 40 or w.errors, 60, "the writer to get going")
            r = src.tally("backup", "--to", bdir, "--node", src.nodes[follower].client,
                          timeout=120)
            before = w.count
            wait_until(lambda: w.count >= before + 40 or w.errors, 60,
                       "the writer to go on after the backup")
        check(not w.errors, f"writer failed: {w.errors[:1]!r}")
        check(r.rc == 0, f"backup failed: {r!r}")
        print(f"# backup: {r.text.strip()} ({r.secs:.1f}s)")
        check(b"at index" in r.out and b"5 topics" in r.out, f"backup summary: {r!r}")
        m = manifest(bdir)
        check(m["node"] == follower, f"cut node {m.get('node')} != {follower}")
        check(set(m["topics"]) == {"orders", "users", "empty", "live", "trim"}, f"topics: {m['topics']}")
        check(m["topics"]["users"]["policy"] == 1 and
              m["topics"]["users"]["retention_ms"] == 86400000 and
              m["topics"]["users"]["segment_bytes"] == 65536, f"users config: {m['topics']}")
        check(m["topics"]["empty"]["next"] == 0, "empty topic has records?")
        check(sorted(g[:2] for g in m["groups"]) == [("g%202", "users"), ("g1", "orders")],
              f"groups: {m['groups']}")
        check(dict(((g[0], g[1]), g[2]) for g in m["groups"]) ==
              {("g1", "orders"): 100, ("g%202", "users"): 5}, f"group offsets: {m['groups']}")
        check(any(f.endswith(".seg") for f in m["files"]), "no segment files listed")
        # The writer went on: the cut is strictly inside the live topic.
        nxt = {t: v["next"] for t, v in m["topics"].items()}
        start = {t: v["start"] for t, v in m["topics"].items()}
        # Retention (every 30 s) may have trimmed 'trim' on the follower.
        check(nxt["trim"] == 400 and all(v == 0 for t, v in start.items() if t != "trim"),
              f"cut starts {start}")
        check(nxt["orders"] >= 3002 and nxt["live"] >= 40, f"cut offsets {nxt}")
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 0 and b"intact" in r.out, f"restore --verify: {r!r}")

        # The source's records below the cut, read now (they never change).
        truth = {}
        for t in nxt:
            lines = read_all(src, t, node=fclient)
            truth[t] = [ln for ln in lines if int(ln.split(b"\t")[0]) < nxt[t]]
            check(len(truth[t]) == nxt[t] - start[t] and
                  int(truth[t][0].split(b"\t")[0]) == start[t] if truth[t] else nxt[t] == 0,
                  f"source {t}: {len(truth[t])} records in [{start[t]}, {nxt[t]})")
        live_total = len(read_all(src, "live"))
        check(live_total > nxt["live"], "the writer wrote nothing after the cut")
        src_dump = {t: [ln for ln in dump_records(src.nodes[follower].data, t)
                        if int(ln.split()[0][7:]) < nxt[t]] for t in ("orders", "users")}
        check(any(b"trace" in ln for ln in src_dump["orders"]), "headers not in the dump")
        k3_version = sum(1 for ln in truth["orders"] if ln.split(b"\t")[1] == b"k3")

        with DstCluster(n=4, name="backup-dst") as dst:
            for i, n in dst.nodes.items():
                r = run_tally(["restore", "--from", bdir, "--data-dir", n.data])
                check(r.rc == 0, f"restore node {i}: {r!r}")
                check(b"restored 5 topics" in r.out and b"2 group positions" in r.out,
                      f"restore summary: {r!r}")
            for i in (1, 2, 3):
                dst.spawn(i)
            dst.wait_leader()
            for t in nxt:
                got = read_all(dst, t)
                check(got == truth[t], f"restored {t} differs: {len(got)} records vs "
                                       f"{len(truth[t])}; first diff "
                                       f"{next(((a, b) for a, b in zip(got, truth[t]) if a != b), None)}")
            # Every node holds the same records, headers included.
            for i, n in ((i, dst.nodes[i]) for i in (1, 2, 3)):
                for t in ("orders", "users"):
                    check(dump_records(n.data, t) == src_dump[t],
                          f"node {i} {t}: records differ from the source (headers?)")
            st = dst.status()
            topics = {t["name"]: t for t in st["topics"]}
            for t in nxt:
                check(topics[t]["next_offset"] == nxt[t] and
                      topics[t]["start_offset"] == start[t], f"{t} offsets {topics[t]}")
            check(topics["users"]["policy"] == "delete", f"users policy {topics['users']}")
            # New writes land at the cut's next offsets.
            for t in nxt:
                r = dst.tally_ok("produce", t, f"new-{t}")
                check(int(r.out.split()[0]) == nxt[t], f"{t}: new record at {r.text}, "
                                                       f"want {nxt[t]}")
            # Groups resume where they were.
            r = dst.tally_ok("consume", "orders", "--group", "g1", "-n", "1")
            check(r.out.split(b"\t")[0] == b"100", f"g1 resumed at {r!r}")
            r = dst.tally_ok("consume", "users", "--group", "g 2", "-n", "1")
            check(r.out.split(b"\t")[0] == b"5", f"'g 2' resumed at {r!r}")
            # The key index came along: k3's version is its count in the cut.
            r = dst.tally("produce", "orders", "-k", "k3", "--expect-version",
                          str(k3_version + 1), "bad")
            check(r.rc == 1 and str(k3_version).encode() in r.err,
                  f"wrong version accepted or no actual value: {r!r}")
            r = dst.tally_ok("produce", "orders", "-k", "k3", "--expect-version",
                             str(k3_version), "good")
            check(int(r.out.split()[0]) == nxt["orders"] + 1, f"conditional append at {r!r}")
            # A crash replays the new cluster's Raft log on top of the
            # restored state: nothing doubled, nothing lost.
            victim = next(i for i in dst.nodes if i != dst.wait_leader())
            dst.kill(victim)
            dst.tally_ok("produce", "live", "while-down")
            dst.restart(victim)
            want = truth["live"]
            got = wait_until(lambda: (lambda g: g if len(g) == len(want) + 2 else None)(
                read_all(dst, "live", node=dst.nodes[victim].client)), 30,
                "the restarted node to catch up")
            check(got[:len(want)] == want and got[len(want)].split(b"\t")[2] == b"new-live"
                  and got[-1].split(b"\t")[2] == b"while-down", f"after restart: {got[-3:]}")
            # A node added later, restored from the same backup, gets the
            # new cluster's Raft log on top and holds everything.
            dst.spawn(4)
            n4 = dst.nodes[4]
            dst.tally_ok("member", "add", "4", f"{n4.client}/{n4.raft}", timeout=90)
            full = read_all(dst, "orders")
            got4 = wait_until(lambda: (lambda g: g if len(g) == len(full) else None)(
                read_all(dst, "orders", node=n4.client)), 30, "node 4 to catch up")
            check(got4 == full, "node 4 differs from the cluster")
            check(dump_records(n4.data, "orders")[:len(src_dump["orders"])] == src_dump["orders"],
                  "node 4's records differ from the source")


def test_backup_failures():
    """A damaged backup is refused naming the file, an unfinished one is
    not taken for a backup, and bad targets fail with a clear message."""
    with Cluster(n=3, name="backup-err") as c:
        c.start()
        c.tally_ok("topic", "create", "t")
        c.tally_ok("produce", "t", input=b"".join(b"r%d\n" % i for i in range(500)))
        bdir = os.path.join(c.tmp, "b")
        # From the leader: a follower may not have applied the last write yet
        # (a backup holds what its node applied).
        r = c.tally("backup", "--to", bdir, "--node", c.nodes[c.wait_leader()].client)
        check(r.rc == 0 and b"500 offsets" in r.out, f"backup: {r!r}")
        # Not into a non-empty directory.
        r = c.tally("backup", "--to", bdir)
        check(r.rc == 1 and b"not empty" in r.err, f"backup into a used dir: {r!r}")
        # An unreachable node.
        port = free_ports(1)[0]
        r = c.tally("backup", "--to", os.path.join(c.tmp, "b2"), "--node", f"127.0.0.1:{port}")
        check(r.rc == 1 and b"no node answered" in r.err and
              not os.path.exists(os.path.join(c.tmp, "b2")), f"unreachable node: {r!r}")
        # Usage.
        for args in (["backup"], ["backup", "--to", "x", "--node", "a:1,b:2"], ["restore"],
                     ["restore", "--from", bdir], ["backup", "--bogus"]):
            r = run_tally(args)
            check(r.rc == 2, f"{args}: want exit 2, got {r!r}")
        # Restore into a non-empty data directory.
        busy = os.path.join(c.tmp, "busy")
        os.makedirs(busy)
        open(os.path.join(busy, "x"), "w").close()
        r = run_tally(["restore", "--from", bdir, "--data-dir", busy])
        check(r.rc == 1 and b"not empty" in r.err, f"restore into a used dir: {r!r}")

        m = manifest(bdir)
        seg = next(f for f in m["files"] if f.endswith(".seg"))
        path = os.path.join(bdir, seg)
        with open(path, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0xFF]))
        target = os.path.join(c.tmp, "restored")
        r = run_tally(["restore", "--from", bdir, "--data-dir", target])
        check(r.rc == 1 and seg.encode() in r.err and b"checksum" in r.err,
              f"corrupt segment not refused by name: {r!r}")
        check(not os.path.exists(target) and not os.path.exists(target + ".restoring"),
              "a refused restore left a data directory")
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 1 and seg.encode() in r.err, f"--verify on a corrupt backup: {r!r}")
        with open(path, "r+b") as f:
            f.seek(200)
            f.write(b)
        # A file that is not in the manifest.
        stray = os.path.join(os.path.dirname(path), "99999999999999999999.seg")
        open(stray, "wb").close()
        r = run_tally(["restore", "--from", bdir, "--data-dir", target])
        check(r.rc == 1 and b"not in the manifest" in r.err and b"99999999999999999999.seg"
              in r.err, f"stray file: {r!r}")
        os.unlink(stray)
        # A changed manifest.
        mpath = os.path.join(bdir, "MANIFEST")
        with open(mpath, "rb") as f:
            orig = f.read()
        with open(mpath, "wb") as f:
            f.write(orig.replace(b"topic t 0", b"topic t 1"))
        r = run_tally(["restore", "--from", bdir, "--data-dir", target])
        check(r.rc == 1 and b"MANIFEST" in r.err and b"checksum" in r.err,
              f"tampered manifest: {r!r}")
        with open(mpath, "wb") as f:
            f.write(orig)
        # Manifests with a valid checksum but bad content: each refused.
        body = orig[:orig.rindex(b"checksum ")]

        def signed(text):
            return text + b"checksum %016x\n" % xxh3(text)
        bad = {
            b"backup format version 2": body.replace(b"tally-backup 1", b"tally-backup 2"),
            b"line 6 malformed": body.replace(b"topic t 0", b"topic t 9"),
            b"malformed": body.replace(b"file topics/t/", b"file topics/../t/", 1),
            b"does not list": body.replace(b"end\n", b"end\n").replace(
                b"file ", b"group g nosuch 1\nfile ", 1),
            b"no 'end' line": body.replace(b"end\n", b""),
        }
        for want, text in bad.items():
            with open(mpath, "wb") as f:
                f.write(signed(text))
            r = run_tally(["restore", "--from", bdir, "--verify"])
            check(r.rc == 1 and want in r.err, f"manifest with {want!r}: {r!r}")
        with open(mpath, "wb") as f:
            f.write(orig[:len(orig) // 2])  # cut short
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 1 and b"no checksum line" in r.err, f"cut manifest: {r!r}")
        with open(mpath, "wb") as f:
            f.write(orig)
        # An unfinished backup (no MANIFEST) is not a backup.
        os.rename(mpath, mpath + ".away")
        r = run_tally(["restore", "--from", bdir, "--data-dir", target])
        check(r.rc == 1 and b"no MANIFEST" in r.err, f"no manifest: {r!r}")
        os.rename(mpath + ".away", mpath)
        # A damaged batch in a file whose manifest entry was made to match
        # (the file checks pass): --verify reads the batches too and finds
        # it; so does the restore itself, which names the file and position
        # and leaves no data directory behind.
        import shutil
        b2 = os.path.join(c.tmp, "b2")
        shutil.copytree(bdir, b2)
        seg2 = os.path.join(b2, seg)
        with open(seg2, "r+b") as f:
            data = bytearray(f.read())
            data[200] ^= 0xFF
            f.seek(0)
            f.write(data)
        lines = []
        for ln in orig[:orig.rindex(b"checksum ")].split(b"\n")[:-1]:
            w = ln.split(b" ")
            if w[0] == b"file" and w[1] == seg.encode():
                ln = b"file %s %d %016x" % (w[1], len(data), xxh3(bytes(data)))
            lines.append(ln)
        with open(os.path.join(b2, "MANIFEST"), "wb") as f:
            f.write(signed(b"\n".join(lines) + b"\n"))
        r = run_tally(["restore", "--from", b2, "--verify"])
        check(r.rc == 1 and seg.encode() in r.err and b"position" in r.err and
              b"checksum" in r.err, f"--verify of the re-signed damaged backup: {r!r}")
        r = run_tally(["restore", "--from", b2, "--data-dir", target])
        check(r.rc == 1 and seg.encode() in r.err and b"position" in r.err and
              b"checksum" in r.err, f"damaged batch not reported: {r!r}")
        check(not os.path.exists(target) and not os.path.exists(target + ".restoring"),
              "a failed restore left a data directory")
        # Intact again: restores.
        r = run_tally(["restore", "--from", bdir, "--data-dir", target])
        check(r.rc == 0 and b"500 records" in r.out, f"restore of the repaired backup: {r!r}")
        r = run_tally(["log", "verify", target])
        check(r.rc == 0, f"log verify of the restored dir: {r!r}")


def test_backup_node_stops():
    """The copied node stops answering in the middle of a backup: the
    backup fails with exit 1 within its timeout and leaves no MANIFEST."""
    with Cluster(n=3, name="backup-stop") as c:
        c.start()
        c.tally_ok("topic", "create", "big")
        rnd = os.urandom(30_000_000).hex()
        lines = "".join(f"{rnd[i:i + 400]}\n" for i in range(0, len(rnd), 400)).encode()
        c.tally_ok("produce", "big", input=lines, timeout=180)
        leader = c.wait_leader()
        follower = next(i for i in c.nodes if i != leader)
        node = c.nodes[follower]
        bdir = os.path.join(c.tmp, "b")
        p = subprocess.Popen([TALLY, "--timeout", "1500", "backup", "--to", bdir, "--node",
                              node.client], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            first = p.stderr.readline()
            check(b"at applied index" in first, f"no cut line: {first!r}")
            c.pause(follower)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            c.resume(follower)
        check(p.returncode == 1, f"backup exit {p.returncode}: {out!r} {err!r}")
        check(b"did not answer in time" in err and b"no MANIFEST" in err,
              f"backup message: {err!r}")
        check(not os.path.exists(os.path.join(bdir, "MANIFEST")), "a MANIFEST was written")
        r = run_tally(["restore", "--from", bdir, "--verify"])
        check(r.rc == 1 and b"no MANIFEST" in r.err, f"the partial backup verified: {r!r}")


def paused_backup(bdir, node, attempts=5):
    """Start `tally backup --to bdir --node node` and SIGSTOP it right after
    it printed its cut, while it still has its connection to the node (on
    a busy machine it may have copied everything before the signal: then
    it is let finish and started again). Returns (process, cut line)."""
    for _ in range(attempts):
        p = subprocess.Popen([TALLY, "--timeout", "300000", "backup", "--to", bdir, "--node",
                              node], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stderr.readline()
        os.kill(p.pid, signal.SIGSTOP)
        fds = f"/proc/{p.pid}/fd"
        if any(os.readlink(os.path.join(fds, f)).startswith("socket:") for f in os.listdir(fds)):
            return p, first
        os.kill(p.pid, signal.SIGCONT)
        p.communicate(timeout=120)
        shutil.rmtree(bdir, ignore_errors=True)
    raise TestFailure(f"the backup finished before it could be paused, {attempts} times")


def follower_segments(c, node_id, topic):
    """Base offsets of the node's segment files of @topic, sorted."""
    d = os.path.join(c.nodes[node_id].data, "topics", topic)
    return sorted(int(n[:20]) for n in os.listdir(d) if n.endswith(".seg"))


def test_backup_retention_race():
    """Retention is due after the cut, before the backup copied the topic:
    the leader's TOPIC_TRIM moves the copied node's start offset as on every
    node, but the copied node keeps the segment files while the backup runs
    (it says retention waits), the backup holds the whole cut, and the
    segments go once the backup's connection is closed."""
    with Cluster(n=3, name="backup-ret", extra_args=["--set", "retention_interval_ms=300"]) as c:
        c.start()
        c.tally_ok("topic", "create", "big")  # copied first: the backup is busy with it
        # 9 segments of ~4.4 KiB in the end: retention keeps 7 (33000 bytes),
        # so the start would move to 80, inside the cut's [0, 120).
        c.tally_ok("topic", "create", "r", "--policy", "delete", "--segment-bytes", "4096",
                   "--retention-bytes", "33000")
        rnd = os.urandom(25_000_000).hex()
        c.tally_ok("produce", "big", timeout=180, input="".join(
            f"{rnd[i:i + 400]}\n" for i in range(0, len(rnd), 400)).encode())

        def r_batches(first, n):
            for b in range(first, first + n):  # one 4 KiB segment per call
                c.tally_ok("produce", "r", input="".join(
                    f"r{b * 40 + i:05d}-{os.urandom(50).hex()}\n" for i in range(40)).encode())
        r_batches(0, 3)  # 12 KiB: under retention_bytes, nothing removed yet
        leader = c.wait_leader()
        follower = next(i for i in c.nodes if i != leader)
        fclient = c.nodes[follower].client
        wait_until(lambda: len(read_all(c, "r", node=fclient)) == 120, 20, "the follower")
        bdir = os.path.join(c.tmp, "b")
        p, first = paused_backup(bdir, fclient)  # while it copies 'big'
        try:
            check(b"at applied index" in first and b"2 topics" in first, f"cut: {first!r}")
            # More records after the cut push the total over retention_bytes:
            # the follower's retention is due, and waits for the backup.
            r_batches(3, 6)
            # (its start may move meanwhile: count up to the last offset)
            wait_until(lambda: int(read_all(c, "r", node=fclient)[-1].split(b"\t")[0]) == 359, 20,
                       "the follower")

            def waits():
                c.check_up()
                with open(c.nodes[follower].log_path, "rb") as f:
                    return b"retention waits: a backup" in f.read()
            wait_until(waits, 30, "the follower to say retention waits for the backup")
            # Retention is the leader's decision, applied on every node at
            # the same index: the follower's start offset moved like the
            # others', but it deleted no segment file under the backup.
            segs = follower_segments(c, follower, "r")
            check(segs and segs[0] == 0, f"retention deleted segments during the backup: {segs}")
        finally:
            os.kill(p.pid, signal.SIGCONT)
        out, err = p.communicate(timeout=120)
        check(p.returncode == 0, f"backup exit {p.returncode}: {out!r} {err!r}")
        check(b"copying it again" not in err, f"the cut changed under the backup: {err!r}")
        m = manifest(bdir)
        check(m["topics"]["r"]["next"] == 120 and m["topics"]["r"]["start"] == 0,
              f"r in the manifest: {m['topics']}")
        # The backup is over: the follower deletes what retention cut off.
        wait_until(lambda: follower_segments(c, follower, "r")[0] > 0, 30,
                   "retention on the follower after the backup", interval=0.5)
        check(int(read_all(c, "r", node=fclient)[0].split(b"\t")[0]) > 0,
              "the follower still serves r from 0")
        r = run_tally(["restore", "--from", bdir, "--data-dir", os.path.join(c.tmp, "d")])
        check(r.rc == 0, f"restore: {r!r}")
        dump = dump_records(os.path.join(c.tmp, "d"), "r")
        check(len(dump) == 120 and dump[0].startswith(b"offset=0 "),
              f"restored r: {len(dump)} records")
        # A node started on it serves r from 0 and appends at 120.
        with Cluster(n=1, name="backup-ret-dst") as d:
            os.rmdir(d.nodes[1].data)
            os.rename(os.path.join(c.tmp, "d"), d.nodes[1].data)
            d.start()
            topics = {t["name"]: t for t in d.status()["topics"]}
            check(topics["r"]["start_offset"] == 0 and topics["r"]["next_offset"] == 120,
                  f"restored r offsets: {topics['r']}")
            got = read_all(d, "r")
            check(len(got) == 120 and got[0].startswith(b"0\t"), f"restored r read: {got[:1]}")
            r = d.tally_ok("produce", "r", "after")
            check(r.out.split() == [b"120"], f"new record at {r!r}")


if __name__ == "__main__":
    run_tests([test_backup_restore_roundtrip, test_backup_failures, test_backup_node_stops,
               test_backup_retention_race])
