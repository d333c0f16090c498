# test_compact_gaps.py - a compact topic whose keys are rewritten round
# after round (issue 30): compaction empties whole segments every round.
#   - the segments it empties are merged away, so the segment count and the
#     node's open descriptors stay bounded however many rounds run;
#   - a fetch from inside an emptied stretch answers with the next records
#     after it (libtally goes on past gap batches), never "nothing" at once
#     while records follow, and `tally bench consume` reads such a topic.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_compact_gaps.py [TEST...]
#
# Compaction only runs on offsets a key-index checkpoint covers, and
# checkpoints come with Raft snapshots: the cluster snapshots every 16
# entries, and each round ends with a few small entries on another topic
# so that a snapshot covers the whole round.

import ctypes
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

SETTINGS = ["--set", "snapshot_threshold=16", "--set", "snapshot_trailing=16",
            "--set", "compaction_interval_ms=100", "--set", "delete_retention_ms=0",
            "--set", "min_compaction_lag_ms=0"]


def seg_files(c, node_id, topic):
    d = os.path.join(c.nodes[node_id].data, "topics", topic)
    return sorted(f for f in os.listdir(d) if f.endswith(".seg"))


def checkpoint_round(c):
    """Small entries on another topic: enough for a Raft snapshot, whose
    key checkpoint then covers everything written before."""
    for i in range(40):
        c.tally_ok("produce", "tick", input=f"t{i}\n".encode())


def write_round(c, topic, count, size, keys):
    c.tally_ok("bench", "produce", topic, "--count", str(count), "--size", str(size),
               "--keys", str(keys), "--inflight", "2000", "--batch-bytes", "16384",
               timeout=300)


def settle(c, node_id, topic, bound, what):
    """Wait until node @node_id's copy of @topic has at most @bound segment
    files; the failure names how many it kept."""
    last = [None]

    def pred():
        c.check_up()
        last[0] = len(seg_files(c, node_id, topic))
        return last[0] <= bound
    try:
        wait_until(pred, 90, what, interval=0.5)
    except Exception:
        raise TestFailure(f"{what}: node {node_id} kept {last[0]} segments of {topic} "
                          f"(bound {bound}): compaction does not remove the segments it empties")
    return last[0]


def test_compact_segments_bounded():
    """Rounds of 20,000 records over 20 keys into a compact topic with
    64 KiB segments: after each round has been compacted, node 1 holds a
    handful of segments (20 live keys fit in one), not one more per
    emptied segment, and its open descriptors do not grow round by round;
    every key reads its latest value and the files verify."""
    keys = 20
    with Cluster(name="compact-bounded", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "cc", "--policy", "compact", "--segment-bytes", "65536")
        c.tally_ok("topic", "create", "tick")
        counts, fds = [], []
        for rnd in range(6):
            write_round(c, "cc", 20000, 100, keys)
            checkpoint_round(c)
            # 20 live keys of 100 B fit one segment; allow the active
            # segment, the one before it and a segment sealed by the ticks.
            counts.append(settle(c, 1, "cc", 6, f"round {rnd} to be compacted"))
            # A job holds the files it replaced open until they are freed
            # on its thread, a moment after the swap removed their names
            # (so the blocks are not freed on the log's thread): wait for
            # that, then count. A leak never settles.
            if fds:
                try:
                    wait_until(lambda: c.nodes[1].open_fds() <= fds[0] + 10, 30,
                               f"node 1's descriptors to settle after round {rnd}")
                except TestFailure:
                    pass  # the check below names the counts
            fds.append(c.nodes[1].open_fds())
        print(f"# segments of cc on node 1 after each round: {counts}; open fds: {fds}",
              flush=True)
        check(max(fds) <= fds[0] + 10, f"node 1's open descriptors grew: {fds}")
        r = c.tally_ok("consume", "cc", "--node", c.nodes[1].client, "--format", "%o %k\\n")
        seen = {}
        for line in r.out.decode().splitlines():
            off, key = line.split(" ", 1)
            seen[key] = int(off)
        check(len(seen) == keys, f"node 1 reads {len(seen)} keys, want {keys}")
        c.stop(1)
        d = os.path.join(c.nodes[1].data, "topics", "cc")
        v = c.tally("log", "verify", d)
        check(v.rc == 0, f"tally log verify {d}: {v!r}")


# ---- libtally through ctypes: one tally_fetch at a time -------------------

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


def libtally():
    lib = ctypes.CDLL(os.path.join(BUILD_DIR, ".libs", "libtally.so"))
    lib.tally_client_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.tally_fetch.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64,
                                ctypes.POINTER(FetchOptions), ctypes.POINTER(FetchResult)]
    lib.tally_fetch_result_free.argtypes = [ctypes.POINTER(FetchResult)]
    lib.tally_client_destroy.argtypes = [ctypes.c_void_p]
    lib.tally_errmsg.argtypes = [ctypes.c_void_p]
    lib.tally_errmsg.restype = ctypes.c_char_p
    return lib


def fetch_walk_here(node, topic):
    """Read @topic from node @node with one tally_fetch after the other
    (max_wait_ms 2000, answers of about 200 bytes), from offset 0 to the
    topic's end. Every call before the end must return records. Returns
    ([(offset, key)], number of calls)."""
    lib = libtally()
    client = ctypes.c_void_p()
    check(lib.tally_client_create(node.encode(), ctypes.byref(client)) == 0,
          "tally_client_create failed")
    try:
        opts = FetchOptions(200, 2000, 0, node.encode())
        res = FetchResult()
        off, got, calls = 0, [], 0
        while calls < 10000:
            calls += 1
            rv = lib.tally_fetch(client, topic.encode(), off, ctypes.byref(opts),
                                 ctypes.byref(res))
            check(rv == 0, f"tally_fetch at {off}: {rv} {lib.tally_errmsg(client)!r}")
            n, nxt, high = res.n, res.next_offset, res.high_offset
            for i in range(n):
                rec = res.records[i]
                if rec.offset >= off:
                    got.append((rec.offset, ctypes.string_at(rec.key, rec.key_len).decode()))
            lib.tally_fetch_result_free(ctypes.byref(res))
            if off >= high:
                break
            check(n > 0, f"tally_fetch at offset {off} (topic end {high}) returned no "
                         f"records at once, next_offset {nxt}, although records follow")
            off = nxt
        return got, calls
    finally:
        lib.tally_client_destroy(client)


def fetch_walk(node, topic):
    """fetch_walk_here in a child process: a libtally built with
    --enable-sanitize (build-asan) needs the ASan runtime loaded first,
    which this Python was not started with."""
    env = dict(os.environ)
    lib = os.path.join(BUILD_DIR, ".libs", "libtally.so")
    ldd = subprocess.run(["ldd", lib], capture_output=True, text=True).stdout
    asan = next((ln.split("=>")[1].split()[0] for ln in ldd.splitlines()
                 if "libasan" in ln and "=>" in ln), None)
    if asan is not None:
        env["LD_PRELOAD"] = asan
        env["ASAN_OPTIONS"] = "detect_leaks=0"  # the interpreter's own, not libtally's
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--fetch-walk", node, topic],
                       capture_output=True, env=env, timeout=300)
    if r.returncode != 0:
        raise TestFailure(f"fetch walk: {r.stderr.decode(errors='replace').strip()[-2000:]}")
    got, calls = json.loads(r.stdout)
    return [tuple(x) for x in got], calls


def test_fetch_across_emptied_segments():
    """A compact topic with 4 KiB segments whose 10 keys were rewritten
    many times, compacted on node 1: reading it with tally_fetch
    (max_wait_ms 2000, small answers) from its start, every call before
    the end returns records (the next ones after any gap), and together
    they are exactly what `tally consume` prints; `tally bench consume`
    reads the topic to its end and counts the same records."""
    with Cluster(name="compact-fetch", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "cf", "--policy", "compact", "--segment-bytes", "4096")
        c.tally_ok("topic", "create", "tick")
        for _ in range(3):
            write_round(c, "cf", 3000, 60, 10)
        checkpoint_round(c)
        write_round(c, "cf", 30, 60, 10)  # some live records after the gaps
        checkpoint_round(c)
        node = c.nodes[1].client

        def read_all():
            c.check_up()
            r = c.tally_ok("consume", "cf", "--node", node, "--format", "%o %k\\n")
            out = []
            for line in r.out.decode().splitlines():
                off, key = line.split(" ", 1)
                out.append((int(off), key))
            return out if len(out) <= 200 else None
        # Compacted up to the last checkpoint: 9,030 records become a few
        # dozen (the latest of each key, and the records after it).
        want = wait_until(read_all, 90, "node 1 to compact cf", interval=0.5)
        check(len(want) >= 10, f"consume read {len(want)} records of cf")

        got, calls = fetch_walk(node, "cf")
        print(f"# {calls} fetches read {len(got)} records of cf", flush=True)
        check(got == want, f"tally_fetch read {len(got)} records, consume {len(want)}; "
                           f"first difference at {next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")

        b = c.tally("bench", "consume", "cf", "--node", node, "--timeout", "5000", timeout=120)
        check(b.rc == 0, f"bench consume on a compacted topic: {b!r}")
        check(f"{len(want)} records".encode() in b.err,
              f"bench consume counted other than {len(want)} records: {b.err!r}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--fetch-walk":
        try:
            print(json.dumps(fetch_walk_here(sys.argv[2], sys.argv[3])))
        except TestFailure as e:
            sys.exit(str(e))
        sys.exit(0)
    run_tests([test_compact_segments_bounded, test_fetch_across_emptied_segments])
