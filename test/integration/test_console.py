# test_console.py - the web console (/ui on the --metrics listener,
# docs/console.md) in a real headless chromium, driven through chromedriver's
# WebDriver HTTP API, against a live three-node cluster: each view loads
# without console errors and shows the numbers `tally status --json`,
# `tally consume` and `tally group describe` print; a SIGKILLed leader is
# replaced on the page; a key search shows the stream in order, both ways;
# bad requests get 404/400/405 and read nothing.
#
# Needs Debian's chromium and chromium-driver (deploy/setup.sh installs
# them). The screenshots in docs/ come from console_shots.py.

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Cluster, TestFailure, check, free_ports, run_tests, wait_until  # noqa: E402
from test_metrics import MetricsCluster, http_req, raw_req  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class Browser:
    """One headless chromium session through chromedriver (W3C WebDriver
    over HTTP, standard library only). Every call is bounded by a timeout."""

    def __init__(self):
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                raise TestFailure(f"{path} is missing: run deploy/setup.sh (installs chromium "
                                  "and chromium-driver)")
        self.tmp = tempfile.mkdtemp(prefix="tally-console-chrome-")
        self.port = free_ports(1)[0]
        self.log = open(os.path.join(self.tmp, "chromedriver.log"), "wb")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None
        wait_until(self._ready, 20, "chromedriver to listen", interval=0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                # --no-sandbox: the suite may run as root, where chromium's
                # sandbox refuses to start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900",
                         f"--user-data-dir={self.tmp}/profile"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        r = self._call("POST", "/session", caps, timeout=60)
        self.session = r["sessionId"]

    def _ready(self):
        try:
            with urllib.request.urlopen(self.base + "/status", timeout=2) as r:
                return json.load(r)["value"].get("ready")
        except (OSError, ValueError):
            return False

    def _call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r).get("value")
        except urllib.error.HTTPError as e:
            raise TestFailure(f"webdriver {method} {path}: {e.code} {e.read()[:500]!r}")
        except (OSError, ValueError) as e:
            raise TestFailure(f"webdriver {method} {path}: {e}")

    def s(self, method, path, body=None, timeout=30):
        return self._call(method, f"/session/{self.session}{path}", body, timeout)

    def get(self, url):
        self.s("POST", "/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_js(self, script, what, timeout=20):
        """Poll @script (it returns a value) until it is truthy; return it."""
        return wait_until(lambda: self.js(script), timeout, what, interval=0.2)

    def console_errors(self):
        """Browser console entries at SEVERE level since the last call."""
        logs = self.s("POST", "/se/log", {"type": "browser"})
        return [e for e in logs or [] if e.get("level") == "SEVERE"]

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def close(self):
        try:
            if self.session is not None:
                self._call("DELETE", f"/session/{self.session}", timeout=20)
        except TestFailure:
            pass
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def open_view(b, port, name):
    """Show view @name from node port @port and wait until it has loaded
    its data (the page sets body[data-loaded])."""
    b.get(f"http://127.0.0.1:{port}/ui/#{name}")
    b.wait_js(f"return document.body.dataset.loaded === '{name}'", f"the {name} view to load")


def table(b, table_id):
    """Rows of table @table_id: list of (dataset dict, [cell texts])."""
    return b.js(f"""return Array.from(document.querySelectorAll('#{table_id} tbody tr')).map(
        tr => [Object.assign({{}}, tr.dataset), Array.from(tr.cells).map(td => td.textContent)]);""")


def no_console_errors(b, what):
    errs = b.console_errors()
    check(not errs, f"{what}: browser console errors: {errs}")


def settled_status(c):
    """`tally status --json` once every member is reachable and has applied
    the commit index (so the page and the CLI can be compared)."""
    def pred():
        st = c.status()
        if st is None or not st["leader_id"]:
            return None
        ok = all(m["reachable"] and m["applied_index"] == st["commit_index"] for m in st["members"])
        return st if ok else None
    return wait_until(pred, 30, "every member to apply the commit index", interval=0.3)


def test_views_match_the_cli():
    """Cluster, Topics, Records and Consumer groups load without console
    errors and show what `tally status --json`, `tally consume` and `tally
    group describe` print."""
    with MetricsCluster(n=3, name="console") as c, Browser() as b:
        leader = c.start()
        c.tally_ok("topic", "create", "orders")
        c.tally_ok("topic", "create", "audit", "--policy", "compact")
        lines = [f"acct-{i % 4}\t{{\"n\": {i}, \"amount\": {i * 10}}}\n" for i in range(40)]
        c.tally_ok("produce", "orders", "--keyed", input="".join(lines[:20]).encode())
        # The second half in a later wall-clock second, so that a read by
        # time (the page's time field has whole seconds) starts inside.
        time.sleep(1.05 - time.time() % 1)
        c.tally_ok("produce", "orders", "--keyed", input="".join(lines[20:]).encode())
        c.tally_ok("produce", "audit", "-k", "k1", "raw\x01bytes")
        c.tally_ok("consume", "orders", "--group", "billing", "-n", "25")
        st = settled_status(c)
        follower = next(i for i in c.nodes if i != leader)
        port = c.nodes[follower].metrics_port

        # Cluster: the page's numbers are the CLI's (both re-read until the
        # page shows them: it polls every second).
        open_view(b, port, "cluster")

        def cluster_matches():
            st = settled_status(c)
            rows = {int(d["id"]): cells for d, cells in table(b, "members")}
            got = (b.js("return document.getElementById('leader-id').textContent"),
                   b.js("return document.getElementById('term').textContent"),
                   b.js("return document.getElementById('commit-index').textContent"))
            want = (f"node {st['leader_id']}", str(st["term"]), str(st["commit_index"]))
            if got != want or set(rows) != {m["id"] for m in st["members"]}:
                return None
            for m in st["members"]:
                cells = rows[m["id"]]
                if (cells[1] != m["client"] or cells[2] != m["raft"] or cells[3] != m["role"]
                        or cells[5] != str(m["applied_index"]) or cells[7] != "0"
                        or cells[8] != "yes"):
                    return None
            return True
        wait_until(cluster_matches, 20, "the Cluster view to show tally status's numbers",
                   interval=0.5)
        no_console_errors(b, "cluster view")

        # Topics: offsets as tally status shows them, size and segments as
        # this node's /metrics does.
        open_view(b, port, "topics")
        _, _, metrics = http_req(port, "GET", "/metrics")
        metrics = metrics.decode()
        rows = {d["topic"]: cells for d, cells in table(b, "topics")}
        check(set(rows) == {t["name"] for t in st["topics"]}, f"topics: {rows} vs {st['topics']}")
        for t in st["topics"]:
            cells = rows[t["name"]]
            check(cells[1] == t["policy"] and cells[4] == str(t["start_offset"]) and
                  cells[5] == str(t["next_offset"]), f"topic {t['name']}: {cells} vs {t}")
            segs = f'tally_topic_segments{{topic="{t["name"]}"}} {cells[3]}\n'
            check(segs in metrics, f"topic {t['name']}: segments {cells[3]} not in /metrics")
        # Live rates: records produced now show as a produce rate and a line
        # on the chart (the node samples once a second).
        b.js("document.querySelector('#topics tr[data-topic=\"orders\"]').click()")
        for i in range(8):  # a little traffic spread over a few samples
            c.tally_ok("produce", "orders", "-k", "acct-9", f"live-{i}")
            c.consume("orders", node_id=follower, extra=["-n", "5"])
            time.sleep(0.3)
        for cls, what in (("rate", "produce"), ("fetch-rate", "fetch")):
            b.wait_js(f"""const r = document.querySelector('#topics tr[data-topic="orders"] td.{cls}');
                         return r && r.textContent !== '-' && Number(r.textContent) > 0""",
                      f"a {what} rate above 0 for orders")
        fetch_audit = b.js("""return document.querySelector(
            '#topics tr[data-topic="audit"] td.fetch-rate').textContent""")
        check(fetch_audit in ("0.0", "-"), f"audit was not read, yet shows {fetch_audit} rec/s")
        b.wait_js("return document.querySelectorAll('#chart-produce polyline').length > 0 && "
                  "document.querySelectorAll('#chart-consume polyline').length > 0",
                  "the rate charts to draw")
        no_console_errors(b, "topics view")

        # Records: the first page equals `tally consume` from the start.
        open_view(b, port, "records")
        b.js("document.getElementById('rec-topic').value = 'orders';"
             "document.getElementById('rec-format').value = 'json';"
             "document.getElementById('rec-go').click();")
        b.wait_js("return document.querySelectorAll('#records tbody tr').length === 48",
                  "48 records of orders")
        out = c.tally_ok("consume", "orders", "-n", "48", "--format", "%o\\t%k\\t%v\\n").out
        want = [line.split(b"\t", 2) for line in out.splitlines()]
        got = table(b, "records")
        check(len(got) == len(want), f"records: {len(got)} rows, consume printed {len(want)}")
        for (d, cells), (off, key, val) in zip(got, want):
            # offset, time, key, value (the version column is a key search's)
            check(cells[0] == off.decode() and cells[2] == key.decode() and
                  (json.loads(cells[3]) == json.loads(val) if val.startswith(b"{")
                   else cells[3] == "(not JSON) " + val.decode()), f"record {cells} vs {off, key, val}")
        # From an offset, then a page back.
        b.js("document.getElementById('rec-from').value = '10';"
             "document.getElementById('rec-go').click();")
        b.wait_js("return document.getElementById('rec-status').textContent.includes('from offset 10')",
                  "the read from offset 10")
        offs = [cells[0] for _, cells in table(b, "records")]
        want_offs = c.tally_ok("consume", "orders", "--from", "10", "-n", "38",
                               "--format", "%o\\n").out.decode().split()
        check(offs == want_offs, f"from offset 10: {offs} vs consume {want_offs}")
        b.js("document.getElementById('rec-older').click();")
        b.wait_js("return document.getElementById('rec-status').textContent.includes('from offset 0') && "
                  "document.querySelector('#records tbody tr').dataset.offset === '0'",
                  "the page before offset 10")
        b.js("document.getElementById('rec-from').value = '';")
        # Hex shows the bytes of a value that is not text.
        b.js("document.getElementById('rec-topic').value = 'audit';"
             "document.getElementById('rec-format').value = 'hex';"
             "document.getElementById('rec-go').click();")
        b.wait_js("""const r = document.querySelector('#records tbody tr td.value');
                     return r && r.textContent === '72 61 77 01 62 79 74 65 73'""",
                  "audit's record in hex")
        # By time: from the 21st record's timestamp on (records of one
        # produce share a timestamp, so compare with consume --from-time).
        b.js("document.getElementById('rec-topic').value = 'orders';"
             "document.getElementById('rec-format').value = 'text';"
             "document.getElementById('rec-go').click();")
        b.wait_js("return document.querySelectorAll('#records tbody tr').length === 48", "orders again")
        ts = b.js("return document.querySelectorAll('#records tbody tr')[20].cells[1].textContent")
        ms = b.js("return new Date(arguments[0]).getTime()", ts)
        # datetime-local takes local time: hand the page the same instant.
        b.js("""const d = new Date(arguments[0]);
                const p = n => String(n).padStart(2, '0');
                document.getElementById('rec-time').value = d.getFullYear() + '-' + p(d.getMonth() + 1) +
                  '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
                document.getElementById('rec-go').click();""", ms)
        # The field holds whole seconds: compare from that second on.
        sec_ms = ms - ms % 1000
        out = c.tally_ok("consume", "orders", "--from-time", str(sec_ms), "-n", str(48 - 20),
                         "--format", "%o\\n").out
        want_offs = out.decode().split()
        b.wait_js(f"return document.getElementById('rec-status').textContent.includes("
                  f"'from offset {want_offs[0]}')", "the read by time")
        got_offs = [cells[0] for _, cells in table(b, "records")]
        check(int(want_offs[0]) > 0, f"by time: consume --from-time read from {want_offs[0]}")
        check(got_offs == want_offs, f"by time: {got_offs} vs consume {want_offs}")
        no_console_errors(b, "records view")

        # Consumer groups: the position and lag `tally group describe` shows.
        open_view(b, port, "groups")
        rows = table(b, "groups")
        check(len(rows) == 1 and rows[0][1][0] == "billing" and rows[0][1][2] == "orders",
              f"groups: {rows}")
        # describe: TOPIC POSITION START_OFFSET NEXT_OFFSET LAG
        desc = c.tally_ok("group", "describe", "billing").out.decode().splitlines()
        fields = next(line.split() for line in desc if line.startswith("orders "))
        cells = rows[0][1]
        check(cells[3] == fields[1] == "25" and cells[4] == fields[3] and cells[5] == fields[4],
              f"group row {cells} vs describe {fields}")
        no_console_errors(b, "groups view")
        c.check_up()  # no node died (a sanitizer abort, say)


def test_key_search_in_order():
    """A key search shows exactly that key's events, in offset order
    forward and in reverse backward, as `tally consume -k` prints them."""
    with MetricsCluster(n=3, name="console-key") as c, Browser() as b:
        c.start()
        c.tally_ok("topic", "create", "ledger")
        for batch in range(3):  # several produce calls: several batches
            lines = "".join(f"acct-{(batch * 30 + i) % 5}\tev-{batch * 30 + i}\n" for i in range(30))
            c.tally_ok("produce", "ledger", "--keyed", input=lines.encode())
        settled_status(c)
        port = c.nodes[1].metrics_port
        want = c.tally_ok("consume", "ledger", "-k", "acct-3", "--format", "%o\\t%v\\n").out.decode()
        want = [line.split("\t") for line in want.splitlines()]
        check(len(want) == 18, f"consume -k acct-3 printed {len(want)} records")
        open_view(b, port, "records")
        for direction, expect in (("forward", want), ("backward", want[::-1])):
            b.js("""document.getElementById('rec-topic').value = 'ledger';
                    document.getElementById('rec-key').value = 'acct-3';
                    document.getElementById('rec-dir').value = arguments[0];
                    document.getElementById('rec-go').click();""", direction)
            b.wait_js(f"return document.getElementById('rec-status').textContent.includes("
                      f"'18 event(s), {direction}')", f"the key search ({direction})")
            got = [(cells[0], cells[2], cells[3], cells[4]) for _, cells in table(b, "records")]
            n = len(expect)
            versions = range(1, n + 1) if direction == "forward" else range(n, 0, -1)
            check(got == [(o, "acct-3", str(v), val) for (o, val), v in zip(expect, versions)],
                  f"key search {direction}: {got} vs {expect}")
        no_console_errors(b, "key search")
        c.check_up()  # no node died (a sanitizer abort, say)


def test_leader_kill_shows_new_leader():
    """SIGKILL of the leader: the Cluster view of a surviving node shows the
    new leader (the one `tally status` names) and the old one unreachable."""
    with MetricsCluster(n=3, name="console-kill") as c, Browser() as b:
        leader = c.start()
        watcher = next(i for i in c.nodes if i != leader)
        open_view(b, c.nodes[watcher].metrics_port, "cluster")
        b.wait_js(f"return document.getElementById('leader-id').textContent === 'node {leader}'",
                  "the page to show the first leader")
        c.kill(leader)
        new = c.wait_leader(not_id=leader)
        b.wait_js(f"return document.getElementById('leader-id').textContent === 'node {new}'",
                  f"the page to show node {new} as the new leader", timeout=20)
        b.wait_js(f"""const r = document.querySelector('#members tr[data-id="{leader}"]');
                      return r && r.cells[8].textContent === 'no'""",
                  f"the page to show node {leader} unreachable", timeout=20)
        changes = b.js("return document.getElementById('leader-changes').textContent")
        check(f"leader is node {new}" in changes and f"was node {leader}" in changes,
              f"leader change log: {changes!r}")
        no_console_errors(b, "cluster view across the leader change")
        c.check_up()  # no node died (a sanitizer abort, say)


def test_follower_lag_and_reachability():
    """A paused follower: the leader's page shows it unreachable, with the
    lag of its last answer against the growing commit index; resumed, it
    is reachable again with lag 0."""
    with MetricsCluster(n=3, name="console-lag") as c, Browser() as b:
        leader = c.start()
        c.tally_ok("topic", "create", "t1")
        settled_status(c)
        slow = next(i for i in c.nodes if i != leader)
        open_view(b, c.nodes[leader].metrics_port, "cluster")
        row = f"document.querySelector('#members tr[data-id=\"{slow}\"]')"
        b.wait_js(f"return {row} && {row}.cells[8].textContent === 'yes'", "the follower reachable")
        applied_before = int(b.js(f"return {row}.cells[5].textContent"))
        c.pause(slow)
        try:
            for i in range(5):  # five entries the paused follower does not apply
                c.tally_ok("produce", "t1", f"v{i}", ids=[leader])
            def lag_shown():
                commit = c.status(ids=[leader])["commit_index"]  # the CLI, asked each time
                cells = b.js(f"return Array.from({row}.cells).map(td => td.textContent)")
                shown = b.js("return document.getElementById('commit-index').textContent")
                return (commit >= applied_before + 5 and shown == str(commit) and cells[8] == "no"
                        and cells[5] == str(applied_before)
                        and cells[7] == str(commit - applied_before))
            wait_until(lag_shown, 20, f"node {slow} unreachable, lagging by the commit index",
                       interval=0.5)
            no_console_errors(b, "cluster view with a paused follower")
        finally:
            c.resume(slow)
        b.wait_js(f"return {row}.cells[8].textContent === 'yes' && {row}.cells[7].textContent === '0' "
                  f"&& {row}.cells[5].textContent === "
                  "document.getElementById('commit-index').textContent",
                  f"node {slow} reachable again with lag 0", timeout=20)
        c.check_up()


def test_bad_input():
    """Unknown paths 404, malformed or huge query strings 400, writes 405;
    no path reaches outside the built-in files; nothing is written."""
    with MetricsCluster(n=3, name="console-bad") as c:
        c.start()
        c.tally_ok("topic", "create", "t1")
        c.tally_ok("produce", "t1", "-k", "k", "v")
        port = c.nodes[1].metrics_port
        before = settled_status(c)  # node 1 holds the record too
        cases = [
            ("GET", "/ui/nope", 404), ("GET", "/ui/api/nope", 404), ("GET", "/uix", 404),
            ("GET", "/ui/api/", 404), ("GET", "/ui/../metrics", 404),
            ("GET", "/ui/%2e%2e/metrics", 404), ("GET", "/ui/app.js/../index.html", 404),
            ("GET", "/ui/api/records?topic=nosuch", 404),
            ("GET", "/ui/api/rates?topic=nosuch", 404),
            ("GET", "/ui/api/records", 400),
            ("GET", "/ui/api/records?topic=t1&from=" + "9" * 25, 400),
            ("GET", "/ui/api/records?topic=t1&from=-1", 400),
            ("GET", "/ui/api/records?topic=t1&limit=0", 400),
            ("GET", "/ui/api/records?topic=t1&limit=501", 400),
            ("GET", "/ui/api/records?topic=t1&limit=abc", 400),
            ("GET", "/ui/api/records?topic=t1&from=1&time=1", 400),
            ("GET", "/ui/api/records?topic=t1&topic=t1", 400),
            ("GET", "/ui/api/records?topic=t1&what=1", 400),
            ("GET", "/ui/api/records?topic=t1&key=%zz", 400),
            ("GET", "/ui/api/records?topic=t1&key=%00", 400),
            ("GET", "/ui/api/records?topic=t1&key=%4", 400),
            ("GET", "/ui/api/records?topic=t1&", 400),
            ("GET", "/ui/api/records?topic", 400),
            ("GET", "/ui/api/records?topic=..%2F..%2Fetc", 400),
            ("GET", "/ui/api/topics?x=1", 400),
            ("GET", "/ui/?x=1", 400),
            ("GET", "/ui/api/records?topic=t1&key=" + "a" * 1100, 400),
            ("POST", "/ui/api/topics", 405), ("PUT", "/ui/", 405), ("DELETE", "/ui/api/records", 405),
            ("GET", "/ui/api/records?topic=t1&from=999999", 200),
            ("GET", "/ui/", 200), ("GET", "/ui", 200), ("GET", "/ui/app.js", 200),
            ("GET", "/metrics", 200), ("GET", "/nope", 404),
        ]
        for method, path, want in cases:
            st, hdrs, body = http_req(port, method, path)
            check(st == want, f"{method} {path[:80]}: {st} (want {want}) {body[:200]!r}")
            if path.startswith("/ui/api/") and method == "GET":
                check(hdrs.get("content-type", "").startswith("application/json") and
                      isinstance(json.loads(body), dict), f"{path[:60]}: not JSON: {body[:200]!r}")
        st, _, body = http_req(port, "GET", "/ui/api/records?topic=t1&from=999999")
        r = json.loads(body)
        check(r["records"] == [] and r["from"] == r["next_offset"] == 1 and r["end"],
              f"a read past the end: {r}")
        # Beyond the listener's URL limit the request is refused whole.
        out = raw_req(port, b"GET /ui/api/topics?x=" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 413 "), f"5 KB URL: {out[:100]!r}")
        # Nothing was written: same topics, same offsets, and node 1 serves on.
        after = settled_status(c)
        check(after["topics"] == before["topics"], f"topics changed: {before} -> {after}")
        st, _, _ = http_req(port, "GET", "/ui/api/topics")
        check(st == 200, "the console stopped serving after bad requests")
        st, hdrs, body = http_req(port, "HEAD", "/ui/api/topics")
        check(st == 200 and body == b"" and int(hdrs["content-length"]) > 0, f"HEAD: {st} {hdrs}")
        # A clean stop while the console polls the members (the cluster
        # request above woke it): every handle closes, exit 0 (and no leak
        # under the sanitizers).
        wait_until(lambda: all(m.get("reachable") for m in json.loads(
            http_req(port, "GET", "/ui/api/cluster")[2])["members"]), 15,
            "node 1 to hear from every member")
        c.stop(1)


def test_grafana_dashboard_names():
    """deploy/grafana/tally-dashboard.json: valid JSON whose every query
    names metrics a live tallyd serves on /metrics."""
    path = os.path.join(os.environ.get("TALLY_SRC_DIR", os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")), "deploy", "grafana", "tally-dashboard.json")
    with open(path) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dash["templating"]["list"]]
    names = set(re.findall(r"\btally_[a-z0-9_]+", " ".join(exprs)))
    check(len(exprs) > 30 and len(names) > 30, f"dashboard: {len(exprs)} queries, names {names}")
    with MetricsCluster(n=3, name="console-grafana") as c:
        c.start()
        c.tally_ok("topic", "create", "t1")
        c.tally_ok("produce", "t1", "v")
        _, _, body = http_req(c.nodes[1].metrics_port, "GET", "/metrics")
        served = set()
        for line in body.decode().splitlines():
            if line.startswith("# TYPE "):
                family, kind = line.split()[2:4]
                served.add(family)
                if kind == "histogram":
                    served |= {family + "_bucket", family + "_sum", family + "_count"}
            elif line and not line.startswith("#"):
                served.add(re.split(r"[{ ]", line, maxsplit=1)[0])
        missing = sorted(names - served)
        check(not missing, f"the dashboard queries metrics tallyd does not serve: {missing}")


if __name__ == "__main__":
    run_tests([test_views_match_the_cli, test_key_search_in_order,
               test_leader_kill_shows_new_leader, test_follower_lag_and_reachability, test_bad_input,
               test_grafana_dashboard_names])
