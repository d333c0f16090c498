# test_kafka_idempotent.py - a librdkafka producer with enable.idempotence=
# true and acks=all (test/kafka/idem_producer.c) writes while the Raft
# leader is SIGKILLed in the middle of the stream: every delivered message
# is in the topic exactly once and in order, on every node (the Kafka
# producer id, epoch and base sequence are checked in tally's replicated
# producer table, so retries after the failover are not written twice).
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_kafka_idempotent.py

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD_DIR, SKIP, check, run_tests, wait_until  # noqa: E402
from kafka_cluster import KafkaCluster, kcat  # noqa: E402

PRODUCER = os.path.join(BUILD_DIR, "test", "kafka", "idem-producer")
COUNT = 50000


def read_all(c, node_id, topic):
    """(offset, index) of every record of @topic in node @node_id's own log
    (a native read from that node: Kafka consumers would all read the
    leader)."""
    r = c.tally("consume", topic, "--node", c.nodes[node_id].client, "--format", "%o %k\\n",
                timeout=90)
    check(r.rc == 0, f"consume from node {node_id}: {r!r}")
    recs = []
    for line in r.out.decode().splitlines():
        off, key = line.split(" ")
        recs.append((int(off), int(key[1:])))
    return recs


def test_idempotent_producer_survives_leader_kill():
    """SIGKILL the leader while an idempotent producer writes: all COUNT
    messages are delivered, and each node holds each exactly once, in
    producing order, at the offsets the producer was told. A round whose
    kill landed after the producer had everything acknowledged (a status
    poll slowed by a loaded machine) tests nothing: it is run again, at
    most three rounds."""
    for round in range(3):
        if leader_kill_round(round):
            return
    check(False, "in three rounds the kill never landed inside the stream")


def leader_kill_round(round):
    """One round; False if the kill came after the stream had finished."""
    with KafkaCluster(name=f"kafka-idem{round}") as c:
        leader = c.start()
        c.tally_ok("topic", "create", "idem")
        wait_until(lambda: all(kcat("-b", c.kafka_addr(i), "-L", "-t", "idem")[1].find(
            b"partition 0, leader") >= 0 for i in c.nodes), 20, "topic metadata everywhere")
        p = subprocess.Popen([PRODUCER, c.bootstrap(), "idem", str(COUNT), "100"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # Kill the leader once part of the stream is committed.
            def progressed():
                st = c.status()
                return st is not None and any(t["name"] == "idem" and
                                              t["next_offset"] >= COUNT // 8
                                              for t in st["topics"])
            wait_until(progressed, 60, "an eighth of the stream to be written", interval=0.05)
            c.kill(leader)
            killed_at = time.monotonic()
            out, err = p.communicate(timeout=180)
            # The kill must land inside the stream, or this tests nothing.
            if time.monotonic() - killed_at <= 0.5 and p.returncode == 0:
                print(f"# round {round}: the producer finished right at the kill; again",
                      flush=True)
                return False
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        text = out.decode()
        check(p.returncode == 0, f"producer exited {p.returncode}: {err.decode()[-2000:]}"
                                 f" {text[-500:]}")
        delivered = {}
        for line in text.splitlines():
            word = line.split(" ")
            if word[0] == "delivered":
                delivered[int(word[1])] = int(word[2])
        check(len(delivered) == COUNT, f"{len(delivered)} of {COUNT} delivered")
        c.spawn(leader)
        for i in c.nodes:
            def full():
                recs = read_all(c, i, "idem")
                return recs if len(recs) >= COUNT else None
            recs = wait_until(full, 90, f"node {i} to hold the stream", interval=1)
            idx = [r[1] for r in recs]
            check(len(idx) == len(set(idx)), f"node {i}: a message is written twice")
            check(idx == sorted(idx), f"node {i}: messages out of order")
            check(set(idx) == set(range(COUNT)), f"node {i}: messages missing")
            for off, n in recs:
                check(delivered[n] == off, f"node {i}: message {n} at {off}, "
                                           f"acknowledged at {delivered[n]}")
        c.check_up()
    return True


if __name__ == "__main__":
    if not os.access(PRODUCER, os.X_OK):
        print(f"SKIP: {PRODUCER} is not built (needs librdkafka-dev: deploy/setup.sh)")
        sys.exit(SKIP)
    run_tests([test_idempotent_producer_survives_leader_kill], per_test_timeout=400)
