#!/usr/bin/env python3
"""Many topics (issue 24), scaled down: 1,000 topics created through the
CLI (four creators at once) while a producer writes one record per
request; 40 of them hold several small segments, read back through node 1
so that their sealed segments are opened.

Fails on: a failed create, an election while the topics are created (a
catalog change used to fsync every topic's log and rewrite the catalog on
the event loop: from about 300 topics on, the loop missed heartbeats), a
node holding more files open than one per topic + segment_fd_cache + a
margin (every segment used to keep its file open), and a topic or record
missing on any node after every node is SIGKILLed and started again.
Figures (rate, elections, files, restart time) are printed, not asserted
on time: bench/many_topics.py is the measurement."""
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check  # noqa: E402

TOPICS = 1000
CREATORS = 4
SEGMENTED = 40          # topics written with several segments
RECORDS = 200           # per segmented topic
FD_CACHE = 32
FD_MARGIN = 100         # listeners, Raft, client connections, logs, ...


def listed(c, node_id):
    r = c.tally("topic", "list", brokers=c.nodes[node_id].client, timeout=60)
    if r.rc != 0:
        return set()
    return set(ln.split()[0] for ln in r.text.splitlines() if ln.strip())


def count_records(c, topic, node_id):
    """Records of @topic that node @node_id serves (-1 if the read failed)."""
    r = c.tally("consume", topic, "--from", "beginning", "--format", "%o\\n", "--node",
                c.nodes[node_id].client, timeout=60)
    return len(r.out.splitlines()) if r.rc == 0 else -1


def test_many_topics():
    extra = ["--set", f"segment_fd_cache={FD_CACHE}"]
    with harness.Cluster(3, name="many-topics", extra_args=extra) as c:
        c.start()
        c.tally_ok("topic", "create", "load")
        base = c.candidacies()
        stop = threading.Event()
        produced = {"ok": 0, "failed": 0}

        def produce():
            while not stop.is_set():
                r = c.tally("produce", "load", "x", timeout=60)
                produced["ok" if r.rc == 0 else "failed"] += 1

        failures = []

        def create(k):
            for i in range(k, TOPICS, CREATORS):
                args = ["topic", "create", f"t{i:04d}"]
                if i < SEGMENTED:
                    args += ["--segment-bytes", "4096"]
                r = c.tally(*args, timeout=120)
                if r.rc != 0:
                    failures.append(f"t{i:04d}: {r.errtext.strip()}")

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        t0 = time.monotonic()
        creators = [threading.Thread(target=create, args=(k,)) for k in range(CREATORS)]
        for t in creators:
            t.start()
        for t in creators:
            t.join(timeout=1200)
        secs = time.monotonic() - t0
        stop.set()
        producer.join(timeout=120)
        elections = c.candidacies() - base
        print(f"# {TOPICS} topics created in {secs:.1f}s ({TOPICS / secs:.1f}/s with "
              f"{CREATORS} creators), {len(failures)} failed, {elections} candidacies; "
              f"producer: {produced['ok']} acknowledged, {produced['failed']} failed",
              flush=True)
        check(not any(t.is_alive() for t in creators), "the creators did not finish")
        check(not failures, f"creates failed: {failures[:3]}")
        check(elections == 0, f"{elections} candidacies while creating topics")

        for i in range(SEGMENTED):
            c.tally_ok("bench", "produce", f"t{i:04d}", "--count", RECORDS, "--size", 100,
                       "--batch", 5, timeout=120)
        for i in range(SEGMENTED):
            n = count_records(c, f"t{i:04d}", 1)
            check(n == RECORDS, f"t{i:04d}: node 1 serves {n} records, not {RECORDS}")
        segs = sum(1 for i in range(SEGMENTED)
                   for f in os.listdir(os.path.join(c.nodes[1].data, "topics", f"t{i:04d}"))
                   if f.endswith(".seg"))
        bound = TOPICS + 1 + FD_CACHE + FD_MARGIN
        files = {i: n.open_fds() for i, n in c.nodes.items()}
        print(f"# open files {files}, bound {bound} (segments of the {SEGMENTED} small-segment "
              f"topics on node 1: {segs})", flush=True)
        check(segs > 2 * SEGMENTED, f"only {segs} segments: the test needs several per topic")
        for i, n in files.items():
            check(n <= bound, f"node {i} holds {n} files open, more than {bound}")

        for i in c.nodes:
            c.kill(i)
        t1 = time.monotonic()
        c.start(wait=False)
        want = {f"t{i:04d}" for i in range(TOPICS)} | {"load"}
        for i in c.nodes:
            harness.wait_until(lambda: want <= listed(c, i), 300,
                               f"node {i} lists every topic after the restart", interval=0.5)
        print(f"# every node lists every topic {time.monotonic() - t1:.1f}s after the restart",
              flush=True)
        for node_id in c.nodes:
            for i in (0, SEGMENTED - 1):
                topic = f"t{i:04d}"
                harness.wait_until(lambda: count_records(c, topic, node_id) == RECORDS, 60,
                                   f"node {node_id} serves the {RECORDS} records of {topic}")


def topic_page(addr, after="", after_id=0, limit=2, paged=True, names=None):
    """One TOPIC_LIST (docs/protocol.md) on a raw connection to @addr: a
    page (paged), the topics @names, or every topic: (names, last_id,
    more), or (None, code, message) for an error answer."""
    import socket
    import struct
    from fake_server import HEADER, Reader, frame, s_
    if names is not None:
        paged = False
        body = struct.pack("<BI", 2, len(names)) + b"".join(s_(n) for n in names)
    else:
        body = struct.pack("<B", 1 if paged else 0)
    if paged:
        body += s_(after) + struct.pack("<QI", after_id, limit)
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(frame(5, 0, 7, body))
        data = b""
        while len(data) < 16 or len(data) < 4 + HEADER.unpack(data[:16])[0]:
            chunk = sock.recv(65536)
            check(chunk, "the connection closed before the answer")
            data += chunk
    flen, _, _, flags, _, _, _ = HEADER.unpack(data[:16])
    r = Reader(data[16:4 + flen])
    if flags & 2:
        return None, r.u16(), r.str()
    names = []
    for _ in range(r.u32()):
        names.append(r.str())
        r.take(1 + 5 * 8)
    if not paged:
        r.end()
        return names, 0, 0
    last_id, more = r.u64(), r.u8()
    r.end()
    return names, last_id, more


def test_topic_list_pages():
    """TOPIC_LIST a page at a time: each topic once, in creation order; a
    page whose cursor topic was deleted meanwhile goes on after it; a limit
    of 0 is refused; the unpaged request (older clients) lists them all;
    the named request answers the topics asked that exist."""
    with harness.Cluster(name="topic-pages") as c:
        c.start()
        for t in "abcde":
            c.tally_ok("topic", "create", t)
        leader_id = c.leader()
        leader = c.nodes[leader_id].client
        names, last, more = topic_page(leader)
        check(names == ["a", "b"] and more == 1 and last > 0, f"page 1: {names} {last} {more}")
        c.tally_ok("topic", "delete", "b")
        names, last, more = topic_page(leader, "b", last)
        check(names == ["c", "d"] and more == 1, f"page 2 after a deleted cursor: {names}")
        names, last, more = topic_page(leader, "d", last)
        check(names == ["e"] and more == 0, f"page 3: {names} {more}")
        got = topic_page(leader, limit=0)
        check(got[0] is None and "limit" in got[2], f"limit 0: {got}")
        names, _, _ = topic_page(leader, paged=False)
        check(names == ["a", "c", "d", "e"], f"unpaged: {names}")
        # By name (the Kafka front door's lookups): those that exist, in
        # the order asked; none asked, none answered.
        names, _, _ = topic_page(leader, names=["e", "b", "nope", "a"])
        check(names == ["e", "a"], f"by name: {names}")
        names, _, _ = topic_page(leader, names=[])
        check(names == [], f"no names: {names}")
        r = c.tally_ok("topic", "list", ids=[leader_id])
        check([ln.split()[0] for ln in r.text.splitlines()[1:]] == ["a", "c", "d", "e"],
              f"tally topic list: {r.text!r}")


def test_open_file_limit():
    """Runs last: it lowers this process's open file limit for good, and
    the nodes inherit it. With 400 files, 16 connections and a cache of 16,
    a node holds 400 - 16 - 16 - 256 = 112 topics: the leader refuses the
    create past that with a clear error, and every node stays up (before,
    a create past the limit failed its apply with EMFILE, which stops the
    node, on every node at the same entry)."""
    limit = 400
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    extra = ["--set", "segment_fd_cache=16", "--set", "max_connections=16"]
    with harness.Cluster(3, name="fd-limit", extra_args=extra) as c:
        c.start()
        refused = None
        for i in range(150):
            r = c.tally("topic", "create", f"f{i:03d}", timeout=120)
            if r.rc != 0:
                refused = (i, r.errtext.strip())
                break
        print(f"# first refused create: {refused}", flush=True)
        check(refused is not None, "150 creates under a limit of 400 open files all passed")
        check("open file limit" in refused[1], f"unclear refusal: {refused[1]}")
        check(refused[0] >= 100, f"refused too early, at topic {refused[0]}")
        c.check_up()
        c.tally_ok("produce", "f000", "still-up")
        with open(c.nodes[1].log_path, errors="replace") as f:
            check("open file limit" in f.read(), "no start-up line about the open file limit")


if __name__ == "__main__":
    harness.run_tests([test_topic_list_pages, test_many_topics, test_open_file_limit],
                      per_test_timeout=1500)
