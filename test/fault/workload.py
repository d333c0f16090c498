# workload.py - concurrent clients of the fault suite, and the history file.
#
# Every client is a thread that runs `tally` CLI processes (each `tally
# produce` is an idempotent producer that retries across failover). Every
# operation becomes one JSON line in the history: what was asked, start and
# end (time.monotonic() seconds since the run started), and the result:
#   "ok"       acknowledged, with the offsets (and Raft index) printed;
#   "fail"     tally said it was not written (exit 1 without "may or may
#              not", e.g. condition failed, no leader found);
#   "unknown"  tally said it may or may not have been written, or the process
#              had to be killed, or exited otherwise.
# Values are unique in the whole run ("c<client>-<n>"), so the checker can
# find every write in the final logs.
#
# Kinds:
#   produce   one record, `tally produce events VALUE`
#   batch     2-6 records from stdin, one batch, one producer
#   cas       `tally produce accounts -k KEY --expect-version N VALUE`; the
#             clients race on a few keys and learn the actual version from
#             CONDITION_FAILED's message
#   ryw-write `tally produce events --print-index VALUE`, then
#   ryw-read  `tally consume events --node RANDOM --min-index IDX --from OFF -n 1`
#             must show the write
#   stream-read `tally consume accounts -k KEY --backward -n 3 --linearizable
#             --node RANDOM --format '%V\t%o\t%v\n'` (the stream index, issue
#             18): the last records of a cas key with their stream versions

import json
import random
import re
import subprocess
import threading
import time

import faultlib

TOPIC = "events"
CAS_TOPIC = "accounts"
CAS_KEYS = ["acct-0", "acct-1", "acct-2"]
CLOCK_TOPIC = "clocked"  # written by the clock nemesis (nemesis.py)
TOPICS = [TOPIC, CAS_TOPIC, CLOCK_TOPIC]

PRODUCE_TIMEOUT_MS = 5000
PROC_TIMEOUT = 40


class History:
    """Thread-safe JSON-lines writer; every entry gets a sequence number and
    a "type" ("op", "fault", "note" or "final")."""

    def __init__(self, path, t0):
        self.f = open(path, "w")
        self.lock = threading.Lock()
        self.t0 = t0
        self.n = 0

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    def write(self, entry):
        with self.lock:
            self.n += 1
            entry = dict(entry, seq=self.n)
            self.f.write(json.dumps(entry, sort_keys=True) + "\n")
            self.f.flush()
            return self.n

    def close(self):
        with self.lock:
            self.f.close()


def run_cli(args, brokers, input=None, timeout=PROC_TIMEOUT):
    """(rc, stdout str, stderr str); rc None when the process was killed
    after @timeout seconds."""
    cmd = [faultlib.harness.TALLY, "-b", brokers] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode(errors="replace"), \
            f"killed after {timeout}s: " + (e.stderr or b"").decode(errors="replace")
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def classify(rc, err):
    if rc == 0:
        return "ok"
    if rc == 1 and "may or may not" not in err:
        return "fail"
    return "unknown"


def produce(brokers, topic, values, key=None, expect_version=None, print_index=False):
    """Run one `tally produce`; returns a dict of the op's result fields."""
    args = ["--timeout", PRODUCE_TIMEOUT_MS, "produce", topic]
    if key is not None:
        args += ["-k", key]
    if expect_version is not None:
        args += ["--expect-version", expect_version]
    if print_index:
        args.append("--print-index")
    if len(values) == 1:
        rc, out, err = run_cli(args + [values[0]], brokers)
    else:
        rc, out, err = run_cli(args, brokers, input="".join(v + "\n" for v in values).encode())
    offsets, indexes = [], []
    for line in out.splitlines():
        parts = line.split("\t")
        try:
            offsets.append(int(parts[0]))
            if len(parts) > 1:
                indexes.append(int(parts[1]))
        except ValueError:
            pass
    res = {"rc": rc, "result": classify(rc, err), "offsets": offsets, "msg": err.strip()[-400:]}
    if indexes:
        res["indexes"] = indexes
    if rc == 0 and len(offsets) != len(values):
        res["result"] = "unknown"
        res["msg"] += f" [fault suite: exit 0 but {len(offsets)} offsets for {len(values)} values]"
    return res


class Client(threading.Thread):
    def __init__(self, cid, role, cluster, hist, seed, stop_at):
        super().__init__(name=f"client-{cid}", daemon=True)
        self.cid = cid
        self.role = role
        self.c = cluster
        self.h = hist
        self.rng = random.Random(seed)
        self.stop_at = stop_at
        self.n = 0
        self.versions = {k: 0 for k in CAS_KEYS}
        self.error = None

    def value(self):
        self.n += 1
        return f"c{self.cid}-{self.n}"

    def op(self, kind, fields, fn):
        start = self.h.now()
        res = fn()
        entry = {"type": "op", "client": self.cid, "kind": kind, "start": start,
                 "end": self.h.now()}
        entry.update(fields)
        entry.update(res)
        return self.h.write(entry), entry

    def run(self):
        try:
            while time.monotonic() < self.stop_at:
                getattr(self, "do_" + self.role)()
                time.sleep(self.rng.uniform(0, 0.02))
        except Exception as e:  # a bug of the suite: make it visible
            self.error = repr(e)
            self.h.write({"type": "note", "client": self.cid, "what": f"client crashed: {e!r}"})

    def do_producer(self):
        brokers = self.c.brokers()
        if self.rng.random() < 0.6:
            vals = [self.value()]
            self.op("produce", {"topic": TOPIC, "values": vals},
                    lambda: produce(brokers, TOPIC, vals))
        else:
            vals = [self.value() for _ in range(self.rng.randint(2, 6))]
            self.op("batch", {"topic": TOPIC, "values": vals},
                    lambda: produce(brokers, TOPIC, vals))

    def do_cas(self):
        key = self.rng.choice(CAS_KEYS)
        n = self.versions[key]
        vals = [self.value()]
        _, e = self.op("cas", {"topic": CAS_TOPIC, "key": key, "expect_version": n,
                               "values": vals},
                       lambda: produce(self.c.brokers(), CAS_TOPIC, vals, key=key,
                                       expect_version=n))
        if e["result"] == "ok":
            self.versions[key] = n + 1
        else:
            m = re.search(r"is at version (\d+)", e["msg"])
            if m:
                self.versions[key] = int(m.group(1))
            # unknown: keep n; the next attempt either succeeds (nothing was
            # written) or fails with the actual version
        if self.rng.random() < 0.3:
            self.stream_read(key)

    def stream_read(self, key):
        node = self.rng.choice(list(self.c.nodes))

        def read():
            rc, out, err = run_cli(["--timeout", 5000, "consume", CAS_TOPIC, "-k", key,
                                    "--backward", "-n", 3, "--linearizable", "--node",
                                    self.c.nodes[node].client, "--format", "%V\\t%o\\t%v\\n"],
                                   self.c.brokers())
            recs = []
            for line in out.splitlines():
                ver, off, v = line.split("\t", 2)
                recs.append([int(ver), int(off), v])
            return {"rc": rc, "result": "ok" if rc == 0 else "fail", "records": recs,
                    "msg": err.strip()[-400:]}
        self.op("stream-read", {"topic": CAS_TOPIC, "key": key, "node": node}, read)

    def do_ryw(self):
        vals = [self.value()]
        wid, w = self.op("ryw-write", {"topic": TOPIC, "values": vals},
                         lambda: produce(self.c.brokers(), TOPIC, vals, print_index=True))
        if w["result"] != "ok" or not w.get("indexes"):
            return
        node = self.rng.choice(list(self.c.nodes))
        off, idx = w["offsets"][0], w["indexes"][0]

        def read():
            rc, out, err = run_cli(["--timeout", 5000, "consume", TOPIC, "--node",
                                    self.c.nodes[node].client, "--min-index", idx,
                                    "--from", off, "-n", 1, "--format", "%o\\t%v\\n"],
                                   self.c.brokers())
            recs = []
            for line in out.splitlines():
                o, _, v = line.partition("\t")
                recs.append([int(o), v])
            return {"rc": rc, "result": "ok" if rc == 0 else "fail", "records": recs,
                    "msg": err.strip()[-400:]}
        self.op("ryw-read", {"topic": TOPIC, "node": node, "write_seq": wid, "offset": off,
                             "min_index": idx, "value": vals[0]}, read)


ROLES = ["producer", "producer", "cas", "cas", "cas", "ryw", "ryw"]


def start_clients(cluster, hist, seed, seconds, roles=ROLES):
    stop_at = time.monotonic() + seconds
    clients = [Client(i, r, cluster, hist, seed * 1000 + i, stop_at) for i, r in enumerate(roles)]
    for cl in clients:
        cl.start()
    return clients
