"""POST /v1/events and /v1/items over HTTP, into a real Redis stream (the embedded server)."""

from __future__ import annotations

import json
import re

import pytest
import requests
from conftest import event
from recommendation_support import serve_app

from recsys.data.schemas import EVENTS
from recsys.stream.config import StreamConfig
from recsys.stream.envelope import decode
from recsys.stream.producer import StreamProducer
from recsys.stream.redis_connection import connect, stop_embedded
from serving.recommendations.app import create_app
from serving.recommendations.config import ServiceConfig
from serving.recommendations.ingest_routes import MAX_BATCH
from serving.recommendations.service import build_recommender

pytestmark = pytest.mark.slow
ENTRY_ID = re.compile(r"^\d+-\d+$")


@pytest.fixture(scope="module")
def stack(service_files, tmp_path_factory):
    cfg = StreamConfig(embedded_dir=tmp_path_factory.mktemp("redis"))
    client = connect(cfg)
    service = build_recommender(ServiceConfig(repo=service_files.repo,
                                              model_base_path=service_files.base))
    with serve_app(create_app(service, StreamProducer(client, cfg))) as url:
        yield url, client, cfg, service
    service.close()
    service.models.close()
    client.close()
    stop_embedded(cfg.embedded_dir)


def _post(url, path, body=None, data=None):
    return requests.post(f"{url}{path}", json=body, data=data, timeout=60,
                         headers={"content-type": "application/json"})


def _entries(client, cfg):
    return [decode(eid, fields) for eid, fields in client.xrange(cfg.stream)]


def test_one_event_is_appended_with_its_entry_id(stack):
    url, client, cfg, _ = stack
    before = client.xlen(cfg.stream)
    response = _post(url, "/v1/events", event(event_id="one", timestamp="2026-11-01T10:00:00Z"))
    assert response.status_code == 200
    body = response.json()
    entry_id = body["results"][0].pop("entry_id")
    assert ENTRY_ID.match(entry_id)
    assert body == {"accepted": 1, "rejected": 0, "duplicates": 0,
                    "results": [{"index": 0, "key": "one", "status": "accepted",
                                 "reason": None}]}
    assert client.xlen(cfg.stream) == before + 1
    entry = _entries(client, cfg)[-1]
    assert (entry.entry_id, entry.kind) == (entry_id, "event")
    assert entry.body["event_id"] == "one"
    assert entry.body["timestamp"] == "2026-11-01T10:00:00+00:00"


def test_an_event_names_the_answer_and_position_it_was_shown_at(stack):
    """A client sends back the request_id of the answer it showed and the item's position
    there, so outcomes are attributed to what was shown (the exposures' request_id)."""
    url, client, cfg, _ = stack
    response = _post(url, "/v1/events", event(event_id="seen", request_id="3f2a9c",
                                              position=4, timestamp="2026-11-01T10:00:00Z"))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    entry = _entries(client, cfg)[-1]
    assert (entry.body["request_id"], entry.body["position"]) == ("3f2a9c", 4)


def test_a_batch_reports_each_record(stack):
    url, client, cfg, _ = stack
    records = [event(event_id="b1"), event(event_id="b2", event_type="teleport"),
               event(event_id="b1"), "not an object", {**event(event_id="b3"), "mood": 1}]
    response = _post(url, "/v1/events", {"events": records})
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    from serving.recommendations.ingest_routes import IngestResponse

    assert IngestResponse.model_validate(body).model_dump() == body  # the documented shape
    for result in body["results"]:
        result.pop("entry_id")
    assert body == {"accepted": 1, "rejected": 3, "duplicates": 1, "results": [
        {"index": 0, "key": "b1", "status": "accepted", "reason": None},
        {"index": 1, "key": "b2", "status": "rejected",
         "reason": "unknown event_type 'teleport' (expected one of: impression, click, watch, "
                   "like, dislike, skip, share, rating)"},
        {"index": 2, "key": "b1", "status": "duplicate",
         "reason": "an exact repeat of an earlier record in this batch"},
        {"index": 3, "key": None, "status": "rejected",
         "reason": "expected a JSON object with the events fields, got str"},
        {"index": 4, "key": "b3", "status": "rejected",
         "reason": f"unknown field(s) ['mood']; allowed: {list(EVENTS.input_columns)}"}]}


def test_an_event_without_a_timestamp_gets_the_time_it_arrived(stack):
    url, client, cfg, _ = stack
    record = event(event_id="no-time")
    del record["timestamp"]
    assert _post(url, "/v1/events", record).json()["accepted"] == 1
    assert _entries(client, cfg)[-1].body["timestamp"].startswith("20")


def test_a_timestamp_that_overflows_in_utc_is_rejected_by_name_beside_a_valid_event(stack):
    """Found by the fuzz: an offset that moves a timestamp out of year 1 in UTC was a 503
    for the whole batch; it is a rejected record, and the valid one beside it is kept."""
    url, client, cfg, _ = stack
    before = client.xlen(cfg.stream)
    response = _post(url, "/v1/events", {"events": [
        event(event_id="kept", timestamp="2026-11-01T10:00:00Z"),
        event(event_id="year-0", timestamp="0001-01-01T00:00:00+00:01")]})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert "outside the years 1 to 9999 once converted to UTC" in body["results"][1]["reason"]
    assert client.xlen(cfg.stream) == before + 1


def test_a_fault_in_checking_is_a_500_not_the_stream_being_down(stack, monkeypatch):
    """Only Redis's errors mean the stream cannot be written (503); a fault in the service's
    own checking is a 500, so that it is seen (the fuzz fails on it) and not retried as an
    outage. Nothing is appended, and a request after it is served."""
    import recsys.stream.producer as producer_module

    url, client, cfg, _ = stack
    before = client.xlen(cfg.stream)

    def broken_check(*args, **kwargs):
        raise ValueError("a bug in the checking")

    with monkeypatch.context() as patch:
        patch.setattr(producer_module, "check_records", broken_check)
        response = _post(url, "/v1/events", event(event_id="fault"))
    assert response.status_code == 500
    assert "unavailable" not in response.text
    assert client.xlen(cfg.stream) == before
    assert _post(url, "/v1/events", event(event_id="after-fault")).json()["accepted"] == 1
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert 'recsys_request_errors_total{endpoint="/v1/events",status="500"} 1.0' in metrics


def test_items_are_appended(stack):
    url, client, cfg, _ = stack
    body = _post(url, "/v1/items", {"items": [
        {"item_id": "new1", "category": "news", "tags": ["a"], "duration_s": 60},
        {"item_id": "new2", "tags": "a,b"}]}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected"]
    entry = _entries(client, cfg)[-1]
    assert entry.kind == "item" and entry.body["item_id"] == "new1"


@pytest.mark.parametrize("path, data, status, detail", [
    ("/v1/events", "{oops", 400, "the request body is not valid JSON"),
    ("/v1/events", "[1, 2]", 422, [{"field": "body", "message": "the body must be a JSON "
                                    "object: one event, or {\"events\": [...]}; got list"}]),
    ("/v1/events", '{"events": []}', 422,
     [{"field": "body", "message": "\"events\" must be a non-empty list of event objects"}]),
    ("/v1/events", '{"events": {}}', 422,
     [{"field": "body", "message": "\"events\" must be a non-empty list of event objects"}]),
    ("/v1/events", '{"events": [{}], "extra": 1}', 422,
     [{"field": "body", "message": "a batch body holds only \"events\", got also ['extra']"}]),
    ("/v1/events", json.dumps({"events": [{}] * (MAX_BATCH + 1)}), 422,
     [{"field": "body", "message": f"at most {MAX_BATCH} events per request, got "
                                   f"{MAX_BATCH + 1}"}]),
    ("/v1/items", '"x"', 422, [{"field": "body", "message": "the body must be a JSON object: "
                                                            "one item, or {\"items\": [...]}; "
                                                            "got str"}]),
])
def test_bad_bodies_have_exact_answers(stack, path, data, status, detail):
    response = _post(stack[0], path, data=data)
    assert response.status_code == status
    error = "malformed_json" if status == 400 else "invalid_request"
    assert response.json() == {"error": error, "detail": detail}


def test_ingest_metrics(stack):
    text = requests.get(f"{stack[0]}/metrics", timeout=30).text
    assert 'recsys_ingested_records_total{kind="event",status="accepted"}' in text


def test_without_a_stream_the_ingest_routes_answer_503(stack):
    service = stack[3]
    with serve_app(create_app(service)) as url:
        response = _post(url, "/v1/events", event())
    assert response.status_code == 503
    assert response.json() == {"error": "unavailable",
                               "detail": "this service has no event stream configured"}


def test_when_redis_is_down_nothing_is_appended_and_the_answer_is_503(service_files, tmp_path):
    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    service = build_recommender(ServiceConfig(repo=service_files.repo,
                                              model_base_path=service_files.base))
    try:
        with serve_app(create_app(service, StreamProducer(client, cfg))) as url:
            stop_embedded(cfg.embedded_dir)
            response = _post(url, "/v1/events", event())
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "unavailable"
        assert body["detail"].startswith("the event stream cannot be written: ConnectionError")
    finally:
        service.close()
        service.models.close()
