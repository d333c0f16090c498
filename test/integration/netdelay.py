# netdelay.py - runs test/lib/delay-proxy (a TCP proxy that delays each
# direction by a fixed time plus jitter, optionally at a capped rate) for the
# tests. (bench/matrix.sh puts it in front of every node, with
# test/lib/libbindmap.so moving each node's own sockets aside.)
#
# Python 3 standard library only.

import os
import subprocess

import harness
from harness import TestFailure

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
