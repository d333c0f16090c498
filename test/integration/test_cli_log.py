# test_cli_log.py - the offline `tally log verify|dump` tools against the data
# directories of a real cluster that was stopped cleanly.
#
# Run by `make check` (TALLY_BUILD_DIR set), or by hand:
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_cli_log.py [test_name...]

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, no_server, run_tally, run_tests  # noqa: E402


def segment_files(root, topic=None):
    """Segment files (*.seg) under @root, those of @topic first, largest
    first."""
    segs = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".seg"):
                p = os.path.join(dirpath, f)
                segs.append(p)
    def key(p):
        in_topic = topic is not None and topic in os.path.relpath(p, root).split(os.sep)
        return (not in_topic, -os.path.getsize(p))
    return sorted(segs, key=key)


def stopped_cluster(c, topic, values, keyed=()):
    """Start @c, write @values (and KEY<TAB>VALUE lines @keyed) to @topic,
    wait until every node has them, and stop every node cleanly."""
    c.start()
    c.tally_ok("topic", "create", topic)
    r = c.tally_ok("produce", topic, input=b"\n".join(values) + b"\n")
    check(len(r.out.split()) == len(values), f"produce: {r!r}")
    if keyed:
        r = c.tally_ok("produce", topic, "--keyed", input=b"\n".join(keyed) + b"\n")
    total = len(values) + len(keyed)
    for i in c.nodes:
        c.read_node(topic, i, total)
    for i in c.nodes:
        c.stop(i)


def test_log_help():
    """`tally log` has help, and bad usage exits 2."""
    r = run_tally(["log", "--help"], timeout=10)
    check(r.rc == 0 and r.out.strip(), f"log --help: {r!r}")
    r = run_tally(["log", "verify"], timeout=10)
    check(r.rc == 2, f"log verify without DIR: want exit 2: {r!r}")


test_log_help = no_server(test_log_help)


def test_verify_clean_and_dump():
    """After a clean stop, verify passes on every node's data dir and on a
    topic folder, and dump prints every record."""
    values = [f"event-{k:05d}".encode() for k in range(2000)]
    keyed = [f"acct-{k % 7}\tdeposit-{k}".encode() for k in range(100)]
    with Cluster(name="logverify") as c:
        stopped_cluster(c, "books", values, keyed)
        for i, n in c.nodes.items():
            r = run_tally(["log", "verify", n.data], timeout=60)
            check(r.rc == 0, f"verify of node {i}'s clean data dir: {r!r}")
        segs = segment_files(c.nodes[1].data, "books")
        check(segs, f"no *.seg files under {c.nodes[1].data}")
        topic_dir = os.path.dirname(segs[0])
        r = run_tally(["log", "verify", topic_dir], timeout=60)
        check(r.rc == 0, f"verify of topic folder {topic_dir}: {r!r}")

        r = run_tally(["log", "dump", c.nodes[2].data, "--topic", "books"], timeout=60)
        check(r.rc == 0, f"dump: {r!r}")
        for v in values[:5] + values[-5:] + [b"deposit-99", b"acct-3"]:
            check(v in r.out, f"dump does not show {v!r}: {r.out[:500]!r}")
        missing = [v for v in values if v not in r.out]
        check(not missing, f"dump misses {len(missing)} records, e.g. {missing[:3]!r}")

        r = run_tally(["log", "dump", c.nodes[2].data, "--topic", "books", "--from", "1990"],
                      timeout=60)
        check(r.rc == 0 and b"event-01995" in r.out, f"dump --from: {r!r}")


def test_verify_finds_flipped_byte():
    """A byte flipped in a segment of a stopped node makes verify exit 1 and
    name the file; the other nodes still verify clean."""
    values = [f"payload-{k:05d}-".encode() + b"x" * 50 for k in range(3000)]
    with Cluster(name="logflip") as c:
        stopped_cluster(c, "flip", values)
        data = c.nodes[3].data
        segs = segment_files(data, "flip")
        check(segs, f"no *.seg files under {data}")
        seg = segs[0]
        size = os.path.getsize(seg)
        check(size > 200, f"{seg} is only {size} bytes")
        # Inside the first of the three batches: damage in the middle of a
        # segment, never mistakable for a torn tail or preallocated space.
        pos = min(200, size // 2)
        with open(seg, "r+b") as f:
            f.seek(pos)
            b = f.read(1)
            f.seek(pos)
            f.write(bytes([b[0] ^ 0x5a]))
        r = run_tally(["log", "verify", data], timeout=60)
        check(r.rc == 1, f"verify after flipping byte {pos} of {seg}: want exit 1: {r!r}")
        said = r.out + r.err
        check(os.path.basename(seg).encode() in said,
              f"verify does not name {os.path.basename(seg)}: {r!r}")
        print(f"#   verify said: {said.decode('utf-8', 'replace').strip()[:300]}")
        r = run_tally(["log", "verify", c.nodes[1].data], timeout=60)
        check(r.rc == 0, f"verify of untouched node 1: {r!r}")


if __name__ == "__main__":
    run_tests([
        test_log_help,
        test_verify_clean_and_dump,
        test_verify_finds_flipped_byte,
    ])
