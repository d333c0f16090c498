# kafka_cluster.py - a harness Cluster whose nodes also serve Kafka clients
# (--kafka, --kafka-peer), and helpers to run Debian's kcat against it.

import os
import shutil
import subprocess
import time

from harness import Cluster, TestFailure, free_ports  # noqa: F401

KCAT = shutil.which("kcat") or "/usr/bin/kcat"


class KafkaCluster(Cluster):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.kafka = {i: p for i, p in zip(self.nodes, free_ports(len(self.nodes)))}

    def kafka_addr(self, node_id):
        return f"127.0.0.1:{self.kafka[node_id]}"

    def bootstrap(self, ids=None):
        ids = self.nodes.keys() if ids is None else ids
        return ",".join(self.kafka_addr(i) for i in ids)

    def argv(self, node_id):
        args = super().argv(node_id) + ["--kafka", self.kafka_addr(node_id)]
        for i in self.nodes:
            if i != node_id:
                args += ["--kafka-peer", f"{i}={self.kafka_addr(i)}"]
        return args


def kcat(*args, input=None, timeout=60):
    """Run kcat ARGS; return (rc, stdout bytes, stderr bytes)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([KCAT] + [str(a) for a in args], input=input, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"kcat {' '.join(map(str, args))} did not finish within {timeout}s "
                          f"(stderr so far: {e.stderr!r})")
    del t0
    return p.returncode, p.stdout, p.stderr
