"""The alert rules (``monitoring/alerts.yaml``) and the Grafana dashboards
(``monitoring/grafana/*.json``) against the metrics the code exports.

* The exported names come from the code itself: the service's and the monitoring jobs'
  prometheus_client registries are built and rendered (``_total``, ``_bucket``, ``_created``...
  exactly as ``generate_latest`` writes them), the model server's page is rendered by
  ``ServingMetrics``; the stream worker has no registry object, so its names are parsed from
  its source (there are none today).
* Every PromQL expression is tokenized and parsed by a small recursive-descent parser (no
  PromQL library is installed): brackets, label matchers, known functions; every metric it
  selects must be exported (or a recording rule of the file), every label it matches must be
  one of that metric's labels, and a ``le`` it matches must be a bucket bound the metric writes.
* With ``promtool`` on PATH (Debian: ``apt-get install -y --no-install-recommends
  prometheus``), Prometheus's own parser checks the rules and the dashboards' expressions, and
  ``promtool test rules`` runs scenarios that say which alerts fire on which series.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from recsys.monitoring.metrics import MonitoringMetrics
from serving.monitoring import ServingMetrics
from serving.recommendations.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "monitoring" / "alerts.yaml"
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = ("promtool is not on PATH: install it (Debian: `apt-get install -y "
               "--no-install-recommends prometheus`) to check the rules with Prometheus's parser")
# skipped without promtool, except under CI (.ci/run installs it): there they fail instead
needs_promtool = pytest.mark.skipif(PROMTOOL is None and os.environ.get("CI") != "true",
                                    reason=NO_PROMTOOL)

# Labels Prometheus adds to every series it scrapes (the target's).
TARGET_LABELS = frozenset({"job", "instance"})


# --- what the code exports -----------------------------------------------------------------


@dataclass
class Series:
    """One exported sample name: its label names (None: unknown) and the ``le`` bounds it
    writes (histogram buckets only)."""

    labels: frozenset[str] | None
    le: frozenset[str] = frozenset()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+")
_PAGE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series_of_page(text: str) -> dict[str, Series]:
    """Sample names, label names and ``le`` values of a page in Prometheus' text format, read
    as Prometheus reads it (names kept as written: no parser renaming of counters)."""
    out: dict[str, Series] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if line.startswith("#") or not match:
            continue
        pairs = _PAGE_LABEL.findall(match.group(2) or "")
        seen = out.setdefault(match.group(1), Series(frozenset()))
        seen.labels = seen.labels | {k for k, _ in pairs}
        seen.le = seen.le | {v for k, v in pairs if k == "le"}
    return out


def prometheus_client_series(holder) -> dict[str, Series]:
    """The samples of ``holder.registry`` (a ``ServiceMetrics`` or ``MonitoringMetrics``) as
    ``generate_latest`` writes them, once each labelled metric has one child (a labelled
    metric without children writes no sample)."""
    for metric in vars(holder).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*["x"] * len(metric._labelnames))
    series = series_of_page(generate_latest(holder.registry).decode())
    for family in holder.registry.collect():  # every registered metric was written
        assert any(n == family.name or n.startswith(family.name + "_") for n in series), \
            f"{family.name} is registered but not on the page (not an attribute?)"
    return series


def model_server_series() -> dict[str, Series]:
    """The model server's page (TF Serving names, ``/`` written ``:``) once every metric has
    a point: a Predict call and a warm-up."""
    metrics = ServingMetrics()
    metrics.record_request("m", "Predict", "REST", "OK", 0.001, version=1, signature="s")
    metrics.record_warmup("/models/m/1", "OK", 0.01)
    return series_of_page(metrics.render())


_KINDS = {"Counter": Counter, "Gauge": Gauge, "Histogram": Histogram, "Summary": Summary}
_METRIC_CALL = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"']([a-zA-Z_:][\w:]*)[\"']")


@lru_cache
def exposed_suffixes(kind: str) -> tuple[str, ...]:
    """The sample-name suffixes prometheus_client writes for a metric of ``kind``."""
    registry = CollectorRegistry()
    _KINDS[kind]("probe", "probe", registry=registry)
    return tuple(name[len("probe"):] for name in series_of_page(generate_latest(registry).decode()))


def stream_worker_series() -> dict[str, Series]:
    """The stream worker's metrics, parsed from its source: it has no registry object that can
    be built without Redis. Today it exports none (its runner logs entries applied,
    dead-lettered and freshness); a ``Counter("name", ...)``-style call in a module importing
    prometheus_client is picked up here (labels unknown: not checked)."""
    out: dict[str, Series] = {}
    for path in sorted((ROOT / "stream_worker").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "prometheus_client" not in text:
            continue
        found = _METRIC_CALL.findall(text)
        assert found, f"{path} imports prometheus_client but no metric name was parsed from it"
        for kind, name in found:
            out.update({name + suffix: Series(None) for suffix in exposed_suffixes(kind)})
    return out


@lru_cache
def exported() -> dict[str, Series]:
    """Every sample name the code exports, plus Prometheus's own ``up``."""
    out = {"up": Series(frozenset())}
    for part in (prometheus_client_series(ServiceMetrics()),
                 prometheus_client_series(MonitoringMetrics()),
                 model_server_series(), stream_worker_series()):
        assert not set(part) & set(out), f"a name exported twice: {set(part) & set(out)}"
        out.update(part)
    return out


# --- a PromQL checker ----------------------------------------------------------------------

FUNCTIONS = frozenset("""
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta
    increase irate label_join label_replace last_over_time ln log10 log2 mad_over_time
    max_over_time min_over_time minute month pi predict_linear present_over_time
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
    sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
    time timestamp vector year""".split())
AGGREGATIONS = frozenset(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile".split())
BINARY_WORDS = frozenset({"and", "or", "unless", "atan2"})
KEYWORDS = BINARY_WORDS | {"by", "without", "on", "ignoring", "group_left", "group_right",
                           "bool", "offset"}
BINARY_OPS = frozenset({"+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">="})
MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_TOKEN = re.compile(rf"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\[\](){{}}]*\])
  | (?P<duration>{_DURATION})(?![\w.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|==|!=|<=|>=|[-+*/%^<>=,@])
  | (?P<bracket>[(){{}}\[\]])
""", re.VERBOSE)
_RANGE = re.compile(rf"^\[\s*{_DURATION}\s*(?::\s*(?:{_DURATION})?\s*)?\]$")


class PromQLError(ValueError):
    pass


@dataclass(frozen=True)
class Selector:
    """A metric the expression selects, with its ``(label, op, value)`` matchers."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]


def tokenize(expr: str) -> list[tuple[str, str]]:
    """``(kind, text)`` tokens; a character PromQL does not know (``$``) is an error, and
    brackets must balance (checked here, before parsing, for a clear message)."""
    tokens, pos, stack = [], 0, []
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLError(f"unexpected character {expr[pos]!r} at {pos}: {expr!r}")
        pos, kind = match.end(), match.lastgroup
        if kind == "space":
            continue
        text = match.group()
        if kind == "bracket" and text in "({[":
            stack.append(text)
        elif kind == "bracket":
            if not stack or "({[".index(stack.pop()) != ")}]".index(text):
                raise PromQLError(f"unbalanced {text!r} at {pos - 1}: {expr!r}")
        tokens.append((kind, text))
    if stack:
        raise PromQLError(f"unclosed {stack[-1]!r}: {expr!r}")
    return tokens


class _Parser:
    """PromQL's grammar without precedence (validity only): expr = unary (binop unary)*."""

    def __init__(self, expr: str):
        self.expr, self.tokens, self.i = expr, tokenize(expr), 0
        self.selectors: list[Selector] = []

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else ("end", "")

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        got_kind, got = self.peek()
        if (text is not None and got != text) or (kind is not None and got_kind != kind):
            raise PromQLError(f"expected {text or kind}, got {got or 'the end'!r} "
                              f"(token {self.i}): {self.expr!r}")
        self.i += 1
        return got

    def word(self) -> str:
        kind, text = self.peek()
        return text.lower() if kind == "ident" else ""

    def parse(self) -> list[Selector]:
        self.expression()
        if self.i != len(self.tokens):
            raise PromQLError(f"unexpected {self.peek()[1]!r} (token {self.i}): {self.expr!r}")
        return self.selectors

    def expression(self) -> None:
        self.unary()
        while self.peek()[1] in BINARY_OPS or self.word() in BINARY_WORDS:
            self.i += 1
            if self.word() == "bool":
                self.i += 1
            if self.word() in ("on", "ignoring"):
                self.i += 1
                self.label_list()
                if self.word() in ("group_left", "group_right"):
                    self.i += 1
                    if self.peek()[1] == "(":
                        self.label_list()
            self.unary()

    def unary(self) -> None:
        while self.peek()[1] in ("-", "+"):
            self.i += 1
        self.primary()
        while True:  # postfix: a range or subquery, offset, @
            kind, text = self.peek()
            if kind == "range":
                if not _RANGE.match(text):
                    raise PromQLError(f"bad range {text!r}: {self.expr!r}")
                self.i += 1
            elif self.word() == "offset":
                self.i += 1
                if self.peek()[1] == "-":
                    self.i += 1
                self.take(kind="duration")
            elif text == "@":
                self.i += 1
                if self.word() in ("start", "end"):
                    self.i += 1
                    self.take("(")
                    self.take(")")
                else:
                    self.take(kind="number")
            else:
                return

    def primary(self) -> None:
        kind, text = self.peek()
        if kind in ("number", "string"):
            self.i += 1
        elif text == "(":
            self.i += 1
            self.expression()
            self.take(")")
        elif text == "{":
            self.selector(None)
        elif kind == "ident" and text.lower() in ("inf", "nan"):
            self.i += 1
        elif kind == "ident" and text in AGGREGATIONS and (
                self.peek(1)[1] == "(" or self.peek(1)[1].lower() in ("by", "without")):
            self.i += 1
            self.grouping()
            self.arguments()
            self.grouping()
        elif kind == "ident" and self.peek(1)[1] == "(":
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text!r}: {self.expr!r}")
            self.i += 1
            self.arguments()
        elif kind == "ident" and text.lower() not in KEYWORDS:
            self.i += 1
            self.selector(text)
        else:
            raise PromQLError(f"expected an operand, got {text or 'the end'!r} "
                              f"(token {self.i}): {self.expr!r}")

    def grouping(self) -> None:
        if self.word() in ("by", "without"):
            self.i += 1
            self.label_list()

    def arguments(self) -> None:
        self.take("(")
        if self.peek()[1] != ")":
            self.expression()
            while self.peek()[1] == ",":
                self.i += 1
                self.expression()
        self.take(")")

    def label_list(self) -> None:
        self.take("(")
        while self.peek()[1] != ")":
            self.take(kind="ident")
            if self.peek()[1] != ")":
                self.take(",")
        self.take(")")

    def selector(self, name: str | None) -> None:
        matchers = []
        if self.peek()[1] == "{":
            self.i += 1
            while self.peek()[1] != "}":
                label = self.take(kind="ident")
                op = self.take(kind="op")
                if op not in MATCH_OPS:
                    raise PromQLError(f"bad matcher operator {op!r}: {self.expr!r}")
                value = self.take(kind="string")
                matchers.append((label, op, value[1:-1]))
                if self.peek()[1] != "}":
                    self.take(",")
            self.take("}")
        if name is None:
            names = [v for label, op, v in matchers if label == "__name__" and op == "="]
            if not names:
                raise PromQLError(f"a selector without a metric name: {self.expr!r}")
            name = names[0]
        self.selectors.append(Selector(name, tuple(matchers)))


def parse_promql(expr: str) -> list[Selector]:
    """The selectors of ``expr``; ``PromQLError`` when it does not parse."""
    return _Parser(expr).parse()


def name_problems(expr: str, known: dict[str, Series], recorded: set[str]) -> list[str]:
    """What in ``expr`` the code does not export: metric names, label names, ``le`` bounds."""
    problems = []
    for sel in parse_promql(expr):
        if sel.name in recorded:
            continue
        series = known.get(sel.name)
        if series is None:
            problems.append(f"{sel.name!r} is not exported by the code")
            continue
        for label, op, value in sel.matchers:
            if label == "__name__":
                continue
            if series.labels is not None and label not in series.labels | TARGET_LABELS:
                problems.append(f"{sel.name!r} has no label {label!r} "
                                f"(it has {sorted(series.labels)})")
            if label == "le" and op == "=" and value not in series.le:
                problems.append(f"{sel.name!r} writes no bucket le={value!r}")
    return problems


# Grafana's interval variables, replaced by a duration before checking.
_GRAFANA_VARIABLES = re.compile(r"\$(?:__rate_interval|__interval|__range|\{__rate_interval\}|"
                                r"\{__interval\}|\{__range\})")


def grafana_expr(expr: str) -> str:
    return _GRAFANA_VARIABLES.sub("5m", expr)


# --- the files -----------------------------------------------------------------------------


@lru_cache
def rule_file() -> dict:
    return yaml.safe_load(ALERTS.read_text(encoding="utf-8"))


def rules() -> list[dict]:
    return [rule for group in rule_file()["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def panels(board: dict) -> list[dict]:
    """Every panel, those inside rows included."""
    out = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """``(file, panel title, expr)`` of every panel target."""
    return [(path.name, panel.get("title", ""), target["expr"])
            for path in DASHBOARDS
            for panel in panels(json.loads(path.read_text(encoding="utf-8")))
            for target in panel.get("targets", [])]


_PROM_DURATION = re.compile(rf"^{_DURATION}$")


# --- structure -----------------------------------------------------------------------------


def test_rule_file_structure():
    groups = rule_file()["groups"]
    assert groups and len({g["name"] for g in groups}) == len(groups), "group names unique"
    alerts = [rule["alert"] for rule in rules() if "alert" in rule]
    assert len(set(alerts)) == len(alerts), f"alert names repeat: {alerts}"
    assert len(recorded_names()) == sum("record" in rule for rule in rules())
    for rule in rules():
        name = rule.get("alert") or rule.get("record")
        assert bool(rule.get("alert")) != bool(rule.get("record")), f"{rule}: alert xor record"
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), f"{name}: no expr"
        if "record" in rule:
            assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*:[a-zA-Z0-9_:]+", name), \
                f"{name}: recording rules are named level:metric:operations"
            assert not set(rule) - {"record", "expr", "labels"}, name
            continue
        assert not set(rule) - {"alert", "expr", "for", "labels", "annotations"}, name
        assert _PROM_DURATION.match(str(rule.get("for", ""))), f"{name}: `for` {rule.get('for')}"
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name}: no summary"
        assert len(annotations.get("description", "").strip()) > 40, f"{name}: no description"


def test_the_issue_s_alerts_are_there():
    """Drift, skew, index recall, tier mix, freshness, latency SLO burn, model server errors,
    circuit breaker, stale monitoring, controller stuck in canary."""
    exprs = " ".join(rule["expr"] for rule in rules())
    for name in ("recsys_drift_alert", "recsys_embedding_drift_p_value",
                 "recsys_feature_skew_detected", "recsys_index_recall_threshold",
                 "recsys_fallbacks_total", "recsys_ingested_records_total",
                 "recsys:request_latency_slo_misses:ratio_rate1h",
                 ":tensorflow:serving:request_count", "recsys_circuit_breaker_state",
                 "recsys_monitor_last_run_timestamp_seconds", "recsys_controller_stage"):
        assert name in exprs, f"no rule uses {name}"
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert {"RecsysLatencySLOFastBurn", "RecsysLatencySLOSlowBurn"} <= alerts


# --- names -----------------------------------------------------------------------------------


def test_exported_names_are_read_from_the_code():
    """The registries are really read: suffixes as prometheus_client writes them, TF Serving's
    names as the model server's page writes them."""
    known = exported()
    for name in ("recsys_requests_total", "recsys_request_latency_seconds_bucket",
                 "recsys_request_latency_seconds_count", "recsys_circuit_breaker_state",
                 "recsys_drift_alert", "recsys_index_recall",
                 ":tensorflow:serving:request_count",
                 ":tensorflow:serving:request_latency_bucket"):
        assert name in known, name
    assert "recsys_requests" not in known and "recsys_requests_created" in known
    assert known["recsys_requests_total"].labels == {"endpoint", "tier"}
    assert "0.05" in known["recsys_request_latency_seconds_bucket"].le


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_rule_expressions_use_exported_names(rule):
    assert name_problems(rule["expr"], exported(), recorded_names()) == []


def test_dashboard_expressions_use_exported_names():
    exprs = dashboard_exprs()
    assert len(exprs) >= 30, "every dashboard's targets are read"
    problems = []
    for name, title, expr in exprs:
        try:
            found = name_problems(grafana_expr(expr), exported(), recorded_names())
        except PromQLError as exc:
            found = [str(exc)]
        problems += [f"{name} / {title}: {p}" for p in found]
    assert problems == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    board = json.loads(path.read_text(encoding="utf-8"))
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in panels(board)]
    assert len(set(ids)) == len(ids), f"panel ids repeat: {ids}"
    for panel in panels(board):
        assert panel["type"] in ("row", "timeseries", "stat", "text"), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] in ("timeseries", "stat"):
            assert panel["targets"], f"{panel['title']}: no targets"
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs), panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_dashboard_component_is_covered():
    names = " ".join(expr for _, _, expr in dashboard_exprs())
    for name in ("recsys_requests_total", "recsys_stage_latency_seconds_bucket",
                 "recsys_fallbacks_total", "recsys_circuit_breaker_state",
                 "recsys_cache_lookups_total", "recsys_exposures_total",
                 ":tensorflow:serving:request_count", ":recsys:serving:request_latency_bucket",
                 "recsys_ingested_records_total", "recsys_drift_statistic",
                 "recsys_feature_skew_share", "recsys_index_recall_threshold",
                 "recsys_model_alias_version", "recsys_controller_stage"):
        assert name in names, f"no dashboard panel shows {name}"


# --- the checker can fail --------------------------------------------------------------------


@pytest.mark.parametrize("expr, problem", [
    ("rate(recsys_request_total[5m])", "'recsys_request_total' is not exported"),
    ("sum(rate(recsys_requests[5m]))", "'recsys_requests' is not exported"),
    ('recsys_requests_total{tier_name="full"}', "has no label 'tier_name'"),
    ('recsys_request_latency_seconds_bucket{le="0.06"}', "writes no bucket le='0.06'"),
    ('{__name__="recsys_nope"}', "'recsys_nope' is not exported"),
    ("up == 0 and on () tensorflow:serving:request_count", "is not exported"),
])
def test_checker_finds_unknown_names(expr, problem):
    problems = name_problems(expr, exported(), recorded_names())
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("expr, message", [
    ("sum(rate(recsys_requests_total[5m])", "unclosed '('"),
    ("rate(recsys_requests_total[5m]))", "unbalanced ')'"),
    ('recsys_requests_total{tier="full"', "unclosed '{'"),
    ("rate(recsys_requests_total[5m)]", "unbalanced"),
    ("rate(recsys_requests_total[5x])", "bad range"),
    ("rates(recsys_requests_total[5m])", "unknown function 'rates'"),
    ("recsys_requests_total recsys_fallbacks_total", "unexpected"),
    ('recsys_requests_total{tier=="full"}', "bad matcher operator"),
    ("recsys_requests_total >", "expected an operand"),
    ("rate(recsys_requests_total[5m]) * $factor", "unexpected character '$'"),
    ("sum by (tier) recsys_requests_total", "expected ("),
])
def test_checker_refuses_malformed_expressions(expr, message):
    with pytest.raises(PromQLError, match=re.escape(message)):
        parse_promql(expr)


def test_checker_reads_a_valid_expression():
    expr = ('sum by (le) (rate(x_bucket{a="1", b=~"2|3"}[5m] offset 1h)) / on (le) '
            'group_left () y > bool 0.5 or vector(0) and topk(3, z[1h:5m]) unless -Inf')
    assert [s.name for s in parse_promql(expr)] == ["x_bucket", "y", "z"]
    assert parse_promql(expr)[0].matchers == (("a", "=", "1"), ("b", "=~", "2|3"))


# --- promtool --------------------------------------------------------------------------------


def _promtool(*args: str | Path) -> subprocess.CompletedProcess:
    assert PROMTOOL, NO_PROMTOOL
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


@needs_promtool
def test_promtool_check_rules():
    run = _promtool("check", "rules", ALERTS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules())} rules found" in run.stdout


@needs_promtool
def test_promtool_parses_dashboard_expressions(tmp_path):
    exprs = dashboard_exprs()
    group = {"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}:check", "expr": grafana_expr(expr)}
        for i, (_, _, expr) in enumerate(exprs)]}
    path = tmp_path / "dashboards.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    run = _promtool("check", "rules", path)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_promtool_catches_a_bad_rule(tmp_path):
    """The promtool tests can fail: a rule that does not parse is refused."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "Bad", "expr": "sum(rate(x[5m])"}]}]}))
    assert _promtool("check", "rules", path).returncode != 0


# --- scenarios: which alerts fire on which series (promtool test rules) ---------------------

# Series of a healthy system, per minute: ``(increase per minute, None)`` for a counter,
# ``(None, value)`` for a gauge; ``time`` for a timestamp gauge that follows the clock.
HEALTHY = {
    'recsys_requests_total{endpoint="recommendations",tier="full"}': (100, None),
    'recsys_request_latency_seconds_bucket{endpoint="recommendations",le="0.05"}': (100, None),
    'recsys_request_latency_seconds_count{endpoint="recommendations"}': (100, None),
    'recsys_stage_latency_seconds_count{stage="retrieval",outcome="ok"}': (100, None),
    'recsys_ingested_records_total{kind="event",status="accepted"}': (50, None),
    'recsys_exposures_total{outcome="logged"}': (100, None),
    'recsys_circuit_breaker_state{dependency="model_server"}': (None, 0),
    ':tensorflow:serving:request_count{model_name="retrieval",status="OK"}': (100, None),
    'up{job="recsys-api",instance="api:8000"}': (None, 1),
    'recsys_monitor_last_run_timestamp_seconds{check="drift"}': (None, "time"),
    'recsys_drift_alert{model="retrieval",feature="country"}': (None, 0),
    'recsys_embedding_drift_p_value{model="retrieval"}': (None, 0.4),
    'recsys_feature_skew_detected{feature_view="user_features",feature="clicks"}': (None, 0),
    'recsys_index_recall{model="retrieval",version="3",k="10"}': (None, 0.95),
    'recsys_index_recall_threshold{model="retrieval",version="3",k="10"}': (None, 0.9),
    'recsys_controller_stage{stage="idle"}': (None, 1),
    'recsys_controller_stage{stage="canary"}': (None, 0),
    'recsys_controller_last_decision_timestamp_seconds{decision="promote"}': (None, "time"),
}
LATENCY_OK = 'recsys_request_latency_seconds_bucket{endpoint="recommendations",le="0.05"}'
REQUESTS = 'recsys_requests_total{endpoint="recommendations",tier="full"}'
LAST_RUN = 'recsys_monitor_last_run_timestamp_seconds{check="drift"}'

# name: (minutes of series, changes to HEALTHY (None drops a series), {alert: how many firing}
#        [, minutes between points and evaluations: long scenarios take bigger steps])
SCENARIOS = {
    "healthy": (80, {}, {}),
    "latency_misses_below_burn_thresholds": (80, {LATENCY_OK: (95, None)}, {}),
    "latency_misses_burn_slowly": (80, {LATENCY_OK: (90, None)},
                                   {"RecsysLatencySLOSlowBurn": 1}),
    "latency_misses_burn_fast": (80, {LATENCY_OK: (80, None)},
                                 {"RecsysLatencySLOSlowBurn": 1, "RecsysLatencySLOFastBurn": 1}),
    "fallbacks_10_percent": (25, {
        REQUESTS: (90, None),
        'recsys_requests_total{endpoint="recommendations",tier="retrieval"}': (10, None),
        'recsys_fallbacks_total{tier="retrieval",reason="ranking"}': (10, None),
    }, {"RecsysTierMixDegraded": 1}),
    "fallbacks_3_percent": (25, {
        REQUESTS: (97, None),
        'recsys_fallbacks_total{tier="retrieval",reason="ranking"}': (3, None),
    }, {}),
    "a_tier_chosen_by_an_arm_is_not_a_fallback": (25, {
        REQUESTS: (50, None),
        'recsys_requests_total{endpoint="recommendations",tier="retrieval"}': (50, None),
    }, {}),
    "popular_lists_30_percent": (25, {
        REQUESTS: (70, None),
        'recsys_requests_total{endpoint="recommendations",tier="global-popular"}': (30, None),
        'recsys_fallbacks_total{tier="global-popular",reason="features"}': (30, None),
    }, {"RecsysTierMixDegraded": 1, "RecsysMostlyPopularLists": 1}),
    "breaker_open": (10, {'recsys_circuit_breaker_state{dependency="model_server"}': (None, 2)},
                     {"RecsysCircuitBreakerOpen": 1}),
    "stage_timing_out": (25, {
        'recsys_stage_latency_seconds_count{stage="retrieval",outcome="deadline"}': (10, None),
    }, {"RecsysStageFailing": 1}),
    "experiments_file_refused": (10, {
        'recsys_experiment_reloads_total{outcome="refused"}': ("0x5 1x5", None)}, {
        "RecsysExperimentsFileRefused": 1}),
    "target_down": (10, {'up{job="recsys-api",instance="api:8000"}': (None, 0)},
                    {"RecsysTargetDown": 1}),
    "model_server_internal_errors": (25, {
        ':tensorflow:serving:request_count{model_name="retrieval",status="INTERNAL"}': (5, None),
    }, {"RecsysModelServerErrors": 1}),
    "model_server_client_errors_do_not_alert": (25, {
        ':tensorflow:serving:request_count{model_name="retrieval",status="INVALID_ARGUMENT"}':
            (20, None),
    }, {}),
    "warmup_failed": (10, {
        ':tensorflow:serving:model_warmup_latency_count{model_path="/m/4",'
        'status="INTERNAL: bad"}': ("0x5 1x5", None)}, {"RecsysModelWarmupFailed": 1}),
    "ingest_refused": (25, {
        'recsys_request_errors_total{endpoint="/v1/events",status="503"}': (5, None)},
        {"RecsysEventIngestionFailing": 1}),
    "exposures_dropped": (25, {'recsys_exposures_total{outcome="dropped"}': (2, None)},
                          {"RecsysExposuresDropped": 1}),
    "no_events_ever": (80, {'recsys_ingested_records_total{kind="event",status="accepted"}':
                            None}, {"RecsysNoEventsIngested": 1}),
    "events_stopped": (80, {'recsys_ingested_records_total{kind="event",status="accepted"}':
                            (0, None)}, {"RecsysNoEventsIngested": 1}),
    "feature_drift_alert": (10, {'recsys_drift_alert{model="retrieval",feature="country"}':
                                 (None, 1)}, {"RecsysFeatureDriftAlert": 1}),
    "embedding_drift": (80, {'recsys_embedding_drift_p_value{model="retrieval"}': (None, 0.001)},
                        {"RecsysEmbeddingDrift": 1}),
    "feature_skew": (10, {
        'recsys_feature_skew_detected{feature_view="user_features",feature="clicks"}':
            (None, 1)}, {"RecsysFeatureSkew": 1}),
    "index_recall_below_its_own_threshold": (10, {
        'recsys_index_recall{model="retrieval",version="3",k="10"}': (None, 0.85),
        'recsys_index_recall{model="retrieval",version="4",k="10"}': (None, 0.85),
        'recsys_index_recall_threshold{model="retrieval",version="4",k="10"}': (None, 0.8),
    }, {"RecsysIndexRecallLow": 1}),
    "monitoring_stale": (180, {LAST_RUN: (None, 0),
                               'recsys_monitor_last_run_timestamp_seconds{check="skew"}':
                                   (None, "time")}, {"RecsysMonitoringStale": 1}),
    "monitoring_missing": (80, {LAST_RUN: None}, {"RecsysMonitoringMissing": 1}),
    "stuck_in_canary": (26 * 60, {
        'recsys_controller_stage{stage="idle"}': (None, 0),
        'recsys_controller_stage{stage="canary"}': (None, 1),
        'recsys_controller_last_decision_timestamp_seconds{decision="promote"}': (None, 0),
    }, {"RecsysControllerStuckInCanary": 1}, 10),
    "in_canary_with_recent_decisions": (26 * 60, {
        'recsys_controller_stage{stage="idle"}': (None, 0),
        'recsys_controller_stage{stage="canary"}': (None, 1),
    }, {}, 10),
}


def _values(spec, minutes: int, step: int) -> str:
    """promtool's expanding notation for the points of ``minutes``, ``step`` minutes apart."""
    per_minute, value = spec
    if isinstance(per_minute, str):
        return per_minute
    if per_minute is not None:
        return f"0+{per_minute * step}x{minutes // step}"
    if value == "time":
        return f"0+{60 * step}x{minutes // step}"
    return f"{value}x{minutes // step}"


def scenario_test(name: str) -> dict:
    """One ``promtool test rules`` test: the firing alerts, counted by name, at the end."""
    minutes, changes, firing, *rest = SCENARIOS[name]
    step = rest[0] if rest else 1
    series = {**HEALTHY, **changes}
    return {
        "name": name, "interval": f"{step}m",
        "input_series": [{"series": s, "values": _values(spec, minutes, step)}
                         for s, spec in series.items() if spec is not None],
        "promql_expr_test": [{
            "expr": 'count by (alertname) (ALERTS{alertstate="firing"})',
            "eval_time": f"{minutes}m",
            "exp_samples": [{"labels": f'{{alertname="{alert}"}}', "value": count}
                            for alert, count in sorted(firing.items())]}]}


def test_every_alert_has_a_firing_scenario():
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fired = {alert for scenario in SCENARIOS.values() for alert in scenario[2]}
    assert alerts == fired, f"without a scenario: {alerts - fired}; unknown: {fired - alerts}"


@needs_promtool
@pytest.mark.parametrize("name", SCENARIOS)
def test_alerts_fire_as_intended(name, tmp_path):
    path = tmp_path / "test.yaml"
    test = scenario_test(name)
    path.write_text(yaml.safe_dump({"rule_files": [str(ALERTS)],
                                    "evaluation_interval": test["interval"], "tests": [test]},
                                   sort_keys=False))
    run = _promtool("test", "rules", path)
    assert run.returncode == 0, run.stdout + run.stderr
