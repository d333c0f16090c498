#!/usr/bin/python3
# run.py - the fault suite: a three-node tally cluster, concurrent clients
# recording a history, a nemesis injecting faults, then a checker over the
# history and every node's final log. See docs/testing.md, "Fault suite".
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/fault/run.py --short
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/fault/run.py --duration 3600 --seed 7
#
# Exit status: 0 no violation, 1 violations (printed), 2 bad usage,
# 77 binaries not built.

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checker  # noqa: E402
import faultlib  # noqa: E402
import nemesis as nemesis_mod  # noqa: E402
import workload  # noqa: E402
from faultlib import FaultCluster, harness  # noqa: E402

# Small Raft segments: they fit the 64 MiB tmpfs and roll over during a run.
# Small topic segments: several per topic, so "active segment" is not the only one.
# Frequent Raft snapshots with a short trailing log: a node that was killed,
# paused or cut off for a while installs a snapshot and backfills the history
# before it, so that path runs under the faults too.
# Retention every half second: the clock nemesis's faults last 2-5 s.
NODE_ARGS = ["--set", "raft_segment_bytes=4M", "--set", "segment_bytes=256K",
             "--set", "snapshot_threshold=256", "--set", "snapshot_trailing=128",
             "--set", "retention_interval_ms=500"]


# The error a node gives for history it lacks after a snapshot install.
GAP_RE = re.compile(r"offsets (\d+)\.\.(\d+) of topic \S+ are not on node")


def final_phase(c, hist, nem, out_dir):
    """Heal everything, write one barrier record per topic, read every
    node's whole log once it applied the barriers, stop the nodes, verify
    their data. Returns the "final" history entry."""
    final = {"type": "final", "unread": [], "sigterm_exit": {}, "verify": {}}
    nem.heal_all()
    try:
        c.wait_leader(timeout=60)
    except harness.TestFailure as e:
        hist.write({"type": "note", "what": f"final: no leader: {e}"})
    idx = 0
    for t in workload.TOPICS:
        for attempt in range(12):
            v = f"final-{t}-{attempt}"
            start = hist.now()
            res = workload.produce(c.brokers(), t, [v], print_index=True)
            e = {"type": "op", "client": "final", "kind": "final-write", "topic": t,
                 "values": [v], "start": start, "end": hist.now()}
            e.update(res)
            hist.write(e)
            if res["result"] == "ok" and res.get("indexes"):
                idx = max(idx, res["indexes"][0])
                break
            nem.check_crashes()
            time.sleep(2)
    final["barrier_index"] = idx
    fdir = os.path.join(out_dir, "final")
    for i, n in c.nodes.items():
        os.makedirs(os.path.join(fdir, f"node{i}"), exist_ok=True)
        for t in workload.TOPICS:
            ok = False
            deadline = time.monotonic() + 90
            last = ""
            while time.monotonic() < deadline:
                rc, o, err = workload.run_cli(
                    ["--timeout", 10000, "consume", t, "--node", n.client, "--min-index", idx,
                     "--format", "%o\\t%k\\t%v\\n"], n.client, timeout=120)
                if rc == 0:
                    with open(os.path.join(fdir, f"node{i}", f"{t}.tsv"), "w") as f:
                        f.write(o)
                    write_start(n, t, os.path.join(fdir, f"node{i}", f"{t}.start"))
                    ok = True
                    break
                last = err.strip()[-300:]
                gap = GAP_RE.search(err)
                if gap and time.monotonic() < deadline - 45:
                    # The node installed a snapshot and is backfilling the
                    # history before it from a peer: give it time.
                    time.sleep(1)
                    continue
                if gap:
                    # Still lacking that history after 45 s with every fault
                    # healed: read what it has; the checker reports the gap
                    # as a backfill violation.
                    lo, hi = int(gap.group(1)), int(gap.group(2))
                    rc, o, err = workload.run_cli(
                        ["--timeout", 10000, "consume", t, "--node", n.client, "--min-index", idx,
                         "--from", hi + 1, "--format", "%o\\t%k\\t%v\\n"], n.client, timeout=120)
                    if rc == 0:
                        with open(os.path.join(fdir, f"node{i}", f"{t}.tsv"), "w") as f:
                            f.write(o)
                        with open(os.path.join(fdir, f"node{i}", f"{t}.gap"), "w") as f:
                            f.write(f"{lo} {hi + 1}\n")
                        ok = True
                        break
                    last = err.strip()[-300:]
                nem.check_crashes()
                time.sleep(1)
            if not ok:
                final["unread"].append(f"node {i} topic {t}: {last}")
    for i, n in c.nodes.items():
        if n.alive():
            n.expected_up = False
            n.proc.send_signal(signal.SIGCONT)
            n.proc.send_signal(signal.SIGTERM)
            try:
                final["sigterm_exit"][str(i)] = n.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                final["sigterm_exit"][str(i)] = "no exit within 30 s"
                c.kill(i)
        else:
            final["sigterm_exit"][str(i)] = f"not running (exit {n.proc.returncode})"
    for i, n in c.nodes.items():
        rc, o, err = workload.run_cli(["log", "verify", n.data], c.brokers(), timeout=300)
        final["verify"][str(i)] = {"rc": rc, "out": (o + err).strip()[-1000:]}
    final["faults"] = nem.counts
    final["skipped"] = nem.skipped
    hist.write(final)
    return final


def write_start(n, topic, path):
    """The start offset node @n reports for @topic (its TOPIC_LIST answer),
    into @path: every node must report the same one (checker: start)."""
    rc, o, err = workload.run_cli(["--timeout", 10000, "topic", "list"], n.client, timeout=60)
    for line in o.splitlines():
        f = line.split()
        if rc == 0 and len(f) >= 4 and f[0] == topic:
            with open(path, "w") as out:
                out.write(f[2] + "\n")


def main():
    ap = argparse.ArgumentParser(description="tally fault-injection suite")
    ap.add_argument("--short", action="store_true",
                    help="about 2-3 minutes (the default; what make check runs)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of workload and faults (short mode: 100)")
    ap.add_argument("--seed", type=int, default=None, help="RNG seed (default: from the clock)")
    ap.add_argument("--out", default=None,
                    help="directory for history.jsonl, final logs and node logs (default: a "
                         "new temporary directory, removed after a clean run)")
    ap.add_argument("--keep", action="store_true", help="keep --out's default dir even if clean")
    ap.add_argument("--no-faults", action="store_true", help="workload only (a baseline)")
    ap.add_argument("--faults", default=",".join(nemesis_mod.KINDS),
                    help="comma-separated fault kinds (default: all: %(default)s)")
    a = ap.parse_args()
    # make check's or a user's SIGTERM still kills the nodes and unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.duration is not None and a.short:
        ap.error("--short and --duration do not go together")
    duration = a.duration if a.duration is not None else 100.0
    seed = a.seed if a.seed is not None else int(time.time()) % 100000
    kinds = [k for k in a.faults.split(",") if k]
    for k in kinds:
        if k not in nemesis_mod.KINDS:
            ap.error(f"unknown fault kind {k!r}")
    if not (os.access(harness.TALLY, os.X_OK) and os.access(harness.TALLYD, os.X_OK)):
        print(f"SKIP: {harness.TALLY} or {harness.TALLYD} is not built")
        return 77
    out_dir = a.out or tempfile.mkdtemp(prefix=f"tally-fault-{seed}-")
    os.makedirs(out_dir, exist_ok=True)
    print(f"# fault suite: seed {seed}, {duration:.0f} s of workload, faults "
          f"{'none' if a.no_faults else ','.join(kinds)}; output in {out_dir}", flush=True)
    t0 = time.monotonic()
    hist = workload.History(os.path.join(out_dir, "history.jsonl"), t0)
    hist.write({"type": "note", "what": "start", "seed": seed, "duration": duration,
                "argv": sys.argv})
    c = FaultCluster(name=f"fault-{seed}", extra_args=NODE_ARGS,
                     tmpfs_node=3 if "disk" in kinds and not a.no_faults else None)
    clocks = None
    if "clock" in kinds and not a.no_faults:
        clocks = nemesis_mod.setup_clocks(c)
    try:
        if c.tmpfs_node:
            hist.write({"type": "note", "what": f"node {c.tmpfs_node} data on a 64m tmpfs"})
        c.start(timeout=60)
        for t in workload.TOPICS:
            # the clock nemesis's topic keeps 30 minutes in 4 KiB segments:
            # retention runs on its sealed segments, but a run is far
            # shorter, so any record gone is a violation (lost, start)
            extra = (["--policy", "delete", "--retention-ms", "1800000", "--segment-bytes",
                      "4096"] if t == workload.CLOCK_TOPIC else [])
            c.tally_ok("topic", "create", t, *extra)
        stop_at = time.monotonic() + duration
        clients = workload.start_clients(c, hist, seed, duration)
        nem = nemesis_mod.Nemesis(c, hist, seed, stop_at if not a.no_faults else 0,
                                  kinds=kinds, clocks=clocks)
        nem.start()
        last = time.monotonic()
        while any(cl.is_alive() for cl in clients) or nem.is_alive():
            time.sleep(1)
            if time.monotonic() - last >= 15:
                last = time.monotonic()
                print(f"# {last - t0:5.0f}s: {hist.n} history entries, faults "
                      f"{dict(sorted(nem.counts.items()))}", flush=True)
            if time.monotonic() > stop_at + 180:
                hist.write({"type": "note", "what": "client or nemesis crashed: still "
                                                    "running 180 s after the end"})
                break
        final_phase(c, hist, nem, out_dir)
    except Exception as e:
        import traceback
        hist.write({"type": "note", "what": f"runner crashed: {e!r}",
                    "trace": traceback.format_exc()})
        traceback.print_exc()
    finally:
        ldir = os.path.join(out_dir, "node-logs")
        os.makedirs(ldir, exist_ok=True)
        for i, n in c.nodes.items():
            if n.log_file is not None:
                n.log_file.flush()
            try:
                shutil.copy(n.log_path, os.path.join(ldir, f"node{i}.log"))
            except OSError:
                pass
        save_data_dirs(c, out_dir)
        c.cleanup()
        hist.close()
    print(f"# run finished after {time.monotonic() - t0:.0f} s; checking", flush=True)
    rep = checker.check(out_dir)
    bad = rep.total()
    if bad or a.out or a.keep:
        print(f"# history, final logs, node logs and data kept in {out_dir}", flush=True)
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 1 if bad else 0


def save_data_dirs(c, out_dir, limit=512 << 20):
    """Copy every node's data directory (stopped by now) into OUT/data/nodeN,
    so that a run the checker fails can be examined file by file (tally log
    dump, keys.ckpt, Raft segments); a clean run removes OUT with them. Best
    effort: skipped above @limit bytes in all, and on any copy error."""
    total = 0
    for n in c.nodes.values():
        for root, _dirs, files in os.walk(n.data):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    if total > limit:
        print(f"# data directories not kept: {total >> 20} MiB", flush=True)
        return
    for i, n in c.nodes.items():
        try:
            shutil.copytree(n.data, os.path.join(out_dir, "data", f"node{i}"), symlinks=True)
        except (OSError, shutil.Error) as e:
            print(f"# data directory of node {i} not kept: {e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
