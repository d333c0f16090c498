# test_auth.py - client authentication (issue 19): SCRAM-SHA-256 logins
# against users replicated through Raft, and client certificates, on a
# TLS cluster with auth = required. Real tallyd processes and the real CLI;
# certificates from deploy/make-certs.sh.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_auth.py [NAME...]

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, check, parse_records, run_tally, run_tests,  # noqa: E402
                     wait_until)
from test_tls import TlsCluster, log_of, make_certs  # noqa: E402

PASSWORD = "correct horse battery staple"


class AuthCluster(TlsCluster):
    """A TLS cluster with auth = required; its CLI calls log in as @user
    (password from the environment) or, with user None, present the
    client certificate (the administrator)."""

    def __init__(self, certs, n=3, name="auth"):
        super().__init__(certs, n=n, name=name, extra_args=["--set", "auth=required"])

    def as_admin(self, *args, input=None, ids=None):
        return run_tally(["--tls-ca", os.path.join(self.certs, "ca.crt"),
                          "--tls-cert", os.path.join(self.certs, "client.crt"),
                          "--tls-key", os.path.join(self.certs, "client.key")] + list(args),
                         input=input, brokers=self.brokers(ids))

    def as_user(self, user, password, *args, input=None, ids=None):
        env = dict(os.environ, TALLY_PASSWORD=password)
        return run_tally(["--tls-ca", os.path.join(self.certs, "ca.crt"), "--user", user]
                         + list(args), input=input, brokers=self.brokers(ids), env=env)

    # The harness's own calls (status, leader) go through the admin's
    # certificate.
    def tally(self, *args, input=None, timeout=60, ids=None, brokers=None):
        return run_tally(["--tls-ca", os.path.join(self.certs, "ca.crt"),
                          "--tls-cert", os.path.join(self.certs, "client.crt"),
                          "--tls-key", os.path.join(self.certs, "client.key")] + list(args),
                         input=input, timeout=timeout,
                         brokers=brokers if brokers is not None else self.brokers(ids))


def ok(r, what):
    check(r.rc == 0, f"{what}: {r!r}")
    return r


def test_scram_login():
    """Without a login every request is refused; the administrator (client
    certificate) adds a user; the user logs in with the right password
    (CLI, the libtally producer, tally backup) on every node, also after a
    restart; a wrong password and an unknown user are refused at once;
    a removed user is refused; no password reaches a log or ps."""
    tmp = tempfile.mkdtemp(prefix="tally-auth-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        with AuthCluster(certs) as c:
            c.start()
            # No login at all.
            r = run_tally(["--tls-ca", os.path.join(certs, "ca.crt"), "topic", "list"],
                          brokers=c.brokers())
            check(r.rc == 1 and "authentication required" in r.errtext, f"anonymous: {r!r}")
            # The administrator adds alice (password on stdin, not argv).
            ok(c.as_admin("user", "add", "alice", input=(PASSWORD + "\n").encode()), "user add")
            # Any node answers a list: wait until the one asked has applied it.
            wait_until(lambda: c.as_admin("user", "list").text.split() == ["alice"], 30,
                       "user list to show alice")
            # alice works, on every node (the users are replicated).
            ok(c.as_user("alice", PASSWORD, "topic", "create", "t"), "create as alice")
            r = ok(c.as_user("alice", PASSWORD, "produce", "t", input=b"a\nb\n"), "produce")
            check(r.text.split() == ["0", "1"], f"offsets: {r!r}")
            for i in c.nodes:
                def listed():
                    r = c.as_user("alice", PASSWORD, "topic", "list", ids=[i])
                    return r.rc == 0 and b"t " in r.out
                wait_until(listed, 30, f"alice to read from node {i}")
            # SCRAM-SHA-512 works as well (the user has credentials of both).
            ok(c.as_user("alice", PASSWORD, "--sasl-mechanism", "SCRAM-SHA-512", "topic",
                         "list"), "SCRAM-SHA-512")
            check(any("as user 'alice' (SCRAM-SHA-512)" in log_of(c, i) for i in c.nodes),
                  "no login with SCRAM-SHA-512 was logged")
            # The producer of libtally logs in too (tally bench).
            r = ok(c.as_user("alice", PASSWORD, "bench", "produce", "t", "--count", "500",
                             "--size", "100", "--inflight", "50"), "bench as alice")
            # tally backup logs in.
            bdir = os.path.join(tmp, "backup")
            r = ok(c.as_user("alice", PASSWORD, "backup", "--to", bdir, ids=[1]), "backup")
            # Wrong password, unknown user: refused at once, with the reason.
            r = c.as_user("alice", "wrong", "topic", "list")
            check(r.rc == 1 and "authentication" in r.errtext and "refused by every node"
                  in r.errtext, f"wrong password: {r!r}")
            r = c.as_user("mallory", PASSWORD, "topic", "list")
            check(r.rc == 1 and "authentication" in r.errtext, f"unknown user: {r!r}")
            check(any("authentication as user 'alice' failed" in log_of(c, i) for i in c.nodes),
                  "no node logged the failed login")
            # A password on the command line is not taken.
            r = run_tally(["--tls-ca", os.path.join(certs, "ca.crt"), "--user", "alice",
                           "topic", "list"], brokers=c.brokers(),
                          env={k: v for k, v in os.environ.items() if k != "TALLY_PASSWORD"})
            check(r.rc == 2 and "never on the command line" in r.errtext, f"no password: {r!r}")
            # The users survive a restart of every node (catalog).
            for i in list(c.nodes):
                c.stop(i)
                c.spawn(i)
            c.wait_leader()
            def works():
                return c.as_user("alice", PASSWORD, "topic", "list").rc == 0
            wait_until(works, 30, "alice to log in after the restart")
            # Change the password, then remove the user.
            ok(c.as_admin("user", "passwd", "alice", input=b"new-secret\n"), "passwd")
            # (A follower may take a moment to apply the change.)
            wait_until(lambda: c.as_user("alice", PASSWORD, "topic", "list").rc == 1, 30,
                       "the old password to be refused everywhere")
            ok(c.as_user("alice", "new-secret", "topic", "list"), "new password")
            ok(c.as_admin("user", "remove", "alice"), "user remove")
            r = c.as_admin("user", "remove", "alice")
            check(r.rc == 1 and "not found" in r.errtext, f"remove twice: {r!r}")
            wait_until(lambda: c.as_user("alice", "new-secret", "topic", "list").rc == 1, 30,
                       "the removed user to be refused")
            # No secret in the logs, the backup's files or ps.
            for i in c.nodes:
                text = log_of(c, i)
                check(PASSWORD not in text and "new-secret" not in text,
                      f"a password is in node {i}'s log")
            for root, _, files in os.walk(bdir):
                for f in files:
                    with open(os.path.join(root, f), "rb") as fh:
                        data = fh.read()
                    check(PASSWORD.encode() not in data, f"the password is in backup file {f}")
            ps = subprocess.run(["ps", "-eo", "args"], stdout=subprocess.PIPE).stdout
            check(PASSWORD.encode() not in ps, "the password is in ps output")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_auth_needs_tls():
    """auth = required without TLS is a configuration error (exit 2)."""
    from harness import Cluster
    with Cluster(n=1, name="auth-notls", extra_args=["--set", "auth=required"]) as c:
        p = subprocess.run(c.argv(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2 and "auth = required needs TLS" in err,
              f"rc={p.returncode} {err}")


if __name__ == "__main__":
    run_tests([test_scram_login, test_auth_needs_tls])
