# test_acl.py - per-topic ACLs (issue 19): a table of requests by three
# users against a set of rules (by name and by prefix, allow and deny),
# each row checked allowed or denied through the real CLI against a real
# TLS cluster with auth = required and authorize = acl; refusals are
# answered "not authorized", logged with the principal and counted in
# /metrics.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_acl.py [NAME...]

import os
import shutil
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, free_ports, run_tests  # noqa: E402
from test_auth import AuthCluster, ok  # noqa: E402
from test_tls import log_of, make_certs  # noqa: E402

USERS = {"alice": "pw-alice", "bob": "pw-bob", "carol": "pw-carol"}

# tally acl add arguments (principal first).
RULES = [
    ["alice", "--topic", "orders", "--operation", "write"],
    ["alice", "--topic-prefix", "orders", "--operation", "read"],
    ["alice", "--group-prefix", "alice-", "--operation", "read"],
    ["bob", "--topic-prefix", "bob-", "--operation", "create"],
    ["bob", "--topic-prefix", "bob-", "--operation", "delete"],
    ["bob", "--topic-prefix", "pay", "--operation", "all"],
    ["bob", "--topic", "payments-frozen", "--operation", "write", "--deny"],
    ["carol", "--cluster", "--operation", "read"],
    ["carol", "--cluster", "--operation", "describe"],
    ["carol", "--cluster", "--operation", "alter"],
]

# (user, CLI arguments, stdin, allowed?) - every operation, allowed and
# denied, by name and by prefix.
TABLE = [
    ("alice", ["produce", "orders"], b"x\n", True),            # write, by name
    ("alice", ["produce", "orders-eu"], b"x\n", False),        # write is by name only
    ("alice", ["consume", "orders-eu", "-n", "1"], None, True),  # read, by prefix
    ("alice", ["consume", "payments", "-n", "1"], None, False),
    ("alice", ["consume", "orders", "-n", "1", "--group", "alice-g"], None, True),
    ("alice", ["consume", "orders", "-n", "1", "--group", "other"], None, False),
    ("alice", ["consume", "orders", "-k", "k1"], None, True),        # a stream read
    ("alice", ["consume", "payments", "-k", "k1"], None, False),
    ("alice", ["consume", "orders", "--filter", "k*", "-n", "1"], None, True),  # filtered
    ("alice", ["consume", "payments", "--filter", "k*", "-n", "1"], None, False),
    ("alice", ["topic", "create", "alice-new"], None, False),  # create
    ("bob", ["topic", "create", "bob-1"], None, True),         # create, by prefix
    ("bob", ["topic", "create", "carol-1"], None, False),
    ("bob", ["topic", "delete", "bob-1"], None, True),         # delete, by prefix
    ("bob", ["topic", "delete", "orders"], None, False),
    ("bob", ["produce", "payments"], b"x\n", True),            # all, by prefix
    ("bob", ["produce", "payments-frozen"], b"x\n", False),    # deny wins
    ("bob", ["consume", "payments-frozen", "-n", "1"], None, True),  # only write denied
    ("bob", ["group", "list"], None, False),                   # describe cluster
    ("carol", ["group", "list"], None, True),
    ("alice", ["user", "list"], None, False),                  # describe cluster
    ("carol", ["user", "list"], None, True),
    ("alice", ["acl", "list"], None, False),
    ("carol", ["acl", "list"], None, True),
    ("bob", ["member", "transfer", "1"], None, False),         # alter cluster
    ("carol", ["user", "add", "dave"], b"pw-dave\n", True),    # alter cluster
    ("alice", ["user", "remove", "dave"], None, False),
    ("bob", ["backup", "--to", "BACKUP"], None, False),        # read cluster
    ("carol", ["backup", "--to", "BACKUP"], None, True),
]


def test_acl_table():
    """Every row of the table is allowed or denied as the rules say; a
    denial says "not authorized" and names the principal, the operation
    and the resource; the node logs it and counts it in /metrics; super
    users (the client certificate) need no rule."""
    tmp = tempfile.mkdtemp(prefix="tally-acl-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"), n=1)
        port = free_ports(1)[0]
        with AuthCluster(certs, n=1, name="acl") as c:
            c.extra_args += ["--set", "authorize=acl", "--set", "super_users=client",
                             "--metrics", f"127.0.0.1:{port}"]
            c.start()
            for user, pw in USERS.items():
                ok(c.as_admin("user", "add", user, input=(pw + "\n").encode()), "user add")
            for t in ("orders", "orders-eu", "payments", "payments-frozen"):
                ok(c.as_admin("topic", "create", t), "topic create")
                ok(c.as_admin("produce", t, input=b"seed\n"), "seed")
            for rule in RULES:
                ok(c.as_admin("acl", "add", "--principal", *rule), f"acl add {rule}")
            r = ok(c.as_admin("acl", "list"), "acl list")  # one node: it applied them all
            check(len(r.text.strip().splitlines()) == len(RULES) + 1, f"acl list: {r!r}")
            r = c.as_admin("acl", "add", "--principal", *RULES[0])
            check(r.rc == 1 and "exists" in r.errtext, f"duplicate rule: {r!r}")
            failures = []
            for i, (user, args, stdin, allowed) in enumerate(TABLE):
                args = [a.replace("BACKUP", os.path.join(tmp, f"backup{i}")) for a in args]
                r = c.as_user(user, USERS[user], "--timeout", "5000", *args, input=stdin)
                denied = r.rc != 0 and "not authorized" in r.errtext
                if allowed and r.rc != 0:
                    failures.append(f"row {i} {user} {args}: should be allowed: {r!r}")
                elif not allowed and not denied:
                    failures.append(f"row {i} {user} {args}: should be denied: {r!r}")
                elif denied and user not in r.errtext:
                    failures.append(f"row {i}: the refusal does not name {user}: {r.errtext}")
            check(not failures, "\n".join(failures))
            check("denied: bob may not write topic payments-frozen" in log_of(c, 1),
                  "the node did not log a denial with its principal")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as m:
                text = m.read().decode()
            check('code="DENIED"' in text, "denials are not counted in /metrics")
            # Removing a rule takes the right away.
            ok(c.as_admin("acl", "remove", "--principal", *RULES[0]), "acl remove")
            r = c.as_user("alice", USERS["alice"], "produce", "orders", input=b"y\n")
            check(r.rc == 1 and "not authorized" in r.errtext, f"after remove: {r!r}")
            r = c.as_admin("acl", "remove", "--principal", *RULES[0])
            check(r.rc == 1 and "no such rule" in r.errtext, f"remove twice: {r!r}")
            # The rules survive a restart (catalog).
            c.stop(1)
            c.spawn(1)
            c.wait_leader()
            ok(c.as_user("bob", USERS["bob"], "produce", "payments", input=b"z\n"),
               "bob after restart")
            r = c.as_user("bob", USERS["bob"], "produce", "payments-frozen", input=b"z\n")
            check(r.rc == 1 and "not authorized" in r.errtext, f"deny after restart: {r!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_acl_table])
