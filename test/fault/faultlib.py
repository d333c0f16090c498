# faultlib.py - the fault suite's cluster: harness.Cluster plus a TCP proxy on
# every directed Raft link (so one node can be cut off) and, when the machine
# allows it, a size-limited tmpfs under one node's data directory (so its disk
# can be filled).
#
# Python 3 standard library only.
#
# How the proxies work. canonical/raft dials the Raft address it finds in the
# configuration, and a tallyd bootstraps its configuration from its own
# --peer list. So each node is started with its own address as it is (tallyd
# insists that --raft equals its own --peer entry) and every other member's
# Raft address replaced by a proxy port of its own: node i reaches node j
# through proxy (i, j), which forwards to j's real Raft port. Every Raft
# connection from i to j therefore goes through proxy (i, j), and cutting
# node k off means blocking every proxy (k, *) and (*, k). All of it is TCP
# on 127.0.0.1.
#
# The configurations of the three nodes differ only in the addresses of the
# bootstrap entry (index 1, term 1, identical as far as Raft compares).
# A snapshot sent by the leader to a follower carries the leader's view of
# the addresses (its own proxy ports), and run.py snapshots every 256
# entries with 128 trailing, so installs happen in most runs: a node that
# installed one may then reach the others through the leader's proxies, and
# a later cut of it may leak. The checker's "partition" counts say how many
# cuts were made (a leak only weakens the nemesis, it cannot make the
# checker report a false violation).

import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from harness import Cluster, TestFailure, free_ports  # noqa: E402,F401


class LinkProxy:
    """Forwards TCP connections from a listening port on 127.0.0.1 to
    @target_port. When blocked, existing connections are cut and new ones are
    either refused (accepted and closed at once) or black-holed (accepted,
    their bytes read and dropped, nothing forwarded), as @mode says."""

    def __init__(self, name, target_port):
        self.name = name
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.blocked = None  # None, "refuse" or "blackhole"
        self.conns = set()  # open sockets (both sides)
        self.closed = False
        self.accepted = 0
        self.t = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)
        self.t.start()

    def _accept_loop(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.accepted += 1
            with self.lock:
                mode = self.blocked
                if mode is None:
                    self.conns.add(c)
            if mode == "refuse":
                _close(c)
                continue
            if mode == "blackhole":
                with self.lock:
                    self.conns.add(c)
                threading.Thread(target=self._drain, args=(c,), daemon=True).start()
                continue
            threading.Thread(target=self._connect, args=(c,), daemon=True).start()

    def _connect(self, c):
        try:
            u = socket.create_connection(self.target, timeout=2)
            u.settimeout(None)
            u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self._drop(c)
            return
        with self.lock:
            if self.blocked is not None or c not in self.conns:
                _close(u)
                self.conns.discard(c)
                _close(c)
                return
            self.conns.add(u)
        threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
        threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        self._drop(src)
        self._drop(dst)

    def _drain(self, c):
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        self._drop(c)

    def _drop(self, s):
        with self.lock:
            self.conns.discard(s)
        _close(s)

    def _cut_all(self):
        with self.lock:
            conns = list(self.conns)
            self.conns.clear()
        for s in conns:
            _close(s)

    def block(self, mode="refuse"):
        with self.lock:
            self.blocked = mode
        self._cut_all()

    def unblock(self):
        with self.lock:
            was = self.blocked
            self.blocked = None
        if was == "blackhole":
            self._cut_all()  # the black-holed connections carry nothing; make them redial

    def close(self):
        self.closed = True
        _close(self.lsock)
        self._cut_all()


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class FaultCluster(Cluster):
    """A three-node harness.Cluster whose Raft links go through LinkProxy
    objects, and (optionally) with node @tmpfs_node's data directory on a
    tmpfs of @tmpfs_size. self.tmpfs_note says why it could not be mounted."""

    def __init__(self, n=3, name="fault", extra_args=(), tmpfs_node=None, tmpfs_size="64m"):
        super().__init__(n=n, name=name, extra_args=extra_args)
        self.proxies = {}
        for i in self.nodes:
            for j in self.nodes:
                if i != j:
                    self.proxies[(i, j)] = LinkProxy(f"{i}->{j}", self.nodes[j].raft_port)
        self.tmpfs_node = None
        self.tmpfs_note = None
        self.mounted = None
        if tmpfs_node is not None:
            self._mount_tmpfs(tmpfs_node, tmpfs_size)

    def _mount_tmpfs(self, node_id, size):
        d = self.nodes[node_id].data
        if os.geteuid() != 0:
            self.tmpfs_note = "not root: cannot mount a tmpfs"
            return
        try:
            p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                                f"tally-fault-{os.getpid()}", d],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.tmpfs_note = f"mount failed: {e}"
            return
        if p.returncode != 0:
            self.tmpfs_note = f"mount -t tmpfs failed: {p.stdout.decode(errors='replace').strip()}"
            return
        self.mounted = d
        self.tmpfs_node = node_id

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [harness.TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        for m in self.nodes.values():
            raft = m.raft if m.id == node_id else \
                f"127.0.0.1:{self.proxies[(node_id, m.id)].port}"
            args += ["--peer", f"{m.id}={m.client}/{raft}"]
        args.append("--bootstrap")
        return args + self.extra_args

    # -- partitions ---------------------------------------------------------

    def isolate(self, node_id, mode="refuse"):
        for (i, j), p in self.proxies.items():
            if node_id in (i, j):
                p.block(mode)

    def heal(self):
        for p in self.proxies.values():
            p.unblock()

    # -- cleanup --------------------------------------------------------------

    def cleanup(self):
        for i, n in self.nodes.items():
            if n.proc is not None and n.proc.poll() is None:
                try:
                    n.proc.send_signal(signal.SIGCONT)
                    n.proc.kill()
                    n.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        for p in self.proxies.values():
            p.close()
        self.unmount()
        super().cleanup()

    def unmount(self):
        if self.mounted is None:
            return
        for _ in range(10):
            p = subprocess.run(["umount", self.mounted], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if p.returncode == 0:
                self.mounted = None
                return
            time.sleep(0.5)
        print(f"# WARNING: could not unmount {self.mounted}: {p.stdout!r}", flush=True)


def tmpfs_free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
