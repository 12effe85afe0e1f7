"""The PromQL of monitoring/grafana-dashboard.json and the metrics of
docs/http-and-metrics.md, for check_dashboard.py (on paper) and
prometheus_check.py (against a live Prometheus): one reading of both files, so
the two checks never disagree about which queries a dashboard has.
"""
import json
import re

# What Grafana would put in for its built-in variables; dashboard variables
# (multi-value, "All" = .*) become ".*", which is why they may only appear in
# regex matchers.
BUILTIN_VALUES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "15000",
}
ALL_VALUE = ".*"

# PromQL words that are not metric names.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
    "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
# Labels every scraped series has.
TARGET_LABELS = {"job", "instance"}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<matchop>=~|!~|!=|==|<=|>=)
  | (?P<punct>[{}(),=<>+\-*/%^@])
""", re.VERBOSE)


class QueryError(Exception):
    pass


def documented_metrics(doc_path):
    """{name: set of labels} from the metric tables of docs/http-and-metrics.md.

    A histogram adds its _bucket (with le), _sum and _count series. The
    broker's `ledgerkeep_backup_*` row names no metric of its own (the agent's
    rows do)."""
    row = re.compile(r"^\|\s*`(ledgerkeep_[a-z0-9_]+)(?:\{([a-z_,]*)\})?`\s*\|\s*([a-z]+)\s*\|")
    metrics = {}
    with open(doc_path, encoding="utf-8") as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            name, labels, kind = m.group(1), set(filter(None, (m.group(2) or "").split(","))), m.group(3)
            names = {name: labels}
            if kind == "histogram":
                names = {name + "_bucket": labels | {"le"}, name + "_sum": labels, name + "_count": labels}
            for n, ls in names.items():
                metrics.setdefault(n, set()).update(ls)
    if not metrics:
        raise QueryError("no metric table found in " + doc_path)
    return metrics


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel, rows included, in order; a collapsed row holds its panels."""
    for p in dashboard.get("panels", []):
        yield p
        for inner in p.get("panels", []) or []:
            yield inner


def variables(dashboard):
    return [v.get("name") for v in dashboard.get("templating", {}).get("list", [])]


def queries(dashboard):
    """(panel title, refId, expr) of every target that Grafana would run."""
    for p in panels(dashboard):
        for t in p.get("targets", []) or []:
            if t.get("hide") or not t.get("expr"):
                continue
            yield p.get("title", ""), t.get("refId", ""), t["expr"]


def substitute(expr, dashboard_variables):
    """expr with every variable replaced as Grafana would for a run with every
    dashboard variable at All. Raises QueryError for an unknown variable."""
    def value(name):
        if name in BUILTIN_VALUES:
            return BUILTIN_VALUES[name]
        if name in dashboard_variables:
            return ALL_VALUE
        raise QueryError("unknown variable $" + name)
    pattern = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z0-9_]+)")
    return pattern.sub(lambda m: value(m.group(1) or m.group(2) or m.group(3)), expr)


def _tokens(expr):
    pos = 0
    out = []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise QueryError("cannot read %r at offset %d" % (expr[pos:pos + 20], pos))
        pos = m.end()
        if m.lastgroup != "space":
            out.append((m.lastgroup, m.group()))
    return out


def check_names(expr, metrics):
    """The metric names expr selects; raises QueryError for a name or label
    that docs/http-and-metrics.md does not list, a selector without a name, or
    a variable in an exact (= / !=) matcher. expr still has its variables."""
    all_labels = set(TARGET_LABELS).union(*metrics.values())
    toks = _tokens(expr)
    used = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in GROUPING and nxt == "(":
            j = i + 2
            while j < len(toks) and toks[j][1] != ")":
                if toks[j][0] == "ident" and toks[j][1] not in all_labels:
                    raise QueryError("%s (...) names label %r that no documented metric has" % (text, toks[j][1]))
                j += 1
            i = j + 1
            continue
        if kind == "ident" and text == "offset":
            i += 2
            continue
        if kind == "ident" and (text in AGGREGATIONS or text in FUNCTIONS or text in KEYWORDS
                                or text in GROUPING):
            i += 1
            continue
        if kind == "ident" and nxt == "(":
            raise QueryError("unknown function %r" % text)
        if kind == "ident":
            if text not in metrics:
                raise QueryError("metric %r is not in docs/http-and-metrics.md" % text)
            used.append(text)
            i += 1
            if i < len(toks) and toks[i][1] == "{":
                i = _check_matchers(toks, i, metrics[text] | TARGET_LABELS, text)
            continue
        if text == "{":
            raise QueryError("a selector without a metric name")
        i += 1
    if not used:
        raise QueryError("selects no metric")
    return used


def _check_matchers(toks, i, allowed, metric):
    """Checks the {...} that starts at toks[i]; returns the index after it."""
    i += 1
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][1] == ",":
            i += 1
            continue
        if i + 2 >= len(toks) or toks[i][0] != "ident" or toks[i + 2][0] != "string":
            raise QueryError("cannot read the label matchers of %s" % metric)
        label, op, value = toks[i][1], toks[i + 1][1], toks[i + 2][1]
        if label not in allowed:
            raise QueryError("%s has no label %r in docs/http-and-metrics.md" % (metric, label))
        if "$" in value and op not in ("=~", "!~"):
            raise QueryError("%s{%s%s%s}: a variable can be several values or All; use =~"
                             % (metric, label, op, value))
        i += 3
    return i + 1
