# test_exactly_once.py - idempotent produce across leader failover: every
# record written exactly once, in the producer's order.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_exactly_once.py

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, check, parse_records, run_tests, wait_until  # noqa: E402

N = 50000
CHUNK = 100


def test_kill_leader_exactly_once():
    """SIGKILL the leader while one `tally produce` (idempotent, retrying)
    writes 50,000 records: afterwards every record is present exactly once,
    in the producer's order, on every node."""
    with Cluster(name="exactly-once") as c:
        old = c.start()
        c.tally_ok("topic", "create", "ledger")
        proc = subprocess.Popen([TALLY, "-b", c.brokers(), "--timeout", "30000", "produce",
                                 "ledger"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        offsets = []

        def read_offsets():
            for line in proc.stdout:
                offsets.append(int(line))

        def write_records():
            # As fast as the producer takes them: requests go back to back,
            # so one is almost surely in flight when the leader dies.
            for start in range(0, N, CHUNK):
                proc.stdin.write("".join(f"rec-{i:06d}\n"
                                         for i in range(start, start + CHUNK)).encode())
            proc.stdin.close()

        reader = threading.Thread(target=read_offsets)
        writer = threading.Thread(target=write_records)
        reader.start()
        writer.start()
        wait_until(lambda: len(offsets) >= N // 3 or proc.poll() is not None, 60,
                   "a third of the records acknowledged")
        c.kill(old)
        rc = proc.wait(timeout=120)
        writer.join(timeout=10)
        reader.join(timeout=10)
        err = proc.stderr.read().decode(errors="replace")
        check(rc == 0, f"tally produce exited {rc}: {err}")
        check(offsets == list(range(N)),
              f"printed offsets are not 0..{N - 1} (got {len(offsets)}, first "
              f"{offsets[:3]}, last {offsets[-3:]})")
        new = c.wait_leader(not_id=old)
        want = [f"rec-{i:06d}".encode() for i in range(N)]
        survivors = [i for i in c.nodes if i != old]
        for i in survivors:
            recs = parse_records(c.read_node("ledger", i, N, ids=survivors))
            check([v for _, v in recs] == want,
                  f"node {i}: {len(recs)} records, want each of {N} exactly once in order")
        c.restart(old)
        recs = parse_records(c.read_node("ledger", old, N, timeout=60))
        check([v for _, v in recs] == want, f"restarted node {old} differs")
        print(f"#   {N} records exactly once across the failover; leader {old} -> {new}")


if __name__ == "__main__":
    run_tests([test_kill_leader_exactly_once])
