#!/usr/bin/env python3
"""Tests prometheus_check.py against fake_exporter.py (ctest
monitoring.prometheus_script_selftest): a real Prometheus scrapes a fake
broker and a fake agent on loopback.

1. With the alert rules, the dashboard (its maintenance-runs panel allowed
   empty: the fake broker does not export that counter) and --expect queries
   over both targets: must pass, and must have really queried (the output
   names the series it got).
2. The same without --allow-empty-panel, and an --expect of a metric nobody
   exports: must fail, naming that panel and that query. A check that cannot
   fail proves nothing.

Usage: prometheus_check_selftest.py --work-dir DIR. Exit 77 (skipped) when
prometheus is not installed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import fake_exporter  # noqa: E402

SKIP = 77
EMPTY_PANEL = "Maintenance runs by outcome"


def check(args, work_dir, broker, agent, extra):
    cmd = [sys.executable, os.path.join(HERE, "prometheus_check.py"), "--work-dir", work_dir,
           "--target", "broker=127.0.0.1:%d" % broker, "--target", "agent=127.0.0.1:%d" % agent,
           "--rules", os.path.join(SOURCE, "monitoring", "alerts.yml"),
           "--dashboard", os.path.join(SOURCE, "monitoring", "grafana-dashboard.json")] + extra
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
    print(r.stdout, flush=True)
    return r.returncode, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--timeout", type=int, default=150, help="seconds each prometheus_check.py run may take")
    args = ap.parse_args()

    os.makedirs(args.work_dir, exist_ok=True)
    # The failing run keeps its Prometheus directory; this one holds both
    # runs' and goes when the selftest passes.
    work_dir = tempfile.mkdtemp(prefix="selftest-", dir=args.work_dir)
    broker = fake_exporter.start("broker")
    agent = fake_exporter.start("agent")
    bport, aport = broker.server_address[1], agent.server_address[1]
    try:
        rc, out = check(args, work_dir, bport, aport, [
            "--allow-empty-panel", EMPTY_PANEL,
            "--expect", 'ledgerkeep_node_up{job="broker"}',
            "--expect", 'rate(ledgerkeep_ledger_fast_paths_total{job="agent",node="r1"}[10s]) > 0',
            # The double series of the doc: broker and agent both export it.
            "--expect", 'count by (node) (ledgerkeep_backup_last_success_timestamp_seconds{node="r1"}) == 2'])
        if rc == SKIP:
            shutil.rmtree(work_dir, ignore_errors=True)
            return SKIP
        failures = []
        if rc != 0:
            failures.append("the check against healthy fakes exited %d, not 0" % rc)
        for want in ('target broker http://127.0.0.1:%d/metrics: up' % bport,
                     'target agent http://127.0.0.1:%d/metrics: up' % aport,
                     'rules: 8 loaded, 8 evaluated without error',
                     'job="broker",node="r1",role="replica"} 1',
                     "panel 'Blocks per second' A: 1 series",
                     "panel %r A: no data (allowed by --allow-empty-panel)" % EMPTY_PANEL,
                     "PASS"):
            if want not in out:
                failures.append("the passing run's output lacks %r" % want)

        rc, out = check(args, work_dir, bport, aport, [
            "--timeout", "8", "--expect", "ledgerkeep_not_exported"])
        if rc != 1:
            failures.append("the check with an empty panel and query exited %d, not 1" % rc)
        for want in ("FAIL: panel %r A: no data" % EMPTY_PANEL,
                     "FAIL: expect 'ledgerkeep_not_exported': no data",
                     "FAILED; Prometheus's config, log and TSDB are kept in"):
            if want not in out:
                failures.append("the failing run's output lacks %r" % want)
    finally:
        broker.shutdown()
        agent.shutdown()
    for f in failures:
        print("FAIL: " + f)
    if failures:
        print("kept: " + work_dir)
        return 1
    shutil.rmtree(work_dir, ignore_errors=True)
    print("selftest PASS: prometheus_check.py passes on data and fails without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
