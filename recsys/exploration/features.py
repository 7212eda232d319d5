"""The contextual bandit's features of one item in one request: what it knows when it picks
an item for an exploration slot.

Per item of the ranked list: a constant, its rank as a share of the list, its score
standardised within the list, its age (under a day, a week, a month, older, unknown), whether
it came from the fresh-item index, whether its category is among the user's recent ones (the
session and history), and its category hashed into ``CATEGORY_BUCKETS`` (CRC-32, stable
across processes and versions). ``DIMENSION`` columns, all finite.

The same function builds the features in the service (for the choice), in the exposure log
(for the stream worker's updates) and in off-policy evaluation, so the three agree.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Collection, Sequence

import numpy as np

CATEGORY_BUCKETS = 16
AGE_EDGES_DAYS = (1.0, 7.0, 30.0)
_FIXED = 6  # constant, rank share, score, fresh, recent category, age unknown
DIMENSION = _FIXED + len(AGE_EDGES_DAYS) + 1 + CATEGORY_BUCKETS
FRESH_COLUMN, UNDER_A_DAY_COLUMN = 3, _FIXED  # from the fresh-item index; age < 1 day


@functools.lru_cache(maxsize=65_536)
def category_bucket(category: str) -> int:
    return zlib.crc32(category.encode("utf-8")) % CATEGORY_BUCKETS


def bandit_features(scores: Sequence[float], categories: Sequence[str],
                    ages_s: Sequence[float | None], sources: Sequence[str],
                    recent_categories: Collection[str]) -> np.ndarray:
    """``(len(scores), DIMENSION)`` features of a ranked list's items (best first)."""
    n = len(scores)
    x = np.zeros((n, DIMENSION))
    if n == 0:
        return x
    s = np.asarray(scores, dtype=np.float64)
    spread = s.std()
    x[:, 0] = 1.0
    x[:, 1] = np.arange(n) / max(n - 1, 1)
    x[:, 2] = (s - s.mean()) / spread if spread > 0 else 0.0
    x[:, 3] = [source == "fresh" for source in sources]
    x[:, 4] = [c in recent_categories for c in categories]
    ages = np.array([np.nan if a is None else a for a in ages_s], dtype=np.float64)
    known = ~np.isnan(ages)
    rows = np.arange(n)
    x[rows[~known], 5] = 1.0
    buckets = np.searchsorted(AGE_EDGES_DAYS, ages[known] / 86_400.0)
    x[rows[known], _FIXED + buckets] = 1.0
    base = _FIXED + len(AGE_EDGES_DAYS) + 1
    x[rows, base + np.fromiter((category_bucket(c or "") for c in categories), dtype=np.int64,
                               count=n)] = 1.0
    return x


def new_items(features: np.ndarray) -> np.ndarray:
    """Per item of ``bandit_features``' list: True for a new item (from the fresh-item index,
    or created less than a day ago)."""
    features = np.asarray(features)
    return (features[:, FRESH_COLUMN] > 0) | (features[:, UNDER_A_DAY_COLUMN] > 0)


__all__ = ["bandit_features", "new_items", "DIMENSION", "CATEGORY_BUCKETS", "category_bucket"]
