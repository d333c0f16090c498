# test_produce_stdin.py - `tally produce TOPIC` reading standard input on a
# real three-node cluster: a line is written while the input is still open
# (slow input through a pipe, and `tail -f`), and SIGINT/SIGTERM send what
# was read, report how many records were written, and exit non-zero only
# if some were not.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_produce_stdin.py [TEST...]

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TALLY, Cluster, check, run_tests, wait_until  # noqa: E402


def values(c, topic):
    r = c.tally("consume", topic, "--format", "%v\\n", ids=[c.wait_leader()])
    check(r.rc == 0, f"consume {topic}: {r!r}")
    return r.text.splitlines()


def spawn_producer(c, topic, *extra):
    return subprocess.Popen([TALLY, "-b", c.brokers(), "produce", topic, *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def unread(p):
    """Bytes written into the producer's stdin pipe that it has not read."""
    buf = fcntl.ioctl(p.stdin.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


def finish(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, (out or b"").decode(), (err or b"").decode()


def test_slow_pipe_line_written_while_input_open():
    """issue 26.3: `(echo a; sleep 8; echo b) | tally produce roll`: 'a' is
    written while the input is still open (it waited for 1,000 lines, 256
    KiB or the end of input)."""
    with Cluster(name="prod-slow") as c:
        c.start()
        c.tally_ok("topic", "create", "roll")
        p = spawn_producer(c, "roll")
        try:
            p.stdin.write(b"a\n")
            p.stdin.flush()
            wait_until(lambda: values(c, "roll") == ["a"], 30,
                       "'a' to be written while stdin stays open", interval=0.3)
            p.stdin.write(b"b\n")
            p.stdin.flush()
            wait_until(lambda: values(c, "roll") == ["a", "b"], 30,
                       "'b' to be written while stdin stays open", interval=0.3)
            rc, out, err = finish(p)  # closes stdin: the end of input
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(rc == 0 and out.split() == ["0", "1"], f"producer: rc={rc} out={out!r} err={err!r}")


def test_tail_follow_through_a_pipe():
    """issue 26.3: `tail -f app.log | tally produce T` writes each line
    appended to the log as it comes, in order, long before 1,000 lines."""
    with Cluster(name="prod-tail") as c:
        c.start()
        c.tally_ok("topic", "create", "applog")
        log = os.path.join(c.tmp, "app.log")
        with open(log, "w") as f:
            f.write("start\n")
        tail = subprocess.Popen(["tail", "-n", "+1", "-f", log], stdout=subprocess.PIPE)
        prod = subprocess.Popen([TALLY, "-b", c.brokers(), "produce", "applog"],
                                stdin=tail.stdout, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        tail.stdout.close()
        try:
            want = ["start"]
            wait_until(lambda: values(c, "applog") == want, 30, "the first line to be written",
                       interval=0.3)
            for i in range(5):
                with open(log, "a") as f:
                    f.write(f"event-{i}\n")
                want.append(f"event-{i}")
                wait_until(lambda: values(c, "applog") == want, 30,
                           f"line event-{i} to be written", interval=0.3)
            prod.send_signal(signal.SIGTERM)
            rc, _, err = finish(prod)
            check(rc == 0 and "all 6 records read were written" in err,
                  f"producer after SIGTERM: rc={rc} err={err!r}")
        finally:
            for p in (tail, prod):
                if p.poll() is None:
                    p.kill()
                    p.wait()


def test_sigint_sends_what_was_read():
    """issue 26.3: SIGINT to a producer that has read 300 lines (held by a
    long linger) sends them, waits for the acknowledgement, reports 300
    records written and exits 0 (it exited 130 with no message and 0
    records written); when the cluster cannot take them, it says how many
    were not written and exits 1."""
    with Cluster(name="prod-sigint") as c:
        c.start()
        c.tally_ok("topic", "create", "sig")
        lines = "".join(f"line-{i}\n" for i in range(300)).encode()

        # The default linger: SIGINT once the producer has read the lines.
        p = spawn_producer(c, "sig")
        try:
            p.stdin.write(lines)
            p.stdin.flush()
            wait_until(lambda: unread(p) == 0, 30, "the producer to read its input")
            p.send_signal(signal.SIGINT)
            rc, out, err = finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(rc == 0 and "all 300 records read were written" in err,
              f"SIGINT: rc={rc} err={err!r}, {len(values(c, 'sig'))} records written")
        c.tally_ok("topic", "delete", "sig")
        c.tally_ok("topic", "create", "sig")

        # A linger longer than the test: the lines wait in the producer
        # until SIGINT makes it send them.
        p = spawn_producer(c, "sig", "--linger-ms", "60000")
        try:
            p.stdin.write(lines)
            p.stdin.flush()
            wait_until(lambda: unread(p) == 0, 30, "the producer to read its input")
            p.send_signal(signal.SIGINT)
            rc, out, err = finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(rc == 0, f"SIGINT: rc={rc} err={err!r}")
        check("all 300 records read were written" in err, f"SIGINT report: {err!r}")
        check(out.split() == [str(i) for i in range(300)], f"offsets printed: {out[:80]!r}")
        check(values(c, "sig") == [f"line-{i}" for i in range(300)], "records after SIGINT")

        # No cluster: nothing can be written; the report says so, exit 1.
        p = subprocess.Popen([TALLY, "-b", c.brokers(), "--timeout", "1500", "produce", "sig",
                              "--linger-ms", "60000"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(lines[:70])
            p.stdin.flush()
            wait_until(lambda: unread(p) == 0, 30, "the producer to read its input")
            for i in list(c.nodes):
                c.kill(i)
            p.send_signal(signal.SIGTERM)
            rc, out, err = finish(p)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        check(rc == 1, f"SIGTERM without a cluster: rc={rc} err={err!r}")
        check("0 of 10 records read were written, 10 were not" in err,
              f"SIGTERM without a cluster: {err!r}")


if __name__ == "__main__":
    run_tests([test_slow_pipe_line_written_while_input_open, test_tail_follow_through_a_pipe,
               test_sigint_sends_what_was_read])
