# test_kafka_groups.py - Kafka consumer groups against tallyd's group
# coordinator (the Raft leader: src/server/kgroup.c, kgw_group.c): kcat -G
# resumes from the offsets it committed on close; three confluent-kafka
# consumers share six topics and take over a SIGKILLed member's topics
# after its session timeout; consumers rejoin at the new leader after the
# Raft leader is SIGKILLed, losing no committed offset; a kafkajs group
# member; Kafka commits and `tally consume --group` move the same position;
# AdminClient's describe_configs and list_groups; and bad input on a raw
# socket (unknown member, wrong generation, a follower, a truncated frame,
# a heartbeat during a rebalance, a flood of pending member ids).
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_kafka_groups.py [NAME...]

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, TALLY, check, run_tests, wait_until  # noqa: E402
from kafka_cluster import KCAT, KafkaCluster  # noqa: E402

try:
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource
except ImportError:
    Consumer = None

KAFKA_DIR = os.path.join(os.environ.get("TALLY_SRC_DIR") or
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                         "test", "kafka")
NODE = shutil.which("node") or shutil.which("nodejs")
PYTHON = sys.executable  # the one that imported confluent_kafka above

# Kafka error codes the tests expect.
NONE, NOT_COORDINATOR, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID = 0, 16, 22, 25
REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED = 27, 79, 81

# Short rebalances: an empty group's first generation waits this long
# for more members (the default, 1000 ms, would only slow the tests).
FAST = ["--set", "kafka_group_initial_delay_ms=200"]


# -- helpers -------------------------------------------------------------------

def start(c):
    """Start the cluster and wait until its leader takes writes; return
    the leader's id."""
    leader = c.start()
    c.tally_ok("topic", "create", "warmup")
    return c.leader() or leader


def produce(c, topic, values):
    c.tally_ok("produce", topic, input=b"".join(v.encode() + b"\n" for v in values))


def positions(c, group):
    """The group's native positions, {topic: next offset}, from
    `tally group describe` ({} when it has none)."""
    r = c.tally("group", "describe", group)
    if r.rc != 0:
        check("has no position" in r.errtext, f"group describe {group}: {r!r}")
        return {}
    pos = {}
    for line in r.text.splitlines()[1:]:
        if not line.strip():
            break  # the group's consumers follow (docs/groups.md)
        f = line.split()
        if len(f) >= 2:
            pos[f[0]] = int(f[1])
    return pos


class PositionLog:
    """Polls a group's native positions over time; every poll must be at
    or above the one before, topic by topic."""

    def __init__(self, c, group):
        self.c, self.group, self.seen = c, group, {}
        self.polls = 0

    def poll(self):
        now = positions(self.c, self.group)
        for t, off in now.items():
            check(off >= self.seen.get(t, 0),
                  f"group {self.group}'s position on {t} went back: {self.seen.get(t)} -> {off}")
            self.seen[t] = off
        self.polls += 1
        return now


def rss_kib(c, node_id):
    with open(f"/proc/{c.nodes[node_id].proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


# A confluent-kafka group member in its own process. argv: BOOTSTRAP GROUP
# STOPFILE MAX_SECONDS DELAY_MS TOPIC... It prints, with the monotonic
# clock first (comparable across processes), "rec TOPIC OFFSET" for every
# record it processed, "commit TOPIC OFFSET" for every commit the
# coordinator accepted, and its assignments; it commits synchronously after
# each batch, only for topics it still owns (a topic revoked during the
# batch is left to its next owner: at-least-once, and no stale commit after
# a newer owner's). It stops when STOPFILE exists or after MAX_SECONDS.
MEMBER = r'''
import os, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition
boot, group, stop, secs, delay = sys.argv[1:6]
topics = sys.argv[6:]
owned = set()
def out(*a):
    print("%.3f" % time.monotonic(), *a, flush=True)
def on_assign(c, parts):
    owned.clear()
    owned.update(p.topic for p in parts)
    out("assign", ",".join(sorted(owned)) or "-")
def on_revoke(c, parts):
    for p in parts:
        owned.discard(p.topic)
    out("revoke", ",".join(sorted(p.topic for p in parts)) or "-")
c = Consumer({"bootstrap.servers": boot, "group.id": group, "client.id": "member",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "partition.assignment.strategy": "roundrobin",
              "topic.metadata.refresh.interval.ms": 2000})
c.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
deadline = time.monotonic() + float(secs)
while time.monotonic() < deadline and not os.path.exists(stop):
    done = {}
    for m in c.consume(num_messages=20, timeout=0.3):
        if m.error():
            out("error", m.error().name())
            continue
        time.sleep(float(delay) / 1000)
        out("rec", m.topic(), m.offset())
        done[m.topic()] = m.offset() + 1
    tps = [TopicPartition(t, 0, o) for t, o in sorted(done.items()) if t in owned]
    if not tps:
        continue
    try:
        for tp in c.commit(offsets=tps, asynchronous=False):
            if tp.error:
                out("commitfail", tp.topic, tp.offset, tp.error)
            else:
                out("commit", tp.topic, tp.offset)
    except KafkaException as e:
        out("commitfail", e.args[0].name())
c.close()
out("closed")
'''


class Member:
    """One MEMBER process; its output goes to a file that is parsed on
    demand."""

    def __init__(self, tmp, name, boot, group, topics, secs=150, delay_ms=0):
        self.name = name
        self.stop_path = os.path.join(tmp, f"{name}.stop")
        self.out_path = os.path.join(tmp, f"{name}.out")
        self.err_path = os.path.join(tmp, f"{name}.err")
        script = os.path.join(tmp, "member.py")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(MEMBER)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([PYTHON, script, boot, group, self.stop_path, str(secs),
                                          str(delay_ms)] + list(topics),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def lines(self):
        with open(self.out_path, "rb") as f:
            data = f.read().decode("utf-8", "replace")
        res = []
        for line in data.split("\n")[:-1]:  # a line without its newline is still being written
            f = line.split()
            if len(f) >= 2:
                res.append((float(f[0]), f[1], f[2:]))
        return res

    def records(self):
        return {(a[0], int(a[1])) for _, what, a in self.lines() if what == "rec"}

    def commits(self):
        """[(time, topic, offset)] of the accepted commits."""
        return [(t, a[0], int(a[1])) for t, what, a in self.lines() if what == "commit"]

    def assignment(self, since=0.0):
        """The last assignment (a set of topics) at or after @since, or None."""
        last = None
        for t, what, a in self.lines():
            if what == "assign" and t >= since:
                last = set() if a[0] == "-" else set(a[0].split(","))
        return last

    def stop(self, timeout=30):
        open(self.stop_path, "w").close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            check(False, f"member {self.name} did not stop within {timeout}s")
        check(self.proc.returncode == 0 and self.lines()[-1][1] == "closed",
              f"member {self.name} exited {self.proc.returncode}: {self.stderr()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-2000:]


def check_commits_monotonic(members, since=0.0, floor=None):
    """Every accepted commit, over all @members in time order, is at or
    above the one before on its topic (and at or above @floor[topic] when
    made at or after @since)."""
    last = {}
    for t, topic, off in sorted(c for m in members for c in m.commits()):
        check(off >= last.get(topic, 0),
              f"a commit on {topic} went back: {last.get(topic)} -> {off} (at {t:.3f})")
        last[topic] = off
        if floor is not None and t >= since:
            check(off >= floor.get(topic, 0),
                  f"a commit on {topic} after the failover is below the position before it: "
                  f"{off} < {floor.get(topic)}")
    return last


class Pump:
    """Produces a round of records to every topic every @interval seconds
    in a thread until stopped (at most @rounds rounds); remembers every
    delivered (topic, offset)."""

    def __init__(self, c, topics, interval=0.25, rounds=400, per_round=3):
        self.p = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 5,
                           "message.timeout.ms": 30000})
        self.topics, self.interval = topics, interval
        self.rounds, self.per_round = rounds, per_round
        self.delivered, self.errors = set(), []
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _cb(self, err, m):
        if err is not None:
            self.errors.append(err)
        else:
            self.delivered.add((m.topic(), m.offset()))

    def _run(self):
        for r in range(self.rounds):
            if self.halt.is_set():
                break
            for t in self.topics:
                for i in range(self.per_round):
                    self.p.produce(t, value=f"{t}-r{r}-{i}".encode(), on_delivery=self._cb)
            self.p.poll(0)
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.thread.join(timeout=10)
        left = self.p.flush(30)
        check(left == 0 and not self.errors, f"producer: {left} left, errors {self.errors[:3]}")
        return set(self.delivered)


# -- kcat -G -------------------------------------------------------------------------

def kcat_group(c, group, topics, want, timeout=40):
    """Run kcat -G until it printed @want records ("TOPIC OFFSET VALUE"
    lines), then SIGTERM it (it commits on close) and return every line
    it printed."""
    p = subprocess.Popen([KCAT, "-b", c.bootstrap(), "-G", group, "-u", "-q",
                          "-X", "auto.offset.reset=earliest", "-f", "%t %o %s\\n"] + topics,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    buf = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    try:
        while len(lines) < want and time.monotonic() < deadline and p.poll() is None:
            try:
                chunk = p.stdout.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines += [d.decode() for d in done]
            else:
                time.sleep(0.05)
        if p.poll() is not None:
            check(False, f"kcat -G exited {p.returncode}: {p.stderr.read()!r}")
        check(len(lines) >= want, f"kcat -G printed {len(lines)} of {want} records in {timeout}s")
        time.sleep(0.5)  # would print any extra record
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rest, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            check(False, "kcat -G did not exit within 20s of SIGTERM")
    lines += [d.decode() for d in (buf + rest).split(b"\n") if d]
    check(p.returncode == 0, f"kcat -G exited {p.returncode}: {err!r}")
    return lines


def test_kcat_group_resumes():
    """kcat -G over two topics prints every record once, commits on close
    (tally group describe shows both ends); started again after more
    records it prints only the new ones."""
    with KafkaCluster(name="kgrp-kcat", extra_args=FAST) as c:
        start(c)
        for t in ["a", "b"]:
            c.tally_ok("topic", "create", t)
            produce(c, t, [f"{t}{i}" for i in range(30)])
        lines = kcat_group(c, "grp", ["a", "b"], 60)
        want = [f"{t} {i} {t}{i}" for t in ["a", "b"] for i in range(30)]
        check(sorted(lines) == sorted(want),
              f"first run printed {len(lines)} lines: {lines[:5]}...")
        check(positions(c, "grp") == {"a": 30, "b": 30},
              f"positions after the first run: {positions(c, 'grp')}")
        r = c.tally_ok("group", "list")
        check(any(line.split()[:2] == ["grp", "2"] for line in r.text.splitlines()),
              f"group list: {r.text!r}")
        for t in ["a", "b"]:
            produce(c, t, [f"{t}{i}" for i in range(30, 40)])
        lines = kcat_group(c, "grp", ["a", "b"], 20)
        want = [f"{t} {i} {t}{i}" for t in ["a", "b"] for i in range(30, 40)]
        check(sorted(lines) == sorted(want), f"second run printed {lines}")
        check(positions(c, "grp") == {"a": 40, "b": 40}, f"positions: {positions(c, 'grp')}")
        c.check_up()


# -- three members, one killed -----------------------------------------------------

def admin_group(admin, group):
    """(state, number of members) of @group from DescribeGroups, or None."""
    try:
        gs = admin.list_groups(group, timeout=10)
    except KafkaException:
        return None
    return (gs[0].state, len(gs[0].members)) if gs else None


def test_three_members_one_killed():
    """Three confluent-kafka members share six topics (two each, round
    robin); one is SIGKILLed while records keep coming; after its session
    timeout the other two own all six; every record is processed at least
    once and no committed offset ever goes back (the members' commits in
    time order, and the native position polled throughout)."""
    topics = [f"t{i}" for i in range(6)]
    with KafkaCluster(name="kgrp-three", extra_args=FAST) as c, \
            tempfile.TemporaryDirectory(prefix="kgrp-") as tmp:
        leader = start(c)
        for t in topics:
            c.tally_ok("topic", "create", t)
            produce(c, t, [f"{t}-pre{i}" for i in range(20)])
        pre = {(t, i) for t in topics for i in range(20)}
        members = [Member(tmp, f"m{i}", c.bootstrap(), "three", topics) for i in range(3)]
        pump = None
        try:
            admin = AdminClient({"bootstrap.servers": c.bootstrap([leader])})
            log = PositionLog(c, "three")

            def spread():
                log.poll()
                return (all(m.records() and m.assignment() for m in members) and
                        admin_group(admin, "three") == ("Stable", 3))
            wait_until(spread, 60, "three members with records and a Stable group", interval=0.5)
            for m in members:
                check(len(m.assignment()) == 2, f"{m.name} owns {m.assignment()}")
            pump = Pump(c, topics)
            time.sleep(1)
            victim, rest = members[0], members[1:]
            lost = victim.assignment()
            victim.kill()
            killed_at = time.monotonic()

            def taken_over():
                log.poll()
                got = [m.assignment(killed_at) for m in rest]
                return (all(g is not None for g in got) and set().union(*got) == set(topics) and
                        admin_group(admin, "three") == ("Stable", 2))
            wait_until(taken_over, 60, "the two others to own all six topics", interval=0.5)
            moved_at = time.monotonic()
            # They process the victim's topics: records arrive there after the move.
            wait_until(lambda: log.poll() is not None and all(
                any(t >= moved_at for t, what, a in m.lines() if what == "rec" and a[0] in lost)
                for m in rest if m.assignment() & lost), 30, "records of the moved topics",
                interval=0.5)
            delivered = pump.stop() | pre
            pump = None
            ends = {t: 1 + max(o for tt, o in delivered if tt == t) for t in topics}
            check(all(sum(1 for tt, _ in delivered if tt == t) == ends[t] for t in topics),
                  "the producer's offsets have gaps")

            def all_done():
                seen = set().union(*(m.records() for m in members))
                pos = log.poll()
                return delivered <= seen and pos == ends
            wait_until(all_done, 60, "every record processed and committed", interval=0.5)
            for m in rest:
                m.stop()
            last = check_commits_monotonic(members)
            check(last == ends, f"last commits {last}, ends {ends}")
            print(f"# {log.polls} position polls; victim owned {sorted(lost)}", flush=True)
        finally:
            admin = None
            if pump is not None:
                pump.halt.set()
            for m in members:
                m.kill()
        c.check_up()


# -- the Raft leader killed ---------------------------------------------------------

def test_leader_killed_members_rejoin():
    """Two members consume two topics (slowly: a record takes 10 ms);
    the Raft leader, their coordinator, is SIGKILLed midway; they rejoin
    at the new leader and go on: every record is processed at least once,
    and no commit after the failover is below the position before it."""
    topics = ["x", "y"]
    with KafkaCluster(name="kgrp-fail", extra_args=FAST) as c, \
            tempfile.TemporaryDirectory(prefix="kgrp-") as tmp:
        leader = start(c)
        for t in topics:
            c.tally_ok("topic", "create", t)
            produce(c, t, [f"{t}{i}" for i in range(300)])
        members = [Member(tmp, f"f{i}", c.bootstrap(), "fail", topics, delay_ms=10)
                   for i in range(2)]
        try:
            log = PositionLog(c, "fail")

            def midway():
                pos = log.poll()
                return len(pos) == 2 and all(0 < pos[t] < 250 for t in topics)
            wait_until(midway, 60, "both topics partly consumed", interval=0.3)
            before = log.poll()
            c.kill(leader)
            killed_at = time.monotonic()
            new = c.wait_leader(timeout=30)
            check(new != leader, "no new leader")
            for t in topics:
                produce(c, t, [f"{t}{i}" for i in range(300, 350)])
            want = {(t, i) for t in topics for i in range(350)}

            def all_done():
                seen = set().union(*(m.records() for m in members))
                return want <= seen and log.poll() == {t: 350 for t in topics}
            wait_until(all_done, 90, "every record processed and committed at the new leader",
                       interval=0.5)
            for m in members:
                m.stop()
            check_commits_monotonic(members, since=killed_at, floor=before)
            check(log.seen == {t: 350 for t in topics}, f"positions {log.seen}")
            with open(c.nodes[new].log_path, errors="replace") as f:
                check("group fail: generation" in f.read(),
                      "the members did not join at the new leader")
            print(f"# positions before the failover {before}", flush=True)
        finally:
            for m in members:
                m.kill()
        c.check_up()


# -- kafkajs ----------------------------------------------------------------------

def kafkajs_group(c, group, topic, count):
    p = subprocess.run([NODE, os.path.join(KAFKA_DIR, "kafkajs_group.js"), c.bootstrap(), group,
                        topic, str(count)], capture_output=True, timeout=120, cwd=KAFKA_DIR)
    out = p.stdout.decode().splitlines()
    check(p.returncode == 0, f"kafkajs: {p.stderr.decode()[-3000:]} {out[-5:]}")
    return out


def test_kafkajs_group():
    """A kafkajs group member reads 100 records and commits; the native
    position is the end; run again after 30 more it reads only those."""
    with KafkaCluster(name="kgrp-js", extra_args=FAST) as c:
        start(c)
        c.tally_ok("topic", "create", "js")
        produce(c, "js", [f"v{i}" for i in range(100)])
        out = kafkajs_group(c, "jsg", "js", 100)
        check(out == [f"rec {i} v{i}" for i in range(100)] + ["committed 100"],
              f"kafkajs said {out[:3]}...{out[-3:]}")
        check(positions(c, "jsg") == {"js": 100}, f"positions {positions(c, 'jsg')}")
        produce(c, "js", [f"v{i}" for i in range(100, 130)])
        out = kafkajs_group(c, "jsg", "js", 30)
        check(out == [f"rec {i} v{i}" for i in range(100, 130)] + ["committed 130"],
              f"second run said {out[:3]}...{out[-3:]}")
        check(positions(c, "jsg") == {"js": 130}, f"positions {positions(c, 'jsg')}")
        c.check_up()


# -- native interop -----------------------------------------------------------------

def kafka_read(c, group, topic, n, commit=True, timeout=30):
    """A confluent-kafka member of @group reads @n records of @topic and
    commits after the last (synchronously); returns their offsets and the
    committed offset OffsetFetch then answers."""
    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000})
    try:
        cons.subscribe([topic])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = cons.poll(0.3)
            if m is None:
                continue
            check(m.error() is None, f"consumer error: {m.error()}")
            got.append(m)
        check(len(got) == n, f"read {len(got)} of {n} records of {topic}")
        if commit:
            cons.commit(message=got[-1], asynchronous=False)
        committed = cons.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        return [m.offset() for m in got], committed
    finally:
        cons.close()


def test_native_interop():
    """A Kafka member commits offset 4; `tally consume --group` goes on
    from 4 to the end; more records, native -n 2 moves the position to 12;
    a Kafka member starts at 12."""
    with KafkaCluster(name="kgrp-native", extra_args=FAST) as c:
        leader = start(c)
        c.tally_ok("topic", "create", "n")
        produce(c, "n", [f"n{i}" for i in range(10)])
        offs, committed = kafka_read(c, "G", "n", 4)
        check(offs == [0, 1, 2, 3] and committed == 4, f"Kafka read {offs}, committed {committed}")
        check(positions(c, "G") == {"n": 4}, f"native position {positions(c, 'G')}")
        # Read from the leader: a follower may not hold the newest records yet.
        r = c.consume("n", node_id=leader, extra=["--group", "G"])
        check(r.rc == 0, f"native consume: {r!r}")
        check(r.text.splitlines() == [f"{i}\tn{i}" for i in range(4, 10)],
              f"native consume printed {r.text!r}")
        check(positions(c, "G") == {"n": 10}, f"native position {positions(c, 'G')}")
        produce(c, "n", [f"n{i}" for i in range(10, 15)])
        r = c.consume("n", node_id=leader, extra=["--group", "G", "-n", "2"])
        check(r.rc == 0 and r.text.splitlines() == ["10\tn10", "11\tn11"], f"native -n 2: {r!r}")
        check(positions(c, "G") == {"n": 12}, f"native position {positions(c, 'G')}")
        offs, committed = kafka_read(c, "G", "n", 3)
        check(offs == [12, 13, 14] and committed == 15, f"Kafka read {offs}, committed {committed}")
        check(positions(c, "G") == {"n": 15}, f"native position {positions(c, 'G')}")
        c.check_up()


# -- AdminClient ----------------------------------------------------------------------

def test_admin_configs_and_groups():
    """describe_configs: a topic created with cleanup.policy=compact says
    compact (not a default), a plain one delete (the default), with its
    retention; an unknown topic is an error. list_groups names a group
    with a member (Stable, consumer) and one with positions only."""
    with KafkaCluster(name="kgrp-admin", extra_args=FAST) as c:
        start(c)
        c.tally_ok("topic", "create", "cmp", "--policy", "compact")
        c.tally_ok("topic", "create", "plain", "--policy", "delete", "--retention-ms", "3600000")
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})

        def configs(topic):
            f = admin.describe_configs([ConfigResource("topic", topic)])
            return {k: v for k, v in list(f.values())[0].result(timeout=20).items()}
        cfg = wait_until(lambda: configs("cmp"), 20, "cmp's configs")
        check(cfg["cleanup.policy"].value == "compact" and not cfg["cleanup.policy"].is_default,
              f"cmp: {cfg['cleanup.policy']}")
        cfg = configs("plain")
        check(cfg["cleanup.policy"].value == "delete" and cfg["retention.ms"].value == "3600000",
              f"plain: {cfg}")
        check(cfg["retention.bytes"].value == "-1", f"plain: {cfg['retention.bytes']}")
        try:
            configs("nosuch")
            check(False, "describe_configs of an unknown topic succeeded")
        except KafkaException as e:
            check("UNKNOWN_TOPIC" in str(e), f"nosuch: {e}")
        produce(c, "cmp", ["k"])
        c.tally_ok("consume", "cmp", "--group", "native-only")
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "live",
                         "session.timeout.ms": 6000, "auto.offset.reset": "earliest"})
        try:
            cons.subscribe(["cmp"])
            wait_until(lambda: cons.poll(0.3) is not None, 30, "the live member's record")
            # Every broker is asked (ListGroups), followers too.
            gs = {g.id: g for g in admin.list_groups(timeout=20)}
            check("live" in gs and "native-only" in gs, f"list_groups: {sorted(gs)}")
            check(gs["live"].state == "Stable" and gs["live"].protocol_type == "consumer" and
                  len(gs["live"].members) == 1, f"live: {gs['live'].state} {gs['live'].members}")
            m = gs["live"].members[0]
            check(m.client_host == "/127.0.0.1", f"client host {m.client_host!r}")
            check(gs["native-only"].state == "Empty", f"native-only: {gs['native-only'].state}")
        finally:
            cons.close()
            admin = None  # its connections close before the nodes stop
        c.check_up()


# -- raw frames ---------------------------------------------------------------------

def kstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(s)) + s


def kbytes(b):
    return struct.pack(">i", len(b)) + b


def request(api, version, body, corr=7):
    head = struct.pack(">hhi", api, version, corr) + kstr(b"rawtest")
    return struct.pack(">i", len(head) + len(body)) + head + body


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def fixed(self, fmt):
        v = struct.unpack_from(">" + fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.fixed("h")
        if n < 0:
            return None
        v = self.d[self.p:self.p + n].decode()
        self.p += n
        return v

    def bytes(self):
        n = self.fixed("i")
        v = self.d[self.p:self.p + max(n, 0)]
        self.p += max(n, 0)
        return v

    def done(self):
        check(self.p == len(self.d), f"{len(self.d) - self.p} bytes left over in an answer")


class Conn:
    """A raw Kafka connection: send requests, read answer frames."""

    def __init__(self, addr, timeout=20):
        host, port = addr.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.corr = 0

    def send(self, api, version, body):
        self.corr += 1
        self.s.sendall(request(api, version, body, corr=self.corr))
        return self.corr

    def frame(self):
        """The next answer: (correlation id, body), or None when closed."""
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack_from(">i", self.buf)[0]:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        n = struct.unpack_from(">i", self.buf)[0]
        f, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return struct.unpack_from(">i", f)[0], f[4:]

    def call(self, api, version, body):
        corr = self.send(api, version, body)
        f = self.frame()
        check(f is not None, f"api {api} v{version}: the connection was closed")
        check(f[0] == corr, f"correlation id {f[0]}, want {corr}")
        return Reader(f[1])

    def close(self):
        self.s.close()


def once(addr, api, version, body):
    """One request on a connection of its own; the answer's Reader."""
    conn = Conn(addr)
    try:
        return conn.call(api, version, body)
    finally:
        conn.close()


def join_body(group, member="", session=30000, rebalance=30000, meta=b"\x00\x01meta"):
    return (kstr(group) + struct.pack(">ii", session, rebalance) + kstr(member) +
            kstr("consumer") + struct.pack(">i", 1) + kstr("range") + kbytes(meta))


def join_answer(r):
    """A JoinGroup v2-v4 answer: dict."""
    r.fixed("i")
    a = {"error": r.fixed("h"), "generation": r.fixed("i"), "protocol": r.string(),
         "leader": r.string(), "member": r.string()}
    a["members"] = [(r.string(), r.bytes()) for _ in range(r.fixed("i"))]
    r.done()
    return a


def sync_body(group, gen, member, assignments=()):
    return (kstr(group) + struct.pack(">i", gen) + kstr(member) +
            struct.pack(">i", len(assignments)) +
            b"".join(kstr(m) + kbytes(a) for m, a in assignments))


def sync_answer(r):
    r.fixed("i")
    err, assignment = r.fixed("h"), r.bytes()
    r.done()
    return err, assignment


def heartbeat(conn, group, gen, member):
    r = conn.call(12, 1, kstr(group) + struct.pack(">i", gen) + kstr(member))
    r.fixed("i")
    err = r.fixed("h")
    r.done()
    return err


def leave(conn, group, member):
    """LeaveGroup v1 of one member; its error."""
    r = conn.call(13, 1, kstr(group) + kstr(member))
    r.fixed("i")
    err = r.fixed("h")
    r.done()
    return err


def list_groups(conn):
    """The group ids of a ListGroups v1 answer (it must have no error)."""
    r = conn.call(16, 1, b"")
    r.fixed("i")
    err = r.fixed("h")
    ids = [(r.string(), r.string())[0] for _ in range(r.fixed("i"))]
    r.done()
    check(err == NONE, f"ListGroups: error {err}")
    return ids


def test_raw_group_errors():
    """By hand: FindCoordinator on a follower names the leader; a
    heartbeat of an unknown member is UNKNOWN_MEMBER_ID; a real member's
    SyncGroup with a wrong generation is ILLEGAL_GENERATION, with the right
    one it gets its assignment; a JoinGroup to a follower is
    NOT_COORDINATOR; a second member's join starts a rebalance, during
    which the first one's heartbeat is REBALANCE_IN_PROGRESS, and both
    are in generation 2 once it rejoined; a truncated JoinGroup closes the
    connection and the node goes on; ListGroups on a follower is no error."""
    with KafkaCluster(name="kgrp-raw",
                      extra_args=["--set", "kafka_group_initial_delay_ms=0"]) as c:
        leader = start(c)
        follower = [i for i in c.nodes if i != leader][0]
        lead = Conn(c.kafka_addr(leader))
        try:
            r = once(c.kafka_addr(follower), 10, 0, kstr("g"))
            err, node, host, port = r.fixed("h"), r.fixed("i"), r.string(), r.fixed("i")
            check((err, node, f"{host}:{port}") == (0, leader, c.kafka_addr(leader)),
                  f"FindCoordinator on a follower: {err, node, host, port}")
            check(heartbeat(lead, "g", 1, "nobody") == UNKNOWN_MEMBER_ID, "unknown member")
            a = join_answer(lead.call(11, 3, join_body("g")))
            check(a["error"] == NONE and a["generation"] == 1 and a["leader"] == a["member"] and
                  a["protocol"] == "range" and a["members"] == [(a["member"], b"\x00\x01meta")],
                  f"first join: {a}")
            m1 = a["member"]
            check(heartbeat(lead, "g", 1, m1 + "x") == UNKNOWN_MEMBER_ID, "unknown member id")
            err, _ = sync_answer(lead.call(14, 1, sync_body("g", 7, m1, [(m1, b"asg")])))
            check(err == ILLEGAL_GENERATION, f"SyncGroup with generation 7: {err}")
            err, asg = sync_answer(lead.call(14, 1, sync_body("g", 1, m1, [(m1, b"asg")])))
            check((err, asg) == (NONE, b"asg"), f"SyncGroup: {err} {asg!r}")
            check(heartbeat(lead, "g", 1, m1) == NONE, "heartbeat of a stable member")
            check(heartbeat(lead, "g", 5, m1) == ILLEGAL_GENERATION, "heartbeat, generation 5")
            fol = Conn(c.kafka_addr(follower))
            a = join_answer(fol.call(11, 3, join_body("g")))
            check(a["error"] == NOT_COORDINATOR, f"join at a follower: {a}")
            check(heartbeat(fol, "g", 1, m1) == NOT_COORDINATOR, "heartbeat at a follower")
            fol.close()
            # A second member: its join waits for the first to rejoin.
            second = Conn(c.kafka_addr(leader))
            second.send(11, 3, join_body("g"))
            wait_until(lambda: heartbeat(lead, "g", 1, m1) == REBALANCE_IN_PROGRESS, 10,
                       "REBALANCE_IN_PROGRESS for the first member's heartbeat")
            a1 = join_answer(lead.call(11, 3, join_body("g", m1)))
            f = second.frame()
            check(f is not None, "the second member's join was not answered")
            a2 = join_answer(Reader(f[1]))
            check(a1["error"] == NONE and a2["error"] == NONE and
                  a1["generation"] == a2["generation"] == 2, f"rejoin: {a1} {a2}")
            check(a1["leader"] == a2["leader"] == m1, f"leader {a1['leader']}, want {m1}")
            check(sorted(m for m, _ in a1["members"]) == sorted([m1, a2["member"]]) and
                  a2["members"] == [], f"members: {a1['members']} {a2['members']}")
            second.close()
        finally:
            lead.close()
        # A JoinGroup cut short inside its protocol list.
        body = join_body("g2")[:-6]
        bad = Conn(c.kafka_addr(leader))
        bad.s.sendall(request(11, 3, body))
        check(bad.frame() is None, "a truncated JoinGroup was answered")
        bad.close()
        r = once(c.kafka_addr(leader), 3, 1, struct.pack(">i", -1))
        check(r.fixed("i") == 3, "Metadata after the truncated JoinGroup")
        # ListGroups: the leader lists g; a follower answers an empty list.
        for node, want in [(leader, ["g"]), (follower, [])]:
            conn = Conn(c.kafka_addr(node))
            try:
                ids = list_groups(conn)
            finally:
                conn.close()
            check(ids == want, f"ListGroups at node {node}: {ids}")
        with open(c.nodes[leader].log_path, errors="replace") as f:
            check("malformed JoinGroup request" in f.read(), "the truncated frame was not logged")
        c.check_up()


def test_kafka_and_native_members_exclude():
    """One group name is one group (docs/groups.md): while a Kafka member
    is in group X, `tally consume --group X` is refused and says why; while
    a tally consumer is in group Y, a Kafka JoinGroup of Y is answered
    INCONSISTENT_GROUP_PROTOCOL; once the members are gone, either kind
    may use the name."""
    INCONSISTENT_GROUP_PROTOCOL = 23
    with KafkaCluster(name="kgrp-exclude",
                      extra_args=["--set", "kafka_group_initial_delay_ms=0"]) as c:
        leader = start(c)
        c.tally_ok("topic", "create", "t")
        produce(c, "t", ["a", "b"])
        lead = Conn(c.kafka_addr(leader))
        native = None
        try:
            a = join_answer(lead.call(11, 3, join_body("X", session=6000, rebalance=6000)))
            check(a["error"] == NONE, f"Kafka join of X: {a}")
            r = c.tally("consume", "t", "--group", "X")
            check(r.rc == 1 and "is a Kafka consumer group with live members" in r.errtext,
                  f"native consume of a live Kafka group: {r!r}")
            check(leave(lead, "X", a["member"]) == NONE, "Kafka member leaves X")
            r = c.tally("consume", "t", "--group", "X", "--format", "%v\\n")
            check(r.rc == 0 and r.text.split() == ["a", "b"], f"X after the Kafka member: {r!r}")
            native = subprocess.Popen([TALLY, "-b", c.brokers(), "consume", "t", "--group", "Y",
                                       "-f"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            wait_until(lambda: "CONSUMERS: 1" in c.tally("group", "describe", "Y").text, 20,
                       "the tally consumer to be in Y")
            a = join_answer(lead.call(11, 3, join_body("Y")))
            check(a["error"] == INCONSISTENT_GROUP_PROTOCOL, f"Kafka join of native Y: {a}")
            native.send_signal(signal.SIGINT)
            check(native.wait(timeout=20) == 0, "the tally consumer exits 0 on SIGINT")
            a = join_answer(lead.call(11, 3, join_body("Y")))
            check(a["error"] == NONE, f"Kafka join of Y once the consumer left: {a}")
        finally:
            if native is not None and native.poll() is None:
                native.kill()
                native.wait()
            lead.close()


def test_pending_member_flood():
    """300 JoinGroup v4 without a member id on one connection with
    kafka_group_max_members=50: 50 MEMBER_ID_REQUIRED with distinct ids,
    then GROUP_MAX_SIZE_REACHED; the pending ids expire after their
    session timeout, so a join is taken again; once all of them expired
    the group is gone, and a join completes with its id. The leader's RSS
    is printed after each of three floods."""
    with KafkaCluster(name="kgrp-flood",
                      extra_args=["--set", "kafka_group_max_members=50",
                                  "--set", "kafka_group_min_session_ms=1000",
                                  "--set", "kafka_group_initial_delay_ms=0"]) as c:
        leader = start(c)
        rss = [rss_kib(c, leader)]
        counts = []
        conn = Conn(c.kafka_addr(leader), timeout=30)
        try:
            for flood in range(3):
                if flood > 0:
                    wait_until(lambda: join_answer(conn.call(11, 4, join_body(
                        "flood", session=1000)))["error"] == MEMBER_ID_REQUIRED, 30,
                        "a pending id to expire", interval=0.5)
                corrs = [conn.send(11, 4, join_body("flood", session=1000)) for _ in range(300)]
                answers = []
                for corr in corrs:
                    f = conn.frame()
                    check(f is not None and f[0] == corr, f"answer to join {corr}: {f}")
                    answers.append(join_answer(Reader(f[1])))
                errors = [a["error"] for a in answers]
                ok = [a for a in answers if a["error"] == MEMBER_ID_REQUIRED]
                check(set(errors) <= {MEMBER_ID_REQUIRED, GROUP_MAX_SIZE_REACHED},
                      f"flood {flood}: errors {sorted(set(errors))}")
                # (ids that expire while a flood is answered free places in it)
                check(ok and GROUP_MAX_SIZE_REACHED in errors,
                      f"flood {flood}: {len(ok)} ids, {errors.count(81)} refusals")
                if flood == 0:
                    check(errors[:51] == [MEMBER_ID_REQUIRED] * 50 + [GROUP_MAX_SIZE_REACHED],
                          f"first flood: {errors[:60]}")
                counts.append(len(ok))
                check(len({a["member"] for a in ok}) == len(ok) and all(a["member"] for a in ok),
                      "member ids repeat or are empty")
                rss.append(rss_kib(c, leader))
            # Once every pending id expired the group is gone (ListGroups).
            wait_until(lambda: "flood" not in list_groups(conn), 30,
                       "every pending id to expire", interval=0.5)
            a = join_answer(conn.call(11, 4, join_body("flood", session=1000)))
            check(a["error"] == MEMBER_ID_REQUIRED and a["member"], f"join: {a}")
            b = join_answer(conn.call(11, 4, join_body("flood", a["member"], session=1000)))
            check(b["error"] == NONE and b["member"] == a["member"] and b["generation"] == 1 and
                  b["leader"] == a["member"], f"join with the given id: {b}")
        finally:
            conn.close()
        print(f"# ids given in each flood {counts}; leader RSS KiB: before {rss[0]}, "
              f"after each flood {rss[1:]}", flush=True)
        c.check_up()


if __name__ == "__main__":
    if Consumer is None:
        print("SKIP: python3-confluent-kafka is not installed (deploy/setup.sh installs it)")
        sys.exit(SKIP)
    if not os.path.exists(KCAT):
        print(f"SKIP: {KCAT} is not installed (deploy/setup.sh installs kcat)")
        sys.exit(SKIP)
    tests = [test_kcat_group_resumes, test_three_members_one_killed,
             test_leader_killed_members_rejoin, test_kafkajs_group, test_native_interop,
             test_admin_configs_and_groups, test_raw_group_errors,
             test_kafka_and_native_members_exclude, test_pending_member_flood]
    if NODE is None or not os.path.isdir(os.path.join(KAFKA_DIR, "node_modules", "kafkajs")):
        print("SKIP test_kafkajs_group: node or kafkajs is missing (deploy/setup.sh installs them)",
              flush=True)
        tests.remove(test_kafkajs_group)
    run_tests(tests)
