# test_fetch_zero_copy.py - FETCH answers sent with sendfile(2) from the
# segment files: byte-exact answers across segment boundaries, pipelined
# with other requests (answers in request order), on the leader and a
# follower; and a fetch whose segment retention deletes while its answer is
# still being sent; and the same answers over TLS, where there is no
# sendfile(2): the batches are read into the answer (on a worker when
# they are not in the page cache) and encrypted.
#
# The expected bytes come from the node's own segment files, so "exact"
# means the answer is the stored batches, whole, with the boundaries
# docs/protocol.md promises (the batch holding the offset first, whole
# batches up to max_bytes, at least one, never past one segment).
#
# Run by `make check` (TALLY_BUILD_DIR set), or by hand:
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_fetch_zero_copy.py [test...]

import os
import random
import socket
import ssl
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, run_tests, wait_until  # noqa: E402

MAGIC = 0x7974
T_METADATA, T_TOPIC_LIST, T_FETCH = 2, 5, 7
OUT_OF_RANGE = 15
HDR = struct.Struct("<IHBBHHI")


def frame(req_id, type_, body):
    return HDR.pack(12 + len(body), MAGIC, 1, 0, type_, 0, req_id) + body


def fetch_body(topic, offset, max_bytes):
    t = topic.encode()
    return struct.pack("<H", len(t)) + t + struct.pack("<QIIQ", offset, max_bytes, 0, 0)


class Conn:
    def __init__(self, addr, rcvbuf=0, ca=None):
        host, port = addr.split(":")
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # A small receive window fills the node's socket quickly, so
            # its sends meet EAGAIN and wait for room (the poll path).
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(60)
        self.s.connect((host, int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ca is not None:
            ctx = ssl.create_default_context(cafile=ca)
            self.s = ctx.wrap_socket(self.s, server_hostname=host)

    def recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            k = self.s.recv(min(n - len(out), 1 << 20))
            check(k, "the node closed the connection")
            out += k
        return bytes(out)

    def answer(self):
        """(flags, type, request id, body) of the next answer."""
        (flen,) = struct.unpack("<I", self.recv_exact(4))
        rest = self.recv_exact(flen)
        magic, _, flags, type_, _, rid = struct.unpack_from("<HBBHHI", rest, 0)
        check(magic == MAGIC, f"bad magic in an answer: {magic:#x}")
        return flags, type_, rid, rest[12:]

    def close(self):
        self.s.close()


def fetch_answer(body):
    """applied, start, next, batch bytes of a FETCH_RESP body."""
    applied, start, nxt, blen = struct.unpack_from("<QQQI", body, 0)
    check(len(body) == 28 + blen, f"FETCH_RESP of {len(body)} bytes holds a blob of {blen}")
    return applied, start, nxt, body[28:]


def segments(node, topic):
    d = os.path.join(node.data, "topics", topic)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".seg"))


def read_batches(paths):
    """[(segment index, base, last, bytes)] of every batch in @paths."""
    out = []
    for si, p in enumerate(paths):
        with open(p, "rb") as f:
            data = f.read()
        check(data[:4] == b"TLYS", f"{p}: no segment header")
        pos = 32  # the segment header (docs/disk-format.md)
        while pos + 88 <= len(data):
            check(data[pos:pos + 4] == b"TLYB", f"{p}: no batch at {pos}")
            (blen,) = struct.unpack_from("<I", data, pos + 8)
            (base,) = struct.unpack_from("<Q", data, pos + 16)
            (delta,) = struct.unpack_from("<I", data, pos + 68)
            out.append((si, base, base + delta, data[pos:pos + blen]))
            pos += blen
    return out


def expected(batches, offset, max_bytes):
    """The bytes docs/protocol.md promises for FETCH(offset, max_bytes)."""
    i = next(k for k, b in enumerate(batches) if b[1] <= offset <= b[2])
    got, total = [batches[i][3]], len(batches[i][3])
    j = i + 1
    while (j < len(batches) and batches[j][0] == batches[i][0] and total < max_bytes and
           len(batches[j][3]) <= max_bytes - total):
        got.append(batches[j][3])
        total += len(batches[j][3])
        j += 1
    return b"".join(got)


def after(data):
    """The offset after the last batch in @data (where a reader goes on)."""
    pos, nxt = 0, None
    while pos < len(data):
        (blen,) = struct.unpack_from("<I", data, pos + 8)
        (base,) = struct.unpack_from("<Q", data, pos + 16)
        (delta,) = struct.unpack_from("<I", data, pos + 68)
        nxt = base + delta + 1
        pos += blen
    return nxt


def next_offset(addr, topic):
    c = Conn(addr)
    c.s.sendall(frame(1, T_FETCH, fetch_body(topic, 0, 1)))
    flags, _, _, body = c.answer()
    c.close()
    return fetch_answer(body)[2] if not flags & 2 else -1


def wait_applied(c, node_id, topic, count):
    addr = c.nodes[node_id].client
    wait_until(lambda: next_offset(addr, topic) >= count, 60,
               f"node {node_id} to apply {count} records of {topic}")


def seg_fds(pid, path):
    """Links of process @pid's fds that point at @path (deleted or not)."""
    out = []
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target == path or target == path + " (deleted)":
            out.append(target)
    return out


def test_pipelined_fetches_exact():
    """Pipelined FETCHes mixed with METADATA/TOPIC_LIST: answers in order, batches byte-exact across segments"""
    with Cluster(3, name="zerocopy") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "zc", "--segment-bytes", 65536)
        n = 6000
        c.tally_ok("bench", "produce", "zc", "--count", n, "--size", 300, "--batch", 20,
                   timeout=120)
        follower = next(i for i in c.nodes if i != leader)
        for node_id in (follower, leader):
            wait_applied(c, node_id, "zc", n)
            node = c.nodes[node_id]
            paths = segments(node, "zc")
            check(len(paths) >= 10, f"want many segments, have {len(paths)}")
            batches = read_batches(paths)
            check(batches[-1][2] + 1 == n, f"segments end at {batches[-1][2] + 1}, want {n}")

            # The whole topic read in order, as a consumer does, is the
            # segment files back to back.
            conn = Conn(node.client)
            off, got, rid = 0, [], 1
            while off < n:
                conn.s.sendall(frame(rid, T_FETCH, fetch_body("zc", off, 100000)))
                flags, _, r, body = conn.answer()
                check(not flags & 2 and r == rid, f"fetch at {off}: flags {flags} id {r}")
                _, _, nxt, data = fetch_answer(body)
                check(nxt == n, f"next_offset {nxt}, want {n}")
                check(data == expected(batches, off, 100000), f"fetch at {off}: bytes differ")
                got.append(data)
                off = after(data)
                rid += 1
            whole = b"".join(open(p, "rb").read()[32:] for p in paths)
            check(b"".join(got) == whole, "the topic read in order differs from the segments")

            # Pipelined: everything sent before any answer is read, on a
            # connection with a small receive window, so the node also
            # meets a full socket (EAGAIN) in the middle of answers.
            conn.close()
            conn = Conn(node.client, rcvbuf=8192)
            rng = random.Random(7 + node_id)
            reqs, wire = [], []
            for k in range(400):
                rid = 1000 + k
                if k % 9 == 4:
                    reqs.append((rid, T_METADATA, None))
                    wire.append(frame(rid, T_METADATA, b"\0"))
                    continue
                if k % 9 == 7:
                    reqs.append((rid, T_TOPIC_LIST, None))
                    wire.append(frame(rid, T_TOPIC_LIST, b"\0"))
                    continue
                if k % 50 == 10:
                    off = n          # at the end: empty answer
                elif k % 50 == 20:
                    off = n + 5      # past the end: OUT_OF_RANGE
                else:
                    off = rng.randrange(n)
                mb = rng.choice([1, 100, 7000, 65536, 1 << 20, 4 << 20])
                reqs.append((rid, T_FETCH, (off, mb)))
                wire.append(frame(rid, T_FETCH, fetch_body("zc", off, mb)))
            conn.s.sendall(b"".join(wire))
            for rid, type_, arg in reqs:
                flags, t, r, body = conn.answer()
                check(r == rid and t == type_, f"answer for id {r} type {t}, want {rid} {type_}")
                if type_ != T_FETCH:
                    check(not flags & 2, f"request {rid} type {type_} failed")
                    continue
                off, mb = arg
                if off > n:
                    check(flags & 2 and struct.unpack_from("<H", body, 0)[0] == OUT_OF_RANGE,
                          f"fetch past the end: want OUT_OF_RANGE, flags {flags}")
                    continue
                check(not flags & 2, f"fetch {rid} at {off}: error answer")
                _, start, nxt, data = fetch_answer(body)
                check(start == 0 and nxt == n, f"fetch {rid}: start {start} next {nxt}")
                want = b"" if off == n else expected(batches, off, mb)
                check(data == want, f"fetch {rid} at {off} max {mb}: {len(data)} bytes, "
                                    f"want {len(want)} (or different bytes)")
            conn.close()
            print(f"#   node {node_id}: {len(paths)} segments, {len(reqs)} pipelined requests")


def test_fetch_while_retention_deletes():
    """Answers in flight keep their segment: retention deletes it meanwhile, the bytes still arrive whole"""
    with Cluster(3, name="zcretain") as c:
        leader = c.start()
        mib = 1 << 20
        c.tally_ok("topic", "create", "rt", "--policy", "delete", "--segment-bytes", mib,
                   "--retention-bytes", 3 * mib)
        follower = next(i for i in c.nodes if i != leader)
        node = c.nodes[follower]

        def produce_until(nseg):
            # Produce until the follower has @nseg segments (the payloads
            # may compress, so the record count is not known in advance).
            total = 0
            for _ in range(40):
                c.tally_ok("bench", "produce", "rt", "--count", 500, "--size", 1000,
                           "--batch", 10, timeout=120)
                total += 500
                wait_applied(c, follower, "rt", next_offset(c.nodes[leader].client, "rt"))
                if len(segments(node, "rt")) >= nseg:
                    return
            check(False, f"the follower never reached {nseg} segments")

        produce_until(3)  # about 2-3 MiB: under the retention limit
        paths = segments(node, "rt")
        seg0 = paths[0]
        check(os.path.basename(seg0) == "00000000000000000000.seg", f"first segment {seg0}")
        batches = read_batches(paths)
        want = expected(batches, 0, mib)
        check(len(want) > mib // 2, f"segment 0 answer only {len(want)} bytes")

        # Many big answers of segment 0, none read yet: the node sends
        # until the socket is full and keeps the rest queued.
        conn = Conn(node.client)
        k = 24
        conn.s.sendall(b"".join(frame(1 + i, T_FETCH, fetch_body("rt", 0, mib))
                                for i in range(k)))
        pid = node.proc.pid
        wait_until(lambda: len(seg_fds(pid, seg0)) >= 2, 30,
                   "the node to hold an answer's own fd of segment 0")

        # Past the retention limit: the next retention pass (every 30 s)
        # deletes segment 0 while its answers are still being sent.
        produce_until(len(paths) + 3)
        wait_until(lambda: not os.path.exists(seg0), 90, "retention to delete segment 0")
        fds = seg_fds(pid, seg0)
        check(fds and all(f.endswith(" (deleted)") for f in fds),
              f"after retention, fds of segment 0: {fds}")
        print(f"#   segment 0 deleted with {len(fds)} answer fd(s) still open on it")

        data_answers = 0
        for i in range(k):
            flags, t, r, body = conn.answer()
            check(r == 1 + i and t == T_FETCH, f"answer id {r}, want {1 + i}")
            if flags & 2:
                # Dispatched after the deletion (backpressure held it back).
                code = struct.unpack_from("<H", body, 0)[0]
                check(code == OUT_OF_RANGE, f"answer {r}: error {code}, want OUT_OF_RANGE")
                continue
            _, _, _, data = fetch_answer(body)
            check(data == want, f"answer {r}: {len(data)} bytes differ from segment 0's")
            data_answers += 1
        check(data_answers >= 1, "no answer of segment 0 was in flight")
        conn.close()
        wait_until(lambda: not seg_fds(pid, seg0), 30, "the answers' fds to be closed")
        print(f"#   {data_answers} of {k} answers carried segment 0 whole")


def test_cold_segments_read_on_a_worker():
    """Segments evicted from the page cache are read on a worker before sendfile; answers exact and in order"""
    with Cluster(3, name="zccold", extra_args=["--log-level", "debug"]) as c:
        leader = c.start()
        c.tally_ok("topic", "create", "cold", "--segment-bytes", 65536)
        n = 3000
        c.tally_ok("bench", "produce", "cold", "--count", n, "--size", 300, "--batch", 20,
                   timeout=120)
        follower = next(i for i in c.nodes if i != leader)
        wait_applied(c, follower, "cold", n)
        node = c.nodes[follower]
        paths = segments(node, "cold")
        batches = read_batches(paths)
        # Write the pages back and drop them from the page cache (clean
        # pages of these files only; nothing else on the machine).
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        conn = Conn(node.client, rcvbuf=8192)
        rng = random.Random(11)
        reqs, wire = [], []
        for k in range(60):
            rid = 1 + k
            if k % 7 == 3:
                reqs.append((rid, T_METADATA, None))
                wire.append(frame(rid, T_METADATA, b"\0"))
                continue
            off, mb = rng.randrange(n), rng.choice([100, 20000, 1 << 20])
            reqs.append((rid, T_FETCH, (off, mb)))
            wire.append(frame(rid, T_FETCH, fetch_body("cold", off, mb)))
        conn.s.sendall(b"".join(wire))
        for rid, type_, arg in reqs:
            flags, t, r, body = conn.answer()
            check(r == rid and t == type_ and not flags & 2,
                  f"answer id {r} type {t} flags {flags}, want {rid} {type_}")
            if type_ == T_FETCH:
                off, mb = arg
                check(fetch_answer(body)[3] == expected(batches, off, mb),
                      f"fetch {rid} at {off} max {mb}: bytes differ")
        conn.close()
        with open(node.log_path, errors="replace") as f:
            cold = f.read().count("is not in the page cache: reading it on a worker first")
        check(cold >= 1, "no answer was read on a worker (were the pages not dropped?)")
        print(f"#   {cold} answers were read into the page cache on a worker first")


def test_tls_fetches_exact():
    """Over TLS (no sendfile): pipelined FETCHes of cold and cached segments are byte-exact and in order"""
    from test_tls import TlsCluster, make_certs
    with tempfile.TemporaryDirectory(prefix="tally-zctls-") as d:
        certs = make_certs(os.path.join(d, "certs"))
        with TlsCluster(certs, name="zctls", extra_args=["--log-level", "debug"]) as c:
            leader = c.start()
            c.tally_ok("topic", "create", "tz", "--segment-bytes", 65536)
            n = 3000
            c.tally_ok("bench", "produce", "tz", "--count", n, "--size", 300, "--batch", 20,
                       timeout=120)
            follower = next(i for i in c.nodes if i != leader)
            node = c.nodes[follower]
            ca = os.path.join(certs, "ca.crt")

            def tls_next(addr):
                k = Conn(addr, ca=ca)
                k.s.sendall(frame(1, T_FETCH, fetch_body("tz", 0, 1)))
                flags, _, _, body = k.answer()
                k.close()
                return fetch_answer(body)[2] if not flags & 2 else -1

            wait_until(lambda: tls_next(node.client) >= n, 60, "the follower to apply")
            paths = segments(node, "tz")
            batches = read_batches(paths)
            # Drop every other segment from the page cache: those answers
            # are read on a worker, the others on the loop.
            for p in paths[::2]:
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            conn = Conn(node.client, rcvbuf=8192, ca=ca)
            rng = random.Random(12)
            reqs, wire = [], []
            for k in range(60):
                rid = 1 + k
                if k % 7 == 3:
                    reqs.append((rid, T_METADATA, None))
                    wire.append(frame(rid, T_METADATA, b"\0"))
                    continue
                off, mb = rng.randrange(n), rng.choice([100, 20000, 1 << 20])
                reqs.append((rid, T_FETCH, (off, mb)))
                wire.append(frame(rid, T_FETCH, fetch_body("tz", off, mb)))
            conn.s.sendall(b"".join(wire))
            for rid, type_, arg in reqs:
                flags, t, r, body = conn.answer()
                check(r == rid and t == type_ and not flags & 2,
                      f"answer id {r} type {t} flags {flags}, want {rid} {type_}")
                if type_ == T_FETCH:
                    off, mb = arg
                    check(fetch_answer(body)[3] == expected(batches, off, mb),
                          f"fetch {rid} at {off} max {mb}: bytes differ")
            conn.close()
            with open(node.log_path, errors="replace") as f:
                cold = f.read().count("is not in the page cache: reading it on a worker first")
            check(cold >= 1, "no answer was read on a worker (were the pages not dropped?)")
            print(f"#   {cold} answers were read on a worker first")


if __name__ == "__main__":
    run_tests([
        test_pipelined_fetches_exact,
        test_fetch_while_retention_deletes,
        test_cold_segments_read_on_a_worker,
        test_tls_fetches_exact,
    ])
