#!/usr/bin/env python3
"""fake_server.py - a stand-in tally cluster that speaks docs/protocol.md.

It lets libtally be tested without tallyd: every fake node shares one
in-memory catalog, and a node's mode decides how it behaves (leader,
follower that redirects, no leader known, drops the connection after
receiving a produce, corrupts fetched batches, closes idle connections).
Batches are verified and stamped like the real leader does, with XXH3
from the system libxxhash through ctypes.

Standard library only (Debian's /usr/bin/python3).

    python3 fake_server.py --selftest BUILD/.libs/libtally.so
        drives libtally through ctypes against fake clusters; prints one
        "ok"/"not ok" line per check and exits non-zero on any failure.
    python3 fake_server.py --serve N
        runs N fake nodes (node 1 leader) until interrupted and prints
        their addresses.
"""
import ctypes
import ctypes.util
import socket
import socketserver
import struct
import sys
import threading
import time

MAGIC = 0x7974
VERSION = 1
HEADER = struct.Struct("<IHBBHHI")  # frame_len magic version flags type reserved id
FLAG_RESPONSE = 0x01
FLAG_ERROR = 0x02

HELLO, METADATA, TOPIC_CREATE, TOPIC_DELETE, TOPIC_LIST, PRODUCE, FETCH, \
    MEMBER_ADD, MEMBER_REMOVE, MEMBER_TRANSFER = range(1, 11)

# include/tally.h error codes (wire-stable).
NOMEM, INVAL, IOERR, CORRUPT, NOTFOUND, EXISTS, NOTLEADER, NOLEADER, \
    LEADERSHIP_LOST, TIMEOUT, TOOLARGE, PROTO, VERSION_ERR, UNKNOWN_REQUEST, \
    OUT_OF_RANGE, CONDITION_FAILED, NOSPACE, SHUTDOWN, CONNECT, UNAVAILABLE, \
    BUSY, EOF = range(1, 23)

BATCH_HEADER = 88

_xxh = None


def xxh3(data):
    """XXH3-64 (seed 0) of @data, from the system libxxhash."""
    global _xxh
    if _xxh is None:
        name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
        _xxh = ctypes.CDLL(name)
        _xxh.XXH3_64bits.restype = ctypes.c_uint64
        _xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return _xxh.XXH3_64bits(bytes(data), len(data))


class Reader:
    """Bounds-checked little-endian reader; raises ValueError when short."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self):
        return struct.unpack("<q", self.take(8))[0]

    def str(self):
        return self.take(self.u16()).decode()

    def blob(self):
        return self.take(self.u32())

    def end(self):
        if self.pos != len(self.data):
            raise ValueError("trailing bytes")


def s_(text):
    b = text.encode()
    return struct.pack("<H", len(b)) + b


def blob_(b):
    return struct.pack("<I", len(b)) + b


def frame(type_, flags, req_id, body):
    return HEADER.pack(12 + len(body), MAGIC, VERSION, flags, type_, 0, req_id) + body


def error_body(code, message, leader_id=0, leader_addr="", actual=0):
    return struct.pack("<H", code) + s_(message[:255]) + struct.pack("<Q", leader_id) + \
        s_(leader_addr) + struct.pack("<Q", actual)


class Cluster:
    """State shared by all fake nodes, as if replication were instant."""

    def __init__(self):
        self.lock = threading.Lock()
        self.topics = {}
        self.index = 10
        self.nodes = []
        self.leader_id = 0
        self.produce_seen = 0
        self.requests = []  # (node id, type) of every request, for assertions

    def add_node(self, mode="follower"):
        node = FakeNode(self, len(self.nodes) + 1, mode)
        self.nodes.append(node)
        if mode == "leader" or mode == "drop_produce" or mode == "close_idle":
            self.leader_id = node.node_id
        return node

    def leader(self):
        for n in self.nodes:
            if n.node_id == self.leader_id:
                return n
        return None

    def stop(self):
        for n in self.nodes:
            n.stop()


class Handler(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            chunk = self.request.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return b

    def handle(self):
        node = self.server.node
        try:
            while True:
                hdr = self.recv_exact(16)
                flen, magic, ver, flags, type_, _, req_id = HEADER.unpack(hdr)
                if magic != MAGIC or flen < 12:
                    self.request.sendall(frame(0, FLAG_RESPONSE | FLAG_ERROR, 0,
                                               error_body(PROTO, "bad frame")))
                    return
                body = self.recv_exact(flen - 12)
                out = node.dispatch(type_, ver, body, self.request)
                if out is None:
                    return  # drop the connection without answering
                code, resp = out
                flags = FLAG_RESPONSE | (FLAG_ERROR if code else 0)
                self.request.sendall(frame(type_, flags, req_id, resp))
                if node.mode == "close_idle" and type_ != HELLO:
                    return
        except (ConnectionError, OSError):
            return


class FakeNode:
    def __init__(self, cluster, node_id, mode):
        self.cluster = cluster
        self.node_id = node_id
        self.mode = mode
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.node = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def is_leader(self):
        return self.cluster.leader_id == self.node_id

    def not_leader(self):
        leader = self.cluster.leader()
        if leader is not None and leader is not self:
            return NOTLEADER, error_body(NOTLEADER, "node %d is not the leader" % self.node_id,
                                         leader.node_id, leader.addr)
        return NOLEADER, error_body(NOLEADER, "no leader is known to node %d" % self.node_id)

    def dispatch(self, type_, ver, body, sock):
        c = self.cluster
        with c.lock:
            c.requests.append((self.node_id, type_))
        if ver != VERSION:
            return VERSION_ERR, error_body(VERSION_ERR, "version %d unsupported" % ver)
        r = Reader(body)
        try:
            if type_ == HELLO:
                lo, hi, _name = r.u8(), r.u8(), r.str()
                r.end()
                if not lo <= VERSION <= hi:
                    return VERSION_ERR, error_body(VERSION_ERR, "no common version")
                return 0, struct.pack("<BQ", VERSION, self.node_id) + s_("fake")
            if type_ == METADATA:
                r.u8()
                r.end()
                with c.lock:
                    role = 3 if self.is_leader() else 1
                    out = struct.pack("<QQBQQQQI", self.node_id, c.leader_id, role, 5, c.index,
                                      c.index, c.index, len(c.nodes))
                    for n in c.nodes:
                        out += struct.pack("<Q", n.node_id) + s_(n.addr) + \
                            s_("127.0.0.1:%d" % (9000 + n.node_id)) + b"\x01"
                return 0, out
            if type_ == TOPIC_LIST:
                r.u8()
                r.end()
                with c.lock:
                    out = struct.pack("<I", len(c.topics))
                    for name, t in sorted(c.topics.items()):
                        out += s_(name) + struct.pack("<BqqqQQ", t["policy"], t["rms"],
                                                      t["rbytes"], t["sbytes"], 0, t["next"])
                return 0, out
            if type_ == FETCH:
                return self.fetch(r)
            # Writes.
            if not self.is_leader():
                return self.not_leader()
            if type_ == TOPIC_CREATE:
                name = r.str()
                policy, rms, rbytes, sbytes = r.u8(), r.i64(), r.i64(), r.i64()
                r.end()
                with c.lock:
                    if name in c.topics:
                        return EXISTS, error_body(EXISTS, "topic %s already exists" % name)
                    c.topics[name] = dict(policy=policy, rms=rms, rbytes=rbytes,
                                          sbytes=sbytes, batches=[], next=0)
                    c.index += 1
                    return 0, struct.pack("<Q", c.index)
            if type_ == TOPIC_DELETE:
                name = r.str()
                r.end()
                with c.lock:
                    if name not in c.topics:
                        return NOTFOUND, error_body(NOTFOUND, "topic %s not found" % name)
                    del c.topics[name]
                    c.index += 1
                    return 0, struct.pack("<Q", c.index)
            if type_ == PRODUCE:
                return self.produce(r, sock)
            if type_ in (MEMBER_ADD, MEMBER_REMOVE, MEMBER_TRANSFER):
                r.u64()
                if type_ == MEMBER_ADD:
                    r.str()
                    r.str()
                r.end()
                with c.lock:
                    c.index += 1
                    return 0, struct.pack("<Q", c.index)
            return UNKNOWN_REQUEST, error_body(UNKNOWN_REQUEST, "unknown type %d" % type_)
        except ValueError as e:
            return PROTO, error_body(PROTO, "malformed request: %s" % e)

    def produce(self, r, sock):
        c = self.cluster
        topic, _timeout, _expect_offset, n_conds = r.str(), r.u32(), r.u64(), r.u32()
        batch = bytearray(r.blob())
        for _ in range(n_conds):  # conditions: the fake does not evaluate them
            r.blob()
            r.u64()
        r.end()
        with c.lock:
            c.produce_seen += 1
        if self.mode == "drop_produce":
            sock.shutdown(socket.SHUT_RDWR)
            return None
        if len(batch) < BATCH_HEADER or batch[0:4] != b"TLYB":
            return CORRUPT, error_body(CORRUPT, "bad batch")
        if xxh3(batch[0:80]) != struct.unpack_from("<Q", batch, 80)[0] or \
                xxh3(batch[88:]) != struct.unpack_from("<Q", batch, 72)[0]:
            return CORRUPT, error_body(CORRUPT, "batch checksum mismatch")
        count, = struct.unpack_from("<I", batch, 12)
        last_delta, = struct.unpack_from("<I", batch, 68)
        with c.lock:
            t = c.topics.get(topic)
            if t is None:
                return NOTFOUND, error_body(NOTFOUND, "topic %s not found" % topic)
            c.index += 1
            base = t["next"]
            now = int(time.time() * 1000)
            first, maxts = struct.unpack_from("<qq", batch, 24)
            struct.pack_into("<QqqQ", batch, 16, base, now, now + (maxts - first), c.index)
            struct.pack_into("<Q", batch, 80, xxh3(batch[0:80]))
            t["batches"].append(bytes(batch))
            t["next"] = base + last_delta + 1
            return 0, struct.pack("<QIQ", base, count, c.index)

    def fetch(self, r):
        c = self.cluster
        topic, offset, max_bytes, _wait, _min_index = r.str(), r.u64(), r.u32(), r.u32(), r.u64()
        r.end()
        with c.lock:
            t = c.topics.get(topic)
            if t is None:
                return NOTFOUND, error_body(NOTFOUND, "topic %s not found" % topic)
            if offset > t["next"]:
                return OUT_OF_RANGE, error_body(OUT_OF_RANGE, "offset %d is outside 0..%d"
                                                % (offset, t["next"]))
            out = b""
            for b in t["batches"]:
                base, = struct.unpack_from("<Q", b, 16)
                last, = struct.unpack_from("<I", b, 68)
                if base + last >= offset and (not out or len(out) + len(b) <= max_bytes):
                    out += b
            if self.mode == "corrupt_fetch" and out:
                out = out[:-1] + bytes([out[-1] ^ 0x55])
            return 0, struct.pack("<QQQ", c.index, 0, t["next"]) + blob_(out)


# ---------------------------------------------------------------------------
# Self-test: libtally through ctypes.
# ---------------------------------------------------------------------------

class RecordIn(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("key_len", ctypes.c_size_t),
                ("value", ctypes.c_char_p), ("value_len", ctypes.c_size_t)]


class ProduceResult(ctypes.Structure):
    _fields_ = [("base_offset", ctypes.c_uint64), ("count", ctypes.c_uint32),
                ("raft_index", ctypes.c_uint64)]


class Record(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint64), ("timestamp_ms", ctypes.c_int64),
                ("key", ctypes.c_void_p), ("key_len", ctypes.c_size_t),
                ("value", ctypes.c_void_p), ("value_len", ctypes.c_size_t)]


class FetchResult(ctypes.Structure):
    _fields_ = [("records", ctypes.POINTER(Record)), ("n", ctypes.c_size_t),
                ("next_offset", ctypes.c_uint64), ("high_offset", ctypes.c_uint64),
                ("start_offset", ctypes.c_uint64), ("applied_index", ctypes.c_uint64),
                ("impl", ctypes.c_void_p)]


class FetchOptions(ctypes.Structure):
    _fields_ = [("max_bytes", ctypes.c_uint32), ("max_wait_ms", ctypes.c_uint32),
                ("min_index", ctypes.c_uint64), ("node", ctypes.c_char_p)]


class TopicConfig(ctypes.Structure):
    _fields_ = [("policy", ctypes.c_int), ("retention_ms", ctypes.c_int64),
                ("retention_bytes", ctypes.c_int64), ("segment_bytes", ctypes.c_int64)]


class TopicInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 256), ("config", TopicConfig),
                ("start_offset", ctypes.c_uint64), ("next_offset", ctypes.c_uint64)]


class Member(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("client_addr", ctypes.c_char * 64),
                ("raft_addr", ctypes.c_char * 64), ("voter", ctypes.c_int),
                ("reachable", ctypes.c_int), ("role", ctypes.c_int),
                ("applied_index", ctypes.c_uint64), ("term", ctypes.c_uint64),
                ("commit_index", ctypes.c_uint64), ("spare", ctypes.c_int),
                ("clock_known", ctypes.c_int), ("clock_offset_ms", ctypes.c_int64),
                ("clock_warning", ctypes.c_int)]


class Status(ctypes.Structure):
    _fields_ = [("leader_id", ctypes.c_uint64), ("term", ctypes.c_uint64),
                ("commit_index", ctypes.c_uint64), ("members", ctypes.POINTER(Member)),
                ("n_members", ctypes.c_size_t)]


class Client:
    def __init__(self, lib, brokers, timeout_ms=2000):
        self.lib = lib
        self.h = ctypes.c_void_p()
        rv = lib.tally_client_create(brokers.encode(), ctypes.byref(self.h))
        if rv != 0:
            raise RuntimeError("tally_client_create(%s) = %d" % (brokers, rv))
        lib.tally_client_set_timeout(self.h, timeout_ms)

    def close(self):
        self.lib.tally_client_destroy(self.h)

    def errmsg(self):
        return self.lib.tally_errmsg(self.h).decode()

    def outcome_unknown(self):
        return self.lib.tally_outcome_unknown(self.h)

    def produce(self, topic, records):
        arr = (RecordIn * len(records))()
        for i, (k, v) in enumerate(records):
            arr[i].key, arr[i].key_len = k, len(k) if k is not None else 0
            arr[i].value, arr[i].value_len = v, len(v) if v is not None else 0
        res = ProduceResult()
        rv = self.lib.tally_produce(self.h, topic.encode(), arr, len(records), ctypes.byref(res))
        return rv, res

    def fetch(self, topic, offset, node=None, max_bytes=0):
        opts = FetchOptions()
        self.lib.tally_fetch_options_init(ctypes.byref(opts))
        if max_bytes:
            opts.max_bytes = max_bytes
        if node:
            opts.node = node.encode()
        res = FetchResult()
        rv = self.lib.tally_fetch(self.h, topic.encode(), offset, ctypes.byref(opts),
                                  ctypes.byref(res))
        recs = []
        if rv == 0:
            for i in range(res.n):
                rec = res.records[i]
                k = ctypes.string_at(rec.key, rec.key_len) if rec.key else None
                v = ctypes.string_at(rec.value, rec.value_len) if rec.value else None
                recs.append((rec.offset, k, v))
            next_offset = res.next_offset
            self.lib.tally_fetch_result_free(ctypes.byref(res))
            return rv, recs, next_offset
        return rv, recs, None

    def topic_create(self, name):
        cfg = TopicConfig()
        self.lib.tally_topic_config_init(ctypes.byref(cfg))
        return self.lib.tally_topic_create(self.h, name.encode(), ctypes.byref(cfg))

    def topic_list(self):
        p = ctypes.POINTER(TopicInfo)()
        n = ctypes.c_size_t()
        rv = self.lib.tally_topic_list(self.h, ctypes.byref(p), ctypes.byref(n))
        names = []
        if rv == 0:
            names = [(p[i].name.decode(), p[i].next_offset) for i in range(n.value)]
            libc = ctypes.CDLL(None)
            libc.free(p)
        return rv, names

    def status(self):
        st = Status()
        rv = self.lib.tally_status_get(self.h, ctypes.byref(st))
        out = None
        if rv == 0:
            out = dict(leader_id=st.leader_id, term=st.term, members=[
                dict(id=st.members[i].id, client=st.members[i].client_addr.decode(),
                     reachable=st.members[i].reachable, role=st.members[i].role)
                for i in range(st.n_members)])
            self.lib.tally_status_free(ctypes.byref(st))
        return rv, out


def load_lib(path):
    lib = ctypes.CDLL(path)
    lib.tally_errmsg.restype = ctypes.c_char_p
    lib.tally_strerror.restype = ctypes.c_char_p
    lib.tally_fetch.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64,
                                ctypes.c_void_p, ctypes.c_void_p]
    lib.tally_client_destroy.argtypes = [ctypes.c_void_p]
    lib.tally_client_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tally_member_add.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p]
    lib.tally_member_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.tally_member_transfer.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    return lib


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def selftest(path):
    lib = load_lib(path)
    failures = []
    count = [0]

    def check(cond, name, detail=""):
        count[0] += 1
        print("%s %d - %s%s" % ("ok" if cond else "not ok", count[0], name,
                                "" if cond else ": " + str(detail)))
        if not cond:
            failures.append(name)

    # A follower, the leader, and a dead broker; the client knows only the
    # follower and the dead one, so it must be redirected to the leader.
    cl = Cluster()
    follower = cl.add_node("follower")
    leader = cl.add_node("leader")
    dead = "127.0.0.1:%d" % closed_port()
    c = Client(lib, "%s,%s" % (dead, follower.addr))

    rv = c.topic_create("orders")
    check(rv == 0, "topic create follows NOTLEADER to the leader", c.errmsg())
    rv = c.topic_create("orders")
    check(rv == EXISTS and "already exists" in c.errmsg(), "EXISTS carries the server message",
          (rv, c.errmsg()))
    rv, res = c.produce("orders", [(b"k1", b"v1"), (None, b"v2"), (b"k3", None)])
    check(rv == 0 and res.base_offset == 0 and res.count == 3, "produce 3 records",
          (rv, c.errmsg()))
    rv, res = c.produce("orders", [(b"k4", b"v4")])
    check(rv == 0 and res.base_offset == 3, "second produce gets the next offset",
          (rv, res.base_offset))
    rv, recs, nxt = c.fetch("orders", 0)
    check(rv == 0 and recs == [(0, b"k1", b"v1"), (1, None, b"v2"), (2, b"k3", None),
                               (3, b"k4", b"v4")] and nxt == 4,
          "fetch returns keys, values, no-key and tombstone", (rv, recs, nxt, c.errmsg()))
    rv, recs, nxt = c.fetch("orders", 1, node=follower.addr)
    check(rv == 0 and [r[0] for r in recs] == [1, 2, 3] and nxt == 4,
          "fetch from a follower skips records below the offset", (rv, recs, nxt))
    rv, recs, nxt = c.fetch("orders", 4)
    check(rv == 0 and recs == [] and nxt == 4, "fetch at the end is empty", (rv, recs, nxt))
    rv, _, _ = c.fetch("orders", 9)
    check(rv == OUT_OF_RANGE, "fetch past the end is OUT_OF_RANGE", (rv, c.errmsg()))
    rv, _, _ = c.fetch("nope", 0)
    check(rv == NOTFOUND and "nope" in c.errmsg(), "fetch of a missing topic", c.errmsg())

    big = bytes(range(256)) * 16
    rv, res = c.produce("orders", [(b"big", big), (b"big2", big)])
    check(rv == 0, "produce of a compressible batch", c.errmsg())
    with cl.lock:
        flags = cl.topics["orders"]["batches"][-1][5]
    check(flags & 1 == 1, "a records section >= 1 KiB is lz4-compressed", flags)
    rv, recs, nxt = c.fetch("orders", res.base_offset)
    check(rv == 0 and len(recs) == 2 and recs[0][2] == big and recs[1][1] == b"big2",
          "fetch decompresses", (rv, len(recs), c.errmsg()))

    rv, names = c.topic_list()
    check(rv == 0 and names == [("orders", 6)], "topic list", (rv, names))

    rv, st = c.status()
    ok = rv == 0 and st["leader_id"] == leader.node_id and len(st["members"]) == 2 and \
        all(m["reachable"] for m in st["members"]) and \
        [m["role"] for m in st["members"]] == [1, 3]
    check(ok, "status combines both members' answers", (rv, st, c.errmsg()))
    c.close()

    # Read-ahead: an answer that leaves records on the node sends the FETCH
    # that continues it at once; the next fetch from there takes its
    # answer, and anything else on that connection drops it first.
    cl7 = Cluster()
    n7 = cl7.add_node("leader")
    c = Client(lib, n7.addr)
    c.topic_create("ra")
    for i in range(4):
        c.produce("ra", [(b"k", b"v%d" % i)])

    def fetches():
        time.sleep(0.1)  # let a read-ahead arrive
        with cl7.lock:
            return sum(1 for _, t in cl7.requests if t == FETCH)

    got = []
    rv, recs, nxt = c.fetch("ra", 0, max_bytes=1)
    got.append((rv, recs, nxt, fetches()))
    rv, recs, nxt = c.fetch("ra", 1, max_bytes=1)
    got.append((rv, recs, nxt, fetches()))
    check(got == [(0, [(0, b"k", b"v0")], 1, 2), (0, [(1, b"k", b"v1")], 2, 3)],
          "read-ahead: one batch per answer; the next fetch takes the answer sent ahead "
          "(FETCH requests seen 2, then 3)", got)
    rv, recs, nxt = c.fetch("ra", 0, max_bytes=1)
    check((rv, recs, nxt) == (0, [(0, b"k", b"v0")], 1),
          "read-ahead: a fetch elsewhere drops the answer sent ahead", (rv, recs, nxt))
    rv, res = c.produce("ra", [(b"k", b"v4")])
    check(rv == 0 and res.base_offset == 4,
          "read-ahead: a produce on that connection drops the answer sent ahead",
          (rv, res.base_offset, c.errmsg()))
    rv, recs, nxt = c.fetch("ra", 3)
    n = fetches()
    rv2, recs2, _ = c.fetch("ra", 5)
    check(rv == 0 and [r[2] for r in recs] == [b"v3", b"v4"] and nxt == 5 and rv2 == 0 and
          recs2 == [] and fetches() == n + 1,
          "read-ahead: none when an answer reaches the end", (rv, recs, nxt, rv2, n, fetches()))
    c.close()
    cl7.stop()

    # Corrupt batches are caught end to end.
    cl2 = Cluster()
    ldr = cl2.add_node("leader")
    bad = cl2.add_node("corrupt_fetch")
    c = Client(lib, ldr.addr)
    c.topic_create("t")
    c.produce("t", [(b"a", b"b")])
    rv, _, _ = c.fetch("t", 0, node=bad.addr)
    check(rv == CORRUPT and "checksum" in c.errmsg(), "corrupt batch -> TALLY_CORRUPT",
          (rv, c.errmsg()))
    c.close()
    cl2.stop()

    # No leader anywhere: NOLEADER after the timeout, naming what was tried.
    cl3 = Cluster()
    a = cl3.add_node("follower")
    b = cl3.add_node("follower")
    c = Client(lib, a.addr, timeout_ms=400)
    t0 = time.time()
    rv = c.topic_create("x")
    took = time.time() - t0
    check(rv == NOLEADER and a.addr in c.errmsg() and b.addr in c.errmsg() and
          0.3 < took < 2.0, "no leader: NOLEADER within the timeout, naming the nodes",
          (rv, took, c.errmsg()))
    c.close()
    cl3.stop()

    # Nothing reachable: CONNECT.
    c = Client(lib, "127.0.0.1:%d" % closed_port(), timeout_ms=300)
    rv = c.topic_create("x")
    check(rv == CONNECT and "connect" in c.errmsg(), "no node reachable: CONNECT",
          (rv, c.errmsg()))
    check(c.outcome_unknown() == 0, "a write no node took is not of unknown outcome",
          (rv, c.errmsg()))
    rv, _ = c.status()
    check(rv == CONNECT, "status with no node reachable", (rv, c.errmsg()))
    c.close()

    # The leader drops the connection after reading a produce: the outcome
    # is unknown, and a produce is idempotent, so it is sent again (same
    # batch: same producer id and sequence) until the timeout.
    cl4 = Cluster()
    drop = cl4.add_node("drop_produce")
    c = Client(lib, drop.addr)
    c.topic_create("t")
    rv, _ = c.produce("t", [(b"a", b"b")])
    check(rv == TIMEOUT and cl4.produce_seen >= 2,
          "connection lost after sending a produce: retried with the same batch until the timeout",
          (rv, cl4.produce_seen, c.errmsg()))
    check(c.outcome_unknown() == 1 and "may or may not" in c.errmsg(),
          "tally_outcome_unknown says so after a produce whose connection was lost",
          (c.outcome_unknown(), c.errmsg()))
    c.close()
    cl4.stop()

    # A node that closes idle connections: the client notices before
    # sending and reconnects, so writes are not reported as unknown.
    cl5 = Cluster()
    idle = cl5.add_node("close_idle")
    c = Client(lib, idle.addr)
    ok = c.topic_create("t") == 0
    time.sleep(0.05)
    for i in range(3):
        rv, res = c.produce("t", [(b"k", b"v%d" % i)])
        ok = ok and rv == 0 and res.base_offset == i
        time.sleep(0.05)
    check(ok, "reconnect after the node closed an idle connection", (rv, c.errmsg()))
    c.close()
    cl5.stop()

    # A member that stopped shows up as unreachable; the others answer.
    cl6 = Cluster()
    n1 = cl6.add_node("leader")
    cl6.add_node("follower")
    n3 = cl6.add_node("follower")
    n3.stop()
    c = Client(lib, n1.addr)
    rv, st = c.status()
    check(rv == 0 and [(m["id"], m["reachable"]) for m in st["members"]] ==
          [(1, 1), (2, 1), (3, 0)] and st["leader_id"] == 1,
          "status reports a stopped member as unreachable", (rv, st, c.errmsg()))
    # Membership changes go to the leader; malformed addresses are refused.
    rv1 = lib.tally_member_add(c.h, 4, b"127.0.0.1:7004/127.0.0.1:7104")
    rv2 = lib.tally_member_remove(c.h, 3)
    rv3 = lib.tally_member_transfer(c.h, 0)
    check((rv1, rv2, rv3) == (0, 0, 0), "member add/remove/transfer", (rv1, rv2, rv3))
    rv1 = lib.tally_member_add(c.h, 4, b"127.0.0.1:7004")
    rv2 = lib.tally_member_add(c.h, 0, b"127.0.0.1:7004/127.0.0.1:7104")
    check((rv1, rv2) == (INVAL, INVAL), "member add refuses a bad address or id 0", (rv1, rv2))
    c.close()
    for n in cl6.nodes[:2]:
        n.stop()

    # Bad broker lists are refused.
    h = ctypes.c_void_p()
    check(lib.tally_client_create(b"127.0.0.1", ctypes.byref(h)) == INVAL and
          lib.tally_client_create(b"127.0.0.1:0", ctypes.byref(h)) == INVAL and
          lib.tally_client_create(b"", ctypes.byref(h)) == INVAL,
          "malformed broker lists are INVAL")

    cl.stop()
    print("1..%d" % count[0])
    return 1 if failures else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--selftest":
        return selftest(argv[2])
    if len(argv) == 3 and argv[1] == "--serve":
        cl = Cluster()
        cl.add_node("leader")
        for _ in range(int(argv[2]) - 1):
            cl.add_node("follower")
        print(",".join(n.addr for n in cl.nodes), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            cl.stop()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
