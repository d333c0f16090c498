# test_producer.py - the asynchronous producer of libtally (tally_producer_*)
# against a real 3-node cluster: offsets in send order, exactly once across
# a leader SIGKILL with many requests pipelined, and errors reported per
# record without disturbing the records around them.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_producer.py
#
# libtally is driven through ctypes in a child python (which preloads the
# sanitizer runtime in an ASan build), as in test_event_store.py.

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, libtally_child, parse_records, run_tests  # noqa: E402

TALLY_NOTFOUND = 5
TALLY_TOOLARGE = 11


# ---------------------------------------------------------------- the child

def child(lib_path, brokers, spec_json):
    """Produce per @spec with libtally's producer; print progress lines
    ('acked N') and finally one JSON line with every record's outcome."""
    import ctypes as C

    spec = json.loads(spec_json)

    class RecordIn(C.Structure):
        _fields_ = [("key", C.c_char_p), ("key_len", C.c_size_t),
                    ("value", C.c_char_p), ("value_len", C.c_size_t)]

    class Options(C.Structure):
        _fields_ = [("batch_bytes", C.c_size_t), ("linger_ms", C.c_int),
                    ("max_inflight", C.c_int), ("compress", C.c_int), ("timeout_ms", C.c_int)]

    class Ack(C.Structure):
        _fields_ = [("code", C.c_int), ("offset", C.c_uint64), ("raft_index", C.c_uint64),
                    ("errmsg", C.c_char_p), ("batch_index", C.c_uint32)]

    ACKFN = C.CFUNCTYPE(None, C.c_void_p, C.POINTER(Ack))
    lib = C.CDLL(lib_path)
    lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.tally_client_destroy.argtypes = [C.c_void_p]
    lib.tally_producer_options_init.argtypes = [C.POINTER(Options)]
    lib.tally_producer_create.argtypes = [C.c_void_p, C.POINTER(Options), C.POINTER(C.c_void_p)]
    lib.tally_producer_send.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(RecordIn), ACKFN,
                                        C.c_void_p]
    lib.tally_producer_poll.argtypes = [C.c_void_p, C.c_int]
    lib.tally_producer_flush.argtypes = [C.c_void_p]
    lib.tally_producer_errmsg.argtypes = [C.c_void_p]
    lib.tally_producer_errmsg.restype = C.c_char_p
    lib.tally_producer_destroy.argtypes = [C.c_void_p]

    cl = C.c_void_p()
    check(lib.tally_client_create(brokers.encode(), C.byref(cl)) == 0, "client_create")
    opts = Options()
    lib.tally_producer_options_init(C.byref(opts))
    for k, v in spec.get("options", {}).items():
        setattr(opts, k, v)
    prod = C.c_void_p()
    check(lib.tally_producer_create(cl, C.byref(opts), C.byref(prod)) == 0, "producer_create")

    sent = []     # (topic, value) per record, in send order
    acks = {}     # index -> [code, offset, errmsg]
    n_acked = [0]

    @ACKFN
    def on_ack(arg, ack):
        i = arg or 0
        a = ack.contents
        check(i not in acks, f"record {i} acknowledged twice")
        acks[i] = [a.code, a.offset, (a.errmsg or b"").decode("utf-8", "replace")]
        # Records of a batch come together and in order.
        check(a.batch_index == 0 or acks.get(i - 1, [None, None])[1] == a.offset - 1 or a.code,
              f"record {i}: batch_index {a.batch_index} but the previous ack differs")
        n_acked[0] += 1
        if n_acked[0] % 2000 == 0:
            print(f"acked {n_acked[0]}", flush=True)

    def send(topic, value):
        rec = RecordIn(None, 0, value, len(value))
        rc = lib.tally_producer_send(prod, topic.encode(), C.byref(rec), on_ack, len(sent))
        if rc == 0:
            sent.append((topic, value.decode("latin-1")[:40]))
        return rc

    send_rcs = []
    if spec["mode"] == "stream":
        # Send until the parent has killed the leader (it creates
        # spec["go_file"]) and then spec["after"] records more, so that the
        # kill lands while requests are in flight.
        after = None
        i = 0
        while i < spec["max"]:
            if after is None and i % 500 == 0 and os.path.exists(spec["go_file"]):
                after = i + spec["after"]
            if after is not None and i >= after:
                break
            check(send(spec["topic"], b"rec-%07d" % i) == 0, "send")
            i += 1
    else:
        for step in spec["plan"]:
            if step[0] == "flush":
                send_rcs.append(lib.tally_producer_flush(prod))
                continue
            topic, kind, n = step
            for _ in range(n):
                value = (b"big-" + b"x" * (700 << 10)) if kind == "big" else \
                        (b"bok-" + b"x" * (700 << 10)) if kind == "bigok" else \
                        (b"huge" * (5 << 20)) if kind == "huge" else b"rec-%07d" % len(sent)
                send_rcs.append(send(topic, value))
    rc = lib.tally_producer_flush(prod)
    msg = (lib.tally_producer_errmsg(prod) or b"").decode("utf-8", "replace")
    lib.tally_producer_destroy(prod)
    lib.tally_client_destroy(cl)
    print(json.dumps({"flush_rc": rc, "flush_msg": msg, "send_rcs": send_rcs,
                      "sent": sent, "acks": [acks.get(i) for i in range(len(sent))]}), flush=True)


def start_child(brokers, spec):
    lib, env = libtally_child()
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", lib, brokers,
                             json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_child(p, timeout=180):
    out, err = p.communicate(timeout=timeout)
    check(p.returncode == 0, f"producer child exited {p.returncode}: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def read_all(c, topic, node_id, n):
    return [(off, val.decode()) for off, val in parse_records(c.read_node(topic, node_id, n))]


# ---------------------------------------------------------------- the tests

def test_order_and_offsets():
    """20,000 records with 8 requests pipelined and small batches: every
    record is acknowledged with the offset it has in the log, in send
    order, and the log holds exactly those records."""
    with Cluster(name="producer-order") as c:
        c.start()
        c.tally_ok("topic", "create", "o")
        n = 20000
        res = finish_child(start_child(c.brokers(), {
            "mode": "plan", "plan": [["o", "small", n]],
            "options": {"batch_bytes": 700, "linger_ms": 1, "max_inflight": 8}}))
        check(res["flush_rc"] == 0, f"flush: {res['flush_rc']} {res['flush_msg']}")
        offsets = [a[1] for a in res["acks"]]
        check(all(a[0] == 0 for a in res["acks"]), "a record failed")
        check(offsets == list(range(n)), f"offsets not 0..{n - 1}: {offsets[:5]}...")
        for node in c.nodes:
            got = read_all(c, "o", node, n)
            check(len(got) == n, f"node {node} has {len(got)} records, want {n}")
            check([v for _o, v in got] == [f"rec-{i:07d}" for i in range(n)],
                  f"node {node}: records not in send order")


def test_kill_leader_pipelined_exactly_once():
    """SIGKILL the leader while the producer streams records with 16
    requests in flight: afterwards every record was acknowledged once,
    with consecutive offsets in send order, and the log holds each record
    exactly once, in order (retried batches were recognised, not written
    twice; lost answers were recovered)."""
    with Cluster(name="producer-kill") as c:
        old = c.start()
        c.tally_ok("topic", "create", "k")
        go = os.path.join(c.tmp, "go")
        p = start_child(c.brokers(), {
            "mode": "stream", "topic": "k", "go_file": go, "max": 2000000, "after": 30000,
            "options": {"batch_bytes": 400, "linger_ms": 0, "max_inflight": 16,
                        "timeout_ms": 60000}})
        # Wait until the producer is well under way, then kill the leader.
        acked = 0
        deadline = time.monotonic() + 60
        while acked < 20000 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("acked "):
                acked = int(line.split()[1])
        check(acked >= 20000, f"producer stalled before the kill ({acked} acked)")
        c.kill(old)
        with open(go, "w"):
            pass
        res = finish_child(p)
        n = len(res["sent"])
        check(res["flush_rc"] == 0, f"flush: {res['flush_rc']} {res['flush_msg']}")
        bad = [(i, a) for i, a in enumerate(res["acks"]) if a is None or a[0] != 0]
        check(not bad, f"{len(bad)} records failed, first {bad[:3]}")
        offsets = [a[1] for a in res["acks"]]
        check(offsets == list(range(n)),
              f"acknowledged offsets are not 0..{n - 1} in send order")
        new = c.wait_leader(not_id=old)
        for node in [i for i in c.nodes if i != old]:
            got = read_all(c, "k", node, n)
            check(len(got) == n, f"node {node} holds {len(got)} records, sent {n}")
            check([v for _o, v in got] == [f"rec-{i:07d}" for i in range(n)],
                  f"node {node}: a record is missing, duplicated or out of order")
        check(new != old, "no new leader")


def test_errors_per_record():
    """A topic that does not exist fails its records with NOTFOUND and a
    batch over the node's limit fails with TOOLARGE, while records of
    another topic pipelined with them, and records of the same topic sent
    right after the failed batch, are written in order. A record over the
    batch limit is refused by send itself."""
    with Cluster(name="producer-errors") as c:
        c.start()
        c.tally_ok("topic", "create", "ok")
        # Records share the fate of their batch, so the batch over the
        # node's 1 MiB limit is made of two 700 KiB records alone: the flush
        # closes the batch before them, and a third one does not fit
        # batch_bytes (1.5 MiB), which seals the first two.
        plan = [["ok", "small", 100], ["missing", "small", 50], ["ok", "small", 100],
                ["flush"], ["ok", "big", 2], ["ok", "bigok", 1], ["ok", "small", 100],
                ["missing", "small", 10], ["ok", "small", 100], ["ok", "huge", 1],
                ["ok", "small", 10]]
        res = finish_child(start_child(c.brokers(), {
            "mode": "plan", "plan": plan,
            "options": {"batch_bytes": 3 << 19, "linger_ms": 5, "max_inflight": 8}}))
        check(res["send_rcs"][250] == TALLY_NOTFOUND,
              f"flush after the missing topic's records: {res['send_rcs'][250]}")
        check(res["send_rcs"].count(TALLY_TOOLARGE) == 1 and
              sum(1 for r in res["send_rcs"] if r != 0) == 2,
              f"send of the 20 MiB record: want exactly one TOOLARGE, got {res['send_rcs'][-12:]}")
        check(res["flush_rc"] in (TALLY_NOTFOUND, TALLY_TOOLARGE),
              f"flush returned {res['flush_rc']} ({res['flush_msg']})")
        ok = []
        for (topic, value), a in zip(res["sent"], res["acks"]):
            check(a is not None, "a record got no acknowledgement")
            if topic == "missing":
                check(a[0] == TALLY_NOTFOUND, f"missing topic: code {a[0]} {a[2]}")
                check("missing" in a[2], f"message does not name the topic: {a[2]}")
            elif value.startswith("big-"):
                check(a[0] == TALLY_TOOLARGE, f"big batch: code {a[0]} {a[2]}")
            else:
                check(a[0] == 0, f"record {value} of ok failed: {a[0]} {a[2]}")
                ok.append((a[1], value))
        check([o for o, _v in ok] == list(range(len(ok))),
              f"offsets of topic ok not consecutive: {[o for o, _v in ok][:10]}...")
        got = [(o, v[:40]) for o, v in read_all(c, "ok", c.leader(), len(ok))]
        check(got == ok, "topic ok does not hold exactly the acknowledged records in order")


def test_no_cluster():
    """With no node reachable, every record fails (CONNECT, NOLEADER or
    TIMEOUT) after the producer's timeout, and flush says so."""
    with Cluster(name="producer-none") as c:
        res = finish_child(start_child(c.brokers(), {
            "mode": "plan", "plan": [["t", "small", 20]],
            "options": {"timeout_ms": 1500}}), timeout=120)
        check(res["flush_rc"] != 0, "flush succeeded with no cluster")
        codes = {a[0] for a in res["acks"]}
        check(codes and 0 not in codes, f"codes {codes}")
        check(all(a[2] for a in res["acks"]), "a failure without a message")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    run_tests([test_order_and_offsets, test_kill_leader_pipelined_exactly_once,
               test_errors_per_record, test_no_cluster])
