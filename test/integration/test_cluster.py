# test_cluster.py - three real tallyd processes on 127.0.0.1: replication,
# failover, restarts, follower reads, minority and bad client input.
#
# Run by `make check` (TALLY_BUILD_DIR set), or by hand:
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_cluster.py [test_name...]

import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, Cluster, TestFailure, check, no_server, parse_records,  # noqa: E402
                     run_tally, run_tests, wait_until)


def make_values(prefix, n, rng):
    """@n distinct values: a readable prefix, then random bytes that are
    neither TAB nor newline (those delimit lines), some of them non-ASCII."""
    alphabet = bytes(b for b in range(32, 256) if b != 0x7f)
    vals = []
    for i in range(n):
        tail = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        vals.append(f"{prefix}-{i:06d}:".encode() + tail)
    return vals


def produce_lines(c, topic, values, timeout=120, ids=None):
    """Produce @values through stdin in one `tally produce`; return the
    offsets it printed."""
    r = c.tally("produce", topic, input=b"\n".join(values) + b"\n", timeout=timeout, ids=ids)
    check(r.rc == 0, f"produce failed: {r!r}")
    offs = [int(x) for x in r.out.split()]
    check(len(offs) == len(values), f"produce printed {len(offs)} offsets for {len(values)} records")
    return offs


def test_cli_usage():
    """Usage errors exit 2 with a one-line message; help and version exit 0."""
    for args in (["produce"], ["consume"], ["topic"], ["topic", "create"], ["frobnicate"],
                 ["consume", "t", "--from", "yesterday"], ["consume", "t", "--format", "%q"],
                 ["topic", "create", "t", "--policy", "keep"], ["member", "add", "x", "a"],
                 ["produce", "t", "--bogus"], ["--timeout", "0", "status"],
                 ["bench", "produce", "t"], []):
        r = run_tally(args, timeout=10)
        check(r.rc == 2, f"want exit 2 for {args}: {r!r}")
        lines = r.errtext.strip().splitlines()
        check(len(lines) == 1 and "--help" in lines[0], f"want one line naming --help: {r!r}")
    for args in (["--help"], ["-h"], ["topic", "--help"], ["topic", "create", "-h"],
                 ["produce", "-h"], ["consume", "--help"], ["status", "-h"], ["member", "-h"],
                 ["bench", "produce", "--help"]):
        r = run_tally(args, timeout=10)
        check(r.rc == 0 and r.out.startswith(b"Usage:"), f"help: {r!r}")
    r = run_tally(["--version"], timeout=10)
    check(r.rc == 0 and r.out.startswith(b"tally "), f"--version: {r!r}")
    # Nothing listens on port 1: an error from the "cluster", not usage.
    r = run_tally(["--timeout", "2000", "topic", "list"], brokers="127.0.0.1:1", timeout=30)
    check(r.rc == 1 and r.err.strip(), f"want exit 1 and a message with no server: {r!r}")


test_cli_usage = no_server(test_cli_usage)


def test_cli_against_fake_cluster():
    """The CLI's output formats, stdin batching, --keyed, exit codes and the
    unknown-outcome message, against the fake cluster of fake_server.py
    (no tallyd needed)."""
    try:
        import fake_server
        fake_server.xxh3(b"")
    except (ImportError, OSError) as e:
        print(f"#   no fake cluster ({e}); skipped")
        return
    fc = fake_server.Cluster()
    try:
        fc.add_node("leader")
        fc.add_node("follower")
        b = ",".join(n.addr for n in fc.nodes)

        def t(*args, input=None):
            return run_tally([str(a) for a in args], input=input, brokers=b, timeout=30)

        r = t("topic", "create", "ev", "--policy", "compact,delete", "--retention-ms", 60000)
        check(r.rc == 0, f"topic create: {r!r}")
        r = t("topic", "create", "ev")
        check(r.rc == 1 and b"exists" in r.err, f"create twice: want exit 1, 'exists': {r!r}")
        r = t("topic", "list")
        check(r.rc == 0 and r.out.splitlines()[1].split()[:4] == [b"ev", b"compact,delete",
                                                                   b"0", b"0"],
              f"topic list: {r!r}")
        # 2500 lines: three batches, one offset per line, in order; an empty
        # line is an empty value; a last line without newline counts.
        lines = [f"v{i}".encode() for i in range(2500)] + [b"", b"tail"]
        sent_before = sum(1 for _, ty in fc.requests if ty == fake_server.PRODUCE)
        r = t("produce", "ev", input=b"\n".join(lines))
        n_req = sum(1 for _, ty in fc.requests if ty == fake_server.PRODUCE) - sent_before
        check(n_req == 3, f"2502 lines went in {n_req} produce requests, want 3 batches")
        check(r.rc == 0 and r.out == b"".join(b"%d\n" % i for i in range(len(lines))),
              f"produce from stdin: {r.rc} {r.out[-40:]!r} {r.err!r}")
        r = t("produce", "ev", "--keyed", "--print-index", input=b"k1\tx\ty\nk2\t\n")
        check(r.rc == 0 and [ln.split(b"\t")[0] for ln in r.out.splitlines()] == [b"2502", b"2503"]
              and all(int(ln.split(b"\t")[1]) > 0 for ln in r.out.splitlines()),
              f"--keyed --print-index: {r!r}")
        r = t("produce", "ev", "--keyed", input=b"k3\tok\nno-tab\n")
        check(r.rc == 2 and r.out == b"2504\n" and b"line 2" in r.err,
              f"--keyed with a bad line: {r!r}")
        r = t("produce", "ev", "-k", "kk", "val ue")
        check(r.rc == 0 and r.out == b"2505\n", f"produce VALUE: {r!r}")
        r = t("consume", "ev", "--from", 2499)
        check(r.rc == 0 and r.out == b"2499\t\tv2499\n2500\t\t\n2501\t\ttail\n"
              b"2502\tk1\tx\ty\n2503\tk2\t\n2504\tk3\tok\n2505\tkk\tval ue\n",
              f"consume default format: {r!r}")
        r = t("consume", "ev", "--from", 2505, "--format", "%%o=%o\\t%k\\\\%v|%t\\n")
        check(r.rc == 0 and r.out.startswith(b"%o=2505\tkk\\val ue|") and r.out.endswith(b"\n")
              and int(r.out.split(b"|")[1]) > 1500000000000, f"consume --format: {r!r}")
        r = t("consume", "ev", "-n", 3, "--from", "beginning", "--format", "%v,")
        check(r.rc == 0 and r.out == b"v0,v1,v2,", f"consume -n: {r!r}")
        r = t("consume", "ev", "--from", "end")
        check(r.rc == 0 and r.out == b"", f"consume --from end: {r!r}")
        r = t("consume", "ev", "--node", fc.nodes[1].addr, "--from", 2500, "-n", 1)
        check(r.rc == 0 and r.out == b"2500\t\t\n", f"consume --node: {r!r}")
        r = t("consume", "nope")
        check(r.rc == 1 and b"not found" in r.err, f"consume of a missing topic: {r!r}")
        r = t("status", "--json")
        st = __import__("json").loads(r.out)
        check(r.rc == 0 and st["leader_id"] == 1 and len(st["members"]) == 2
              and st["members"][0]["role"] == "leader" and st["members"][0]["reachable"] is True
              and st["topics"] == [{"name": "ev", "policy": "compact,delete", "start_offset": 0,
                                    "next_offset": 2506}], f"status --json: {r!r}")
        r = t("status")
        check(r.rc == 0 and b"leader: 1" in r.out, f"status: {r!r}")
        r = t("bench", "produce", "ev", "--count", 500, "--size", 10, "--producers", 2,
              "--batch", 7)
        last = r.out.decode().strip().splitlines()[-1] if r.out.strip() else ""
        check(r.rc == 0 and __import__("re").fullmatch(
            r"msgs/s=[0-9.]+ MB/s=[0-9.]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ p999_ms=[0-9.]+", last),
            f"bench: {r!r}")
        r = t("topic", "delete", "ev")
        check(r.rc == 0, f"topic delete: {r!r}")

        # A leader that drops the connection after taking a produce: exit 1,
        # and the message says the write may or may not have happened.
        fc2 = fake_server.Cluster()
        try:
            fc2.add_node("drop_produce")
            b2 = fc2.nodes[0].addr
            run_tally(["topic", "create", "d"], brokers=b2, timeout=30)
            r = run_tally(["--timeout", 3000, "produce", "d", "x"], brokers=b2, timeout=30)
            check(r.rc == 1 and b"may or may not" in r.err and len(r.err.splitlines()) == 1,
                  f"produce with an unknown outcome: {r!r}")
            # Said once: the CLI relies on tally_outcome_unknown, not on
            # its own words.
            check(r.err.count(b"may or may not") == 1, f"said twice: {r!r}")
        finally:
            fc2.stop()
    finally:
        fc.stop()


test_cli_against_fake_cluster = no_server(test_cli_against_fake_cluster)


def test_replicate_10k():
    """10,000 records from 4 concurrent producers are on every node, byte for
    byte, in the same order."""
    rng = random.Random(1)
    with Cluster(name="replicate") as c:
        c.start()
        c.tally_ok("topic", "create", "events")
        # topic list is a read that any node answers: a follower may not
        # have applied the create yet, so give it a moment.
        r = wait_until(lambda: (lambda r: r if b"events" in r.out else None)(
            c.tally_ok("topic", "list")), 10, "the new topic in topic list")
        check(b"retain" in r.out, f"topic list: {r!r}")

        n_prod, per = 4, 2500
        inputs = [make_values(f"p{p}", per, rng) for p in range(n_prod)]
        procs = []
        with tempfile.TemporaryDirectory() as tmp:
            for p in range(n_prod):
                path = os.path.join(tmp, f"in{p}")
                with open(path, "wb") as f:
                    f.write(b"\n".join(inputs[p]) + b"\n")
                fin = open(path, "rb")
                procs.append((subprocess.Popen([TALLY, "-b", c.brokers(), "produce", "events"],
                                               stdin=fin, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE), fin))
            results = []
            try:
                for proc, fin in procs:
                    out, err = proc.communicate(timeout=120)
                    results.append((proc.returncode, out, err))
            finally:
                for proc, fin in procs:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    fin.close()
        acked = {}
        for p, (rc, out, err) in enumerate(results):
            check(rc == 0, f"producer {p} exited {rc}: {err!r}")
            offs = [int(x) for x in out.split()]
            check(len(offs) == per, f"producer {p} printed {len(offs)} offsets, want {per}")
            check(offs == sorted(offs) and len(set(offs)) == per,
                  f"producer {p}: offsets not increasing")
            for off, val in zip(offs, inputs[p]):
                check(off not in acked, f"offset {off} given to two records")
                acked[off] = val
        check(sorted(acked) == list(range(n_prod * per)),
              "offsets are not dense 0..9999")

        outs = {i: c.read_node("events", i, n_prod * per) for i in c.nodes}
        for i in c.nodes:
            check(outs[i] == outs[1], f"node {i} differs from node 1 "
                  f"({len(outs[i])} vs {len(outs[1])} bytes)")
        recs = parse_records(outs[1])
        check(len(recs) == n_prod * per, f"read {len(recs)} records, want {n_prod * per}")
        for off, val in recs:
            check(acked.get(off) == val, f"offset {off}: read {val!r}, produced {acked.get(off)!r}")

        # The default format carries the (absent) key; -n stops early.
        r = c.tally_ok("consume", "events", "-n", "3", "--from", "10")
        lines = r.out.split(b"\n")
        check(len(lines) == 4 and lines[0] == b"10\t\t" + acked[10],
              f"default format / -n: {r!r}")
        st = c.status()
        check(st and any(t["name"] == "events" and t["next_offset"] == n_prod * per
                         for t in st["topics"]), f"status topics: {st!r}")


class Producer(threading.Thread):
    """Writes distinct values one `tally produce` at a time and records which
    were acknowledged (offset printed, exit 0) and which failed."""

    def __init__(self, c, topic, prefix, brokers=None):
        super().__init__(daemon=True)
        self.c, self.topic, self.prefix = c, topic, prefix
        self.brokers = brokers or c.brokers()
        self.acked = {}      # value -> offset
        self.failed = []     # (value, Result): outcome unknown or refused
        self.stop = threading.Event()
        self.n = 0

    def run(self):
        while not self.stop.is_set():
            val = f"{self.prefix}-{self.n:06d}"
            self.n += 1
            r = run_tally(["--timeout", "5000", "produce", self.topic, val],
                          brokers=self.brokers, timeout=60)
            if r.rc == 0:
                self.acked[val.encode()] = int(r.out.split()[0])
            else:
                self.failed.append((val.encode(), r))
                time.sleep(0.05)

    def acked_count(self):
        return len(self.acked)


def check_acked_present(recs, acked, where):
    """Every acknowledged value is at its offset; no value appears twice."""
    by_off = dict(recs)
    seen = set()
    for off, val in recs:
        check(val not in seen, f"{where}: value {val!r} appears twice")
        seen.add(val)
    for val, off in acked.items():
        check(by_off.get(off) == val,
              f"{where}: acknowledged {val!r} at offset {off} but read {by_off.get(off)!r}")


def test_kill_leader_during_produce():
    """SIGKILL the leader while produces stream: a new leader takes over, the
    producer carries on, every acknowledged write survives, and the killed
    node catches up when restarted."""
    with Cluster(name="failover") as c:
        old = c.start()
        c.tally_ok("topic", "create", "orders")
        prod = Producer(c, "orders", "o")
        prod.start()
        try:
            wait_until(lambda: prod.acked_count() >= 50, 60, "50 acknowledged produces")
            c.kill(old)
            killed_at = prod.acked_count()
            new = c.wait_leader(timeout=30, not_id=old)
            check(new != old, "no new leader")
            wait_until(lambda: prod.acked_count() >= killed_at + 50, 60,
                       "50 more acknowledged produces after the failover")
        finally:
            prod.stop.set()
            prod.join(timeout=90)
        check(not prod.is_alive(), "producer thread did not stop")
        for val, r in prod.failed:
            # A failure must say so clearly (exit 1 and a message).
            check(r.rc == 1 and r.err.strip(), f"produce of {val!r} failed badly: {r!r}")
        survivors = [i for i in c.nodes if i != old]
        total = max(prod.acked.values()) + 1
        outs = {}
        for i in survivors:
            outs[i] = c.read_node("orders", i, total, ids=survivors)
            check_acked_present(parse_records(outs[i]), prod.acked, f"node {i}")
        check(outs[survivors[0]] == outs[survivors[1]], "the surviving nodes differ")

        c.restart(old)
        want = outs[survivors[0]]
        wait_until(lambda: c.consume("orders", node_id=old).out == want, 60,
                   f"restarted node {old} to catch up")
        print(f"#   {len(prod.acked)} acknowledged, {len(prod.failed)} failed "
              f"(unknown outcome) across the failover; leader {old} -> {new}")


def restart_round(c, topic, acked_vals, how):
    """Stop every node (@how: 'term' or 'kill'), start them again, and check
    every node holds exactly @acked_vals, in order, once each."""
    for i in c.nodes:
        if how == "term":
            c.stop(i)
        else:
            c.kill(i)
    for i in c.nodes:
        c.restart(i)
    c.wait_leader(timeout=60)
    outs = {i: c.read_node(topic, i, len(acked_vals)) for i in c.nodes}
    for i in c.nodes:
        recs = parse_records(outs[i])
        check([v for _, v in recs] == acked_vals,
              f"after {how} of all nodes, node {i} holds {len(recs)} records, want "
              f"{len(acked_vals)} in order (first difference at "
              f"{next((k for k, (a, b) in enumerate(zip([v for _, v in recs], acked_vals)) if a != b), min(len(recs), len(acked_vals)))})")
        check([o for o, _ in recs] == list(range(len(acked_vals))),
              f"after {how}: node {i} offsets are not 0..{len(acked_vals) - 1}")


def test_restart_all():
    """Restarting every node (SIGTERM all, then SIGKILL all) loses nothing
    acknowledged and duplicates nothing."""
    rng = random.Random(3)
    with Cluster(name="restart") as c:
        c.start()
        c.tally_ok("topic", "create", "ledger")
        vals = make_values("a", 3000, rng)
        produce_lines(c, "ledger", vals)
        restart_round(c, "ledger", vals, "term")

        more = make_values("b", 2000, rng)
        offs = produce_lines(c, "ledger", more)
        check(offs[0] == len(vals), f"offsets after restart start at {offs[0]}, want {len(vals)}")
        vals += more
        # Some single writes too, each its own Raft entry.
        for k in range(20):
            r = c.tally_ok("produce", "ledger", f"single-{k}")
            vals.append(f"single-{k}".encode())
        restart_round(c, "ledger", vals, "kill")

        # And the cluster still takes writes at the right offset.
        r = c.tally_ok("produce", "ledger", "after")
        check(int(r.out) == len(vals), f"next offset {r.out!r}, want {len(vals)}")


def test_follower_read_min_index():
    """A follower read with min_index = the write's Raft index returns a
    write that was just acknowledged, even when the follower was paused
    while it was committed."""
    with Cluster(name="minindex") as c:
        lead = c.start()
        c.tally_ok("topic", "create", "acct")
        followers = [i for i in c.nodes if i != lead]
        for k in range(10):
            f = followers[k % 2]
            if k % 2 == 0:
                # The follower misses the write entirely until resumed.
                c.pause(f)
            try:
                r = c.tally_ok("--timeout", 10000, "produce", "acct", "--print-index", f"v{k}",
                               ids=[lead])
                off, idx = (int(x) for x in r.out.split())
                check(idx > 0, f"raft index {idx}")
                args = [TALLY, "-b", c.brokers(), "--timeout", "20000", "consume", "acct",
                        "--node", c.nodes[f].client, "--from", str(off), "-n", "1",
                        "--min-index", str(idx), "--format", "%o %v\\n"]
                proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if k % 2 == 0:
                    time.sleep(0.5)
                    c.resume(f)
                out, err = proc.communicate(timeout=30)
            finally:
                if k % 2 == 0:
                    c.resume(f)
            check(proc.returncode == 0 and out == f"{off} v{k}\n".encode(),
                  f"follower {f} read of offset {off} at index {idx}: rc {proc.returncode} "
                  f"out {out!r} err {err!r}")


def test_minority_refuses_writes():
    """One node cut off from the other two refuses writes with a clear error
    within a timeout, and still serves reads; with the others back, writes
    work again."""
    with Cluster(name="minority") as c:
        lead = c.start()
        c.tally_ok("topic", "create", "m")
        vals = [f"m{k}".encode() for k in range(20)]
        produce_lines(c, "m", vals)
        for i in c.nodes:
            c.read_node("m", i, len(vals))

        # (a) The old leader alone: its peers are frozen (SIGSTOP).
        # (b) A follower alone: its peers are dead (SIGKILL).
        follower = next(i for i in c.nodes if i != lead)
        for alone, how in ((lead, "stop"), (follower, "kill")):
            others = [i for i in c.nodes if i != alone]
            for i in others:
                (c.pause if how == "stop" else c.kill)(i)
            t0 = time.monotonic()
            r = c.tally("--timeout", 3000, "produce", "m", f"lonely-{alone}", ids=[alone],
                        timeout=60)
            secs = time.monotonic() - t0
            check(r.rc == 1, f"node {alone} alone ({how}): produce should fail with exit 1: {r!r}")
            check(r.err.strip() and len(r.errtext.strip().splitlines()) == 1,
                  f"want a one-line error: {r!r}")
            check(secs < 30, f"produce took {secs:.1f}s to fail")
            r2 = c.consume("m", node_id=alone, ids=[alone], timeout=30)
            check(r2.rc == 0, f"read from node {alone} alone failed: {r2!r}")
            recs = parse_records(r2.out)
            check([v for _, v in recs][:len(vals)] == vals,
                  f"read from node {alone} alone: {r2!r}")
            print(f"#   node {alone} alone ({how} others): produce refused in {secs:.1f}s: "
                  f"{r.errtext.strip()}")
            for i in others:
                if how == "stop":
                    c.resume(i)
                else:
                    c.restart(i)
            c.wait_leader(timeout=60)
        r = c.tally_ok("produce", "m", "back")
        # The refused writes may or may not have been applied (a leader that
        # had not yet stepped down may commit them once its peers return),
        # but each at most once.
        recs = parse_records(c.read_node("m", lead, int(r.out) + 1))
        check([v for _, v in recs][:len(vals)] == vals and recs[-1][1] == b"back",
              f"after the partition healed: {recs[-5:]!r}")
        check(len({v for _, v in recs}) == len(recs), "duplicate records after the partition")


# -- raw wire input (src/proto/proto.h) --------------------------------------

MAGIC = 0x7974
HEADER = struct.Struct("<IHBBHHI")  # frame_len, magic, version, flags, type, reserved, req id
TALLY_TOOLARGE = 11
TALLY_PROTO = 12
TALLY_VERSION = 13
TALLY_UNKNOWN_REQUEST = 14


def frame(type_, body=b"", req_id=1, version=1, flags=0, frame_len=None):
    if frame_len is None:
        frame_len = HEADER.size - 4 + len(body)
    return HEADER.pack(frame_len, MAGIC, version, flags, type_, 0, req_id) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """One response frame (header fields, body), or None at EOF/reset."""
    try:
        hdr = recv_exact(s, HEADER.size)
        if hdr is None:
            return None
        frame_len, magic, version, flags, type_, _, req_id = HEADER.unpack(hdr)
        check(magic == MAGIC, f"response with bad magic {magic:#x}")
        check(frame_len >= HEADER.size - 4 and frame_len < (32 << 20),
              f"response frame_len {frame_len}")
        body = recv_exact(s, frame_len - (HEADER.size - 4))
        check(body is not None, "response cut short")
        return dict(flags=flags, type=type_, req_id=req_id, body=body)
    except ConnectionResetError:
        return None


def error_code(f):
    """The TALLY_* code of an error response, or None if not an error."""
    if not f["flags"] & 0x02:
        return None
    return struct.unpack_from("<H", f["body"])[0]


def closed_within(s, secs):
    """True if the peer closes @s within @secs (reading and dropping data)."""
    s.settimeout(secs)
    deadline = time.monotonic() + secs
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def hello_body():
    name = b"harness"
    return struct.pack("<BBH", 1, 1, len(name)) + name


def test_bad_client_input():
    """Garbage, an oversized frame header, an unknown request type and a
    half-sent frame get a clear error or a closed connection, and the node
    keeps serving everyone else."""
    with Cluster(name="badinput") as c:
        c.start()
        c.tally_ok("topic", "create", "ok")
        node = c.nodes[1]
        addr = ("127.0.0.1", node.client_port)

        def conn():
            return socket.create_connection(addr, timeout=5)

        # Garbage: 'GET ' read as a frame length is ~ 0x20544547, too large.
        with conn() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
            s.settimeout(5)
            f = read_frame(s)
            check(f is None or error_code(f) in (TALLY_PROTO, TALLY_TOOLARGE),
                  f"garbage: want an error or close, got {f!r}")
            check(closed_within(s, 5), "garbage: the connection was not closed")

        # A small garbage frame with a bad magic.
        with conn() as s:
            s.sendall(struct.pack("<IHBBHHI", 12, 0xdead, 1, 0, 1, 0, 7))
            s.settimeout(5)
            f = read_frame(s)
            check(f is None or error_code(f) == TALLY_PROTO, f"bad magic: got {f!r}")
            check(closed_within(s, 5), "bad magic: the connection was not closed")

        # Oversized frame header: answered TOOLARGE (or closed), never read.
        with conn() as s:
            s.sendall(frame(6, frame_len=0x7ffffff0))
            s.settimeout(5)
            f = read_frame(s)
            check(f is None or error_code(f) == TALLY_TOOLARGE,
                  f"oversized frame: want TOOLARGE, got {f!r}")
            check(closed_within(s, 5), "oversized frame: the connection was not closed")

        # Unknown type and bad version: an error, and the connection stays
        # usable (the length is trustworthy), so a HELLO then works.
        with conn() as s:
            s.settimeout(5)
            s.sendall(frame(999, b"\x00" * 8, req_id=41))
            f = read_frame(s)
            check(f is not None and error_code(f) == TALLY_UNKNOWN_REQUEST and f["req_id"] == 41,
                  f"unknown request type: got {f!r}")
            s.sendall(frame(1, hello_body(), req_id=42, version=9))
            f = read_frame(s)
            check(f is not None and error_code(f) == TALLY_VERSION and f["req_id"] == 42,
                  f"bad version: got {f!r}")
            s.sendall(frame(1, hello_body(), req_id=43))
            f = read_frame(s)
            check(f is not None and error_code(f) is None and f["flags"] & 0x01
                  and f["req_id"] == 43, f"HELLO after errors: got {f!r}")

        # A well-framed request whose body lies (a topic name of 200 bytes
        # with 3 present): PROTO error, nothing written, connection usable.
        with conn() as s:
            s.settimeout(5)
            s.sendall(frame(6, struct.pack("<H", 200) + b"ok\x00", req_id=44))
            f = read_frame(s)
            check(f is not None and error_code(f) == TALLY_PROTO and f["req_id"] == 44,
                  f"truncated PRODUCE body: want a PROTO error, got {f!r}")
            s.sendall(frame(1, hello_body(), req_id=47))
            f = read_frame(s)
            check(f is not None and error_code(f) is None and f["req_id"] == 47,
                  f"HELLO after a malformed body: got {f!r}")

        # Half-sent frames: one left hanging open, one cut by a close.
        hanging = conn()
        hanging.sendall(frame(1, hello_body(), req_id=45)[:10])
        with conn() as s:
            s.sendall(frame(1, hello_body(), req_id=46)[:-3])
        many = []
        try:
            for _ in range(20):
                s = conn()
                s.sendall(frame(6, frame_len=1000)[:16] + b"x" * 100)
                many.append(s)

            # The node still serves others, writes and reads.
            check(node.alive(), "node 1 died on bad input")
            r = c.tally_ok("--timeout", 5000, "produce", "ok", "--print-index", "still-fine",
                           ids=[1])
            # Node 1 may be a follower: read our write back with its index.
            r2 = c.tally_ok("--timeout", 5000, "consume", "ok", "--node", node.client,
                            "--min-index", int(r.out.split()[1]), "--format", "%v\\n", ids=[1])
            check(r2.out == b"still-fine\n", f"read after bad input: {r2!r}")
            st = c.status(ids=[1])
            check(st and any(m["id"] == 1 and m["reachable"] for m in st["members"]),
                  f"status after bad input: {st!r}")
        finally:
            hanging.close()
            for s in many:
                s.close()
        time.sleep(0.3)
        check(all(n.alive() for n in c.nodes.values()), "a node died")


if __name__ == "__main__":
    run_tests([
        test_cli_usage,
        test_cli_against_fake_cluster,
        test_replicate_10k,
        test_kill_leader_during_produce,
        test_restart_all,
        test_follower_read_min_index,
        test_minority_refuses_writes,
        test_bad_client_input,
    ])
