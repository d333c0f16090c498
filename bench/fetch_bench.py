#!/usr/bin/env python3
"""Consume throughput of a follower, measured at the wire, for one or more
builds in the same run (before/after comparisons on a noisy machine).

For each build directory given, a fresh three-node cluster (free ports,
harness.py) gets one topic per record size, written with `tally bench
produce` (--batch records per request, 2 producers). Then, for ROUNDS
rounds, alternating between the builds, one reader reads each topic from
offset 0 to its end from a follower with back-to-back FETCH requests
(max_bytes = --max-bytes, one in flight, as libtally does) over a raw
socket, and counts records and batch bytes from the batch headers. The
reader does not verify checksums or decode records: it measures what the
node delivers, not what a client can decode. It also reports the
follower's CPU seconds per GB served (from /proc), which is steadier than
throughput when the reader and the nodes share the CPUs. Every build's clusters stay
up for the whole run; the node's page cache holds all data.

  bench/fetch_bench.py [--rounds 3] [--max-bytes 4194304] [--client TALLY]
                       BUILD_DIR [BUILD_DIR...]

Prints one line per round and build, then the medians and, with two
builds, the ratio second/first."""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402

MAGIC = 0x7974
FETCH = 7
HDR = struct.Struct("<IHBBHHI")


def fetch_frame(req_id, topic, offset, max_bytes):
    t = topic.encode()
    body = struct.pack("<H", len(t)) + t + struct.pack("<QIIQ", offset, max_bytes, 0, 0)
    return HDR.pack(12 + len(body), MAGIC, 1, 0, FETCH, 0, req_id) + body


class Reader:
    def __init__(self, addr):
        host, port = addr.split(":")
        self.s = socket.create_connection((host, int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(32 << 20)
        self.view = memoryview(self.buf)

    def recv_exact(self, n):
        got = 0
        while got < n:
            k = self.s.recv_into(self.view[got:n])
            if k == 0:
                raise RuntimeError("connection closed")
            got += k
        return self.view[:n]

    def fetch(self, req_id, topic, offset, max_bytes):
        """One FETCH; returns (next_offset of the topic, records, batch
        bytes, offset after the last batch)."""
        self.s.sendall(fetch_frame(req_id, topic, offset, max_bytes))
        head = bytes(self.recv_exact(4))
        (flen,) = struct.unpack("<I", head)
        body = self.recv_exact(flen)
        _, _, flags, _, _, rid = struct.unpack_from("<HBBHHI", body, 0)
        if flags & 2 or rid != req_id:
            raise RuntimeError(f"error answer or wrong id: flags={flags} id={rid}")
        _, _, next_off, blen = struct.unpack_from("<QQQI", body, 12)
        pos, end = 12 + 28, 12 + 28 + blen
        records, after = 0, offset
        while pos < end:
            batch_len, count, base = struct.unpack_from("<IIQ", body, pos + 8)
            (last_delta,) = struct.unpack_from("<I", body, pos + 68)
            records += count
            after = base + last_delta + 1
            pos += batch_len
        return next_off, records, blen, after


def read_all(addr, topic, end, max_bytes):
    r = Reader(addr)
    off, records, nbytes, rid = 0, 0, 0, 1
    t0 = time.monotonic()
    while off < end:
        _, n, b, off = r.fetch(rid, topic, off, max_bytes)
        records += n
        nbytes += b
        rid += 1
    secs = time.monotonic() - t0
    r.s.close()
    return records, nbytes, secs


def follower_end(addr, topic):
    r = Reader(addr)
    nxt, _, _, _ = r.fetch(1, topic, 0, 1)
    r.s.close()
    return nxt


def setup(build, cases, tag):
    harness.TALLYD = os.path.join(build, "src", "tallyd")
    harness.TALLY = os.path.join(build, "src", "tally")
    c = harness.Cluster(3, name=f"fetchbench-{tag}")
    try:
        return setup_cluster(c, cases, tag)
    except BaseException:
        c.cleanup()  # not in the caller's list yet
        raise


def setup_cluster(c, cases, tag):
    leader = c.start()
    follower = [i for i in c.nodes if i != leader][0]
    for size, count, batch in cases:
        topic = f"t{size}"
        c.tally_ok("topic", "create", topic)
        r = c.tally_ok("bench", "produce", topic, "--count", count, "--size", size,
                       "--batch", batch, "--producers", 2, brokers=c.nodes[leader].client,
                       timeout=600)
        print(f"# {tag}: wrote {topic}: {r.text.strip().splitlines()[-1]}", flush=True)
        addr = c.nodes[follower].client
        harness.wait_until(lambda: follower_end(addr, topic) >= count, 60,
                           f"follower to apply {topic}")
    return c, c.nodes[follower].client, c.nodes[follower].proc.pid


def cpu_secs(pid):
    """User + system CPU seconds of process @pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("builds", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-bytes", type=int, default=4 << 20)
    ap.add_argument("--count-100", type=int, default=1000000)
    ap.add_argument("--count-1k", type=int, default=200000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="reads of each topic per round")
    ap.add_argument("--client", help="also time `tally bench consume` of this tally binary "
                    "(the same client for every build) from the follower")
    a = ap.parse_args()
    cases = [(100, a.count_100, a.batch), (1024, a.count_1k, a.batch)]
    clusters = []
    try:
        for i, b in enumerate(a.builds):
            clusters.append(setup(os.path.abspath(b), cases, f"b{i}"))
        res = {}
        for rnd in range(a.rounds):
            for i, (c, addr, pid) in enumerate(clusters):
                for size, count, _ in cases:
                    topic = f"t{size}"
                    recs = nbytes = secs = 0
                    cpu0 = cpu_secs(pid)
                    for _ in range(a.repeat):
                        r, b, s = read_all(addr, topic, count, a.max_bytes)
                        if r != count:
                            raise RuntimeError(f"read {r} records of {topic}, wanted {count}")
                        recs, nbytes, secs = recs + r, nbytes + b, secs + s
                    cpu = cpu_secs(pid) - cpu0
                    rps, mbps = recs / secs, nbytes / secs / 1e6
                    cpu_gb = cpu / (nbytes / 1e9)
                    res.setdefault((i, size), []).append((rps, mbps, cpu_gb))
                    print(f"round {rnd + 1} build {i} size {size}: records/s={rps:,.0f} "
                          f"MB/s={mbps:,.0f} node_cpu_s_per_GB={cpu_gb:.2f} ({secs:.2f} s)",
                          flush=True)
                    if a.client:
                        p = subprocess.run([a.client, "-b", addr, "bench", "consume", topic,
                                            "--node", addr, "--count", str(count)],
                                           capture_output=True, text=True, timeout=300)
                        last = (p.stdout.strip().splitlines() or ["?"])[-1]
                        fields = dict(kv.split("=", 1) for kv in last.split() if "=" in kv)
                        res.setdefault((i, size, "cli"), []).append(
                            (float(fields.get("msgs/s", 0)), float(fields.get("MB/s", 0))))
                        print(f"round {rnd + 1} build {i} size {size}: tally bench consume: "
                              f"{last}", flush=True)
        print("medians:")
        for size, _, _ in cases:
            med = []
            for i, b in enumerate(a.builds):
                rps = statistics.median(x[0] for x in res[(i, size)])
                mbps = statistics.median(x[1] for x in res[(i, size)])
                cpu_gb = statistics.median(x[2] for x in res[(i, size)])
                med.append((rps, mbps, cpu_gb))
                print(f"  size {size} build {i} ({b}): records/s={rps:,.0f} MB/s={mbps:,.0f} "
                      f"node_cpu_s_per_GB={cpu_gb:.2f}")
            if a.client:
                for i, b in enumerate(a.builds):
                    v = res[(i, size, "cli")]
                    print(f"  size {size} build {i}: tally bench consume msgs/s="
                          f"{statistics.median(x[0] for x in v):,.0f} MB/s(values)="
                          f"{statistics.median(x[1] for x in v):,.0f}")
            for i in range(1, len(med)):
                print(f"  size {size} build {i}/build 0: throughput {med[i][0] / med[0][0]:.2f}x, "
                      f"node CPU per byte {med[i][2] / med[0][2]:.2f}x")
    finally:
        for c, _, _ in clusters:
            c.cleanup()


if __name__ == "__main__":
    main()
