"""The contextual bandit's statistics in Redis, shared by every stream worker (which add to
them) and every service process (which read them).

Layout: one hash (``recsys:bandit:linucb`` by default) of floats: ``a:i,j`` (i <= j) the upper
triangle of ``sum x x^T``, ``b:i`` of ``sum reward * x``, ``n`` the shown slots counted and
``t`` the time of the last update (Unix seconds). Additions are ``HINCRBYFLOAT`` in one
pipeline: they commute, so workers add concurrently without a lock, and a reader sees each
field's running sum (a read between two fields of one addition is at most one batch behind in
some fields, and the next read is whole).

Exactly once: ``add`` takes the ids of the entries a delta came from and counts only the
entries never counted before (a ``SET NX`` marker per id, kept ``MARK_TTL_S``), so a batch a
worker re-reads after a crash adds nothing twice. Shown slots wait for their rewards in
``recsys:bandit:shown:<request_id>`` (field: position, value: the slot's features), kept for
``pending_ttl_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from recsys.exploration.features import DIMENSION
from recsys.exploration.linucb import LinUCBState

KEY = "recsys:bandit:linucb"
MARK_TTL_S = 2 * 86_400


@dataclass(frozen=True)
class BanditSums:
    """``sum x x^T``, ``sum reward * x``, the slots counted and the last update's time."""

    xtx: np.ndarray
    xtr: np.ndarray
    shown: int
    updated_at: float

    def state(self, ridge: float) -> LinUCBState:
        state = LinUCBState(len(self.xtr), ridge)
        state.a = state.a + self.xtx
        state.b = self.xtr.copy()
        state.updates = self.shown
        return state


class BanditStore:
    def __init__(self, client, key: str = KEY, dimension: int = DIMENSION,
                 pending_ttl_s: float = 86_400.0):
        self.client, self.key, self.dimension = client, key, dimension
        self.pending_ttl_s = pending_ttl_s
        self._upper = np.triu_indices(dimension)

    # -- the statistics ----------------------------------------------------------------------
    def new_ids(self, ids: list[str]) -> list[str]:
        """The ids among ``ids`` never counted before, marked as counted now."""
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for entry in ids:
            pipe.set(f"{self.key}:done:{entry}", 1, nx=True, ex=MARK_TTL_S)
        return [entry for entry, new in zip(ids, pipe.execute()) if new]

    def add(self, xtx: np.ndarray | None, xtr: np.ndarray | None, shown: int = 0) -> None:
        """Add a delta (either part may be None) in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        if xtx is not None:
            for i, j, value in zip(*self._upper, xtx[self._upper]):
                if value:
                    pipe.hincrbyfloat(self.key, f"a:{i},{j}", float(value))
        if xtr is not None:
            for i, value in enumerate(xtr):
                if value:
                    pipe.hincrbyfloat(self.key, f"b:{i}", float(value))
        if shown:
            pipe.hincrbyfloat(self.key, "n", shown)
        pipe.hset(self.key, "t", repr(time.time()))
        pipe.execute()

    def read(self) -> BanditSums | None:
        """The current sums, or None before the first update."""
        raw = self.client.hgetall(self.key)
        if not raw:
            return None
        xtx = np.zeros((self.dimension, self.dimension))
        xtr = np.zeros(self.dimension)
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else field
            number = float(value)
            if name.startswith("a:"):
                i, j = map(int, name[2:].split(","))
                xtx[i, j] = xtx[j, i] = number
            elif name.startswith("b:"):
                xtr[int(name[2:])] = number
        return BanditSums(xtx, xtr, int(float(raw.get(b"n", raw.get("n", 0)) or 0)),
                          float(raw.get(b"t", raw.get("t", 0)) or 0))

    # -- shown slots waiting for rewards -----------------------------------------------------
    def remember(self, shown: dict[str, dict[int, np.ndarray]]) -> None:
        """Keep each request's shown slots' features (request id -> position -> x)."""
        if not shown:
            return
        pipe = self.client.pipeline(transaction=False)
        for request_id, slots in shown.items():
            key = f"{self.key}:shown:{request_id}"
            pipe.hset(key, mapping={str(p): np.asarray(x, "<f8").tobytes()
                                    for p, x in slots.items()})
            pipe.expire(key, int(self.pending_ttl_s))
        pipe.execute()

    def shown_features(self, slots: list[tuple[str, int]]) -> list[np.ndarray | None]:
        """The features of each (request id, position) shown, None where unknown."""
        if not slots:
            return []
        pipe = self.client.pipeline(transaction=False)
        for request_id, position in slots:
            pipe.hget(f"{self.key}:shown:{request_id}", str(position))
        return [None if raw is None else np.frombuffer(raw, "<f8").copy()
                for raw in pipe.execute()]


__all__ = ["BanditStore", "BanditSums", "KEY"]
