# test_slow_follower.py - a cluster whose follower 3 writes its disk ten
# times slower than the others (the leader and follower 2 form the
# majority), scaled down from bench/net.sh's slow-follower case. Asserts
# only correctness: every acknowledged record is on every node at the
# offset it was acknowledged with, and the three replicas are identical
# once the slow node has caught up. Prints its figures (rates, how far
# node 3 fell behind, how long it took to catch up, the leader's peak RSS);
# performance is measured by bench/net.sh, not here.
#
# How node 3 is made slow: as root, its data directory is an ext4 image on
# a loop device (direct I/O), and node 3 runs in a blkio cgroup that caps
# its writes to that device at a tenth of the rate measured just before
# (4 KiB O_DSYNC writes per second and bytes per second), as
# bench/slowdisk.sh does, and at most 50 writes/s and 4 MiB/s so that this
# small load makes it fall behind on a fast device too. Without root, loop devices or the blkio
# controller, node 3 is instead stopped (SIGSTOP) 90 ms of every 100 ms
# while the writes run: slow at everything, not only its disk, but still
# a follower the majority must not wait for. The mode is printed;
# TALLY_SLOW_FOLLOWER_MODE=pause forces the second one.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_slow_follower.py

import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Cluster, check, parse_records, run_tests,  # noqa: E402
                     wait_until)

BLKIO = "/sys/fs/cgroup/blkio"
WRITERS = 4
RECORDS_PER_WRITER = 1500
CAP_BPS = 4 << 20  # the slow node's write cap: at most this (and a tenth)
CAP_IOPS = 50


def dd_rate(args):
    """Bytes/s that dd reports for @args, or 0."""
    p = subprocess.run(["dd"] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    m = re.search(rb"^(\d+) bytes .* copied, ([0-9.]+) s", p.stdout, re.M)
    return int(int(m.group(1)) / float(m.group(2))) if m and float(m.group(2)) > 0 else 0


class SlowDisk:
    """Node @node's data directory on a loop-mounted ext4 image, and a blkio
    cgroup capping writes to it at a tenth of its measured rate. self.note
    says why it could not be set up (then nothing is left behind)."""

    def __init__(self, tmp, data_dir):
        self.img = os.path.join(tmp, "slow.img")
        self.mnt = data_dir
        self.dev = None
        self.mounted = False
        self.cgroup = None
        self.note = None
        self.figures = ""
        try:
            self._setup()
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            self.note = str(e)
            self.close()

    def _run(self, *argv):
        p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if p.returncode != 0:
            raise OSError(f"{' '.join(argv)}: {p.stdout.decode(errors='replace').strip()}")
        return p.stdout.decode().strip()

    def _setup(self):
        if os.environ.get("TALLY_SLOW_FOLLOWER_MODE") == "pause":
            raise OSError("TALLY_SLOW_FOLLOWER_MODE=pause")
        if os.geteuid() != 0:
            raise OSError("not root")
        if not os.access(os.path.join(BLKIO, "cgroup.procs"), os.W_OK):
            raise OSError(f"no blkio cgroup at {BLKIO}")
        with open(self.img, "wb") as f:
            f.truncate(1 << 30)
        self.dev = self._run("losetup", "-f", "--show", "--direct-io=on", self.img)
        self._run("mkfs.ext4", "-q", "-F", self.dev)
        self._run("mount", self.dev, self.mnt)
        self.mounted = True
        probe = os.path.join(self.mnt, ".probe")
        bps = dd_rate(["if=/dev/zero", f"of={probe}", "bs=1M", "count=32", "oflag=direct,dsync"])
        iops = dd_rate(["if=/dev/zero", f"of={probe}", "bs=4k", "count=300",
                        "oflag=direct,dsync"]) // 4096
        os.unlink(probe)
        if bps == 0 or iops == 0:
            raise OSError("could not measure the device")
        majmin = self._run("lsblk", "-dno", "MAJ:MIN", self.dev).replace(" ", "")
        self.cgroup = os.path.join(BLKIO, f"tally-test-slow-{os.getpid()}")
        os.mkdir(self.cgroup)
        # A tenth of the device, and no more than CAP_*: a fast device's
        # tenth would absorb this scaled-down load without falling behind.
        cap_bps = max(min(bps // 10, CAP_BPS), 1 << 20)
        cap_iops = max(min(iops // 10, CAP_IOPS), 10)
        with open(os.path.join(self.cgroup, "blkio.throttle.write_bps_device"), "w") as f:
            f.write(f"{majmin} {cap_bps}")
        with open(os.path.join(self.cgroup, "blkio.throttle.write_iops_device"), "w") as f:
            f.write(f"{majmin} {cap_iops}")
        self.figures = (f"device {iops} writes/s of 4 KiB, {bps / 1e6:.0f} MB/s; node 3 capped at "
                        f"{cap_iops} writes/s, {cap_bps / 1e6:.1f} MB/s")

    def adopt(self, pid):
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def close(self):
        if self.mounted:
            for _ in range(20):
                if subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.5)
            self.mounted = False
        if self.dev:
            subprocess.run(["losetup", "-d", self.dev], stderr=subprocess.DEVNULL)
            self.dev = None
        if os.path.exists(self.img):
            os.unlink(self.img)
        if self.cgroup and os.path.isdir(self.cgroup):
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass
        self.cgroup = None


class DutyCycle(threading.Thread):
    """Stops process @pid 90 ms of every 100 ms until stop()."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                os.kill(self.pid, signal.SIGSTOP)
                time.sleep(0.09)
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                return
            time.sleep(0.01)

    def stop(self):
        self.done.set()
        self.join(timeout=5)
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def test_slow_follower_loses_nothing():
    """Writes acknowledged while follower 3 is ten times slower on disk are
    all kept, at their offsets, and the three replicas are identical after
    node 3 catches up."""
    with Cluster(name="slowfollower") as c:
        slow = SlowDisk(c.tmp, c.nodes[3].data)
        duty = None
        try:
            mode = "disk" if slow.note is None else "pause"
            print(f"# slow node 3: {slow.figures if mode == 'disk' else 'SIGSTOP 90 ms of 100 ms'}"
                  + (f" (no throttled disk: {slow.note})" if slow.note else ""), flush=True)
            c.spawn(1)
            c.spawn(2)
            c.spawn(3)
            if mode == "disk":
                slow.adopt(c.nodes[3].proc.pid)
            leader = c.wait_leader(timeout=30)
            if leader == 3:
                c.tally_ok("member", "transfer", "1")
                leader = c.wait_leader(timeout=30, not_id=3)
            c.tally_ok("topic", "create", "acked")
            c.tally_ok("topic", "create", "bulk")
            if mode == "pause":
                duty = DutyCycle(c.nodes[3].proc.pid)
                duty.start()

            # Writers whose every acknowledged offset is checked, next to a
            # batched load that keeps node 3's disk busy.
            results = {}

            def writer(w):
                lines = "".join(f"w{w}-{i}\n" for i in range(RECORDS_PER_WRITER))
                results[w] = c.tally("--timeout", 20000, "produce", "acked",
                                     input=lines.encode(), timeout=240)

            t0 = time.monotonic()
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for t in threads:
                t.start()
            bulk = c.tally("bench", "produce", "bulk", "--count", "40000", "--size", "1024",
                           "--inflight", "20000", "--batch-bytes", "262144", timeout=240)
            for t in threads:
                t.join(timeout=300)
            secs = time.monotonic() - t0
            check(bulk.rc == 0, f"bench produce failed: {bulk!r}")

            acked = {}
            for w, r in results.items():
                check(r.rc == 0, f"writer {w} failed: {r!r}")
                offs = [int(x) for x in r.text.split()]
                check(len(offs) == RECORDS_PER_WRITER,
                      f"writer {w} printed {len(offs)} offsets for {RECORDS_PER_WRITER} records")
                for i, off in enumerate(offs):
                    acked[off] = f"w{w}-{i}".encode()
            check(len(acked) == WRITERS * RECORDS_PER_WRITER, "two writes got the same offset")

            st = c.status()
            members = {m["id"]: m for m in st["members"]}
            lag = st["commit_index"] - members[3]["applied_index"]
            rss = peak_rss_mib(c.nodes[leader].proc.pid)
            print(f"# {WRITERS} writers x {RECORDS_PER_WRITER} records (stdin lines) and 40,000 "
                  f"x 1 KiB batched in {secs:.1f} s; bulk: {bulk.text.strip().splitlines()[-1]}",
                  flush=True)
            print(f"# right after: commit index {st['commit_index']}, node 3 applied "
                  f"{members[3]['applied_index']} ({lag} entries behind); leader {leader} peak RSS "
                  f"{rss:.0f} MiB", flush=True)

            # Node 3 catches up (still slow: the throttle stays on).
            if duty is not None:
                duty.stop()
                duty = None
            t1 = time.monotonic()

            def caught_up():
                c.check_up()  # a node that died cannot catch up: fail now
                s = c.status()
                if s is None:
                    return False
                m = {x["id"]: x for x in s["members"]}
                return all(m[i]["applied_index"] >= st["commit_index"] for i in (1, 2, 3))
            wait_until(caught_up, 180, "node 3 to catch up", interval=0.5)
            print(f"# node 3 caught up in {time.monotonic() - t1:.1f} s", flush=True)

            logs = {}
            for i in (1, 2, 3):
                a = parse_records(c.read_node("acked", i, len(acked), timeout=60))
                # The bulk values are random bytes (newlines too): compare
                # them raw, count the records by their offsets.
                offs = c.tally_ok("consume", "bulk", "--format", "%o\\n", "--node",
                                  c.nodes[i].client).text.split()
                check(offs == [str(k) for k in range(40000)],
                      f"node {i}: topic bulk holds offsets {offs[:3]}...{offs[-3:]} "
                      f"({len(offs)}), want 0..39999")
                b = c.tally_ok("consume", "bulk", "--format", "%o %t %v", "--node",
                               c.nodes[i].client).out
                logs[i] = (a, b)
                have = dict(a)
                missing = [off for off, v in acked.items() if have.get(off) != v]
                check(not missing, f"node {i}: {len(missing)} acknowledged records missing or "
                      f"moved, first at offset {min(missing) if missing else None}")
            for i in (2, 3):
                check(logs[i][0] == logs[1][0], f"topic acked: node {i} differs from node 1")
                check(logs[i][1] == logs[1][1], f"topic bulk: node {i} differs from node 1")
            print(f"# {len(acked)} acknowledged records on all three nodes at their offsets; "
                  f"replicas identical ({len(logs[1][0])} + 40000 records)", flush=True)
            for i in (1, 2, 3):
                c.stop(i)
        finally:
            if duty is not None:
                duty.stop()
            for i in (1, 2, 3):  # the mount is busy while node 3 runs
                n = c.nodes[i]
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.send_signal(signal.SIGCONT)
                    n.proc.kill()
                    n.proc.wait(timeout=10)
            slow.close()


if __name__ == "__main__":
    run_tests([test_slow_follower_loses_nothing], per_test_timeout=600)
