# harness.py - runs real tallyd clusters on 127.0.0.1 for the integration tests.
#
# Python 3 standard library only (Debian's /usr/bin/python3). automake runs
# each test/integration/test_*.py with TALLY_BUILD_DIR and TALLY_SRC_DIR set;
# a test file exits 0 (pass), 77 (skip: binaries missing) or 1 (fail).
#
# Every wait here is bounded: a hung node or client fails the test instead of
# hanging the suite, and the cleanup always SIGKILLs every process it started.
# Set TALLY_KEEP_TMP=1 to keep the data directories and logs of a failed run.

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77

BUILD_DIR = os.environ.get("TALLY_BUILD_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TALLYD = os.path.join(BUILD_DIR, "src", "tallyd")
TALLY = os.path.join(BUILD_DIR, "src", "tally")


def use_build(build, direct=False):
    """Run the programs of @build. With @direct (benchmarks), run the
    executables libtool's wrapper scripts would run (src/.libs/), with the
    build's libtally on LD_LIBRARY_PATH: the wrapper is a bash script that
    adds some 10 ms to every CLI call, which an installed tally does not
    pay."""
    global TALLY, TALLYD
    TALLYD = os.path.join(build, "src", "tallyd")
    TALLY = os.path.join(build, "src", "tally")
    if direct and os.path.exists(os.path.join(build, "src", ".libs", "tally")):
        TALLY = os.path.join(build, "src", ".libs", "tally")
        libs = os.path.join(build, ".libs")
        old = os.environ.get("LD_LIBRARY_PATH")
        os.environ["LD_LIBRARY_PATH"] = libs + (":" + old if old else "")


class TestFailure(Exception):
    pass


class TestTimeout(Exception):
    pass


class NodeDown(TestFailure):
    """A node exited that should be running; retrying cannot help."""


def check(cond, msg):
    """Fail the current test with @msg unless @cond holds."""
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout, what, interval=0.1):
    """Call pred() until it returns something true; return that. Fail after
    @timeout seconds, naming @what."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except NodeDown:
            raise
        except TestFailure as e:
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last: {last_exc})" if last_exc else ""
            raise TestFailure(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (outgoing connections
    take their source ports from it), or None."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_ports(n):
    """@n distinct free TCP ports on 127.0.0.1, below the kernel's
    ephemeral range where there is room: a port the kernel picked for us
    (port 0) can be taken, between our probe and the node's bind, by any
    outgoing connection of the machine (CI saw "metrics: listen on ...:
    address already in use" so); below that range only another explicit
    bind can take it, and the random choice makes two tests' picks
    unlikely to meet. All probe sockets stay bound until every port is
    picked, so one call never returns a port twice."""
    socks = []
    low = _ephemeral_low()
    rng = random.SystemRandom()
    try:
        tries = 0
        while len(socks) < n and low is not None and low > 12000 and tries < 20 * n:
            tries += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", rng.randrange(10000, low)))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Result:
    """Outcome of one CLI run: exit status and raw output bytes."""

    def __init__(self, args, rc, out, err, secs):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err
        self.secs = secs

    @property
    def text(self):
        return self.out.decode("utf-8", "replace")

    @property
    def errtext(self):
        return self.err.decode("utf-8", "replace")

    def __repr__(self):
        return (f"Result(args={self.args!r}, rc={self.rc}, secs={self.secs:.2f}, "
                f"out={self.out[:300]!r}, err={self.err[:300]!r})")


_runtimes = {}


def sanitizer_runtimes(path):
    """The ASan/UBSan runtime libraries @path is linked with (a list of
    paths, empty for a normal build), from ldd."""
    if path not in _runtimes:
        ldd = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True).stdout
        _runtimes[path] = [ln.split("=>")[1].split()[0] for ln in ldd.splitlines()
                           if "=>" in ln and ("libasan" in ln or "libubsan" in ln)]
    return _runtimes[path]


def libtally_child():
    """For a test that runs libtally in a child Python process (ctypes):
    the library's path and the child's environment, with the sanitizer
    runtime preloaded for a sanitized build (it must be loaded first;
    leaks are not checked: they would be the interpreter's)."""
    lib = os.path.join(BUILD_DIR, ".libs", "libtally.so")
    check(os.path.exists(lib), f"no {lib}: build libtally first")
    env = dict(os.environ)
    pre = sanitizer_runtimes(lib)
    if pre:
        env["LD_PRELOAD"] = ":".join(pre)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return lib, env


def reexec_for_libtally():
    """For a test that loads libtally into this Python process (ctypes):
    with a sanitized build, run this script again with the sanitizer
    runtime preloaded, as the runtime must be loaded first (leaks are not
    checked: they would be the interpreter's). Returns only when no
    re-execution is needed, or in the re-executed process."""
    lib = os.path.join(BUILD_DIR, ".libs", "libtally.so")
    if os.environ.get("TALLY_REEXECUTED") or not os.path.exists(lib):
        return
    pre = sanitizer_runtimes(lib)
    if not pre:
        return
    env = dict(os.environ, TALLY_REEXECUTED="1", LD_PRELOAD=":".join(pre),
               ASAN_OPTIONS="detect_leaks=0")
    sys.exit(subprocess.run([sys.executable] + sys.argv, env=env).returncode)


def run_tally(args, input=None, timeout=60, brokers=None, env=None):
    """Run the tally CLI with @args (a list) and return a Result. @brokers
    goes to -b. A run that outlives @timeout seconds is killed and fails."""
    cmd = [TALLY]
    if brokers is not None:
        cmd += ["-b", brokers]
    cmd += [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise TestFailure(f"{' '.join(cmd)} did not finish within {timeout}s "
                          f"(stderr so far: {e.stderr!r})")
    return Result(cmd, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


class Node:
    """One tallyd: its addresses, data directory, log file and process."""

    def __init__(self, node_id, client_port, raft_port, data_dir, log_path):
        self.id = node_id
        self.client_port = client_port
        self.raft_port = raft_port
        self.data = data_dir
        self.log_path = log_path
        self.proc = None
        self.log_file = None
        self.argv = None
        self.expected_up = False  # started by us and not since killed/stopped

    @property
    def client(self):
        return f"127.0.0.1:{self.client_port}"

    @property
    def raft(self):
        return f"127.0.0.1:{self.raft_port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def open_fds(self):
        """The running tallyd's open file descriptors (OSError once it is
        gone)."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def candidacies(self):
        """Times this node stood for election ("-> candidate" in its log
        so far)."""
        with open(self.log_path, errors="replace") as f:
            return f.read().count("-> candidate")


class Cluster:
    """A cluster of @n tallyd processes on 127.0.0.1 under a fresh temporary
    directory. Use as a context manager: leaving the block kills every
    process, and when the block raised, prints the tail of each node's log."""

    def __init__(self, n=3, name="cluster", extra_args=()):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"tally-{name}-")
        ports = free_ports(2 * n)
        self.nodes = {}
        for i in range(1, n + 1):
            data = os.path.join(self.tmp, f"node{i}")
            os.makedirs(data)
            self.nodes[i] = Node(i, ports[2 * (i - 1)], ports[2 * (i - 1) + 1], data,
                                 os.path.join(self.tmp, f"node{i}.log"))
        self.extra_args = list(extra_args)
        self.node_env = {}  # node id -> extra environment variables of its tallyd
        self.failed = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.failed = True
            self.print_logs()
        self.cleanup()
        return False

    def argv(self, node_id):
        n = self.nodes[node_id]
        args = [TALLYD, "--id", str(node_id), "--data", n.data, "--listen", n.client,
                "--raft", n.raft]
        for m in self.nodes.values():
            args += ["--peer", f"{m.id}={m.client}/{m.raft}"]
        args.append("--bootstrap")
        return args + self.extra_args

    def spawn(self, node_id):
        """Start node @node_id (again) with its fixed command line; its
        stderr and stdout are appended to its log file."""
        n = self.nodes[node_id]
        if n.alive():
            raise TestFailure(f"node {node_id} is already running")
        n.argv = self.argv(node_id)
        n.log_file = open(n.log_path, "ab")
        n.log_file.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(n.argv)}\n"
                         .encode())
        n.log_file.flush()
        env = dict(os.environ, **self.node_env[node_id]) if node_id in self.node_env else None
        if env is not None and env.get("LD_PRELOAD"):
            # A sanitized tallyd refuses to start unless its runtime is the
            # first library loaded (libfaketime is preloaded by clock tests).
            first = sanitizer_runtimes(TALLYD)
            if first:
                env["LD_PRELOAD"] = ":".join(first + [env["LD_PRELOAD"]])
        n.proc = subprocess.Popen(n.argv, stdin=subprocess.DEVNULL, stdout=n.log_file,
                                  stderr=n.log_file, env=env)
        n.expected_up = True

    def check_up(self):
        """Fail at once if a node we did not stop has exited: waiting for a
        leader or for data would only time out later with less to go on."""
        for i, n in self.nodes.items():
            if n.expected_up and n.proc is not None and n.proc.poll() is not None:
                rc = n.proc.returncode
                how = f"signal {-rc}" if rc < 0 else f"status {rc}"
                raise NodeDown(f"node {i} exited unexpectedly ({how}); see its log")

    def start(self, wait=True, timeout=30):
        """Start every node; with @wait, return the leader's id once the
        cluster has one."""
        for i in self.nodes:
            self.spawn(i)
        if wait:
            return self.wait_leader(timeout=timeout)
        return None

    def kill(self, node_id):
        """SIGKILL node @node_id and reap it."""
        n = self.nodes[node_id]
        n.expected_up = False
        if n.proc is None:
            return
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGCONT)  # a stopped process dies too, but reap cleanly
            n.proc.kill()
        try:
            n.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"node {node_id} did not die after SIGKILL")
        self._note(node_id, "killed (SIGKILL)")

    def stop(self, node_id, timeout=20):
        """SIGTERM node @node_id; it must exit 0 within @timeout seconds."""
        n = self.nodes[node_id]
        check(n.alive(), f"node {node_id} is not running (exit status {n.proc.poll() if n.proc else None})")
        n.expected_up = False
        n.proc.send_signal(signal.SIGTERM)
        try:
            rc = n.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"node {node_id} did not exit within {timeout}s of SIGTERM")
        self._note(node_id, f"stopped (SIGTERM), exit status {rc}")
        check(rc == 0, f"node {node_id} exited with status {rc} after SIGTERM, want 0")

    def pause(self, node_id):
        self.nodes[node_id].proc.send_signal(signal.SIGSTOP)
        self._note(node_id, "paused (SIGSTOP)")

    def resume(self, node_id):
        self.nodes[node_id].proc.send_signal(signal.SIGCONT)
        self._note(node_id, "resumed (SIGCONT)")

    def restart(self, node_id):
        """Start a node that was killed or stopped, same command line."""
        self.spawn(node_id)

    def cleanup(self):
        for i, n in self.nodes.items():
            if n.proc is not None and n.proc.poll() is None:
                try:
                    n.proc.send_signal(signal.SIGCONT)
                    n.proc.kill()
                    n.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if n.log_file is not None:
                n.log_file.close()
                n.log_file = None
        if self.failed and os.environ.get("TALLY_KEEP_TMP"):
            print(f"# kept {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _note(self, node_id, what):
        n = self.nodes[node_id]
        if n.log_file is not None:
            n.log_file.write(f"=== {time.strftime('%H:%M:%S')} harness: {what}\n".encode())
            n.log_file.flush()

    def print_logs(self, lines=40):
        for i, n in self.nodes.items():
            try:
                with open(n.log_path, "rb") as f:
                    tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            state = "running" if n.alive() else (
                f"exited {n.proc.poll()}" if n.proc is not None else "never started")
            print(f"# ---- node {i} ({state}) log tail: {n.log_path}", flush=True)
            for line in tail:
                print(f"#   {line}")
        sys.stdout.flush()

    # -- addresses ---------------------------------------------------------

    def brokers(self, ids=None):
        ids = self.nodes.keys() if ids is None else ids
        return ",".join(self.nodes[i].client for i in ids)

    def candidacies(self):
        """Candidacies of every node so far (Node.candidacies): elections."""
        return sum(n.candidacies() for n in self.nodes.values())

    def alive_ids(self):
        return [i for i, n in self.nodes.items() if n.alive()]

    # -- the CLI -------------------------------------------------------------

    def tally(self, *args, input=None, timeout=60, ids=None, brokers=None):
        """Run `tally -b <brokers> ARGS...` (default: every node)."""
        return run_tally(list(args), input=input, timeout=timeout,
                         brokers=brokers if brokers is not None else self.brokers(ids))

    def tally_ok(self, *args, **kw):
        """As tally(), and fail the test unless it exits 0."""
        r = self.tally(*args, **kw)
        check(r.rc == 0, f"command failed: {r!r}")
        return r

    def status(self, ids=None, timeout=15):
        """`tally status --json` through nodes @ids; the parsed object, or
        None when no node answered or the output is not JSON."""
        r = self.tally("--timeout", 2000, "status", "--json", ids=ids, timeout=timeout)
        if not r.out.strip():
            return None
        try:
            return json.loads(r.out)
        except ValueError:
            raise TestFailure(f"status --json printed something that is not JSON: {r!r}")

    def leader(self, ids=None):
        """The leader id if the nodes @ids (default: running ones) agree on a
        reachable leader that says it is the leader, else 0."""
        ids = self.alive_ids() if ids is None else ids
        if not ids:
            return 0
        st = self.status(ids=ids)
        if st is None or not st.get("leader_id"):
            return 0
        lid = st["leader_id"]
        for m in st.get("members", []):
            if m.get("id") == lid and m.get("reachable") and m.get("role") == "leader":
                return lid if lid in ids else 0
        return 0

    def wait_leader(self, timeout=30, ids=None, not_id=None):
        """Wait until there is a leader among @ids (default: running nodes),
        other than @not_id; return its id."""
        def pred():
            self.check_up()
            lid = self.leader(ids)
            return lid if lid and lid != not_id else 0
        return wait_until(pred, timeout, "a leader to be elected")

    def consume(self, topic, node_id=None, extra=(), timeout=60, ids=None):
        """Raw output of `tally consume TOPIC [--node N]` with '%o\\t%v\\n'."""
        args = ["consume", topic, "--format", "%o\\t%v\\n"] + list(extra)
        if node_id is not None:
            args += ["--node", self.nodes[node_id].client]
        return self.tally(*args, timeout=timeout, ids=ids)

    def read_node(self, topic, node_id, want_count, timeout=30, ids=None):
        """Read the whole topic from one node, retrying until it holds at
        least @want_count records (a follower may lag a little); return the
        raw output."""
        last = []

        def pred():
            self.check_up()
            r = self.consume(topic, node_id=node_id, ids=ids)
            last[:] = [r]
            if r.rc != 0:
                return None
            return r if r.out.count(b"\n") >= want_count else None
        try:
            return wait_until(pred, timeout, f"node {node_id} to hold {want_count} records of {topic}",
                              interval=0.3).out
        except TestFailure as e:
            raise TestFailure(f"{e}; last read: {last[0]!r}" if last else str(e))


def parse_records(out):
    """'OFFSET\\tVALUE\\n' lines -> list of (offset, value bytes)."""
    recs = []
    for line in out.split(b"\n"):
        if not line:
            continue
        off, _, val = line.partition(b"\t")
        recs.append((int(off), val))
    return recs


# -- a tiny test runner --------------------------------------------------------

def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


def run_tests(tests, needs_server=True, per_test_timeout=240):
    """Run each function in @tests; print PASS/FAIL/SKIP per test and
    'N passed, N failed'; exit 0, 1 (a failure) or 77 (nothing could run)."""
    if not os.access(TALLY, os.X_OK):
        print(f"SKIP: {TALLY} is not built")
        sys.exit(SKIP)
    server_built = os.access(TALLYD, os.X_OK)
    only = set(sys.argv[1:])
    passed = failed = skipped = 0
    signal.signal(signal.SIGALRM, _on_alarm)
    for t in tests:
        name = t.__name__
        if only and name not in only:
            continue
        if getattr(t, "needs_server", needs_server) and not server_built:
            print(f"SKIP {name}: {TALLYD} is not built", flush=True)
            skipped += 1
            continue
        print(f"# {name}: {(t.__doc__ or '').strip().splitlines()[0] if t.__doc__ else ''}",
              flush=True)
        t0 = time.monotonic()
        signal.alarm(per_test_timeout)
        try:
            t()
        except (TestFailure, TestTimeout, AssertionError, Exception) as e:
            signal.alarm(0)
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {type(e).__name__}: {e}",
                  flush=True)
            if not isinstance(e, (TestFailure, TestTimeout)):
                traceback.print_exc(file=sys.stdout)
            continue
        signal.alarm(0)
        passed += 1
        print(f"PASS {name} ({time.monotonic() - t0:.1f}s)", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""),
          flush=True)
    if failed:
        sys.exit(1)
    if passed == 0 and skipped:
        sys.exit(SKIP)
    sys.exit(0)


def no_server(fn):
    """Mark a test that runs without tallyd."""
    fn.needs_server = False
    return fn
