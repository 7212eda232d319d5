"""The recommendation service over HTTP (uvicorn on a free port, real models and Feast):
the happy paths, and each bad request with its exact response."""

from __future__ import annotations

import time

import pytest
import requests

from recommendation_support import SlowModels, serve_app
from serving.recommendations.app import create_app
from serving.recommendations.config import ServiceConfig
from serving.recommendations.service import build_recommender


@pytest.fixture(scope="module")
def api(service_files):
    service = build_recommender(ServiceConfig(
        repo=service_files.repo, model_base_path=service_files.base, max_k=50,
        request_deadline_ms=10_000, features_timeout_ms=3_000, retrieval_timeout_ms=3_000,
        ranking_timeout_ms=3_000))  # generous: these tests check answers, not speed
    with serve_app(create_app(service)) as url:
        yield url, service
    service.close()
    service.models.close()


@pytest.fixture(scope="module")
def url(api):
    return api[0]


def _post(url, body=None, data=None):
    return requests.post(f"{url}/v1/recommendations", json=body, data=data, timeout=30,
                         headers={"content-type": "application/json"})


def test_recommendations_for_a_known_user(url, small_data):
    user = small_data.train["user_id"].value_counts().index[0]
    answer = _post(url, {"user_id": user, "k": 5, "context": {"device": "mobile"}})
    assert answer.status_code == 200
    body = answer.json()
    assert body["tier"] == "full" and body["cold_start"] is False and body["degraded"] == []
    assert len(body["items"]) == 5
    assert set(body["items"][0]) == {"item_id", "score", "source", "category", "reasons"}
    assert body["model_versions"] == {"retrieval": 1, "ranker": 1}
    assert {"queued", "features", "retrieval", "ranking", "rules", "total"} <= set(
        body["latency_ms"])


def test_unknown_user_and_empty_history_get_a_cold_start(url):
    body = _post(url, {"user_id": "never-seen", "k": 4}).json()
    assert body["cold_start"] is True and len(body["items"]) == 4
    assert body["tier"] == "full"


def test_default_k(url):
    assert len(_post(url, {"user_id": "never-seen"}).json()["items"]) == 10


@pytest.mark.parametrize("body, field, message", [
    ({"user_id": "u1", "k": 0}, "body.k", "k must be between 1 and 50, got 0"),
    ({"user_id": "u1", "k": 51}, "body.k", "k must be between 1 and 50, got 51"),
    ({"user_id": "u1", "k": "ten"}, "body.k",
     "Input should be a valid integer, unable to parse string as an integer"),
    ({"k": 3}, "body.user_id", "Field required"),
    ({"user_id": ""}, "body.user_id", "String should have at least 1 character"),
    ({"user_id": "u1", "colour": "red"}, "body.colour", "Extra inputs are not permitted"),
    ({"user_id": "u1", "context": {"device": 3}}, "body.context.device",
     "Input should be a valid string"),
    ({"user_id": "u1", "exclude": "i1"}, "body.exclude", "Input should be a valid list"),
])
def test_invalid_requests_are_422_naming_the_field(url, body, field, message):
    answer = _post(url, body)
    assert answer.status_code == 422
    assert answer.json() == {"error": "invalid_request",
                             "detail": [{"field": field, "message": message}]}


def test_malformed_json_is_400(url):
    answer = _post(url, data="{not json")
    assert answer.status_code == 400
    assert answer.json() == {"error": "malformed_json",
                             "detail": "the request body is not valid JSON"}


def test_explain_a_recommendation(url, small_data):
    user = small_data.train["user_id"].value_counts().index[0]
    item = _post(url, {"user_id": user, "k": 1}).json()["items"][0]["item_id"]
    answer = requests.get(f"{url}/v1/explain", params={"user_id": user, "item_id": item},
                          timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert body["message"].startswith("because you watched ")
    assert 1 <= len(body["because"]) <= 3
    past = [b["item_id"] for b in body["because"]]
    assert len(set(past)) == len(past) and item not in past
    assert [b["similarity"] for b in body["because"]] == sorted(
        (b["similarity"] for b in body["because"]), reverse=True)
    groups = [f["feature_group"] for f in body["ranker_features"]]
    assert "recent history" in groups and "retrieval score" in groups
    assert [abs(f["contribution"]) for f in body["ranker_features"]] == sorted(
        (abs(f["contribution"]) for f in body["ranker_features"]), reverse=True)


def test_explain_errors(url):
    answer = requests.get(f"{url}/v1/explain", params={"user_id": "u1", "item_id": "nope"},
                          timeout=30)
    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown_item",
                             "detail": "item 'nope' is not in the catalogue"}
    answer = requests.get(f"{url}/v1/explain", params={"user_id": "u1"}, timeout=30)
    assert answer.status_code == 422
    assert answer.json() == {"error": "invalid_request",
                             "detail": [{"field": "query.item_id", "message": "Field required"}]}


def test_health_readiness_metrics_and_openapi(url):
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{url}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and ready["breakers"] == {
        "feature_store": "closed", "model_server": "closed", "ranker": "closed"}
    _post(url, {"user_id": "never-seen", "k": 2})
    _post(url, {"user_id": "never-seen", "k": 2})  # within the TTL: retrieval from the cache
    _post(url, {"user_id": "u1", "k": 0})
    metrics = requests.get(f"{url}/metrics", timeout=5).text
    assert 'recsys_requests_total{endpoint="recommendations",tier="full"}' in metrics
    assert 'recsys_stage_latency_seconds_bucket{le="0.005",outcome="ok",stage="retrieval"}' \
        in metrics
    assert 'recsys_request_errors_total{endpoint="/v1/recommendations",status="422"}' in metrics
    assert 'recsys_circuit_breaker_state{dependency="ranker"} 0.0' in metrics
    assert 'recsys_cache_lookups_total{cache="retrieval",result="hit"}' in metrics
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    assert {"/v1/recommendations", "/v1/explain", "/healthz", "/readyz"} <= set(paths)


class StarvedModels(SlowModels):
    """A model client that says it holds its calls to their budget and comes back late: what a
    request thread starved of CPU or of the GIL under load looks like to the endpoint."""

    enforces_timeouts = True


def test_a_pipeline_late_past_the_deadline_is_answered_from_popular_at_the_deadline(
        service_files, small_data):
    user = small_data.train["user_id"].value_counts().index[0]
    service = build_recommender(ServiceConfig(
        repo=service_files.repo, model_base_path=service_files.base, max_in_flight=1,
        request_deadline_ms=400, features_timeout_ms=300, retrieval_timeout_ms=300,
        ranking_timeout_ms=300))
    real = service.models
    service.models = StarvedModels(real, {"ranker": 1.5})
    try:
        with serve_app(create_app(service)) as url:
            started = time.perf_counter()
            body = _post(url, {"user_id": user, "k": 5, "context": {"country": "US"}}).json()
            waited = time.perf_counter() - started
            assert body["tier"] in ("segment-popular", "global-popular")
            assert body["degraded"] == ["deadline: no answer within 400 ms"]
            assert len(body["items"]) == 5 and body["model_versions"] == {}
            assert waited < 1.4  # answered before the late ranker came back
            assert body["latency_ms"]["queued"] >= 400
            # the late pipeline finishes and gives its place back (that it is not counted
            # is tested on the Recommender: a server's counters can see other tests' clients)
            time.sleep(1.6)
            service.models = real
            body = _post(url, {"user_id": user, "k": 5}).json()
            assert body["tier"] == "full" and body["degraded"] == []
    finally:
        service.close()
        real.close()
