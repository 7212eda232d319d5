"""The fresh-item index in Redis: items that arrived through the stream after the retrieval
index was built, embedded by the item tower of each model version, for retrieval to merge
with the main (ScaNN) index until a full rebuild publishes a version that holds them.

Keys (``P`` = prefix, the stream's name by convention)::

    P:fresh:catalogue            hash item_id -> catalogue row (JSON), every fresh item
    P:fresh:V:vectors            hash item_id -> float32 embedding by version V's item tower
    P:fresh:V:changes            counter, bumped by every write to V (readers poll it)

Guarantees: writing the same item again replaces its row and vector (idempotent); an item a
version's index already holds is never added to that version's fresh vectors; readers see
all of a write or none of it (one transaction per write).
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

import numpy as np


class FreshItemStore:
    def __init__(self, client, prefix: str = "recsys:events"):
        self.client, self.prefix = client, prefix

    @property
    def catalogue_key(self) -> str:
        return f"{self.prefix}:fresh:catalogue"

    def _vectors_key(self, version: int) -> str:
        return f"{self.prefix}:fresh:{version}:vectors"

    def _changes_key(self, version: int) -> str:
        return f"{self.prefix}:fresh:{version}:changes"

    def add_catalogue(self, rows: Iterable[Mapping]) -> None:
        rows = list(rows)
        if rows:
            self.client.hset(self.catalogue_key, mapping={
                r["item_id"]: json.dumps(dict(r), default=str) for r in rows})

    def catalogue(self) -> dict[str, dict]:
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.catalogue_key)
                .items()}

    def forget(self, item_ids: Iterable[str]) -> None:
        """Drop items from the fresh catalogue (a version's index holds them now)."""
        item_ids = list(item_ids)
        if item_ids:
            self.client.hdel(self.catalogue_key, *item_ids)

    def put_vectors(self, version: int, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._vectors_key(version), mapping={
            item: np.asarray(v, dtype=np.float32).tobytes() for item, v in vectors.items()})
        pipe.incr(self._changes_key(version))
        pipe.execute()

    def changes(self, version: int) -> int:
        return int(self.client.get(self._changes_key(version)) or 0)

    def snapshot(self, version: int) -> tuple[int, list[str], np.ndarray, dict[str, dict]]:
        """(change count, ids, [N, D] vectors, catalogue rows of those ids) of ``version``."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self._changes_key(version))
        pipe.hgetall(self._vectors_key(version))
        pipe.hgetall(self.catalogue_key)
        changes, raw, catalogue = pipe.execute()
        ids = sorted(k.decode() for k in raw)
        vectors = (np.stack([np.frombuffer(raw[i.encode()], dtype=np.float32) for i in ids])
                   if ids else np.zeros((0, 0), np.float32))
        rows = {i: json.loads(catalogue[i.encode()]) for i in ids if i.encode() in catalogue}
        return int(changes or 0), ids, vectors, rows



class FreshItemIndexer:
    """The worker's side: catalogue rows from the stream go into the fresh catalogue and,
    embedded by the newest item tower, into that version's fresh vectors; when a newer
    version appears, the items its index holds leave the fresh catalogue and the rest are
    embedded again by its tower."""

    def __init__(self, store: FreshItemStore, embedder):
        self.store, self.embedder = store, embedder

    def add(self, rows: list[dict]) -> int:
        """Record and embed new or changed items; returns how many got fresh vectors."""
        self.store.add_catalogue(rows)
        if self.embedder.refresh():
            return self._rebuild()
        return self._embed(rows)

    def sync(self) -> int:
        """Catch up with a newer exported version, if any; returns items re-embedded."""
        return self._rebuild() if self.embedder.refresh() else 0

    def _rebuild(self) -> int:
        catalogue = self.store.catalogue()
        self.store.forget([i for i in catalogue if i in self.embedder.indexed])
        return self._embed(list(catalogue.values()))

    def _embed(self, rows: list[dict]) -> int:
        if self.embedder.version is None:
            return 0
        rows = [r for r in rows if r["item_id"] not in self.embedder.indexed]
        if not rows:
            return 0
        vectors = self.embedder.embed(rows)
        self.store.put_vectors(self.embedder.version,
                               {r["item_id"]: v for r, v in zip(rows, vectors)})
        return len(rows)


__all__ = ["FreshItemStore", "FreshItemIndexer"]
