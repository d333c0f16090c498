# test_kafka_kafkajs.py - kafkajs (npm, installed by deploy/setup.sh into
# test/kafka/node_modules) run with node against tallyd's Kafka listener:
# admin createTopics and fetchTopicOffsets, an idempotent producer with each
# codec kafkajs has built in (none, gzip); kcat reads the records back.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_kafka_kafkajs.py

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, check, run_tests  # noqa: E402
from kafka_cluster import KafkaCluster, kcat  # noqa: E402

KAFKA_DIR = os.path.join(os.environ.get("TALLY_SRC_DIR") or
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                         "test", "kafka")
NODE = shutil.which("node") or shutil.which("nodejs")


def test_kafkajs_admin_and_idempotent_producer():
    """kafkajs creates the topic, writes 100 records per codec (the
    answers name offsets 0 and 100), sees offsets 0..200, and kcat reads
    every key, value and header back in order."""
    with KafkaCluster(name="kafka-js") as c:
        c.start()
        c.tally_ok("topic", "create", "warmup")  # the leader takes writes
        p = subprocess.run([NODE, os.path.join(KAFKA_DIR, "kafkajs_client.js"), c.bootstrap(),
                            "js"], capture_output=True, timeout=120, cwd=KAFKA_DIR)
        out = p.stdout.decode().splitlines()
        check(p.returncode == 0, f"kafkajs: {p.stderr.decode()[-3000:]} {out}")
        check(out == ["sent none 0", "sent gzip 100", "offsets 0 200"], f"kafkajs said {out}")
        rc, recs, err = kcat("-b", c.bootstrap(), "-C", "-t", "js", "-o", "beginning", "-e", "-q",
                             "-f", "%k %s %h\\n")
        check(rc == 0, f"kcat: {err!r}")
        want = [f"{n}-k{i} {n}-v{i} codec={n}" for n in ["none", "gzip"] for i in range(100)]
        check(recs.decode().splitlines() == want, "records differ")
        c.check_up()


if __name__ == "__main__":
    if NODE is None or not os.path.isdir(os.path.join(KAFKA_DIR, "node_modules", "kafkajs")):
        print("SKIP: node or kafkajs is missing (deploy/setup.sh installs them)")
        sys.exit(SKIP)
    run_tests([test_kafkajs_admin_and_idempotent_producer])
