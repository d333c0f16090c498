# test_shared_groups.py - shared consumer groups (docs/groups.md) on a real
# three-node cluster, with real `tally consume --group -f` processes:
# consumers of one group split the records (each record printed once while
# the membership is stable, each key's records at one consumer in offset
# order), a SIGKILLed consumer's share moves to the others from its last
# commit (at-least-once, no committed position going back), a leader
# failover during consumption, a consumer joining while a rebalance is
# under way, a Kafka-vs-native name clash refused, and `tally group
# describe` naming members, shares and lag.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_shared_groups.py [TEST...]

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, TestFailure, check, run_tests, libtally_child, wait_until  # noqa: E402

SESSION_MS = 3000
KEYS = 40


class Consumer:
    """A `tally consume TOPIC --group GROUP -f` process writing to a file."""

    def __init__(self, c, topic, group, name, extra=()):
        self.name = name
        fd, self.path = tempfile.mkstemp(prefix=f"shared-{name}-", suffix=".out")
        self.out = os.fdopen(fd, "wb")
        self.err_path = self.path + ".err"
        self.err = open(self.err_path, "wb")
        args = [TALLY, "-b", c.brokers(), "consume", topic, "--group", group, "-f",
                "--session-ms", str(SESSION_MS), "--format", "%o\\t%k\\t%v\\n"] + list(extra)
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err)

    def records(self):
        """[(offset, key)] printed so far (whole lines only)."""
        with open(self.path, "rb") as f:
            data = f.read()
        out = []
        for ln in data.split(b"\n")[:-1]:
            off, key, _ = ln.split(b"\t", 2)
            out.append((int(off), key.decode()))
        return out

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self):
        self.stop(signal.SIGKILL)
        self.out.close()
        self.err.close()
        for p in (self.path, self.err_path):
            try:
                os.unlink(p)
            except OSError:
                pass


def produce(c, topic, start, n):
    """Write @n keyed records k(i % KEYS) = v<i>, i from @start, in one
    batch; return the last offset."""
    lines = "".join(f"k{i % KEYS}\tv{i}\n" for i in range(start, start + n))
    r = c.tally_ok("produce", topic, "--keyed", input=lines.encode())
    return int(r.text.split()[-1])


def members(c, group):
    """[(member, shares)] from `tally group describe`, or [] if none."""
    r = c.tally("group", "describe", group)
    if r.rc != 0 or b"CONSUMERS:" not in r.out:
        return []
    lines = r.text.split("CONSUMERS:", 1)[1].splitlines()[2:]
    return [(ln.split()[0], ln.split()[2]) for ln in lines if ln.strip()]


def wait_members(c, group, n, timeout=30):
    def pred():
        ms = members(c, group)
        # Stable: every member holds shares (16 shares, at most 3 members).
        return ms if len(ms) == n and all(s != "-" for _, s in ms) else None
    return wait_until(pred, timeout, f"group {group} to have {n} members with shares", 0.2)


def wait_covered(consumers, last, timeout=60, lo=0):
    """Until the consumers together printed every offset @lo..@last."""
    def pred():
        seen = set()
        for k in consumers:
            seen.update(o for o, _ in k.records() if o >= lo)
        return seen == set(range(lo, last + 1))
    try:
        wait_until(pred, timeout, f"every offset {lo}..{last} to be printed", 0.2)
    except TestFailure:
        for k in consumers:
            print(f"# consumer {k.name}: {len(k.records())} records; stderr: {k.stderr()!r}")
        raise


def check_split(consumers, lo, hi):
    """Offsets lo..hi: each printed by exactly one consumer, and each key's
    records all at one consumer, in offset order."""
    owner = {}
    for k in consumers:
        by_key = {}
        for off, key in k.records():
            if not lo <= off <= hi:
                continue
            check(off not in owner, f"offset {off} printed by {owner.get(off)} and {k.name}")
            owner[off] = k.name
            by_key.setdefault(key, []).append(off)
        for key, offs in by_key.items():
            check(offs == sorted(offs), f"{k.name}: key {key} out of order: {offs[:20]}")
    check(len(owner) == hi - lo + 1, f"{hi - lo + 1 - len(owner)} offsets of {lo}..{hi} "
          "never printed")
    keys = {}
    for k in consumers:
        for off, key in k.records():
            if lo <= off <= hi:
                keys.setdefault(key, set()).add(k.name)
    split = {key: who for key, who in keys.items() if len(who) > 1}
    check(not split, f"keys printed by more than one consumer: {split}")
    return {k.name: sum(1 for o, _ in k.records() if lo <= o <= hi) for k in consumers}


def test_consumers_share_the_work():
    """Two, then three consumers of one group under a running producer:
    each record once, each key at one consumer, in order; all three work."""
    with Cluster(name="shared-split") as c:
        c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", "a"), Consumer(c, "q", "g", "b")]
        try:
            wait_members(c, "g", 2)
            last = -1
            for _ in range(10):
                last = produce(c, "q", last + 1, 100)
                time.sleep(0.05)
            wait_covered(ks, last)
            counts = check_split(ks, 0, last)
            print(f"# two consumers: {counts}")
            check(all(n > 0 for n in counts.values()), f"a consumer got nothing: {counts}")

            ks.append(Consumer(c, "q", "g", "c"))
            wait_members(c, "g", 3)
            lo = last + 1
            for _ in range(10):
                last = produce(c, "q", last + 1, 100)
                time.sleep(0.05)
            wait_covered(ks, last)
            counts = check_split(ks, lo, last)
            print(f"# three consumers: {counts}")
            check(all(n > 0 for n in counts.values()), f"a consumer got nothing: {counts}")
            # Before the third joined, nothing was printed twice either: a
            # rejoining consumer commits what it printed first.
            check_split(ks, 0, lo - 1)
            r = c.tally_ok("group", "describe", "g")
            check(re.search(r"CONSUMERS: 3, Stable, generation \d+, reading q in 16 shares",
                            r.text), f"describe: {r.text}")
            for k in ks:
                check(k.stop() == 0, f"{k.name} exit status {k.proc.returncode}: {k.stderr()}")
            r = c.tally_ok("group", "describe", "g")
            check(f"{last + 1:12d}  " in r.text.splitlines()[1],
                  f"after every consumer left, the group's position is not {last + 1}: "
                  f"{r.text}")
        finally:
            for k in ks:
                k.close()


def test_four_start_together():
    """Four consumers started at once: each join that lands while another
    rebalance starts joins that one too (none gives up), and all four get
    shares and split the records."""
    with Cluster(name="shared-four") as c:
        c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", n) for n in ("a", "b", "c", "d")]
        try:
            wait_members(c, "g", 4, timeout=60)
            last = produce(c, "q", 0, 800)
            wait_covered(ks, last)
            counts = check_split(ks, 0, last)
            check(all(n > 0 for n in counts.values()), f"four consumers: {counts}")
            for k in ks:
                check(k.proc.poll() is None, f"{k.name} exited: {k.stderr()}")
        finally:
            for k in ks:
                k.close()


def test_killed_consumer_hands_over():
    """SIGKILL one of three: after the session timeout its keys go to the
    others from its last commit; every record printed at least once, and
    no committed position goes back."""
    with Cluster(name="shared-kill") as c:
        c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", n) for n in ("a", "b", "c")]
        positions = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                r = c.tally("group", "describe", "g")
                m = re.search(r"^q\s+(\d+)", r.text, re.M)
                if r.rc == 0 and m:
                    positions.append(int(m.group(1)))
                time.sleep(0.1)
        t = threading.Thread(target=sample)
        try:
            wait_members(c, "g", 3)
            last = produce(c, "q", 0, 600)
            wait_covered(ks, last)
            t.start()
            victim = ks[1]
            had = {key for _, key in victim.records()}
            victim.stop(signal.SIGKILL)
            lo = last + 1
            for _ in range(6):
                last = produce(c, "q", last + 1, 100)
                time.sleep(0.2)
            alive = [ks[0], ks[2]]
            wait_covered(alive + [victim], last, timeout=60)
            seen = set()
            for k in alive:
                seen.update(o for o, key in k.records() if o >= lo)
            check(seen == set(range(lo, last + 1)),
                  f"{last + 1 - lo - len(seen)} records after the kill were not printed by "
                  "the survivors")
            taken = {key for k in alive for o, key in k.records() if o >= lo} & had
            check(taken, "the killed consumer's keys did not move to the others")
            wait_members(c, "g", 2)
            stop.set()
            t.join()
            check(positions == sorted(positions),
                  f"the group's committed position went back: {positions}")
        finally:
            stop.set()
            if t.is_alive():
                t.join()
            for k in ks:
                k.close()


def test_leader_failover_during_consumption():
    """Kill the leader while two consumers read: they rejoin the new leader
    and every record, before and after, is printed at least once. One
    follower was paused while the first records were written, so it lags
    when the consumers turn to it: they wait for it to catch up (a read
    carries the index of the last one) rather than being told the topic
    ends before their position (found by CI: both consumers exited)."""
    with Cluster(name="shared-failover") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", "a"), Consumer(c, "q", "g", "b")]
        try:
            wait_members(c, "g", 2)
            lagging = next(i for i in c.nodes if i != leader)
            c.pause(lagging)
            last = produce(c, "q", 0, 500)
            wait_covered(ks, last)
            c.kill(leader)
            c.resume(lagging)
            c.wait_leader(not_id=leader)
            last = produce(c, "q", last + 1, 500)
            wait_covered(ks, last, timeout=90)
            for k in ks:
                check(k.proc.poll() is None,
                      f"{k.name} exited {k.proc.returncode}: {k.stderr()}")
            wait_members(c, "g", 2, timeout=60)
            lo = last + 1
            last = produce(c, "q", lo, 300)
            wait_covered(ks, last)
            counts = check_split(ks, lo, last)
            check(all(n > 0 for n in counts.values()), f"after failover: {counts}")
        finally:
            for k in ks:
                k.close()


def test_join_during_rebalance():
    """A consumer joins while the group waits for a killed member's
    session to run out: one rebalance takes them both in, and the records
    are still all printed."""
    with Cluster(name="shared-midjoin") as c:
        c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", "a"), Consumer(c, "q", "g", "b")]
        try:
            before = {m for m, _ in wait_members(c, "g", 2)}
            last = produce(c, "q", 0, 300)
            wait_covered(ks, last)
            ks[1].stop(signal.SIGKILL)
            ks.append(Consumer(c, "q", "g", "c"))  # joins: a rebalance waits for b
            wait_until(lambda: len({m for m, _ in wait_members(c, "g", 2)} - before) == 1,
                       30, "c to replace b in the group")
            lo = last + 1
            last = produce(c, "q", lo, 400)
            live = [ks[0], ks[2]]
            wait_covered(live, last, lo=lo)
            counts = check_split(live, lo, last)
            check(all(n > 0 for n in counts.values()), f"after the rebalance: {counts}")
        finally:
            for k in ks:
                k.close()


def test_refusals_and_options():
    """A second consumer naming another share count is refused with the
    reason; the same group on another topic at the same time is its own
    coordination (as before shared groups, a group name may be read on
    several topics at once); --shares without --group is a usage error;
    one consumer alone reads all, and exits at the end without -f."""
    with Cluster(name="shared-refuse") as c:
        c.start()
        c.tally_ok("topic", "create", "q")
        c.tally_ok("topic", "create", "other")
        last = produce(c, "q", 0, 50)
        k = Consumer(c, "q", "g", "a", extra=("--shares", "8"))
        try:
            wait_members(c, "g", 1)
            r = c.tally("consume", "q", "--group", "g", "--shares", "4")
            check(r.rc == 1 and "reading topic q in 8 shares" in r.text + r.err.decode(),
                  f"another share count: {r!r}")
            produce(c, "other", 0, 5)
            r = c.tally("consume", "other", "--group", "g", "--format", "%o\\n")
            check(r.rc == 0 and r.text.split() == ["0", "1", "2", "3", "4"],
                  f"group g on another topic while it reads q: {r!r}")
            wait_covered([k], last)
            check(sorted(o for o, _ in k.records()) == list(range(last + 1)),
                  "one consumer alone reads every record")
        finally:
            k.close()
        r = c.tally("consume", "q", "--shares", "4")
        check(r.rc == 2 and "--group" in r.err.decode(), f"--shares without --group: {r!r}")
        # Alone again (the -f consumer was killed: its session must run out).
        r = c.tally_ok("consume", "q", "--group", "g2", "--format", "%o\\n", timeout=60)
        check(r.text.split() == [str(i) for i in range(last + 1)], f"alone: {r!r}")
        r = c.tally_ok("consume", "q", "--group", "g2", "--format", "%o\\n")
        check(r.text == "", f"the second run of g2 printed again: {r!r}")


# -- the model-based test through libtally ---------------------------------

def model_child(lib_path, brokers, seed, secs):
    """Members of group "m" on topic "mq" in threads, each with its own
    libtally handle, doing random polls, commits, leaves and crashes (a
    member freed without leaving) while a producer writes keyed records.
    Checks, as it goes: a key's records are never held by two live members
    at once (a member holds its last poll's records until its next call);
    within one member's generation a key's offsets only grow. At the end:
    a last member reads the rest, and every offset was delivered at least
    once. Prints a JSON summary; exits 1 on a violation."""
    import ctypes as C
    import random

    class Opts(C.Structure):
        _fields_ = [("shares", C.c_uint), ("session_ms", C.c_uint32),
                    ("commit_ms", C.c_uint32), ("filter", C.c_char_p),
                    ("max_bytes", C.c_uint32)]

    class Record(C.Structure):
        _fields_ = [("offset", C.c_uint64), ("timestamp_ms", C.c_int64),
                    ("key", C.c_void_p), ("key_len", C.c_size_t),
                    ("value", C.c_void_p), ("value_len", C.c_size_t)]

    class Result(C.Structure):
        _fields_ = [("records", C.POINTER(Record)), ("n", C.c_size_t),
                    ("next_offset", C.c_uint64), ("high_offset", C.c_uint64),
                    ("start_offset", C.c_uint64), ("applied_index", C.c_uint64),
                    ("impl", C.c_void_p)]

    lib = C.CDLL(lib_path)
    lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.tally_client_destroy.argtypes = [C.c_void_p]
    lib.tally_errmsg.argtypes = [C.c_void_p]
    lib.tally_errmsg.restype = C.c_char_p
    lib.tally_group_join.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.POINTER(Opts),
                                     C.POINTER(C.c_void_p)]
    lib.tally_group_poll.argtypes = [C.c_void_p, C.c_uint32, C.POINTER(Result)]
    lib.tally_group_member_commit.argtypes = [C.c_void_p, C.c_uint64]
    lib.tally_group_member_shares.argtypes = [C.c_void_p, C.c_void_p, C.c_uint,
                                              C.POINTER(C.c_uint32)]
    lib.tally_group_member_shares.restype = C.c_uint
    lib.tally_group_leave.argtypes = [C.c_void_p]
    lib.tally_group_member_free.argtypes = [C.c_void_p]
    lib.tally_fetch_result_free.argtypes = [C.POINTER(Result)]

    rng = random.Random(seed)
    lock = threading.Lock()
    holds = {}          # key -> slot holding it (its last poll's records)
    delivered = set()   # offsets delivered at least once
    violations = []
    stats = {"polls": 0, "records": 0, "joins": 0, "leaves": 0, "crashes": 0, "commits": 0}
    stop = threading.Event()

    def opts():
        o = Opts()
        o.shares, o.session_ms, o.commit_ms, o.max_bytes = 8, 2000, 200, 65536
        return o

    def client():
        cl = C.c_void_p()
        assert lib.tally_client_create(brokers.encode(), C.byref(cl)) == 0
        return cl

    def release(slot):
        for k in [k for k, s in holds.items() if s == slot]:
            del holds[k]

    def member_loop(slot, seed2):
        r = random.Random(seed2)
        cl = client()
        m = None
        last = {}   # (generation, key) -> last offset
        while not stop.is_set():
            if m is None:
                mp = C.c_void_p()
                o = opts()
                rc = lib.tally_group_join(cl, b"m", b"mq", C.byref(o), C.byref(mp))
                if rc != 0:
                    time.sleep(0.2)
                    continue
                m = mp
                with lock:
                    stats["joins"] += 1
            with lock:
                release(slot)  # calling poll: the last poll's records are processed
            res = Result()
            rc = lib.tally_group_poll(m, 100, C.byref(res))
            gen = C.c_uint32()
            lib.tally_group_member_shares(m, None, 0, C.byref(gen))
            if rc == 0:
                with lock:
                    stats["polls"] += 1
                    for i in range(res.n):
                        rec = res.records[i]
                        key = C.string_at(rec.key, rec.key_len).decode()
                        other = holds.get(key)
                        if other is not None and other != slot:
                            violations.append(f"key {key} at offset {rec.offset}: slot {slot} "
                                              f"got it while slot {other} holds it")
                        holds[key] = slot
                        prev = last.get((gen.value, key))
                        if prev is not None and rec.offset <= prev:
                            violations.append(f"slot {slot} generation {gen.value}: key {key} "
                                              f"offset {rec.offset} after {prev}")
                        last[(gen.value, key)] = rec.offset
                        delivered.add(rec.offset)
                        stats["records"] += 1
                lib.tally_fetch_result_free(C.byref(res))
            x = r.random()
            if x < 0.02:  # leave (commit first), rejoin later
                lib.tally_group_member_commit(m, 2**64 - 1)
                lib.tally_group_leave(m)
                m = None
                with lock:
                    release(slot)
                    stats["leaves"] += 1
                time.sleep(r.uniform(0.1, 1.0))
            elif x < 0.03:  # crash: gone without a word; a new member later
                lib.tally_group_member_free(m)
                m = None
                with lock:
                    release(slot)
                    stats["crashes"] += 1
                time.sleep(r.uniform(0.1, 1.0))
            elif x < 0.10:
                lib.tally_group_member_commit(m, 2**64 - 1)
                with lock:
                    stats["commits"] += 1
        if m is not None:
            lib.tally_group_member_commit(m, 2**64 - 1)
            lib.tally_group_leave(m)
        lib.tally_client_destroy(cl)

    produced = [0]

    def producer():
        n = 0
        while not stop.is_set():
            lines = "".join(f"k{(n + i) % 30}\tv{n + i}\n" for i in range(20))
            p = subprocess.run([TALLY, "-b", brokers, "produce", "mq", "--keyed"],
                               input=lines.encode(), capture_output=True)
            if p.returncode == 0:
                n += 20
                produced[0] = int(p.stdout.split()[-1]) + 1
            time.sleep(0.05)

    threads = [threading.Thread(target=member_loop, args=(i, rng.random())) for i in range(4)]
    threads.append(threading.Thread(target=producer))
    for t in threads:
        t.start()
    time.sleep(secs)
    stop.set()
    for t in threads:
        t.join()
    # A last member reads what is left: everything was delivered once at least.
    cl = client()
    mp = C.c_void_p()
    o = opts()
    assert lib.tally_group_join(cl, b"m", b"mq", C.byref(o), C.byref(mp)) == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        res = Result()
        if lib.tally_group_poll(mp, 200, C.byref(res)) == 0:
            for i in range(res.n):
                delivered.add(res.records[i].offset)
            done = res.next_offset >= produced[0]
            lib.tally_fetch_result_free(C.byref(res))
            if done:
                break
    lib.tally_group_member_commit(mp, 2**64 - 1)
    lib.tally_group_leave(mp)
    lib.tally_client_destroy(cl)
    missing = sorted(set(range(produced[0])) - delivered)
    if missing:
        violations.append(f"{len(missing)} offsets never delivered, first {missing[:10]}")
    stats["produced"] = produced[0]
    stats["violations"] = violations[:20]
    print(json.dumps(stats))
    sys.exit(1 if violations else 0)


def test_model_through_libtally():
    """Random joins, leaves, crashes and commits of four libtally members
    under a producer (model_child): no key held by two members at once,
    per-key order within a generation, every record delivered."""
    with Cluster(name="shared-model") as c:
        c.start()
        c.tally_ok("topic", "create", "mq")
        lib, env = libtally_child()
        seed = int(os.environ.get("TALLY_MODEL_SEED", str(int(time.time()))))
        print(f"# seed {seed} (TALLY_MODEL_SEED={seed} repeats it)")
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--model-child", lib,
                            c.brokers(), str(seed), "20"], env=env, capture_output=True,
                           text=True, timeout=180)
        out = p.stdout.strip().splitlines()
        print(f"# {out[-1] if out else p.stderr[-2000:]}")
        check(p.returncode == 0, f"model child exited {p.returncode}: {p.stdout[-3000:]} "
              f"{p.stderr[-3000:]}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--model-child":
        model_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    run_tests([test_consumers_share_the_work, test_four_start_together,
               test_killed_consumer_hands_over,
               test_leader_failover_during_consumption, test_join_during_rebalance,
               test_refusals_and_options, test_model_through_libtally])
