"""A linear contextual bandit's parameters (LinUCB with one shared model over item-context
features, Li, Chu, Langford & Schapire, WWW 2010, "hybrid"-free form).

The state is ridge regression's sufficient statistics: ``A = ridge * I + sum x x^T`` and
``b = sum reward * x`` over every shown explored slot ``x``. An exposure adds ``x x^T`` to
``A`` when it is shown (a reward of 0 until one comes) and its reward adds ``reward * x`` to
``b`` when it comes, in any order: the statistics are sums, so updates commute, merge across
workers, and a reward that arrives late is still counted exactly once by its caller.

``LinUCBSnapshot`` is an immutable view for serving: ``theta = A^-1 b`` and ``A^-1``, with
the upper confidence bound ``x theta + alpha sqrt(x A^-1 x)`` of each row of features.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_HEADER = struct.Struct("<4sIqd")  # magic, dimension, updates, ridge
_MAGIC = b"LUCB"


@dataclass(frozen=True)
class LinUCBSnapshot:
    theta: np.ndarray
    a_inv: np.ndarray
    updates: int = 0

    def upper_bounds(self, features: np.ndarray, alpha: float) -> np.ndarray:
        """``x theta + alpha sqrt(x A^-1 x)`` per row of ``features``."""
        x = np.asarray(features, dtype=np.float64)
        width = np.sqrt(np.maximum(((x @ self.a_inv) * x).sum(axis=1), 0.0))
        return x @ self.theta + alpha * width


class LinUCBState:
    """``A`` and ``b`` of one bandit; ``dimension`` features, ``ridge`` its prior."""

    def __init__(self, dimension: int, ridge: float = 1.0):
        if dimension <= 0 or not ridge > 0:
            raise ValueError(f"a bandit needs dimension > 0 and ridge > 0, got {dimension}, "
                             f"{ridge}")
        self.dimension, self.ridge = dimension, float(ridge)
        self.a = ridge * np.eye(dimension)
        self.b = np.zeros(dimension)
        self.updates = 0

    def show(self, features: np.ndarray) -> None:
        """Count shown slots (rows of ``features``) as observations of reward 0 so far."""
        x = self._rows(features)
        self.a += x.T @ x
        self.updates += len(x)

    def reward(self, features: np.ndarray, rewards: np.ndarray) -> None:
        """Add the rewards of shown slots (rows of ``features``)."""
        x = self._rows(features)
        self.b += x.T @ np.asarray(rewards, dtype=np.float64).reshape(-1)

    def _rows(self, features: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.dimension:
            raise ValueError(f"features have {x.shape[1]} columns, the bandit "
                             f"{self.dimension}")
        if not np.isfinite(x).all():
            raise ValueError("features must be finite")
        return x

    def snapshot(self) -> LinUCBSnapshot:
        a_inv = np.linalg.inv(self.a)
        return LinUCBSnapshot(a_inv @ self.b, a_inv, self.updates)

    def to_bytes(self) -> bytes:
        return (_HEADER.pack(_MAGIC, self.dimension, self.updates, self.ridge)
                + self.a.astype("<f8").tobytes() + self.b.astype("<f8").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "LinUCBState":
        magic, dimension, updates, ridge = _HEADER.unpack_from(data)
        size = _HEADER.size + 8 * (dimension * dimension + dimension)
        if magic != _MAGIC or len(data) != size:
            raise ValueError(f"not a LinUCB state ({len(data)} bytes)")
        state = cls(dimension, ridge)
        body = np.frombuffer(data, dtype="<f8", offset=_HEADER.size)
        state.a = body[:dimension * dimension].reshape(dimension, dimension).copy()
        state.b = body[dimension * dimension:].copy()
        state.updates = updates
        return state


__all__ = ["LinUCBState", "LinUCBSnapshot"]
