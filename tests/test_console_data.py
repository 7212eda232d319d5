"""The console's data without a browser: the hour of history (rates and percentiles from the
service's own counters), the stream's figures on a real Redis, the JSON embedded in pages,
the models page's actions checked field by field."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from recsys.errors import ConfigError
from serving.console.history import MetricsHistory, histogram_quantile
from serving.console.models_view import Change
from serving.console.routes import _json_script, console_scope
from serving.console.stream_stats import stream_stats


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _service_like():
    registry = CollectorRegistry()
    requests = Counter("recsys_requests", "", ["endpoint", "tier"], registry=registry)
    stage = Histogram("recsys_stage_latency_seconds", "", ["stage", "outcome"],
                      buckets=(0.001, 0.002, 0.005, 0.01, 0.02), registry=registry)
    return registry, requests, stage


def test_history_gives_rates_and_percentiles_per_interval():
    registry, requests, stage = _service_like()
    clock = Clock()
    history = MetricsHistory(lambda: generate_latest(registry), interval_s=10, clock=clock,
                             extra=lambda: {"lag_s": clock.now - 1000.0})
    history.sample()
    for _ in range(50):
        requests.labels("recommendations", "full").inc()
        stage.labels("ranking", "ok").observe(0.003)  # in the (2, 5] ms bucket
    clock.now += 10
    history.sample()
    for _ in range(20):
        requests.labels("recommendations", "global-popular").inc()
    clock.now += 10
    history.sample()
    series = history.series()
    assert series["t"] == [1010.0, 1020.0]
    assert series["requests_per_s"] == {"full": [5.0, 0.0], "global-popular": [0.0, 2.0]}
    p50 = series["stage_p50_ms"]["ranking"]
    assert 2.0 < p50[0] <= 5.0 and p50[1] is None  # no ranking in the second interval
    assert series["extra"]["lag_s"] == [10.0, 20.0]
    assert history.series(since_s=5)["t"] == []  # one reading in the window: no interval


def test_a_restarted_counter_counts_from_zero_not_negative():
    registry, requests, _ = _service_like()
    texts = []
    clock = Clock()
    history = MetricsHistory(lambda: texts[-1], clock=clock)
    requests.labels("recommendations", "full").inc(100)
    texts.append(generate_latest(registry))
    history.sample()
    fresh, again, _ = _service_like()
    again.labels("recommendations", "full").inc(7)
    texts.append(generate_latest(fresh))
    clock.now += 10
    history.sample()
    assert history.series()["requests_per_s"]["full"] == [0.7]


def test_the_history_keeps_its_last_points_only():
    registry, _, _ = _service_like()
    history = MetricsHistory(lambda: generate_latest(registry), points=3, clock=Clock())
    for _ in range(10):
        history.sample()
    assert len(history.snapshot()) == 3


def test_histogram_quantile_is_promql_s():
    assert histogram_quantile({0.01: 0.0, 0.02: 10.0, float("inf"): 10.0}, 0.5) == \
        pytest.approx(0.015)
    assert histogram_quantile({0.01: 0.0, float("inf"): 0.0}, 0.5) is None


@pytest.fixture
def redis_client(tmp_path):
    import redis
    from recommendation_support import PrivateRedis

    server = PrivateRedis(tmp_path / "redis").start()
    yield redis.Redis(port=server.port)
    server.stop()


def test_stream_figures_on_a_real_redis(redis_client):
    client = redis_client
    stream, group, dead = "console:test", "workers", "console:test:dead"
    client.delete(stream, dead)
    empty = stream_stats(client, stream, group, dead, now_s=0)
    assert empty == {"length": 0, "newest_age_s": None, "pending": 0, "lag_s": 0.0,
                     "dead_letters": 0}
    for ms in (1_000_000, 1_001_000, 1_002_000):
        client.xadd(stream, {"x": "1"}, id=f"{ms}-0")
    no_group = stream_stats(client, stream, group, dead, now_s=1_010)
    assert no_group["length"] == 3 and no_group["lag_s"] == pytest.approx(10.0)
    assert no_group["newest_age_s"] == pytest.approx(8.0)
    client.xgroup_create(stream, group, id="0")
    client.xreadgroup(group, "c1", {stream: ">"}, count=1)  # one read, not acknowledged
    behind = stream_stats(client, stream, group, dead, now_s=1_010)
    assert behind["pending"] == 1 and behind["lag_s"] == pytest.approx(9.0)
    client.xreadgroup(group, "c1", {stream: ">"}, count=10)
    client.xadd(dead, {"x": "1"})
    caught_up = stream_stats(client, stream, group, dead, now_s=1_010)
    assert caught_up["lag_s"] == 0.0 and caught_up["pending"] == 3
    assert caught_up["dead_letters"] == 1
    client.delete(stream, dead)


def test_json_in_a_page_cannot_close_its_script_block():
    hostile = {"user_id": "</script><script>alert(1)</script>", "note": "a & b <!--"}
    text = str(_json_script(hostile))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == hostile


@pytest.mark.parametrize("method, path, scope", [
    ("GET", "/console", "console"), ("GET", "/console/api/models", "console"),
    ("POST", "/console/api/models/promote", "admin"), ("POST", "/console/login", None),
    ("GET", "/console/static/console.js", None), ("DELETE", "/console/users/u1", "admin"),
])
def test_console_paths_need_their_scopes(method, path, scope):
    assert console_scope(method, path) == scope


@pytest.mark.parametrize("action, body, message", [
    ("promote", [], "the body must be a JSON object"),
    ("promote", {"alias": "stable", "reason": "r"}, "a promotion needs a version"),
    ("promote", {"alias": "live", "reason": "r", "version": 2},
     "alias must be one of ['stable', 'canary'], got 'live'"),
    ("promote", {"alias": "stable", "reason": " ", "version": 2}, "reason must be"),
    ("promote", {"alias": "stable", "reason": "r" * 501, "version": 2}, "reason must be"),
    ("promote", {"alias": "stable", "reason": "r", "version": True},
     "version must be a positive integer, got True"),
    ("promote", {"alias": "stable", "reason": "r", "version": 2, "force": "yes"},
     "force must be true or false, got 'yes'"),
    ("rollback", {"alias": "stable", "reason": "r", "by": "me"}, "unknown field(s) ['by']"),
])
def test_a_bad_model_change_is_refused_naming_the_field(action, body, message):
    with pytest.raises(ConfigError) as caught:
        Change.parse(action, body)
    assert message in str(caught.value)


def test_a_good_model_change_parses():
    assert Change.parse("rollback", {"alias": "canary", "reason": " done "}) == Change(
        "rollback", "canary", "done", None, False)
    assert Change.parse("promote", {"alias": "stable", "reason": "r", "version": 3,
                                    "force": True}).version == 3


def test_a_non_ascii_cookie_or_token_is_refused_not_an_error():
    from serving.access.sessions import Sessions

    sessions = Sessions(b"s" * 32)
    assert sessions.verify("a.b.\xff") is None
    assert sessions.verify("\xff" * 10) is None
    assert not sessions.csrf_valid(sessions.issue("admin"), "\xff\xfe")


def test_missing_figures_show_as_a_dash_not_an_error():
    from serving.console.routes import _number

    assert _number(None, "%.4f") == "-"
    assert _number(0.123456, "%.4f") == "0.1235"
    assert _number("text", "%.4f") == "text"


def test_incomplete_analysis_lines_are_skipped(tmp_path):
    from serving.console.experiments_view import analyses, interval_series

    (tmp_path / "x.history.jsonl").write_text(
        'not json\n[1, 2]\n{"analysis": {"results": [{"arm": "b"}]}}\n'
        '{"analyzed_at": "t1", "analysis": {"results": [{"metric": "ctr", "arm": "b", '
        '"fixed": {"difference": 0.1, "ci": [0.0, 0.2], "p_value": 0.04}}]}}\n')
    history = analyses(tmp_path, "x")
    assert len(history) == 2
    assert interval_series(history) == {"ctr": {"b": {
        "t": ["t1"], "difference": [0.1], "low": [0.0], "high": [0.2], "relative": [None],
        "p": [0.04]}}}
