# test_tls.py - TLS on the client port and on the Raft links (issue 19):
# real tallyd processes with certificates made by deploy/make-certs.sh and
# the openssl command; a plaintext client, an unknown CA, an expired
# certificate and a wrong host name are refused with a clear message; the
# certificates are reloaded on SIGHUP under a running producer, which
# loses nothing.
#
#   TALLY_BUILD_DIR=build python3 test/integration/test_tls.py [NAME...]

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLY, Cluster, TestFailure, check, parse_records,  # noqa: E402
                     run_tally, run_tests, wait_until)

SRC_DIR = os.environ.get("TALLY_SRC_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MAKE_CERTS = os.path.join(SRC_DIR, "deploy", "make-certs.sh")


def sh(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       env=env)
    check(p.returncode == 0, f"{cmd} failed: {p.stderr.decode(errors='replace')}")
    return p.stdout


def make_certs(d, n=3, **env):
    sh([MAKE_CERTS, d, str(n)], env=dict(os.environ, **env))
    return d


def sign(d, ca_dir, name, cn, san, expired=False, days=30):
    """A certificate DIR/NAME.crt (+ .key) for CN=@cn with subjectAltName
    @san, signed by the CA in @ca_dir; with @expired it was valid only on
    2020-01-01 (openssl ca sets the dates itself: running openssl under
    faketime failed on CI when faketime found a stale semaphore of an
    earlier process with the same pid)."""
    key, csr, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".ext"))
    sh(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", key])
    sh(["openssl", "req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", csr])
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
        f.write(f"subjectAltName={san}\n")
    crt = os.path.join(d, name + ".crt")
    ca_crt, ca_key = os.path.join(ca_dir, "ca.crt"), os.path.join(ca_dir, "ca.key")
    if not expired:
        sh(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
            "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", ext, "-out", crt])
        return crt, key
    # openssl x509 cannot set a start date in OpenSSL 3.0; openssl ca can,
    # given a database of its own.
    ca_home = os.path.join(d, name + ".ca")
    os.makedirs(ca_home)
    open(os.path.join(ca_home, "index.txt"), "w").close()
    conf = os.path.join(ca_home, "ca.cnf")
    with open(conf, "w") as f:
        f.write(f"[ca]\ndefault_ca = c\n[c]\ndatabase = {ca_home}/index.txt\n"
                f"new_certs_dir = {ca_home}\nserial = {ca_home}/serial\n"
                "default_md = sha256\npolicy = p\n"
                "[p]\ncommonName = supplied\n")
    sh(["openssl", "ca", "-batch", "-config", conf, "-cert", ca_crt, "-keyfile", ca_key,
        "-in", csr, "-out", crt, "-startdate", "20200101000000Z",
        "-enddate", "20200102000000Z", "-extfile", ext, "-notext", "-rand_serial"])
    return crt, key


class TlsCluster(Cluster):
    """A cluster whose node I runs with certs/nodeI.crt, and whose CLI calls
    speak TLS with certs/ca.crt."""

    def __init__(self, certs, n=3, name="tls", extra_args=()):
        super().__init__(n=n, name=name, extra_args=extra_args)
        self.certs = certs
        self.node_certs = {}  # node id -> (cert, key) overriding nodeI's

    def argv(self, node_id):
        cert, key = self.node_certs.get(node_id, (
            os.path.join(self.certs, f"node{node_id}.crt"),
            os.path.join(self.certs, f"node{node_id}.key")))
        return super().argv(node_id) + [
            "--tls-cert", cert, "--tls-key", key,
            "--tls-ca", os.path.join(self.certs, "ca.crt")]

    def tally(self, *args, input=None, timeout=60, ids=None, brokers=None):
        return run_tally(["--tls-ca", os.path.join(self.certs, "ca.crt")] + list(args),
                         input=input, timeout=timeout,
                         brokers=brokers if brokers is not None else self.brokers(ids))


def log_of(c, node_id):
    with open(c.nodes[node_id].log_path, "rb") as f:
        return f.read().decode(errors="replace")


def test_tls_client_port():
    """A TLS cluster serves TLS clients; a plaintext client, a client with
    another CA and a TLS client on a plaintext port are refused, each with
    a message saying why."""
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        other = make_certs(os.path.join(tmp, "other"), n=1)
        with TlsCluster(certs, name="tls-port") as c:
            c.start()
            c.tally_ok("topic", "create", "t")
            r = c.tally_ok("produce", "t", input=b"a\nb\nc\n")
            check(r.text.split() == ["0", "1", "2"], f"offsets: {r!r}")
            recs = parse_records(c.read_node("t", 2, 3))
            check([v for _, v in recs] == [b"a", b"b", b"c"], f"records: {recs}")
            # A client certificate from the cluster's CA is accepted too.
            r = c.tally_ok("--tls-cert", os.path.join(certs, "client.crt"),
                           "--tls-key", os.path.join(certs, "client.key"), "topic", "list")
            check(b"t " in r.out, f"topic list: {r!r}")

            # Plaintext client: the node answers in clear that TLS is needed.
            r = run_tally(["--timeout", "1500", "topic", "list"], brokers=c.brokers([1]))
            check(r.rc == 1 and "requires TLS" in r.errtext, f"plaintext client: {r!r}")
            # A CA that did not sign the node's certificate.
            r = run_tally(["--timeout", "1500", "--tls-ca", os.path.join(other, "ca.crt"),
                           "topic", "list"], brokers=c.brokers([1]))
            check(r.rc == 1 and "certificate verify failed" in r.errtext,
                  f"unknown CA: {r!r}")
            check("unknown ca" in log_of(c, 1), "node 1 did not log the refused handshake")
            # A client certificate from another CA is refused by the node.
            r = run_tally(["--timeout", "1500", "--tls-ca", os.path.join(certs, "ca.crt"),
                           "--tls-cert", os.path.join(other, "client.crt"),
                           "--tls-key", os.path.join(other, "client.key"), "topic", "list"],
                          brokers=c.brokers([1]))
            check(r.rc == 1 and "TLS" in r.errtext, f"client cert of another CA: {r!r}")
            # A key that does not belong to the certificate: usage error.
            r = run_tally(["--tls-ca", os.path.join(certs, "ca.crt"),
                           "--tls-cert", os.path.join(certs, "client.crt"),
                           "--tls-key", os.path.join(certs, "node1.key"), "topic", "list"],
                          brokers=c.brokers([1]))
            check(r.rc == 2 and "does not match" in r.errtext, f"mismatched key: {r!r}")
        # A TLS client against a plaintext node.
        with Cluster(n=1, name="tls-plain") as p:
            p.start()
            r = run_tally(["--timeout", "1500", "--tls-ca", os.path.join(certs, "ca.crt"),
                           "topic", "list"], brokers=p.brokers())
            check(r.rc == 1 and "does not speak TLS" in r.errtext, f"TLS to plaintext: {r!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_expired_and_wrong_name():
    """A node with an expired certificate, or one that does not name the
    address the client dialled, is refused by the client."""
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"), n=1)
        expired = sign(tmp, certs, "expired", "node1", "IP:127.0.0.1",
                       expired=True)
        wrong = sign(tmp, certs, "wrong", "node1", "IP:127.0.0.2,DNS:elsewhere")
        for (cert, key), want in ((expired, "certificate has expired"),
                                  (wrong, "IP address mismatch")):
            with TlsCluster(certs, n=1, name="tls-bad") as c:
                c.node_certs[1] = (cert, key)
                c.spawn(1)
                # The node is up (it may not know its certificate is bad):
                # wait for its port, then see the client refuse it.
                last = []

                def refused():
                    c.check_up()
                    r = c.tally("--timeout", "1500", "topic", "list")
                    last[:] = [r]
                    return r.rc == 1 and want in r.errtext
                wait_until(refused, 30, f"the client to refuse: {want}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_reload_under_producer():
    """SIGHUP reloads a renewed certificate while a producer writes: the
    node keeps running, every acknowledged record is there, new
    connections get the new certificate, and a file that does not load
    keeps the old one."""
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        with TlsCluster(certs, name="tls-reload") as c:
            lid = c.start()
            c.tally_ok("topic", "create", "r")
            n = 20000
            prod = subprocess.Popen(
                [TALLY, "-b", c.brokers(), "--tls-ca", os.path.join(certs, "ca.crt"),
                 "bench", "produce", "r", "--count", str(n), "--size", "100",
                 "--inflight", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                node = c.nodes[lid]
                crt = os.path.join(certs, f"node{lid}.crt")
                with open(crt) as f:
                    old_pem = f.read()
                # Renew: a new key and certificate from the same CA.
                os.rename(crt, crt + ".old")
                os.rename(os.path.join(certs, f"node{lid}.key"),
                          os.path.join(certs, f"node{lid}.key.old"))
                make_certs(certs)
                with open(crt) as f:
                    new_pem = f.read()
                check(new_pem != old_pem, "make-certs.sh did not make a new certificate")
                for _ in range(3):
                    node.proc.send_signal(signal.SIGHUP)
                    time.sleep(0.2)
                out, err = prod.communicate(timeout=180)
            finally:
                if prod.poll() is None:
                    prod.kill()
                    prod.wait()
            check(prod.returncode == 0, f"producer failed: {err.decode(errors='replace')}")
            check(node.alive(), "the node died on SIGHUP")
            check("TLS certificates reloaded" in log_of(c, lid), "no reload in the log")
            got = ssl.get_server_certificate(("127.0.0.1", node.client_port))
            check(got.strip() == new_pem.strip(), "a new connection did not get the new cert")
            # From the leader that acknowledged them: a follower may not have
            # applied the last ones yet (topic list reads from any node).
            r = c.tally_ok("topic", "list", ids=[lid])
            line = [ln for ln in r.text.splitlines() if ln.startswith("r ")]
            check(line and line[0].split()[3] == str(n), f"not every record is there: {r!r}")
            # A broken file: the reload fails and the node keeps serving.
            with open(os.path.join(certs, f"node{lid}.key"), "w") as f:
                f.write("not a key\n")
            node.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "TLS reload failed" in log_of(c, lid), 10, "the failed reload")
            c.tally_ok("topic", "list", ids=[lid])
            check(node.alive(), "the node died on a bad reload")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_client_cert_required():
    """With tls_client_auth=required, a client must present a certificate
    of the cluster's CA: one without is refused at once with the reason,
    one with works."""
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"), n=1)
        with TlsCluster(certs, n=1, name="tls-mtls",
                        extra_args=["--set", "tls_client_auth=required"]) as c:
            c.spawn(1)
            ca = os.path.join(certs, "ca.crt")
            cert = ["--tls-cert", os.path.join(certs, "client.crt"),
                    "--tls-key", os.path.join(certs, "client.key")]

            def works():
                c.check_up()
                return c.tally(*cert, "topic", "create", "m").rc == 0
            wait_until(works, 30, "a client with a certificate to create a topic")
            r = run_tally(["--timeout", "3000", "--tls-ca", ca, "topic", "list"],
                          brokers=c.brokers())
            check(r.rc == 1 and "certificate required" in r.errtext,
                  f"client without a certificate: {r!r}")
            check("refused by every node" in r.errtext, f"the client kept retrying: {r!r}")
            r = c.tally_ok(*cert, "topic", "list")
            check(b"m " in r.out, f"topic list: {r!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_metrics_https():
    """metrics_tls = true serves /metrics and /health over HTTPS with the
    node's certificate; a plain HTTP request is answered that the port
    speaks HTTPS."""
    import urllib.error
    import urllib.request
    from harness import free_ports
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"), n=1)
        port = free_ports(1)[0]
        with TlsCluster(certs, n=1, name="tls-metrics",
                        extra_args=["--metrics", f"127.0.0.1:{port}", "--set",
                                    "metrics_tls=true"]) as c:
            c.start()
            ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx,
                                        timeout=10) as r:
                body = r.read().decode()
            check(r.status == 200 and "tally_" in body, f"metrics over HTTPS: {body[:200]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
                raise TestFailure("plain HTTP on the HTTPS port was answered with 2xx")
            except urllib.error.HTTPError as e:
                text = e.read().decode()
                check(e.code == 400 and "use https" in text, f"plain HTTP: {e.code} {text}")
            # A client that does not trust the CA is refused.
            bad = ssl.create_default_context()
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=bad,
                                       timeout=10)
                raise TestFailure("HTTPS without the CA was accepted")
            except urllib.error.URLError as e:
                check("CERTIFICATE_VERIFY_FAILED" in str(e), f"no CA: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_peer_identity():
    """A node whose certificate is for another node id, or from another CA,
    never joins: both sides log the refusal, the other two keep working,
    and with its own certificate it joins and catches up."""
    tmp = tempfile.mkdtemp(prefix="tally-tls-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        other = make_certs(os.path.join(tmp, "other"), n=3)
        cases = (
            ((os.path.join(certs, "node2.crt"), os.path.join(certs, "node2.key")),
             "certificate is for CN=node2, not CN=node3", "closed by the peer"),
            ((os.path.join(other, "node3.crt"), os.path.join(other, "node3.key")),
             "certificate verify failed", "alert unknown ca"),
        )
        for (cert, key), on_good, on_bad in cases:
            with TlsCluster(certs, name="tls-peer") as c:
                c.node_certs[3] = (cert, key)
                c.start(wait=False)
                lid = c.wait_leader(ids=[1, 2])
                c.tally_ok("topic", "create", "p", ids=[1, 2])
                c.tally_ok("produce", "p", input=b"x\ny\nz\n", ids=[1, 2])
                wait_until(lambda: on_good in log_of(c, 1) or on_good in log_of(c, 2), 30,
                           f"nodes 1-2 to log '{on_good}'")
                wait_until(lambda: on_bad in log_of(c, 3), 30, f"node 3 to log '{on_bad}'")
                st = c.status(ids=[lid])
                m3 = [m for m in st["members"] if m["id"] == 3]
                # Index 1 is its own bootstrap configuration; nothing more.
                check(m3 and (m3[0].get("applied_index") or 0) <= 1,
                      f"node 3 applied entries with a wrong certificate: {st}")
                check("became leader" not in log_of(c, 3) and c.leader(ids=[1, 2]) in (1, 2),
                      "the imposter disturbed the leadership")
                # Its own certificate: it joins and catches up.
                c.stop(3)
                del c.node_certs[3]
                c.spawn(3)
                recs = parse_records(c.read_node("p", 3, 3, timeout=60))
                check([v for _, v in recs] == [b"x", b"y", b"z"], f"node 3 has {recs}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_insecure_needed_off_loopback():
    """Without TLS, tallyd refuses a non-loopback address unless given
    --insecure, and says how to fix it."""
    with Cluster(n=1, name="insecure") as c:
        argv = c.argv(1)
        argv = [a.replace("127.0.0.1:%d" % c.nodes[1].client_port,
                          "0.0.0.0:%d" % c.nodes[1].client_port) for a in argv]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2 and "not a loopback address" in err and "--insecure" in err,
              f"tallyd without TLS on 0.0.0.0: rc={p.returncode} {err}")


if __name__ == "__main__":
    run_tests([test_tls_client_port, test_tls_expired_and_wrong_name,
               test_tls_reload_under_producer, test_tls_client_cert_required,
               test_tls_metrics_https, test_tls_peer_identity,
               test_insecure_needed_off_loopback])
