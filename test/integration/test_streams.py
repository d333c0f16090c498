# test_streams.py - streams for event sourcing (issue 18) end to end: one
# key's records through the nodes' stream index (`tally consume -k`,
# --from-version, --backward, libtally's tally_stream_read), read-your-
# writes on a follower, the long-poll for a stream's next record, bad input,
# and the model test: many streams driven by random plain and conditional
# appends and tombstones on a retain and a compact topic, SIGKILL restarts,
# compaction, and a snapshot install with backfill; after each step every
# stream read (forward, backward, from a version, on every node) equals
# the model.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_streams.py [TEST...]
#
# TALLY_STREAMS_KEYS (default 1000) sets the model's number of streams.
# The model test drives libtally ($TALLY_BUILD_DIR/.libs/libtally.so)
# through ctypes in this process (re-executed with the sanitizer runtime
# preloaded for an ASan build).

import ctypes as C
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD_DIR, TALLY, Cluster, TestFailure, check,  # noqa: E402
                     reexec_for_libtally, run_tests, wait_until)

N_KEYS = int(os.environ.get("TALLY_STREAMS_KEYS", "1000"))
SETTINGS = ["--set", "snapshot_threshold=64", "--set", "snapshot_trailing=16",
            "--set", "compaction_interval_ms=200"]


def lines(r):
    return [ln for ln in r.text.split("\n") if ln]


def synced(c, ids=None, timeout=30):
    """Every running node (of @ids) applied what the leader committed."""
    def pred():
        st = c.status(ids=ids)
        if st is None or not st.get("leader_id"):
            return False
        members = [m for m in st["members"] if m.get("reachable")]
        target = max([st.get("commit_index", 0)] + [m.get("applied_index", 0) for m in members])
        return all(m.get("applied_index", 0) >= target for m in members)
    wait_until(pred, timeout, "every node to apply the committed entries")


# -- libtally through ctypes -------------------------------------------------------

class RecordIn(C.Structure):
    _fields_ = [("key", C.c_char_p), ("key_len", C.c_size_t),
                ("value", C.c_char_p), ("value_len", C.c_size_t)]


class Condition(C.Structure):
    _fields_ = [("key", C.c_char_p), ("key_len", C.c_size_t), ("expect_version", C.c_uint64)]


class ProduceOptions(C.Structure):
    _fields_ = [("expect_offset", C.c_uint64), ("conditions", C.POINTER(Condition)),
                ("n_conditions", C.c_size_t)]


class ProduceResult(C.Structure):
    _fields_ = [("base_offset", C.c_uint64), ("count", C.c_uint32), ("raft_index", C.c_uint64)]


class StreamEvent(C.Structure):
    _fields_ = [("version", C.c_uint64), ("offset", C.c_uint64), ("timestamp_ms", C.c_int64),
                ("value", C.c_void_p), ("value_len", C.c_size_t)]


class StreamResult(C.Structure):
    _fields_ = [("events", C.POINTER(StreamEvent)), ("n", C.c_size_t), ("version", C.c_uint64),
                ("first_version", C.c_uint64), ("next_version", C.c_uint64),
                ("applied_index", C.c_uint64), ("impl", C.c_void_p)]


class StreamOptions(C.Structure):
    _fields_ = [("from_version", C.c_uint64), ("backward", C.c_int),
                ("max_events", C.c_uint32), ("max_bytes", C.c_uint32),
                ("max_wait_ms", C.c_uint32), ("min_index", C.c_uint64), ("node", C.c_char_p)]


TALLY_NOTFOUND, TALLY_INVAL, TALLY_OUT_OF_RANGE, TALLY_CONDITION_FAILED = 5, 2, 15, 16
TALLY_UNAVAILABLE = 20


class Lib:
    def __init__(self, brokers):
        lib = C.CDLL(os.path.join(BUILD_DIR, ".libs", "libtally.so"))
        lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
        lib.tally_client_destroy.argtypes = [C.c_void_p]
        lib.tally_errmsg.argtypes = [C.c_void_p]
        lib.tally_errmsg.restype = C.c_char_p
        lib.tally_client_set_timeout.argtypes = [C.c_void_p, C.c_int]
        lib.tally_produce_options_init.argtypes = [C.POINTER(ProduceOptions)]
        lib.tally_produce_ex.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(RecordIn), C.c_size_t,
                                         C.POINTER(ProduceOptions), C.POINTER(ProduceResult)]
        lib.tally_condition_actual.argtypes = [C.c_void_p]
        lib.tally_condition_actual.restype = C.c_uint64
        lib.tally_stream_options_init.argtypes = [C.POINTER(StreamOptions)]
        lib.tally_stream_read.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.c_size_t,
                                          C.POINTER(StreamOptions), C.POINTER(StreamResult)]
        lib.tally_stream_result_free.argtypes = [C.POINTER(StreamResult)]
        self.lib = lib
        self.cl = C.c_void_p()
        rc = lib.tally_client_create(brokers.encode(), C.byref(self.cl))
        check(rc == 0, f"tally_client_create: {rc}")
        lib.tally_client_set_timeout(self.cl, 20000)

    def close(self):
        self.lib.tally_client_destroy(self.cl)

    def errmsg(self):
        return (self.lib.tally_errmsg(self.cl) or b"").decode("utf-8", "replace")

    def produce(self, topic, recs, conds=()):
        """@recs: [(key, value or None)]. Returns (rc, base_offset, raft_index, actual)."""
        arr = (RecordIn * len(recs))()
        for i, (k, v) in enumerate(recs):
            kb = k.encode()
            vb = v.encode() if v is not None else None
            arr[i] = RecordIn(kb, len(kb), vb, len(vb) if vb is not None else 0)
        carr = (Condition * max(1, len(conds)))()
        for i, (k, ver) in enumerate(conds):
            carr[i] = Condition(k.encode(), len(k), ver)
        opts = ProduceOptions()
        self.lib.tally_produce_options_init(C.byref(opts))
        opts.conditions = carr
        opts.n_conditions = len(conds)
        res = ProduceResult()
        rc = self.lib.tally_produce_ex(self.cl, topic.encode(), arr, len(recs), C.byref(opts),
                                       C.byref(res))
        actual = self.lib.tally_condition_actual(self.cl) if rc == TALLY_CONDITION_FAILED else None
        return rc, res.base_offset, res.raft_index, actual

    def read(self, topic, key, from_version=0, backward=False, max_events=65536, node=None,
             min_index=0, max_wait_ms=0, key_bytes=None):
        """(rc, info dict, [(version, offset, value or None)])."""
        o = StreamOptions()
        self.lib.tally_stream_options_init(C.byref(o))
        o.from_version = from_version
        o.backward = 1 if backward else 0
        o.max_events = max_events
        o.max_wait_ms = max_wait_ms
        o.min_index = min_index
        o.node = node.encode() if node else None
        kb = key_bytes if key_bytes is not None else key.encode()
        res = StreamResult()
        rc = self.lib.tally_stream_read(self.cl, topic.encode(), kb, len(kb), C.byref(o),
                                        C.byref(res))
        if rc != 0:
            return rc, {"msg": self.errmsg()}, []
        evs = []
        for i in range(res.n):
            e = res.events[i]
            val = None if not e.value else C.string_at(e.value, e.value_len).decode()
            evs.append((e.version, e.offset, val))
        info = {"version": res.version, "first": res.first_version, "next": res.next_version,
                "applied": res.applied_index}
        self.lib.tally_stream_result_free(C.byref(res))
        return 0, info, evs

    def read_all(self, topic, key, backward=False, node=None, from_version=0, page=None):
        """Every event of a stream, following next_version page by page."""
        out = []
        info = None
        at = from_version
        for _ in range(100000):
            rc, info, evs = self.read(topic, key, from_version=at, backward=backward, node=node,
                                      max_events=page or 65536)
            if rc != 0:
                return rc, info, out
            out += evs
            if backward and info["next"] == 0:
                break
            if not backward and info["next"] > info["version"]:
                break
            if not evs:
                break
            at = info["next"]
        return 0, info, out


# -- CLI ---------------------------------------------------------------------------

def test_cli_stream_reads():
    """`tally consume -k` reads one stream through the index on every node,
    forward, from a version, backward (-n: the last N), with %V; a follower
    answers a write's raft index as read-your-writes token; bad input exits
    1 or 2 with a message naming the problem."""
    with Cluster(name="streams-cli") as c:
        c.start()
        c.tally_ok("topic", "create", "orders")
        lines_in = "".join(f"order-{i % 3}\tev{i}\n" for i in range(30))
        c.tally_ok("produce", "orders", "--keyed", input=lines_in.encode())
        want = [(v + 1, f"ev{i}") for v, i in enumerate(range(1, 30, 3))]  # order-1
        synced(c)
        for n in c.nodes:
            r = c.tally_ok("consume", "orders", "-k", "order-1", "--format", "%V\\t%v\\n",
                           "--node", c.nodes[n].client)
            got = [(int(a), b) for a, b in (ln.split("\t") for ln in lines(r))]
            check(got == want, f"node {n}: {got} != {want}")
        r = c.tally_ok("consume", "orders", "-k", "order-1", "--from-version", "8",
                       "--format", "%V %v\\n")
        check(lines(r) == ["8 ev22", "9 ev25", "10 ev28"], f"--from-version 8: {lines(r)}")
        r = c.tally_ok("consume", "orders", "-k", "order-1", "--backward", "-n", "2",
                       "--format", "%V %v\\n")
        check(lines(r) == ["10 ev28", "9 ev25"], f"--backward -n 2: {lines(r)}")
        r = c.tally_ok("consume", "orders", "-k", "order-1", "--backward", "--from-version", "2",
                       "--format", "%V %o\\n")
        check(lines(r) == ["2 4", "1 1"], f"--backward --from-version 2: {lines(r)}")
        # The default format is the scan's: offset, key, value.
        r = c.tally_ok("consume", "orders", "-k", "order-2", "-n", "1")
        check(lines(r) == ["2\torder-2\tev2"], f"default format: {lines(r)}")
        # Read your write on a follower: the produce's raft index.
        leader = c.leader()
        follower = [n for n in c.nodes if n != leader][0]
        r = c.tally_ok("produce", "orders", "-k", "order-1", "--print-index", "ev30")
        off, index = lines(r)[0].split("\t")
        r = c.tally_ok("consume", "orders", "-k", "order-1", "--from-version", "11",
                       "--node", c.nodes[follower].client, "--min-index", index,
                       "--format", "%V %o %v\\n")
        check(lines(r) == [f"11 {off} ev30"], f"follower read-your-writes: {lines(r)}")
        # -f waits on the stream for its next record (a long-poll on the node).
        p = subprocess.Popen([TALLY, "-b", c.brokers(), "consume", "orders", "-k", "order-1",
                              "--from-version", "12", "-f", "-n", "1", "--format", "%V %v\\n"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        c.tally_ok("produce", "orders", "-k", "order-2", "other")
        c.tally_ok("produce", "orders", "-k", "order-1", "ev31")
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out == b"12 ev31\n", f"-f on a stream: {out!r} {err!r}")
        # Bad input.
        r = c.tally("consume", "orders", "-k", "nobody", "--from-version", "1")
        check(r.rc == 1 and "does not exist" in r.errtext, f"missing stream: {r!r}")
        r = c.tally("consume", "orders", "-k", "nobody")
        check(r.rc == 0 and r.out == b"", f"plain -k of a missing key prints nothing: {r!r}")
        r = c.tally("consume", "orders", "-k", "order-1", "--from-version", "14")
        check(r.rc == 1 and "beyond the end" in r.errtext, f"version beyond the end: {r!r}")
        r = c.tally("consume", "orders", "-k", "order-1", "--backward", "--from-version", "13")
        check(r.rc == 1 and "beyond the end" in r.errtext, f"backward beyond the end: {r!r}")
        r = c.tally("consume", "nosuch", "-k", "order-1", "--from-version", "1")
        check(r.rc == 1 and "not found" in r.errtext, f"missing topic: {r!r}")
        for args, what in [(["--from-version", "0"], "stream version"),
                           (["--from-version", "x"], "stream version"),
                           (["--backward", "-f"], "cannot follow"),
                           (["--from", "3", "--backward"], "need"),
                           (["--group", "g", "--from-version", "2"], "need")]:
            r = c.tally("consume", "orders", "-k", "order-1", *args)
            check(r.rc == 2 and what in r.errtext, f"{args}: {r!r}")
        r = c.tally("consume", "orders", "--backward")
        check(r.rc == 2 and "need" in r.errtext, f"--backward without -k: {r!r}")
        r = c.tally("consume", "orders", "-k", "k" * 5000)
        check(r.rc == 2 and "4096" in r.errtext, f"too long key: {r!r}")
        r = c.tally("consume", "orders", "--format", "%V\\n", "--from", "0")
        check(r.rc == 2 and "%V" in r.errtext, f"%V without -k: {r!r}")
        # After all that, every node still answers.
        for n in c.nodes:
            c.tally_ok("consume", "orders", "-k", "order-0", "-n", "1", "--node",
                       c.nodes[n].client)


def test_libtally_errors_and_long_poll():
    """tally_stream_read refuses bad arguments with TALLY_INVAL before
    sending, answers NOTFOUND / OUT_OF_RANGE with the documented codes, and
    a forward read at a stream's end waits for its next record (and for a
    stream's first record), returning it as soon as it is applied."""
    with Cluster(name="streams-lib") as c:
        c.start()
        c.tally_ok("topic", "create", "acct")
        lib = Lib(c.brokers())
        try:
            rc, _, index, _ = lib.produce("acct", [("a", "a1"), ("a", "a2")])
            check(rc == 0, f"produce: {rc} {lib.errmsg()}")
            synced(c)  # (any node answers below)
            rc, info, _ = lib.read("acct", "", key_bytes=b"")
            check(rc == TALLY_INVAL and "key" in info["msg"], f"empty key: {rc} {info}")
            rc, info, _ = lib.read("acct", "x", key_bytes=b"x" * 4097)
            check(rc == TALLY_INVAL, f"long key: {rc} {info}")
            rc, info, _ = lib.read("acct", "a", max_events=0)
            check(rc == TALLY_INVAL, f"max_events 0: {rc} {info}")
            rc, info, _ = lib.read("acct", "a", backward=True, max_wait_ms=100)
            check(rc == TALLY_INVAL and "backward" in info["msg"], f"backward wait: {rc} {info}")
            rc, info, _ = lib.read("bad name!", "a")
            check(rc == TALLY_INVAL, f"bad topic name: {rc} {info}")
            rc, info, _ = lib.read("acct", "zz")
            check(rc == TALLY_NOTFOUND, f"missing key: {rc} {info}")
            rc, info, _ = lib.read("acct", "a", from_version=4)
            check(rc == TALLY_OUT_OF_RANGE, f"beyond: {rc} {info}")
            rc, info, evs = lib.read("acct", "a", from_version=3)
            check(rc == 0 and evs == [] and info["version"] == 2, f"at the end: {rc} {info}")
            # Long-poll: a reader parked at version 3, then the write.
            for key, start in (("a", 3), ("fresh", 1)):
                got = {}

                def reader():
                    r2 = Lib(c.brokers())
                    got["r"] = r2.read("acct", key, from_version=start, max_wait_ms=20000)
                    r2.close()
                t = threading.Thread(target=reader)
                t.start()
                time.sleep(0.5)
                check(t.is_alive(), f"{key}: the long-poll answered before the write: {got}")
                rc, base, _, _ = lib.produce("acct", [("other", "o"), (key, f"{key}-next")])
                check(rc == 0, f"produce: {rc}")
                t.join(30)
                check(not t.is_alive(), f"{key}: the long-poll did not answer")
                rc, info, evs = got["r"]
                check(rc == 0 and evs == [(start, base + 1, f"{key}-next")],
                      f"{key}: long-poll answer {rc} {info} {evs}")
            # Expired long-poll: empty, no error.
            rc, info, evs = lib.read("acct", "a", from_version=4, max_wait_ms=300)
            check(rc == 0 and evs == [], f"expired long-poll: {rc} {info} {evs}")
            rc, info, evs = lib.read("acct", "never", from_version=0, max_wait_ms=300)
            check(rc == 0 and evs == [] and info["version"] == 0, f"expired on empty: {rc} {info}")
        finally:
            lib.close()


def group_position(c, group, topic):
    r = c.tally_ok("group", "describe", group)
    for ln in lines(r):
        f = ln.split()
        if f and f[0] == topic:
            return int(f[1])
    raise TestFailure(f"group {group} has no position on {topic}: {r.text}")


def test_filter_and_group():
    """`tally consume --filter PATTERN` gets from the node exactly the
    records whose key matches (exact, prefix, glob), the same as the client-
    side filter of a full read; with --group, the committed position moves
    past the records that did not match, also when the topic's last records
    do not; bad filters exit 2 naming the problem."""
    with Cluster(name="streams-filter") as c:
        c.start()
        c.tally_ok("topic", "create", "mixed")
        keys = ["order-1", "order-2", "cust-1", "order-10-eu", "cust-2", "order-3"]
        lines_in = "".join(f"{keys[i % len(keys)]}\tv{i}\n" for i in range(120))
        c.tally_ok("produce", "mixed", "--keyed", input=lines_in.encode())
        c.tally_ok("produce", "mixed", "no-key-value")
        c.tally_ok("produce", "mixed", "-k", "cust-9", "last")
        synced(c)
        r = c.tally_ok("consume", "mixed", "--format", "%o\t%k\t%v\n")
        everything = [ln.split("\t") for ln in lines(r)]
        end = int(everything[-1][0]) + 1

        def pick(pred):
            return [f"{o}\t{k}\t{v}" for o, k, v in everything if pred(k)]
        for pattern, pred in [("order-*", lambda k: k.startswith("order-")),
                              ("order-1", lambda k: k == "order-1"),
                              ("order-*-eu", lambda k: k == "order-10-eu"),
                              ("cust-?", lambda k: k.startswith("cust-") and len(k) == 6),
                              ("*", lambda k: k != ""),
                              ("nobody*", lambda k: False)]:
            for n in c.nodes:
                r = c.tally_ok("consume", "mixed", "--filter", pattern, "--node",
                               c.nodes[n].client, "--format", "%o\t%k\t%v\n")
                check(lines(r) == pick(pred),
                      f"--filter {pattern} on node {n}: {lines(r)[:4]}... != the client-side "
                      f"filter {pick(pred)[:4]}...")
        # A group over one category: in two runs, then its position is the
        # topic's end although the last records are not orders.
        orders = pick(lambda k: k.startswith("order-"))
        r = c.tally_ok("consume", "mixed", "--filter", "order-*", "--group", "proj", "-n", "30",
                       "--format", "%o\t%k\t%v\n")
        check(lines(r) == orders[:30], f"first run: {lines(r)[:3]}")
        r = c.tally_ok("consume", "mixed", "--filter", "order-*", "--group", "proj",
                       "--format", "%o\t%k\t%v\n")
        check(lines(r) == orders[30:], f"second run: {lines(r)[:3]} != {orders[30:33]}")
        check(group_position(c, "proj", "mixed") == end,
              f"group position {group_position(c, 'proj', 'mixed')} != the end {end}")
        r = c.tally_ok("consume", "mixed", "--filter", "order-*", "--group", "proj")
        check(r.out == b"", f"a third run prints nothing: {r!r}")
        # A category with no record at all moves a new group to the end too.
        c.tally_ok("consume", "mixed", "--filter", "nothing-*", "--group", "empty")
        check(group_position(c, "empty", "mixed") == end, "group 'empty' is not at the end")
        # Follow: a parked filtered fetch answers when a matching record comes.
        p = subprocess.Popen([TALLY, "-b", c.brokers(), "consume", "mixed", "--filter",
                              "order-*", "--from", str(end), "-f", "-n", "1", "--format",
                              "%k=%v\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        c.tally_ok("produce", "mixed", "-k", "cust-3", "skipped")
        c.tally_ok("produce", "mixed", "-k", "order-99", "wanted")
        out, err = p.communicate(timeout=30)
        check(p.returncode == 0 and out == b"order-99=wanted\n", f"follow: {out!r} {err!r}")
        # Bad filters.
        for pattern, what in [("", "empty"), ("x" * 257, "longer than 256"),
                              ("a\\", "lone"), ("*" * 9, "8 '*'")]:
            r = c.tally("consume", "mixed", "--filter", pattern)
            check(r.rc == 2 and what in r.errtext, f"--filter {pattern[:10]!r}: {r!r}")
        r = c.tally("consume", "mixed", "--filter", "a*", "-k", "a")
        check(r.rc == 2 and "not both" in r.errtext, f"--filter with -k: {r!r}")


def versions_values(r):
    return [tuple(ln.split(" ", 1)) for ln in lines(r)]


def test_stream_lifecycle():
    """`tally stream meta` truncates a stream before a version, keeps its
    last N versions or its records of the last MS, on every node, while
    versions keep counting; --clear shows everything again. A deleted
    stream (tombstone) reads with the tombstone as its last record on a
    retain topic; on a compact topic compaction leaves the tombstone only,
    then removes it (delete_retention_ms, 8 s here) and the stream reads empty while
    its version stays."""
    args = ["--set", "snapshot_threshold=8", "--set", "snapshot_trailing=4",
            "--set", "compaction_interval_ms=200", "--set", "delete_retention_ms=8000",
            "--set", "retention_interval_ms=300"]
    with Cluster(name="streams-life", extra_args=args) as c:
        c.start()
        c.tally_ok("topic", "create", "life")
        c.tally_ok("produce", "life", "--keyed",
                   input="".join(f"acct\te{v}\n" for v in range(1, 11)).encode())
        fmt = ["--format", "%V %v\n"]

        def read(*extra, node=None):
            synced(c)
            outs = []
            for n in ([node] if node else sorted(c.nodes)):
                outs.append(versions_values(c.tally_ok("consume", "life", "-k", "acct", *extra,
                                                       *fmt, "--node", c.nodes[n].client)))
            check(all(o == outs[0] for o in outs), f"nodes disagree: {outs}")
            return [int(v) for v, _ in outs[0]]
        check(read() == list(range(1, 11)), f"before: {read()}")
        c.tally_ok("stream", "meta", "life", "acct", "--truncate-before", "4")
        check(read() == list(range(4, 11)), f"truncate-before 4: {read()}")
        check(read("--backward") == list(range(10, 3, -1)), "truncate-before 4, backward")
        check(read("--from-version", "2") == list(range(4, 11)), "from 2 after truncate")
        check(read("--backward", "--from-version", "3") == [], "backward from 3 after truncate")
        c.tally_ok("stream", "meta", "life", "acct", "--max-count", "3")
        check(read() == [8, 9, 10], f"max-count 3: {read()}")
        c.tally_ok("produce", "life", "-k", "acct", "--expect-version", "10", "e11")
        check(read() == [9, 10, 11], f"max-count 3 after an append: {read()}")
        # max-age-ms: versions 1..11 are 6 s old, version 12 is new. (Whether
        # 12 is still shown depends on how fast the reads are: checked only
        # when they came back well within its age.)
        time.sleep(6)
        written = time.monotonic()
        c.tally_ok("produce", "life", "-k", "acct", "e12")
        c.tally_ok("stream", "meta", "life", "acct", "--max-age-ms", "5000")
        got = read()
        check(got in ([12], []), f"max-age-ms 5000: {got}")
        check(got == [12] or time.monotonic() - written > 4.5, f"max-age-ms 5000 hid e12: {got}")
        c.tally_ok("stream", "meta", "life", "acct", "--clear")
        check(read() == list(range(1, 13)), f"cleared: {read()}")
        # The metadata is a record of '$$acct', readable as a stream itself.
        r = c.tally_ok("consume", "life", "-k", "$$acct", "--backward", "-n", "1", *fmt)
        check(lines(r) == ["4 "], f"the metadata stream's last record is a tombstone: {lines(r)}")
        # Bad input.
        for extra, what in [(["--max-count", "0"], "from 1"), (["--truncate-before", "x"], "from 1"),
                            ([], "--clear"), (["--clear", "--max-count", "2"], "--clear")]:
            r = c.tally("stream", "meta", "life", "acct", *extra)
            check(r.rc == 2 and what in r.errtext, f"stream meta {extra}: {r!r}")
        r = c.tally("stream", "meta", "nosuch", "acct", "--max-count", "2")
        check(r.rc == 1 and "not found" in r.errtext, f"stream meta on a missing topic: {r!r}")
        # Delete on a retain topic: the tombstone is the last record.
        c.tally_ok("produce", "life", "-k", "acct", "--tombstone")
        check(read() == list(range(1, 14)), "deleted stream on a retain topic keeps its records")
        r = c.tally_ok("consume", "life", "-k", "acct", "--backward", "-n", "1", *fmt)
        check(lines(r) == ["13 "], f"the tombstone is version 13: {lines(r)}")

        # Delete on a compact topic: compaction leaves the tombstone, then
        # removes it once it is delete_retention_ms old.
        c.tally_ok("topic", "create", "kv", "--policy", "compact", "--segment-bytes", "4096")
        c.tally_ok("produce", "kv", "--keyed",
                   input="".join(f"gone\tg{v}\n" for v in range(1, 6)).encode())
        c.tally_ok("produce", "kv", "-k", "gone", "--tombstone")
        filler = "".join(f"f{i % 50}\t" + "x" * 100 + "\n" for i in range(400))
        synced(c)

        def kv_versions():
            outs = []
            for n in sorted(c.nodes):
                r = c.tally_ok("consume", "kv", "-k", "gone", *fmt, "--node", c.nodes[n].client)
                outs.append([int(v) for v, _ in versions_values(r)])
            return outs
        check(kv_versions() == [[1, 2, 3, 4, 5, 6]] * 3, f"before compaction: {kv_versions()}")
        seen = {"tombstone only": False}

        def compacted():
            c.tally_ok("produce", "kv", "--keyed", input=filler.encode())
            synced(c)
            vs = kv_versions()
            if any(v == [6] for v in vs):
                seen["tombstone only"] = True
            return all(v == [] for v in vs)
        wait_until(compacted, 120, "compaction to remove the deleted stream's records",
                   interval=0.5)
        check(seen["tombstone only"], "no read saw the tombstone alone between compaction and "
              "the tombstone's removal")
        r = c.tally("consume", "kv", "-k", "gone", "--from-version", "1", *fmt)
        check(r.rc == 0 and r.out == b"", f"an emptied stream reads empty: {r!r}")
        r = c.tally("produce", "kv", "-k", "gone", "--expect-version", "6", "back")
        check(r.rc == 0, f"the version survives the stream's removal: {r!r}")
        synced(c)
        check(kv_versions() == [[7]] * 3, f"after a new record: {kv_versions()}")


# -- the model test ----------------------------------------------------------------

class Model:
    """Per topic and key: the events in version order, [(offset, value or None)]."""

    def __init__(self, topics):
        self.ev = {t: {} for t in topics}

    def add(self, topic, key, offset, value):
        self.ev[topic].setdefault(key, []).append((offset, value))

    def version(self, topic, key):
        return len(self.ev[topic].get(key, []))


def scan_node(c, topic, node_id):
    """{key: set(offsets)} of what node @node_id holds of @topic (the
    offset-ordered scan, not the index)."""
    r = c.tally("consume", topic, "--from", "beginning", "--node", c.nodes[node_id].client,
                "--format", "%o\\t%k\\n", timeout=120)
    check(r.rc == 0, f"scan {topic} on node {node_id}: {r!r}")
    held = {}
    for ln in r.text.split("\n"):
        if ln:
            off, key = ln.split("\t", 1)
            held.setdefault(key, set()).add(int(off))
    return held


def check_streams(c, lib, model, topic, rnd, compacted, step):
    """Every stream of @topic on every running node: forward (all, paged),
    backward from the end, forward and backward from a random version.
    The events are the model's from the node's first_version to the end
    (a suffix), with the right offsets and values; on a retain topic the
    suffix is everything; on a compact topic it is exactly what the node's
    scan holds of the key."""
    trimmed = 0  # streams whose first versions are gone (compaction)
    for n in sorted(c.alive_ids()):
        node = c.nodes[n].client
        held = scan_node(c, topic, n) if compacted else None
        for key, evs in model.ev[topic].items():
            version = len(evs)

            def expect(lo, hi, backward=False):
                vs = range(hi, lo - 1, -1) if backward else range(lo, hi + 1)
                return [(v, evs[v - 1][0], evs[v - 1][1]) for v in vs]
            for attempt in range(200):
                rc, info, got = lib.read_all(topic, key, node=node, page=rnd.choice([7, 65536]))
                if rc != TALLY_UNAVAILABLE:
                    break
                time.sleep(0.2)  # backfilling: the history comes back
            check(rc == 0, f"step {step} node {n} {topic}/{key}: rc {rc} {info}")
            check(info["version"] == version,
                  f"step {step} node {n} {topic}/{key}: version {info['version']} != {version}")
            first = info["first"]
            trimmed += first > 1
            if not compacted:
                check(first == 1, f"step {step} node {n} {topic}/{key}: first {first} != 1")
            else:
                want_offsets = {evs[v - 1][0] for v in range(first, version + 1)}
                check(held.get(key, set()) == want_offsets,
                      f"step {step} node {n} {topic}/{key}: index from version {first} "
                      f"!= the scan's {sorted(held.get(key, set()))[:5]}...")
            check(got == expect(first, version),
                  f"step {step} node {n} {topic}/{key}: forward {got[:3]}... != model")
            rc, info, got = lib.read_all(topic, key, node=node, backward=True)
            check(rc == 0 and got == expect(first, version, True),
                  f"step {step} node {n} {topic}/{key}: backward {rc} {got[:3]}...")
            v = rnd.randint(1, version)
            rc, info, got = lib.read_all(topic, key, node=node, from_version=v)
            check(rc == 0 and got == expect(max(v, first), version),
                  f"step {step} node {n} {topic}/{key}: forward from {v}: {rc} {got[:3]}")
            rc, info, got = lib.read(topic, key, node=node, from_version=v, backward=True,
                                     max_events=3)
            check(rc == 0 and got == expect(max(first, v - 2), v, True)[:3] if v >= first
                  else got == [],
                  f"step {step} node {n} {topic}/{key}: backward from {v}: {rc} {got}")
    return trimmed


def log_text(c, node_id):
    with open(c.nodes[node_id].log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def test_model():
    """N_KEYS streams over a retain and a compact topic; steps of random
    plain appends, conditional appends (right and wrong expected version),
    tombstones, a SIGKILL restart, and a node that misses enough to install
    a snapshot and backfill; after each step every stream read on every
    node equals the model."""
    rnd = random.Random(18)
    topics = ["ledger", "state"]
    keys = [f"order-{i}" for i in range(N_KEYS)]
    model = Model(topics)
    with Cluster(name="streams-model", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "ledger", "--segment-bytes", "65536")
        c.tally_ok("topic", "create", "state", "--policy", "compact", "--segment-bytes", "16384")
        lib = Lib(c.brokers())
        counter = [0]

        def append_plain(topic, n, ids=None):
            recs = []
            for _ in range(n):
                k = rnd.choice(keys)
                counter[0] += 1
                tomb = rnd.random() < 0.05 and model.version(topic, k) > 0
                recs.append((k, None if tomb else f"v{counter[0]}"))
            rc, base, _, _ = lib.produce(topic, recs)
            check(rc == 0, f"produce: {rc} {lib.errmsg()}")
            for i, (k, v) in enumerate(recs):
                model.add(topic, k, base + i, v)

        def append_conditional(topic):
            k = rnd.choice(keys)
            have = model.version(topic, k)
            wrong = rnd.random() < 0.3
            want = have + 1 if wrong else have
            counter[0] += 1
            rc, base, _, actual = lib.produce(topic, [(k, f"c{counter[0]}")], [(k, want)])
            if wrong:
                check(rc == TALLY_CONDITION_FAILED and actual == have,
                      f"conditional with a wrong version: {rc} actual {actual} != {have}")
            else:
                check(rc == 0, f"conditional append: {rc} {lib.errmsg()}")
                model.add(topic, k, base, f"c{counter[0]}")

        def step_writes(ids=None, rounds=6):
            for _ in range(rounds):
                for t in topics:
                    append_plain(t, rnd.randint(50, 400))
                    for _ in range(5):
                        append_conditional(t)

        try:
            # Every key gets a first record, so every stream exists.
            for t in topics:
                for i in range(0, N_KEYS, 500):
                    recs = [(k, f"init-{k}") for k in keys[i:i + 500]]
                    rc, base, _, _ = lib.produce(t, recs)
                    check(rc == 0, f"produce: {rc}")
                    for j, (k, v) in enumerate(recs):
                        model.add(t, k, base + j, v)
            for step in range(4):
                step_writes()
                if step == 1:
                    victim = rnd.choice(sorted(c.nodes))
                    c.kill(victim)
                    step_writes(rounds=2)
                    c.restart(victim)
                    c.wait_leader()
                synced(c)
                time.sleep(0.5)  # let compaction run on the compact topic
                for t in topics:
                    check_streams(c, lib, model, t, rnd, t == "state", step)
                print(f"# step {step}: {sum(len(e) for t in topics for e in model.ev[t].values())}"
                      f" events checked on every node", flush=True)
            # Node 3 misses enough entries to need a snapshot, then backfills.
            c.kill(3)
            lib.close()
            lib = Lib(c.brokers([1, 2]))
            for _ in range(12):
                step_writes(rounds=2)
            c.restart(3)
            wait_until(lambda: "installing snapshot" in log_text(c, 3), 90,
                       "node 3 to install a snapshot")
            wait_until(lambda: len(re.findall(r"backfilled offsets", log_text(c, 3))) >= 2, 120,
                       "node 3 to backfill both topics")
            lib.close()
            lib = Lib(c.brokers())
            synced(c)
            for t in topics:
                check_streams(c, lib, model, t, rnd, t == "state", "install")
            # And once more after a restart of every node (clean), then a
            # SIGKILL of the leader.
            for n in sorted(c.nodes):
                c.stop(n)
                c.restart(n)
            c.wait_leader()
            leader = c.leader()
            step_writes(rounds=1)
            c.kill(leader)
            c.restart(leader)
            c.wait_leader()
            synced(c)
            for t in topics:
                trimmed = check_streams(c, lib, model, t, rnd, t == "state", "restarts")
                if t == "state":
                    check(trimmed > 0, "compaction removed no stream's first records: the "
                          "compacted case was not tested")
        finally:
            lib.close()


if __name__ == "__main__":
    reexec_for_libtally()
    run_tests([test_cli_stream_reads, test_libtally_errors_and_long_poll, test_filter_and_group,
               test_stream_lifecycle, test_model],
              per_test_timeout=900)
