#!/usr/bin/env python3
"""Streams benchmark (issue 18): the stream index against the client-side
key filter, and what the index costs, measured in one run.

Two builds: BASE (without the stream index, e.g. the main branch) and NEW
(with it), both release builds (configure defaults, -O2). Each gets a
three-node cluster (harness.py, 127.0.0.1) whose topic `events` is filled
with --events records of 100 bytes over --keys keys (`tally bench produce
--keys`: k0, k1, ... in turn, so each key has events/keys records spread
over the whole topic). Then:

  1. aggregate load on NEW: every record of one random key, read through
     libtally's tally_stream_read (ctypes, this process), --loads times:
     p50 and p99 in ms; also on a second topic `small` written the same
     way (on both clusters) but in batches of --small-batch-bytes (a node
     reads a record's
     whole batch to verify its checksum, so the batch size matters). The same keys read with today's client-side filter
     (`tally consume events -k KEY --from beginning`, which reads the whole
     topic), --scan-loads times, and the index through the same CLI
     (`tally consume events -k KEY`), for the ratio on equal terms;
  2. index bytes per event: streams.ckpt (and keys.ckpt) of one node of
     NEW after a clean stop, divided by the records;
  3. batched 100 B produce: `tally bench produce --size 100 --keys K
     --inflight 200000 --batch-bytes 262144 --linger-ms 2` (the batched case
     of docs/performance.md), --rounds rounds alternating BASE and
     NEW on fresh topics: median msgs/s and the ratio NEW/BASE;
  4. node restart: one follower stopped (SIGTERM, clean) or killed
     (SIGKILL) and started again, until it answers a read of the topic's
     last offset; --rounds rounds alternating BASE and NEW: medians and the
     ratio.

  bench/streams.py [--events 1000000] [--keys 10000] [--loads 200]
                   [--scan-loads 5] [--rounds 3] [--produce 300000]
                   BASE_BUILD_DIR NEW_BUILD_DIR

Prints each measurement and a summary. No pass/fail: the numbers go to
docs/performance.md with their baseline."""
import argparse
import ctypes as C
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402


def use(build):
    harness.TALLYD = os.path.join(build, "src", "tallyd")
    harness.TALLY = os.path.join(build, "src", "tally")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def bench_produce(c, build, topic, count, keys, batch_bytes=262144):
    use(build)
    c.tally_ok("topic", "create", topic)
    r = c.tally_ok("bench", "produce", topic, "--count", count, "--size", 100, "--keys", keys,
                   "--inflight", 200000, "--batch-bytes", batch_bytes, "--linger-ms", 2,
                   timeout=3600)
    last = [ln for ln in r.text.split("\n") if ln.startswith("msgs/s=")][-1]
    return float(last.split()[0].split("=")[1])


def wait_serves(c, n, topic, offset, timeout=600):
    """Seconds until node @n answers a fetch of @offset of @topic."""
    t0 = time.monotonic()
    node = c.nodes[n].client
    while time.monotonic() - t0 < timeout:
        r = harness.run_tally(["consume", topic, "--node", node, "--from", offset, "-n", 1,
                               "--format", "%o\\n"], brokers=node, timeout=60)
        if r.rc == 0 and r.out.strip() == str(offset).encode():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise RuntimeError(f"node {n} did not serve offset {offset} within {timeout}s")


def restart_secs(c, build, n, topic, last, kill):
    use(build)
    if kill:
        c.kill(n)
    else:
        c.stop(n)
    c.spawn(n)
    return wait_serves(c, n, topic, last)


class Streams:
    """tally_stream_read through ctypes."""

    class Event(C.Structure):
        _fields_ = [("version", C.c_uint64), ("offset", C.c_uint64), ("ts", C.c_int64),
                    ("value", C.c_void_p), ("value_len", C.c_size_t)]

    class Result(C.Structure):
        pass

    class Options(C.Structure):
        _fields_ = [("from_version", C.c_uint64), ("backward", C.c_int),
                    ("max_events", C.c_uint32), ("max_bytes", C.c_uint32),
                    ("max_wait_ms", C.c_uint32), ("min_index", C.c_uint64), ("node", C.c_char_p)]

    def __init__(self, build, brokers):
        Streams.Result._fields_ = [("events", C.POINTER(Streams.Event)), ("n", C.c_size_t),
                                   ("version", C.c_uint64), ("first_version", C.c_uint64),
                                   ("next_version", C.c_uint64), ("applied_index", C.c_uint64),
                                   ("impl", C.c_void_p)]
        lib = C.CDLL(os.path.join(build, ".libs", "libtally.so"))
        lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
        lib.tally_stream_options_init.argtypes = [C.POINTER(Streams.Options)]
        lib.tally_stream_read.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.c_size_t,
                                          C.POINTER(Streams.Options), C.POINTER(Streams.Result)]
        lib.tally_stream_result_free.argtypes = [C.POINTER(Streams.Result)]
        self.lib = lib
        self.cl = C.c_void_p()
        assert lib.tally_client_create(brokers.encode(), C.byref(self.cl)) == 0

    def load(self, topic, key):
        """Every record of @key; returns how many."""
        o = Streams.Options()
        self.lib.tally_stream_options_init(C.byref(o))
        o.max_events = 65536
        o.max_bytes = 16 << 20
        n = 0
        while True:
            res = Streams.Result()
            rc = self.lib.tally_stream_read(self.cl, topic.encode(), key.encode(), len(key),
                                            C.byref(o), C.byref(res))
            if rc != 0:
                raise RuntimeError(f"tally_stream_read {key}: {rc}")
            n += res.n
            done = res.next_version > res.version or res.n == 0
            o.from_version = res.next_version
            self.lib.tally_stream_result_free(C.byref(res))
            if done:
                return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--loads", type=int, default=200)
    ap.add_argument("--scan-loads", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--produce", type=int, default=300000)
    ap.add_argument("--small-batch-bytes", type=int, default=8192)
    ap.add_argument("--loads-only", action="store_true",
                    help="fill and measure the loads and the index size only (parts 1-2)")
    ap.add_argument("base")
    ap.add_argument("new")
    a = ap.parse_args()
    base, new = os.path.abspath(a.base), os.path.abspath(a.new)
    rnd = random.Random(18)
    per_key = a.events // a.keys
    print(f"# {a.events} events of 100 B over {a.keys} keys ({per_key} per key); "
          f"base {base}, new {new}", flush=True)
    clusters = {}
    # --loads-only: the NEW cluster alone (the loads and the index size need
    # no baseline build: the client-side filter runs on the same cluster).
    builds = (("new", new),) if a.loads_only else (("base", base), ("new", new))
    try:
        for tag, build in builds:
            use(build)
            c = harness.Cluster(3, name=f"streamsbench-{tag}")
            clusters[tag] = c
            c.start()
        fill = {}
        for tag, build in builds:
            fill[tag] = bench_produce(clusters[tag], build, "events", a.events, a.keys)
            print(f"fill {tag}: msgs/s={fill[tag]:.0f}", flush=True)
        for tag, build in builds:
            m = bench_produce(clusters[tag], build, "small", a.events, a.keys,
                              a.small_batch_bytes)
            print(f"fill {tag} small ({a.small_batch_bytes} B batches): msgs/s={m:.0f}",
                  flush=True)
        c = clusters["new"]
        use(new)
        st = c.status()
        last = [t for t in st["topics"] if t["name"] == "events"][0]["next_offset"] - 1

        # 1. aggregate loads
        lib = Streams(new, c.brokers())
        lat = []
        for _ in range(a.loads):
            key = f"k{rnd.randrange(a.keys)}"
            t0 = time.perf_counter()
            n = lib.load("events", key)
            lat.append((time.perf_counter() - t0) * 1000)
            assert n == per_key, f"{key}: {n} records, want {per_key}"
        cli_idx, cli_scan = [], []
        for _ in range(a.scan_loads):
            key = f"k{rnd.randrange(a.keys)}"
            for args, into in ((["-k", key], cli_idx),
                               (["-k", key, "--from", "beginning"], cli_scan)):
                r = c.tally_ok("consume", "events", *args, "--format", "%o\\n", timeout=3600)
                into.append(r.secs * 1000)
                got = r.out.count(b"\n")
                assert got == per_key, f"{args}: {got} records, want {per_key}"
        print(f"load libtally index: p50_ms={pct(lat, 50):.3f} p99_ms={pct(lat, 99):.3f} "
              f"(n={len(lat)})", flush=True)
        small = []
        for _ in range(a.loads):
            key = f"k{rnd.randrange(a.keys)}"
            t0 = time.perf_counter()
            n = lib.load("small", key)
            small.append((time.perf_counter() - t0) * 1000)
            assert n == per_key, f"small {key}: {n} records, want {per_key}"
        print(f"load libtally index, {a.small_batch_bytes} B batches: "
              f"p50_ms={pct(small, 50):.3f} p99_ms={pct(small, 99):.3f} (n={len(small)})",
              flush=True)
        print(f"load CLI index: p50_ms={pct(cli_idx, 50):.1f} p99_ms={pct(cli_idx, 99):.1f}; "
              f"CLI client-side filter: p50_ms={pct(cli_scan, 50):.1f} "
              f"p99_ms={pct(cli_scan, 99):.1f} (n={len(cli_scan)})", flush=True)
        print(f"ratio client-side filter / libtally index (p50): "
              f"{pct(cli_scan, 50) / pct(lat, 50):.0f}x; / CLI index: "
              f"{pct(cli_scan, 50) / pct(cli_idx, 50):.0f}x", flush=True)

        # 2. index bytes per event (node 3 of new, clean stop)
        c.stop(3)
        d = os.path.join(c.nodes[3].data, "topics", "events")
        sb = os.path.getsize(os.path.join(d, "streams.ckpt"))
        kb = os.path.getsize(os.path.join(d, "keys.ckpt"))
        print(f"index bytes: streams.ckpt={sb} ({sb / a.events:.2f} B/event), "
              f"keys.ckpt={kb}", flush=True)
        c.spawn(3)
        wait_serves(c, 3, "events", last)

        if a.loads_only:
            return
        # 3. produce, alternating
        prod = {"base": [], "new": []}
        for r_ in range(a.rounds):
            for tag, build in (("base", base), ("new", new)):
                m = bench_produce(clusters[tag], build, f"p{r_}", a.produce, a.keys)
                prod[tag].append(m)
                print(f"produce round {r_} {tag}: msgs/s={m:.0f}", flush=True)
        pb, pn = statistics.median(prod["base"]), statistics.median(prod["new"])
        pairs = statistics.median(n / b for b, n in zip(prod["base"], prod["new"]))
        print(f"produce median msgs/s: base={pb:.0f} new={pn:.0f} ratio new/base={pn / pb:.3f}; "
              f"median of the per-round ratios (back-to-back pairs)={pairs:.3f}", flush=True)

        # 4. restarts, alternating (node 2 of each cluster)
        res = {(tag, kill): [] for tag in ("base", "new") for kill in (False, True)}
        for r_ in range(a.rounds):
            for kill in (False, True):
                for tag, build in (("base", base), ("new", new)):
                    s = restart_secs(clusters[tag], build, 2, "events", last, kill)
                    res[(tag, kill)].append(s)
                    print(f"restart round {r_} {tag} {'SIGKILL' if kill else 'SIGTERM'}: "
                          f"{s:.3f}s", flush=True)
        for kill in (False, True):
            b = statistics.median(res[("base", kill)])
            n = statistics.median(res[("new", kill)])
            print(f"restart ({'SIGKILL' if kill else 'clean'}) median s: base={b:.3f} "
                  f"new={n:.3f} ratio new/base={n / b:.2f}", flush=True)
    finally:
        for tag, c in clusters.items():
            c.cleanup()


if __name__ == "__main__":
    main()
