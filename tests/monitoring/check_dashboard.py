#!/usr/bin/env python3
"""Checks monitoring/grafana-dashboard.json on paper (ctest
monitoring.dashboard_queries_parse); no Prometheus or Grafana runs.

1. The JSON is a dashboard Grafana imports: title, uid, schemaVersion, the
   ${DS_PROMETHEUS} input every panel and target uses, panels with unique ids,
   unique titles (prometheus_check.py --allow-empty-panel names panels by
   title) and grid positions inside the 24 columns that do not overlap.
2. Every query, and the node variable's label_values(), selects only metrics
   and labels docs/http-and-metrics.md lists, and uses dashboard variables only
   where a multi-value/All value works (=~ matchers).
3. Every query, with its variables replaced, is valid PromQL: each goes
   through `promtool check rules` as a recording rule.

Usage: check_dashboard.py --doc docs/http-and-metrics.md --dashboard
monitoring/grafana-dashboard.json. PROMTOOL in the environment names the
binary (default: promtool on PATH). Exit 0 when all hold, 1 when one does not,
77 (skipped) when 1-2 hold but promtool is not installed for 3.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import dashboard_queries as dq

SKIP = 77
DATASOURCE_UID = "${DS_PROMETHEUS}"


def check_structure(d, errors):
    for key, kind in (("title", str), ("uid", str), ("schemaVersion", int), ("panels", list),
                      ("templating", dict), ("__inputs", list)):
        if not isinstance(d.get(key), kind):
            errors.append("top level: %r missing or not a %s" % (key, kind.__name__))
    if errors:
        return
    if not 30 <= d["schemaVersion"] <= 39:
        errors.append("schemaVersion %d: expected ~36 (Grafana 9)" % d["schemaVersion"])
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("type") == "datasource"
               and i.get("pluginId") == "prometheus" for i in d["__inputs"]):
        errors.append("__inputs: no DS_PROMETHEUS datasource input of plugin prometheus")
    ids, titles, cells = set(), set(), {}
    for p in dq.panels(d):
        title = p.get("title") or ""
        where = "panel %r" % (title or p.get("id"))
        pid = p.get("id")
        if not isinstance(pid, int) or pid in ids:
            errors.append("%s: id %r missing or not unique" % (where, pid))
        ids.add(pid)
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] < 0 or g["x"] + g["w"] > 24:
            errors.append("%s: gridPos %r not inside the 24 columns" % (where, g))
        else:
            area = [(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])]
            other = next((cells[c] for c in area if c in cells), None)
            if other is not None:
                errors.append("%s overlaps panel %r" % (where, other))
            cells.update((c, title) for c in area)
        if p.get("type") == "row":
            continue
        if not title or title in titles:
            errors.append("%s: title missing or not unique" % where)
        titles.add(title)
        if not p.get("type"):
            errors.append("%s: no type" % where)
        if (p.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            errors.append("%s: datasource is not %s" % (where, DATASOURCE_UID))
        targets = p.get("targets") or []
        if not targets:
            errors.append("%s: no query" % where)
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            errors.append("%s: refIds %r missing or not unique" % (where, refs))
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                errors.append("%s %s: datasource is not %s" % (where, t.get("refId"), DATASOURCE_UID))
            if not (t.get("expr") or "").strip():
                errors.append("%s %s: empty expr" % (where, t.get("refId")))


def check_variables(d, metrics, errors):
    for v in d["templating"].get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\(\s*([a-z_:][a-z0-9_:]*)\s*,\s*([a-z_]+)\s*\)\s*", q)
        if not m:
            errors.append("variable %s: query %r is not label_values(metric, label)" % (v.get("name"), q))
        elif m.group(1) not in metrics or m.group(2) not in metrics[m.group(1)]:
            errors.append("variable %s: %s has no label %s in the doc" % (v.get("name"), m.group(1), m.group(2)))


def check_syntax(d, promtool, errors):
    """Each query as a recording rule of its own, so an error names its panel."""
    names = dq.variables(d)
    with tempfile.TemporaryDirectory(prefix="lk-dashboard-") as tmp:
        path = os.path.join(tmp, "rules.yml")
        for title, ref, expr in dq.queries(d):
            try:
                concrete = dq.substitute(expr, names)
            except dq.QueryError as e:
                errors.append("panel %r %s: %s" % (title, ref, e))
                continue
            rule = {"groups": [{"name": "dashboard", "rules": [{"record": "dashboard:query", "expr": concrete}]}]}
            with open(path, "w", encoding="utf-8") as f:
                json.dump(rule, f)  # JSON is YAML
            r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append("panel %r %s: promtool: %s" % (title, ref, (r.stderr or r.stdout).strip()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--doc", required=True)
    ap.add_argument("--dashboard", required=True)
    args = ap.parse_args()

    metrics = dq.documented_metrics(args.doc)
    try:
        d = dq.load(args.dashboard)
    except (OSError, ValueError) as e:
        print("FAIL: %s: %s" % (args.dashboard, e))
        return 1
    errors = []
    check_structure(d, errors)
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        return 1
    check_variables(d, metrics, errors)
    n = 0
    for title, ref, expr in dq.queries(d):
        n += 1
        try:
            dq.check_names(expr, metrics)
        except dq.QueryError as e:
            errors.append("panel %r %s: %s: %s" % (title, ref, e, expr))
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"
    promtool = promtool if os.access(promtool, os.X_OK) else None
    if promtool:
        check_syntax(d, promtool, errors)
    if errors:
        print("\n".join("FAIL: " + e for e in errors))
        return 1
    print("%d panels, %d queries: structure, metric names and labels as in %s"
          % (sum(1 for p in dq.panels(d) if p.get("type") != "row"), n, os.path.basename(args.doc)))
    if not promtool:
        print("SKIP: promtool is not installed, so the PromQL syntax was not checked "
              "(Debian package prometheus, in run's APT_PACKAGES)")
        return SKIP
    print("PromQL syntax: every query parses (%s)" % promtool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
