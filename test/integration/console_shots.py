# console_shots.py DIR - make the screenshots of docs/console.md: a three-node
# cluster with a minute of produce and consume traffic on a few topics, a
# consumer group, and one PNG per console view in DIR (console-*.png).
# Not a test (make check runs test_console.py); run it by hand after a
# change to the page:
#   TALLY_BUILD_DIR=build /usr/bin/python3 test/integration/console_shots.py docs

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_console import Browser, open_view, settled_status  # noqa: E402
from test_metrics import MetricsCluster  # noqa: E402

TRAFFIC_S = 60


def traffic(c, stop):
    """Events of a few accounts at a rate that changes every 10 s, and a
    reader on node 2, until @stop is set (bounded by TRAFFIC_S anyway)."""
    i = 0
    t0 = time.monotonic()
    while not stop.is_set() and time.monotonic() - t0 < TRAFFIC_S + 30:
        burst = 5 + 15 * ((i // 20) % 3)
        lines = "".join(f"acct-{(i + k) % 7}\t{{\"type\": \"{'deposit' if k % 3 else 'withdrawal'}\", "
                        f"\"amount\": {(i * 37 + k * 11) % 500}, \"seq\": {i + k}}}\n"
                        for k in range(burst))
        c.tally("produce", "payments", "--keyed", input=lines.encode())
        c.tally("produce", "audit", "-k", f"user-{i % 3}", f"login {i}")
        if i % 2 == 0:
            c.consume("payments", node_id=2, extra=["-n", str(burst * 2)])
        i += 1
        time.sleep(0.4)


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "docs")
    with MetricsCluster(n=3, name="console-shots") as c, Browser() as b:
        c.start()
        c.tally_ok("topic", "create", "payments")
        c.tally_ok("topic", "create", "audit", "--policy", "compact")
        c.tally_ok("topic", "create", "orders", "--policy", "delete", "--retention-ms", "604800000")
        c.tally_ok("produce", "orders", "--keyed", input="".join(
            f"order-{i}\t{{\"item\": \"sku-{i % 9}\", \"qty\": {i % 4 + 1}}}\n" for i in range(30)).encode())
        stop = threading.Event()
        th = threading.Thread(target=traffic, args=(c, stop), daemon=True)
        th.start()
        time.sleep(TRAFFIC_S)
        c.tally_ok("consume", "payments", "--group", "ledger-projection", "-n", "200")
        c.tally_ok("consume", "orders", "--group", "shipping", "-n", "12")
        settled_status(c)
        port = c.nodes[2].metrics_port
        open_view(b, port, "cluster")
        time.sleep(2)
        b.screenshot(os.path.join(out, "console-cluster.png"))
        open_view(b, port, "topics")
        b.js("document.querySelector('#topics tr[data-topic=\"payments\"]').click()")
        time.sleep(3)
        b.screenshot(os.path.join(out, "console-topics.png"))
        stop.set()
        th.join(timeout=60)
        open_view(b, port, "records")
        b.js("document.getElementById('rec-topic').value = 'payments';"
             "document.getElementById('rec-format').value = 'json';"
             "document.getElementById('rec-go').click();")
        b.wait_js("return document.getElementById('rec-status').textContent.includes('showing')",
                  "the records")
        b.screenshot(os.path.join(out, "console-records.png"))
        b.js("document.getElementById('rec-key').value = 'acct-3';"
             "document.getElementById('rec-dir').value = 'backward';"
             "document.getElementById('rec-format').value = 'text';"
             "document.getElementById('rec-go').click();")
        b.wait_js("return document.getElementById('rec-status').textContent.includes('backward')",
                  "the key search")
        b.screenshot(os.path.join(out, "console-key-search.png"))
        open_view(b, port, "groups")
        b.screenshot(os.path.join(out, "console-groups.png"))
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
