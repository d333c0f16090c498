# test_catalog_check.py - the leader proposes CATALOG_CHECK entries (its
# catalog digest at an applied index) every few seconds; a healthy cluster
# stays healthy through them (a node whose catalog differs from the
# leader's at the same index says so in its log and on /health: see
# test_catalog_check in test/unit/test_store.c; a node whose topic
# directory is emptied while it is stopped detects that at open and
# recovers, so no real divergence is made here).
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_catalog_check.py [NAME...]

import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, free_ports, run_tests, wait_until  # noqa: E402

DIFFERS = "catalog differs from the leader's"


class MetricsCluster(Cluster):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.metrics = {i: p for i, p in zip(self.nodes, free_ports(len(self.nodes)))}

    def argv(self, node_id):
        return super().argv(node_id) + ["--metrics", f"127.0.0.1:{self.metrics[node_id]}"]


def health(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def log_of(c, node_id):
    with open(c.nodes[node_id].log_path, errors="replace") as f:
        return f.read()


def write(c, topic, n, tag):
    c.tally_ok("produce", topic, input="".join(f"{tag}-{i}\n" for i in range(n)).encode())


def test_healthy_cluster_stays_healthy():
    """Writes, topic creates and group commits while several checks pass:
    every node stays 200 on /health and no node logs a difference."""
    with MetricsCluster(name="catcheck-ok") as c:
        c.start()
        c.tally_ok("topic", "create", "a")
        c.tally_ok("topic", "create", "b", "--policy", "delete", "--retention-bytes", "100000")
        end = time.time() + 12
        i = 0
        while time.time() < end:
            write(c, "a" if i % 2 == 0 else "b", 20, f"r{i}")
            if i % 3 == 0:
                c.tally_ok("topic", "create", f"t{i}")
            i += 1
            time.sleep(0.3)
        c.consume("a", extra=("--group", "g"))
        time.sleep(7)  # two more checks after the last write
        for n in (1, 2, 3):
            code, body = health(c.metrics[n])
            check(code == 200, f"node {n} /health: {code} {body}")
            check(DIFFERS not in log_of(c, n), f"node {n} logged a difference")


if __name__ == "__main__":
    run_tests([test_healthy_cluster_stays_healthy])
