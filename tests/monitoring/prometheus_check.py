#!/usr/bin/env python3
"""Scrapes live ledgerkeep /metrics with a real Prometheus and checks that
queries return data: how an integration test proves that the broker's and the
agents' metrics work with Prometheus, the alert rules and the dashboard.

1. Writes prometheus.yml in a new directory under --work-dir: scrape and rule
   evaluation every 1 s, one job per --target NAME (targets given the same NAME
   share its job), --rules loaded.
2. Starts prometheus on a free 127.0.0.1 port with its TSDB in that directory,
   waits for /-/ready, then until every target is up.
3. --rules: waits until every rule has been evaluated against the scraped
   series; a rule whose evaluation errs fails the check. Prints the alerts
   pending or firing (for information: a young test cluster may well have
   some).
4. --expect QUERY (repeatable): polls until the query returns a non-empty
   vector, and prints it.
5. --dashboard FILE: runs every panel's queries as Grafana would with every
   variable at All ($__rate_interval=1m, $__interval=15s, $__range=1h,
   $node=.*) and requires data from each, except in the panels named by
   --allow-empty-panel TITLE (reported as allowed).
Prometheus is always stopped (SIGTERM, then SIGKILL; it also dies with this
script). The directory is removed when every check passed, kept otherwise.

Loopback only: targets must be loopback addresses, Prometheus listens on
127.0.0.1, and HTTP proxy settings are ignored.

Exit: 0 every check passed; 1 one failed; 2 bad usage; 77 (skipped)
prometheus is not installed.
"""
import argparse
import ctypes
import ipaddress
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

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_queries as dq  # noqa: E402

SKIP = 77
# No proxy, whatever the environment says: every request goes to 127.0.0.1.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Usage(Exception):
    pass


def parse_target(text):
    name, sep, addr = text.partition("=")
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise Usage("--target %r: expected NAME=HOST:PORT" % text)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise Usage("--target %r: only loopback addresses are scraped" % text)
    return name, "%s:%s" % ("[%s]" % host if ":" in host else host, port)


def write_config(path, targets, rules):
    """prometheus.yml; JSON strings are YAML strings, so json.dumps quotes."""
    jobs = {}
    for name, addr in targets:
        jobs.setdefault(name, []).append(addr)
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s", "  evaluation_interval: 1s"]
    if rules:
        lines += ["rule_files:", "  - " + json.dumps(os.path.abspath(rules))]
    lines.append("scrape_configs:")
    for name, addrs in jobs.items():
        lines += ["  - job_name: " + json.dumps(name), "    static_configs:",
                  "      - targets: [%s]" % ", ".join(json.dumps(a) for a in addrs)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """In the child: SIGKILL when this script dies, even by SIGKILL (a ctest
    timeout), so no Prometheus outlives its test."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Prometheus:
    def __init__(self, binary, run_dir):
        self.binary, self.run_dir = binary, run_dir
        self.proc = None
        self.port = None
        self.log_path = os.path.join(run_dir, "prometheus.log")

    def start(self, timeout):
        """Starts it and waits for /-/ready. Another process may take the
        free port first: then it tries another, up to three times."""
        for _ in range(3):
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--config.file=" + os.path.join(self.run_dir, "prometheus.yml"),
                     "--storage.tsdb.path=" + os.path.join(self.run_dir, "tsdb"),
                     "--web.listen-address=127.0.0.1:%d" % self.port],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with _HTTP.open("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as r:
                        if r.status == 200:
                            return True
                except (urllib.error.URLError, OSError):
                    pass
                time.sleep(0.2)
            if self.proc.poll() is None or "address already in use" not in self.log_tail():
                return False
        return False

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def api(self, path, **params):
        """The `data` of an API answer; raises RuntimeError with Prometheus's
        error for a refused query."""
        url = "http://127.0.0.1:%d%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        try:
            with _HTTP.open(url, timeout=5) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                raise RuntimeError("%s: HTTP %d" % (path, e.code))
        if body.get("status") != "success":
            raise RuntimeError(body.get("error") or "status %r" % body.get("status"))
        return body["data"]

    def query(self, expr):
        """The instant vector of expr ([] when empty); RuntimeError when
        Prometheus refuses it or it is not a vector."""
        data = self.api("/api/v1/query", query=expr)
        if data.get("resultType") != "vector":
            raise RuntimeError("returns a %s, not a vector" % data.get("resultType"))
        return data["result"]


def series_text(result, limit=6):
    parts = []
    for s in result[:limit]:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s["metric"].items()))
        parts.append("{%s} %s" % (labels, s["value"][1]))
    more = " (+%d more)" % (len(result) - limit) if len(result) > limit else ""
    return "; ".join(parts) + more


def wait_targets(prom, timeout):
    deadline = time.monotonic() + timeout
    while True:
        targets = []
        try:
            targets = prom.api("/api/v1/targets", state="active")["activeTargets"]
        except (RuntimeError, urllib.error.URLError, OSError):
            pass
        if targets and all(t["health"] == "up" for t in targets):
            for t in targets:
                print("target %s %s: up" % (t["labels"].get("job"), t["scrapeUrl"]))
            return True
        if time.monotonic() > deadline:
            for t in targets:
                print("FAIL: target %s %s: %s %s" % (t["labels"].get("job"), t["scrapeUrl"], t["health"],
                                                     t.get("lastError", "")))
            if not targets:
                print("FAIL: Prometheus lists no target after %d s" % timeout)
            return False
        time.sleep(0.5)


def check_rules(prom, timeout):
    """Every rule evaluated at least once after the targets were up, none in
    error. Evaluation runs every second, so two seconds after all have left
    `unknown` each has seen scraped data."""
    deadline = time.monotonic() + timeout
    while True:
        rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
        if rules and all(r["health"] != "unknown" for r in rules):
            break
        if time.monotonic() > deadline:
            print("FAIL: rules: %s" % ("none loaded" if not rules else "not all evaluated in %d s" % timeout))
            return False
        time.sleep(0.5)
    time.sleep(2)
    rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
    bad = [r for r in rules if r["health"] != "ok"]
    for r in bad:
        print("FAIL: rule %s: %s %s" % (r["name"], r["health"], r.get("lastError", "")))
    active = ["%s %s{%s}" % (a["state"], r["name"], ",".join('%s="%s"' % kv for kv in sorted(a["labels"].items())
                                                            if kv[0] != "alertname"))
              for r in rules if r["type"] == "alerting" for a in r.get("alerts", [])]
    print("rules: %d loaded, %d evaluated without error; alerts: %s"
          % (len(rules), len(rules) - len(bad), "; ".join(active) or "none pending or firing"))
    return not bad


def check_queries(prom, checks, timeout):
    """checks: [(label, expr, allow_empty)]. Polls the ones still empty until
    all have data or the timeout; a query Prometheus refuses fails at once.
    Returns whether every check without allow_empty got data."""
    results, errors = {}, {}
    deadline = time.monotonic() + timeout
    while True:
        for i, (_, expr, _) in enumerate(checks):
            if results.get(i) or i in errors:
                continue
            try:
                results[i] = prom.query(expr)
            except RuntimeError as e:
                errors[i] = str(e)
            except (urllib.error.URLError, OSError):
                pass
        waiting = [i for i, c in enumerate(checks) if not results.get(i) and i not in errors and not c[2]]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ok = True
    for i, (label, expr, allow_empty) in enumerate(checks):
        if i in errors:
            print("FAIL: %s: %s: %s" % (label, errors[i], expr))
            ok = False
        elif results.get(i):
            print("%s: %d series: %s" % (label, len(results[i]), series_text(results[i])))
        elif allow_empty:
            print("%s: no data (allowed by --allow-empty-panel)" % label)
        else:
            print("FAIL: %s: no data after %d s: %s" % (label, timeout, expr))
            ok = False
    return ok


def dashboard_checks(path, allowed):
    d = dq.load(path)
    names = dq.variables(d)
    titles = {p.get("title") for p in dq.panels(d)}
    unknown = [t for t in allowed if t not in titles]
    if unknown:
        raise Usage("--allow-empty-panel: no panel titled %s in %s" % (", ".join(map(repr, unknown)), path))
    checks = []
    for title, ref, expr in dq.queries(d):
        try:
            checks.append(("panel %r %s" % (title, ref), dq.substitute(expr, names), title in allowed))
        except dq.QueryError as e:
            raise Usage("%s: panel %r %s: %s" % (path, title, ref, e))
    return checks


def run(args):
    binary = args.prometheus or shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.access(binary, os.X_OK):
        print("SKIP: prometheus is not installed (%s; Debian package prometheus, in run's APT_PACKAGES)" % binary)
        return SKIP
    targets = [parse_target(t) for t in args.target]
    if not targets:
        raise Usage("at least one --target NAME=HOST:PORT")
    if args.rules and not os.path.isfile(args.rules):
        raise Usage("--rules %s: no such file" % args.rules)
    panel_checks = dashboard_checks(args.dashboard, set(args.allow_empty_panel)) if args.dashboard else []
    if args.allow_empty_panel and not args.dashboard:
        raise Usage("--allow-empty-panel needs --dashboard")

    os.makedirs(args.work_dir, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix="prometheus-", dir=args.work_dir)
    write_config(os.path.join(run_dir, "prometheus.yml"), targets, args.rules)
    prom = Prometheus(binary, run_dir)
    ok = False
    try:
        if not prom.start(args.timeout):
            print("FAIL: prometheus did not become ready in %d s; its log ends:\n%s" % (args.timeout, prom.log_tail()))
            return 1
        print("prometheus on 127.0.0.1:%d, files in %s" % (prom.port, run_dir))
        ok = wait_targets(prom, args.timeout)
        if ok and args.rules:
            ok = check_rules(prom, args.timeout)
        if ok:
            ok = check_queries(prom, [("expect %r" % q, q, False) for q in args.expect], args.timeout)
            ok = check_queries(prom, panel_checks, args.timeout) and ok
    finally:
        prom.stop()
    if ok:
        shutil.rmtree(run_dir, ignore_errors=True)
        print("PASS")
        return 0
    print("FAILED; Prometheus's config, log and TSDB are kept in %s" % run_dir)
    return 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", required=True, help="where each run makes its directory")
    ap.add_argument("--target", action="append", default=[], metavar="NAME=HOST:PORT",
                    help="a loopback /metrics endpoint, scraped as job NAME (repeatable)")
    ap.add_argument("--rules", help="alert rules to load, e.g. monitoring/alerts.yml")
    ap.add_argument("--dashboard", help="a Grafana dashboard whose every query must return data")
    ap.add_argument("--allow-empty-panel", action="append", default=[], metavar="TITLE",
                    help="a dashboard panel that may have no data (repeatable)")
    ap.add_argument("--expect", action="append", default=[], metavar="QUERY",
                    help="PromQL that must return a non-empty vector (repeatable)")
    ap.add_argument("--timeout", type=int, default=30, help="seconds each phase may take (default 30)")
    ap.add_argument("--prometheus", default=os.environ.get("PROMETHEUS"),
                    help="the binary (default: $PROMETHEUS, prometheus on PATH, /usr/bin/prometheus)")
    args = ap.parse_args()

    # SIGTERM/SIGINT (a test runner giving up) still stop Prometheus.
    def interrupted(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        return run(args)
    except Usage as e:
        print("prometheus_check.py: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
