# test_delay_proxy.py - test/lib/delay-proxy, the user-space network delay
# of the benchmarks: a measured round trip through it matches its setting
# (no round trip shorter than the delays, the median within a generous
# margin above them), jitter spreads round trips without reordering bytes,
# the rate cap holds a transfer back, a slow reader makes the writer wait
# instead of filling the proxy's memory, ends of stream and refused
# targets are passed on, and bad arguments are refused; and libbindmap.so,
# which moves a node's own sockets aside for the proxy.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_delay_proxy.py [NAME...]
#
# The upper margins are wide (a loaded 2-core machine delays a wake-up by
# milliseconds); the lower bounds are exact: the proxy may never deliver
# early.

import hashlib
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, free_ports, no_server, run_tests, wait_until  # noqa: E402
from netdelay import DELAY_PROXY, DelayProxy  # noqa: E402
import harness  # noqa: E402

BINDMAP = os.path.join(harness.BUILD_DIR, "test", "lib", ".libs", "libbindmap.so")

# A round trip may exceed its setting by this much at the median (the
# scheduler of a busy machine, two loop wake-ups per direction).
MEDIAN_SLACK_MS = 6.0


class EchoServer:
    """Echoes every byte back on each accepted connection; closes its side
    when the peer ends its stream."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        c.close()

    def close(self):
        self.lsock.close()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise AssertionError(f"stream ended after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def round_trips_ms(port, count, size=100):
    """@count ping-pongs of @size bytes through 127.0.0.1:@port, in ms."""
    s = connect(port)
    out = []
    msg = os.urandom(size)
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(msg)
            check(recv_exact(s, size) == msg, "the echo differs from what was sent")
            out.append((time.perf_counter() - t0) * 1000.0)
    finally:
        s.close()
    return out


def with_proxy(targets, **kw):
    return DelayProxy(targets, **kw)


@no_server
def test_round_trip_matches_delay():
    """With 4 ms each way, no round trip is under 8 ms and the median is
    within a few ms of 8; with 1/7 ms (forward/reverse) the same holds for
    8 ms; at 0 ms the proxy only forwards."""
    echo = EchoServer()
    try:
        for setting, want in (("4", 8.0), ("1/7", 8.0), ("0", 0.0)):
            p = with_proxy([echo.port], delay_ms=setting)
            try:
                rtts = round_trips_ms(p.ports[0], 40)
            finally:
                p.close()
            med = statistics.median(rtts)
            print(f"# delay {setting} ms: round trip min {min(rtts):.3f} median {med:.3f} "
                  f"max {max(rtts):.3f} ms (setting {want} ms)", flush=True)
            check(min(rtts) >= want, f"a round trip of {min(rtts):.3f} ms is shorter than the "
                  f"delays of {want} ms")
            check(med <= want + MEDIAN_SLACK_MS,
                  f"median round trip {med:.3f} ms is far above the setting of {want} ms")
    finally:
        echo.close()


@no_server
def test_jitter_spreads_and_keeps_order():
    """With 5 ms +- 4 ms each way, round trips spread over more than 4 ms
    and stay within [2, 18 + slack] ms; a 4 MiB stream of small writes
    comes back byte for byte in order."""
    echo = EchoServer()
    p = with_proxy([echo.port], delay_ms=5, jitter_ms=4, seed=7)
    try:
        rtts = round_trips_ms(p.ports[0], 60)
        print(f"# jitter: round trip min {min(rtts):.3f} median {statistics.median(rtts):.3f} "
              f"max {max(rtts):.3f} ms", flush=True)
        check(min(rtts) >= 2.0, f"a round trip of {min(rtts):.3f} ms is below 2 x (5 - 4) ms")
        check(max(rtts) - min(rtts) > 4.0, f"round trips did not spread: {sorted(rtts)}")
        check(statistics.median(rtts) <= 18.0 + MEDIAN_SLACK_MS, "median far above 5+4 ms x 2")

        s = connect(p.ports[0])
        data = os.urandom(4 << 20)
        got = hashlib.sha256()
        received = [0]

        def reader():
            while received[0] < len(data):
                b = s.recv(1 << 16)
                if not b:
                    break
                got.update(b)
                received[0] += len(b)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        rng = random.Random(3)
        off = 0
        while off < len(data):
            n = rng.randint(1, 3000)
            s.sendall(data[off:off + n])
            off += n
        t.join(timeout=120)
        s.close()
        check(received[0] == len(data), f"received {received[0]} of {len(data)} bytes")
        check(got.digest() == hashlib.sha256(data).digest(), "the bytes came back reordered")
    finally:
        p.close()
        echo.close()


@no_server
def test_rate_cap():
    """At a cap of 4 MB/s forward, 8 MB take at least 1.9 s to arrive;
    the reverse direction (uncapped) answers a ping at once afterwards."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    p = with_proxy([sink.getsockname()[1]], rate_bytes="4000000/0")
    try:
        s = connect(p.ports[0])
        c, _ = sink.accept()
        total = 8_000_000
        t0 = time.monotonic()
        threading.Thread(target=lambda: s.sendall(b"x" * total), daemon=True).start()
        n = 0
        while n < total:
            b = c.recv(1 << 16)
            check(b, "the stream ended early")
            n += len(b)
        secs = time.monotonic() - t0
        print(f"# 8 MB at a 4 MB/s cap: {secs:.2f} s", flush=True)
        check(secs >= 1.9, f"8 MB passed a 4 MB/s cap in {secs:.2f} s")
        c.sendall(b"pong")
        check(recv_exact(s, 4) == b"pong", "the reverse direction lost bytes")
        s.close()
        c.close()
    finally:
        p.close()
        sink.close()


@no_server
def test_slow_reader_holds_writer_back():
    """A receiver that reads nothing: the sender is stopped after the
    proxy's 32 MiB high-water mark plus socket buffers (well under 128 MiB
    sent, proxy RSS under 160 MiB); once the receiver reads, all of it
    arrives intact."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    p = with_proxy([sink.getsockname()[1]], delay_ms=1)
    try:
        s = connect(p.ports[0])
        c, _ = sink.accept()
        s.setblocking(False)
        chunk = b"y" * (1 << 20)
        sent = 0
        idle_since = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sent < (512 << 20):
            try:
                sent += s.send(chunk)
                idle_since = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - idle_since > 2.0:
                    break  # held back for 2 s: the proxy stopped reading
                time.sleep(0.01)
        rss = p.rss_kib()
        print(f"# a reader that reads nothing: {sent >> 20} MiB sent before the writer "
              f"was held back; proxy RSS {rss >> 10} MiB", flush=True)
        check(sent < (128 << 20), f"{sent >> 20} MiB went into a connection nobody reads")
        check(rss < 160 * 1024, f"the proxy holds {rss >> 10} MiB")
        s.setblocking(True)
        n = 0
        while n < sent:
            b = c.recv(1 << 20)
            check(b, "the stream ended early")
            check(b.count(b"y") == len(b), "foreign bytes in the stream")
            n += len(b)
        check(n == sent, f"received {n} of {sent} bytes")
        s.close()
        c.close()
    finally:
        p.close()
        sink.close()


@no_server
def test_end_of_stream_and_refused_target():
    """A client's end of stream reaches the echo server, whose close comes
    back as an end of stream (after the delayed bytes); a connection to a
    target that refuses is closed."""
    echo = EchoServer()
    dead = free_ports(1)[0]
    p = with_proxy([echo.port, dead], delay_ms=2)
    try:
        s = connect(p.ports[0])
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        check(recv_exact(s, 10) == b"last words", "bytes before the end were lost")
        check(s.recv(10) == b"", "the end of stream was not passed back")
        s.close()

        s = connect(p.ports[1])
        s.settimeout(10)
        try:
            b = s.recv(10)
        except ConnectionResetError:
            b = b""
        check(b == b"", f"a connection to a dead target read {b!r}")
        s.close()
        # The proxy is still up and serving.
        check(round_trips_ms(p.ports[0], 3), "no round trip after the refused target")
    finally:
        p.close()
        echo.close()


@no_server
def test_bad_arguments():
    """Bad options and link specs exit 2 with a message; a taken port exits 1."""
    for argv in (["--delay-ms", "-1", "0=1"], ["--jitter-ms", "x", "0=1"], ["0:1"],
                 ["0=0"], []):
        r = subprocess.run([DELAY_PROXY] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        check(r.returncode == 2, f"{argv}: exit {r.returncode}, want 2")
        check(b"usage" in r.stderr or b"bad" in r.stderr, f"{argv}: says {r.stderr!r}")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    r = subprocess.run([DELAY_PROXY, f"{busy.getsockname()[1]}=1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    busy.close()
    check(r.returncode == 1 and b"listen" in r.stderr, f"taken port: {r}")


@no_server
def test_bindmap():
    """libbindmap.so (bench/matrix.sh's companion of the proxy) makes a bind
    to a mapped address bind the other one, leaves other binds alone, and
    fails every bind (EINVAL, with a message) when its setting is malformed."""
    check(os.path.exists(BINDMAP), f"{BINDMAP} is not built")
    asked, bound, other = free_ports(3)
    prog = ("import socket,sys\n"
            "for p in map(int, sys.argv[1:]):\n"
            "    s = socket.socket(); s.bind(('127.0.0.1', p)); print(s.getsockname()[1])\n")
    env = dict(os.environ, LD_PRELOAD=BINDMAP,
               TALLY_BINDMAP=f"127.0.0.1:{asked}=127.0.0.1:{bound}")
    r = subprocess.run(["/usr/bin/python3", "-c", prog, str(asked), str(other)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(r.returncode == 0, f"remapped bind failed: {r.stderr!r}")
    check(r.stdout.split() == [str(bound).encode(), str(other).encode()],
          f"bound {r.stdout.split()}, want [{bound}, {other}]")
    env["TALLY_BINDMAP"] = f"127.0.0.1:{asked}"
    r = subprocess.run(["/usr/bin/python3", "-c", prog, str(other)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(r.returncode != 0 and b"Invalid argument" in r.stderr and b"bad TALLY_BINDMAP" in r.stderr,
          f"a malformed TALLY_BINDMAP did not fail the bind: {r!r}")


if __name__ == "__main__":
    if not os.access(DELAY_PROXY, os.X_OK):
        print(f"SKIP: {DELAY_PROXY} is not built")
        sys.exit(77)
    run_tests([test_round_trip_matches_delay, test_jitter_spreads_and_keeps_order,
               test_rate_cap, test_slow_reader_holds_writer_back,
               test_end_of_stream_and_refused_target, test_bad_arguments, test_bindmap])
