"""Ranking metrics of the offline protocol (shared/EVALUATION.md, v1), vectorised in NumPy.

Guarantees:

* The definitions are exactly the protocol's. For a user u with test set T_u and ranked list
  r_1..r_K, with rel_i = 1 if r_i is in T_u else 0 and m = min(K, |T_u|):
  Recall@K = sum_i rel_i / m; NDCG@K = (sum_i rel_i / log2(i + 1)) / (sum_{i<=m} 1 / log2(i + 1));
  MAP@K = (sum_i P@i * rel_i) / m, with P@i the precision of the first i items.
* Users with an empty test set are skipped; every evaluated user weighs the same.
* ``-1`` in a ranked list is padding and is never relevant. A test set counts distinct items.
* Coverage@K = distinct items in the top K of the evaluated users / candidate items.
* Work is vectorised over users (a boolean hit matrix) and done in row chunks, so 100,000 users
  x 100 ranks takes seconds and bounded memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_KS",
    "METRIC_NAMES",
    "average_metrics",
    "catalog_coverage",
    "per_user_metrics",
    "ranking_metrics",
]

METRIC_NAMES = ("recall", "ndcg", "map")
DEFAULT_KS = (10, 20, 100)

_CHUNK_USERS = 8192


def ranking_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    n_candidates: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Average the protocol's metrics over the users that have test items.

    Args:
        ranked: int [U, K_max] candidate indices, best first; ``-1`` is padding.
            K_max must be >= max(ks).
        relevant: U integer arrays; ``relevant[u]`` holds the candidate indices of user u's test
            items (may be empty: the user is then skipped).
        n_candidates: the number of candidate items N; every index must lie in [0, N).
        ks: the cut-offs K to report.

    Returns:
        ``{"recall@K", "ndcg@K", "map@K", "coverage@K"}`` as floats for every K in ks, and
        ``"users"``: the number of users evaluated (an int).

    Raises:
        ValueError: on malformed input (see :func:`per_user_metrics`), or if no user has a
            test item.
    """
    ks = tuple(ks)
    per_user = per_user_metrics(ranked, relevant, n_candidates, ks)
    result = average_metrics(per_user, ranked, n_candidates, ks)
    if result["users"] == 0:
        raise ValueError(
            f"no user can be evaluated: all {len(relevant)} users have an empty relevant "
            "(test) set; check the split and that test items are mapped to candidate indices"
        )
    return result


def average_metrics(
    per_user: Mapping[str, np.ndarray],
    ranked: np.ndarray,
    n_candidates: int,
    ks: Sequence[int] = DEFAULT_KS,
    users: np.ndarray | None = None,
    items: np.ndarray | None = None,
) -> dict[str, float]:
    """Average per-user metrics over the evaluated users, and add their catalogue coverage.

    Args:
        per_user: the output of :func:`per_user_metrics` for ``ranked`` and these ks.
        ranked: int [U, K_max], the rankings the per-user metrics were computed from.
        n_candidates: the number of candidate items N.
        ks: the cut-offs K (a subset of those in ``per_user``).
        users: optional bool [U] mask; only these users count (besides, users with NaN
            metrics, i.e. an empty test set, never count).
        items: optional bool [N] mask passed to :func:`catalog_coverage`.

    Returns:
        The keys of :func:`ranking_metrics`, or ``{"users": 0}`` when no user is evaluated.
    """
    ks = tuple(ks)
    missing = [f"{name}@{k}" for k in ks for name in METRIC_NAMES if f"{name}@{k}" not in per_user]
    if not ks or missing:
        raise ValueError(
            f"per_user lacks {missing or 'any cut-off'} for ks={ks}; compute it with "
            "per_user_metrics(..., ks) for the same ks"
        )
    ranked = np.asarray(ranked)
    evaluated = ~np.isnan(per_user[f"{METRIC_NAMES[0]}@{ks[0]}"])
    if users is not None:
        evaluated &= check_mask("users", users, ranked.shape[0], "users")
    count = int(evaluated.sum())
    if count == 0:
        return {"users": 0}
    coverage = catalog_coverage(ranked[evaluated], n_candidates, ks, items=items)
    result: dict[str, float] = {}
    for k in ks:
        for name in METRIC_NAMES:
            result[f"{name}@{k}"] = float(per_user[f"{name}@{k}"][evaluated].mean())
        result[f"coverage@{k}"] = coverage[f"coverage@{k}"]
    result["users"] = count
    return result


def per_user_metrics(
    ranked: np.ndarray,
    relevant: Sequence[np.ndarray],
    n_candidates: int,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, np.ndarray]:
    """Compute each user's metrics, e.g. for segments, paired tests or bootstrap intervals.

    Args:
        ranked: int [U, K_max] candidate indices, best first; ``-1`` is padding. A row must not
            repeat an item. K_max must be >= max(ks).
        relevant: U integer arrays of test-item candidate indices (duplicates count once).
        n_candidates: the number of candidate items N; every index must lie in [0, N).
        ks: the cut-offs K, each in [1, K_max].

    Returns:
        ``{"recall@K", "ndcg@K", "map@K"}`` for every K in ks, each float64 [U]; NaN for users
        with an empty relevant set (never raises for that: the caller decides).

    Raises:
        ValueError: naming the argument, if ``ranked`` is not a 2-D integer matrix, holds an
            index outside [-1, N) or repeats an item in a row, if ``relevant`` has not one
            integer array per user or holds an index outside [0, N), or if a K is not an
            integer in [1, K_max].
    """
    n_candidates = _check_n_candidates(n_candidates)
    ranked = _check_ranked(ranked, n_candidates)
    ks = _check_ks(ks, ranked.shape[1])
    n_users = ranked.shape[0]
    keys, n_relevant = _relevant_keys(relevant, n_users, n_candidates)
    depth = max(ks)
    discount = 1.0 / np.log2(np.arange(2, depth + 2))
    ideal_dcg = np.cumsum(discount)
    out = {f"{name}@{k}": np.full(n_users, np.nan) for k in ks for name in METRIC_NAMES}
    for start in range(0, n_users, _CHUNK_USERS):
        stop = min(start + _CHUNK_USERS, n_users)
        rows = ranked[start:stop, :depth]
        users = np.arange(start, stop, dtype=np.int64)[:, None]
        hit = _is_relevant(users * n_candidates + rows, keys) & (rows >= 0)
        hits = np.cumsum(hit, axis=1)
        dcg = np.cumsum(hit * discount, axis=1)
        # P@i * rel_i summed over i: precision at each hit position.
        ap = np.cumsum(hit * hits / np.arange(1, depth + 1), axis=1)
        size = n_relevant[start:stop]
        seen = size > 0
        for k in ks:
            m = np.minimum(k, size)[seen]
            out[f"recall@{k}"][start:stop][seen] = hits[seen, k - 1] / m
            out[f"ndcg@{k}"][start:stop][seen] = dcg[seen, k - 1] / ideal_dcg[m - 1]
            out[f"map@{k}"][start:stop][seen] = ap[seen, k - 1] / m
    return out


def catalog_coverage(
    ranked: np.ndarray,
    n_candidates: int,
    ks: Sequence[int] = DEFAULT_KS,
    items: np.ndarray | None = None,
) -> dict[str, float]:
    """Share of the catalogue that appears in the top K of at least one ranked list.

    Args:
        ranked: int [U, K_max] candidate indices, best first; ``-1`` is padding.
        n_candidates: the number of candidate items N.
        ks: the cut-offs K, each in [1, K_max].
        items: optional bool [N] mask; when given, only these items count, over their number
            (the coverage of an item segment).

    Returns:
        ``{"coverage@K": distinct counted items in the top K / counted items}`` for every K.

    Raises:
        ValueError: on malformed ``ranked``, ``ks`` or ``items``, or if ``items`` is empty.
    """
    n_candidates = _check_n_candidates(n_candidates)
    ranked = _check_ranked(ranked, n_candidates, check_repeats=False)
    ks = _check_ks(ks, ranked.shape[1])
    if items is None:
        counted = np.ones(n_candidates, dtype=bool)
    else:
        counted = check_mask("items", items, n_candidates, "candidate items")
        if not counted.any():
            raise ValueError("items selects no candidate item; coverage of nothing is undefined")
    total = int(counted.sum())
    result = {}
    for k in ks:
        shown = np.zeros(n_candidates, dtype=bool)
        top = ranked[:, :k]
        shown[top[top >= 0]] = True
        result[f"coverage@{k}"] = int((shown & counted).sum()) / total
    return result


def check_mask(name: str, mask: np.ndarray, size: int, what: str) -> np.ndarray:
    """Return ``mask`` as a bool array after checking it is 1-D bool of length ``size``."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != (size,):
        raise ValueError(
            f"{name} must be a 1-D bool mask over the {size} {what}, got dtype {mask.dtype} "
            f"and shape {mask.shape}"
        )
    return mask


def _is_relevant(pair_keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(pair_keys.shape, dtype=bool)
    where = np.searchsorted(sorted_keys, pair_keys)
    return sorted_keys[np.minimum(where, sorted_keys.size - 1)] == pair_keys


def _relevant_keys(
    relevant: Sequence[np.ndarray], n_users: int, n_candidates: int
) -> tuple[np.ndarray, np.ndarray]:
    """Encode (user, item) test pairs as sorted unique ``user * N + item`` keys; count per user."""
    if len(relevant) != n_users:
        raise ValueError(
            f"relevant must hold one array per user: got {len(relevant)} arrays for {n_users} "
            "ranked rows"
        )
    arrays = [np.asarray(items) for items in relevant]
    for user, items in enumerate(arrays):
        if items.size and (items.ndim != 1 or items.dtype.kind not in "iu"):
            raise ValueError(
                f"relevant[{user}] must be a 1-D integer array of candidate indices, got dtype "
                f"{items.dtype} and shape {items.shape}"
            )
    lengths = np.fromiter((items.size for items in arrays), dtype=np.int64, count=n_users)
    if lengths.sum() == 0:
        return np.empty(0, dtype=np.int64), np.zeros(n_users, dtype=np.int64)
    flat = np.concatenate([items.astype(np.int64) for items in arrays if items.size])
    bad = (flat < 0) | (flat >= n_candidates)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        user = int(np.searchsorted(np.cumsum(lengths), position, side="right"))
        raise ValueError(
            f"relevant[{user}] holds candidate index {flat[position]}, outside "
            f"[0, {n_candidates}); map test items to candidate indices first"
        )
    keys = np.sort(np.repeat(np.arange(n_users, dtype=np.int64), lengths) * n_candidates + flat)
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # a test set is a set
    return keys, np.bincount(keys // n_candidates, minlength=n_users)


def _check_ranked(
    ranked: np.ndarray, n_candidates: int, check_repeats: bool = True
) -> np.ndarray:
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(
            f"ranked must be a 2-D [users, K] matrix of candidate indices, got {ranked.ndim}-D "
            f"with shape {ranked.shape}"
        )
    if ranked.dtype.kind not in "iu":
        raise ValueError(f"ranked must hold integer candidate indices, got dtype {ranked.dtype}")
    if ranked.size and (ranked.min() < -1 or ranked.max() >= n_candidates):
        bad = ranked[(ranked < -1) | (ranked >= n_candidates)][0]
        raise ValueError(
            f"ranked holds index {bad}, outside [0, {n_candidates}) and not the padding -1"
        )
    ranked = ranked.astype(np.int64, copy=False)
    if check_repeats and ranked.shape[1] > 1:
        ordered = np.sort(ranked, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if repeated.any():
            user, col = (int(i[0]) for i in np.nonzero(repeated))
            raise ValueError(
                f"ranked row {user} lists item {ordered[user, col + 1]} more than once; a "
                "ranking must not repeat an item"
            )
    return ranked


def _check_ks(ks: Sequence[int], width: int) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks is empty; give at least one cut-off K, e.g. (10, 20, 100)")
    for k in ks:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"every K in ks must be an integer >= 1, got {k!r} in ks={ks}")
        if k > width:
            raise ValueError(
                f"K={k} in ks is larger than the ranked lists' width K_max={width}; rank at "
                f"least {max(ks)} items per user or drop K={k}"
            )
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks repeats a cut-off: {ks}")
    return tuple(int(k) for k in ks)


def _check_n_candidates(n_candidates: int) -> int:
    if (
        isinstance(n_candidates, (bool, np.bool_))
        or not isinstance(n_candidates, (int, np.integer))
        or n_candidates < 1
    ):
        raise ValueError(f"n_candidates must be an integer >= 1, got {n_candidates!r}")
    return int(n_candidates)
