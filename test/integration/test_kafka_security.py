# test_kafka_security.py - the Kafka listener on a secured cluster (issue
# 19): TLS (Kafka's SSL and SASL_SSL), SCRAM-SHA-256/512 through
# SaslHandshake + SaslAuthenticate against the users replicated in the
# catalog, and the ACLs, with Debian's python3-confluent-kafka and kcat as
# the clients. Certificates from deploy/make-certs.sh.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_kafka_security.py [NAME...]

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SKIP, check, free_ports, run_tests, wait_until  # noqa: E402
from kafka_cluster import kcat  # noqa: E402
from test_auth import AuthCluster, ok  # noqa: E402
from test_tls import log_of, make_certs  # noqa: E402

try:
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
except ImportError:
    Consumer = None

PASSWORD = "kafka horse battery staple"
KAFKA_DIR = os.path.join(os.environ.get("TALLY_SRC_DIR") or
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                         "test", "kafka")
NODE = shutil.which("node") or shutil.which("nodejs")


class KafkaAuthCluster(AuthCluster):
    """AuthCluster (TLS, auth = required) whose nodes also serve Kafka."""

    def __init__(self, certs, name, extra=()):
        super().__init__(certs, n=3, name=name)
        self.extra_args = list(self.extra_args) + list(extra)
        self.kafka = {i: p for i, p in zip(self.nodes, free_ports(len(self.nodes)))}

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{self.kafka[i]}" for i in self.nodes)

    def argv(self, node_id):
        args = super().argv(node_id) + ["--kafka", f"127.0.0.1:{self.kafka[node_id]}"]
        for i in self.nodes:
            if i != node_id:
                args += ["--kafka-peer", f"{i}=127.0.0.1:{self.kafka[i]}"]
        return args

    def client_conf(self, user, password, mechanism="SCRAM-SHA-256", **kw):
        conf = {"bootstrap.servers": self.bootstrap(), "security.protocol": "SASL_SSL",
                "sasl.mechanism": mechanism, "sasl.username": user,
                "sasl.password": password,
                "ssl.ca.location": os.path.join(self.certs, "ca.crt")}
        conf.update(kw)
        return conf


def produce(conf, topic, values, timeout=20):
    """Produce @values; returns (delivery errors, client errors)."""
    errors, client_errors = [], []
    conf = dict(conf, **{"error_cb": lambda e: client_errors.append(e)})
    p = Producer(conf)
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda err, m: errors.append(err))
    p.flush(timeout)
    return errors, client_errors


def consume(conf, topic, n, timeout=20):
    cons = Consumer(dict(conf, **{"group.id": "unused", "enable.auto.commit": False}))
    got = []
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        cons.close()
    return got


def setup_users(c):
    ok(c.as_admin("user", "add", "alice", input=(PASSWORD + "\n").encode()), "user add alice")
    ok(c.as_admin("user", "add", "bob", input=(PASSWORD + "\n").encode()), "user add bob")
    wait_until(lambda: all(sorted(c.as_admin("user", "list", ids=[i]).text.split()) ==
                           ["alice", "bob"] for i in c.nodes), 30, "users on every node")


@contextlib.contextmanager
def secured_cluster(name, extra=()):
    """A started KafkaAuthCluster with fresh certificates (c.certs) and the
    users alice and bob on every node; its files are removed after."""
    tmp = tempfile.mkdtemp(prefix="tally-ksec-")
    try:
        with KafkaAuthCluster(make_certs(os.path.join(tmp, "certs")), name, extra) as c:
            c.start()
            setup_users(c)
            yield c
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_kafka_sasl_ssl():
    """With auth = required the Kafka port speaks TLS and wants SCRAM: a
    producer logs in with SCRAM-SHA-256 and a consumer with -512 and
    read back what was written; a wrong password is refused
    (SASL_AUTHENTICATION_FAILED, logged with the user) and nothing is
    written; a plaintext Kafka client gets nowhere; kcat lists the
    metadata over SASL_SSL. No password reaches a node's log."""
    with secured_cluster("kafka-sasl") as c:
        ok(c.as_admin("topic", "create", "t"), "topic create")
        errors, cerrs = produce(c.client_conf("alice", PASSWORD), "t",
                                [b"v%d" % i for i in range(20)])
        check(errors == [None] * 20, f"SCRAM-SHA-256 producer: {errors} {cerrs}")
        got = consume(c.client_conf("bob", PASSWORD, "SCRAM-SHA-512"), "t", 20)
        check(got == [b"v%d" % i for i in range(20)], f"SCRAM-SHA-512 consumer: {got}")
        # A wrong password: refused, nothing written.
        errors, cerrs = produce(c.client_conf("alice", "wrong password",
                                              **{"message.timeout.ms": 4000}),
                                "t", [b"bad"], timeout=10)
        check(errors and errors[0] is not None, f"wrong password delivered: {errors}")
        check(any(e.code() == KafkaError._AUTHENTICATION for e in cerrs),
              f"no authentication error: {cerrs}")
        # Plaintext Kafka to the TLS port: nothing works.
        errors, cerrs = produce({"bootstrap.servers": c.bootstrap(),
                                 "message.timeout.ms": 3000}, "t", [b"plain"], timeout=8)
        check(errors and errors[0] is not None, f"plaintext client delivered: {errors}")
        r = ok(c.as_admin("consume", "t", "--from", "beginning", "--count", "20",
                          ids=[c.leader()]), "native consume")
        check(len(r.text.splitlines()) == 20, f"records: {r.text!r}")
        rc, out, err = kcat("-b", c.bootstrap(), "-L", "-t", "t",
                            "-X", "security.protocol=SASL_SSL",
                            "-X", "sasl.mechanisms=SCRAM-SHA-256",
                            "-X", "sasl.username=alice", "-X", f"sasl.password={PASSWORD}",
                            "-X", f"ssl.ca.location={os.path.join(c.certs, 'ca.crt')}")
        check(rc == 0 and b'topic "t" with 1 partitions' in out, f"kcat -L: {rc} {out!r} "
                                                                f"{err!r}")
        logs = "".join(log_of(c, i) for i in c.nodes)
        check("user 'alice' failed" in logs, "the failed login is not logged")
        check(PASSWORD not in logs and "wrong password" not in logs, "a password in a log")
        c.check_up()


def test_kafkajs_sasl_ssl():
    """kafkajs (npm) over SASL_SSL with SCRAM-SHA-512: its admin creates a
    topic, its idempotent producer writes 200 records, and the native CLI
    reads them back; with a wrong password it fails."""
    if NODE is None or not os.path.isdir(os.path.join(KAFKA_DIR, "node_modules", "kafkajs")):
        print("# kafkajs is missing (deploy/setup.sh installs it): case not run")
        return
    with secured_cluster("kafka-js-sasl") as c:
        env = dict(os.environ, KAFKA_CA=os.path.join(c.certs, "ca.crt"), KAFKA_USER="alice",
                   KAFKA_PASSWORD=PASSWORD, KAFKA_MECHANISM="scram-sha-512")
        js = os.path.join(KAFKA_DIR, "kafkajs_client.js")
        p = subprocess.run([NODE, js, c.bootstrap(), "js"], capture_output=True,
                           timeout=120, cwd=KAFKA_DIR, env=env)
        out = p.stdout.decode().splitlines()
        check(p.returncode == 0 and out == ["sent none 0", "sent gzip 100", "offsets 0 200"],
              f"kafkajs: {out} {p.stderr.decode()[-2000:]}")
        # Acknowledged by the leader; a follower may apply them a moment later.
        r = ok(c.as_admin("consume", "js", "--from", "beginning", "--count", "200",
                          ids=[c.leader()]), "native consume")
        check(len(r.text.splitlines()) == 200, f"records: {len(r.text.splitlines())}")
        env["KAFKA_PASSWORD"] = "wrong"
        p = subprocess.run([NODE, js, c.bootstrap(), "js2"], capture_output=True,
                           timeout=120, cwd=KAFKA_DIR, env=env)
        check(p.returncode != 0 and b"SASL SCRAM SHA512 authentication failed" in p.stderr,
              f"wrong password: rc {p.returncode} {p.stderr.decode()[-1000:]}")
        c.check_up()


def test_kafka_acl():
    """authorize = acl: alice may write topics a-*; her produce to a-1 is
    delivered, to b-1 refused with TOPIC_AUTHORIZATION_FAILED; bob, with
    no rule, may not read a-1."""
    with secured_cluster("kafka-acl", extra=["--set", "authorize=acl",
                                             "--set", "super_users=client"]) as c:
        for t in ("a-1", "b-1"):
            ok(c.as_admin("topic", "create", t), f"create {t}")
        for op in ("write", "describe"):
            ok(c.as_admin("acl", "add", "--principal", "alice", "--topic-prefix", "a-",
                          "--operation", op), f"acl {op}")
        wait_until(lambda: all(len(c.as_admin("acl", "list", ids=[i]).text.splitlines())
                               >= 2 for i in c.nodes), 30, "ACLs on every node")
        conf = c.client_conf("alice", PASSWORD, **{"message.timeout.ms": 8000})
        errors, cerrs = produce(conf, "a-1", [b"yes"])
        check(errors == [None], f"allowed produce: {errors} {cerrs}")
        errors, cerrs = produce(conf, "b-1", [b"no"], timeout=12)
        check(len(errors) == 1 and errors[0] is not None and
              errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED,
              f"denied produce: {errors} {cerrs}")
        got = consume(c.client_conf("bob", PASSWORD), "a-1", 1, timeout=6)
        check(got == [], f"bob read a-1: {got}")
        r = ok(c.as_admin("consume", "b-1", "--from", "beginning", "--timeout", "2000"),
               "b-1 stays empty")
        check(r.text.strip() == "", f"b-1 holds {r.text!r}")
        c.check_up()


if __name__ == "__main__":
    if Consumer is None:
        print("SKIP: python3-confluent-kafka is not installed (deploy/setup.sh installs it)")
        sys.exit(SKIP)
    run_tests([test_kafka_sasl_ssl, test_kafkajs_sasl_ssl, test_kafka_acl])
