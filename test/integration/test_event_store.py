# test_event_store.py - event-store features end to end on a real cluster:
# conditional appends (--expect-version races, --expect-offset, multi-key
# all-or-nothing through libtally), consume -k, --from-time, and durable
# consumer groups across a leader kill.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_event_store.py [TEST...]
#
# The multi-key test drives libtally ($TALLY_BUILD_DIR/.libs/libtally.so)
# through ctypes in a child python, which preloads the sanitizer runtime of
# an ASan build (as test_client_fake.py does).

import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, Cluster, check, parse_records, run_tests,  # noqa: E402
                     libtally_child, wait_until)

RACE_WRITERS = 8
RACE_ROUNDS = 30


def lines(r):
    return [ln for ln in r.text.split("\n") if ln]


def next_offset(c, topic, ids=None):
    st = c.status(ids=ids)
    check(st is not None, "status --json: no node answered")
    for t in st.get("topics", []):
        if t.get("name") == topic:
            return t["next_offset"]
    raise AssertionError(f"topic {topic} not in status: {st!r}")


def synced(c, ids=None, timeout=15):
    """Wait until every running node (of @ids) has applied every entry the
    leader has committed: reads that may go to any node then see every
    acknowledged write (a follower otherwise lags by a heartbeat)."""
    def pred():
        st = c.status(ids=ids)
        if st is None or not st.get("leader_id"):
            return False
        members = [m for m in st["members"] if m.get("reachable")]
        # the leader has applied every write it acknowledged
        target = max([st.get("commit_index", 0)] + [m.get("applied_index", 0) for m in members])
        return all(m.get("applied_index", 0) >= target for m in members)
    wait_until(pred, timeout, "every node to apply the committed entries")


def keyed(c, topic, ids=None, extra=()):
    """[(offset, key, value)] of `consume TOPIC` with --format '%o\\t%k\\t%v\\n'."""
    synced(c, ids)
    r = c.tally_ok("consume", topic, "--format", "%o\\t%k\\t%v\\n", *extra, ids=ids)
    out = []
    for ln in lines(r):
        off, key, val = ln.split("\t", 2)
        out.append((int(off), key, val))
    return out


# -- conditional appends ---------------------------------------------------------

def test_expect_version_race():
    """8 concurrent `tally produce -k K --expect-version N` race for version
    N+1, 30 rounds: exactly one wins each round, the others exit 1 naming
    the winner's version; the key's records are gap-free, one per version."""
    with Cluster(name="es-race") as c:
        c.start()
        c.tally_ok("topic", "create", "acct")
        brokers = c.brokers()
        winners = []
        for rnd in range(RACE_ROUNDS):
            procs = []
            for w in range(RACE_WRITERS):
                procs.append(subprocess.Popen(
                    [TALLY, "-b", brokers, "produce", "acct", "-k", "acct-1",
                     "--expect-version", str(rnd), f"v{rnd + 1}-w{w}"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            results = []
            for w, p in enumerate(procs):
                out, err = p.communicate(timeout=60)
                results.append((w, p.returncode, out.decode(), err.decode()))
            won = [r for r in results if r[1] == 0]
            lost = [r for r in results if r[1] != 0]
            check(len(won) == 1, f"round {rnd}: {len(won)} writers won, want exactly 1: {results!r}")
            want = f"condition failed: key acct-1 is at version {rnd + 1}, expected {rnd}"
            for w, rc, out, err in lost:
                check(rc == 1 and want in err and out == "",
                      f"round {rnd}: loser w{w} exit {rc}, stdout {out!r}, stderr {err!r}; "
                      f"want exit 1 and '{want}'")
            w, _, out, _ = won[0]
            winners.append((int(out.strip()), f"v{rnd + 1}-w{w}"))
        recs = keyed(c, "acct", extra=["-k", "acct-1"])
        check([(o, v) for o, _, v in recs] == winners,
              f"key acct-1 holds {recs!r}, want the {RACE_ROUNDS} winners {winners!r}")
        vers = [int(re.match(r"v(\d+)-", v).group(1)) for _, _, v in recs]
        check(vers == list(range(1, RACE_ROUNDS + 1)), f"versions not gap-free: {vers}")
        check(next_offset(c, "acct") == RACE_ROUNDS,
              f"topic holds {next_offset(c, 'acct')} records, want {RACE_ROUNDS}: losers wrote")
        # The next writer sees version RACE_ROUNDS, and 0 means "must not exist".
        r = c.tally("produce", "acct", "-k", "acct-1", "--expect-version", "0", "again")
        check(r.rc == 1 and f"key acct-1 is at version {RACE_ROUNDS}, expected 0" in r.errtext,
              f"--expect-version 0 on an existing key: {r!r}")
        c.tally_ok("produce", "acct", "-k", "acct-2", "--expect-version", "0", "opened")
        print(f"#   {RACE_ROUNDS} rounds of {RACE_WRITERS} writers: one winner each, gap-free")


def test_expect_offset():
    """--expect-offset appends only at the topic's next offset; a failure
    writes nothing and names the actual offset; stdin batches chain."""
    with Cluster(name="es-offset") as c:
        c.start()
        c.tally_ok("topic", "create", "t")
        c.tally_ok("produce", "t", input=b"a\nb\nc\n")
        r = c.tally_ok("produce", "t", "--expect-offset", "3", "d")
        check(lines(r) == ["3"], f"--expect-offset 3 printed {r.text!r}, want '3'")
        r = c.tally("produce", "t", "--expect-offset", "3", "e")
        check(r.rc == 1 and "condition failed" in r.errtext and "next offset is 4, expected 3"
              in r.errtext and r.out == b"", f"stale --expect-offset: {r!r}")
        r = c.tally("produce", "t", "--expect-offset", "9", "e")
        check(r.rc == 1 and "next offset is 4, expected 9" in r.errtext,
              f"future --expect-offset: {r!r}")
        check(next_offset(c, "t") == 4, "a failed --expect-offset wrote something")
        # stdin: 2500 lines are three batches, each expecting where the last ended
        data = "".join(f"line-{i}\n" for i in range(2500)).encode()
        r = c.tally_ok("produce", "t", "--expect-offset", "4", input=data, timeout=120)
        check(lines(r) == [str(i) for i in range(4, 2504)], "chained stdin offsets wrong")
        r = c.tally("produce", "t", "--expect-offset", "4", input=b"x\ny\n")
        check(r.rc == 1 and "next offset is 2504, expected 4" in r.errtext and r.out == b"",
              f"stale --expect-offset with stdin: {r!r}")
        # --expect-version chains the same way over stdin (-k)
        r = c.tally_ok("produce", "t", "-k", "k", "--expect-version", "0", input=data, timeout=120)
        check(len(lines(r)) == 2500, f"keyed chained stdin printed {len(lines(r))} offsets")
        r = c.tally("produce", "t", "-k", "k", "--expect-version", "2499", "late")
        check(r.rc == 1 and "key k is at version 2500, expected 2499" in r.errtext,
              f"stale --expect-version: {r!r}")
        c.tally_ok("produce", "t", "-k", "k", "--expect-version", "2500", "next")
        # bad usage
        for args in (["--expect-version", "1", "x"],  # no -k
                     ["-k", "k", "--expect-version", "1", "--expect-offset", "1", "x"],
                     ["--expect-offset", "-1", "x"], ["--expect-offset", "x", "v"]):
            r = c.tally("produce", "t", *args)
            check(r.rc == 2, f"produce {args}: want exit 2, got {r!r}")


# The child half of test_multikey_all_or_nothing: libtally through ctypes.
def ctypes_child(lib_path, brokers, topic):
    import ctypes as C

    class RecordIn(C.Structure):
        _fields_ = [("key", C.c_char_p), ("key_len", C.c_size_t),
                    ("value", C.c_char_p), ("value_len", C.c_size_t)]

    class Condition(C.Structure):
        _fields_ = [("key", C.c_char_p), ("key_len", C.c_size_t),
                    ("expect_version", C.c_uint64)]

    class Options(C.Structure):
        _fields_ = [("expect_offset", C.c_uint64), ("conditions", C.POINTER(Condition)),
                    ("n_conditions", C.c_size_t)]

    class Result(C.Structure):
        _fields_ = [("base_offset", C.c_uint64), ("count", C.c_uint32),
                    ("raft_index", C.c_uint64)]

    lib = C.CDLL(lib_path)
    lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.tally_client_destroy.argtypes = [C.c_void_p]
    lib.tally_errmsg.argtypes = [C.c_void_p]
    lib.tally_errmsg.restype = C.c_char_p
    lib.tally_produce_options_init.argtypes = [C.POINTER(Options)]
    lib.tally_produce_ex.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(RecordIn), C.c_size_t,
                                     C.POINTER(Options), C.POINTER(Result)]
    lib.tally_condition_actual.argtypes = [C.c_void_p]
    lib.tally_condition_actual.restype = C.c_uint64

    cl = C.c_void_p()
    rc = lib.tally_client_create(brokers.encode(), C.byref(cl))
    assert rc == 0, rc

    def produce(recs, conds, expect_offset=None):
        arr = (RecordIn * len(recs))()
        for i, (k, v) in enumerate(recs):
            arr[i] = RecordIn(k.encode(), len(k), v.encode(), len(v))
        carr = (Condition * max(1, len(conds)))()
        for i, (k, ver) in enumerate(conds):
            carr[i] = Condition(k.encode(), len(k), ver)
        opts = Options()
        lib.tally_produce_options_init(C.byref(opts))
        if expect_offset is not None:
            opts.expect_offset = expect_offset
        opts.conditions = carr
        opts.n_conditions = len(conds)
        res = Result()
        rc = lib.tally_produce_ex(cl, topic.encode(), arr, len(recs), C.byref(opts), C.byref(res))
        out = {"rc": rc, "base": res.base_offset, "count": res.count}
        if rc != 0:
            out["msg"] = (lib.tally_errmsg(cl) or b"").decode("utf-8", "replace")
            out["actual"] = lib.tally_condition_actual(cl)
        return out

    recs = [("a", "a2"), ("b", "b2"), ("c", "c1")]
    steps = {
        # a and b are at version 1 (the parent wrote one record each), c is new
        "last_fails": produce(recs, [("a", 1), ("b", 1), ("c", 1)]),
        "first_fails": produce(recs, [("a", 0), ("b", 1), ("c", 0)]),
        "offset_fails": produce(recs, [("a", 1), ("b", 1), ("c", 0)], expect_offset=99),
        "all_hold": produce(recs, [("a", 1), ("b", 1), ("c", 0)], expect_offset=2),
        "replay": produce(recs, [("a", 1), ("b", 1), ("c", 0)]),
        "next": produce([("a", "a3"), ("c", "c2")], [("a", 2), ("c", 1)]),
    }
    lib.tally_client_destroy(cl)
    print(json.dumps(steps))


def run_ctypes_child(brokers, topic):
    lib, env = libtally_child()
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--ctypes-child", lib,
                        brokers, topic], env=env, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"ctypes child exited {p.returncode}: {p.stdout} {p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_multikey_all_or_nothing():
    """tally_produce_ex with conditions on three keys: one false condition
    (any of them, or the offset) writes nothing; all true writes all."""
    with Cluster(name="es-multikey") as c:
        c.start()
        c.tally_ok("topic", "create", "m")
        c.tally_ok("produce", "m", "--keyed", input=b"a\ta1\nb\tb1\n")
        s = run_ctypes_child(c.brokers(), "m")
        for step, actual in (("last_fails", 0), ("first_fails", 1), ("offset_fails", 2)):
            r = s[step]
            check(r["rc"] == 16 and r["actual"] == actual,
                  f"{step}: want CONDITION_FAILED (16) with actual {actual}, got {r}")
        r = s["all_hold"]
        check(r["rc"] == 0 and r["base"] == 2 and r["count"] == 3, f"all_hold: {r}")
        # The same conditions again: a and b are now at version 2.
        r = s["replay"]
        check(r["rc"] == 16 and r["actual"] == 2, f"replay of the conditions: {r}")
        r = s["next"]
        check(r["rc"] == 0 and r["base"] == 5 and r["count"] == 2, f"next: {r}")
        recs = keyed(c, "m")
        want = [(0, "a", "a1"), (1, "b", "b1"), (2, "a", "a2"), (3, "b", "b2"), (4, "c", "c1"),
                (5, "a", "a3"), (6, "c", "c2")]
        check(recs == want, f"topic m holds {recs}, want {want}")
        check(next_offset(c, "m") == 7, "next offset is not 7")
        # the CLI sees the versions the conditions counted
        r = c.tally("produce", "m", "-k", "c", "--expect-version", "1", "x")
        check(r.rc == 1 and "key c is at version 2, expected 1" in r.errtext, f"{r!r}")


# -- reading ------------------------------------------------------------------------

def test_consume_key():
    """consume -k KEY prints only that key's records, in offset order (with
    -n counting only those), and nothing for an unknown key."""
    with Cluster(name="es-key") as c:
        c.start()
        c.tally_ok("topic", "create", "ev")
        data = []
        for i in range(300):
            k = ("a", "b", "ab", "")[i % 4]
            data.append(f"{k}\te{i}\n" if k else f"\tnokey{i}\n")
        c.tally_ok("produce", "ev", "--keyed", input="".join(data).encode())
        c.tally_ok("produce", "ev", "plain")  # no key at all
        a = keyed(c, "ev", extra=["-k", "a"])
        check(a == [(i, "a", f"e{i}") for i in range(0, 300, 4)], f"-k a: {a[:5]}...")
        ab = keyed(c, "ev", extra=["-k", "ab"])
        check(ab == [(i, "ab", f"e{i}") for i in range(2, 300, 4)], f"-k ab: {ab[:5]}...")
        first = keyed(c, "ev", extra=["-k", "b", "-n", "3", "--from", "100"])
        check(first == [(101, "b", "e101"), (105, "b", "e105"), (109, "b", "e109")],
              f"-k b -n 3 --from 100: {first}")
        r = c.tally_ok("consume", "ev", "-k", "nosuch")
        check(r.out == b"", f"-k nosuch printed {r.out[:200]!r}")


def test_from_time():
    """--from-time MS starts at the first record with a timestamp >= MS,
    also across segment boundaries; earlier records are skipped."""
    with Cluster(name="es-time") as c:
        c.start()
        c.tally_ok("topic", "create", "tt")
        c.tally_ok("produce", "tt", input=b"early1\nearly2\nearly3\n")
        time.sleep(0.05)
        t = int(time.time() * 1000)
        c.tally_ok("produce", "tt", input=b"late1\nlate2\n")
        c.tally_ok("produce", "tt", "late3")
        synced(c)
        recs = parse_records(c.consume("tt", extra=["--from-time", t]).out)
        check([v for _, v in recs] == [b"late1", b"late2", b"late3"],
              f"--from-time {t}: {recs}")
        check([o for o, _ in recs] == [3, 4, 5], f"--from-time offsets: {recs}")
        recs = parse_records(c.consume("tt", extra=["--from-time", 0]).out)
        check(len(recs) == 6, f"--from-time 0 printed {len(recs)} records, want 6")
        r = c.consume("tt", extra=["--from-time", int(time.time() * 1000) + 3600_000])
        check(r.rc == 0 and r.out == b"", f"--from-time in the future: {r!r}")
        r = c.tally("consume", "tt", "--from-time", t, "--from", "0")
        check(r.rc == 2, f"--from-time with --from: want exit 2, got {r!r}")

        # Many small segments: 40 batches of 10 records of 300 bytes, a few
        # ms apart, in 4 KiB segments.
        c.tally_ok("topic", "create", "seg", "--segment-bytes", "4096")
        for b in range(40):
            c.tally_ok("produce", "seg", input="".join(
                f"b{b:02d}r{i}-{'x' * 300}\n" for i in range(10)).encode())
            time.sleep(0.003)
        synced(c)
        r = c.tally_ok("consume", "seg", "--format", "%o %t\\n")
        all_ts = [tuple(int(x) for x in ln.split()) for ln in lines(r)]
        check(len(all_ts) == 400, f"seg holds {len(all_ts)} records")
        stamps = sorted({ts for _, ts in all_ts})
        probes = stamps[::5] + [stamps[-1], stamps[0] - 1, stamps[len(stamps) // 2] + 1]
        for x in probes:
            want = [o for o, ts in all_ts if ts >= x]
            want = list(range(want[0], 400)) if want else []
            got = [o for o, _ in parse_records(c.consume("seg", extra=["--from-time", x]).out)]
            check(got == want, f"--from-time {x}: first {got[:1]} ({len(got)} records), want "
                  f"first {want[:1]} ({len(want)})")
        print(f"#   {len(probes)} time probes over {len(stamps)} distinct timestamps")


# -- durable groups -----------------------------------------------------------------

def offsets_of(r):
    return [o for o, _ in parse_records(r.out)]


def test_group_resume_and_failover():
    """consume --group resumes where the group committed, groups are
    independent, and the position survives a leader kill."""
    with Cluster(name="es-group") as c:
        old = c.start()
        c.tally_ok("topic", "create", "q")
        c.tally_ok("produce", "q", input="".join(f"m{i}\n" for i in range(20)).encode())
        synced(c)
        fmt = ["--format", "%o\\t%v\\n"]
        r = c.tally_ok("consume", "q", "-n", "5", "--group", "g", *fmt)
        check(offsets_of(r) == [0, 1, 2, 3, 4], f"first --group g -n 5: {r.text!r}")
        r = c.tally_ok("consume", "q", "-n", "5", "--group", "g", *fmt)
        check(offsets_of(r) == [5, 6, 7, 8, 9], f"second --group g -n 5: {r.text!r}")
        r = c.tally_ok("consume", "q", "-n", "3", "--group", "other", *fmt)
        check(offsets_of(r) == [0, 1, 2], f"group other is not independent: {r.text!r}")
        # --from only places a new group; a stored position wins
        r = c.tally_ok("consume", "q", "-n", "2", "--group", "g", "--from", "0", *fmt)
        check(offsets_of(r) == [10, 11], f"--group g --from 0: {r.text!r}")
        r = c.tally_ok("consume", "q", "-n", "2", "--group", "late", "--from", "15", *fmt)
        check(offsets_of(r) == [15, 16], f"new group --from 15: {r.text!r}")

        c.kill(old)
        survivors = [i for i in c.nodes if i != old]
        c.wait_leader(ids=survivors, not_id=old)
        synced(c, ids=survivors)
        for node in survivors:
            # the position through one surviving node's broker list only
            r = c.tally_ok("consume", "q", "-n", "1", "--group", f"g{node}", "--from", "0", *fmt,
                           ids=[node])
            check(offsets_of(r) == [0], f"new group through node {node}: {r.text!r}")
        r = c.tally_ok("consume", "q", "-n", "3", "--group", "g", *fmt, ids=survivors[1:])
        check(offsets_of(r) == [12, 13, 14], f"group g after the leader kill: {r.text!r}")
        r = c.tally_ok("consume", "q", "--group", "other", *fmt, ids=survivors[:1])
        check(offsets_of(r) == list(range(3, 20)), f"group other after the kill: {r.text!r}")
        r = c.tally_ok("consume", "q", "--group", "other", *fmt, ids=survivors[:1])
        check(r.out == b"", f"group other at the end printed {r.text!r}")
        c.tally_ok("produce", "q", "m20", ids=survivors)
        synced(c, ids=survivors)
        r = c.tally_ok("consume", "q", "--group", "other", *fmt, ids=survivors[1:])
        check(offsets_of(r) == [20], f"group other after one more record: {r.text!r}")

        c.restart(old)
        wait_until(lambda: c.status(ids=[old]) is not None, 30, "the restarted node to answer")
        synced(c)
        r = c.tally_ok("consume", "q", "--group", "g", *fmt, ids=[old] + survivors)
        check(offsets_of(r) == list(range(15, 21)), f"group g after the restart: {r.text!r}")


def test_group_position_from_leader():
    """A group's position is read from the leader, not from whichever node
    comes first in the broker list: 20 runs of `consume -n 1 --group h`
    back to back, through a list that starts with a follower, each start
    right after the previous one's commit."""
    with Cluster(name="es-group-read") as c:
        lid = c.start()
        order = [i for i in c.nodes if i != lid] + [lid]  # followers first
        c.tally_ok("topic", "create", "t0", ids=order)
        c.tally_ok("produce", "t0", input=b"".join(b"x%d\n" % i for i in range(50)), ids=order)
        synced(c)
        for i in range(20):
            r = c.tally_ok("consume", "t0", "-n", "1", "--group", "h", "--format", "%o\\n",
                           ids=order)
            check(lines(r) == [str(i)], f"consume --group h -n 1, run {i}: {r!r}")


def test_group_killed_consumer_resumes():
    """A following consumer of a group is SIGKILLed mid-stream while a
    producer writes; the next one resumes at or before the record after
    the last one printed (never skips): together they print every record."""
    total = 20 * 50
    with Cluster(name="es-group-kill") as c:
        c.start()
        c.tally_ok("topic", "create", "s")
        synced(c)
        p = subprocess.Popen([TALLY, "-b", c.brokers(), "consume", "s", "-f", "--group", "w",
                              "--format", "%o\\n"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        errors = []

        def produce():
            try:
                for b in range(20):
                    c.tally_ok("produce", "s", input="".join(f"r{b}-{i}\n" for i in range(50))
                               .encode())
                    time.sleep(0.05)
            except Exception as e:  # reported below
                errors.append(e)
        writer = threading.Thread(target=produce)
        writer.start()
        buf = b""
        try:
            os.set_blocking(p.stdout.fileno(), False)

            def got_some():
                nonlocal buf
                chunk = p.stdout.read()
                if chunk:
                    buf += chunk
                return buf.count(b"\n") >= 300 or p.poll() is not None
            wait_until(got_some, 30, "the follower to print 300 records", interval=0.01)
            if p.poll() is not None:
                raise AssertionError(f"the following consumer exited {p.returncode}: "
                                     f"{p.stderr.read()!r}")
        finally:
            p.kill()
            p.wait(timeout=10)
            writer.join(timeout=60)
        check(not errors, f"producer failed: {errors}")
        rest = p.stdout.read()
        if rest:
            buf += rest
        seen = [int(x) for x in buf.split(b"\n")[:-1]]  # a cut last line is dropped
        check(seen == list(range(len(seen))), f"first consumer printed {seen[:5]}...")
        check(len(seen) < total, f"the consumer had printed all {total} records before the kill")
        synced(c)
        r = c.tally_ok("consume", "s", "--group", "w", "--format", "%o\\n")
        second = [int(x) for x in lines(r)]
        check(second and second[0] <= len(seen) and second == list(range(second[0], total)),
              f"second consumer printed {second[:1]}..{second[-1:]}, after {len(seen)} printed "
              f"(want a start <= {len(seen)} and every record up to {total - 1})")
        print(f"#   killed after {len(seen)} printed; resumed at {second[0]} "
              f"({len(seen) - second[0]} printed twice)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--ctypes-child":
        ctypes_child(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    run_tests([test_expect_version_race, test_expect_offset, test_multikey_all_or_nothing,
               test_consume_key, test_from_time, test_group_resume_and_failover,
               test_group_position_from_leader, test_group_killed_consumer_resumes])
