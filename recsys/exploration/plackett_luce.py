"""Plackett-Luce lists: sampling, and the exact probability of each item at each position.

Plackett-Luce with weights ``w`` fills position 0 with item ``i`` with probability
``w_i / sum(w)``, then position 1 from the items left in the same way, and so on. Sampling is
the Gumbel-top-k trick (sort ``log w + Gumbel noise``), which has exactly that law.

The marginal probability of item ``i`` at position ``j`` has no closed form: it is a sum over
the ordered lists of items placed before it, exponential in ``j``. For the first few
positions (at most ``PREFIX_BUDGET`` prefixes: three positions of a 40-item window, the usual
exploration slots) that sum is computed as it stands, vectorised over the prefixes
(``_by_prefixes``: exact up to rounding, about 0.1 ms). Beyond, from the exponential-race picture of
the model: every item arrives at an independent time ``T_m ~ Exp(w_m)`` and the list is the
order of arrival, so

    P(i at j) = integral over t of  w_i exp(-w_i t) * P(exactly j others arrived by t) dt,

where the count of arrivals among the others is a Poisson-binomial variable (a dynamic
programme over the items). In log time ``t = exp(s)`` the integrand is smooth and falls off
exponentially at both ends, so the trapezoidal rule on a uniform grid converges
exponentially: with the grid used here the marginals agree with enumeration of every
permutation to better than 1e-10 (tests), which is deterministic quadrature, not sampling.

Guarantees: weights are relative (scaling them changes nothing); items of weight 0 never
appear in a sample and have probability 0 at every position; ``marginals`` rows sum to 1 over
items for every position a sample fills and columns to at most 1 over positions.
"""

from __future__ import annotations

import numpy as np

# relative weights below this are raised to it (a score gap of 30 temperatures): the
# quadrature grid must reach their arrival times; their probabilities stay below 1e-13
MIN_RELATIVE_WEIGHT = float(np.exp(-30.0))
_STEP = 0.4  # log-time grid step: the error falls like exp(-2 pi (pi/2) / step)
_LOW_S = -23.0  # the mass of an item's arrival before exp(-23) is below 1e-10
_HIGH_MARGIN = float(np.log(36.0))  # exp(-36) of the lightest item is left after this
PREFIX_BUDGET = 5_000  # most ordered prefixes summed over directly, rather than quadrature


def relative_weights(log_weights: np.ndarray) -> np.ndarray:
    """``exp(log_weights)`` scaled so the largest is 1, floored at ``MIN_RELATIVE_WEIGHT``;
    ``-inf`` (never chosen) stays 0."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    finite = np.isfinite(log_weights)
    if not finite.any():
        raise ValueError("at least one item needs a finite log weight")
    weights = np.zeros(len(log_weights))
    weights[finite] = np.maximum(np.exp(log_weights[finite] - log_weights[finite].max()),
                                 MIN_RELATIVE_WEIGHT)
    return weights


def sample(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items drawn one position at a time with probability proportional to
    ``weights`` among those left (Gumbel top-k); ``n`` at most the items of positive
    weight."""
    weights = np.asarray(weights, dtype=np.float64)
    if n > int((weights > 0).sum()):
        raise ValueError(f"cannot fill {n} positions from {int((weights > 0).sum())} items "
                         "of positive weight")
    with np.errstate(divide="ignore"):
        keys = np.log(weights) + rng.gumbel(size=len(weights))
    return np.argsort(-keys, kind="stable")[:n]


def sequence_probabilities(weights: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each position ``j`` of ``order``: P(position ``j`` takes ``order[j]`` | the items
    placed before it), the chance of the list's step."""
    weights = np.asarray(weights, dtype=np.float64)
    chosen = weights[np.asarray(order, dtype=np.int64)]
    left = weights.sum() - np.concatenate(([0.0], np.cumsum(chosen)[:-1]))
    return chosen / np.maximum(left, 1e-300)


def marginals(weights: np.ndarray, n: int, items: np.ndarray | None = None) -> np.ndarray:
    """``(n, len(items))``: P(item at position j) for the first ``n`` positions, for the items
    of index ``items`` (default: all; asking for fewer costs less)."""
    weights = np.asarray(weights, dtype=np.float64)
    items = np.arange(len(weights)) if items is None else np.asarray(items, dtype=np.int64)
    positive = weights > 0
    if n > int(positive.sum()):
        raise ValueError(f"cannot fill {n} positions from {int(positive.sum())} items of "
                         "positive weight")
    out = np.zeros((n, len(items)))
    if n == 0 or not len(items):
        return out
    kept = np.flatnonzero(positive)
    w_all = weights / weights[kept].max()
    at = np.searchsorted(kept, items)  # each asked item's place among the kept ones
    wanted = (at < len(kept)) & (kept[np.minimum(at, len(kept) - 1)] == items)
    asked = np.unique(items[wanted])
    if len(kept) == 1:
        out[0, wanted] = 1.0
        return out
    by_prefixes = len(kept) ** (n - 1) <= PREFIX_BUDGET
    probabilities = (_by_prefixes if by_prefixes else _by_quadrature)(w_all, kept, asked, n)
    out[:, wanted] = probabilities[:, np.searchsorted(asked, items[wanted])]
    return out


def _by_prefixes(w_all: np.ndarray, kept: np.ndarray, asked: np.ndarray, n: int
                 ) -> np.ndarray:
    """``(n, len(asked))`` by the sum over every ordered prefix of each position: a prefix
    of probability ``p`` leaving weight ``L`` puts item ``i`` next with ``p w_i / L`` when
    ``i`` is not in it. Sums of positive terms only (no cancellation, whatever the
    weights' spread)."""
    w = w_all[kept]
    at = np.searchsorted(kept, asked)
    out = np.zeros((n, len(asked)))
    left_out = np.ones((1, len(kept)))  # per prefix: 1 for the items not in it, else 0
    chance = np.ones(1)  # per prefix: its probability
    for j in range(n):
        share = chance / (left_out @ w)
        out[j] = w[at] * (share @ left_out[:, at])
        if j == n - 1:
            break
        prefix, item = np.nonzero(left_out)  # every prefix extended by every item left
        chance = share[prefix] * w[item]
        left_out = left_out[prefix]
        left_out[np.arange(len(item)), item] = 0.0
    return np.clip(out, 0.0, 1.0)


def _by_quadrature(w_all: np.ndarray, kept: np.ndarray, asked: np.ndarray, n: int
                   ) -> np.ndarray:
    """``(n, len(asked))`` by the exponential race (the module's docstring)."""
    rest = np.setdiff1d(kept, asked)
    high = _HIGH_MARGIN - np.log(w_all[asked].min())
    t = np.exp(np.arange(_LOW_S, high + _STEP, _STEP))
    # arrivals by time t (grid, items): the other items first, one count distribution for all
    rest_waiting = np.exp(-np.outer(t, w_all[rest]))
    rest_arrived = -np.expm1(-np.outer(t, w_all[rest]))
    counts = np.zeros((len(t), n))  # P(exactly c of the rest arrived by t), c < n
    counts[:, 0] = 1.0
    for m in range(len(rest)):
        shifted = counts[:, :-1] * rest_arrived[:, m, None]
        counts *= rest_waiting[:, m, None]
        counts[:, 1:] += shifted
    # then the asked items: for each, the count among the rest and the asked items before it
    # (``before``) convolved with the count among the asked items after it (``after``)
    waiting = np.exp(-np.outer(w_all[asked], t))  # (asked, grid)
    arrived = -np.expm1(-np.outer(w_all[asked], t))
    r = len(asked)
    before = np.zeros((r + 1, len(t), n))
    before[0] = counts
    after = np.zeros((r + 1, len(t), n))
    after[r, :, 0] = 1.0
    for m in range(r):
        before[m + 1] = before[m] * waiting[m, :, None]
        before[m + 1, :, 1:] += before[m, :, :-1] * arrived[m, :, None]
        back = r - 1 - m
        after[back] = after[back + 1] * waiting[back, :, None]
        after[back, :, 1:] += after[back + 1, :, :-1] * arrived[back, :, None]
    others = np.zeros((r, len(t), n))  # (asked, grid, c): exactly c others arrived by t
    for a in range(n):
        others[:, :, a:] += before[:r, :, a, None] * after[1:, :, :n - a]
    # d/ds of the item's own arrival, w t exp(-w t), times the step (trapezoid in s)
    density = t[None, :] * w_all[asked, None] * waiting * _STEP
    return np.clip(np.einsum("ig,igj->ji", density, others), 0.0, 1.0)


__all__ = ["MIN_RELATIVE_WEIGHT", "PREFIX_BUDGET", "relative_weights", "sample",
           "sequence_probabilities", "marginals"]
