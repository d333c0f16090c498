#!/usr/bin/env python3
"""matrix_table.py RAW [PEER_RAW [REPS]] - the table of bench/matrix.sh.

RAW holds matrix.sh's TALLY and BASE lines; PEER_RAW is the raw results
file of ../shared/bench/peers/run-peers.sh from the same run (RESULT lines),
or empty. Prints medians and ratios as a Markdown table.
"""
import statistics, sys
raw = sys.argv[1]
peer_raw = sys.argv[2] if len(sys.argv) > 2 else ""
reps = sys.argv[3] if len(sys.argv) > 3 else "?"

def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)

tally = {}
base = []
for line in open(raw):
    f = fields(line)
    if line.startswith("TALLY"):
        tally.setdefault(f["case"], []).append(f)
    elif line.startswith("BASE"):
        base.append(f)

def med(rows, key):
    vals = [float(r[key]) for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")

peers = {}
disturbed = 0
if peer_raw:
    for line in open(peer_raw):
        if not line.startswith("RESULT"):
            continue
        f = fields(line)
        if f.get("disturbed") == "1":
            disturbed += 1
        peers.setdefault((f["peer"], f["mode"], f["size"]), []).append(f)

def peer(p, mode, size, key):
    rows = peers.get((p, mode, size), [])
    return med(rows, key) if rows else float("nan")

def ratio(a, b):
    return "%.2fx" % (a / b) if b == b and b > 0 and a == a else "-"

fs50 = med(base, "p50_ms")
rtt50 = med(base, "rtt_p50_us")
c1, c2, c3 = tally.get("c1", []), tally.get("c2", []), tally.get("c3", [])
c4a, c4b, c5 = tally.get("c4_100", []), tally.get("c4_1k", []), tally.get("c5", [])
js_sync = peer("nats", "sync", "100", "msgs_per_s")
js_sync50 = peer("nats", "sync", "100", "p50_us")
etcd_seq = peer("etcd", "seq", "100", "msgs_per_s")
etcd_seq50 = peer("etcd", "seq", "100", "p50_us")
js_async = peer("nats", "async", "100", "msgs_per_s")
js_async_mb = peer("nats", "async", "1024", "mb_per_s")
n_runs = len(c1)

print()
print("Medians of %d rounds (tally) and %s rounds (peers), same run." % (n_runs, reps if peer_raw else 0))
print("Baselines: disk write+fdatasync 4 KiB p50 %.3f ms; loopback ping-pong 100 B p50 %.1f us"
      % (fs50, rtt50))
print()
print("| case | tally | peers, same run | tally / peer | goal |")
print("|---|---|---|---|---|")
print("| 1 producer, 1 record in flight, 100 B | %.0f/s, p50 %.3f ms, p99 %.3f ms | JetStream sync %.0f/s (p50 %.3f ms); etcd %.0f/s (p50 %.3f ms) | %s JetStream, %s etcd; p50 = %.1fx disk fdatasync p50 | >= 1.0x JetStream, p99 <= 1 ms |"
      % (med(c1, "msgs/s"), med(c1, "p50_ms"), med(c1, "p99_ms"), js_sync, js_sync50 / 1e3,
         etcd_seq, etcd_seq50 / 1e3, ratio(med(c1, "msgs/s"), js_sync),
         ratio(med(c1, "msgs/s"), etcd_seq), med(c1, "p50_ms") / fs50 if fs50 else 0))
print("| batched produce, 100 B | %.0f/s (%.1f MB/s), p50 %.1f ms, p99 %.1f ms | JetStream async (256 in flight) %.0f/s | %s | >= 500,000/s |"
      % (med(c2, "msgs/s"), med(c2, "MB/s"), med(c2, "p50_ms"), med(c2, "p99_ms"), js_async,
         ratio(med(c2, "msgs/s"), js_async)))
print("| batched produce, 1 KiB | %.1f MB/s (%.0f/s), p50 %.1f ms, p99 %.1f ms | JetStream async %.1f MB/s | %s | >= 60 MB/s |"
      % (med(c3, "MB/s"), med(c3, "msgs/s"), med(c3, "p50_ms"), med(c3, "p99_ms"), js_async_mb,
         ratio(med(c3, "MB/s"), js_async_mb)))
print("| consume from a follower, 100 B | %.0f/s (%.0f MB/s) | (JetStream ordered consumer, published: 0.78 M/s of 128 B) | %s | >= 2,000,000/s |"
      % (med(c4a, "msgs/s"), med(c4a, "MB/s"), ratio(med(c4a, "msgs/s"), 780000)))
print("| consume from a follower, 1 KiB | %.0f MB/s (%.0f/s) | - | - | >= 1 GB/s |"
      % (med(c4b, "MB/s"), med(c4b, "msgs/s")))
print("| failover: SIGKILL leader -> next ack | %.2f s (runs: %s; new leader ready after %.2f s) | raft default timeouts (1 s election): 1.7-1.9 s | - | <= 1 s |"
      % (med(c5, "failover_s"), ", ".join("%.2f" % float(r["failover_s"]) for r in c5),
         med(c5, "leader_ready_s")))
if peer_raw and disturbed:
    print()
    print("%d peer runs were marked disturbed by other processes (see %s)." % (disturbed, peer_raw))
