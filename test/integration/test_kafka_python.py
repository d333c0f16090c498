# test_kafka_python.py - Debian's python3-confluent-kafka (librdkafka 2.0)
# against tallyd's Kafka listener: AdminClient creates and deletes topics
# (with configs, refusals for partitions > 1 and unknown configs), a
# Producer writes with every codec it supports (none, gzip, snappy, lz4,
# zstd) with keys, headers and idempotence, a Consumer reads everything back
# with assign() and offsets_for_times(); topic auto-creation is off unless
# kafka_auto_create_topics is set; header values that are null stay null.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_kafka_python.py

import ctypes
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, check, run_tests, wait_until  # noqa: E402
from kafka_cluster import KafkaCluster  # noqa: E402

try:
    import confluent_kafka
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
except ImportError:
    Consumer = None

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def start(c):
    """Start the cluster and wait until its leader takes writes (a leader
    that was just elected answers NOT_CONTROLLER until its first-term
    barrier applied, and AdminClient does not retry that)."""
    c.start()
    c.tally_ok("topic", "create", "warmup")


def create(admin, topic, **kw):
    fs = admin.create_topics([NewTopic(topic, **kw)], operation_timeout=10)
    return fs[topic].result(timeout=30)


def read_all(c, topic, n, timeout=30):
    cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "unused",
                     "enable.auto.commit": False, "api.version.request": True})
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is None:
                continue
            check(m.error() is None, f"consumer error: {m.error()}")
            got.append(m)
        return got
    finally:
        cons.close()


def test_admin_topics():
    """CreateTopics with cleanup.policy=compact is a compacted tally topic;
    2 partitions and an unknown config are refused; an existing topic says
    so; DeleteTopics removes it."""
    with KafkaCluster(name="kafka-py-admin") as c:
        start(c)
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        # Metadata's cluster id is the cluster's own (the nodes log it).
        cid = admin.list_topics(timeout=10).cluster_id
        logged = open(c.nodes[1].log_path, errors="replace").read()
        check(cid and len(cid) == 16 and f"cluster id {cid}" in logged,
              f"cluster id {cid!r} is not the one node 1 logged")
        create(admin, "acct", num_partitions=1, replication_factor=3,
               config={"cleanup.policy": "compact"})
        # CreateTopics answers once the leader applied it; `tally status`
        # lists topics from any node, which may apply it a moment later.
        def policy():
            return {t["name"]: t for t in c.status()["topics"]}.get("acct", {}).get("policy")
        wait_until(lambda: policy() is not None, 10, "acct to be listed")
        check(policy() == "compact", f"acct's policy: {policy()}")
        for kw, what in [({"num_partitions": 2}, "INVALID_PARTITIONS"),
                         ({"num_partitions": 1, "config": {"max.message.bytes": "5"}},
                          "INVALID_CONFIG")]:
            try:
                create(admin, "bad", **kw)
                check(False, f"{kw} was accepted")
            except KafkaException as e:
                check(what in str(e), f"{kw}: {e}")
        try:
            create(admin, "acct", num_partitions=1)
            check(False, "an existing topic was created again")
        except KafkaException as e:
            check("TOPIC_ALREADY_EXISTS" in str(e), str(e))
        admin.delete_topics(["acct"], operation_timeout=10)["acct"].result(timeout=30)
        wait_until(lambda: "acct" not in {t["name"] for t in c.status()["topics"]}, 10,
                   "acct to be deleted")
        c.check_up()


def test_admin_configs():
    """describe_configs shows a topic's settings; alter_configs changes
    them through Raft (visible in `tally status` on every node, and
    natively with `tally topic alter`); segment.bytes and unknown configs
    are refused; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION."""
    with KafkaCluster(name="kafka-py-configs") as c:
        start(c)
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        create(admin, "ledger", num_partitions=1)

        def described(topic):
            res = ConfigResource("topic", topic)
            got = admin.describe_configs([res])[res].result(timeout=30)
            return {k: v.value for k, v in got.items()}

        d = described("ledger")
        check(d.get("cleanup.policy") == "delete" and d.get("retention.ms") == "-1",
              f"a retain topic described: {d}")

        def alter(topic, configs):
            res = ConfigResource("topic", topic, set_config=configs)
            return admin.alter_configs([res])[res].result(timeout=30)

        alter("ledger", {"cleanup.policy": "compact"})
        def listed():
            """ledger's line of `tally topic list` on each node."""
            out = {}
            for node_id in c.alive_ids():
                r = c.tally("topic", "list", ids=[node_id])
                out[node_id] = next((line.split() for line in r.text.splitlines()
                                     if line.startswith("ledger ")), [])
            return out
        wait_until(lambda: all(f[1:2] == ["compact"] for f in listed().values()), 15,
                   "every node to apply the new policy")
        check(described("ledger").get("cleanup.policy") == "compact", "described after alter")
        # AlterConfigs replaces the whole set: retention given, policy back
        # to the default (delete).
        alter("ledger", {"retention.ms": "86400000"})
        wait_until(lambda: all(f[1:2] == ["delete"] and f[-1].startswith("86400000ms")
                               for f in listed().values()), 15,
                   "delete with 1 day on every node")
        for configs, what in [({"segment.bytes": "4096"}, "INVALID_CONFIG"),
                              ({"max.message.bytes": "5"}, "INVALID_CONFIG")]:
            try:
                alter("ledger", configs)
                check(False, f"{configs} was accepted")
            except KafkaException as e:
                check(what in str(e), f"{configs}: {e}")
        try:
            alter("nope", {"retention.ms": "1"})
            check(False, "an unknown topic was altered")
        except KafkaException as e:
            check("UNKNOWN_TOPIC_OR_PART" in str(e), str(e))
        # The native command reaches the same setting.
        c.tally_ok("topic", "alter", "ledger", "--policy", "compact,delete")
        check(described("ledger").get("cleanup.policy") == "compact,delete",
              "described after tally topic alter")
        r = c.tally("topic", "alter", "ledger", "--segment-bytes", "4096")
        check(r.rc == 2 and "fixed" in r.errtext, f"--segment-bytes: {r!r}")
        r = c.tally("topic", "alter", "nope", "--policy", "delete")
        check(r.rc == 1 and "not found" in r.errtext, f"unknown topic: {r!r}")
        c.check_up()


def test_produce_consume_every_codec():
    """An idempotent Producer with each codec; the Consumer reads keys,
    values and headers back in order; offsets_for_times finds the records
    written after a moment."""
    with KafkaCluster(name="kafka-py-pc") as c:
        start(c)
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        create(admin, "events", num_partitions=1)
        want = []
        marks = {}
        for codec in CODECS:
            marks[codec] = int(time.time() * 1000)
            time.sleep(0.02)
            p = Producer({"bootstrap.servers": c.bootstrap(), "compression.codec": codec,
                          "enable.idempotence": True, "acks": "all", "linger.ms": 20})
            errors = []
            for i in range(200):
                key, value = f"{codec}-k{i % 7}".encode(), (f"{codec}-{i}-" + "x" * i).encode()
                want.append((key, value))
                p.produce("events", value=value, key=key, headers=[("codec", codec.encode())],
                          on_delivery=lambda err, m: errors.append(err) if err else None)
            check(p.flush(30) == 0, f"{codec}: messages left unsent")
            check(errors == [], f"{codec}: {errors}")
            time.sleep(0.02)
        got = read_all(c, "events", len(want))
        check([(m.key(), m.value()) for m in got] == want, "records differ")
        check([m.offset() for m in got] == list(range(len(want))), "offsets differ")
        check(all(m.headers() == [("codec", m.key().split(b"-")[0])] for m in got), "headers")
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "unused"})
        try:
            tps = cons.offsets_for_times([TopicPartition("events", 0, marks["lz4"])], timeout=20)
            check(tps[0].offset == 600, f"offsets_for_times: {tps}")
            lo, hi = cons.get_watermark_offsets(TopicPartition("events", 0), timeout=20)
            check((lo, hi) == (0, 1000), f"watermarks {lo}, {hi}")
        finally:
            cons.close()
        c.check_up()


def test_timestamps_kept():
    """The timestamps a Producer sets come back as CreateTime, byte for byte
    (far in the past, out of order; compaction keeps them too: test-compact); a
    record written natively comes back as LogAppendTime with the leader's
    time; offsets_for_times searches the leader's time, not the producer's.
    Failed on the old code: every record came back with the leader's time."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME
    with KafkaCluster(name="kafka-py-ts") as c:
        start(c)
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        create(admin, "stamped", num_partitions=1)
        before = int(time.time() * 1000)
        times = [1_500_000_000_000 + (i * 7919) % 1000 * 1000 for i in range(50)]
        p = Producer({"bootstrap.servers": c.bootstrap(), "enable.idempotence": True,
                      "linger.ms": 20, "compression.codec": "lz4"})
        for i, ts in enumerate(times):
            p.produce("stamped", key=f"k{i}".encode(), value=b"v", timestamp=ts)
        check(p.flush(30) == 0, "messages left unsent")
        c.tally_ok("produce", "stamped", "--key", "native", input=b"n\n")
        got = read_all(c, "stamped", 51)
        check([m.timestamp() for m in got[:50]] == [(TIMESTAMP_CREATE_TIME, t) for t in times],
              f"producer timestamps: {[m.timestamp() for m in got[:5]]}...")
        kind, ts = got[50].timestamp()
        check(kind == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= int(time.time() * 1000),
              f"native record: {got[50].timestamp()}")
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": "unused"})
        try:
            tps = cons.offsets_for_times([TopicPartition("stamped", 0, before)], timeout=20)
            check(tps[0].offset == 0, f"offsets_for_times by the leader's time: {tps}")
        finally:
            cons.close()
        c.check_up()


def test_auto_create_setting():
    """By default a Producer to an unknown topic gets UNKNOWN_TOPIC (nothing
    is created); with kafka_auto_create_topics=true the leader creates it
    when a Metadata request names it, and the message is delivered."""
    with KafkaCluster(name="kafka-py-auto") as c:
        start(c)
        p = Producer({"bootstrap.servers": c.bootstrap(), "message.timeout.ms": 3000})
        errors = []
        p.produce("ghost", value=b"x", on_delivery=lambda err, m: errors.append(err and err.name()))
        p.flush(20)
        check(len(errors) == 1 and errors[0] is not None, f"delivery: {errors}")
        check("ghost" not in {t["name"] for t in c.status()["topics"]}, "ghost was created")
    with KafkaCluster(name="kafka-py-auto2",
                      extra_args=["--set", "kafka_auto_create_topics=true"]) as c:
        start(c)
        # Only the leader can create (a follower's Metadata answer cannot
        # forward the create: docs/kafka-users.md), so bootstrap there.
        p = Producer({"bootstrap.servers": c.bootstrap([c.leader()]),
                      "message.timeout.ms": 20000})
        errors = []
        p.produce("ghost", value=b"x", on_delivery=lambda err, m: errors.append(err and err.name()))
        p.flush(30)
        check(errors == [None], f"delivery: {errors}")
        wait_until(lambda: "ghost" in {t["name"] for t in c.status()["topics"]}, 10, "ghost")
        c.check_up()


def test_null_header_values():
    """A header with a null value (None) comes back as None, apart from an
    empty one, in every codec and in batches mixing records with and
    without one; a follower's `tally log dump` shows it as an unquoted
    null. Failed on the old code: a null header value came back as b""."""
    with KafkaCluster(name="kafka-py-nullhdr") as c:
        start(c)
        admin = AdminClient({"bootstrap.servers": c.bootstrap()})
        create(admin, "hdrs", num_partitions=1)
        want = []
        for codec in ["none", "lz4", "zstd"]:
            p = Producer({"bootstrap.servers": c.bootstrap(), "compression.codec": codec,
                          "enable.idempotence": True, "linger.ms": 50})
            for i in range(20):
                # Null headers only in some records: a batch's records before
                # its first null one are re-encoded by the builder.
                headers = [("e", b""), ("v", f"{codec}{i}".encode())]
                if i % 3 == 2:
                    headers = [("n", None)] + headers + [("n2", None)]
                want.append(headers)
                p.produce("hdrs", key=f"k{i}".encode(), value=b"x", headers=headers)
            check(p.flush(30) == 0, f"{codec}: messages left unsent")
        got = read_all(c, "hdrs", len(want))
        check(len(got) == len(want), f"read {len(got)} of {len(want)} records")
        heads = [m.headers() for m in got]
        if confluent_kafka.version()[1] < 0x01080200:
            # Message.headers() before 1.8.2 hands out None header values
            # without taking a reference to None, which would abort the
            # interpreter at exit: take the references it should have.
            for hs in heads:
                for _, v in hs or []:
                    if v is None:
                        ctypes.pythonapi.Py_IncRef(ctypes.py_object(None))
        bad = [(i, h, w) for i, (h, w) in enumerate(zip(heads, want)) if h != w]
        check(not bad, f"headers differ (offset, got, want): {bad[:3]}")
        follower = next(i for i in c.nodes if i != c.leader())
        addr = f"127.0.0.1:{c.nodes[follower].client_port}"
        wait_until(lambda: len(c.tally("consume", "hdrs", "--node", addr).out.splitlines())
                   == len(want), 20, "the follower to apply every record")
        c.stop(follower)
        r = c.tally("log", "dump", c.nodes[follower].data, "--topic", "hdrs")
        check(r.rc == 0 and b'headers: "n"=null "e"="" "v"="none2" "n2"=null\n' in r.out
              and b'headers: "e"="" "v"="none0"\n' in r.out, f"log dump: {r.out[:800]!r}")


if __name__ == "__main__":
    if Consumer is None:
        print("SKIP: python3-confluent-kafka is not installed (deploy/setup.sh installs it)")
        sys.exit(SKIP)
    run_tests([test_admin_topics, test_admin_configs, test_produce_consume_every_codec, test_timestamps_kept,
               test_auto_create_setting, test_null_header_values])
