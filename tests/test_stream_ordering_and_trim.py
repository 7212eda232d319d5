"""The stream worker against a real Redis: catalogue updates end with the newest version
whatever order they are applied in, the stream is trimmed only of entries the group is done
with, an entry deleted while pending is dead-lettered, and an outage of one entry is not
counted against it."""

from __future__ import annotations

import time
import uuid

import pytest
from stream_support import drain, events, stream_setup
from test_stream_worker import _FailingLake

from recsys.data.lake import Lake
from recsys.features.store import open_store
from recsys.stream.producer import StreamProducer
from stream_worker.consumer_group import DELETED_REASON, ConsumerGroup

pytestmark = pytest.mark.slow


def _category_online(setup, item_id: str):
    found = open_store(setup.repo).get_online_features(
        ["item_catalogue:item_category"], [{"item_id": item_id}]).to_dict()
    return found["item_category"][0]


def _lake_category(setup, item_id: str):
    items = Lake(setup.lake).read("items").to_pylist()
    return {r["item_id"]: r["category"] for r in items}.get(item_id)


def test_an_old_catalogue_update_applied_late_does_not_overwrite_a_newer_one(setup):
    producer = StreamProducer(setup.client, setup.cfg)
    old = producer.submit("item", [{"item_id": "new1", "category": "old-category"}])[0]
    new = producer.submit("item", [{"item_id": "new1", "category": "new-category"}])[0]
    slow, fast = setup.worker("slow"), setup.worker("fast")
    first = slow.group.read()  # the slow worker holds both and dies before applying them
    assert [d.entry_id for d in first] == [old.entry_id, new.entry_id]
    fast.process([first[1]])  # the newer one is applied first (claimed by another worker)
    assert _category_online(setup, "new1") == "new-category"
    slow.process([first[0]])  # then the old one, late
    assert _category_online(setup, "new1") == "new-category"
    assert _lake_category(setup, "new1") == "new-category"
    assert setup.pending() == 0 and setup.dead_letters() == []


def test_two_versions_in_one_batch_apply_the_newest(setup):
    producer = StreamProducer(setup.client, setup.cfg)
    producer.submit("item", [{"item_id": "new2", "category": "first"}])
    producer.submit("item", [{"item_id": "new2", "category": "second"}])
    drain(setup, [setup.worker("w1")])
    assert _category_online(setup, "new2") == "second"
    assert _lake_category(setup, "new2") == "second"
    assert setup.dead_letters() == []


def test_the_stream_is_trimmed_only_of_entries_the_group_is_done_with(tmp_path):
    setup = stream_setup(tmp_path, max_stream_length=5, batch_size=10)
    try:
        receipts = StreamProducer(setup.client, setup.cfg).submit("event", events(30, 3, 20))
        worker = setup.worker("w1")
        group = worker.group
        held = group.read()  # 10 delivered, not acked
        assert group.trim() == 0  # nothing acked yet: nothing may go
        worker.process(held[:4])  # 4 acked, 6 pending, 20 unread
        assert group.trim() == 4
        assert setup.client.xlen(setup.cfg.stream) == 26
        first_left = setup.client.xrange(setup.cfg.stream, count=1)[0][0].decode()
        assert first_left == receipts[4].entry_id
        worker.process(held[4:])
        drain(setup, [worker])  # the worker trims too, on its claim cycle
        group.trim()
        assert setup.client.xlen(setup.cfg.stream) == 0
        assert sorted(setup.lake_event_ids()) == sorted(f"e{k}" for k in range(30))
    finally:
        setup.close()


def test_a_short_stream_is_not_trimmed(setup):
    StreamProducer(setup.client, setup.cfg).submit("event", events(10, 2, 20))
    worker = setup.worker("w1")
    drain(setup, [worker])
    assert worker.group.trim() == 0 and setup.client.xlen(setup.cfg.stream) == 10


def test_an_entry_deleted_while_pending_is_dead_lettered(setup):
    receipts = StreamProducer(setup.client, setup.cfg).submit("event", events(3, 1, 20))
    group = ConsumerGroup(setup.client, setup.cfg, "w1")
    group.ensure()
    assert len(group.read()) == 3  # pending with w1, which stops
    setup.client.xdel(setup.cfg.stream, receipts[1].entry_id)
    worker = setup.worker("w1")  # w1 restarted: re-reads its own pending entries first
    report = worker.step()
    assert (report.received, report.applied, report.dead_lettered) == (3, 2, 1)
    [letter] = setup.dead_letters()
    assert letter["source_entry_id"] == receipts[1].entry_id
    assert letter["reason"] == DELETED_REASON
    assert setup.pending() == 0


class _UnreachableLake(_FailingLake):
    def write_events(self, table):
        if self.fail_all:
            raise ConnectionError("connection refused")
        return super().write_events(table)


def test_a_single_entry_failing_in_an_outage_is_not_counted_against_it(setup):
    records = events(1, 1, 20)
    StreamProducer(setup.client, setup.cfg).submit("event", records)
    worker = setup.worker("w1")
    worker._back_off = lambda stop, why: None
    worker.lake = _UnreachableLake(setup.lake, fail_all=True)
    for _ in range(setup.cfg.max_deliveries + 2):
        report = worker.step()
        assert report.dead_lettered == 0 and report.applied == 0
    assert setup.pending() == 1
    assert setup.client.hgetall(f"{setup.cfg.stream}:failures") == {}
    worker.lake = _UnreachableLake(setup.lake)
    drain(setup, [worker])
    assert setup.lake_event_ids() == ["e0"] and setup.dead_letters() == []


@pytest.mark.parametrize("redis", ["embedded", pytest.param("machine",
                                                           marks=pytest.mark.services)])
def test_an_entry_deleted_while_another_consumer_held_it_is_dead_lettered_on_claim(tmp_path,
                                                                                   redis):
    """Redis 6.2 (the embedded server) claims a deleted entry without its id; Redis 7 (the
    machine's) drops it from the pending list and names it: both end in the dead letters."""
    options = {"claim_idle_ms": 200}
    if redis == "machine":
        from feast_support import require_services

        require_services()
        name = f"test-{uuid.uuid4().hex[:8]}"
        options.update(redis_url="redis://127.0.0.1:6379/0", stream=name,
                       dead_letter_stream=f"{name}:dead")
    setup = stream_setup(tmp_path, **options)
    try:
        receipts = StreamProducer(setup.client, setup.cfg).submit("event", events(4, 2, 20))
        gone = ConsumerGroup(setup.client, setup.cfg, "gone")
        gone.ensure()
        assert len(gone.read()) == 4  # then the consumer dies
        setup.client.xdel(setup.cfg.stream, receipts[2].entry_id)
        time.sleep(0.3)
        drain(setup, [setup.worker("survivor")])
        assert sorted(setup.lake_event_ids()) == ["e0", "e1", "e3"]
        [letter] = setup.dead_letters()
        assert letter["source_entry_id"] == receipts[2].entry_id
        assert letter["reason"] == DELETED_REASON
    finally:
        if redis == "machine":
            setup.client.delete(setup.cfg.stream, setup.cfg.dead_letter_stream,
                                *setup.client.keys(f"{setup.cfg.stream}:*"))
        setup.close()


def test_only_unreachable_or_busy_dependencies_count_as_outages(tmp_path):
    import sqlite3

    import psycopg
    import redis

    from stream_worker.worker import is_outage

    holder = sqlite3.connect(tmp_path / "x.db")
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(tmp_path / "x.db", timeout=0.01)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("INSERT INTO t VALUES (1)")
    holder.rollback()
    with pytest.raises(sqlite3.OperationalError) as missing:
        waiter.execute("SELECT * FROM nope")
    assert is_outage(locked.value) and not is_outage(missing.value)
    for exc in (redis.ConnectionError("down"), redis.TimeoutError("slow"),
                ConnectionRefusedError(), TimeoutError(), psycopg.OperationalError("gone")):
        assert is_outage(exc), exc
    for exc in (OSError("disk said no"), ValueError("bad row"), KeyError("x")):
        assert not is_outage(exc), exc
