# netdelay.py - runs test/lib/delay-proxy (a TCP proxy that delays each
# direction by a fixed time plus jitter, optionally at a capped rate) for the
# tests, and a harness.Cluster whose Raft links go through it.
#
# Python 3 standard library only.

import os
import subprocess

import harness
from harness import Cluster, TestFailure

DELAY_PROXY = os.path.join(harness.BUILD_DIR, "test", "lib", "delay-proxy")


class DelayProxy:
    """One delay-proxy process forwarding each of @targets (ports on
    127.0.0.1) from a port of its own: self.ports[k] forwards to
    targets[k]. @delay_ms, @jitter_ms and @rate_bytes are numbers or
    "FORWARD/REVERSE" strings, as the proxy's options take them."""

    def __init__(self, targets, delay_ms=0, jitter_ms=0, rate_bytes=0, seed=1):
        if not os.access(DELAY_PROXY, os.X_OK):
            raise TestFailure(f"{DELAY_PROXY} is not built")
        argv = [DELAY_PROXY, "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                "--rate-bytes", str(rate_bytes), "--seed", str(seed)]
        argv += [f"0={t}" for t in targets]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.ports = []
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                err = self.proc.stderr.read().decode(errors="replace")
                self.proc.wait(timeout=10)
                raise TestFailure(f"delay-proxy exited ({self.proc.returncode}): {err.strip()}")
            if line.strip() == "ready":
                break
            words = line.split()  # "listen P -> T"
            self.ports.append(int(words[1]))
        if len(self.ports) != len(targets):
            raise TestFailure(f"delay-proxy listed {self.ports} for {targets}")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class DelayCluster(Cluster):
    """A harness.Cluster whose Raft links go through one DelayProxy: node i
    reaches node j at a proxy port of link (i, j), as faultlib.FaultCluster
    does with its blocking proxies (each tallyd keeps its own --peer entry
    real and gets the others' Raft addresses replaced)."""

    def __init__(self, n=3, name="delay", extra_args=(), delay_ms=1, jitter_ms=0):
        super().__init__(n=n, name=name, extra_args=extra_args)
        self.links = [(i, j) for i in self.nodes for j in self.nodes if i != j]
        self.proxy = DelayProxy([self.nodes[j].raft_port for (_, j) in self.links],
                                delay_ms=delay_ms, jitter_ms=jitter_ms)
        self.link_port = dict(zip(self.links, self.proxy.ports))

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [harness.TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        for m in self.nodes.values():
            raft = m.raft if m.id == node_id else f"127.0.0.1:{self.link_port[(node_id, m.id)]}"
            args += ["--peer", f"{m.id}={m.client}/{raft}"]
        args.append("--bootstrap")
        return args + self.extra_args

    def cleanup(self):
        super().cleanup()
        self.proxy.close()
