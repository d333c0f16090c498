#!/usr/bin/env python3
"""Many topics (issue 24): create N topics one after another through the
CLI on a fresh three-node cluster, with an optional concurrent producer,
and report, at 10, 100, 1,000, 5,000 and N topics:

  - creates per second (the median of the last 50 creates' wall times,
    CLI process start included, so the rate at 10 is the baseline of the
    same run: the ratio rate(N) / rate(10) is the figure to read; the CLI
    is run as installed, not through libtool's wrapper script);
  - failed creates, and elections seen ("-> candidate" in the nodes' logs
    after the first leader);
  - open file descriptors and resident memory (RSS) of each node;

then SIGKILLs every node, starts them again and reports the seconds until
every node lists all N topics (restart and serve).

  bench/many_topics.py [--topics 10000] [--max-seconds 1800] [--producer]
                       [--set KEY=VALUE]... BUILD_DIR

The last line is 'many_topics: topics=N rate10=.. rateN=.. ratio=..
failed=.. elections=.. max_fds=.. restart_s=..'. Figures only: nothing
here is asserted (the machine is shared and noisy); the make check test
test/integration/test_many_topics.py runs a scaled-down case."""
import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402

CHECKPOINTS = (10, 100, 1000, 5000, 10000)


def fds(node):
    try:
        return node.open_fds()
    except OSError:
        return -1


def rss_mb(node):
    try:
        with open(f"/proc/{node.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return -1.0


class Producer(threading.Thread):
    """One record per request, in a loop, to topic 'load' until stopped;
    counts acknowledged and failed requests."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = threading.Event()
        self.ok = self.failed = 0

    def run(self):
        while not self.stop.is_set():
            r = self.c.tally("produce", "load", "x", timeout=60)
            if r.rc == 0:
                self.ok += 1
            else:
                self.failed += 1
                time.sleep(0.05)


def create_many(c, n, max_seconds, report, name_fmt="t{:05d}"):
    """Create topics 0..n-1 one at a time; call report(i, rate) at each
    checkpoint. Returns (attempted, failures, times, names created)."""
    times, failures, ok = [], [], []
    t_end = time.monotonic() + max_seconds
    marks = sorted(set(k for k in CHECKPOINTS if k <= n) | {n})
    for i in range(n):
        r = c.tally("topic", "create", name_fmt.format(i), timeout=120)
        times.append(r.secs)
        if r.rc != 0:
            failures.append((i, r.errtext.strip()))
        else:
            ok.append(name_fmt.format(i))
        done = i + 1
        if done in marks:
            window = times[-50:]
            report(done, 1.0 / statistics.median(window))
        if time.monotonic() > t_end:
            window = times[-50:]
            report(done, 1.0 / statistics.median(window))
            print(f"stopped after {max_seconds}s at {done} topics", flush=True)
            return done, failures, times, ok
    return n, failures, times, ok


def listed_everywhere(c, want):
    """True when every node lists every topic named in @want."""
    for i in c.nodes:
        r = c.tally("topic", "list", brokers=c.nodes[i].client, timeout=60)
        if r.rc != 0:
            return False
        names = set(ln.split()[0] for ln in r.text.splitlines() if ln.strip())
        if not set(want) <= names:
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--topics", type=int, default=10000)
    ap.add_argument("--max-seconds", type=int, default=1800)
    ap.add_argument("--producer", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    b = os.path.abspath(a.build)
    harness.use_build(b, direct=True)
    extra = []
    for s in a.set:
        extra += ["--set", s]
    with harness.Cluster(3, name="many-topics", extra_args=extra) as c:
        c.start()
        prod = None
        if a.producer:
            c.tally_ok("topic", "create", "load")
            prod = Producer(c)
            prod.start()
        e0 = c.candidacies()
        rates = {}

        def report(done, rate):
            rates[done] = rate
            f = " ".join(f"n{i}={fds(c.nodes[i])}" for i in c.nodes)
            m = " ".join(f"n{i}={rss_mb(c.nodes[i]):.0f}MB" for i in c.nodes)
            print(f"topics={done:6d} creates/s={rate:7.1f} elections={c.candidacies() - e0} "
                  f"fds: {f} rss: {m}", flush=True)

        t0 = time.monotonic()
        created, failures, _, ok = create_many(c, a.topics, a.max_seconds, report)
        total = time.monotonic() - t0
        if prod is not None:
            prod.stop.set()
            prod.join(timeout=120)
            print(f"producer: {prod.ok} acknowledged, {prod.failed} failed", flush=True)
        for i, why in failures[:5]:
            print(f"create {i} failed: {why}", flush=True)
        el = c.candidacies() - e0
        max_fds = max(fds(n) for n in c.nodes.values())
        print(f"created {created} topics in {total:.1f}s, {len(failures)} failed, "
              f"{el} elections", flush=True)
        for i in c.nodes:
            c.kill(i)
        t1 = time.monotonic()
        c.start(wait=False)
        harness.wait_until(lambda: listed_everywhere(c, ok), 600,
                           "every node lists every topic after the restart", interval=0.5)
        restart = time.monotonic() - t1
        print(f"restart (SIGKILL all, start all, every node lists its {len(ok)} topics): "
              f"{restart:.1f}s; fds after: "
              + " ".join(f"n{i}={fds(c.nodes[i])}" for i in c.nodes), flush=True)
        r10 = rates.get(10, 0.0)
        rn = rates.get(created, 0.0)
        print(f"many_topics: topics={created} rate10={r10:.1f} rateN={rn:.1f} "
              f"ratio={rn / r10 if r10 else 0:.2f} failed={len(failures)} elections={el} "
              f"max_fds={max_fds} restart_s={restart:.1f}", flush=True)


if __name__ == "__main__":
    main()
