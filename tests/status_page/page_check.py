#!/usr/bin/env python3
"""Browser check of the broker's status page (broker/status_page/index.html).

Drives Debian's chromium through chromedriver's W3C WebDriver REST API with the
standard library only (urllib + json): no selenium, no npm.

Usage (a stable interface: the real-broker integration test calls it too):

  page_check.py --url http://127.0.0.1:PORT/ --token TOKEN
                --expect-node r1 [--expect-node r2 ...]
                [--reconnect-cmd '["argv", ...]']
                [--trigger-cmd '["argv", "as", "a JSON list"]' --expect-backup-node r1]
                [--trigger-timeout-s 60] [--screenshot out.png]
                [--chromium /usr/bin/chromium] [--chromedriver PATH] [--verbose]

What it checks, in order:
  1. URL#token=TOKEN loads: body[data-loaded="1"] appears (nodes and backups
     loaded), the token left the address bar and sits in sessionStorage.
  2. Every --expect-node has a row `#nodes tr[data-node=ID]` whose
     [data-field=state] is not empty, and a row in #backups.
  3. The event stream is live (#conn[data-state=live]).
  4. Strings from the API are text: window.__xss is unset and no <img> or
     <script> element sits inside the panels.
  4a. With --reconnect-cmd: runs it (argv, no shell; exit 0), a command that
     cuts the event stream (e.g. restarts the broker); the page must open the
     stream again within 40 s (ledgerkeepStatus.streamOpens grows, #conn live)
     without a reload and without showing an event twice (#events li[data-seq]
     unique). The trigger, when given, runs after this, so it also proves
     events flow on the new stream.
  5. With --trigger-cmd: records the `#backups tr[data-node=NODE]` cells
     [data-field=last-success] and [data-field=snapshot] (their data-value,
     else their text), sets window.__noReload = 1, runs the command (argv, no
     shell; it must exit 0) and waits up to --trigger-timeout-s for either cell
     to change. The page must not have reloaded (window.__noReload still 1),
     and the change must have come from the event stream: the reload that
     brought it ran because of an event (window.ledgerkeepStatus.panels.backups
     .changedBy.reason == "event", not the 30 s fallback poll or a reconnect),
     and ledgerkeepStatus.lastEventId moved on.
  6. No JavaScript errors: window.ledgerkeepErrors (the page's window.onerror
     hook, plus events it could not read) is empty, and the browser log (when
     chromedriver gives it) has no SEVERE entry.
  7. --screenshot FILE: a PNG of the page (also taken when a check fails).
  8. A wrong token: URL#token=<wrong> shows the token form with "token refused"
     and forgets the stored token.

Exit status: 0 when every check passed; 1 when one failed (the reason on
stderr); 2 for bad arguments; 77 when chromium or chromedriver is missing or
cannot start (skipped: never reported as passed).

Network: chromedriver listens on a free 127.0.0.1 port; chromium runs headless
with a fresh profile in a temporary directory, its background networking off,
and a resolver that knows no name but localhost and --url's host: the only
traffic is to --url. The session is always ended,
chromedriver and any chromium left using that profile are killed, and the
directory is removed.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SKIP = 77

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--window-size=1280,800",
    # More of the same: nothing but the page under test may cause traffic.
    "--no-default-browser-check", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-breakpad", "--metrics-recording-only", "--no-pings", "--disable-extensions", "--no-proxy-server",
    # --host-resolver-rules (resolver_rules()): chromium looks up its default
    # search engine (start.duckduckgo.com on Debian) and update.googleapis.com
    # at start even so.
]
# No preconnecting or prefetching (NETWORK_PREDICTION_NEVER).
CHROMIUM_PREFS = {"net.network_prediction_options": 2}


class Skipped(Exception):
    """chromium or chromedriver is missing or cannot start."""


class CheckFailed(Exception):
    """A check of the page failed."""


class WebDriverError(Exception):
    def __init__(self, error, message):
        super().__init__("%s: %s" % (error, message))
        self.error = error


def log(msg):
    print("page_check: " + msg, flush=True)


# ---------------------------------------------------------------- WebDriver client

class WebDriver:
    """The few W3C WebDriver commands this check needs, over HTTP to chromedriver."""

    def __init__(self, base):
        self.base = base.rstrip("/")
        self.session = None

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                reply = json.loads(res.read().decode() or "{}")
        except urllib.error.HTTPError as e:
            try:
                reply = json.loads(e.read().decode() or "{}")
            except ValueError:
                raise WebDriverError("http %d" % e.code, e.reason) from None
        value = reply.get("value") if isinstance(reply, dict) else None
        if isinstance(value, dict) and "error" in value:
            raise WebDriverError(value["error"], str(value.get("message", "")).split("\n")[0])
        return value

    def start_session(self, capabilities):
        value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}}, timeout=90)
        self.session = value["sessionId"]

    def s(self, method, path, body=None, timeout=30):
        return self.call(method, "/session/%s%s" % (self.session, path), body, timeout)

    def navigate(self, url):
        self.s("POST", "/url", {"url": url}, timeout=60)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self):
        return base64.b64decode(self.s("GET", "/screenshot"))

    def browser_log(self):
        """The browser's console/network log since the last call, or None if unavailable."""
        try:
            return self.s("POST", "/se/log", {"type": "browser"})
        except (WebDriverError, OSError):
            return None

    def quit(self):
        if self.session:
            try:
                self.s("DELETE", "", timeout=30)
            except (WebDriverError, OSError):
                pass
            self.session = None


# ---------------------------------------------------------------- processes

def resolver_rules(url):
    """Only the page's host (and loopback) resolves: no DNS query leaves, no connection follows."""
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    host = urllib.parse.urlsplit(url).hostname or ""
    if host and host not in ("localhost", "127.0.0.1", "::1"):
        hosts.append("[%s]" % host if ":" in host else host)
    return "--host-resolver-rules=MAP * ~NOTFOUND, " + ", ".join("EXCLUDE " + h for h in hosts)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_chromedriver(path, workdir):
    port = free_port()
    log_path = os.path.join(workdir, "chromedriver.log")
    with open(os.path.join(workdir, "chromedriver.out"), "wb") as out:
        try:
            proc = subprocess.Popen([path, "--port=%d" % port, "--log-path=" + log_path],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # its own process group, killed at the end
        except OSError as e:
            raise Skipped("cannot run %s: %s" % (path, e)) from None
    driver = WebDriver("http://127.0.0.1:%d" % port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Skipped("chromedriver exited with %s at start (log: %s)" % (proc.returncode, tail(log_path)))
        try:
            if driver.call("GET", "/status", timeout=2).get("ready"):
                return proc, driver, log_path
        except (OSError, WebDriverError, ValueError):
            pass
        time.sleep(0.1)
    stop_process_group(proc)
    raise Skipped("chromedriver did not answer on 127.0.0.1:%d within 20 s" % port)


def stop_process_group(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group chromedriver leads (start_new_session)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


def kill_profile_users(profile):
    """SIGKILL, by pid, any process still running with our temporary profile."""
    needle = ("--user-data-dir=" + profile).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if needle in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def tail(path, n=800):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- the checks

def wait_for(what, fn, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CheckFailed("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(interval)


DIAGNOSTICS_JS = """
var q = function (s) { var e = document.querySelector(s); return e ? e.textContent.trim() : null; };
return {url: location.href, loaded: document.body.dataset.loaded || null, conn: q('#conn'),
        conn_title: (document.getElementById('conn') || {}).title || null,
        token_msg: q('#token-msg'), errors: window.ledgerkeepErrors || null,
        status: window.ledgerkeepStatus || null,
        panel_errors: ['nodes', 'backups', 'maintenance'].map(function (n) {
          var e = document.getElementById(n + '-error'); return e && !e.hidden ? n + ': ' + e.textContent : null;
        }).filter(Boolean)};
"""

ROW_JS = """
var row = document.querySelector(arguments[0] + ' tr[data-node="' + CSS.escape(arguments[1]) + '"]');
if (!row) return null;
var out = {};
arguments[2].forEach(function (name) {
  var c = row.querySelector('[data-field="' + name + '"]');
  out[name] = c ? {value: c.getAttribute('data-value'), text: c.textContent.replace(/\\s+/g, ' ').trim()} : null;
});
return out;
"""


def cell_key(cell):
    if not cell:
        return None
    return cell["value"] if cell.get("value") is not None else cell["text"]


def page_url(url, fragment):
    base = url.split("#", 1)[0]
    return base + "#" + fragment


class Checker:
    def __init__(self, driver, args):
        self.d = driver
        self.args = args
        self.passed = []

    def ok(self, msg):
        self.passed.append(msg)
        log("ok: " + msg)

    def diagnostics(self):
        try:
            return json.dumps(self.d.js(DIAGNOSTICS_JS), indent=1)[:4000]
        except (WebDriverError, OSError) as e:
            return "(no diagnostics: %s)" % e

    def expect(self, cond, msg):
        if not cond:
            raise CheckFailed(msg + "\npage state: " + self.diagnostics())

    def js_errors(self):
        return self.d.js("return window.ledgerkeepErrors ? window.ledgerkeepErrors.slice() : ['window.ledgerkeepErrors is missing'];")

    def severe_log(self, ignore=None):
        """SEVERE browser log entries since the last call (None: no log), less those `ignore` accepts."""
        entries = self.d.browser_log()
        if entries is None:
            return None
        bad = []
        for e in entries:
            msg = str(e.get("message", ""))
            # The API's documented answer when no maintenance run exists yet
            # is a 404, which Chromium logs as a failed resource load.
            if "/api/maintenance/latest" in msg and "404" in msg:
                continue
            if e.get("level") == "SEVERE" and not (ignore and ignore(msg)):
                bad.append(msg)
        return bad

    def check_errors(self, when, ignore=None):
        errors = self.js_errors()
        self.expect(not errors, "JavaScript errors %s: %s" % (when, errors))
        severe = self.severe_log(ignore)
        self.expect(not severe, "errors in the browser log %s: %s" % (when, severe))
        return severe is not None

    def run(self):
        a = self.args
        d = self.d
        d.navigate(page_url(a.url, "token=" + urllib.parse.quote(a.token, safe="")))
        try:
            wait_for("body[data-loaded=1] (nodes and backups loaded)",
                     lambda: d.js("return document.body.dataset.loaded === '1';"), 30)
        except CheckFailed as e:
            raise CheckFailed(str(e) + "\npage state: " + self.diagnostics()) from None
        self.ok("the page loaded nodes and backups (body[data-loaded=1])")

        where = d.js("return {hash: location.hash, stored: sessionStorage.getItem('ledgerkeep.token')};")
        self.expect(where["hash"] == "", "the token is still in the address bar: %r" % where["hash"])
        self.expect(where["stored"] == a.token, "the token is not in sessionStorage")
        self.ok("the token left the address bar and is kept in sessionStorage")

        for node in a.expect_node:
            row = d.js(ROW_JS, "#nodes", node, ["state", "wedge"])
            self.expect(row is not None, "no row #nodes tr[data-node=%r]" % node)
            self.expect(row["state"] and row["state"]["text"], "node %s has no state" % node)
            self.expect(row["wedge"] and row["wedge"]["text"], "node %s has no wedge cell" % node)
            brow = d.js(ROW_JS, "#backups", node, ["last-success", "snapshot", "last-result"])
            self.expect(brow is not None, "no row #backups tr[data-node=%r]" % node)
            self.ok("node %s: state %s, wedge %s, last backup run %s" % (
                node, row["state"]["text"], row["wedge"]["text"], cell_key(brow["last-result"])))

        wait_for("the event stream to be live (#conn[data-state=live])",
                 lambda: d.js("var c = document.getElementById('conn'); return c && c.dataset.state === 'live';"), 20)
        self.ok("the event stream is live")

        injected = d.js("return {xss: window.__xss === undefined ? null : window.__xss,"
                        " elements: document.querySelectorAll('#panels img, #panels script, #panels iframe').length};")
        self.expect(injected["xss"] is None and injected["elements"] == 0,
                    "text from the API was parsed as HTML: %r" % injected)
        self.ok("strings from the API are shown as text")

        have_log = self.check_errors("after loading")
        if a.reconnect_cmd:
            self.check_reconnect()
            # The cut stream is logged as a failed load (net::ERR_...): expected, once.
            self.check_errors("after the reconnect", lambda m: "api/events" in m and "net::ERR_" in m)

        if a.trigger_cmd:
            self.check_trigger()

        self.check_errors("after the update")
        self.ok("no JavaScript errors" + (", no errors in the browser log" if have_log else " (browser log not available)"))

        if a.screenshot:
            self.save_screenshot(a.screenshot)

        self.check_wrong_token()

    def run_cmd(self, what, argv):
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.args.trigger_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise CheckFailed("the %s command failed: %s" % (what, e)) from None
        if done.returncode != 0:
            raise CheckFailed("the %s command exited with %d: %s %s" % (
                what, done.returncode, done.stdout.decode(errors="replace")[-500:],
                done.stderr.decode(errors="replace")[-500:]))

    def check_reconnect(self):
        d = self.d
        before = d.js("window.__noReload = 1; return JSON.parse(JSON.stringify(window.ledgerkeepStatus));")
        log("cutting the event stream: %s" % self.args.reconnect_cmd)
        t0 = time.monotonic()
        self.run_cmd("reconnect", self.args.reconnect_cmd)

        def back():
            st = d.js("var c = document.getElementById('conn');"
                      " return {opens: window.ledgerkeepStatus.streamOpens, live: c.dataset.state === 'live'};")
            return st["live"] and st["opens"] > before["streamOpens"]
        try:
            wait_for("the page to open the event stream again", back, 40)
        except CheckFailed as e:
            raise CheckFailed(str(e) + "\npage state: " + self.diagnostics()) from None
        st = d.js("var seqs = Array.prototype.map.call(document.querySelectorAll('#events li[data-seq]'),"
                  " function (li) { return li.getAttribute('data-seq'); });"
                  " return {noReload: window.__noReload === undefined ? null : window.__noReload, seqs: seqs,"
                  " status: JSON.parse(JSON.stringify(window.ledgerkeepStatus))};")
        self.expect(st["noReload"] == 1, "the page reloaded to reconnect")
        self.expect(len(set(st["seqs"])) == len(st["seqs"]), "an event shows twice in the feed: %s" % st["seqs"])
        last_before, last_now = before.get("lastEventId"), st["status"].get("lastEventId")
        self.expect(isinstance(last_now, int) and last_now >= (last_before or 0),
                    "lastEventId went back on reconnect (%r -> %r)" % (last_before, last_now))
        self.ok("the page reconnected to the event stream %.1f s after the cut (stream opened %d times, last event %s)"
                % (time.monotonic() - t0, st["status"]["streamOpens"], last_now))

    def check_trigger(self):
        a, d = self.args, self.d
        node = a.expect_backup_node
        fields = ["last-success", "snapshot", "last-result"]
        before = d.js(ROW_JS, "#backups", node, fields)
        self.expect(before is not None, "no row #backups tr[data-node=%r]" % node)
        status_before = d.js("return JSON.parse(JSON.stringify(window.ledgerkeepStatus));")
        browser_t0 = d.js("window.__noReload = 1; return Date.now();")
        log("before the trigger: %s last success %r, snapshot %r; running %s" % (
            node, cell_key(before["last-success"]), cell_key(before["snapshot"]), a.trigger_cmd))
        t0 = time.monotonic()
        self.run_cmd("trigger", a.trigger_cmd)

        def changed():
            now = d.js(ROW_JS, "#backups", node, fields)
            if now and (cell_key(now["last-success"]) != cell_key(before["last-success"]) or
                        cell_key(now["snapshot"]) != cell_key(before["snapshot"])):
                return now
            return None

        left = max(1.0, a.trigger_timeout_s - (time.monotonic() - t0))
        try:
            after = wait_for("the backup row of %s to change" % node, changed, left, interval=0.25)
        except CheckFailed as e:
            raise CheckFailed(str(e) + "\npage state: " + self.diagnostics()) from None
        took = time.monotonic() - t0
        st = d.js("return {noReload: window.__noReload === undefined ? null : window.__noReload,"
                  " status: JSON.parse(JSON.stringify(window.ledgerkeepStatus)),"
                  " events: document.querySelectorAll('#events li').length};")
        self.expect(st["noReload"] == 1, "the page reloaded (window.__noReload is gone)")
        panel = ((st["status"].get("panels") or {}).get("backups") or {}).get("changedBy") or {}
        self.expect(panel.get("reason") == "event" and panel.get("at", 0) >= browser_t0,
                    "the backup row changed, but through a %r reload, not through the event stream (%r)" % (
                        panel.get("reason"), panel))
        last_before, last_now = status_before.get("lastEventId"), st["status"].get("lastEventId")
        self.expect(isinstance(last_now, int) and (last_before is None or last_now > last_before),
                    "ledgerkeepStatus.lastEventId did not move on (%r -> %r)" % (last_before, last_now))
        self.expect(st["events"] > 0, "the event feed (#events) is empty after the trigger")
        self.expect(st["status"].get("updates", 0) > status_before.get("updates", 0), "ledgerkeepStatus.updates did not grow")
        self.ok("%s's backup row changed %.1f s after the trigger, without a reload, through event %s: "
                "last success %r -> %r, snapshot %r -> %r, last run %r" % (
                    node, took, panel.get("seq"), cell_key(before["last-success"]), cell_key(after["last-success"]),
                    cell_key(before["snapshot"]), cell_key(after["snapshot"]), cell_key(after["last-result"])))

    def check_wrong_token(self):
        d = self.d
        d.navigate("about:blank")
        wrong = "wrong-" + base64.b32encode(os.urandom(10)).decode().lower()
        d.navigate(page_url(self.args.url, "token=" + wrong))

        def form_shown():
            return d.js("""
              var f = document.getElementById('token-form'), m = document.getElementById('token-msg');
              return !!f && f.getClientRects().length > 0 && !!m && /token refused/i.test(m.textContent);""")
        try:
            wait_for("the token form with 'token refused'", form_shown, 20)
        except CheckFailed as e:
            raise CheckFailed(str(e) + "\npage state: " + self.diagnostics()) from None
        st = d.js("return {stored: sessionStorage.getItem('ledgerkeep.token'), loaded: document.body.dataset.loaded || null,"
                  " panels: !document.getElementById('panels').hidden};")
        self.expect(st["stored"] is None, "the refused token is still stored")
        self.expect(st["loaded"] is None and not st["panels"], "the panels still show after a refused token")
        # The refused requests are logged as failed loads (401): expected.
        self.check_errors("after a refused token", lambda m: " 401 " in m or "(Unauthorized)" in m)
        self.ok("a wrong token shows the token form with 'token refused'")

    def save_screenshot(self, path):
        png = self.d.screenshot()
        with open(path, "wb") as f:
            f.write(png)
        log("screenshot: %s (%d bytes)" % (path, len(png)))


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Browser check of the broker's status page.",
                                 epilog="Exit: 0 passed, 1 failed, 2 usage, 77 skipped (no chromium/chromedriver).")
    ap.add_argument("--url", required=True, help="the page, e.g. http://127.0.0.1:7004/")
    ap.add_argument("--token", required=True, help="the broker's API token")
    ap.add_argument("--expect-node", action="append", default=[], metavar="ID", help="a node the page must list")
    ap.add_argument("--reconnect-cmd", metavar="JSON", help="argv as a JSON list: cuts the page's event stream")
    ap.add_argument("--trigger-cmd", metavar="JSON", help="argv as a JSON list: makes a backup of --expect-backup-node finish")
    ap.add_argument("--expect-backup-node", metavar="ID", help="the node whose backup row must change after the trigger")
    ap.add_argument("--trigger-timeout-s", type=float, default=60.0, help="how long to wait for the change (default 60)")
    ap.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the page")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
                    or "/usr/bin/chromedriver")
    ap.add_argument("--verbose", action="store_true", help="print chromedriver's log at the end")
    args = ap.parse_args(argv)
    for name in ("trigger_cmd", "reconnect_cmd"):
        text = getattr(args, name)
        if text is None:
            continue
        flag = "--" + name.replace("_", "-")
        try:
            argv_list = json.loads(text)
        except ValueError as e:
            ap.error("%s: not JSON: %s" % (flag, e))
        if not (isinstance(argv_list, list) and argv_list and all(isinstance(x, str) for x in argv_list)):
            ap.error("%s: a JSON list of strings (an argv)" % flag)
        setattr(args, name, argv_list)
    if args.trigger_cmd and not args.expect_backup_node:
        ap.error("--trigger-cmd needs --expect-backup-node")
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        ap.error("--url: an http(s) URL")
    return args


def main(argv):
    args = parse_args(argv)
    for what, path in (("chromium", args.chromium), ("chromedriver", args.chromedriver)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print("page_check: SKIPPED: %s not found at %s (apt-get install chromium chromium-driver)" % (what, path),
                  file=sys.stderr)
            return SKIP

    workdir = tempfile.mkdtemp(prefix="lk-page-check-")
    profile = os.path.join(workdir, "profile")
    os.mkdir(profile)
    proc = driver = None
    driver_log = None
    checker = None
    try:
        proc, driver, driver_log = start_chromedriver(args.chromedriver, workdir)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": args.chromium, "args": CHROMIUM_ARGS + [resolver_rules(args.url), "--user-data-dir=" + profile],
                                   "prefs": CHROMIUM_PREFS},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 30000, "pageLoad": 60000},
        }
        try:
            driver.start_session(caps)
        except (WebDriverError, OSError, KeyError, TypeError) as e:
            raise Skipped("chromium did not start: %s" % e) from None
        log("chromium started (session %s)" % driver.session)
        checker = Checker(driver, args)
        checker.run()
        log("PASSED: %d checks" % len(checker.passed))
        return 0
    except Skipped as e:
        print("page_check: SKIPPED: %s" % e, file=sys.stderr)
        return SKIP
    except (CheckFailed, WebDriverError, OSError) as e:
        print("page_check: FAILED: %s" % e, file=sys.stderr)
        if checker is not None and args.screenshot:
            try:
                checker.save_screenshot(args.screenshot)
            except (WebDriverError, OSError):
                pass
        if driver_log and not isinstance(e, CheckFailed) and not args.verbose:
            print("page_check: chromedriver log: %s" % tail(driver_log, 1500), file=sys.stderr)
        return 1
    finally:
        if args.verbose and driver_log:
            print(tail(driver_log, 20000), file=sys.stderr)
        if driver is not None:
            driver.quit()
        stop_process_group(proc)
        kill_profile_users(profile)
        for _ in range(5):
            shutil.rmtree(workdir, ignore_errors=True)
            if not os.path.exists(workdir):
                break
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
