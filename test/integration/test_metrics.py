# test_metrics.py - real tallyd processes with --metrics: the Prometheus
# text on /metrics (named metrics present, the text parses, values move when
# records are produced and fetched), /health (200 on a healthy node, 503
# with a reason on a node cut off from the others), and the small HTTP
# server's answers to wrong paths, methods and malformed requests.
#
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/test_metrics.py

import http.client
import math
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TALLYD, Cluster, TestFailure, check, free_ports, run_tests,  # noqa: E402
                     wait_until)


class MetricsCluster(Cluster):
    """A Cluster whose node i also serves --metrics on its own port."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        taken = {p for n in self.nodes.values() for p in (n.client_port, n.raft_port)}
        ports = []
        while len(ports) < len(self.nodes):
            ports = [p for p in free_ports(len(self.nodes)) if p not in taken]
        for i, p in zip(sorted(self.nodes), ports):
            self.nodes[i].metrics_port = p

    def argv(self, node_id):
        return super().argv(node_id) + [
            "--metrics", f"127.0.0.1:{self.nodes[node_id].metrics_port}"]


def http_req(port, method, path, timeout=5):
    """(status, headers dict with lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw_req(port, data, timeout=5):
    """Send @data on a fresh connection; return everything until the server
    closes it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """Parse the text format 0.0.4 strictly enough to catch mistakes:
    return ({family: type}, {(name, frozenset(labels)): value})."""
    types, samples = {}, {}
    check(text.endswith("\n"), "metrics text does not end with a newline")
    for ln, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            check(len(line.split(" ", 3)) == 4, f"line {ln}: HELP without text: {line!r}")
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary",
                                                   "untyped"), f"line {ln}: bad TYPE: {line!r}")
            check(parts[2] not in types, f"line {ln}: family {parts[2]} declared twice")
            types[parts[2]] = parts[3]
            continue
        check(line and not line.startswith("#"), f"line {ln}: unexpected line {line!r}")
        m = SAMPLE.match(line)
        check(m is not None, f"line {ln}: not a sample: {line!r}")
        name, labels_s, value = m.group(1), m.group(3) or "", m.group(4)
        labels = {}
        pos = 0
        while pos < len(labels_s):
            lm = LABEL.match(labels_s, pos)
            check(lm is not None, f"line {ln}: bad labels: {line!r}")
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        try:
            v = float(value)
        except ValueError:
            raise TestFailure(f"line {ln}: value is not a number: {line!r}")
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        check(family in types, f"line {ln}: sample {name} before its # TYPE line")
        key = (name, frozenset(labels.items()))
        check(key not in samples, f"line {ln}: duplicate series {line!r}")
        samples[key] = v
    # Histograms: cumulative buckets ending in +Inf == _count.
    for fam, t in types.items():
        if t != "histogram":
            continue
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                          if k[0] == fam + "_bucket"), key=lambda b: b[0])
        check(buckets and math.isinf(buckets[-1][0]), f"{fam}: no le=\"+Inf\" bucket")
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
              f"{fam}: buckets are not cumulative: {buckets}")
        check(buckets[-1][1] == samples.get((fam + "_count", frozenset())),
              f"{fam}: +Inf bucket != _count")
    return types, samples


class Scrape:
    def __init__(self, port):
        status, hdrs, body = http_req(port, "GET", "/metrics")
        check(status == 200, f"/metrics answered {status}: {body[:200]!r}")
        check(hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
              f"/metrics content type {hdrs.get('content-type')!r}")
        self.text = body.decode("utf-8")
        self.types, self.samples = parse_prometheus(self.text)

    def get(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())))

    def val(self, name, **labels):
        v = self.get(name, **labels)
        check(v is not None, f"no series {name}{labels or ''} in /metrics")
        return v


EXPECTED = {
    "tally_build_info": "gauge",
    "tally_node_id": "gauge",
    "tally_raft_role": "gauge",
    "tally_raft_term": "gauge",
    "tally_raft_commit_index": "gauge",
    "tally_raft_applied_index": "gauge",
    "tally_raft_leader_commit_index": "gauge",
    "tally_raft_lag_entries": "gauge",
    "tally_raft_last_index": "gauge",
    "tally_raft_leader_id": "gauge",
    "tally_requests_total": "counter",
    "tally_request_errors_total": "counter",
    "tally_produce_records_total": "counter",
    "tally_produce_bytes_total": "counter",
    "tally_fetch_records_total": "counter",
    "tally_fetch_bytes_total": "counter",
    "tally_produce_duration_seconds": "histogram",
    "tally_fetch_duration_seconds": "histogram",
    "tally_group_commit_entries_total": "counter",
    "tally_group_commit_items": "histogram",
    "tally_topics": "gauge",
    "tally_topics_without_series": "gauge",
    "tally_topic_size_bytes": "gauge",
    "tally_topic_segments": "gauge",
    "tally_topic_next_offset": "gauge",
    "tally_topic_start_offset": "gauge",
    "tally_topic_missing_offsets": "gauge",
    "tally_connections": "gauge",
    "tally_compaction_runs_total": "counter",
    "tally_compaction_bytes_reclaimed_total": "counter",
    "tally_compaction_duration_seconds": "histogram",
    "tally_disk_free_bytes": "gauge",
    "tally_disk_size_bytes": "gauge",
    "tally_snapshots_taken_total": "counter",
    "tally_snapshots_installed_total": "counter",
    "tally_snapshot_last_size_bytes": "gauge",
    "tally_snapshot_last_duration_seconds": "gauge",
    "tally_snapshot_last_build_seconds": "gauge",
    "tally_checkpoints_total": "counter",
    "tally_checkpoint_failures_total": "counter",
    "tally_checkpoint_last_loop_seconds": "gauge",
    "tally_checkpoint_last_write_seconds": "gauge",
}


def test_metrics_move():
    """/metrics on every node parses and names every metric; produce, fetch,
    error and topic metrics move with the traffic; Raft gauges agree."""
    with MetricsCluster(n=3, name="metrics") as c:
        leader = c.start()
        port = c.nodes[leader].metrics_port
        before = Scrape(port)
        for name, t in EXPECTED.items():
            check(before.types.get(name) == t,
                  f"metric {name}: want type {t}, got {before.types.get(name)}")
        for i, n in c.nodes.items():
            s = Scrape(n.metrics_port)
            check(s.val("tally_node_id") == i, f"node {i}: tally_node_id {s.val('tally_node_id')}")
            roles = {r: s.val("tally_raft_role", role=r)
                     for r in ("follower", "candidate", "leader", "unavailable")}
            check(sum(roles.values()) == 1, f"node {i}: not exactly one role: {roles}")
            want = "leader" if i == leader else "follower"
            # A follower's view may lag a heartbeat, the leader's may not.
            if i == leader:
                check(roles[want] == 1, f"node {i}: role {roles}, want {want}")
            check(s.val("tally_disk_free_bytes") > 0, f"node {i}: no free disk?")
            check(s.val("tally_raft_term") >= 1, f"node {i}: term 0")

        c.tally_ok("topic", "create", "mt")
        n_recs = 250
        payload = "".join(f"value-{i}\n" for i in range(n_recs)).encode()
        c.tally_ok("produce", "mt", input=payload)
        r = c.tally("produce", "no-such-topic", "x")
        check(r.rc != 0, f"produce to a missing topic succeeded: {r!r}")
        out = c.consume("mt", node_id=leader)
        check(out.rc == 0 and out.out.count(b"\n") == n_recs, f"consume: {out!r}")

        after = Scrape(port)
        d = lambda name, **lb: after.val(name, **lb) - before.val(name, **lb)  # noqa: E731
        check(d("tally_requests_total", type="produce") >= 1, "produce requests did not move")
        for t in ("hello", "metadata", "topic_create", "topic_delete", "topic_list", "produce",
                  "fetch", "member_add", "member_remove", "member_transfer", "offset_for_time",
                  "group_commit", "group_fetch", "backup_cut", "member_promote", "group_list",
                  "group_delete", "group_set", "clock", "member_replace", "read_index"):
            check(after.get("tally_requests_total", type=t) is not None,
                  f"no tally_requests_total series for type {t} (protocol types 1-21)")
        check(d("tally_produce_records_total") == n_recs,
              f"produce records moved by {d('tally_produce_records_total')}, want {n_recs}")
        check(d("tally_produce_bytes_total") > n_recs * 7, "produce bytes did not move")
        check(d("tally_group_commit_entries_total") >= 1, "no group-commit entry counted")
        check(d("tally_produce_duration_seconds_count") >= 1, "produce latency not observed")
        check(d("tally_requests_total", type="fetch") >= 1, "fetch requests did not move")
        check(d("tally_fetch_records_total") >= n_recs, "fetch records did not move")
        check(d("tally_fetch_bytes_total") > 0, "fetch bytes did not move")
        check(d("tally_fetch_duration_seconds_count") >= 1, "fetch latency not observed")
        check(after.val("tally_request_errors_total", type="produce", code="NOTFOUND") >= 1,
              "produce to a missing topic not counted as a NOTFOUND error")
        check(after.val("tally_topic_next_offset", topic="mt") == n_recs,
              f"next offset {after.val('tally_topic_next_offset', topic='mt')}, want {n_recs}")
        check(after.val("tally_topic_start_offset", topic="mt") == 0, "start offset moved")
        check(after.val("tally_topic_size_bytes", topic="mt") > 0, "topic size 0")
        check(after.val("tally_topic_segments", topic="mt") >= 1, "no segment")
        check(after.val("tally_topic_missing_offsets", topic="mt") == 0, "history missing")
        check(after.val("tally_topics") == 1, "tally_topics != 1")
        check(after.val("tally_raft_applied_index") > before.val("tally_raft_applied_index"),
              "applied index did not move")
        check(after.val("tally_raft_commit_index") >= after.val("tally_raft_applied_index"),
              "commit index below applied index")
        check(after.val("tally_raft_last_index") >= after.val("tally_raft_commit_index"),
              "last index below commit index")

        # Followers apply the same entries: their topic gauges catch up.
        for i in c.nodes:
            wait_until(lambda: Scrape(c.nodes[i].metrics_port).get(
                "tally_topic_next_offset", topic="mt") == n_recs, 10,
                f"node {i}'s tally_topic_next_offset to reach {n_recs}")
            s = Scrape(c.nodes[i].metrics_port)
            check(s.val("tally_raft_leader_id") == leader,
                  f"node {i}: leader id {s.val('tally_raft_leader_id')}, want {leader}")


def test_topic_series_limit():
    """metrics_topic_series bounds the per-topic series: with 2 and five
    topics, the first two created have tally_topic_* series, the others are
    counted in tally_topics_without_series; tally_topics counts all."""
    with MetricsCluster(n=1, name="metrics-series",
                        extra_args=["--set", "metrics_topic_series=2"]) as c:
        c.start()
        for t in ("t1", "t2", "t3", "t4", "t5"):
            c.tally_ok("topic", "create", t)
        s = Scrape(c.nodes[1].metrics_port)
        check(s.val("tally_topics") == 5, f"tally_topics {s.val('tally_topics')}")
        check(s.val("tally_topics_without_series") == 3, "tally_topics_without_series")
        for fam in ("tally_topic_size_bytes", "tally_topic_next_offset"):
            topics = sorted(dict(k[1])["topic"] for k in s.samples if k[0] == fam)
            check(topics == ["t1", "t2"], f"{fam} series: {topics}")


def test_health_and_http():
    """/health is 200 "ok" on a healthy cluster and 503 with a reason on a
    node whose peers were killed; wrong paths get 404, wrong methods 405, a
    malformed request 400 (and the server keeps serving), an oversized one
    413; idle connections are closed."""
    with MetricsCluster(n=3, name="health") as c:
        leader = c.start()
        for i, n in c.nodes.items():
            st, _, body = wait_until(
                lambda: (lambda r: r if r[0] == 200 else None)(http_req(n.metrics_port, "GET",
                                                                        "/health")),
                10, f"node {i}'s /health to be 200")
            check(body == b"ok\n", f"node {i}: /health body {body!r}")
        port = c.nodes[leader].metrics_port

        st, hdrs, body = http_req(port, "GET", "/nope")
        check(st == 404, f"GET /nope: {st} {body!r}")
        st, hdrs, body = http_req(port, "POST", "/metrics")
        check(st == 405 and "GET" in hdrs.get("allow", ""), f"POST /metrics: {st} {hdrs}")
        st, hdrs, body = http_req(port, "DELETE", "/health")
        check(st == 405, f"DELETE /health: {st}")
        st, hdrs, body = http_req(port, "HEAD", "/health")
        check(st == 200 and body == b"" and hdrs.get("content-length") == "3",
              f"HEAD /health: {st} {hdrs} {body!r}")
        st, _, body = http_req(port, "GET", "/metrics?name[]=tally_raft_term")
        check(st == 200 and b"tally_raft_term" in body, f"GET /metrics?query: {st}")

        out = raw_req(port, b"\x01\x02 NOT HTTP AT ALL\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400 "), f"malformed request: {out[:200]!r}")
        out = raw_req(port, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400 "), f"bad Content-Length: {out[:200]!r}")
        out = raw_req(port, b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 413 "), f"oversized request: {out[:200]!r}")
        out = raw_req(port, b"GET /health HTTP/1.0\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nok\n"),
              f"HTTP/1.0 request after bad ones: {out[:200]!r}")
        Scrape(port)  # still serving, still parses

        # An idle connection is closed by the server (HTTP_IDLE_MS, 10 s).
        idle = socket.create_connection(("127.0.0.1", port), timeout=20)
        idle.sendall(b"GET /heal")  # never finished
        t0 = time.monotonic()
        try:
            got = idle.recv(100)
        except socket.timeout:
            raise TestFailure("an idle metrics connection was not closed within 20 s")
        finally:
            idle.close()
        check(got == b"", f"idle connection got {got!r}")
        check(time.monotonic() - t0 >= 5, "idle connection closed too early")

        # Cut the leader off: kill both followers. It steps down after an
        # election timeout; with no quorum no leader is known.
        for i in c.nodes:
            if i != leader:
                c.kill(i)

        def unhealthy():
            c.check_up()
            st, _, body = http_req(port, "GET", "/health")
            return (st, body) if st == 503 else None
        t0 = time.monotonic()
        st, body = wait_until(unhealthy, 20, "/health to answer 503 on the cut-off node")
        text = body.decode()
        print(f"# /health on the cut-off node after {time.monotonic() - t0:.1f}s: 503 "
              f"{text.strip()}", flush=True)
        check("leader" in text and text.strip() != "", f"503 reason: {text!r}")
        s = Scrape(port)  # metrics still served without a leader
        check(s.val("tally_raft_leader_id") == 0, "leader id not 0 without quorum")
        check(s.val("tally_raft_role", role="leader") == 0, "still says leader without quorum")


def test_health_follower_lag():
    """A follower that was stopped while the leader committed thousands of
    entries answers /health 503 ("behind the leader's commit index") while
    it catches up, and its metrics show the lag; 200 again once it has
    applied them. Its own Raft commit index cannot show this: raft caps it
    at what the follower has stored, so it equals the applied index."""
    entries = 8000
    with MetricsCluster(n=3, name="health-lag", extra_args=[
            "--set", "snapshot_threshold=100000", "--set", "snapshot_trailing=100000"]) as c:
        leader = c.start()
        c.tally_ok("topic", "create", "lag")
        c.tally_ok("produce", "lag", input=b"first\n")
        follower = next(i for i in c.nodes if i != leader)
        port = c.nodes[follower].metrics_port
        wait_until(lambda: http_req(port, "GET", "/health")[0] == 200, 20,
                   f"follower {follower}'s /health to be 200")
        c.pause(follower)
        try:
            # One Raft entry per record: one record in flight at a time.
            c.tally_ok("bench", "produce", "lag", "--count", str(entries), "--size", "50",
                       timeout=300, ids=[i for i in c.nodes if i != follower])
            target = Scrape(c.nodes[leader].metrics_port).val("tally_raft_commit_index")
        finally:
            c.resume(follower)
        seen_503, max_lag, polls = None, 0, 0
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and polls < 100000:
            polls += 1
            c.check_up()
            st, _, body = http_req(port, "GET", "/health")
            s = Scrape(port)
            lag = s.get("tally_raft_lag_entries") or 0  # checked below, not here
            max_lag = max(max_lag, lag)
            if st == 503 and seen_503 is None:
                seen_503 = body.decode().strip()
                lc = s.get("tally_raft_leader_commit_index") or 0
                ap = s.val("tally_raft_applied_index")
                check(ap < lc <= target, f"503 with applied index {ap}, leader commit index "
                      f"{lc} (the leader's: {target})")
            if s.val("tally_raft_applied_index") >= target and st == 200:
                break
            time.sleep(0.02)
        print(f"# follower {follower}: {polls} polls, first 503: {seen_503!r}, "
              f"largest lag seen {max_lag:.0f}", flush=True)
        check(seen_503 is not None,
              f"/health on follower {follower} stayed 200 while it caught up on {entries} "
              f"entries (largest lag in its metrics: {max_lag:.0f})")
        check("behind the leader's commit index" in seen_503, f"503 reason: {seen_503!r}")
        check(max_lag > 1000, f"largest lag the metrics showed: {max_lag}")
        wait_until(lambda: http_req(port, "GET", "/health")[0] == 200, 60,
                   f"follower {follower}'s /health to be 200 again after catching up")


if __name__ == "__main__":
    run_tests([test_metrics_move, test_topic_series_limit, test_health_and_http,
               test_health_follower_lag])
