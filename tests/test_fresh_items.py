"""The fresh-item index: the worker embeds new items with the newest exported item tower into
Redis; retrieval's fresh source finds them by the query embedding; a newer version takes the
items its index holds out of the fresh catalogue and re-embeds the rest."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from recsys.model_contract.manifest import ITEM_IDS, read_manifest
from recsys.stream.config import StreamConfig
from recsys.stream.redis_connection import connect, stop_embedded
from serving.recommendations.cold_items import tower_embedding
from serving.recommendations.fresh_source import FreshSource
from serving.recommendations.model_clients import InProcessModelClient
from stream_worker.fresh_items import FreshItemIndexer, FreshItemStore
from stream_worker.item_embedder import ItemEmbedder
from trainer.config import RetrievalConfig

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_client(tmp_path):
    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    yield client
    client.close()
    stop_embedded(cfg.embedded_dir)


def _eventually(read, done, attempts: int = 100):
    """``read()`` until ``done`` holds of it (at most ``attempts`` tries 50 ms apart)."""
    import time

    for _ in range(attempts):
        value = read()
        if done(value):
            return value
        time.sleep(0.05)
    return value


def _row(item_id, category="news"):
    return {"item_id": item_id, "item_category": category, "item_language": "en",
            "item_tags": ["breaking"], "item_duration_s": 120.0,
            "item_created_at_s": 1_790_000_000}


def test_new_items_are_embedded_by_the_newest_item_tower(service_files, redis_client):
    embedder = ItemEmbedder(service_files.base)
    indexer = FreshItemIndexer(FreshItemStore(redis_client), embedder)
    indexed = sorted(embedder.indexed) or None
    assert indexer.add([_row("brand-new-1"), _row("brand-new-2", "sports")]) == 2
    version = embedder.version
    assert version == 1 and len(embedder.indexed) > 0 and indexed is None
    known = next(iter(embedder.indexed))
    assert indexer.add([_row(known)]) == 0  # already in the main index
    changes, ids, vectors, rows = FreshItemStore(redis_client).snapshot(version)
    assert ids == ["brand-new-1", "brand-new-2"] and changes == 1
    assert rows["brand-new-2"]["item_category"] == "sports"
    # the same vector the service's own item-tower call gives
    manifest = read_manifest(service_files.base / "item_tower" / "1")
    model_cfg = RetrievalConfig.from_dict({"model": manifest["model_config"]}).model
    reference_us = int(pd.Timestamp(manifest["item_age_reference"]).value // 1000)
    client = InProcessModelClient({"item_tower": service_files.base / "item_tower"})
    try:
        expected = tower_embedding(client, model_cfg, _row("brand-new-1"), reference_us,
                                   timeout_s=30)
    finally:
        client.close()
    np.testing.assert_allclose(vectors[0], expected, atol=1e-5)


def test_retrieval_finds_fresh_items_by_the_query_embedding(service_files, redis_client):
    store = FreshItemStore(redis_client)
    indexer = FreshItemIndexer(store, ItemEmbedder(service_files.base))
    categories = ("news", "sports", "music", "gaming", "cooking", "travel")
    indexer.add([_row(f"fresh-{k}", categories[k]) for k in range(6)])
    _, ids, vectors, _ = store.snapshot(1)
    source = FreshSource(store, refresh_s=0.0)
    query = vectors[ids.index("fresh-4")]
    found = source.nearest(query, version=1, k=3)
    assert found[0].item_id == "fresh-4" and found[0].source == "fresh"
    assert found[0].score == pytest.approx(float(query @ query), abs=1e-5)
    assert found[0].category == "cooking" and found[0].reasons == ["new item"]
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert "fresh-4" not in {c.item_id for c in source.nearest(query, 1, 3, {"fresh-4"})}
    assert source.nearest(query, version=2, k=3) == []  # another version's index: none yet
    indexer.add([_row("fresh-later")])
    # a due snapshot is read in the background: a later request sees the new item
    assert "fresh-later" in _eventually(lambda: {c.item_id for c in source.nearest(query, 1,
                                                                                10)},
                                        lambda ids: "fresh-later" in ids)


def test_a_new_version_takes_over_the_items_it_indexes(service_files, redis_client, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(service_files.base / "item_tower" / "1", base / "item_tower" / "1")
    store = FreshItemStore(redis_client)
    indexer = FreshItemIndexer(store, ItemEmbedder(base))
    indexer.add([_row("a"), _row("b")])
    assert store.snapshot(1)[1] == ["a", "b"]
    assert indexer.sync() == 0  # nothing newer
    v2 = base / "item_tower" / "2"  # a full rebuild whose index now holds "a"
    shutil.copytree(base / "item_tower" / "1", v2)
    (v2 / ITEM_IDS).write_text((v2 / ITEM_IDS).read_text() + "\na")
    assert indexer.sync() == 1
    assert store.snapshot(2)[1] == ["b"] and sorted(store.catalogue()) == ["b"]
    assert store.snapshot(1)[1] == ["a", "b"]  # version 1's readers keep theirs


def test_the_fresh_source_keeps_its_snapshot_when_redis_fails(service_files, tmp_path):
    cfg = StreamConfig(embedded_dir=tmp_path / "redis")
    client = connect(cfg)
    store = FreshItemStore(client)
    FreshItemIndexer(store, ItemEmbedder(service_files.base)).add([_row("kept")])
    source = FreshSource(store, refresh_s=0.0)
    query = store.snapshot(1)[2][0]
    assert [c.item_id for c in source.nearest(query, 1, 5)] == ["kept"]
    stop_embedded(cfg.embedded_dir)
    assert [c.item_id for c in source.nearest(query, 1, 5)] == ["kept"]
    client.close()


class _HeldStore:
    """The real store, with reads of its change counter held until released (a slow
    Redis)."""

    def __init__(self, store):
        import threading

        self.store, self.release, self.reads = store, threading.Event(), 0

    def changes(self, version):
        self.reads += 1
        if self.reads > 1:
            assert self.release.wait(30)
        return self.store.changes(version)

    def snapshot(self, version):
        return self.store.snapshot(version)


def test_a_due_refresh_is_read_in_the_background(service_files, redis_client):
    """Only a version's first request waits for Redis; later ones answer from the current
    snapshot while the next is read, and see it once it is in."""
    import time

    store = FreshItemStore(redis_client)
    indexer = FreshItemIndexer(store, ItemEmbedder(service_files.base))
    indexer.add([_row("first")])
    held = _HeldStore(store)
    source = FreshSource(held, refresh_s=0.0)
    query = store.snapshot(1)[2][0]
    assert [c.item_id for c in source.nearest(query, 1, 5)] == ["first"]  # read at once
    indexer.add([_row("second")])
    started = time.perf_counter()
    assert [c.item_id for c in source.nearest(query, 1, 5)] == ["first"]  # Redis held
    assert time.perf_counter() - started < 5
    # the background read has started and waits on Redis
    assert _eventually(lambda: held.reads, lambda reads: reads == 2) == 2
    held.release.set()
    assert _eventually(lambda: {c.item_id for c in source.nearest(query, 1, 5)},
                       lambda ids: "second" in ids) == {"first", "second"}
