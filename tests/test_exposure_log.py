"""The exposure log over HTTP with the real recommender and a real Redis stream (the embedded
server): every answer's items appended as exposure records with the response's request id,
positions and arms; and with the stream's Redis stopped, answers still served and their
exposures counted as dropped, never silently."""

from __future__ import annotations

import json
import time

import pytest
import requests

from recommendation_support import generous_config, running_recommender, serve_app
from recsys.stream.config import StreamConfig
from recsys.stream.producer import StreamProducer
from recsys.stream.redis_connection import connect, stop_embedded
from serving.recommendations.app import create_app
from serving.recommendations.exposure_log import ExposureLog, exposure_records
from serving.recommendations.metrics import ServiceMetrics
from serving.recommendations.pipeline import RecommendationRequest


@pytest.fixture(scope="module")
def recommender(service_files):
    with running_recommender(generous_config(service_files)) as service:
        yield service


def _counted(metrics: ServiceMetrics, outcome: str) -> float:
    return sum(s.value for m in metrics.exposures.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels["outcome"] == outcome)


def _until(condition, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_the_records_of_an_answer(recommender, small_data):
    import datetime as dt

    user = small_data.train["user_id"].value_counts().index[0]
    result = recommender.recommend(RecommendationRequest(user, k=4))
    shown = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)
    rows = exposure_records("req1", shown, result, {"device": "tv", "country": None})
    assert [r["exposure_id"] for r in rows] == ["req1/0", "req1/1", "req1/2", "req1/3"]
    assert [r["item_id"] for r in rows] == [c.item_id for c in result.items]
    assert {(r["tier"], r["propensity"], r["holdout"], r["device"], r["country"])
            for r in rows} == {("full", 1.0, 0, "tv", None)}
    assert rows[0]["retrieval_version"] == result.model_versions["retrieval"]
    assert rows[0]["timestamp"] == "2026-12-02T12:00:00+00:00"


def test_every_answer_is_logged_to_the_stream_then_dropped_and_counted_when_redis_stops(
        recommender, small_data, tmp_path):
    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    metrics = ServiceMetrics()
    exposures = ExposureLog(StreamProducer(client, cfg), metrics)
    user = small_data.train["user_id"].value_counts().index[0]
    try:
        with serve_app(create_app(recommender, exposures=exposures)) as url:
            body = requests.post(f"{url}/v1/recommendations", timeout=30, json={
                "user_id": user, "k": 5, "context": {"device": "tv", "country": "US"}}).json()
            def mine() -> list[dict]:  # this answer's records (other clients may post too)
                return [e for e in (json.loads(fields[b"body"])
                                    for _, fields in client.xrange(cfg.stream)
                                    if fields[b"kind"] == b"exposure")
                        if e["request_id"] == body["request_id"]]

            _until(lambda: len(mine()) == 5)
            entries = mine()
            assert [e["exposure_id"] for e in entries] == [
                f"{body['request_id']}/{p}" for p in range(5)]
            assert [e["item_id"] for e in entries] == [i["item_id"] for i in body["items"]]
            assert {(e["user_id"], e["tier"], e["device"], e["country"]) for e in entries} == {
                (user, body["tier"], "tv", "US")}

            stop_embedded(cfg.embedded_dir)  # the stream's Redis goes away
            answer = requests.post(f"{url}/v1/recommendations", timeout=30,
                                   json={"user_id": user, "k": 5})
            assert answer.status_code == 200 and answer.json()["tier"] == "full"
            logged = _counted(metrics, "logged")
            assert logged >= 1
            _until(lambda: _counted(metrics, "dropped") >= 1)  # counted, not lost silently
    finally:
        exposures.close()
        client.close()


def test_without_a_stream_every_answer_is_counted_as_dropped(recommender):
    """Counted on the log itself: a server's counters can also see other tests' clients
    (a port freed by one test is soon another's)."""
    metrics = ServiceMetrics()
    exposures = ExposureLog(None, metrics)
    result = recommender.recommend(RecommendationRequest("nobody", k=3))
    for n in range(3):
        exposures.log(f"r{n}", result, {})
    exposures.close()
    assert _counted(metrics, "dropped") == 3 and _counted(metrics, "logged") == 0


def test_answers_within_the_linger_go_in_one_batch_decisions_first(recommender, small_data,
                                                                   tmp_path):
    from recsys.exploration.spec import parse_policy

    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    exposures = ExposureLog(StreamProducer(client, cfg), ServiceMetrics(), linger_s=1.0)
    user = small_data.train["user_id"].value_counts().index[0]
    saved = recommender.exploration
    recommender.exploration = parse_policy("softmax:max_explored_share=0.5,pool=12")
    try:
        results = [recommender.recommend(RecommendationRequest(user, k=4)) for _ in range(3)]
        assert all(r.exploration is not None for r in results)
        for n, result in enumerate(results):
            exposures.log(f"b{n}", result, {})
        _until(lambda: client.xlen(cfg.stream) >= 3 + 3 * 4)
        entries = [fields for _, fields in client.xrange(cfg.stream)]
        kinds = [fields[b"kind"] for fields in entries]
        assert kinds == [b"decision"] * 3 + [b"exposure"] * 12  # one batch, lists first
        assert len({fields[b"accepted_at_us"] for fields in entries}) == 1  # one round trip
    finally:
        recommender.exploration = saved
        exposures.close()
        client.close()


def test_a_requests_own_clock_stamps_its_exposures_and_profile_windows_only_when_allowed(
        recommender, service_files, small_data, tmp_path):
    import datetime as dt

    from recsys.monitoring.serving_windows import ServingWindows, window_names
    from serving.recommendations.serving_profile import ServingProfile

    user = small_data.train["user_id"].value_counts().index[0]
    then = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=9,
                                                                                  hours=5)
    body = {"user_id": user, "k": 3, "now_s": then.timestamp()}
    with serve_app(create_app(recommender)) as url:  # client_clock off (the default)
        refused = requests.post(f"{url}/v1/recommendations", json=body, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"] == "client_clock_off"

    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    exposures = ExposureLog(StreamProducer(client, cfg), ServiceMetrics())
    profile = ServingProfile(ServingWindows(client), flush_s=0.1)
    try:
        with running_recommender(generous_config(service_files, client_clock=True)) as clocked:
            with serve_app(create_app(clocked, exposures=exposures, profile=profile)) as url:
                post = lambda b: requests.post(f"{url}/v1/recommendations", json=b, timeout=30)  # noqa: E731
                answer = post(body).json()
                ahead = post({**body, "now_s": time.time() + 7_200})
                early = post({**body, "now_s": 3_600})

                def mine() -> list[dict]:
                    return [e for e in (json.loads(fields[b"body"])
                                        for _, fields in client.xrange(cfg.stream)
                                        if fields[b"kind"] == b"exposure")
                            if e["request_id"] == answer["request_id"]]

                _until(lambda: len(mine()) == 3)
                hour, day = window_names(then.timestamp())
                _until(lambda: {w for _, w in profile.windows.windows()} == {hour, day})
        assert {e["timestamp"] for e in mine()} == {then.isoformat()}
        assert ahead.status_code == 422 and ahead.json()["detail"][0]["field"] == "body.now_s"
        assert "ahead of the service's clock" in ahead.json()["detail"][0]["message"]
        assert early.status_code == 422 and early.json()["detail"][0]["field"] == "body.now_s"
    finally:
        exposures.close()
        profile.close()
        stop_embedded(cfg.embedded_dir)
