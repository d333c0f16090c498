# test_kafka_kcat.py - Debian's kcat (librdkafka) against tallyd's Kafka
# listener: metadata (-L), produce (-P) with keys and headers, consume (-C)
# from the beginning, the end, a negative and an exact offset and a time,
# the long-poll, acks=0 and acks=1, records written natively read through
# Kafka and the other way round, and bad input (malformed frames, unknown
# APIs and versions, wrong CRC, lying lengths) that must never crash a node
# nor write anything.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_kafka_kcat.py [NAME...]

import json
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, TALLY, check, run_tests, wait_until  # noqa: E402
from kafka_cluster import KCAT, KafkaCluster, kcat  # noqa: E402


def metadata(c, topic=None, ids=None):
    args = ["-b", c.bootstrap(ids), "-L", "-J", "-m", "10"]
    if topic:
        args += ["-t", topic]
    rc, out, err = kcat(*args, timeout=30)
    check(rc == 0, f"kcat -L failed: {err!r}")
    return json.loads(out)


def wait_topic(c, topic):
    """Every node's metadata names @topic (a follower applies the creation
    a moment after the leader)."""
    def pred():
        for i in c.nodes:
            md = metadata(c, topic, ids=[i])
            t = [t for t in md["topics"] if t["topic"] == topic]
            if not t or t[0].get("error") or not t[0]["partitions"]:
                return False
        return True
    wait_until(pred, 20, f"topic {topic} in every node's Kafka metadata")


def consume(c, topic, *extra, fmt="%o|%k|%s|%h\\n", ids=None, timeout=30):
    rc, out, err = kcat("-b", c.bootstrap(ids), "-C", "-t", topic, "-e", "-q", "-f", fmt,
                        *extra, timeout=timeout)
    check(rc == 0, f"kcat -C failed: {err!r}")
    return out.decode().splitlines()


def test_metadata_names_the_raft_leader():
    """kcat -L: three brokers at their Kafka addresses; the topic's one
    partition is led by the Raft leader, with every voter as replica and ISR;
    an unknown topic is reported as unknown."""
    with KafkaCluster(name="kafka-md") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "orders")
        wait_topic(c, "orders")
        for i in c.nodes:
            md = metadata(c, ids=[i])
            brokers = {b["id"]: b["name"] for b in md["brokers"]}
            check(brokers == {j: c.kafka_addr(j) for j in c.nodes}, f"brokers: {brokers}")
            t = [t for t in md["topics"] if t["topic"] == "orders"][0]
            check(len(t["partitions"]) == 1, f"partitions: {t}")
            p = t["partitions"][0]
            check(p["partition"] == 0 and p["leader"] == leader, f"partition: {p}")
            check(sorted(r["id"] for r in p["replicas"]) == [1, 2, 3], f"replicas: {p}")
            check(sorted(r["id"] for r in p["isrs"]) == [1, 2, 3], f"isrs: {p}")
        md = metadata(c, "nosuch")
        t = [t for t in md["topics"] if t["topic"] == "nosuch"][0]
        check(t.get("error"), f"unknown topic without an error: {t}")
        c.check_up()


def test_produce_consume_keys_headers_offsets():
    """kcat -P with keys (-K) and headers (-H) through a follower's address
    only (the client finds the leader); kcat -C from beginning, end, -N,
    an exact offset; the native CLI reads the same keys and values, and
    `tally log dump` shows the headers."""
    with KafkaCluster(name="kafka-pc") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "t")
        wait_topic(c, "t")
        follower = [i for i in c.nodes if i != leader][0]
        lines = b"".join(b"k%d:v%d\n" % (i, i) for i in range(5))
        rc, out, err = kcat("-b", c.bootstrap([follower]), "-P", "-t", "t", "-K:", "-H", "h1=one",
                            "-H", "h2=", input=lines)
        check(rc == 0, f"kcat -P failed: {err!r}")
        want = [f"{i}|k{i}|v{i}|h1=one,h2=" for i in range(5)]
        check(consume(c, "t", "-o", "beginning") == want, "beginning")
        check(consume(c, "t", "-o", "end") == [], "end")
        check(consume(c, "t", "-o", "-2") == want[3:], "-2")
        check(consume(c, "t", "-o", "3") == want[3:], "exact offset 3")
        check(consume(c, "t", "-o", "beginning", "-c", "2") == want[:2], "-c 2")
        # Kafka consumers fetch from the partition leader, but every node
        # answers a Fetch sent to it, with committed records only.
        for i in c.nodes:
            wait_until(lambda: raw_fetch(c.kafka_addr(i), b"t", 0)[:2] == (0, 5), 20,
                       f"node {i} to serve the records to a Fetch")
        # min_bytes above what there is: the fetch waits up to max_wait_ms,
        # then answers with what there is.
        check(raw_fetch(c.kafka_addr(leader), b"t", 0, min_bytes=1 << 20, max_wait=300)[:2] ==
              (0, 5), "a fetch with min_bytes larger than the topic")
        check(raw_fetch(c.kafka_addr(leader), b"t", 9)[0] == 1,
              "a fetch past the end did not get OFFSET_OUT_OF_RANGE")
        r = c.tally_ok("consume", "t", "--format", "%o %k %v\\n")
        check(r.out.decode().splitlines() == [f"{i} k{i} v{i}" for i in range(5)], r.out)
        # Native writes read through Kafka.
        c.tally_ok("produce", "t", "-k", "nk", "native")
        check(consume(c, "t", "-o", "5") == ["5|nk|native|"], "native record via Kafka")
        c.stop(follower)
        r = c.tally("log", "dump", c.nodes[follower].data, "--topic", "t")
        check(r.rc == 0 and b'headers: "h1"="one" "h2"=""\n' in r.out, f"log dump: {r.out!r}")


def test_long_poll_and_time_offsets():
    """A consumer waiting at the end gets a record produced later (the
    native parked fetch serves Kafka's max_wait); -o s@TIME starts at the
    first record written at or after TIME (ListOffsets by timestamp)."""
    with KafkaCluster(name="kafka-lp") as c:
        c.start()
        c.tally_ok("topic", "create", "lp")
        wait_topic(c, "lp")
        check(kcat("-b", c.bootstrap(), "-P", "-t", "lp", input=b"early\n")[0] == 0, "produce")
        time.sleep(0.05)
        mid = int(time.time() * 1000)
        time.sleep(0.05)
        waiter = subprocess.Popen([KCAT, "-b", c.bootstrap(), "-C", "-t", "lp", "-o", "end",
                                   "-c", "1", "-q", "-f", "%o %s\\n", "-X",
                                   "fetch.wait.max.ms=5000"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)  # let it reach the end and park
            check(waiter.poll() is None, "consumer at the end returned before any record")
            check(kcat("-b", c.bootstrap(), "-P", "-t", "lp", input=b"late\n")[0] == 0, "produce")
            out, err = waiter.communicate(timeout=30)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait()
        check(out.decode().splitlines() == ["1 late"], f"waiting consumer got {out!r} {err!r}")
        check(consume(c, "lp", "-o", f"s@{mid}", fmt="%o %s\\n") == ["1 late"], "s@mid")
        check(consume(c, "lp", "-o", "s@0", fmt="%o %s\\n") == ["0 early", "1 late"], "s@0")
        # A clean shutdown with a Kafka consumer parked in a long-poll on
        # every node: each exits 0 (sanitizer builds: no leak, no error).
        parked = subprocess.Popen([KCAT, "-b", c.bootstrap(), "-C", "-t", "lp", "-o", "end",
                                   "-q", "-X", "fetch.wait.max.ms=10000"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            c.check_up()
            for i in c.nodes:
                c.stop(i)
        finally:
            parked.kill()
            parked.wait()


def test_acks_zero_and_one():
    """acks=1 is answered after the commit like acks=-1; acks=0 gets no
    answer (Kafka's rule) and is still written through the native path."""
    with KafkaCluster(name="kafka-acks") as c:
        c.start()
        c.tally_ok("topic", "create", "a")
        wait_topic(c, "a")
        rc, _, err = kcat("-b", c.bootstrap(), "-P", "-t", "a", "-X", "acks=1", input=b"one\n")
        check(rc == 0, f"acks=1: {err!r}")
        rc, _, err = kcat("-b", c.bootstrap(), "-P", "-t", "a", "-X", "acks=0", input=b"zero\n")
        check(rc == 0, f"acks=0: {err!r}")
        wait_until(lambda: consume(c, "a", "-o", "beginning", fmt="%s\\n") == ["one", "zero"],
                   20, "both records")
        c.check_up()


def test_compression_codecs():
    """Batches compressed with gzip, snappy, lz4 and zstd by librdkafka are
    stored and read back record for record (and read natively too)."""
    with KafkaCluster(name="kafka-z") as c:
        c.start()
        c.tally_ok("topic", "create", "z")
        wait_topic(c, "z")
        want = []
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
            lines = [f"{codec}-{i}-" + "abc" * i for i in range(50)]
            rc, _, err = kcat("-b", c.bootstrap(), "-P", "-t", "z", "-z", codec,
                              input="".join(x + "\n" for x in lines).encode())
            check(rc == 0, f"{codec}: {err!r}")
            want += lines
        check(consume(c, "z", "-o", "beginning", fmt="%s\n") == want, "records differ")
        r = c.tally_ok("consume", "z", "--format", "%v\n")
        check(r.out.decode().splitlines() == want, "native read differs")


# -- bad input, on a raw socket --------------------------------------------------

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def varint(v):
    v = (v << 1) ^ (v >> 63)
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def record_batch(values, bad_crc=False, length_delta=0):
    recs = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        recs += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 0, 0, -1, -1, -1, len(values)) + recs
    crc = crc32c(after_crc) ^ (1 if bad_crc else 0)
    rest = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(rest) + length_delta) + rest


def kstr(s):
    return struct.pack(">h", len(s)) + s


def request(api, version, body, corr=7):
    head = struct.pack(">hhi", api, version, corr) + kstr(b"test")
    return struct.pack(">i", len(head) + len(body)) + head + body


def produce_body(topic, records, acks=-1):
    return (struct.pack(">h", -1) + struct.pack(">hi", acks, 5000) + struct.pack(">i", 1) +
            kstr(topic) + struct.pack(">i", 1) + struct.pack(">i", 0) +
            struct.pack(">i", len(records)) + records)


def roundtrip(addr, data, timeout=10):
    """Send @data; return the answer frame's body after the correlation id,
    or None if the node closed the connection without answering."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        n = struct.unpack(">i", head)[0]
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return body[4:]


def raw_fetch(addr, topic, offset, min_bytes=1, max_wait=100):
    """Send a Fetch v4 for partition 0 of @topic at @offset; return (error
    code, high watermark, record count)."""
    body = (struct.pack(">iiiib", -1, max_wait, min_bytes, 1 << 20, 0) + struct.pack(">i", 1) +
            kstr(topic) + struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, 1 << 20))
    ans = roundtrip(addr, request(1, 4, body))
    check(ans is not None, "Fetch v4 closed the connection")
    pos = 4 + 4  # throttle_time_ms, topics array length
    n = struct.unpack_from(">h", ans, pos)[0]
    pos += 2 + n + 4  # topic name, partitions array length
    _, err, hwm, _, naborted = struct.unpack_from(">ihqqi", ans, pos)
    pos += 4 + 2 + 8 + 8 + 4 + max(naborted, 0) * 16
    rlen = struct.unpack_from(">i", ans, pos)[0]
    pos += 4
    records, end = 0, pos + max(rlen, 0)
    while pos + 61 <= end:
        blen = struct.unpack_from(">i", ans, pos + 8)[0]
        records += struct.unpack_from(">i", ans, pos + 57)[0]
        pos += 12 + blen
    return err, hwm, records


def produce_error(answer):
    """The partition error code of a one-partition Produce v3 answer."""
    pos = 4  # topics array length
    n = struct.unpack_from(">h", answer, pos)[0]
    pos += 2 + n + 4 + 4  # topic name, partitions length, partition index
    return struct.unpack_from(">h", answer, pos)[0]


def test_bad_input_never_writes():
    """Malformed frames, unknown APIs and versions close the connection;
    ApiVersions of an unknown version gets UNSUPPORTED_VERSION; a batch with
    a wrong CRC or a lying length gets CORRUPT_MESSAGE. The node keeps
    running, logs the rejections, and the topic stays empty; a good batch
    on the same path is then written."""
    with KafkaCluster(name="kafka-bad") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "b")
        wait_topic(c, "b")
        addr = c.kafka_addr(leader)
        check(roundtrip(addr, struct.pack(">i", 3) + b"abc") is None, "tiny frame answered")
        check(roundtrip(addr, struct.pack(">i", 0x7FFFFFFF)) is None, "huge frame answered")
        check(roundtrip(addr, request(999, 0, b"")) is None, "unknown API answered")
        check(roundtrip(addr, request(3, 99, b"")) is None, "unknown Metadata version answered")
        check(roundtrip(addr, request(0, 3, b"\x00")) is None, "truncated Produce answered")
        av = roundtrip(addr, request(18, 42, b""))
        check(av is not None and struct.unpack_from(">h", av, 0)[0] == 35,
              f"ApiVersions v42: {av!r}")
        for name, batch in [("bad crc", record_batch([b"x"], bad_crc=True)),
                            ("long length", record_batch([b"x"], length_delta=5)),
                            ("short length", record_batch([b"x"], length_delta=-5)),
                            ("truncated", record_batch([b"xyz"])[:-2])]:
            ans = roundtrip(addr, request(0, 3, produce_body(b"b", batch)))
            check(ans is not None and produce_error(ans) == 2, f"{name}: {ans!r}")
        check(c.leader() == leader, "the leader changed")
        c.check_up()
        check(consume(c, "b", "-o", "beginning") == [], "a rejected batch was written")
        ans = roundtrip(addr, request(0, 3, produce_body(b"b", record_batch([b"good"]))))
        check(ans is not None and produce_error(ans) == 0, f"good batch: {ans!r}")
        check(consume(c, "b", "-o", "beginning", fmt="%o %s\\n") == ["0 good"], "good batch")
        with open(c.nodes[leader].log_path, errors="replace") as f:
            log = f.read()
        check("CRC-32C mismatch" in log and "unknown API or version" in log, "rejections logged")
        c.check_up()


class Reader:
    """Reads Kafka's primitive types from an answer; @flex selects the
    compact forms of flexible versions."""

    def __init__(self, data, flex=False):
        self.d, self.p, self.flex = data, 0, flex

    def fixed(self, fmt):
        v = struct.unpack_from(">" + fmt, self.d, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def uvarint(self):
        v = shift = 0
        while True:
            b = self.d[self.p]
            self.p += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    def string(self):
        n = self.uvarint() - 1 if self.flex else self.fixed("h")
        if n < 0:
            return None
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def array(self):
        return self.uvarint() - 1 if self.flex else self.fixed("i")

    def tags(self):
        if self.flex:
            check(self.uvarint() == 0, "tagged fields in an answer")

    def done(self):
        check(self.p == len(self.d), f"{len(self.d) - self.p} bytes left over in the answer")


def flex_request(api, version, body, corr=9):
    """A request with header v2 (flexible versions): client id stays a
    classic string, then an empty tagged-field section."""
    head = struct.pack(">hhi", api, version, corr) + kstr(b"test") + b"\x00"
    return struct.pack(">i", len(head) + len(body)) + head + body


def cstr(s):
    return bytes([len(s) + 1]) + s


def test_versions_clients_do_not_send():
    """Versions the installed clients never pick, by hand: Metadata v9
    (flexible), Produce v8 to a follower (NOT_LEADER_OR_FOLLOWER with a
    message), acks=2 and partition 1 refused, ListOffsets v5,
    InitProducerId v1 with and without a transactional id."""
    with KafkaCluster(name="kafka-ver") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "v")
        wait_topic(c, "v")
        follower = [i for i in c.nodes if i != leader][0]
        # Metadata v9: compact arrays and strings, tagged fields everywhere.
        body = b"\x02" + cstr(b"v") + b"\x00" + b"\x00\x00\x00" + b"\x00"
        ans = roundtrip(c.kafka_addr(follower), flex_request(3, 9, body))
        check(ans is not None, "Metadata v9 closed the connection")
        r = Reader(ans, flex=True)
        r.tags()  # response header v1
        r.fixed("i")
        brokers = {}
        for _ in range(r.array()):
            node = r.fixed("i")
            host = r.string()
            port = r.fixed("i")
            check(r.string() is None, "rack")
            r.tags()
            brokers[node] = f"{host.decode()}:{port}"
        check(brokers == {i: c.kafka_addr(i) for i in c.nodes}, f"brokers {brokers}")
        cid = r.string()
        check(cid is not None and len(cid) == 16 and
              f"cluster id {cid.decode()}" in open(c.nodes[1].log_path, errors="replace").read(),
              f"cluster id {cid!r}: not the one the nodes logged")
        check(r.fixed("i") == leader, "controller")
        check(r.array() == 1, "one topic")
        check(r.fixed("h") == 0 and r.string() == b"v" and r.fixed("b") == 0, "topic")
        check(r.array() == 1, "one partition")
        err, index, lead, epoch = r.fixed("h"), r.fixed("i"), r.fixed("i"), r.fixed("i")
        check((err, index, lead, epoch) == (0, 0, leader, -1), f"partition {err, index, lead}")
        for _ in range(2):
            check(sorted(r.fixed("i") for _ in range(r.array())) == [1, 2, 3], "replicas/isr")
        check(r.array() == 0, "offline replicas")
        r.tags()
        r.fixed("i")  # topic_authorized_operations
        r.tags()
        r.fixed("i")  # cluster_authorized_operations
        r.tags()
        r.done()
        # Produce v8 to a follower.
        ans = roundtrip(c.kafka_addr(follower), request(0, 8, produce_body(b"v", record_batch([b"x"]))))
        r = Reader(ans)
        check(r.array() == 1 and r.string() == b"v" and r.array() == 1, "produce answer")
        check(r.fixed("i") == 0 and r.fixed("h") == 6, "a follower did not say NOT_LEADER")
        r.fixed("q"), r.fixed("q"), r.fixed("q")  # base offset, append time, log start
        check(r.array() == 0, "record errors")
        msg = r.string()
        check(msg is not None and b"not the leader" in msg, f"error message {msg!r}")
        r.fixed("i")
        r.done()
        # acks=2 and partition 1.
        ans = roundtrip(c.kafka_addr(leader), request(0, 3, produce_body(b"v", record_batch([b"x"]), acks=2)))
        check(produce_error(ans) == 21, "acks=2")
        body = produce_body(b"v", record_batch([b"x"]))
        at = body.index(b"\x00\x00\x00\x00", 2 + 2 + 4 + 4 + 3 + 4)  # partition index 0
        ans = roundtrip(c.kafka_addr(leader), request(0, 3, body[:at] + b"\x00\x00\x00\x01" + body[at + 4:]))
        check(produce_error(ans) == 3, "partition 1")
        ans = roundtrip(c.kafka_addr(leader), request(0, 3, produce_body(b"v", record_batch([b"a", b"b"]))))
        check(produce_error(ans) == 0, "good produce")
        # ListOffsets v5: earliest and latest.
        for ts, want in [(-2, 0), (-1, 2)]:
            body = struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + kstr(b"v") + \
                struct.pack(">i", 1) + struct.pack(">iiq", 0, -1, ts)
            r = Reader(roundtrip(c.kafka_addr(leader), request(2, 5, body)))
            r.fixed("i")
            check(r.array() == 1 and r.string() == b"v" and r.array() == 1, "list answer")
            got = (r.fixed("i"), r.fixed("h"), r.fixed("q"), r.fixed("q"), r.fixed("i"))
            check(got[1] == 0 and got[3] == want, f"ListOffsets {ts}: {got}")
            r.done()
        # InitProducerId v1.
        r = Reader(roundtrip(c.kafka_addr(follower), request(22, 1, struct.pack(">hi", -1, 1000))))
        r.fixed("i")
        err, pid, epoch = r.fixed("h"), r.fixed("q"), r.fixed("h")
        check(err == 0 and 0 < pid < 2 ** 47 and epoch == 0, f"InitProducerId {err, pid, epoch}")
        r = Reader(roundtrip(c.kafka_addr(leader), request(22, 1, kstr(b"txn") + struct.pack(">i", 1000))))
        r.fixed("i")
        check(r.fixed("h") == 53, "a transactional id was accepted")
        # CreateTopics v0 off the leader: NOT_CONTROLLER; DeleteTopics v1 of
        # a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION.
        body = struct.pack(">i", 1) + kstr(b"nt") + struct.pack(">ihii", 1, -1, 0, 0) + \
            struct.pack(">i", 5000)
        r = Reader(roundtrip(c.kafka_addr(follower), request(19, 0, body)))
        check(r.array() == 1 and r.string() == b"nt" and r.fixed("h") == 41, "not controller")
        r.done()
        body = struct.pack(">i", 1) + kstr(b"nosuch") + struct.pack(">i", 5000)
        r = Reader(roundtrip(c.kafka_addr(leader), request(20, 1, body)))
        r.fixed("i")
        check(r.array() == 1 and r.string() == b"nosuch" and r.fixed("h") == 3, "delete nosuch")
        r.done()
        c.check_up()


def read_frames(sock, n, timeout=30):
    """Read @n answer frames; return their correlation ids."""
    sock.settimeout(timeout)
    data, ids = b"", []
    while len(ids) < n:
        chunk = sock.recv(1 << 16)
        check(chunk, f"connection closed after {len(ids)} answers")
        data += chunk
        while len(data) >= 4 and len(data) >= 4 + struct.unpack_from(">i", data)[0]:
            size = struct.unpack_from(">i", data)[0]
            ids.append(struct.unpack_from(">i", data, 4)[0])
            data = data[4 + size:]
    return ids


def test_pipelined_requests():
    """300 requests sent in one go are all answered, in order (more than
    the 64 a connection takes at once); 300 acks=0 produces followed by one
    acks=-1 produce get exactly one answer, and all 301 batches are written."""
    with KafkaCluster(name="kafka-pipe") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "p")
        wait_topic(c, "p")
        host, port = c.kafka_addr(leader).split(":")
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(b"".join(request(18, 0, b"", corr=i) for i in range(300)))
            check(read_frames(s, 300) == list(range(300)), "answers out of order")
            batch = record_batch([b"z"])
            s.sendall(b"".join(request(0, 3, produce_body(b"p", batch, acks=0), corr=1000 + i)
                               for i in range(300)) +
                      request(0, 3, produce_body(b"p", batch), corr=5000))
            check(read_frames(s, 1) == [5000], "an acks=0 produce was answered")
        wait_until(lambda: len(consume(c, "p", "-o", "beginning", fmt="%o\\n")) == 301, 20,
                   "301 records")
        c.check_up()


def test_connection_limit():
    """Kafka connections beyond max_connections are closed at once and
    logged; the open ones keep working."""
    with KafkaCluster(name="kafka-conns", extra_args=["--set", "max_connections=3"]) as c:
        leader = c.start()
        host, port = c.kafka_addr(leader).split(":")
        socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        try:
            extra = socket.create_connection((host, int(port)), timeout=10)
            check(extra.recv(1) == b"", "a fourth connection was kept")
            extra.close()
            s = socks[0]
            s.sendall(request(18, 0, b""))
            check(len(s.recv(4)) == 4, "an open connection stopped answering")
        finally:
            for s in socks:
                s.close()
        with open(c.nodes[leader].log_path, errors="replace") as f:
            check("max_connections (3) Kafka connections open" in f.read(), "refusal not logged")
        c.check_up()


if __name__ == "__main__":
    if not os.path.exists(KCAT):
        print(f"SKIP: {KCAT} is not installed (deploy/setup.sh installs kcat)")
        sys.exit(SKIP)
    run_tests([test_metadata_names_the_raft_leader, test_produce_consume_keys_headers_offsets,
               test_long_poll_and_time_offsets, test_acks_zero_and_one, test_compression_codecs,
               test_bad_input_never_writes, test_versions_clients_do_not_send,
               test_connection_limit, test_pipelined_requests])
