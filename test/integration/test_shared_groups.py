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

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, TestFailure, check, run_tests, wait_until  # noqa: E402

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


def wait_covered(consumers, last, timeout=60):
    """Until the consumers together printed every offset 0..@last."""
    def pred():
        seen = set()
        for k in consumers:
            seen.update(o for o, _ in k.records())
        return len(seen) == last + 1
    try:
        wait_until(pred, timeout, f"every offset up to {last} to be printed", 0.2)
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
    and every record, before and after, is printed at least once."""
    with Cluster(name="shared-failover") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "q")
        ks = [Consumer(c, "q", "g", "a"), Consumer(c, "q", "g", "b")]
        try:
            wait_members(c, "g", 2)
            last = produce(c, "q", 0, 500)
            wait_covered(ks, last)
            c.kill(leader)
            c.wait_leader(not_id=leader)
            last = produce(c, "q", last + 1, 500)
            wait_covered(ks, last, timeout=90)
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
            wait_until(
                lambda: {o for k in live for o, _ in k.records() if o >= lo}
                == set(range(lo, last + 1)), 60, "the two live consumers to print everything")
            counts = check_split(live, lo, last)
            check(all(n > 0 for n in counts.values()), f"after the rebalance: {counts}")
        finally:
            for k in ks:
                k.close()


def test_refusals_and_options():
    """A second consumer naming another share count is refused with the
    reason; --shares without --group is a usage error; one consumer alone
    reads all, and exits at the end without -f."""
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
            r = c.tally("consume", "other", "--group", "g")
            check(r.rc == 1 and "reading topic q" in r.err.decode(), f"another topic: {r!r}")
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


if __name__ == "__main__":
    run_tests([test_consumers_share_the_work, test_killed_consumer_hands_over,
               test_leader_failover_during_consumption, test_join_during_rebalance,
               test_refusals_and_options])
