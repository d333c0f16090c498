#!/usr/bin/python3
# test_checker.py - the fault suite's checker must catch violations: a clean
# hand-made run passes, and a doctored copy of it (lost, duplicated and
# phantom writes, a double conditional append, diverging replicas, a
# follower read without the reader's write, an out-of-order offset, a
# crash, a failed verify) is reported, category by category.
#
#   /usr/bin/python3 test/fault/test_checker.py        (no tallyd needed)

import io
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402


def op(seq, kind, start, end, result, values, offsets, topic="events", **kw):
    e = {"type": "op", "seq": seq, "client": 0, "kind": kind, "start": start, "end": end,
         "result": result, "values": values, "offsets": offsets, "topic": topic,
         "rc": 0 if result == "ok" else 1, "msg": ""}
    e.update(kw)
    return e


def clean_run():
    hist = [
        op(1, "produce", 0.0, 0.1, "ok", ["a"], [0]),
        op(2, "batch", 0.2, 0.3, "ok", ["b", "c"], [1, 2]),
        op(3, "produce", 0.2, 0.5, "unknown", ["d"], []),          # was written
        op(4, "produce", 0.6, 0.7, "unknown", ["e"], []),          # was not
        op(5, "produce", 0.6, 0.8, "fail", ["f"], []),
        op(6, "ryw-write", 0.9, 1.0, "ok", ["g"], [4], indexes=[9]),
        op(7, "ryw-read", 1.0, 1.1, "ok", [], [], node=2, write_seq=6, offset=4,
           min_index=9, value="g", records=[[4, "g"]]),
        op(8, "cas", 1.2, 1.3, "ok", ["k1"], [0], topic="accounts", key="x",
           expect_version=0),
        op(9, "cas", 1.2, 1.4, "fail", ["k2"], [], topic="accounts", key="x",
           expect_version=0, msg="condition failed: key x is at version 1, expected 0"),
        op(10, "cas", 1.5, 1.6, "ok", ["k3"], [1], topic="accounts", key="x",
           expect_version=1),
        op(13, "stream-read", 1.7, 1.8, "ok", [], [], topic="accounts", key="x", node=2,
           records=[[2, 1, "k3"], [1, 0, "k1"]]),
        {"type": "fault", "seq": 11, "kind": "kill", "node": 1, "role": "leader", "time": 0.5},
        {"type": "final", "seq": 12, "unread": [], "sigterm_exit": {"1": 0, "2": 0, "3": 0},
         "verify": {str(i): {"rc": 0, "out": "OK"} for i in (1, 2, 3)}},
    ]
    logs = {"events": [(0, "", "a"), (1, "", "b"), (2, "", "c"), (3, "", "d"), (4, "", "g")],
            "accounts": [(0, "x", "k1"), (1, "x", "k3")]}
    return hist, {n: {t: list(r) for t, r in logs.items()} for n in (1, 2, 3)}


def write_run(d, hist, logs):
    with open(os.path.join(d, "history.jsonl"), "w") as f:
        for e in hist:
            f.write(json.dumps(e) + "\n")
    for n, per in logs.items():
        os.makedirs(os.path.join(d, "final", f"node{n}"), exist_ok=True)
        for t, recs in per.items():
            with open(os.path.join(d, "final", f"node{n}", f"{t}.start"), "w") as f:
                f.write(f"{recs[0][0] if recs else 0}\n")
            with open(os.path.join(d, "final", f"node{n}", f"{t}.tsv"), "w") as f:
                for off, k, v in recs:
                    f.write(f"{off}\t{k}\t{v}\n")


def run_check(hist, logs):
    d = tempfile.mkdtemp(prefix="tally-checker-test-")
    try:
        write_run(d, hist, logs)
        out = io.StringIO()
        rep = checker.check(d, out=out)
        return rep, out.getvalue()
    finally:
        shutil.rmtree(d)


def main():
    failures = []

    hist, logs = clean_run()
    rep, text = run_check(hist, logs)
    if rep.total():
        failures.append(f"clean run reported violations:\n{text}")
    else:
        print("PASS clean history: 0 violations")

    # Each doctoring and the category it must produce.
    def lost(h, l):           # node 3 lost acknowledged "c" at offset 2
        del l[3]["events"][2]
        l[3]["events"] = [(i, k, v) for i, (_, k, v) in enumerate(l[3]["events"])]

    def duplicate(h, l):      # "b" twice on every node
        for n in l:
            l[n]["events"].append((5, "", "b"))

    def phantom(h, l):        # "f" failed, yet it is there
        for n in l:
            l[n]["events"].append((5, "", "f"))

    def cas_double(h, l):     # both appends expecting version 0 acknowledged
        h[8]["result"] = "ok"
        h[8]["offsets"] = [1]

    def replica(h, l):        # node 2 holds another value at offset 1
        l[2]["events"][1] = (1, "", "zz")

    def start(h, l):          # node 1's retention cut "a" that the others keep
        del l[1]["events"][0]

    def ryw(h, l):            # the follower answered without the write
        h[6]["records"] = []

    def order(h, l):          # "a" acknowledged before "b" started, yet later offset
        h[0]["offsets"] = [1]
        h[1]["offsets"] = [0, 2]
        for n in l:
            l[n]["events"][0] = (0, "", "b")
            l[n]["events"][1] = (1, "", "a")

    def stream_value(h, l):   # a stream read with another record at version 2
        h[10]["records"] = [[2, 1, "zz"], [1, 0, "k1"]]

    def stream_stale(h, l):   # a stream read that misses an acknowledged append
        h[10]["records"] = [[1, 0, "k1"]]

    def crash(h, l):
        h.insert(10, {"type": "fault", "seq": 99, "kind": "crash", "node": 2, "exit": -11,
                      "time": 0.7, "log_tail": []})

    def verify(h, l):
        h[-1]["verify"]["3"] = {"rc": 1, "out": "batch payload checksum mismatch"}

    cases = [(lost, "lost"), (duplicate, "duplicate"), (phantom, "phantom"),
             (cas_double, "cas-double"), (replica, "replica"), (start, "start"), (ryw, "ryw"),
             (order, "order"), (crash, "crash"), (verify, "verify"),
             (stream_value, "stream"), (stream_stale, "stream")]
    for fn, want in cases:
        hist, logs = clean_run()
        fn(hist, logs)
        rep, text = run_check(hist, logs)
        got = {k: len(v) for k, v in rep.violations.items() if v}
        if want not in got:
            failures.append(f"{fn.__name__}: checker did not report '{want}' (got {got}):\n{text}")
        else:
            print(f"PASS {fn.__name__}: reported {got}; e.g. VIOLATION {want}: "
                  f"{rep.violations[want][0][:160]}")
    for f in failures:
        print("FAIL " + f)
    print(f"{len(cases) + 1 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
