# test_load.py - load and bad clients against a real 3-node cluster: 1,000
# concurrent connections to the leader (valid fetchers, slow readers that
# pipeline big fetches and never read, half-sent frames, a flood of
# malformed frames) while a normal `tally` client keeps producing and
# reading. The leader's RSS must stay under a bound, the normal client's
# calls must stay fast, nothing from the bad input may be written, and every
# connection must close cleanly afterwards.
#
# Run by `make check` (TALLY_BUILD_DIR set), or by hand:
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_load.py
import os
import random
import resource
import selectors
import socket
import struct
import sys
import threading
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

MAGIC = 0x7974
HEADER = struct.Struct("<IHBBHHI")  # frame_len, magic, version, flags, type, reserved, req id
T_HELLO, T_PRODUCE, T_FETCH = 1, 6, 7
MIB = 1 << 20

N_CONNS = 1000         # attack connections to the leader (max_connections is 1024)
N_SLOW = 24            # slow readers: pipeline SLOW_FETCHES big fetches, never read
SLOW_FETCHES = 64
N_BIG_HALF = 8         # claim an 8 MiB frame, send 2 MiB of it, wait
N_HALF = 260           # send half a (small) frame and wait
N_VALID = 300          # fetch, read the answer, again
# the rest (N_CONNS - above = 400): malformed frames
ATTACK_SECS = 12.0
CALL_LIMIT_S = 5.0     # every call of the normal client
# The bound of src/server/conn.c: per connection, queued answers stay under
# 8 + 4 MiB and the read buffer under one frame + a 64 KiB read chunk. The
# RSS limit is that bound for this load, plus the RSS before and some slack
# for the allocator: RSS before + 24 x 12 MiB (slow readers) + 8 x 4 MiB (a
# 2 MiB prefix of a frame, allocation doubled) + 1000 x 64 KiB + 64 MiB,
# about 450 MiB.
RSS_SLACK_MIB = 64
RSS_ASAN_FACTOR = 3  # ASan: shadow memory, redzones and a 256 MiB free quarantine


def frame(type_, body=b"", req_id=1, version=1, flags=0, frame_len=None):
    if frame_len is None:
        frame_len = HEADER.size - 4 + len(body)
    return HEADER.pack(frame_len, MAGIC, version, flags, type_, 0, req_id) + body


def s16(b):
    return struct.pack("<H", len(b)) + b


def fetch_body(topic, offset=0, max_bytes=4 * MIB, max_wait_ms=0):
    return s16(topic.encode()) + struct.pack("<QIIQ", offset, max_bytes, max_wait_ms, 0)


def recv_exact(s, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(s, deadline):
    hdr = recv_exact(s, HEADER.size, deadline)
    if hdr is None:
        return None
    frame_len, magic, _, flags, type_, _, req_id = HEADER.unpack(hdr)
    check(magic == MAGIC and HEADER.size - 4 <= frame_len < 32 * MIB, f"bad response header {hdr!r}")
    body = recv_exact(s, frame_len - (HEADER.size - 4), deadline)
    check(body is not None, "response cut short")
    return dict(flags=flags, type=type_, req_id=req_id, body=body)


def fetch_next_offset(addr, topic):
    """(next_offset, batches bytes) of @topic from the node at @addr."""
    deadline = time.monotonic() + 10
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(frame(T_FETCH, fetch_body(topic, 0, 64 << 10), req_id=5))
        f = read_frame(s, deadline)
    check(f is not None and not f["flags"] & 0x02, f"fetch {topic}: {f!r}")
    _, _, nxt = struct.unpack_from("<QQQ", f["body"])
    return nxt


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def n_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def is_asan(pid):
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return "libasan" in fh.read()
    except OSError:
        return False


def malformed_frames(rng, good_topics):
    """One burst for a malformed connection: (bytes, framing_lost). Frames
    that keep framing (the connection stays open and answers an error) are
    sent many at a time; framing-lost ones end the connection."""
    kind = rng.randrange(8)
    topic = rng.choice(good_topics).encode()
    if kind == 0:   # bad magic
        return struct.pack("<IHBBHHI", 12, 0xdead, 1, 0, 6, 0, 7) + os.urandom(32), True
    if kind == 1:   # frame_len shorter than the header
        return struct.pack("<IHBBHHI", 3, MAGIC, 1, 0, 6, 0, 7), True
    if kind == 2:   # oversized
        return frame(T_PRODUCE, frame_len=0x7ffffff0), True
    burst = []
    for i in range(50):
        k = rng.randrange(5)
        if k == 0:      # unknown type
            burst.append(frame(999, os.urandom(8), req_id=i))
        elif k == 1:    # a version we do not speak, with a valid-looking produce
            burst.append(frame(T_PRODUCE, s16(topic) + struct.pack("<IQI", 1000, 2**64 - 1, 0)
                               + struct.pack("<I", 64) + os.urandom(64), req_id=i, version=9))
        elif k == 2:    # a response frame sent to the server
            burst.append(frame(T_PRODUCE, s16(topic) + os.urandom(40), req_id=i, flags=1))
        elif k == 3:    # produce whose batch is garbage (bad checksum/format)
            burst.append(frame(T_PRODUCE, s16(topic) + struct.pack("<IQI", 1000, 2**64 - 1, 0)
                               + struct.pack("<I", 200) + os.urandom(200), req_id=i))
        else:           # produce whose body lies about its lengths
            burst.append(frame(T_PRODUCE, struct.pack("<H", 200) + topic[:2], req_id=i))
    return b"".join(burst), False


class Attack:
    """Every attack socket, driven by one selector thread."""

    def __init__(self, addr, big_topic, good_topics):
        self.addr = addr
        self.big = big_topic
        self.good_topics = good_topics
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # sock -> dict(kind, ...)
        self.stop = threading.Event()
        self.counts = dict(connected=0, connect_failed=0, valid_fetches=0, valid_errors=0,
                           malformed_sent=0, malformed_answers=0, malformed_reconnects=0,
                           slow_fetches_sent=0, half_frames=0, big_half_bytes=0,
                           unexpected_close=0)
        self.err = None
        self.rng = random.Random(1)

    def connect(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind == "slow":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        try:
            s.connect(self.addr)
        except OSError:
            self.counts["connect_failed"] += 1
            s.close()
            return None
        s.setblocking(False)
        self.conns[s] = dict(kind=kind, rbuf=bytearray(), out=bytearray(), next_id=1)
        self.counts["connected"] += 1
        return s

    def open_all(self):
        n_bad = N_CONNS - N_SLOW - N_BIG_HALF - N_HALF - N_VALID
        plan = (["slow"] * N_SLOW + ["bighalf"] * N_BIG_HALF + ["half"] * N_HALF
                + ["valid"] * N_VALID + ["bad"] * n_bad)
        self.rng.shuffle(plan)
        for kind in plan:
            s = self.connect(kind)
            if s is None:
                continue
            st = self.conns[s]
            if kind == "slow":
                st["out"] += b"".join(frame(T_FETCH, fetch_body(self.big), req_id=i)
                                      for i in range(SLOW_FETCHES))
                self.counts["slow_fetches_sent"] += SLOW_FETCHES
            elif kind == "bighalf":
                st["out"] += frame(T_PRODUCE, frame_len=8 * MIB)[:HEADER.size] + b"\0" * (2 * MIB)
                self.counts["big_half_bytes"] += 2 * MIB
            elif kind == "half":
                full = frame(T_FETCH, fetch_body(self.rng.choice(self.good_topics)))
                st["out"] += full[:self.rng.randint(1, len(full) - 1)]
                self.counts["half_frames"] += 1
            elif kind == "valid":
                self.queue_valid(st)
            else:
                self.queue_bad(st)
            self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def queue_valid(self, st):
        st["out"] += frame(T_FETCH, fetch_body(self.rng.choice(self.good_topics + [self.big]),
                                               0, 64 << 10), req_id=st["next_id"])
        st["next_id"] += 1

    def queue_bad(self, st):
        data, lost = malformed_frames(self.rng, self.good_topics)
        st["out"] += data
        st["lost"] = lost
        self.counts["malformed_sent"] += 1 if lost else 50

    def on_frames(self, s, st):
        while len(st["rbuf"]) >= HEADER.size:
            frame_len = struct.unpack_from("<I", st["rbuf"])[0]
            if len(st["rbuf"]) < frame_len + 4:
                return
            flags = st["rbuf"][7]
            del st["rbuf"][:frame_len + 4]
            if st["kind"] == "valid":
                if flags & 0x02:
                    self.counts["valid_errors"] += 1
                else:
                    self.counts["valid_fetches"] += 1
                if not self.stop.is_set():
                    self.queue_valid(st)
            elif st["kind"] == "bad":
                self.counts["malformed_answers"] += 1
                if flags & 0x02 == 0:
                    raise TestFailure("a malformed frame got a success answer")
                st["answers"] = st.get("answers", 0) + 1
                if st["answers"] % 50 == 0 and not self.stop.is_set():
                    self.queue_bad(st)

    def closed(self, s, st):
        self.sel.unregister(s)
        del self.conns[s]
        s.close()
        if st["kind"] == "bad" and st.get("lost"):
            self.counts["malformed_reconnects"] += 1
            if not self.stop.is_set():  # keep the flood going on a new connection
                ns = self.connect("bad")
                if ns is not None:
                    self.queue_bad(self.conns[ns])
                    self.sel.register(ns, selectors.EVENT_READ | selectors.EVENT_WRITE)
        else:
            self.counts["unexpected_close"] += 1

    def run(self):
        try:
            while self.conns and not (self.stop.is_set() and self.drained()):
                for key, ev in self.sel.select(timeout=0.1):
                    s = key.fileobj
                    st = self.conns.get(s)
                    if st is None:
                        continue
                    if ev & selectors.EVENT_WRITE and st["out"]:
                        try:
                            n = s.send(st["out"][:1 << 20])
                            del st["out"][:n]
                        except BlockingIOError:
                            pass
                        except OSError:
                            self.closed(s, st)
                            continue
                    if ev & selectors.EVENT_READ and st["kind"] != "slow":
                        try:
                            data = s.recv(1 << 20)
                        except BlockingIOError:
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            self.closed(s, st)
                            continue
                        if st["kind"] in ("valid", "bad"):
                            st["rbuf"] += data
                            self.on_frames(s, st)
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0)
                    if st["kind"] == "slow":
                        want = selectors.EVENT_WRITE if st["out"] else 0
                    if want == 0:
                        self.sel.unregister(s)
                        st["parked"] = True
                    elif want != key.events:
                        self.sel.modify(s, want)
        except Exception as e:  # reported by the main thread
            self.err = e

    def drained(self):
        return True


def test_load_and_bad_clients():
    """1,000 connections to the leader (valid fetchers, slow readers,
    half frames, malformed floods) while a normal client produces and reads:
    bounded RSS, bounded latency, nothing written from bad input, clean
    close."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N_CONNS + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with Cluster(name="load") as c:
        leader = c.start()
        lnode = c.nodes[leader]
        pid = lnode.proc.pid
        addr = ("127.0.0.1", lnode.client_port)
        asan = is_asan(pid)
        print(f"#   leader {leader} pid {pid}, {'ASan' if asan else 'normal'} build, "
              f"tallyd fd limit: {open(f'/proc/{pid}/limits').read().split('Max open files')[1].split()[0]}",
              flush=True)
        for t in ("big", "good", "other"):
            c.tally_ok("topic", "create", t)
        # ~1 MiB topic: 256 records of 4000 bytes.
        rng = random.Random(7)
        big_vals = [bytes(rng.choice(b"abcdefghij") for _ in range(4000)) for _ in range(256)]
        c.tally_ok("produce", "big", input=b"\n".join(big_vals) + b"\n", timeout=60)
        c.tally_ok("produce", "other", "x")
        big_next = fetch_next_offset(addr, "big")
        check(big_next == 256, f"big: next offset {big_next}")
        base_fds = n_fds(pid)
        base_rss = rss_kib(pid)
        rss_limit = (base_rss + (N_SLOW * 12 + N_BIG_HALF * 4 + N_CONNS // 16 + RSS_SLACK_MIB) * 1024)
        if asan:
            rss_limit = base_rss + (rss_limit - base_rss) * RSS_ASAN_FACTOR + 256 * 1024
        print(f"#   before: RSS {base_rss // 1024} MiB, {base_fds} fds", flush=True)

        attack = Attack(addr, "big", ["good", "other"])
        t0 = time.monotonic()
        attack.open_all()
        print(f"#   opened {attack.counts['connected']} connections in "
              f"{time.monotonic() - t0:.1f}s ({attack.counts['connect_failed']} failed)", flush=True)
        th = threading.Thread(target=attack.run, daemon=True)
        th.start()

        peak = [base_rss, base_fds]
        sampling = threading.Event()

        def sampler():
            while not sampling.is_set():
                try:
                    peak[0] = max(peak[0], rss_kib(pid))
                    peak[1] = max(peak[1], n_fds(pid))
                except OSError:
                    return
                time.sleep(0.05)
        st = threading.Thread(target=sampler, daemon=True)
        st.start()

        # The normal client: produce one record, read the topic, repeat.
        lat = []
        produced = []
        end = time.monotonic() + ATTACK_SECS
        i = 0
        while time.monotonic() < end and i < 200:
            v = f"good-{i:04d}"
            t1 = time.monotonic()
            r = c.tally("--timeout", "4000", "produce", "good", v, brokers=lnode.client,
                        timeout=CALL_LIMIT_S + 5)
            dt = time.monotonic() - t1
            check(r.rc == 0, f"normal produce failed under attack: {r!r}")
            lat.append(("produce", dt))
            produced.append(v.encode())
            t1 = time.monotonic()
            r = c.tally("--timeout", "4000", "consume", "good", "--format", "%v\\n",
                        brokers=lnode.client, timeout=CALL_LIMIT_S + 5)
            dt = time.monotonic() - t1
            check(r.rc == 0, f"normal consume failed under attack: {r!r}")
            check(r.out.split(b"\n")[:-1] == produced,
                  f"consume under attack: want {len(produced)} records, got {r.out[-200:]!r}")
            lat.append(("consume", dt))
            check(attack.err is None, f"attack thread: {attack.err!r}")
            i += 1
        attack.stop.set()
        during_fds = n_fds(pid)
        n_open = len(attack.conns)
        sampling.set()
        st.join(5)
        th.join(10)
        check(not th.is_alive(), "attack thread did not stop")
        check(attack.err is None, f"attack thread: {attack.err!r}")
        c.check_up()

        worst = max(lat, key=lambda x: x[1])
        lp = sorted(d for _, d in lat)
        print(f"#   normal client: {len(lat)} calls ({len(produced)} produce + consume), "
              f"median {lp[len(lp) // 2] * 1000:.0f} ms, p99 {lp[int(len(lp) * 0.99)] * 1000:.0f} ms, "
              f"max {worst[1] * 1000:.0f} ms ({worst[0]})", flush=True)
        print(f"#   leader RSS peak {peak[0] // 1024} MiB (before {base_rss // 1024} MiB, "
              f"limit {rss_limit // 1024} MiB); fds peak {peak[1]}, at the end of the attack "
              f"{during_fds}, attack connections open {n_open}", flush=True)
        print("#   counts: " + ", ".join(f"{k}={v}" for k, v in attack.counts.items()), flush=True)
        check(worst[1] < CALL_LIMIT_S, f"a normal call took {worst[1]:.1f}s ({worst[0]})")
        check(peak[0] < rss_limit, f"leader RSS peak {peak[0] // 1024} MiB over the limit")
        check(attack.counts["connect_failed"] == 0, "some attack connections were refused")
        check(attack.counts["unexpected_close"] == 0,
              f"{attack.counts['unexpected_close']} connections were closed by the server "
              "though their input kept framing")
        check(peak[1] >= base_fds + N_CONNS, f"the leader held at most {peak[1]} fds, "
              f"want {base_fds} + {N_CONNS}: not every connection was accepted")
        check(attack.counts["valid_fetches"] > N_VALID, "the valid fetchers were not served")
        check(attack.counts["valid_errors"] == 0, "a valid fetch got an error")

        # Four slow readers now read everything: every answer, in order.
        slow = [s for s, stt in attack.conns.items() if stt["kind"] == "slow"][:4]
        deadline = time.monotonic() + 20
        for s in slow:
            s.setblocking(True)
            for want_id in range(SLOW_FETCHES):
                f = read_frame(s, deadline)
                check(f is not None and f["req_id"] == want_id and not f["flags"] & 0x02
                      and len(f["body"]) > 512 * 1024, f"slow reader answer {want_id}: "
                      f"{None if f is None else (f['req_id'], f['flags'], len(f['body']))}")
        print(f"#   {len(slow)} slow readers then read all {SLOW_FETCHES} answers each", flush=True)

        for s in list(attack.conns):
            s.close()
        wait_until(lambda: n_fds(pid) <= base_fds + 2, 15,
                   "the leader to close every attack connection")
        print(f"#   after close: {n_fds(pid)} fds (before {base_fds}), RSS {rss_kib(pid) // 1024} MiB",
              flush=True)
        c.check_up()

        # Nothing from the bad input was written: offsets moved only by the
        # normal producer, on every node.
        for i, n in c.nodes.items():
            a = ("127.0.0.1", n.client_port)
            wait_until(lambda: fetch_next_offset(a, "good") == len(produced), 10,
                       f"node {i} to hold {len(produced)} records of good")
            check(fetch_next_offset(a, "big") == 256, f"node {i}: big moved")
            check(fetch_next_offset(a, "other") == 1, f"node {i}: other moved")
        r = c.tally_ok("consume", "good", "--format", "%v\\n")
        check(r.out.split(b"\n")[:-1] == produced, "good holds other records than produced")


if __name__ == "__main__":
    run_tests([test_load_and_bad_clients], per_test_timeout=120)
