"""Metrics of the offline protocol on segments of users or of items.

Guarantees of :func:`segment_metrics`:

* A user segment evaluates only its users (those of them with test items), with the
  definitions of :mod:`recsys.evaluation.metrics`; its coverage counts their top-K lists only.
* An item segment keeps the full rankings and restricts each user's test set to the segment's
  items; only users who still have test items are evaluated. Recall@K is then the share of the
  segment's test items found in the full top K. Its coverage@K is the share of the segment's
  items that appear in the top K of those users.
* A segment with no user to evaluate maps to ``{"users": 0}`` and no metric, so that reports
  never hold NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from recsys.evaluation.metrics import (
    DEFAULT_KS,
    average_metrics,
    check_mask,
    per_user_metrics,
)

__all__ = ["recent_items", "segment_metrics", "short_history_users"]

SECONDS_PER_DAY = 86_400


def segment_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    n_candidates: int,
    user_segments: Mapping[str, np.ndarray] | None = None,
    item_segments: Mapping[str, np.ndarray] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Evaluate each user segment and each item segment separately.

    Args:
        ranked: int [U, K_max] candidate indices, best first; ``-1`` is padding.
        relevant: U integer arrays of each user's test-item candidate indices.
        n_candidates: the number of candidate items N.
        user_segments: segment name -> bool [U] mask of the users in the segment.
        item_segments: segment name -> bool [N] mask of the candidate items in the segment.
        ks: the cut-offs K to report.

    Returns:
        segment name -> the same keys as
        :func:`~recsys.evaluation.metrics.ranking_metrics` (``"recall@10"`` ...,
        ``"coverage@10"`` ..., ``"users"``), or ``{"users": 0}`` for a segment with no user
        to evaluate.

    Raises:
        ValueError: on malformed ranked/relevant/ks (as ``per_user_metrics``), a mask of the
            wrong dtype or length, or a name used by a user and an item segment alike.
    """
    ks = tuple(ks)
    user_segments = dict(user_segments or {})
    item_segments = dict(item_segments or {})
    shared = sorted(set(user_segments) & set(item_segments))
    if shared:
        raise ValueError(
            f"segment names {shared} are used by both user_segments and item_segments; "
            "give each segment its own name"
        )
    per_user = per_user_metrics(ranked, relevant, n_candidates, ks)  # validates the inputs
    ranked = np.asarray(ranked)
    n_users = ranked.shape[0]
    result = {}
    for name, mask in user_segments.items():
        users = check_mask(f"user_segments[{name!r}]", mask, n_users, "users")
        result[name] = average_metrics(per_user, ranked, n_candidates, ks, users=users)
    for name, mask in item_segments.items():
        items = check_mask(f"item_segments[{name!r}]", mask, n_candidates, "candidate items")
        in_segment = [np.asarray(test)[items[np.asarray(test, dtype=np.int64)]]
                      for test in relevant]
        restricted = per_user_metrics(ranked, in_segment, n_candidates, ks)
        result[name] = average_metrics(restricted, ranked, n_candidates, ks, items=items)
    return result


def short_history_users(history_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Mask of the users whose history (e.g. train interactions) has at most ``max_length`` items.

    Args:
        history_lengths: int [U], each user's history length (>= 0).
        max_length: the longest history that still counts as short (>= 0).

    Returns:
        bool [U], True where ``history_lengths <= max_length``.

    Raises:
        ValueError: if ``history_lengths`` is not 1-D non-negative integers or ``max_length``
            is not an integer >= 0.
    """
    lengths = np.asarray(history_lengths)
    if lengths.ndim != 1 or (lengths.size and lengths.dtype.kind not in "iu"):
        raise ValueError(
            f"history_lengths must be a 1-D integer array, got dtype {lengths.dtype} and shape "
            f"{lengths.shape}"
        )
    if lengths.size and lengths.min() < 0:
        raise ValueError(f"history_lengths holds a negative length {lengths.min()}")
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or (
        max_length < 0
    ):
        raise ValueError(f"max_length must be an integer >= 0, got {max_length!r}")
    return lengths <= max_length


def recent_items(created_at_s: np.ndarray, reference_s: float, days: float) -> np.ndarray:
    """Mask of the items added at most ``days`` days before ``reference_s`` (or later).

    Args:
        created_at_s: float or int [N], each candidate item's creation time in Unix seconds
            (NaN = unknown, never recent).
        reference_s: the reference time in Unix seconds, e.g. the split time.
        days: the window length in days (> 0).

    Returns:
        bool [N], True where ``created_at_s >= reference_s - days * 86400``.

    Raises:
        TypeError: if ``reference_s`` or ``days`` is not a number.
        ValueError: if ``created_at_s`` is not a 1-D real array, or ``reference_s`` or ``days``
            is not finite, or ``days`` <= 0.
    """
    created = np.asarray(created_at_s)
    if created.ndim != 1 or (created.size and created.dtype.kind not in "iuf"):
        raise ValueError(
            f"created_at_s must be a 1-D array of Unix seconds, got dtype {created.dtype} and "
            f"shape {created.shape}"
        )
    for name, value in (("reference_s", reference_s), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if days <= 0:
        raise ValueError(f"days must be > 0, got {days!r}")
    return created >= reference_s - days * SECONDS_PER_DAY
