# test_groups.py - consumer group positions on a real three-node cluster:
# a position belongs to one incarnation of its topic (a deleted and created
# again topic starts every group afresh, backups carry only live
# positions), a commit past the end is refused, a position that retention
# left behind follows --reset-policy, and tally group list|describe|reset|
# delete; the group calls of libtally through ctypes.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_groups.py [TEST...]

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, check, libtally_child, run_tests, wait_until  # noqa: E402

SETTINGS = ["--set", "retention_interval_ms=200"]


def offsets(r):
    return [int(ln.split(b"\t")[0]) for ln in r.out.split(b"\n") if ln]


def produce(c, topic, values):
    """Write @values and wait until every node holds them, so a read from
    any node sees them."""
    r = c.tally_ok("produce", topic, input="".join(v + "\n" for v in values).encode())
    last = int(r.text.split()[-1])
    for i in c.nodes:
        c.read_node(topic, i, 1)
        wait_until(lambda i=i: offsets(c.consume(topic, node_id=i))[-1:] == [last], 30,
                   f"node {i} to hold offset {last} of {topic}")


def test_recreated_topic_starts_groups_afresh():
    """issue 26.1: a group at 5 on a topic deleted and created again reads
    the new topic from 0 (it skipped new-1..new-5), and a group at 10 on a
    new topic of 3 records reads them (it failed with 'offset 10 is outside
    0..3')."""
    with Cluster(name="grp-recreate") as c:
        c.start()
        c.tally_ok("topic", "create", "recr2")
        produce(c, "recr2", [f"old-{i}" for i in range(5)])
        r = c.tally_ok("consume", "recr2", "--group", "billing", "--format", "%o\\t%v\\n")
        check(offsets(r) == list(range(5)), f"first read: {r!r}")
        c.tally_ok("topic", "delete", "recr2")
        c.tally_ok("topic", "create", "recr2")
        produce(c, "recr2", [f"new-{i}" for i in range(8)])
        r = c.tally_ok("consume", "recr2", "--group", "billing", "--format", "%o\\t%v\\n")
        check(offsets(r) == list(range(8)),
              f"the group on the new recr2 printed offsets {offsets(r)}, want 0..7: {r!r}")

        c.tally_ok("topic", "create", "short")
        produce(c, "short", [f"s-{i}" for i in range(12)])
        c.tally_ok("consume", "short", "--group", "billing", "-n", "10")
        c.tally_ok("topic", "delete", "short")
        c.tally_ok("topic", "create", "short")
        produce(c, "short", ["a", "b", "c"])
        r = c.tally("consume", "short", "--group", "billing", "--format", "%o\\t%v\\n")
        check(r.rc == 0 and offsets(r) == [0, 1, 2],
              f"the group on the new, shorter topic: {r!r}")


def test_reset_reads_the_leader():
    """A reset to latest, earliest or a time right after the topic was
    deleted and created again, asked through a follower that has not
    applied that yet: the position comes from the leader (0 on the new
    topic), not from the follower's old topic (20, which the commit then
    refused as past the end; or "topic not found" between the two). The
    follower catches up within milliseconds of its SIGCONT, so the race is
    run 12 times: the old code failed in about one round in three (CI's
    ASan run hit it through libtally, test_group_calls_through_libtally)."""
    with Cluster(name="grp-reset-fresh") as c:
        leader = c.start()
        follower = next(i for i in c.nodes if i != leader)
        c.tally_ok("topic", "create", "rf")
        produce(c, "rf", [f"old-{i}" for i in range(20)])
        for round in range(12):
            to = ("latest", "earliest", "@0")[round % 3]
            # The follower misses the delete and the create...
            c.pause(follower)
            c.tally_ok("topic", "delete", "rf", ids=[leader])
            c.tally_ok("topic", "create", "rf", ids=[leader])
            c.resume(follower)
            # ...and is asked at once, before it catches up.
            r = c.tally("group", "reset", f"g{round}", "rf", "--to", to, ids=[follower])
            check(r.rc == 0 and r.text.strip().endswith("position 0 (new)"),
                  f"round {round}, reset to {to} through node {follower}: {r!r}")
            produce(c, "rf", [f"new-{i}" for i in range(20)])


def test_group_consume_through_a_lagging_follower():
    """`tally consume T --group G` read from a follower that has not
    applied the latest records yet prints them all: the position comes from
    the leader, and the read waits for the leader's index (it printed
    nothing, or part, and exited 0: the follower said the topic ended
    there). The follower catches up within milliseconds of its SIGCONT, so
    the race is run 8 times."""
    with Cluster(name="grp-lagging") as c:
        leader = c.start()
        follower = next(i for i in c.nodes if i != leader)
        c.tally_ok("topic", "create", "lag")
        produce(c, "lag", ["first"])
        c.tally_ok("consume", "lag", "--group", "g")  # the group is at 1
        end = 1
        for round in range(8):
            c.pause(follower)
            c.tally_ok("produce", "lag", ids=[leader],
                       input="".join(f"r{round}-{i}\n" for i in range(20)).encode())
            c.resume(follower)
            r = c.tally("consume", "lag", "--group", "g", "--node", c.nodes[follower].client,
                        ids=[follower])
            check(r.rc == 0 and offsets(r) == list(range(end, end + 20)),
                  f"round {round}: read through node {follower}: {r!r}")
            end += 20


def test_backup_carries_only_live_positions():
    """issue 26.1: a backup after a topic was deleted and created again
    holds no position of the deleted topic."""
    with Cluster(name="grp-backup") as c:
        c.start()
        c.tally_ok("topic", "create", "t")
        produce(c, "t", ["1", "2", "3", "4"])
        c.tally_ok("consume", "t", "--group", "old")
        c.tally_ok("topic", "delete", "t")
        c.tally_ok("topic", "create", "t")
        produce(c, "t", ["x"])
        c.tally_ok("topic", "create", "u")
        produce(c, "u", ["y", "z"])
        c.tally_ok("consume", "u", "--group", "live")
        bdir = os.path.join(c.tmp, "backup")
        c.tally_ok("backup", "--to", bdir, "--node", c.nodes[c.wait_leader()].client)
        with open(os.path.join(bdir, "MANIFEST")) as f:
            groups = [ln.split()[1:] for ln in f if ln.startswith("group ")]
        check(groups == [["live", "u", "2"]], f"backup group lines: {groups}")


def test_group_behind_retention():
    """issue 26.2: a group whose position retention removed goes on at the
    topic's start by default (saying what was lost), stops with a message
    naming the group, the gap and the reset command under
    --reset-policy error, and 'tally group reset' moves it."""
    with Cluster(name="grp-retention", extra_args=SETTINGS) as c:
        c.start()
        c.tally_ok("topic", "create", "rg", "--policy", "delete", "--retention-ms", "1000",
                   "--segment-bytes", "4096")
        produce(c, "rg", [f"a-{i}-" + "x" * 400 for i in range(40)])
        for g, n in (("billing", 2), ("strict", 2), ("other", 3)):
            c.tally_ok("consume", "rg", "--group", g, "-n", n)

        def topic_start(ids=None):
            info = [ln.split() for ln in c.tally_ok("topic", "list", ids=ids).text.splitlines()[1:]]
            return [int(x[2]) for x in info if x[0] == "rg"][0]

        def start():
            c.tally_ok("produce", "rg", "tick-" + "y" * 400)
            # Retention runs on each node by itself: wait until every node
            # removed the first segments, not only the one that answers.
            return all(topic_start(ids=[i]) > 3 for i in c.nodes)
        wait_until(start, 60, "retention to remove the first segments of rg", interval=0.5)
        first = topic_start()
        # The wait can end right after the tick that opened the segment at
        # `first`: then nothing is stored past `first`, and a group reset to
        # first + 1 is at the topic's end, where consume -n 1 rightly prints
        # nothing. Write records past it; these short ones stay in the
        # active segment, which retention never removes, so `first` holds.
        produce(c, "rg", ["late-1", "late-2"])
        check(topic_start() == first, f"retention moved rg's start past {first} again")

        r = c.tally("consume", "rg", "--group", "billing", "--format", "%o\\t%v\\n")
        check(r.rc == 0, f"the default policy did not go on: {r!r}")
        got = offsets(r)
        check(got and got[0] >= first, f"it began at {got[:1]}, the topic starts at {first}")
        check("removed by retention" in r.errtext, f"nothing said of the lost records: {r!r}")

        d = c.tally_ok("group", "describe", "strict").text
        check("rg" in d and "below the start" in d, f"describe: {d!r}")
        r = c.tally("consume", "rg", "--group", "strict", "--reset-policy", "error")
        check(r.rc == 1, f"--reset-policy error did not stop: {r!r}")
        for want in ("strict", "offset 2", "tally group reset strict rg --to earliest"):
            check(want in r.errtext, f"the message lacks {want!r}: {r.errtext!r}")

        # reset by hand: earliest, an offset, latest, past the end
        r = c.tally_ok("group", "reset", "other", "rg", "--to", "earliest")
        check("position 3 ->" in r.text, f"reset earliest: {r!r}")
        r = c.tally_ok("consume", "rg", "--group", "other", "-n", "1", "--from", "beginning")
        check("only place a new group" in r.errtext and "tally group reset other rg" in r.errtext,
              f"--from with a stored position says nothing: {r!r}")
        r = c.tally_ok("group", "reset", "other", "rg", "--to", str(first + 1))
        r = c.tally_ok("consume", "rg", "--group", "other", "-n", "1", "--format", "%o\\n")
        check(r.text.strip() == str(first + 1), f"after reset to {first + 1}: {r!r}")
        c.tally_ok("group", "reset", "other", "rg", "--to", "latest")
        d = c.tally_ok("group", "describe", "other").text.splitlines()
        check(len(d) == 2 and d[1].split()[4] == "0", f"lag after reset latest: {d}")
        r = c.tally("group", "reset", "other", "rg", "--to", "99999999")
        check(r.rc == 1 and "past the end" in r.errtext, f"reset past the end: {r!r}")
        r = c.tally("group", "reset", "other", "rg", "--to", "yesterday")
        check(r.rc == 2, f"reset to a bad TIME: {r!r}")


def test_group_list_and_delete():
    """tally group list names each group once with its topic count;
    delete forgets a position, and the next consume starts afresh."""
    with Cluster(name="grp-cli") as c:
        c.start()
        for t in ("a", "b"):
            c.tally_ok("topic", "create", t)
            produce(c, t, ["1", "2", "3"])
        c.tally_ok("consume", "a", "--group", "g1")
        c.tally_ok("consume", "b", "--group", "g1", "-n", "1")
        c.tally_ok("consume", "a", "--group", "g2", "-n", "2")
        rows = [ln.split() for ln in c.tally_ok("group", "list").text.splitlines()[1:]]
        check(rows == [["g1", "2"], ["g2", "1"]], f"group list: {rows}")
        d = [ln.split() for ln in c.tally_ok("group", "describe", "g1").text.splitlines()[1:]]
        check(d == [["a", "3", "0", "3", "0"], ["b", "1", "0", "3", "2"]], f"describe: {d}")
        c.tally_ok("group", "delete", "g1", "a")
        r = c.tally_ok("consume", "a", "--group", "g1", "--format", "%o\\n")
        check(r.text.split() == ["0", "1", "2"], f"after delete: {r!r}")
        c.tally_ok("group", "delete", "g2")
        r = c.tally("group", "describe", "g2")
        check(r.rc == 1 and "no position" in r.errtext, f"describe after delete: {r!r}")
        r = c.tally("group", "delete", "g2")
        check(r.rc == 1 and "not found" in r.errtext, f"delete twice: {r!r}")


# The libtally half: one child python drives libtally through ctypes and
# prints what each call returned.
def ctypes_child(lib_path, brokers):
    import ctypes as C

    class Position(C.Structure):
        _fields_ = [("group", C.c_char * 256), ("topic", C.c_char * 256),
                    ("topic_id", C.c_uint64), ("offset", C.c_uint64),
                    ("start_offset", C.c_uint64), ("next_offset", C.c_uint64)]

    lib = C.CDLL(lib_path)
    lib.tally_client_create.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
    lib.tally_client_destroy.argtypes = [C.c_void_p]
    lib.tally_errmsg.argtypes = [C.c_void_p]
    lib.tally_errmsg.restype = C.c_char_p
    lib.tally_topic_create.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p]
    lib.tally_topic_delete.argtypes = [C.c_void_p, C.c_char_p]
    lib.tally_group_commit.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.c_uint64]
    lib.tally_group_fetch.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p,
                                      C.POINTER(C.c_uint64), C.POINTER(C.c_int)]
    cl = C.c_void_p()
    assert lib.tally_client_create(brokers.encode(), C.byref(cl)) == 0
    out = {}

    def fetch(group, topic):
        off, found = C.c_uint64(), C.c_int()
        rc = lib.tally_group_fetch(cl, group, topic, C.byref(off), C.byref(found))
        return [rc, found.value, off.value]

    out["past_end"] = lib.tally_group_commit(cl, b"g", b"lt", 9999)
    out["at_end"] = lib.tally_group_commit(cl, b"g", b"lt", 3)
    out["fetch"] = fetch(b"g", b"lt")
    assert lib.tally_topic_delete(cl, b"lt") == 0
    assert lib.tally_topic_create(cl, b"lt", None) == 0
    out["after_recreate"] = fetch(b"g", b"lt")

    # The calls added with the topic id (absent from older libraries).
    try:
        lib.tally_group_list
    except AttributeError as e:
        out["missing"] = str(e)
        print(json.dumps(out))
        return
    ps, n = C.POINTER(Position)(), C.c_size_t()
    lib.tally_group_list.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p,
                                     C.POINTER(C.POINTER(Position)), C.POINTER(C.c_size_t)]
    lib.tally_group_commit_at.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.c_uint64,
                                          C.c_uint64]
    lib.tally_group_reset.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p, C.c_int, C.c_int64,
                                      C.POINTER(C.c_uint64)]
    lib.tally_group_delete.argtypes = [C.c_void_p, C.c_char_p, C.c_char_p]
    libc = C.CDLL(None)
    libc.free.argtypes = [C.c_void_p]
    assert lib.tally_group_commit(cl, b"g", b"lt", 0) == 0
    assert lib.tally_group_list(cl, b"g", None, C.byref(ps), C.byref(n)) == 0
    old_id = ps[0].topic_id
    out["list"] = [(ps[i].topic.decode(), ps[i].offset, ps[i].next_offset) for i in range(n.value)]
    libc.free(ps)
    assert lib.tally_topic_delete(cl, b"lt") == 0
    assert lib.tally_topic_create(cl, b"lt", None) == 0
    # a commit bound to the deleted incarnation is refused
    out["stale_commit"] = lib.tally_group_commit_at(cl, b"g", b"lt", old_id, 0)
    out["stale_msg"] = (lib.tally_errmsg(cl) or b"").decode()
    got = C.c_uint64(77)
    out["reset_latest"] = [lib.tally_group_reset(cl, b"g", b"lt", 1, 0, C.byref(got)), got.value]
    out["reset_past"] = lib.tally_group_reset(cl, b"g", b"lt", 2, 5, None)
    out["delete"] = lib.tally_group_delete(cl, b"g", None)
    out["delete_again"] = lib.tally_group_delete(cl, b"g", None)
    lib.tally_client_destroy(cl)
    print(json.dumps(out))


def test_group_calls_through_libtally():
    """issue 26.1 through libtally: a commit past the end is refused, a
    recreated topic has no position, a commit bound to a deleted
    incarnation is refused; list, reset and delete."""
    with Cluster(name="grp-lib") as c:
        c.start()
        c.tally_ok("topic", "create", "lt")
        produce(c, "lt", ["1", "2", "3"])
        lib, env = libtally_child()
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--ctypes-child", lib,
                            c.brokers()], env=env, capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, f"ctypes child exited {p.returncode}: {p.stdout} {p.stderr}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        OUT_OF_RANGE, NOTFOUND = 15, 5
        check(out["past_end"] == OUT_OF_RANGE, f"commit 9999 on a topic of 3: {out}")
        check(out["at_end"] == 0 and out["fetch"] == [0, 1, 3], f"commit at the end: {out}")
        check(out["after_recreate"] == [0, 0, 0], f"position on the recreated topic: {out}")
        check("missing" not in out, f"libtally lacks a group call: {out}")
        check(out["list"] == [["lt", 0, 0]], f"list: {out}")
        check(out["stale_commit"] == NOTFOUND and "created again" in out["stale_msg"],
              f"stale commit: {out}")
        check(out["reset_latest"] == [0, 0], f"reset latest: {out}")
        check(out["reset_past"] == OUT_OF_RANGE, f"reset past the end: {out}")
        check(out["delete"] == 0 and out["delete_again"] == NOTFOUND, f"delete: {out}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ctypes-child":
        ctypes_child(sys.argv[2], sys.argv[3])
        sys.exit(0)
    run_tests([test_recreated_topic_starts_groups_afresh, test_reset_reads_the_leader,
               test_group_consume_through_a_lagging_follower,
               test_backup_carries_only_live_positions,
               test_group_behind_retention, test_group_list_and_delete,
               test_group_calls_through_libtally])
