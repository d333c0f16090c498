# nemesis.py - injects one fault at a time into a FaultCluster, at random
# moments drawn from a seeded RNG, and records each one in the history.
#
# Faults (each is undone before the next one starts, so a majority of the
# nodes always keeps its disk; the cluster may be unavailable meanwhile):
#   kill       SIGKILL the leader or a follower, restart it after 0.5-3 s
#   pause      SIGSTOP a node for 1.5-4 s (election timeout: 1 s), SIGCONT
#   partition  cut one node (leader half the time) off from both others for
#              2-5 s: its Raft proxies refuse or black-hole connections
#   corrupt    SIGKILL a node, or half the time stop it cleanly (SIGTERM: its
#              last checkpoints then count every record), truncate or flip a
#              bit in the tail of the active segment (highest base offset)
#              of one of its topics, restart it
#   churn      Raft's "Figure 8" shape, 3-6 rounds in a row: the leader's
#              links are cut so that its new entries reach only one
#              follower and that follower's answers do not reach it (the
#              entries are stored by two nodes, committed by none), then the
#              leader is cut off entirely until another node wins, then
#              everything heals; clients keep writing and making
#              conditional appends throughout
#   disk       (needs the tmpfs node) fill the node's tmpfs with a ballast
#              file, half the time after making it the leader; probe a write
#              through it; hold 2-4 s; stop it, verify its log offline, free
#              the space, restart it and check that it serves again
#   clock      (needs libfaketime; every node runs under it) one node's wall
#              clock an hour slow or fast, or the leader's jumping an hour
#              ahead, or a node an hour slow made leader; hold 2-5 s, then
#              the clock is right again. Around each, the nemesis writes
#              records of 1.5 KB to topic "clocked", which keeps 30 minutes
#              in 4 KiB segments (run.py): retention judges sealed segments
#              all along, yet no record of a run may go, and every node must
#              report the same start offset (checker: lost, start, replica).
#              (Only the nemesis writes there, never during a disk-full
#              episode, so its frequent rolls stay out of those.)
#   wipe       SIGKILL a node, empty its data directory and restart it with
#              its usual command line (--bootstrap included), as after a
#              disk replacement: it must not count as its old self (the
#              others refuse it); then replace it as docs/operations.md says
#              ('tally member replace ID ADDR', which waits until it holds
#              everything before it votes)
# After each fault the nemesis waits (bounded) until every node runs and a
# leader is known, and restarts any node that exited on its own (recorded as
# a "crash").

import os
import random
import shutil
import signal
import subprocess
import threading
import time

import faultlib
from workload import CLOCK_TOPIC, TOPIC, TOPICS, produce, run_cli

KINDS = ["kill", "pause", "partition", "corrupt", "churn", "disk", "clock", "wipe"]

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def setup_clocks(cluster):
    """Before the nodes start: run every tallyd under libfaketime with its
    wall clock read from a file of its own ("+0" now; the monotonic clock
    stays true). Returns {node id: file}, or None without libfaketime."""
    if not os.path.exists(FAKETIME_LIB):
        return None
    files = {}
    for i in cluster.nodes:
        files[i] = os.path.join(cluster.tmp, f"node{i}.faketime")
        set_clock(files[i], "+0")
        cluster.node_env[i] = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": files[i],
                               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return files


def set_clock(path, spec):
    with open(path + ".tmp", "w") as f:
        f.write(spec + "\n")
    os.replace(path + ".tmp", path)


def log_tail(node, lines=15):
    try:
        with open(node.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


class Nemesis(threading.Thread):
    def __init__(self, cluster, hist, seed, stop_at, gap=(0.5, 2.5), kinds=None, clocks=None):
        super().__init__(name="nemesis", daemon=True)
        self.c = cluster
        self.h = hist
        self.rng = random.Random(seed)
        self.stop_at = stop_at
        self.gap = gap
        self.kinds = list(kinds or KINDS)
        self.skipped = {}
        if "disk" in self.kinds and self.c.tmpfs_node is None:
            self.kinds.remove("disk")
            self.skip("disk", self.c.tmpfs_note or "no tmpfs node")
        self.clocks = clocks
        if "clock" in self.kinds and not clocks:
            self.kinds.remove("clock")
            self.skip("clock", f"{FAKETIME_LIB} is missing (Debian package faketime)")
        self.ballast = None
        self.counts = {}
        self.error = None

    def skip(self, kind, why):
        self.skipped[kind] = why
        print(f"# nemesis: skipping '{kind}' faults: {why}", flush=True)
        self.h.write({"type": "note", "what": f"nemesis {kind} skipped: {why}"})

    def record(self, kind, **fields):
        e = {"type": "fault", "kind": kind, "time": self.h.now()}
        e.update(fields)
        self.h.write(e)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    # -- helpers -------------------------------------------------------------

    def leader(self):
        try:
            return self.c.leader()
        except Exception:
            return 0

    def pick(self, prefer_leader=None):
        alive = [i for i in self.c.nodes if self.c.nodes[i].alive()]
        if prefer_leader is None:
            prefer_leader = self.rng.random() < 0.5
        lid = self.leader()
        if prefer_leader and lid:
            return lid, "leader"
        followers = [i for i in alive if i != lid]
        if followers:
            return self.rng.choice(followers), "follower" if lid else "unknown"
        return self.rng.choice(list(self.c.nodes)), "unknown"

    def sleep(self, a, b):
        time.sleep(self.rng.uniform(a, b))

    def check_crashes(self):
        """Restart nodes we did not stop that exited; record each as a crash."""
        for i, n in self.c.nodes.items():
            if n.expected_up and n.proc is not None and n.proc.poll() is not None:
                rc = n.proc.returncode
                self.record("crash", node=i, exit=rc, log_tail=log_tail(n))
                print(f"# nemesis: node {i} exited on its own (status {rc})", flush=True)
                self.c.restart(i)

    def recover(self, timeout=40):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.check_crashes()
            st = None
            try:
                st = self.c.status()
            except Exception:
                pass
            if st and st.get("leader_id") and all(m.get("reachable") for m in st.get("members", [])):
                return True
            time.sleep(0.3)
        self.record("recovery-timeout", after=timeout,
                    status=st if st else None)
        return False

    # -- the loop ------------------------------------------------------------

    def run(self):
        try:
            order = []
            while time.monotonic() < self.stop_at:
                self.sleep(*self.gap)
                if time.monotonic() >= self.stop_at:
                    break
                if not order:
                    order = list(self.kinds)
                    self.rng.shuffle(order)
                kind = order.pop()
                getattr(self, "do_" + kind)()
                self.recover()
        except Exception as e:
            import traceback
            self.error = traceback.format_exc()
            self.h.write({"type": "note", "what": f"nemesis crashed: {e!r}",
                          "trace": self.error})
            print(f"# nemesis crashed: {self.error}", flush=True)

    def do_kill(self):
        node, role = self.pick()
        self.c.kill(node)
        self.record("kill", node=node, role=role)
        self.sleep(0.5, 3)
        self.c.restart(node)
        self.h.write({"type": "note", "what": f"restarted node {node}", "time": self.h.now()})

    def do_pause(self):
        node, role = self.pick()
        d = self.rng.uniform(1.5, 4)
        self.c.pause(node)
        self.record("pause", node=node, role=role, seconds=round(d, 2))
        time.sleep(d)
        self.c.resume(node)
        self.h.write({"type": "note", "what": f"resumed node {node}", "time": self.h.now()})

    def do_partition(self):
        node, role = self.pick()
        mode = self.rng.choice(["refuse", "blackhole"])
        d = self.rng.uniform(2, 5)
        self.c.isolate(node, mode)
        self.record("partition", node=node, role=role, mode=mode, seconds=round(d, 2))
        time.sleep(d)
        self.c.heal()
        self.h.write({"type": "note", "what": f"healed partition of node {node}",
                      "time": self.h.now()})

    def do_churn(self):
        rounds = self.rng.randint(3, 6)
        for r in range(rounds):
            lid = self.leader()
            if not lid:
                time.sleep(0.5)
                continue
            f1, f2 = self.rng.sample([i for i in self.c.nodes if i != lid], 2)
            # Entries go from the leader to f1 only, and f1's answers are lost.
            self.c.proxies[(lid, f2)].block("blackhole")
            self.c.proxies[(f1, lid)].block("blackhole")
            d = self.rng.uniform(0.1, 0.5)
            self.record("churn", node=lid, role="leader", round=r, only_to=f1,
                        seconds=round(d, 2))
            time.sleep(d)
            # Then the leader is cut off until f1 or f2 wins.
            self.c.isolate(lid, self.rng.choice(["refuse", "blackhole"]))
            t0 = time.monotonic()
            new = 0
            while time.monotonic() - t0 < 8:
                try:
                    new = self.c.leader(ids=[f1, f2])
                except Exception:
                    new = 0
                if new and new != lid:
                    break
                time.sleep(0.1)
            self.h.write({"type": "note", "time": self.h.now(),
                          "what": f"churn round {r}: old leader {lid}, new leader {new or 'none'}"})
            self.sleep(0.1, 0.8)
            self.c.heal()
            self.sleep(0.2, 1.0)
        self.h.write({"type": "note", "what": "churn healed", "time": self.h.now()})

    def stop_node(self, node):
        """SIGTERM node @node and wait for it (SIGKILL after 20 s); returns
        its exit status or what happened."""
        n = self.c.nodes[node]
        n.expected_up = False
        n.proc.send_signal(signal.SIGTERM)
        try:
            return n.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.c.kill(node)
            return "no exit within 20 s of SIGTERM; killed"

    def do_corrupt(self):
        node, role = self.pick()
        n = self.c.nodes[node]
        # A clean stop writes checkpoints that count every record, so the
        # damage below is to records the node's checkpoints counted.
        stop = self.rng.choice(["kill", "term"])
        if stop == "kill" or not n.alive():
            self.c.kill(node)
            stopped = "killed"
        else:
            stopped = self.stop_node(node)
        segs = []
        for t in TOPICS:
            d = os.path.join(n.data, "topics", t)
            try:
                files = sorted(f for f in os.listdir(d) if f.endswith(".seg"))
            except OSError:
                continue
            if files:
                segs.append(os.path.join(d, files[-1]))
        how = self.rng.choice(["truncate", "bitflip"])
        detail = {}
        path = self.rng.choice(segs) if segs else None
        size = os.path.getsize(path) if path else 0
        if path is None or size <= 32:
            detail = {"skipped": "no segment with batches yet"}
        elif how == "truncate":
            cut = self.rng.randint(1, min(size - 32, 400))
            os.truncate(path, size - cut)
            detail = {"file": os.path.relpath(path, n.data), "size": size, "cut": cut}
        else:
            pos = self.rng.randint(max(32, size - 300), size - 1)
            bit = self.rng.randint(0, 7)
            with open(path, "r+b") as f:
                f.seek(pos)
                b = f.read(1)[0]
                f.seek(pos)
                f.write(bytes([b ^ (1 << bit)]))
            detail = {"file": os.path.relpath(path, n.data), "size": size, "pos": pos,
                      "bit": bit}
        self.record("corrupt", node=node, role=role, how=how, stopped=stopped, **detail)
        self.sleep(0.2, 1)
        self.c.restart(node)
        self.h.write({"type": "note", "what": f"restarted node {node} after corrupt",
                      "time": self.h.now()})

    def do_wipe(self):
        node, role = self.pick()
        n = self.c.nodes[node]
        self.c.kill(node)
        # Empty the directory, not remove it (it may be a mount point).
        for name in os.listdir(n.data):
            p = os.path.join(n.data, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        self.record("wipe", node=node, role=role)
        self.sleep(0.2, 1)
        self.c.restart(node)
        self.sleep(0.5, 2)
        # The others reach it through their own proxies; the leader adds
        # it at the address it dials (its proxy to the node).
        others = [i for i in self.c.nodes if i != node]
        brokers = ",".join(self.c.nodes[i].client for i in others)
        rc, out, err = None, "", ""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            lid = self.leader()
            if lid and lid != node:
                addr = f"{n.client}/127.0.0.1:{self.c.proxies[(lid, node)].port}"
                rc, out, err = run_cli(["member", "replace", node, addr, "--wait-timeout", 90],
                                       brokers, timeout=120)
                if rc == 0:
                    break
            time.sleep(1)
        self.record("replace", node=node, rc=rc, err=err[-300:])
        self.h.write({"type": "note", "what": f"replaced node {node} after wipe",
                      "time": self.h.now()})

    def op(self, brokers, value, topic=TOPIC):
        """A write by the nemesis, recorded in the history like a client's."""
        start = self.h.now()
        res = produce(brokers, topic, [value], print_index=True)
        e = {"type": "op", "client": "nemesis", "kind": "produce", "topic": topic,
             "values": [value], "start": start, "end": self.h.now()}
        e.update(res)
        self.h.write(e)
        return e

    def fill(self, path):
        """Write a ballast file until the file system is full; bytes written."""
        total = 0
        chunk = b"\xba" * (1 << 20)
        with open(path, "wb", buffering=0) as f:
            while True:
                try:
                    total += f.write(chunk)
                except OSError:
                    break
            # the last partial pages
            try:
                while f.write(b"\xba" * 4096):
                    total += 4096
            except OSError:
                pass
        return total

    def do_disk(self):
        node = self.c.tmpfs_node
        n = self.c.nodes[node]
        made_leader = False
        if self.rng.random() < 0.5:
            rc, out, err = run_cli(["--timeout", 5000, "member", "transfer", node],
                                   self.c.brokers(), timeout=30)
            made_leader = rc == 0
        self.ballast = os.path.join(n.data, "ballast")
        t = self.h.now()
        filled = self.fill(self.ballast)
        free = faultlib.tmpfs_free_bytes(n.data)
        role = "leader" if self.leader() == node else "follower"
        time.sleep(1)
        # A write through this node only: the leader may be elsewhere, then
        # the node forwards the client there (NOTLEADER) and it may succeed.
        probe = self.op(n.client, f"diskprobe-{self.h.now()}")
        self.sleep(2, 4)
        alive = n.alive()
        exit_while_full = None if alive else n.proc.returncode
        # Stop it (SIGTERM), free the space, check its files offline.
        stop = None
        if alive:
            stop = self.stop_node(node)
        else:
            n.expected_up = False
        os.unlink(self.ballast)
        self.ballast = None
        rcv, vout, verr = run_cli(["log", "verify", n.data], self.c.brokers(), timeout=120)
        self.c.restart(node)
        # Serves again: a write through the cluster, read back from this
        # node with its Raft index.
        served, why = False, ""
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not served:
            w = self.op(self.c.brokers(), f"diskafter-{self.h.now()}")
            if w["result"] == "ok" and w.get("indexes"):
                off, idx = str(w["offsets"][0]), w["indexes"][0]
                rc3, out3, err3 = run_cli(["--timeout", 5000, "consume", TOPIC, "--node",
                                           n.client, "--min-index", idx, "--from", off,
                                           "-n", 1, "--format", "%o\\t%v\\n"], n.client)
                served = rc3 == 0 and out3.startswith(off + "\t")
                why = err3.strip()[-200:]
            else:
                why = w["msg"][-200:]
            if not served:
                time.sleep(1)
        self.record("disk", node=node, role=role, transferred=made_leader, start=t,
                    ballast_bytes=filled, free_after_fill=free, probe=probe,
                    alive_while_full=alive, exit_while_full=exit_while_full,
                    sigterm_exit=stop, verify_rc=rcv, verify_out=(vout + verr).strip()[-500:],
                    served_again=served, served_why=why,
                    log_tail=log_tail(n, 25))

    def clock_writes(self, n):
        """@n records of 1.5 KB to the clock topic: one per 4 KiB segment."""
        for _ in range(n):
            self.op(self.c.brokers(), f"clock-{self.h.now()}-" + os.urandom(700).hex(),
                    topic=CLOCK_TOPIC)

    def do_clock(self):
        mode = self.rng.choice(["slow", "fast", "leader-jump", "slow-leader"])
        self.clock_writes(3)
        lid = self.leader()
        if mode == "leader-jump" and lid:
            node, role, spec = lid, "leader", "+1h"
        else:
            node, role = self.pick(prefer_leader=False)
            spec = "+1h" if mode == "fast" else "-1h"
        d = self.rng.uniform(2, 5)
        set_clock(self.clocks[node], spec)
        transferred = None
        if mode == "slow-leader":
            # Let it measure its offset first (every 2 s), then lead.
            time.sleep(2.5)
            rc, out, err = run_cli(["--timeout", 5000, "member", "transfer", node],
                                   self.c.brokers(), timeout=30)
            transferred = rc == 0
        self.record("clock", node=node, role=role, mode=mode, clock=spec, seconds=round(d, 2),
                    transferred=transferred)
        self.clock_writes(3)
        time.sleep(d)
        set_clock(self.clocks[node], "+0")
        self.h.write({"type": "note", "what": f"clock of node {node} right again",
                      "time": self.h.now()})

    def heal_all(self):
        """Undo everything: heal partitions, resume and restart nodes, free
        the disk."""
        self.c.heal()
        for i, n in self.c.nodes.items():
            if n.alive():
                n.proc.send_signal(signal.SIGCONT)
        if self.ballast and os.path.exists(self.ballast):
            os.unlink(self.ballast)
        for path in (self.clocks or {}).values():
            set_clock(path, "+0")
        self.check_crashes()
        for i, n in self.c.nodes.items():
            if not n.alive():
                self.c.restart(i)
