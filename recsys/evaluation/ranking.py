"""Exact top-k ranking of a score matrix, with per-user exclusions.

Guarantees of :func:`top_k`:

* Exact: the result equals a full stable sort by descending score (ties broken by the lower
  candidate index), but costs O(N) per user (a partition, then a sort of the k chosen).
* Deterministic: the same scores give the same ranking on every run and machine.
* Excluded candidates never appear. A user left with fewer than k candidates gets a row padded
  with ``-1`` at the end. Every other candidate can be ranked, even one scored ``-inf``.
* Memory stays bounded: users are ranked in row chunks, so only ``chunk_size x N`` scores are
  copied at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NonFiniteScores(ValueError):
    """Scores holding NaN: a model whose training diverged."""

__all__ = ["top_k", "NonFiniteScores"]

PADDING = -1


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None = None,
    *,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Return the k best candidates of each user, best first.

    Args:
        scores: float [U, N], the score of each candidate item for each user. NaN is refused.
        k: how many candidates to return per user, 1 <= k <= N.
        exclude: optional sequence of U integer arrays; ``exclude[u]`` holds candidate indices
            (0 <= index < N) that must not be recommended to user u, such as the user's train
            items. Duplicates are allowed.
        chunk_size: how many users are ranked at a time (bounds the memory used).

    Returns:
        int64 [U, k]: candidate indices sorted by descending score, ties broken by the lower
        index; ``-1`` pads the end of a row whose user has fewer than k candidates left.

    Raises:
        TypeError: if k or chunk_size is not an integer.
        ValueError: if ``scores`` is not a 2-D real matrix or holds NaN, if k is not in
            [1, N], if ``exclude`` has not one array per user or holds an index outside [0, N),
            or if ``chunk_size`` < 1.
    """
    scores = _check_scores(scores)
    n_users, n_items = scores.shape
    k = _check_int("k", k, minimum=1)
    if k > n_items:
        raise ValueError(
            f"k={k} is larger than the number of candidate items N={n_items} "
            f"(scores has shape {scores.shape}); ask for k <= {n_items}"
        )
    chunk_size = _check_int("chunk_size", chunk_size, minimum=1)
    excluded = _check_exclude(exclude, n_users, n_items)
    out = np.empty((n_users, k), dtype=np.int64)
    for start in range(0, n_users, chunk_size):
        stop = min(start + chunk_size, n_users)
        out[start:stop] = _top_k_chunk(scores, start, stop, k, excluded)
    return out


def _top_k_chunk(
    scores: np.ndarray, start: int, stop: int, k: int, excluded: list[np.ndarray] | None
) -> np.ndarray:
    rows = stop - start
    n_items = scores.shape[1]
    key = np.array(scores[start:stop], dtype=np.result_type(scores.dtype, np.float32))
    if np.isnan(key).any():
        row = start + int(np.flatnonzero(np.isnan(key).any(axis=1))[0])
        raise NonFiniteScores(f"scores holds NaN (first in user row {row}); NaN cannot be "
                              "ranked")
    allowed = np.ones((rows, n_items), dtype=bool)
    if excluded is not None:
        lengths = [excluded[u].size for u in range(start, stop)]
        cols = np.concatenate(excluded[start:stop])
        allowed[np.repeat(np.arange(rows), lengths), cols] = False
        key[~allowed] = -np.inf
    # The k-th largest key of each row (an O(N) partition). Everything above it is in the top k;
    # the remaining places go to the allowed candidates equal to it, lowest index first.
    threshold = -np.partition(-key, k - 1, axis=1)[:, k - 1 : k]
    above = key > threshold
    tied = allowed & (key == threshold)
    places = k - above.sum(axis=1, keepdims=True)
    chosen = above | tied
    too_many = np.flatnonzero(tied.sum(axis=1) > places[:, 0])
    if too_many.size:
        keep = np.cumsum(tied[too_many], axis=1) <= places[too_many]
        chosen[too_many] = above[too_many] | (tied[too_many] & keep)
    # Lay out the chosen candidates (at most k per row, in index order), pad, then sort each row
    # by descending score; the sort is stable, so equal scores stay in index order.
    row_of, col_of = np.nonzero(chosen)
    slot = np.cumsum(chosen, axis=1)[row_of, col_of] - 1
    index = np.full((rows, k), n_items, dtype=np.int64)
    index[row_of, slot] = col_of
    value = np.full((rows, k), -np.inf, dtype=key.dtype)
    value[row_of, slot] = key[row_of, col_of]
    order = np.argsort(-value, axis=1, kind="stable")
    ranked = np.take_along_axis(index, order, axis=1)
    ranked[ranked == n_items] = PADDING
    return ranked


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(
            f"scores must be a 2-D [users, candidates] matrix, got {scores.ndim}-D with shape "
            f"{scores.shape}"
        )
    if scores.dtype == bool or scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must hold real numbers, got dtype {scores.dtype}")
    return scores


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_exclude(
    exclude: Sequence[np.ndarray] | None, n_users: int, n_items: int
) -> list[np.ndarray] | None:
    if exclude is None:
        return None
    if len(exclude) != n_users:
        raise ValueError(
            f"exclude must hold one array per user: got {len(exclude)} arrays for {n_users} "
            "score rows"
        )
    arrays = []
    for user, items in enumerate(exclude):
        items = np.asarray(items)
        if items.size == 0:
            arrays.append(np.empty(0, dtype=np.int64))
            continue
        if items.ndim != 1 or items.dtype.kind not in "iu":
            raise ValueError(
                f"exclude[{user}] must be a 1-D integer array of candidate indices, got dtype "
                f"{items.dtype} and shape {items.shape}"
            )
        if items.min() < 0 or items.max() >= n_items:
            bad = items[(items < 0) | (items >= n_items)][0]
            raise ValueError(
                f"exclude[{user}] holds candidate index {bad}, outside [0, {n_items})"
            )
        arrays.append(items.astype(np.int64, copy=False))
    return arrays
