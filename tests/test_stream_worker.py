"""The stream worker against a real Redis (the embedded server), a real Feast online store
and a real lake: effects, crash recovery, dead letters and retries."""

from __future__ import annotations

import json

import pytest
from stream_support import drain, events, expected_counts, stream_setup

from recsys.stream.producer import StreamProducer
from stream_worker.sinks import LakeSink

pytestmark = pytest.mark.slow


def _submit(setup, records):
    receipts = StreamProducer(setup.client, setup.cfg).submit("event", records)
    assert all(r.status == "accepted" for r in receipts), receipts
    return receipts


def _assert_exact_effects(setup, records):
    ids = setup.lake_event_ids()
    assert sorted(ids) == sorted(r["event_id"] for r in records)  # each once
    counts = expected_counts(records)
    items = sorted(counts)
    online = setup.counters(items)
    assert {i: (a, b, c) for i, a, b, c in zip(
        online["item_id"], online["item_stream_impressions_24h"],
        online["item_stream_clicks_24h"], online["item_stream_engagements_24h"])} == counts
    users = sorted({r["user_id"] for r in records})
    sessions = setup.sessions(users)
    per_user = {u: sum(r["user_id"] == u for r in records) for u in users}
    assert dict(zip(sessions["user_id"], sessions["session_length"])) == per_user


def test_events_become_session_features_item_counters_and_lake_rows(setup):
    records = events(40, users=3, items=20)
    _submit(setup, records)
    worker = setup.worker("w1")
    drain(setup, [worker])
    _assert_exact_effects(setup, records)
    recent = setup.sessions(["u0"])["session_recent_item_ids"][0]
    engaged = [r["item_id"] for r in records if r["user_id"] == "u0"
               and r["event_type"] in ("click", "watch", "like")]
    assert recent[0] == engaged[-1] and set(recent) == set(engaged)
    assert setup.dead_letters() == []


def test_a_worker_killed_between_effects_and_ack_loses_and_duplicates_nothing(tmp_path):
    setup = stream_setup(tmp_path, claim_idle_ms=300, batch_size=50)
    try:
        records = events(120, users=4, items=20)
        _submit(setup, records)
        crashed = setup.crashing_worker("doomed")
        assert crashed.returncode == 137, crashed.stderr[-3000:]
        assert "effects of 50 entries done; dying before the ack" in crashed.stdout
        assert setup.pending() == 50  # effects done, never acked
        assert len(setup.lake_event_ids()) == 50
        survivor = setup.worker("survivor")
        drain(setup, [survivor])
        _assert_exact_effects(setup, records)
        assert setup.dead_letters() == []
    finally:
        setup.close()


def test_one_percent_malformed_entries_are_dead_lettered_and_every_valid_one_lands(setup):
    records = events(990, users=25, items=20)
    producer = StreamProducer(setup.client, setup.cfg)
    bad = [({b"kind": b"event", b"body": b"{not json"}, "entry body is not valid JSON"),
           ({b"kind": b"user", b"body": b"{}"}, "entry kind must be one of"),
           ({b"body": b"{}"}, "entry has no 'kind' field"),
           ({b"kind": b"event", b"body": b"[]"}, "entry body must be a JSON object"),
           ({b"kind": b"event", b"body": json.dumps({"event_id": "x1", "user_id": "u",
                                                     "item_id": "i", "event_type": "purr",
                                                     "timestamp": "2026-01-01T00:00:00Z"}
                                                    ).encode()},
            "invalid event: unknown event_type 'purr'"),
           ({b"kind": b"event", b"body": json.dumps({"event_id": "x2", "item_id": "i",
                                                     "event_type": "click",
                                                     "timestamp": "2026-01-01T00:00:00Z"}
                                                    ).encode()},
            "invalid event: missing required field 'user_id'"),
           ({b"kind": b"event", b"body": json.dumps({"event_id": "x3", "user_id": "u",
                                                     "item_id": "i", "event_type": "click",
                                                     "timestamp": "2126-01-01T00:00:00Z"}
                                                    ).encode()}, "is in the future"),
           ({b"kind": b"event", b"body": json.dumps({"event_id": "x4", "user_id": "u",
                                                     "item_id": "i", "event_type": "click",
                                                     "timestamp": "yesterday"}).encode()},
            "invalid event: timestamp"),
           ({b"kind": b"item", b"body": json.dumps({"item_id": "", "tags": 3}).encode()},
            "invalid item"),
           ({b"kind": b"event", b"body": json.dumps({"event_id": "x5", "user_id": "u",
                                                     "item_id": "i", "event_type": "click",
                                                     "timestamp": "2026-01-01T00:00:00Z",
                                                     "mood": "happy"}).encode()},
            "invalid event: unknown field(s) ['mood']")]
    for k, record in enumerate(records):
        producer.submit("event", [record])
        if k % 99 == 50:
            setup.client.xadd(setup.cfg.stream, bad[k // 99][0])
    drain(setup, [setup.worker("w1"), setup.worker("w2")])
    _assert_exact_effects(setup, records)
    dead = {(letter.get("kind"), letter["body"]): letter for letter in setup.dead_letters()}
    assert len(dead) == len(bad)
    for fields, reason in bad:
        kind = fields[b"kind"].decode() if b"kind" in fields else None
        letter = dead[(kind, fields[b"body"].decode())]
        assert reason in letter["reason"], (letter, reason)
        assert letter["deliveries"] == "1"
        assert {k.decode(): v.decode(errors="replace") for k, v in fields.items()}.items() <= (
            letter.items())


class _FailingLake(LakeSink):
    """The lake, failing for some event ids (a poison record) or for everything (an outage)."""

    def __init__(self, root, fail_ids=(), fail_all=False):
        super().__init__(root, "stream:test")
        self.fail_ids, self.fail_all = set(fail_ids), fail_all

    def write_events(self, table):
        ids = set(table.column("event_id").to_pylist())
        if self.fail_all or ids & self.fail_ids:
            raise OSError(f"disk said no to {sorted(ids & self.fail_ids) or 'everything'}")
        return super().write_events(table)


def test_an_entry_that_keeps_failing_is_dead_lettered_and_the_rest_land(setup):
    records = events(30, users=3, items=20)
    _submit(setup, records)
    worker = setup.worker("w1")
    worker.lake = _FailingLake(setup.lake, fail_ids={"e7"})
    worker._back_off = lambda stop, why: None  # no waiting between retries in this test
    drain(setup, [worker])
    assert sorted(setup.lake_event_ids()) == sorted(r["event_id"] for r in records
                                                    if r["event_id"] != "e7")
    dead = setup.dead_letters()
    assert len(dead) == 1 and json.loads(dead[0]["body"])["event_id"] == "e7"
    assert dead[0]["reason"] == (f"failed {setup.cfg.max_deliveries} times; last error: "
                                 "OSError: disk said no to ['e7']")


def test_an_outage_is_not_counted_against_the_entries(setup):
    records = events(10, users=2, items=20)
    _submit(setup, records)
    worker = setup.worker("w1")
    worker._back_off = lambda stop, why: None
    worker.lake = _FailingLake(setup.lake, fail_all=True)
    for _ in range(setup.cfg.max_deliveries + 3):
        report = worker.step()
        assert report.dead_lettered == 0
    assert setup.pending() == 10
    worker.lake = _FailingLake(setup.lake)
    drain(setup, [worker])
    _assert_exact_effects(setup, records)
    assert setup.dead_letters() == []


def _exposures(answers: int, per_answer: int = 5) -> list[dict]:
    from stream_support import _now

    shown = (_now() - __import__("datetime").timedelta(minutes=5)).isoformat()
    return [{"exposure_id": f"r{a}/{p}", "request_id": f"r{a}", "timestamp": shown,
             "user_id": f"u{a % 4}", "item_id": f"i{(a + p) % 20}", "position": p,
             "score": 1.0 - p / 10, "source": "two-tower", "propensity": 1.0, "tier": "full",
             "experiments": ["ranker-v2=treatment"], "holdout": 0, "retrieval_version": 1,
             "ranker_version": 1, "device": "tv", "country": "US", "language": "en"}
            for a in range(answers) for p in range(per_answer)]


def test_exposures_reach_the_lake_once_even_when_a_worker_dies_before_its_ack(tmp_path):
    from recsys.data.lake import Lake

    setup = stream_setup(tmp_path, claim_idle_ms=300, batch_size=50)
    try:
        records = _exposures(24)  # 120 entries
        receipts = StreamProducer(setup.client, setup.cfg).submit("exposure", records)
        assert all(r.status == "accepted" for r in receipts), receipts
        crashed = setup.crashing_worker("doomed")
        assert "effects of 50 entries done; dying before the ack" in crashed.stdout
        assert setup.pending() == 50
        drain(setup, [setup.worker("survivor")])
        ids = Lake(setup.lake).read("exposures", ["exposure_id"]).column(0).to_pylist()
        assert sorted(ids) == sorted(r["exposure_id"] for r in records)  # each once
        assert setup.dead_letters() == []
    finally:
        setup.close()


def test_a_user_the_stream_has_no_state_for_continues_from_the_online_history(setup):
    """A history the batch job materialized (here written to the online store as Feast's
    materialization writes it) survives the user's first event after a fresh or emptied
    stream Redis: the new engagement goes in front of it, not in its place."""
    import datetime as dt

    from recsys.features.store import open_store
    from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, USER_SESSION
    from stream_worker.sinks import feature_frame

    old_s = int(dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc).timestamp())
    row = {"user_id": "u0", "session_recent_item_ids": ["i-old1", "i-old2"],
           "session_recent_categories": ["c1", "c2"],
           "session_recent_event_at_s": [old_s, old_s - 60], "session_length": 7,
           "session_started_at_s": old_s - 600, "session_last_event_at_s": old_s,
           EVENT_TIMESTAMP: old_s * 1_000_000, CREATED_TIMESTAMP: old_s * 1_000_000}
    open_store(setup.repo).write_to_online_store(USER_SESSION.name,
                                                 feature_frame(USER_SESSION, [row]))
    records = [r for r in events(40, users=3, items=20) if r["user_id"] in ("u0", "u1")]
    _submit(setup, records)
    drain(setup, [setup.worker("w1")])
    sessions = setup.sessions(["u0", "u1"])
    engaged = {u: [r["item_id"] for r in records if r["user_id"] == u
                   and r["event_type"] in ("click", "watch", "like")] for u in ("u0", "u1")}
    recent = dict(zip(sessions["user_id"], sessions["session_recent_item_ids"]))
    assert engaged["u0"] and recent["u0"][-2:] == ["i-old1", "i-old2"]
    assert set(recent["u0"][:-2]) == set(engaged["u0"])
    assert set(recent["u1"]) == set(engaged["u1"])  # no row online: starts empty
    # the new events are months after the old session: a session of their own
    lengths = dict(zip(sessions["user_id"], sessions["session_length"]))
    assert lengths["u0"] == sum(r["user_id"] == "u0" for r in records)
