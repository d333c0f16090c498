#!/usr/bin/env python3
"""Retention over many topics at once (issue 24): N delete-policy topics of
4 KiB segments each get three segments' worth of records, so that one
retention pass trims every one of them; meanwhile a probe writes one
record every 20 ms to another topic. Reports, for the window from just
before the pass until every node deleted the trimmed segments:

  - the probe's produce latency: p50, p99 and max (ms), against the same
    probe's p50 before the window (the baseline of the same run);
  - elections seen in that window ("-> candidate" in the nodes' logs);
  - seconds from the first to the last node done.

Each applied TOPIC_TRIM used to write the whole catalog (O(topics)) on
the event loop of every node; then each node wrote one checkpoint per
retention interval on the loop; now that checkpoint is written off the
loop (server/checkpointer.c). It also prints, per node, the longest loop
holds its log reports (snapshot freezes, checkpoint freezes and
releases). Run it on two builds to compare.

  bench/trim_topics.py [--topics 1000] BUILD_DIR

The last line is 'trim_topics: topics=N base_p50_ms=.. p50_ms=.. p99_ms=..
max_ms=.. elections=.. done_s=..'. Figures only, nothing asserted."""
import argparse
import os
import re
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402

SEGMENT = 4096
INTERVAL_MS = 3000


def segments(c, node_id, topic):
    d = os.path.join(c.nodes[node_id].data, "topics", topic)
    try:
        return sum(1 for f in os.listdir(d) if f.endswith(".seg"))
    except OSError:
        return -1


def parallel(fn, items, workers=4):
    """Run fn(item) for every item on @workers threads; the failures."""
    failed = []
    lock = threading.Lock()
    it = iter(items)

    def run():
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                return
            if not fn(item):
                with lock:
                    failed.append(item)
    ts = [threading.Thread(target=run) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return failed


class Probe:
    """One record every 20 ms to topic 'probe'; (start time, latency)."""

    def __init__(self, c):
        self.c = c
        self.samples = []
        self.stop = False
        self.thread = threading.Thread(target=self.run)

    def run(self):
        i = 0
        while not self.stop:
            t0 = time.monotonic()
            r = self.c.tally("--timeout", 20000, "produce", "probe", f"p{i}", timeout=30)
            t1 = time.monotonic()
            if r.rc == 0:
                self.samples.append((t0, (t1 - t0) * 1000.0))
            i += 1
            time.sleep(max(0.0, 0.02 - (t1 - t0)))

    def between(self, a, b):
        return [ms for t, ms in self.samples if a <= t <= b]


def loop_holds(c):
    """Print, per node, the longest loop holds its log reports: Raft
    snapshot freezes and checkpoints (freeze and release), and the longest
    off-loop writes."""
    snap = re.compile(r"snapshot at index \d+ \(\d+ bytes; ([0-9.]+) s on the loop, "
                      r"([0-9.]+) s on the thread pool")
    ckpt = re.compile(r"checkpoint: written: ([0-9.]+) ms on the loop to freeze, ([0-9.]+) s "
                      r"to write, ([0-9.]+) ms on the loop to release")
    for i, n in c.nodes.items():
        s_loop, s_pool, c_freeze, c_release, c_build, nsnap, nckpt = 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0
        with open(n.log_path, errors="replace") as f:
            for line in f:
                m = snap.search(line)
                if m:
                    nsnap += 1
                    s_loop = max(s_loop, float(m.group(1)) * 1000)
                    s_pool = max(s_pool, float(m.group(2)))
                m = ckpt.search(line)
                if m:
                    nckpt += 1
                    c_freeze = max(c_freeze, float(m.group(1)))
                    c_build = max(c_build, float(m.group(2)))
                    c_release = max(c_release, float(m.group(3)))
        print(f"# node {i}: {nsnap} snapshots (loop max {s_loop:.1f} ms, pool max {s_pool:.3f} s), "
              f"{nckpt} checkpoints off the loop (loop max: freeze {c_freeze:.1f} ms, release "
              f"{c_release:.1f} ms; write max {c_build:.3f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("build")
    args = ap.parse_args()
    harness.use_build(os.path.abspath(args.build), direct=True)
    extra = ["--set", f"retention_interval_ms={INTERVAL_MS}"]
    with harness.Cluster(3, name="trim-topics", extra_args=extra) as c:
        c.start()
        c.tally_ok("topic", "create", "probe")
        names = [f"r{i:05d}" for i in range(args.topics)]

        def create(name):
            return c.tally("topic", "create", name, "--policy", "delete", "--segment-bytes",
                           SEGMENT, "--retention-bytes", SEGMENT, timeout=60).rc == 0
        failed = parallel(create, names)
        print(f"# {len(names) - len(failed)} topics created ({len(failed)} failed)", flush=True)
        # Three batches of ~4.5 KiB: three segments of 4 KiB (a batch is
        # never split), of which retention (4 KiB) keeps the last.
        # (random, so that the batch's compression does not shrink it)
        payload = "".join(f"{i:04d}-{os.urandom(45).hex()}\n" for i in range(48)).encode()

        def fill(name):
            return all(c.tally("produce", name, input=payload, timeout=60).rc == 0
                       for _ in range(3))
        probe = Probe(c)
        probe.thread.start()
        time.sleep(3)
        t_fill = time.monotonic()
        failed = parallel(fill, names)
        print(f"# records written to every topic in {time.monotonic() - t_fill:.1f}s "
              f"({len(failed)} failed)", flush=True)
        base = probe.between(t_fill - 3, t_fill)
        e0 = c.candidacies()
        t0 = time.monotonic()
        before = {i: segments(c, i, names[-1]) for i in c.nodes}
        print(f"# segments of {names[-1]} before retention: {before}", flush=True)
        # Done: every node holds at most 2 segments of every topic (the
        # retention kept one 4 KiB segment and the active one).
        sample = names[:: max(1, len(names) // 50)] + names[-1:]
        done_at = {}
        deadline = t0 + 600
        while len(done_at) < len(c.nodes) and time.monotonic() < deadline:
            for i in c.nodes:
                if i not in done_at and all(0 <= segments(c, i, n) <= 2 for n in sample):
                    done_at[i] = time.monotonic()
            time.sleep(0.2)
        t1 = time.monotonic()
        time.sleep(1)
        probe.stop = True
        probe.thread.join()
        window = probe.between(t_fill, t1)
        e1 = c.candidacies()
        qs = statistics.quantiles(window, n=100) if len(window) >= 2 else [0] * 99
        done_s = (max(done_at.values()) - min(done_at.values())) if done_at else -1
        loop_holds(c)
        print(f"# probe: {len(base)} samples before, {len(window)} during; "
              f"nodes done: {sorted(done_at)}", flush=True)
        print(f"trim_topics: topics={args.topics} "
              f"base_p50_ms={statistics.median(base) if base else 0:.1f} "
              f"p50_ms={statistics.median(window) if window else 0:.1f} "
              f"p99_ms={qs[98]:.1f} max_ms={max(window) if window else 0:.1f} "
              f"elections={e1 - e0} done_s={done_s:.1f} "
              f"all_done={len(done_at) == len(c.nodes)}", flush=True)


if __name__ == "__main__":
    main()
