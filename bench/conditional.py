#!/usr/bin/env python3
"""conditional.py - throughput of conditional appends next to plain appends,
measured in the same run against a running cluster, through libtally.

    TALLY_BROKERS=... python3 bench/conditional.py LIBTALLY_SO [SECONDS] [THREADS]

After a warm-up, three cases (plain is run before and after the other two,
and their mean is the baseline), each SECONDS long (default 5) with THREADS writers (default 4),
one record of 100 bytes per request:
  plain     appends without conditions (the baseline);
  hot-key   every writer appends the next version of ONE key with
            --expect-version semantics: read-modify-write racing on one key,
            a loser retries with the actual version it was told;
  10k-keys  writers append to 10,000 keys (disjoint per writer), each with
            the expected version, so conditions rarely fail.
Prints ops/s (successful appends), failed conditions, and p50 latency.
Each writer has its own client handle (libtally handles are not
thread-safe); ctypes releases the GIL during calls.
"""
import ctypes
import os
import random
import sys
import threading
import time

CONDITION_FAILED = 16
NO_EXPECT = 2**64 - 1


class RecordIn(ctypes.Structure):
    _fields_ = [("key", ctypes.c_void_p), ("key_len", ctypes.c_size_t),
                ("value", ctypes.c_void_p), ("value_len", ctypes.c_size_t)]


class Condition(ctypes.Structure):
    _fields_ = [("key", ctypes.c_void_p), ("key_len", ctypes.c_size_t),
                ("expect_version", ctypes.c_uint64)]


class Options(ctypes.Structure):
    _fields_ = [("expect_offset", ctypes.c_uint64), ("conditions", ctypes.POINTER(Condition)),
                ("n_conditions", ctypes.c_size_t)]


class Result(ctypes.Structure):
    _fields_ = [("base_offset", ctypes.c_uint64), ("count", ctypes.c_uint32),
                ("raft_index", ctypes.c_uint64)]


def main():
    lib = ctypes.CDLL(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    nthreads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    brokers = os.environ.get("TALLY_BROKERS", "127.0.0.1:7001").encode()
    lib.tally_client_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.tally_produce_ex.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(RecordIn),
                                     ctypes.c_size_t, ctypes.POINTER(Options),
                                     ctypes.POINTER(Result)]
    lib.tally_condition_actual.argtypes = [ctypes.c_void_p]
    lib.tally_condition_actual.restype = ctypes.c_uint64
    lib.tally_topic_config_init.argtypes = [ctypes.c_void_p]
    lib.tally_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.tally_errmsg.argtypes = [ctypes.c_void_p]
    lib.tally_errmsg.restype = ctypes.c_char_p

    def client():
        h = ctypes.c_void_p()
        assert lib.tally_client_create(brokers, ctypes.byref(h)) == 0
        return h

    topic = f"condbench-{os.getpid()}".encode()
    h = client()
    cfg = ctypes.create_string_buffer(64)
    lib.tally_topic_config_init(cfg)
    rv = lib.tally_topic_create(h, topic, cfg)
    if rv != 0:
        sys.exit(f"topic create: {lib.tally_errmsg(h).decode()}")
    time.sleep(0.5)

    def run(case):
        stop = time.monotonic() + secs
        stats = {"ok": 0, "failed": 0, "lat": []}
        lock = threading.Lock()

        def writer(w):
            c = client()
            value = os.urandom(100)
            ok = failed = 0
            lat = []
            versions = {}
            rnd = random.Random(w)
            while time.monotonic() < stop:
                if case == "hot-key":
                    key = b"hot"
                elif case == "10k-keys":
                    key = b"k%05d" % (rnd.randrange(10000 // nthreads) * nthreads + w)
                else:
                    key = b"p%d" % w
                rec = RecordIn(ctypes.cast(key, ctypes.c_void_p), len(key),
                               ctypes.cast(value, ctypes.c_void_p), len(value))
                res = Result()
                t0 = time.perf_counter()
                if case in ("plain", "warm-up"):
                    rv = lib.tally_produce_ex(c, topic, ctypes.byref(rec), 1, None,
                                              ctypes.byref(res))
                else:
                    cond = Condition(ctypes.cast(key, ctypes.c_void_p), len(key),
                                     versions.get(key, 0))
                    opts = Options(NO_EXPECT, ctypes.pointer(cond), 1)
                    rv = lib.tally_produce_ex(c, topic, ctypes.byref(rec), 1, ctypes.byref(opts),
                                              ctypes.byref(res))
                lat.append(time.perf_counter() - t0)
                if rv == 0:
                    ok += 1
                    versions[key] = versions.get(key, 0) + 1
                elif rv == CONDITION_FAILED:
                    failed += 1
                    versions[key] = lib.tally_condition_actual(c)
                else:
                    sys.exit(f"produce: {lib.tally_errmsg(c).decode()}")
            with lock:
                stats["ok"] += ok
                stats["failed"] += failed
                stats["lat"] += lat

        ts = [threading.Thread(target=writer, args=(w,)) for w in range(nthreads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        el = time.monotonic() - t0
        lat = sorted(stats["lat"])
        p50 = lat[len(lat) // 2] * 1000 if lat else 0
        print(f"{case:9} appends/s={stats['ok'] / el:8.0f} failed_conditions={stats['failed']:6d} "
              f"p50_ms={p50:.3f}", flush=True)
        return stats["ok"] / el

    run("warm-up")  # the first seconds of a fresh cluster are slower
    base1 = run("plain")
    hot = run("hot-key")
    many = run("10k-keys")
    base2 = run("plain")
    base = (base1 + base2) / 2
    print(f"ratio to plain (mean of the two plain runs, {base:.0f}/s): "
          f"hot-key {hot / base:.2f}, 10k-keys {many / base:.2f}")


if __name__ == "__main__":
    main()
