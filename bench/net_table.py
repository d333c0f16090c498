#!/usr/bin/env python3
"""net_table.py DIR [BUILD...] - the tables of bench/net.sh.

DIR holds raw-CONFIG-ROUND.txt files, each the raw lines of one
bench/matrix.sh round (BASE, TALLY and SLOWDISK lines). Prints, as Markdown,
the median of every case per configuration with its ratio to the baseline
configuration of the same run ("loop" for the network, "equal" for the
disks), and the goals of issue 27 against those figures. With BUILD names
(bench/net.sh's BINS), the configurations are CONFIG@BUILD: one set of
tables per build, then every build against the first one.
"""
import glob
import os
import re
import statistics
import sys

NET = ["loop", "proxy0", "d0.5", "d1", "d2"]
DISK = ["equal", "slow"]

# (label, case, field, "higher" or "lower" is better, format)
ROWS = [
    ("c1: 1 record in flight, 100 B: p50 ms", "c1", "p50_ms", "lower", "%.3f"),
    ("c1: p99 ms", "c1", "p99_ms", "lower", "%.2f"),
    ("c1: records/s", "c1", "msgs/s", "higher", "%.0f"),
    ("c2: batched 100 B, records/s", "c2", "msgs/s", "higher", "%.0f"),
    ("c3: batched 1 KiB, MB/s", "c3", "MB/s", "higher", "%.1f"),
    ("c6: 16 producers x 1 in flight, records/s", "c6", "msgs/s", "higher", "%.0f"),
    ("c6: p50 ms", "c6", "p50_ms", "lower", "%.2f"),
    ("c4: follower consume 100 B, records/s", "c4_100", "msgs/s", "higher", "%.0f"),
    ("c4: follower consume 1 KiB, MB/s", "c4_1k", "MB/s", "higher", "%.0f"),
    ("c5: failover, SIGKILL -> next ack, s", "c5", "failover_s", "lower", "%.2f"),
    ("c5: new leader ready, s", "c5", "leader_ready_s", "lower", "%.2f"),
    ("leader peak RSS, MiB", "mem", "leader_hwm_kib", "lower", "%.0f"),
    ("node 3 peak RSS, MiB", "mem", "hwm_kib_3", "lower", "%.0f"),
    ("loopback ping-pong p50 us", "BASE", "rtt_p50_us", "lower", "%.1f"),
    ("disk fdatasync 4 KiB p50 ms", "BASE", "p50_ms", "lower", "%.3f"),
]


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def load(d):
    data = {}  # config -> case -> list of field dicts
    for path in sorted(glob.glob(os.path.join(d, "raw-*-*.txt"))):
        m = re.match(r"raw-(.+)-(\d+)\.txt$", os.path.basename(path))
        if not m:
            continue
        cfg = m.group(1)
        for line in open(path):
            if line.startswith("TALLY"):
                f = fields(line)
                data.setdefault(cfg, {}).setdefault(f["case"], []).append(f)
            elif line.startswith("BASE") or line.startswith("SLOWDISK"):
                data.setdefault(cfg, {}).setdefault(line.split()[0], []).append(fields(line))
    return data


def values(data, cfg, case, key):
    out = []
    for f in data.get(cfg, {}).get(case, []):
        try:
            v = float(f[key])
        except (KeyError, ValueError):
            continue
        if v == v:
            out.append(v / 1024.0 if "kib" in key else v)
    return out


def med(data, cfg, case, key):
    v = values(data, cfg, case, key)
    return statistics.median(v) if v else float("nan")


def table(data, cfgs, base, header=None):
    cfgs = [c for c in cfgs if c in data]
    if not cfgs:
        return
    n = max(len(data[c].get("c2", [])) for c in cfgs)
    print("| case (medians of %d rounds) | %s |" % (n, " | ".join(header or cfgs)))
    print("|---|%s" % ("---|" * len(cfgs)))
    for label, case, key, _, fmt in ROWS:
        cells = []
        b = med(data, base, case, key)
        for c in cfgs:
            v = med(data, c, case, key)
            if v != v:
                cells.append("-")
                continue
            cell = fmt % v
            if c != base and b == b and b > 0:
                cell += " (%.2fx)" % (v / b)
            cells.append(cell)
        print("| %s | %s |" % (label, " | ".join(cells)))
    print()


def goals(data, at=""):
    out = []
    # Each goal is judged against loopback, as issue 27 asks, and also
    # against the proxy at 0 ms ("proxy0"): the proxy's own CPU (two more
    # loopback TCP hops per message, on the same two cores as the nodes) is
    # no part of a real network, and proxy0 carries it without the delay.
    lp50 = med(data, "loop" + at, "c1", "p50_ms")
    pp50 = med(data, "proxy0" + at, "c1", "p50_ms")
    for d in ("0.5", "1", "2"):
        cfg = "d" + d + at
        if cfg not in data:
            continue
        one_way = float(d)
        limit = lp50 + 2 * (2 * one_way) + 0.3
        p50 = med(data, cfg, "c1", "p50_ms")
        line = ("- one in flight at %s ms one way: p50 %.3f ms, goal <= loopback %.3f + 2 x %.1f"
                " + 0.3 = %.3f ms: %s" % (d, p50, lp50, 2 * one_way, limit,
                                          "met" if p50 <= limit else "NOT met"))
        if pp50 == pp50:
            line += " (against proxy0's p50 %.3f: %s)" % (
                pp50, "met" if p50 <= pp50 + 4 * one_way + 0.3 else "NOT met")
        out.append(line)
    if "d1" + at in data:
        for case, key, what in (("c2", "msgs/s", "100 B"), ("c3", "MB/s", "1 KiB")):
            x = med(data, "d1" + at, case, key)
            r = x / med(data, "loop" + at, case, key)
            rp = x / med(data, "proxy0" + at, case, key)
            out.append("- batched %s at 1 ms: %.2fx loopback, goal >= 0.8x: %s" % (
                what, r, "met" if r >= 0.8 else "NOT met") + (" (%.2fx proxy0)" % rp if rp == rp else ""))
        fo = med(data, "d1" + at, "c5", "failover_s")
        out.append("- failover at 1 ms: %.2f s, goal <= 1.5 s: %s"
                   % (fo, "met" if fo <= 1.5 else "NOT met"))
    slow, equal = "slow" + at, "equal" + at
    if slow in data and equal in data:
        for case, key, what in (("c2", "msgs/s", "100 B"), ("c3", "MB/s", "1 KiB")):
            r = med(data, slow, case, key) / med(data, equal, case, key)
            out.append("- slow follower, batched %s: %.2fx three equal nodes, goal >= 0.8x: %s"
                       % (what, r, "met" if r >= 0.8 else "NOT met"))
        out.append("- slow follower: leader peak RSS %.0f MiB (equal nodes %.0f MiB)"
                   % (med(data, slow, "mem", "leader_hwm_kib"),
                      med(data, equal, "mem", "leader_hwm_kib")))
        sd = data[slow].get("SLOWDISK", [])
        if sd:
            out.append("- slow disk: device %s writes/s of 4 KiB and %.0f MB/s; capped at %s/s and"
                       " %.0f MB/s; measured through the cap: %s writes/s (per round: %s)"
                       % (sd[0].get("device_iops"), float(sd[0].get("device_bps", 0)) / 1e6,
                          sd[0].get("cap_iops"), float(sd[0].get("cap_bps", 0)) / 1e6,
                          sd[0].get("throttled_iops"),
                          ", ".join(s.get("throttled_iops", "?") for s in sd)))
    print("\n".join(out))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    data = load(sys.argv[1])
    builds = sys.argv[2:] or [""]
    for b in builds:
        at = "@" + b if b else ""
        if b:
            print("\n### build %s\n" % b)
        print()
        table(data, [c + at for c in NET], "loop" + at, [c for c in NET if c + at in data])
        table(data, [c + at for c in DISK], "equal" + at, [c for c in DISK if c + at in data])
        goals(data, at)
    if len(builds) > 1:
        first = builds[0]
        for b in builds[1:]:
            print("\n### %s against %s, same run (ratio of medians, %s / %s)\n" % (b, first, b, first))
            cfgs = [c for c in NET + DISK if c + "@" + b in data and c + "@" + first in data]
            print("| case | %s |" % " | ".join(cfgs))
            print("|---|%s" % ("---|" * len(cfgs)))
            for label, case, key, _, fmt in ROWS:
                cells = []
                for c in cfgs:
                    x = med(data, c + "@" + b, case, key)
                    y = med(data, c + "@" + first, case, key)
                    cells.append((fmt % y) + " -> " + (fmt % x) + (" (%.2fx)" % (x / y) if y > 0 else "")
                                 if x == x and y == y else "-")
                print("| %s | %s |" % (label, " | ".join(cells)))


if __name__ == "__main__":
    main()
