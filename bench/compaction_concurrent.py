#!/usr/bin/env python3
"""Batched produce while keyed compaction runs (issue 20), against the same
produce with no compaction, in the same run, on a fresh three-node cluster
(free ports).

Setup: R topics big-1 .. big-R (policy retain, so nothing compacts them
yet) are each filled with FILL_MB MB of keyed records (100 B values, keys
k0 .. k(KEYS-1) in turn, so each key has FILL/KEYS versions), then one
warm-up produce that is not counted (it also makes the nodes take Raft
snapshots, which checkpoint the big topics: compaction only works below
the last checkpoint). Then R rounds, each:

  (a) batched produce to topic m100 while no compaction runs;
  (b) `tally topic alter big-i --policy compact`, then at once the same
      produce to m100: every node starts compacting big-i (all of its
      sealed segments) at its next tick (compaction_interval_ms=200 here)
      and the produce runs meanwhile. The script then waits for each
      node's "compact: topic big-i: ..." line and prints when the job ran
      there (the line's time, less its seconds) and which share of the
      produce window it covered.

The produce is bench/matrix.sh's batched 100 B case (c2), same flags:
`tally bench produce m100 --count COUNT --size 100 --inflight 200000
--pipeline 8 --batch-bytes 262144 --linger-ms 2`, sent to the leader.
COUNT is 1000000 by default (half of c2's), so that the nodes' jobs
(5-10 s each with three nodes on 2 cores) cover most of the produce.

  bench/compaction_concurrent.py [--rounds 4] [--fill-mb 1024]
                                 [--keys 1000000] [--count 1000000]
                                 [--cold] [--set KEY=VALUE ...] BUILD_DIR

--cold drops big-i's files from the page cache (posix_fadvise, those
files only) before (b), so the jobs read them from the disk, as for a
topic written long ago; without it they are mostly still cached from the
fill. --set passes settings on to every tallyd. Prints each run's msgs/s and
p99 (and nodes_cores: the CPU time the three tallyd used during it, in
cores; the machine's count is os.cpu_count()), then the medians and the ratio (b)/(a) (the issue's goal: at least
0.8). Needs about 3 x R x FILL_MB of disk under $TMPDIR. Figures only:
nothing here is asserted."""
import argparse
import calendar
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "integration"))
import harness  # noqa: E402

BATCH_ARGS = ["--inflight", 200000, "--pipeline", 8, "--batch-bytes", 262144,
              "--linger-ms", 2]
INTERVAL_MS = 200


def field(line, name):
    for tok in line.split():
        if tok.startswith(name + "="):
            return float(tok.split("=", 1)[1])
    raise ValueError(f"no {name} in {line!r}")


def log_time(stamp):
    """2026-12-07T10:11:12.345Z -> seconds since the epoch."""
    secs = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs + int(stamp[20:23]) / 1000.0


def job_line(c, node_id, topic):
    """(start, end, line) of the node's finished compaction of @topic, or
    None while it has not logged one."""
    pat = re.compile(r"^(\S+Z) \S+\s+compact: topic " + re.escape(topic) +
                     r": .* ([0-9.]+) s$")
    with open(c.nodes[node_id].log_path, errors="replace") as f:
        for line in f:
            m = pat.match(line.rstrip("\n"))
            if m:
                end = log_time(m.group(1))
                return end - float(m.group(2)), end, line.rstrip("\n")
    return None


def cpu_seconds(c):
    """CPU time (user + system) the nodes used so far, in seconds."""
    total = 0
    for n in c.nodes.values():
        with open(f"/proc/{n.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def drop_cache(c, topic):
    """Drop @topic's files from the page cache on every node (only these
    files: posix_fadvise DONTNEED), as for a topic written long ago."""
    for n in c.nodes.values():
        d = os.path.join(n.data, "topics", topic)
        for name in os.listdir(d):
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def produce(c, brokers, count, label):
    cpu0 = cpu_seconds(c)
    t0 = time.time()
    out = c.tally_ok("bench", "produce", "m100", "--count", count, "--size", 100,
                     *BATCH_ARGS, brokers=brokers, timeout=600)
    t1 = time.time()
    cores = (cpu_seconds(c) - cpu0) / (t1 - t0)
    line = out.text.strip().splitlines()[-1]
    print(f"{label}: {line} nodes_cores={cores:.2f}", flush=True)
    return t0, t1, field(line, "msgs/s"), field(line, "p99_ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--fill-mb", type=int, default=1024)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    harness.use_build(os.path.abspath(a.build), direct=True)
    extra = ["--set", f"compaction_interval_ms={INTERVAL_MS}"]
    for s in a.set:
        extra += ["--set", s]
    with harness.Cluster(3, name="compact-concurrent", extra_args=extra) as c:
        leader = c.start()
        brokers = c.nodes[leader].client
        print(f"# cluster in {c.tmp}, leader node {leader}, settings {' '.join(extra)}, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
        c.tally_ok("topic", "create", "m100", brokers=brokers)
        # 100 B values and keys "k0".."k999999" (2-7 B): about 106 B each
        fill = a.fill_mb * 1000000 // 106
        for r in range(1, a.rounds + 1):
            topic = f"big-{r}"
            c.tally_ok("topic", "create", topic, brokers=brokers)
            t0 = time.monotonic()
            out = c.tally_ok("bench", "produce", topic, "--count", fill, "--size", 100,
                             "--keys", a.keys, *BATCH_ARGS, brokers=brokers, timeout=1800)
            print(f"# filled {topic}: {fill} records over {a.keys} keys in "
                  f"{time.monotonic() - t0:.1f} s: {out.text.strip().splitlines()[-1]}",
                  flush=True)
        produce(c, brokers, a.count, "warm-up (not counted)")
        time.sleep(2)
        runs = {"a": [], "b": []}
        p99 = {"a": [], "b": []}
        for r in range(1, a.rounds + 1):
            topic = f"big-{r}"
            _, _, rate, p = produce(c, brokers, a.count, f"round {r} (a) no compaction  ")
            runs["a"].append(rate)
            p99["a"].append(p)
            if a.cold:
                drop_cache(c, topic)
            c.tally_ok("topic", "alter", topic, "--policy", "compact", brokers=brokers)
            t0, t1, rate, p = produce(c, brokers, a.count,
                                      f"round {r} (b) compacting {topic}")
            runs["b"].append(rate)
            p99["b"].append(p)
            jobs = {}

            def done():
                for i in c.nodes:
                    if i not in jobs:
                        j = job_line(c, i, topic)
                        if j is None:
                            return False
                        jobs[i] = j
                return True
            harness.wait_until(done, 600, f"every node to compact {topic}", interval=0.5)
            for i, (s, e, line) in sorted(jobs.items()):
                cover = max(0.0, min(e, t1) - max(s, t0)) / (t1 - t0)
                print(f"  node {i}: job {s - t0:+.2f} s .. {e - t0:+.2f} s from the produce's "
                      f"start (produce ran {t1 - t0:.2f} s), covered {100 * cover:.0f}% of it: "
                      f"{line.split(': ', 1)[1]}", flush=True)
            # the job's replaced files are freed after its line: let that end
            time.sleep(3)
        ma, mb = statistics.median(runs["a"]), statistics.median(runs["b"])
        print(f"medians of {a.rounds} rounds: (a) no compaction {ma:.0f} msgs/s "
              f"(p99 {statistics.median(p99['a']):.1f} ms), (b) during compaction "
              f"{mb:.0f} msgs/s (p99 {statistics.median(p99['b']):.1f} ms), "
              f"ratio (b)/(a) {mb / ma:.2f}; load average {os.getloadavg()[0]:.2f}")
        print("per-round ratios: " + ", ".join(f"{b / x:.2f}" for x, b in zip(runs["a"],
                                                                              runs["b"])))
        c.check_up()


if __name__ == "__main__":
    main()
