#!/usr/bin/python3
# checker.py - checks a fault-suite run: its history and the final logs.
#
#   /usr/bin/python3 test/fault/checker.py RUN_DIR
#
# RUN_DIR holds history.jsonl (operations, faults, notes and one "final"
# entry, see workload.py and run.py) and final/node<N>/<topic>.tsv, each
# line OFFSET<TAB>KEY<TAB>VALUE as `tally consume --node N --format
# '%o\t%k\t%v\n'` printed it after every fault was healed and every node had
# applied a write made after the workload stopped.
#
# Violations (each printed; exit status 1 if there is any):
#   lost          an acknowledged write missing from a node's final log, or
#                 found there at another offset than the one acknowledged
#   duplicate     a value (all are unique) present more than once in a log
#   phantom       a write tally said failed (not "may or may not") is present
#   unknown-value a record in a log that no operation of the history wrote
#   cas-double    two conditional appends acknowledged for the same key and
#                 expected version
#   cas-version   an acknowledged conditional append that is not version
#                 expect_version+1 of its key in the final log
#   replica       two nodes' logs differ at an offset both hold, or a node
#                 lacks records another one has
#   start         two nodes report different start offsets for a topic
#                 (final/node<N>/<topic>.start, from their topic lists)
#   ryw           a follower read with --min-index that did not return the
#                 reader's own acknowledged write
#   stream        a stream read (`consume -k --backward --linearizable`,
#                 the stream index) that returned a record other than the
#                 final log's record of that key at that version, versions
#                 not descending by one, or fewer versions than conditional
#                 appends acknowledged before it started
#   order         real-time order: write A acknowledged before write B
#                 started, yet A's offset is not below B's
#   crash         a node exited although nothing stopped it (outside a
#                 disk-full episode)
#   verify        `tally log verify` found damage in a stopped node's data
#   shutdown      a node did not exit 0 on the final SIGTERM
#   disk          during a disk-full episode the node exited 0 or died by a
#                 signal, its log did not verify, or it did not serve again
#   replace       a wiped node could not be replaced ('tally member replace'
#                 did not succeed within its bound)
#   incomplete    the run could not read a node's final log, or a client or
#                 the nemesis crashed (a bug of the suite)

import json
import os
import sys
from collections import Counter, defaultdict


def load_history(path):
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    entries.append({"type": "note", "what": f"unparseable line {n}"})
    return entries


def load_log(path):
    recs = []
    with open(path, "rb") as f:
        for line in f.read().decode("utf-8", "replace").split("\n"):
            if not line:
                continue
            off, key, val = (line.split("\t", 2) + ["", ""])[:3]
            recs.append((int(off), key, val))
    return recs


class Report:
    def __init__(self):
        self.violations = defaultdict(list)
        self.info = []

    def bad(self, kind, msg):
        self.violations[kind].append(msg)

    def total(self):
        return sum(len(v) for v in self.violations.values())


def excerpt(e):
    keep = {k: e[k] for k in ("seq", "client", "kind", "start", "end", "result", "rc",
                              "values", "offsets", "key", "expect_version", "msg", "node",
                              "offset", "min_index", "records") if k in e}
    return json.dumps(keep, sort_keys=True)


def check(run_dir, out=sys.stdout, max_print=20):
    rep = Report()
    hist = load_history(os.path.join(run_dir, "history.jsonl"))
    ops = [e for e in hist if e.get("type") == "op"]
    faults = [e for e in hist if e.get("type") == "fault"]
    finals = [e for e in hist if e.get("type") == "final"]
    final = finals[-1] if finals else {}
    for e in hist:
        if e.get("type") == "note" and "crashed" in e.get("what", ""):
            rep.bad("incomplete", e["what"])
    if not finals:
        rep.bad("incomplete", "history has no final entry: the run did not finish")

    # -- final logs ------------------------------------------------------------
    fdir = os.path.join(run_dir, "final")
    logs = defaultdict(dict)  # topic -> node -> [(off, key, val)]
    # topic -> node -> (lo, hi): offsets lo..hi-1 were still not on that node
    # (which installed a snapshot) 45 s after the faults ended: backfill from
    # its peers should have brought them. A "backfill" violation; the node
    # is checked from hi on, and the other nodes must hold everything.
    gaps = defaultdict(dict)
    starts = defaultdict(dict)  # topic -> node -> start offset it reported
    if os.path.isdir(fdir):
        for nd in sorted(os.listdir(fdir)):
            if not nd.startswith("node"):
                continue
            for fn in sorted(os.listdir(os.path.join(fdir, nd))):
                if fn.endswith(".tsv"):
                    logs[fn[:-4]][int(nd[4:])] = load_log(os.path.join(fdir, nd, fn))
                if fn.endswith(".start"):
                    with open(os.path.join(fdir, nd, fn)) as f:
                        starts[fn[:-6]][int(nd[4:])] = int(f.read().split()[0])
                if fn.endswith(".gap"):
                    with open(os.path.join(fdir, nd, fn)) as f:
                        lo, hi = (int(x) for x in f.read().split())
                    gaps[fn[:-4]][int(nd[4:])] = (lo, hi)
    for t, per in sorted(gaps.items()):
        for n, (lo, hi) in sorted(per.items()):
            rep.bad("backfill", f"topic {t} node {n}: offsets {lo}..{hi - 1} still missing "
                    f"after the faults ended (it installed a snapshot; backfill did not bring "
                    f"them)")
    for t, per in gaps.items():
        if per and len(per) == len(logs.get(t, {})):
            rep.bad("lost", f"topic {t}: every node lacks part of the history ({dict(per)})")
    for miss in final.get("unread", []):
        rep.bad("incomplete", f"final log not read: {miss}")
    topics = set(logs)
    for e in ops:
        if e.get("topic"):
            topics.add(e["topic"])
    for t in sorted(topics):
        if not logs.get(t):
            rep.bad("incomplete", f"no final log of topic {t} from any node")

    # -- replicas agree --------------------------------------------------------
    for t, per in sorted(logs.items()):
        nodes = sorted(per)
        for a in nodes:
            for b in nodes:
                if a >= b:
                    continue
                la, lb = per[a], per[b]
                cut = max(gaps[t].get(a, (0, 0))[1], gaps[t].get(b, (0, 0))[1])
                if cut:
                    la = [r for r in la if r[0] >= cut]
                    lb = [r for r in lb if r[0] >= cut]
                for ra, rb in zip(la, lb):
                    if ra != rb:
                        rep.bad("replica", f"topic {t}: node {a} has {ra!r}, node {b} has "
                                           f"{rb!r} at the same position")
                        break
                if len(la) != len(lb):
                    rep.bad("replica", f"topic {t}: node {a} holds {len(la)} records, node {b} "
                                       f"{len(lb)} (after every node applied the final write)")

    for t, per in sorted(starts.items()):
        if len(set(per.values())) > 1:
            rep.bad("start", f"topic {t}: the nodes report different start offsets "
                             f"{dict(sorted(per.items()))} at the same applied index")

    # -- writes vs logs --------------------------------------------------------
    writer = {}  # value -> (op, index in op)
    for e in ops:
        if e["kind"] in ("produce", "batch", "cas", "ryw-write", "final-write"):
            for i, v in enumerate(e.get("values", [])):
                writer[v] = (e, i)
    extra_ok = final.get("external_values", [])  # written outside the history (probes)
    for t, per in sorted(logs.items()):
        for node, recs in sorted(per.items()):
            at = {}
            count = Counter()
            for off, key, val in recs:
                at[off] = (key, val)
                count[val] += 1
            for val, c in count.items():
                if c > 1:
                    rep.bad("duplicate", f"topic {t} node {node}: value {val!r} appears {c} times"
                                         + (f"; written by {excerpt(writer[val][0])}"
                                            if val in writer else ""))
            for off, key, val in recs:
                if val not in writer and not any(val.startswith(p) for p in extra_ok):
                    rep.bad("unknown-value", f"topic {t} node {node}: offset {off} holds "
                                             f"{val!r}, which no operation wrote")
            for e in ops:
                if e.get("topic") != t or e["kind"] not in writer_kinds:
                    continue
                vals = e.get("values", [])
                offs = e.get("offsets", [])
                for i, v in enumerate(vals):
                    if i < len(offs):  # printed offsets are committed ones
                        o = offs[i]
                        lo, hi = gaps[t].get(node, (0, 0))
                        if lo <= o < hi:
                            continue  # reported below as a known gap
                        if at.get(o, (None, None))[1] != v:
                            where = [r[0] for r in recs if r[2] == v]
                            rep.bad("lost", f"topic {t} node {node}: acknowledged {v!r} at offset "
                                            f"{o}, log has {at.get(o)!r} there"
                                            f"{f' and {v!r} at {where}' if where else ''}; "
                                            f"op {excerpt(e)}")
                    elif e["result"] == "fail" and count[v]:
                        rep.bad("phantom", f"topic {t} node {node}: {v!r} is in the log although "
                                           f"tally said the write failed: {excerpt(e)}")

    # -- conditional appends ---------------------------------------------------
    by_version = defaultdict(list)
    for e in ops:
        if e["kind"] == "cas" and e["result"] == "ok":
            by_version[(e["key"], e["expect_version"])].append(e)
    for (key, n), es in sorted(by_version.items()):
        if len(es) > 1:
            rep.bad("cas-double", f"key {key} version {n}: {len(es)} appends acknowledged: "
                                  + " | ".join(excerpt(x) for x in es))
    for t, per in sorted(logs.items()):
        for node, recs in sorted(per.items()):
            if node in gaps[t]:
                continue  # versions count from offset 0: not knowable past a gap
            versions = defaultdict(int)
            ver_at = {}
            for off, key, val in recs:
                if key:
                    versions[key] += 1
                    ver_at[off] = (key, versions[key], val)
            for (key, n), es in by_version.items():
                for e in es:
                    if e.get("topic") != t or not e.get("offsets"):
                        continue
                    got = ver_at.get(e["offsets"][0])
                    if got is not None and got != (key, n + 1, e["values"][0]):
                        rep.bad("cas-version", f"topic {t} node {node}: offset "
                                               f"{e['offsets'][0]} is {got} (key, version, "
                                               f"value), want ({key!r}, {n + 1}, "
                                               f"{e['values'][0]!r}): {excerpt(e)}")

    # -- read your writes ------------------------------------------------------
    for e in ops:
        if e["kind"] != "ryw-read" or e["result"] != "ok":
            continue
        recs = e.get("records", [])
        if not recs or recs[0] != [e["offset"], e["value"]]:
            rep.bad("ryw", f"node {e['node']} answered a read with --min-index "
                           f"{e['min_index']} --from {e['offset']} without the reader's write "
                           f"{e['value']!r}: {excerpt(e)}")

    # -- stream reads (the stream index) -----------------------------------------
    for e in ops:
        if e["kind"] != "stream-read" or e["result"] != "ok":
            continue
        t, key = e["topic"], e["key"]
        per = logs.get(t, {})
        node = next((n for n in sorted(per) if n not in gaps[t]), None)
        if node is None:
            continue  # versions count from offset 0: not knowable past a gap
        of_key = [(off, val) for off, k, val in per[node] if k == key]
        recs = e.get("records", [])
        acked = sum(1 for x in ops if x["kind"] == "cas" and x["result"] == "ok"
                    and x.get("key") == key and x["end"] < e["start"])
        if not recs or recs[0][0] < acked:
            rep.bad("stream", f"read of {key} on node {e['node']} shows version "
                              f"{recs[0][0] if recs else 0}, but {acked} conditional appends "
                              f"were acknowledged before it started: {excerpt(e)}")
        for i, (ver, off, val) in enumerate(recs):
            want = tuple(of_key[ver - 1]) if 0 < ver <= len(of_key) else None
            if (off, val) != want or (i > 0 and ver != recs[i - 1][0] - 1):
                rep.bad("stream", f"read of {key} on node {e['node']}: version {ver} is "
                                  f"{(off, val)!r}, the final log of node {node} has {want!r}: "
                                  f"{excerpt(e)}")
                break

    # -- real-time order of acknowledged writes per topic -----------------------
    for t in sorted(topics):
        acked = [e for e in ops if e.get("topic") == t and e["result"] == "ok"
                 and e.get("offsets") and e["kind"] in writer_kinds]
        by_end = sorted(acked, key=lambda e: e["end"])
        by_start = sorted(acked, key=lambda e: e["start"])
        best = None  # op with the highest max offset among those ended so far
        j = 0
        for b in by_start:
            while j < len(by_end) and by_end[j]["end"] < b["start"]:
                a = by_end[j]
                if best is None or max(a["offsets"]) > max(best["offsets"]):
                    best = a
                j += 1
            if best is not None and max(best["offsets"]) >= min(b["offsets"]):
                rep.bad("order", f"topic {t}: {excerpt(best)} was acknowledged before "
                                 f"{excerpt(b)} started, yet got a higher offset")

    # -- nodes -----------------------------------------------------------------
    for f in faults:
        if f["kind"] == "replace" and f.get("rc") != 0:
            rep.bad("replace", f"node {f['node']} was wiped and could not be replaced: rc "
                               f"{f.get('rc')}: {f.get('err')}")
        if f["kind"] == "crash":
            rep.bad("crash", f"node {f['node']} exited with status {f['exit']} at "
                             f"{f['time']}s; log tail: {f.get('log_tail')}")
        if f["kind"] == "disk":
            ew = f.get("exit_while_full")
            if ew is not None and ew <= 0:
                rep.bad("disk", f"node {f['node']} {'exited 0' if ew == 0 else f'died by signal {-ew}'}"
                                f" while its disk was full: {f.get('log_tail')}")
            if f.get("verify_rc") != 0:
                rep.bad("disk", f"node {f['node']}'s data did not verify after a full disk: "
                                f"{f.get('verify_out')}")
            if not f.get("served_again"):
                rep.bad("disk", f"node {f['node']} did not serve again after its disk was "
                                f"freed: {f.get('served_why')}")
    for node, rc in sorted(final.get("sigterm_exit", {}).items()):
        if rc != 0:
            rep.bad("shutdown", f"node {node} exited {rc} after the final SIGTERM")
    for node, v in sorted(final.get("verify", {}).items()):
        if v.get("rc") != 0:
            rep.bad("verify", f"tally log verify of node {node}: exit {v.get('rc')}: "
                              f"{v.get('out')}")

    # -- summary ---------------------------------------------------------------
    p = lambda s="": print(s, file=out)  # noqa: E731
    cnt = Counter((e["kind"], e["result"]) for e in ops)
    p("operations (kind result count):")
    for (k, r), c in sorted(cnt.items()):
        p(f"  {k:10} {r:8} {c}")
    p(f"  total {len(ops)}")
    fc = Counter(f["kind"] for f in faults)
    p("faults injected: " + (", ".join(f"{k}={c}" for k, c in sorted(fc.items())) or "none"))
    detail = Counter()
    for f in faults:
        if f["kind"] in ("kill", "pause", "partition", "corrupt"):
            detail[f"{f['kind']}/{f.get('role')}"] += 1
        if f["kind"] == "corrupt":
            detail[f"corrupt/{f.get('how')}" + ("/after-term" if f.get("stopped") not in
                                                 (None, "killed") else "")
                   + ("/skipped" if f.get("skipped") else "")] += 1
        if f["kind"] == "partition":
            detail[f"partition/{f.get('mode')}"] += 1
    if detail:
        p("  by detail: " + ", ".join(f"{k}={c}" for k, c in sorted(detail.items())))
    unknown_vals = [v for v, (e, i) in writer.items() if e["result"] == "unknown"]
    present = set()
    for per in logs.values():
        for recs in per.values():
            present.update(r[2] for r in recs)
    p(f"writes with unknown outcome: {len(unknown_vals)} values, "
      f"{sum(1 for v in unknown_vals if v in present)} of them were written")
    for t, per in sorted(logs.items()):
        p(f"final log {t}: " + ", ".join(f"node {n}: {len(r)} records"
                                         for n, r in sorted(per.items())))
    for kind in ("lost", "duplicate", "phantom", "unknown-value", "cas-double", "cas-version",
                 "replica", "start", "ryw", "stream", "order", "crash", "verify", "shutdown", "disk",
                 "backfill", "replace", "incomplete"):
        p(f"{kind:14} {len(rep.violations.get(kind, []))}")
    for kind, msgs in sorted(rep.violations.items()):
        for m in msgs[:max_print]:
            p(f"VIOLATION {kind}: {m}")
        if len(msgs) > max_print:
            p(f"VIOLATION {kind}: ... and {len(msgs) - max_print} more")
    p(f"checker: {rep.total()} violations")
    return rep


writer_kinds = ("produce", "batch", "cas", "ryw-write", "final-write")


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: checker.py RUN_DIR", file=sys.stderr)
        return 2
    rep = check(argv[1])
    return 1 if rep.total() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
