#!/usr/bin/env python3
"""ctest status_page.mock_browser: the status page in chromium against mock_broker.py.

Starts mock_broker.py on a free loopback port and runs page_check.py against
it: the reconnect command POSTs /mock/drop-streams (the mock cuts the page's
event stream), the trigger POSTs /mock/backup-finished for r1. Then it checks
with the mock that the page reopened the stream where it left off (the second
request carried Last-Event-ID and since, equal, at or past the first one's).
Exits with page_check.py's status (77: skipped, no chromium/chromedriver), or 1.

Usage: mock_browser_test.py [--screenshot out.png] [page_check.py options...]
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = "mock-" + os.urandom(8).hex()
NODES = ["r1", "r2", "r3", "r4", "c1", "x1"]

# The trigger, an argv: POST to the URL given as its one argument.
POST = ("import sys, urllib.request; "
        "urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'', method='POST'), timeout=10).read()")


def check_stream_requests(url):
    with urllib.request.urlopen(url + "mock/streams", timeout=10) as res:
        log = json.loads(res.read())
    first, again = (log + [None, None])[:2]
    if first is None or again is None:
        print("mock_browser_test: FAILED: the page opened the event stream %d times, not twice or more" % len(log),
              file=sys.stderr)
        return 1
    if first["last_event_id"] not in (None, first["since"]):
        print("mock_browser_test: FAILED: since and Last-Event-ID differ: %r" % first, file=sys.stderr)
        return 1
    if again["last_event_id"] is None or again["last_event_id"] != again["since"] or again["from"] < first["from"]:
        print("mock_browser_test: FAILED: the reconnect did not resume where it left off: %r" % log, file=sys.stderr)
        return 1
    print("mock_browser_test: the page resumed the event stream with Last-Event-ID (%s)" %
          ", ".join("from %d" % e["from"] for e in log))
    return 0


def main(extra):
    mock = subprocess.Popen([sys.executable, str(HERE / "mock_broker.py"), "0", "--token", TOKEN],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = mock.stdout.readline().strip()
        if not line.startswith("listening on "):
            print("mock_browser_test: mock_broker.py did not start: %r" % line, file=sys.stderr)
            return 1
        url = line[len("listening on "):]
        trigger = [sys.executable, "-c", POST, url + "mock/backup-finished?node=r1"]
        argv = [sys.executable, str(HERE / "page_check.py"), "--url", url, "--token", TOKEN]
        for n in NODES:
            argv += ["--expect-node", n]
        argv += ["--reconnect-cmd", json.dumps([sys.executable, "-c", POST, url + "mock/drop-streams"]),
                 "--trigger-cmd", json.dumps(trigger), "--expect-backup-node", "r1"] + extra
        rc = subprocess.call(argv)
        if rc != 0:
            return rc
        return check_stream_requests(url)
    finally:
        mock.terminate()
        try:
            mock.wait(timeout=5)
        except subprocess.TimeoutExpired:
            mock.kill()
            mock.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
