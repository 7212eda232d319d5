"""The stream worker on the production profile, for real: the stream and the Feast online store
on the machine's Redis, the offline store, registry and event log on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from feast_support import drop_schema, production_repo, require_services
from stream_support import catalogue_table, events, expected_counts

from recsys.features.store import apply, materialize, open_store
from recsys.stream.config import StreamConfig
from recsys.stream.producer import StreamProducer
from recsys.stream.redis_connection import connect
from stream_worker.runner import WorkerSpec, build_worker

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_the_worker_applies_events_to_redis_and_postgres(tmp_path):
    require_services()
    repo, schema = production_repo(tmp_path, {"item_catalogue": catalogue_table(20)})
    now = dt.datetime.now(dt.timezone.utc)
    cfg = StreamConfig(redis_url="redis://127.0.0.1:6379/0", stream=f"test:{schema}",
                       dead_letter_stream=f"test:{schema}:dead", block_ms=50)
    client = connect(cfg)
    try:
        apply(repo)
        materialize(repo, end=now, start=now - dt.timedelta(days=60))
        records = events(60, users=3, items=20)
        producer = StreamProducer(client, cfg)
        producer.submit("event", records)
        producer.submit("event", records[:10])  # a client retrying: nothing changes
        worker = build_worker(WorkerSpec(cfg, repo, None, "prod"))
        deadline = time.monotonic() + 120
        while client.xinfo_groups(cfg.stream)[0]["pending"] or client.xinfo_groups(
                cfg.stream)[0]["last-delivered-id"] != client.xinfo_stream(
                cfg.stream)["last-generated-id"]:
            worker.step()
            assert time.monotonic() < deadline
        with worker.lake.conn.cursor() as cur:
            cur.execute(f'SELECT event_id FROM "{schema}".events')
            assert sorted(r[0] for r in cur.fetchall()) == sorted(r["event_id"] for r in records)
        store = open_store(repo)
        sessions = store.get_online_features(["user_session:session_length"],
                                             [{"user_id": f"u{k}"} for k in range(3)]).to_dict()
        assert sessions["session_length"] == [20, 20, 20]
        late = {**records[-3], "event_id": "late-1", "event_type": "impression",
                "timestamp": records[-3]["timestamp"]}  # before the user's newest event
        producer.submit("event", [late])
        for _ in range(5):
            worker.step()
        sessions = store.get_online_features(["user_session:session_length"],
                                             [{"user_id": late["user_id"]}]).to_dict()
        assert sessions["session_length"] == [21]  # Redis keeps the late event's effect
        counts = expected_counts(records + [late])
        online = store.get_online_features(["item_stream:item_stream_impressions_24h"],
                                           [{"item_id": i} for i in sorted(counts)]).to_dict()
        assert online["item_stream_impressions_24h"] == [counts[i][0] for i in sorted(counts)]
        worker.lake.close()
    finally:
        keys = list(client.scan_iter(f"test:{schema}*"))
        if keys:
            client.delete(*keys)
        client.close()
        drop_schema(schema)
