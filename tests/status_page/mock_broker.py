#!/usr/bin/env python3
"""A stand-in for the broker's HTTP API (docs/http-and-metrics.md), with fake data.

It serves broker/status_page/index.html at / so the page can be checked in a
browser without a cluster (tests/status_page/page_check.py). Standard library
only; listens on 127.0.0.1 only.

Usage:
  mock_broker.py PORT [--token TOKEN] [--page FILE] [--keepalive-s 15] [--no-maintenance]

PORT 0 picks a free port. The first line on stdout is always
`listening on http://127.0.0.1:PORT/` (flushed), so a caller can read the port.

The broker's API, as the doc describes it:
  GET /healthz                    {"status", "event_log_head", "nodes", "nodes_alive"}, no token
  GET /                           the status page, no token
  GET /api/nodes                  bearer token (401 otherwise), as every /api/ path
  GET /api/backups
  GET /api/maintenance/latest     (and /api/maintenance/<id>); 404 with --no-maintenance
  GET /api/events?since=SEQ       Server-Sent Events: every event after SEQ (or after the
                                  Last-Event-ID header, which wins), then live ones; a
                                  `: keep-alive` comment every --keepalive-s seconds

Test controls (no token; they change the fake cluster and append events):
  POST /mock/backup-finished[?node=r1&ok=1&via=backup|command&error=TEXT]
        a backup of NODE finished: progress events, then a BackupResult event
        (via=backup, a scheduled run: kind "backup") or a command's events
        (via=command, run-now: kind "command"); /api/backups shows the new run.
        Replies {"ok": true, "snapshot_id": ..., "seq": <last event>}.
  POST /mock/node-state?node=r3&state=suspect    a NodeStateChange event
  POST /mock/wedge[?stop_point=N&wedged=1]       every live replica reports wedged (or not, wedged=0)
                                                 at stop point N: a command's events
  POST /mock/maintenance-step                    the maintenance run moves on one step
                                                 (a finished run: a new one starts)
  POST /mock/drop-streams                        cuts every open event stream (as a broker
                                                 restart would); the page must reconnect
  GET  /mock/streams                             the event stream requests so far:
                                                 [{"since", "last_event_id", "from"}], oldest first
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
DEFAULT_PAGE = HERE.parent.parent / "broker" / "status_page" / "index.html"

# Strings a node id, destination or error could hold in a real cluster: the page
# must show them as text (page_check.py fails if window.__xss gets set).
HOSTILE_DEST = '/srv/backups/c1 <img src=x onerror="window.__xss=1">'
HOSTILE_ERROR = 'rsync: connection unexpectedly closed <script>window.__xss=1</script> (code 12)'

MAINTENANCE_STEPS = ["plan", "checkpoint", "wedge", "stop_clients", "archive_clients", "start_clients",
                     "unwedge", "ship", "verify"]


def now_ms():
    return int(time.time() * 1000)


def snapshot_id(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y%m%dT%H%M%S", t) + ".%03dZ" % (ms % 1000)


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


class Cluster:
    """The fake cluster: nodes, backup results, maintenance runs and the event log. Thread-safe."""

    def __init__(self, with_maintenance):
        self.cond = threading.Condition()
        self.events = []  # EventToJson objects (cli/event_format.cc), seq 1..n
        self.next_cmd = 40
        t = now_ms()
        self.nodes = {}
        for i, (node, role, state, hb_ago, clone) in enumerate([
                ("r1", "replica", "alive", 0.4, False), ("r2", "replica", "alive", 0.7, False),
                ("r3", "replica", "alive", 0.2, False), ("r4", "replica", "suspect", 9.5, False),
                ("c1", "client", "alive", 0.9, False), ("x1", "replica", "lost", 3600 * 5, True)]):
            dest = "root@10.72.216.118:/srv/backups/%s" % node
            if node == "c1":
                dest = HOSTILE_DEST
            self.nodes[node] = {
                "node": node, "role": role, "state": state, "clone": clone, "hb_ago_s": hb_ago,
                "version": "ledgerkeep 0.9.%d" % (3 if node != "x1" else 1),
                "backup_destination": "" if node == "x1" else dest,
                "wedge": None if role == "client" or node == "x1" else
                {"wedged": False, "stop_point": 0, "last": 120400 + i, "at_ms": t - 60_000},
                "pending_commands": 0,
            }
        self.backups = {n: [] for n in self.nodes}  # newest first
        for node in ("r1", "r2", "r3", "r4", "c1"):
            for k in range(3):
                at = t - (3 - k) * 3600_000 - 12 * 60_000 - sum(map(ord, node)) * 397
                self.backups[node].insert(0, self.result(node, at, ok=True, scheduled=True))
        self.backups["r4"].insert(0, self.result("r4", t - 7 * 60_000, ok=False, scheduled=True,
                                                error=HOSTILE_ERROR))
        self.runs = []
        self.drops = 0          # bumped by drop_streams(): open streams end
        self.stream_log = []    # one entry per GET /api/events
        if with_maintenance:
            started = t - 26 * 3600_000
            self.runs.append({
                "run_id": 6, "kind": "maintenance", "state": "succeeded", "step": "verify", "finished": True,
                "error": "", "started_at_ms": started, "finished_at_ms": started + 47_800,
                "report": {"mode": "online", "stop_point": 118200, "common_block": 118200, "complete": True,
                           "pause_s": 0.53, "client_downtime_s": 4.91, "shipping_s": 41.2, "window_s": 4.91,
                           "shipping": {n: {"state": "done", "snapshot_id": snapshot_id(started + 40_000)}
                                        for n in ("r1", "r2", "r3", "r4")},
                           "replicas": {n: {"snapshot_id": snapshot_id(started + 40_000),
                                            "bytes_transferred": 52_428_800 + 1000 * k}
                                        for k, n in enumerate(("r1", "r2", "r3", "r4"))}},
            })
        # Some history before the page opens: it starts after this.
        for node in ("r1", "r2", "r3", "r4", "c1"):
            self.append("status", node, "NodeStateChange", "%s unknown -> alive (hello)" % node,
                        {"from": "unknown", "to": "alive"}, at=t - 3600_000)
        self.append("status", "r4", "NodeStateChange", "r4 alive -> suspect (no heartbeat for 9 s)",
                    {"from": "alive", "to": "suspect"}, at=t - 9_000)

    def result(self, node, at, ok, scheduled, error=""):
        size = 48_000_000 + (at // 1000) % 4_000_000
        return {"node": node, "snapshot_id": snapshot_id(at) if ok else "",
                "destination": self.nodes[node]["backup_destination"], "ok": ok, "error": error,
                "bytes_sent": (size // 9) if ok else 0, "bytes_total": size,
                "duration_s": 4.2 + (at // 1000) % 7 if ok else 0.8, "last_block_id": 100000 + (at // 1000) % 20000,
                "scheduled": scheduled, "at_ms": at, "set_run": 0}

    # ---------------------------------------------------------------- events

    def append(self, kind, node, type_, text, fields, at=None):
        """Appends one event (the caller holds no lock) and wakes the streams."""
        with self.cond:
            ev = {"seq": len(self.events) + 1, "at_ms": at or now_ms(), "kind": kind, "node": node,
                  "type": type_, "text": text}
            ev["at"] = iso(ev["at_ms"])
            ev.update(fields)
            self.events.append(ev)
            self.cond.notify_all()
            return ev["seq"]

    def head(self):
        with self.cond:
            return len(self.events)

    def events_after(self, seq, timeout):
        """Events with seq > `seq`, waiting up to `timeout` seconds for one."""
        with self.cond:
            if len(self.events) <= seq:
                self.cond.wait(timeout)
            return list(self.events[seq:])

    # ---------------------------------------------------------------- API views

    def nodes_view(self):
        t = now_ms()
        with self.cond:
            out = []
            for n in self.nodes.values():
                v = {k: n[k] for k in ("node", "role", "state", "clone", "version", "backup_destination",
                                       "wedge", "pending_commands")}
                v["last_heartbeat_ms"] = t - int(n["hb_ago_s"] * 1000)
                out.append(v)
            return {"now_ms": t, "nodes": out}

    def backups_view(self):
        with self.cond:
            out = []
            for node, runs in self.backups.items():
                good = [r for r in runs if r["ok"]]
                out.append({"node": node, "last_success_ms": good[0]["at_ms"] if good else None,
                            "last": runs[0] if runs else None, "recent": runs[:10]})
            return {"now_ms": now_ms(), "nodes": out}

    def maintenance_view(self, which):
        with self.cond:
            if not self.runs:
                return None
            if which == "latest":
                return self.runs[-1]
            for r in self.runs:
                if str(r["run_id"]) == which:
                    return r
            return None

    def healthz(self):
        with self.cond:
            alive = sum(1 for n in self.nodes.values() if n["state"] == "alive")
            return {"status": "ok", "event_log_head": len(self.events), "nodes": len(self.nodes),
                    "nodes_alive": alive}

    # ---------------------------------------------------------------- test controls

    def backup_finished(self, node, ok, via, error):
        if node not in self.nodes:
            raise KeyError(node)
        with self.cond:
            self.next_cmd += 1
            cmd = self.next_cmd
        at = now_ms()
        res = self.result(node, at, ok=ok, scheduled=(via == "backup"), error=error if not ok else "")
        if via == "command":
            self.append("command", "broker", "CommandIssued",
                        "command %d (BackupRunNow) issued by operator to %s" % (cmd, node), {"cmd_id": cmd})
            self.append("command", node, "Ack", "command %d accepted" % cmd, {"cmd_id": cmd, "accepted": True})
        for pct in (35.0, 100.0):
            done = int(res["bytes_total"] * pct / 100)
            self.append("progress", node, "Progress",
                        "command %d rsync %.1f%% %d/%d bytes" % (cmd, pct, done, res["bytes_total"]),
                        {"cmd_id": cmd, "percent": pct, "bytes_done": done, "bytes_total": res["bytes_total"]})
        with self.cond:
            self.backups[node].insert(0, res)
            del self.backups[node][10:]
        desc = ("backup %s to %s: %d of %d bytes sent, last block %d" %
                (res["snapshot_id"], res["destination"], res["bytes_sent"], res["bytes_total"], res["last_block_id"])
                if ok else "backup FAILED: " + res["error"])
        if via == "command":
            status = "Ok" if ok else "Failed"
            seq = self.append("command", node, "CommandResult",
                              "command %d %s%s" % (cmd, status, "" if ok else ": " + res["error"]),
                              {"cmd_id": cmd, "status": status, "message": "" if ok else res["error"]})
            seq = self.append("command", "broker", "CommandFinished",
                              "command %d (BackupRunNow) finished: %d ok, %d failed" % (cmd, ok, not ok),
                              {"cmd_id": cmd})
        else:
            seq = self.append("backup", node, "BackupResult", "scheduled " + desc,
                              {"snapshot_id": res["snapshot_id"], "ok": ok, "consistent": True,
                               "last_block_id": res["last_block_id"]})
        return {"ok": True, "snapshot_id": res["snapshot_id"], "seq": seq}

    def wedge(self, stop_point, wedged):
        t = now_ms()
        with self.cond:
            self.next_cmd += 1
            cmd = self.next_cmd
            targets = [n for n, v in self.nodes.items() if v["wedge"] is not None]
            for n in targets:
                w = self.nodes[n]["wedge"]
                w.update({"wedged": wedged, "stop_point": stop_point if wedged else 0, "at_ms": t})
                if wedged:
                    w["last"] = stop_point
        kind = "WedgeStop" if wedged else "Unwedge"
        self.append("command", "broker", "CommandIssued",
                    "command %d (%s) issued by operator to %s" % (cmd, kind, ",".join(targets)), {"cmd_id": cmd})
        for n in targets:
            seq = self.append("command", n, "CommandResult", "command %d Ok" % cmd,
                              {"cmd_id": cmd, "status": "Ok", "message": ""})
        return {"ok": True, "seq": seq, "nodes": targets}

    def drop_streams(self):
        with self.cond:
            self.drops += 1
            self.cond.notify_all()
            return {"ok": True, "drops": self.drops}

    def node_state(self, node, state):
        with self.cond:
            n = self.nodes[node]
            before = n["state"]
            n["state"] = state
            n["hb_ago_s"] = 0.3 if state == "alive" else 12.0
        seq = self.append("status", node, "NodeStateChange", "%s %s -> %s (mock)" % (node, before, state),
                          {"from": before, "to": state})
        return {"ok": True, "seq": seq}

    def maintenance_step(self):
        t = now_ms()
        with self.cond:
            run = self.runs[-1] if self.runs else None
            if run is None or run["finished"]:
                run = {"run_id": (run["run_id"] + 1) if run else 1, "kind": "maintenance", "state": "running",
                       "step": MAINTENANCE_STEPS[0], "finished": False, "error": "", "started_at_ms": t,
                       "finished_at_ms": 0, "report": {"mode": "online"}}
                self.runs.append(run)
                step, state = run["step"], "started"
            else:
                i = MAINTENANCE_STEPS.index(run["step"])
                if i + 1 < len(MAINTENANCE_STEPS):
                    run["step"] = MAINTENANCE_STEPS[i + 1]
                    step, state = run["step"], "started"
                    if run["step"] == "unwedge":
                        run["report"].update({"stop_point": 120600, "common_block": 120600, "pause_s": 0.61,
                                              "client_downtime_s": 5.02})
                    if run["step"] == "ship":
                        run["report"]["shipping"] = {n: {"state": "shipping", "attempt": 1, "cmd_id": 50 + k}
                                                     for k, n in enumerate(("r1", "r2", "r3", "r4"))}
                else:
                    run.update({"state": "succeeded", "finished": True, "finished_at_ms": t})
                    run["report"].update({"complete": True, "shipping_s": (t - run["started_at_ms"]) / 1000.0,
                                          "window_s": 5.02})
                    for n in run["report"].get("shipping", {}):
                        run["report"]["shipping"][n] = {"state": "done", "snapshot_id": snapshot_id(t)}
                    step, state = run["step"], "done"
            run_id = run["run_id"]
        seq = self.append("runbook", "broker", "RunbookStep", "maintenance run %d %s %s" % (run_id, step, state),
                          {"run_id": run_id, "step": step, "state": state})
        return {"ok": True, "run_id": run_id, "step": step, "state": state, "seq": seq}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ledgerkeep-mock-broker"
    cluster = None  # set by main
    token = ""
    page = None
    keepalive_s = 15.0

    def log_message(self, fmt, *args):  # quiet: stderr only for errors
        pass

    # ---------------------------------------------------------------- replies

    def reply(self, code, body, content_type="application/json", extra=None):
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, code, message):
        self.reply(code, {"ok": False, "error": message})

    def authorized(self):
        if self.headers.get("Authorization", "") == "Bearer " + self.token:
            return True
        self.reply(401, {"ok": False, "error": "missing or wrong bearer token"},
                   extra={"WWW-Authenticate": 'Bearer realm="ledgerkeep"'})
        return False

    # ---------------------------------------------------------------- routes

    def do_GET(self):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        c = self.cluster
        if path in ("/", "/index.html"):
            return self.reply(200, self.page.read_bytes(), "text/html; charset=utf-8", {
                "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
        if path == "/healthz":
            return self.reply(200, c.healthz())
        if path == "/mock/streams":
            with c.cond:
                return self.reply(200, list(c.stream_log))
        if not path.startswith("/api/"):
            return self.error(404, "unknown path " + path)
        if not self.authorized():
            return None
        if path == "/api/nodes":
            return self.reply(200, c.nodes_view())
        if path == "/api/backups":
            return self.reply(200, c.backups_view())
        if path.startswith("/api/maintenance/"):
            run = c.maintenance_view(path[len("/api/maintenance/"):])
            return self.reply(200, run) if run else self.error(404, "no such maintenance run")
        if path == "/api/events":
            return self.events(query)
        return self.error(404, "unknown path " + path)

    def do_POST(self):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        arg = lambda k, d: query.get(k, [d])[0]  # noqa: E731
        c = self.cluster
        try:
            if path == "/mock/backup-finished":
                via = arg("via", "backup")
                if via not in ("backup", "command"):
                    return self.error(400, "via: backup or command")
                return self.reply(200, c.backup_finished(arg("node", "r1"), arg("ok", "1") not in ("0", "false"),
                                                         via, arg("error", "rsync: mock failure")))
            if path == "/mock/node-state":
                return self.reply(200, c.node_state(arg("node", "r3"), arg("state", "suspect")))
            if path == "/mock/maintenance-step":
                return self.reply(200, c.maintenance_step())
            if path == "/mock/wedge":
                return self.reply(200, c.wedge(int(arg("stop_point", "120800")), arg("wedged", "1") not in ("0", "false")))
            if path == "/mock/drop-streams":
                return self.reply(200, c.drop_streams())
        except KeyError as e:
            return self.error(400, "unknown node %s" % e)
        except ValueError as e:
            return self.error(400, str(e))
        return self.error(404 if path.startswith("/mock/") else 405, "unknown path " + path)

    def events(self, query):
        since = query.get("since", ["0"])[0]
        last = self.headers.get("Last-Event-ID")
        try:
            seq = int(last if last not in (None, "") else since)
            if seq < 0:
                raise ValueError
        except ValueError:
            return self.error(400, "since / Last-Event-ID: a sequence number")
        with self.cluster.cond:
            self.cluster.stream_log.append({"since": since, "last_event_id": last, "from": seq})
            drops = self.cluster.drops
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

        def chunk(text):
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            chunk(": ledgerkeep mock broker, events after %d\n\n" % seq)
            quiet_since = time.monotonic()
            while not self.server.stopping.is_set():
                if self.cluster.drops != drops:  # cut, no last chunk: as if the broker died
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                wait = max(0.05, min(1.0, self.keepalive_s - (time.monotonic() - quiet_since)))
                batch = self.cluster.events_after(seq, wait)
                if batch:
                    chunk("".join("id: %d\ndata: %s\n\n" % (e["seq"], json.dumps(e)) for e in batch))
                    seq = batch[-1]["seq"]
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= self.keepalive_s:
                    chunk(": keep-alive\n\n")
                    quiet_since = time.monotonic()
            chunk("")  # the last chunk: the stream ends
        except OSError:  # the page went away, or the cut above
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0: pick one and print it)")
    ap.add_argument("--token", default="mock-token", help="the bearer token /api/ wants (default: mock-token)")
    ap.add_argument("--page", type=Path, default=DEFAULT_PAGE, help="the page served at / (default: %(default)s)")
    ap.add_argument("--keepalive-s", type=float, default=15.0, help="seconds between keep-alive comments")
    ap.add_argument("--no-maintenance", action="store_true", help="no maintenance run yet (latest is 404)")
    args = ap.parse_args()
    if not args.page.is_file():
        ap.error("no page at %s" % args.page)

    Handler.cluster = Cluster(with_maintenance=not args.no_maintenance)
    Handler.token = args.token
    Handler.page = args.page
    Handler.keepalive_s = args.keepalive_s
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.stopping = threading.Event()
    print("listening on http://127.0.0.1:%d/" % server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
