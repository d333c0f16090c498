# test_console_auth.py - the web console with security on (issue 21,
# docs/console.md "Authentication"): a real TLS cluster with auth =
# required and authorize = acl, users and ACLs added through the CLI as in
# test_acl.py. /ui/api/ asks for HTTP Basic credentials of a user of the
# catalog (401 without them or with wrong ones), shows each user only the
# topics and groups it may describe and the records it may read (403
# otherwise), forgets a removed user and an old password at once; the
# page shows its own login form in a real headless chromium and, once
# logged in, the topics view without console errors.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_console_auth.py [NAME...]

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, free_ports, run_tests, wait_until  # noqa: E402
from test_auth import AuthCluster, ok  # noqa: E402
from test_console import Browser, no_console_errors, table  # noqa: E402
from test_tls import log_of, make_certs  # noqa: E402

USERS = {"alice": "pw-alice", "bob": "pw-bob"}

RULES = [
    ["alice", "--topic", "a-topic", "--operation", "read"],
    ["alice", "--group-prefix", "alice-", "--operation", "read"],
    ["bob", "--topic-prefix", "b-", "--operation", "all"],
]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(port, path, auth=None, headers=None, host="127.0.0.1", tls=None):
    """(status, headers with lower-case names, parsed JSON or raw bytes);
    over HTTPS when @tls is an ssl context."""
    h = dict(headers or {})
    if auth is not None:
        h["Authorization"] = auth
    if tls is not None:
        c = http.client.HTTPSConnection(host, port, timeout=10, context=tls)
    else:
        c = http.client.HTTPConnection(host, port, timeout=10)
    try:
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()
    if hdrs.get("content-type", "").startswith("application/json"):
        body = json.loads(body)
    return r.status, hdrs, body


def topic_names(port, user):
    st, _, body = get(port, "/ui/api/topics", basic(user, USERS[user]))
    check(st == 200, f"{user}: topics: {st} {body}")
    return sorted(t["name"] for t in body["topics"])


class ConsoleAuthCluster(AuthCluster):
    """One node, auth = required, authorize = acl, the client certificate
    a super user; users, topics, group positions and ACLs set up."""

    def __init__(self, tmp, metrics_host="127.0.0.1", extra=()):
        super().__init__(make_certs(os.path.join(tmp, "certs"), n=1), n=1, name="console-auth")
        self.metrics_port = free_ports(1)[0]
        self.extra_args += ["--set", "authorize=acl", "--set", "super_users=client",
                            "--metrics", f"{metrics_host}:{self.metrics_port}"] + list(extra)

    def setup(self):
        self.start()
        for user, pw in USERS.items():
            ok(self.as_admin("user", "add", user, input=(pw + "\n").encode()), "user add")
        for t in ("a-topic", "b-topic", "c-topic"):
            ok(self.as_admin("topic", "create", t), "topic create")
            ok(self.as_admin("produce", t, input=f"{t}-1\n{t}-2\n".encode()), "produce")
        for g, t in (("alice-g", "a-topic"), ("other-g", "a-topic"), ("alice-b", "b-topic")):
            ok(self.as_admin("consume", t, "-n", "1", "--group", g), f"consume --group {g}")
        for rule in RULES:
            ok(self.as_admin("acl", "add", "--principal", *rule), f"acl add {rule}")


def test_api_needs_login():
    """Without credentials, with a malformed header, a wrong password or an
    unknown user every /ui/api/ route answers 401 with a Basic challenge
    and reads nothing; the page itself, /metrics and /health stay open."""
    tmp = tempfile.mkdtemp(prefix="tally-console-auth-")
    try:
        with ConsoleAuthCluster(tmp) as c:
            c.setup()
            port = c.metrics_port
            for route in ("node", "cluster", "topics", "rates", "groups",
                          "records?topic=a-topic", "no-such-route"):
                for auth in (None, "Basic !!!", "Bearer x", basic("alice", "wrong"),
                             basic("mallory", "pw-alice"), basic("alice", "")):
                    st, h, body = get(port, "/ui/api/" + route, auth)
                    check(st == 401, f"{route} with {auth}: {st} {body}")
                    check(h.get("www-authenticate") == 'Basic realm="tally"',
                          f"{route}: challenge {h.get('www-authenticate')!r}")
                    check("a-topic-1" not in json.dumps(body), f"{route}: leaked records")
            # The page's own calls get a challenge no browser acts on.
            st, h, _ = get(port, "/ui/api/topics", headers={"X-Requested-With": "tally-console"})
            check(st == 401 and not h.get("www-authenticate", "").lower().startswith("basic"),
                  f"page challenge: {st} {h}")
            check("authentication as user 'alice' failed" in log_of(c, 1),
                  "a wrong password is not logged")
            for path in ("/ui/", "/ui/app.js", "/metrics", "/health"):
                st, _, _ = get(port, path)
                check(st == 200, f"{path} without credentials: {st}")
            # Right credentials: the node's own view.
            st, _, body = get(port, "/ui/api/node", basic("alice", USERS["alice"]))
            check(st == 200 and body["id"] == 1, f"node as alice: {st} {body}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_acls_filter_the_api():
    """alice (read on a-topic, read on groups alice-*) sees a-topic only,
    reads its records, gets 403 on b-topic's records and rates and sees
    only her group on her topic; bob (all on b-*) sees b-topic only; the
    administrator's certificate name is a super user but has no password,
    so it cannot log in here."""
    tmp = tempfile.mkdtemp(prefix="tally-console-auth-")
    try:
        with ConsoleAuthCluster(tmp) as c:
            c.setup()
            port = c.metrics_port
            a, b = basic("alice", USERS["alice"]), basic("bob", USERS["bob"])
            check(topic_names(port, "alice") == ["a-topic"], "alice's topics")
            check(topic_names(port, "bob") == ["b-topic"], "bob's topics")
            st, _, body = get(port, "/ui/api/records?topic=a-topic", a)
            check(st == 200 and len(body["records"]) == 2, f"alice reads a-topic: {st} {body}")
            for path in ("/ui/api/records?topic=b-topic", "/ui/api/records?topic=b-topic&key=x",
                         "/ui/api/records?topic=no-such", "/ui/api/rates?topic=b-topic"):
                st, _, body = get(port, path, a)
                check(st == 403 and "not authorized: alice may not" in body.get("error", ""),
                      f"alice {path}: {st} {body}")
            st, _, body = get(port, "/ui/api/records?topic=b-topic", b)
            check(st == 200 and len(body["records"]) == 2, f"bob reads b-topic: {st} {body}")
            st, _, body = get(port, "/ui/api/groups", a)
            check(st == 200 and [(g["group"], g["topic"]) for g in body["groups"]]
                  == [("alice-g", "a-topic")], f"alice's groups: {body}")
            st, _, body = get(port, "/ui/api/groups", b)
            check(st == 200 and body["groups"] == [], f"bob's groups: {body}")
            st, _, body = get(port, "/ui/api/cluster", b)
            check(st == 200 and len(body["members"]) == 1, f"cluster as bob: {st} {body}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_changed_and_removed_users():
    """A new password replaces the old one at once (the cache of checked
    logins does not keep the old one alive), and a removed user is refused
    from its next request."""
    tmp = tempfile.mkdtemp(prefix="tally-console-auth-")
    try:
        with ConsoleAuthCluster(tmp) as c:
            c.setup()
            port = c.metrics_port
            for _ in range(3):  # logged in, and in the cache
                check(get(port, "/ui/api/topics", basic("bob", "pw-bob"))[0] == 200, "bob")
            ok(c.as_admin("user", "passwd", "bob", input=b"pw-bob-2\n"), "user passwd")
            wait_until(lambda: get(port, "/ui/api/topics", basic("bob", "pw-bob"))[0] == 401,
                       10, "bob's old password to stop working")
            check(get(port, "/ui/api/topics", basic("bob", "pw-bob-2"))[0] == 200,
                  "bob's new password")
            check(get(port, "/ui/api/topics", basic("alice", "pw-alice"))[0] == 200, "alice")
            ok(c.as_admin("user", "remove", "alice"), "user remove")
            wait_until(lambda: get(port, "/ui/api/topics", basic("alice", "pw-alice"))[0] == 401,
                       10, "removed alice to be refused")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def outside_address():
    """This machine's address on its way out (not loopback), or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # UDP: no packet is sent
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_password_only_on_a_private_channel():
    """Basic carries the password itself: on plain HTTP from a peer that
    is not on loopback (--metrics 0.0.0.0 with --insecure) the API answers
    403 and asks for no password, with or without one; from loopback it
    works; over HTTPS (metrics_tls) it works from anywhere."""
    addr = outside_address()
    if addr is None:
        print("# no address but loopback here: only the loopback and HTTPS halves run")
    tmp = tempfile.mkdtemp(prefix="tally-console-auth-")
    try:
        with ConsoleAuthCluster(tmp, metrics_host="0.0.0.0", extra=["--insecure"]) as c:
            c.setup()
            a = basic("alice", USERS["alice"])
            check(get(c.metrics_port, "/ui/api/topics", a)[0] == 200, "alice from loopback")
            if addr is not None:
                for auth in (a, None):
                    st, h, body = get(c.metrics_port, "/ui/api/topics", auth, host=addr)
                    check(st == 403 and "HTTPS" in body["error"] and "www-authenticate" not in h,
                          f"plain HTTP from {addr} with {auth}: {st} {h} {body}")
                check(get(c.metrics_port, "/ui/", host=addr)[0] == 200, "the page itself")
        shutil.rmtree(tmp)
        os.mkdir(tmp)
        with ConsoleAuthCluster(tmp, metrics_host="0.0.0.0",
                                extra=["--set", "metrics_tls=true"]) as c:
            c.setup()
            ctx = ssl.create_default_context(cafile=os.path.join(c.certs, "ca.crt"))
            ctx.check_hostname = False  # the node's certificate names 127.0.0.1
            for host in ["127.0.0.1"] + ([addr] if addr else []):
                st, _, body = get(c.metrics_port, "/ui/api/topics", basic("alice", USERS["alice"]),
                                  host=host, tls=ctx)
                check(st == 200 and [t["name"] for t in body["topics"]] == ["a-topic"],
                      f"HTTPS from {host}: {st} {body}")
                st, h, _ = get(c.metrics_port, "/ui/api/topics", host=host, tls=ctx)
                check(st == 401 and h.get("www-authenticate") == 'Basic realm="tally"',
                      f"HTTPS from {host} without credentials: {st} {h}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_login_form_in_chromium():
    """The page loads without a login, shows its own form (no browser
    dialog) when the API answers 401; a wrong password shows the form
    again; logging in as alice shows the topics view with a-topic only,
    with no console errors once logged in; logging out shows the form."""
    tmp = tempfile.mkdtemp(prefix="tally-console-auth-")
    try:
        with ConsoleAuthCluster(tmp) as c, Browser() as br:
            c.setup()
            url = f"http://127.0.0.1:{c.metrics_port}/ui/#topics"
            br.get(url)
            br.wait_js("return !document.getElementById('login').hidden", "the login form")
            check(br.js("return document.body.dataset.loaded || ''") == "",
                  "a view loaded without a login")
            br.console_errors()  # the 401 that asked for the login is logged; drop it

            def log_in(user, pw):
                br.js("""document.getElementById('login-user').value = arguments[0];
                         document.getElementById('login-password').value = arguments[1];
                         document.getElementById('login-go').click();""", user, pw)

            log_in("alice", "wrong")
            br.wait_js("return !document.getElementById('login').hidden && "
                       "/Wrong/.test(document.getElementById('login-msg').textContent)",
                       "the form again after a wrong password")
            br.console_errors()
            log_in("alice", USERS["alice"])
            br.wait_js("return document.body.dataset.loaded === 'topics'", "the topics view")
            rows = table(br, "topics")
            check([r[0]["topic"] for r in rows] == ["a-topic"], f"topics shown: {rows}")
            check(br.js("return document.getElementById('login').hidden"), "form still shown")
            # It keeps polling with the credentials: still loaded, no errors.
            br.js("delete document.body.dataset.loaded")
            br.wait_js("return document.body.dataset.loaded === 'topics'", "a poll")
            check(br.js("return document.getElementById('error').hidden"),
                  "an error is shown: " + str(br.js("return document.getElementById('error')"
                                                    ".textContent")))
            no_console_errors(br, "logged in")
            br.js("document.getElementById('logout').click()")
            br.wait_js("return !document.getElementById('login').hidden", "the form after log out")
            check(br.js("return sessionStorage.length") == 0, "credentials kept after log out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ConsoleTlsCluster(AuthCluster):
    """Three nodes over TLS, auth = required, authorize = acl; node i
    serves the console on its own metrics port."""

    def __init__(self, certs):
        super().__init__(certs, n=3, name="console-tls")
        taken = {p for n in self.nodes.values() for p in (n.client_port, n.raft_port)}
        ports = []
        while len(ports) < len(self.nodes):
            ports = [p for p in free_ports(len(self.nodes)) if p not in taken]
        for i, p in zip(sorted(self.nodes), ports):
            self.nodes[i].metrics_port = p
        self.extra_args += ["--set", "authorize=acl", "--set", "super_users=client"]

    def argv(self, node_id):
        return super().argv(node_id) + [
            "--metrics", f"127.0.0.1:{self.nodes[node_id].metrics_port}"]


def test_cluster_view_over_tls():
    """On a TLS cluster with auth = required the console asks the other
    members over TLS with the node's certificate: /ui/api/cluster shows
    every member reachable with the role and leader `tally status --json`
    shows; a SIGKILLed follower turns unreachable within a few seconds and
    reachable again once restarted; a stopped one (it takes the connection
    but not the handshake) is logged once per streak, not once a tick; a
    SIGHUP reload and a stop during a handshake."""
    tmp = tempfile.mkdtemp(prefix="tally-console-tls-")
    try:
        with ConsoleTlsCluster(make_certs(os.path.join(tmp, "certs"))) as c:
            leader = c.start()
            ok(c.as_admin("user", "add", "alice", input=b"pw-alice\n"), "user add")
            port = c.nodes[leader].metrics_port
            alice = basic("alice", "pw-alice")

            def view():
                st, _, body = get(port, "/ui/api/cluster", alice)
                check(st == 200, f"cluster: {st} {body}")
                return body, {m["id"]: m for m in body["members"]}

            def agrees():
                body, members = view()
                status = c.status()
                if status is None or len(members) != 3:
                    return False
                roles = {m["id"]: m["role"] for m in status["members"]}
                return (all(m["reachable"] for m in members.values()) and
                        {i: m["role"] for i, m in members.items()} == roles and
                        body["leader_id"] == status["leader_id"] == leader)

            wait_until(agrees, 20, "the console to show every member as `tally status` does")
            _, members = view()
            check(sorted(m["role"] for m in members.values()) ==
                  ["follower", "follower", "leader"], f"roles: {members}")
            follower = min(i for i in members if i != leader)

            c.kill(follower)
            wait_until(lambda: not view()[1][follower]["reachable"], 8,
                       f"node {follower} shown unreachable after SIGKILL")
            c.restart(follower)
            wait_until(lambda: view()[1][follower]["reachable"] and
                       view()[1][follower]["role"] == "follower", 20,
                       f"node {follower} reachable again after its restart")
            wait_until(agrees, 20, "every member reachable again")

            def warnings():
                return log_of(c, leader).count("TLS handshake failed")

            before = warnings()
            c.pause(follower)
            try:
                wait_until(lambda: not view()[1][follower]["reachable"], 8,
                           f"node {follower} shown unreachable while stopped")
                wait_until(lambda: warnings() > before, 8, "a warning for the handshake")
                time.sleep(5)  # several more ticks without an answer
                check(warnings() == before + 1,
                      f"{warnings() - before} warnings for one streak of failed handshakes")
            finally:
                c.resume(follower)
            wait_until(agrees, 20, "every member reachable after the resume")
            # A certificate reload: the console reconnects with the new
            # contexts and goes on answering.
            c.nodes[leader].proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "TLS certificates reloaded" in log_of(c, leader), 10, "the reload")
            time.sleep(2)
            wait_until(agrees, 10, "every member reachable after the reload")
            check(warnings() == before + 1, "a warning after the reload")
            # A clean stop while a handshake with a stopped member is under
            # way (a new one starts each 2 s and lasts 1.5 s): every handle
            # closes, exit 0 (no leak under the sanitizers), no warning.
            before = warnings()
            c.pause(follower)
            try:
                wait_until(lambda: warnings() > before, 8, "a warning for the new streak")
                time.sleep(1.0)
                c.stop(leader)
            finally:
                c.resume(follower)
            check(warnings() == before + 1, "a warning for the handshake cut by the stop")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_api_needs_login, test_acls_filter_the_api, test_changed_and_removed_users,
               test_password_only_on_a_private_channel, test_login_form_in_chromium,
               test_cluster_view_over_tls])
