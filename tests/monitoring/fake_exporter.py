#!/usr/bin/env python3
"""A stand-in for the broker's or an agent's /metrics (docs/http-and-metrics.md)
on a loopback port, for testing prometheus_check.py without the C++ build.

Serves a fixed exposition in the Prometheus text format: a few nodes, counters
that grow with time so rates are not 0, two histograms. The broker's
ledgerkeep_maintenance_runs_total is left out on purpose, so the dashboard's
"Maintenance runs by outcome" panel has no data and the selftest exercises
--allow-empty-panel.

Usage: fake_exporter.py --kind broker|agent [--port N]; prints
"listening on 127.0.0.1:PORT" and serves until interrupted. Tests import it
and call start().
"""
import argparse
import http.server
import threading
import time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NODES = [("r1", "replica"), ("r2", "replica"), ("c1", "client")]
BUCKETS = [1, 10, 60, 300, 1800]


def _family(out, name, kind, samples):
    """samples: [(suffix, {label: value}, number)]."""
    out.append("# HELP %s fake ledgerkeep metric for tests" % name)
    out.append("# TYPE %s %s" % (name, kind))
    for suffix, labels, value in samples:
        text = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        out.append("%s%s%s %s" % (name, suffix, "{%s}" % text if text else "", repr(float(value))))


def _histogram(labels, observations):
    samples = []
    for le in BUCKETS:
        samples.append(("_bucket", dict(labels, le=str(float(le))), sum(1 for o in observations if o <= le)))
    samples.append(("_bucket", dict(labels, le="+Inf"), len(observations)))
    samples.append(("_sum", labels, sum(observations)))
    samples.append(("_count", labels, len(observations)))
    return samples


def _backup(out, now, up, nodes):
    """The backup families both the broker and the agents export."""
    _family(out, "ledgerkeep_backup_last_success_timestamp_seconds", "gauge",
            [("", {"node": n}, now - 600) for n in nodes])
    _family(out, "ledgerkeep_backup_last_run_success", "gauge", [("", {"node": n}, 1) for n in nodes])
    _family(out, "ledgerkeep_backup_duration_seconds", "histogram",
            [s for n in nodes for s in _histogram({"node": n}, [42.0, 51.5, 38.2])])
    _family(out, "ledgerkeep_backup_sent_bytes_total", "counter",
            [("", {"node": n}, 1_000_000 + int(up * 1000)) for n in nodes])
    _family(out, "ledgerkeep_backup_runs_total", "counter",
            [("", {"node": n, "result": r}, 3 if r == "success" else 1) for n in nodes for r in ("success", "failure")])
    _family(out, "ledgerkeep_backup_failures_total", "counter",
            [("", {"node": n, "reason": "unavailable"}, 1) for n in nodes])
    _family(out, "ledgerkeep_backup_snapshots", "gauge", [("", {"node": n}, 3) for n in nodes])
    _family(out, "ledgerkeep_backup_newest_snapshot_age_seconds", "gauge", [("", {"node": n}, 600) for n in nodes])


def exposition(kind, started, node="r1"):
    now = time.time()
    up = now - started
    out = []
    if kind == "broker":
        _family(out, "ledgerkeep_node_up", "gauge", [("", {"node": n, "role": r}, 1) for n, r in NODES])
        _family(out, "ledgerkeep_node_last_heartbeat_timestamp_seconds", "gauge",
                [("", {"node": n}, now - 0.5) for n, _ in NODES])
        _backup(out, now, up, [n for n, r in NODES if r == "replica"])
        _family(out, "ledgerkeep_ledger_wedged", "gauge", [("", {"node": n}, 0) for n, r in NODES if r == "replica"])
        _family(out, "ledgerkeep_maintenance_last_pause_seconds", "gauge", [("", {}, 0.53)])
        _family(out, "ledgerkeep_maintenance_last_client_downtime_seconds", "gauge", [("", {}, 1.2)])
        _family(out, "ledgerkeep_maintenance_running", "gauge", [("", {}, 0)])
        _family(out, "ledgerkeep_commands_total", "counter",
                [("", {"kind": "Ping", "result": "ok"}, 10 + int(up)), ("", {"kind": "RunBackupNow", "result": "ok"}, 3)])
        _family(out, "ledgerkeep_command_latency_seconds", "histogram",
                _histogram({"kind": "Ping"}, [0.002] * (10 + int(up))) + _histogram({"kind": "RunBackupNow"}, [45.0, 50.0, 40.0]))
        _family(out, "ledgerkeep_event_log_head_sequence", "gauge", [("", {}, 100 + int(up))])
    else:
        _family(out, "ledgerkeep_agent_info", "gauge", [("", {"node": node, "role": "replica", "version": "0.0.0-fake"}, 1)])
        _backup(out, now, up, [node])
        _family(out, "ledgerkeep_ledger_up", "gauge", [("", {"node": node}, 1)])
        _family(out, "ledgerkeep_ledger_blocks_per_second", "gauge", [("", {"node": node}, 20)])
        _family(out, "ledgerkeep_ledger_fast_paths_total", "counter", [("", {"node": node}, 1000 + int(up * 20))])
        _family(out, "ledgerkeep_ledger_slow_paths_total", "counter", [("", {"node": node}, 0)])
        _family(out, "ledgerkeep_ledger_wedged", "gauge", [("", {"node": node}, 0)])
        _family(out, "ledgerkeep_ledger_wedged_since_timestamp_seconds", "gauge", [("", {"node": node}, 0)])
        _family(out, "ledgerkeep_ledger_last_block_id", "gauge", [("", {"node": node}, 1000 + int(up * 20))])
        _family(out, "ledgerkeep_ledger_catching_up", "gauge", [("", {"node": node}, 0)])
    _family(out, "ledgerkeep_http_requests_total", "counter", [("", {"code": "200"}, 5)])
    return ("\n".join(out) + "\n").encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/metrics":
            self.send_error(404)
            return
        body = exposition(self.server.kind, self.server.started)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # a scrape a second would drown the test's output


def start(kind, port=0):
    """Serves `kind` on 127.0.0.1:port (0: a free one) from a daemon thread;
    returns the server (server_address[1] is the port; shutdown() stops it)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.kind = kind
    server.started = time.time()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    ap = argparse.ArgumentParser(description="fake ledgerkeep /metrics on loopback")
    ap.add_argument("--kind", choices=("broker", "agent"), required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = start(args.kind, args.port)
    print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
