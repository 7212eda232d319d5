"""Exploration policies on a ranked list, with the exact probability of what they show.

The input is the ranked list the service would show, best first (its ``scores``, and for
the bandit each item's context features), longer than the answer: ``k`` slots are filled
from its first ``pool`` items (and the ``other_categories`` items that follow them, when the
spec takes some). ``choose`` draws an answer with a generator seeded per
request (the same seed, the same answer); ``marginals`` gives, for every item and slot, the
probability that the policy shows that item in that slot; ``step_probabilities`` gives, for
a given answer, the probability of each slot's item given the slots above it (their running
product is the probability of the answer's first slots, the cascade propensity).

Guarantees: the probabilities are computed, not estimated: closed forms for ``none`` and
``epsilon-greedy``, Plackett-Luce's (``plackett_luce.marginals``, deterministic quadrature
within 1e-8) for the others; ``choose`` draws from exactly that law (tests sample each policy
and compare frequencies); an answer never holds an item twice and holds ``min(k, len(list))``
items; at most ``spec.explorable_slots(k)`` slots differ from the ranked list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from recsys.exploration import plackett_luce
from recsys.exploration.features import new_items
from recsys.exploration.spec import EPSILON_GREEDY, LINUCB, NONE, UNIFORM, PolicySpec


@dataclass(frozen=True)
class Slate:
    """A drawn answer: ``order[j]`` is the index (in the ranked list) of the item in slot
    ``j``; ``propensity[j]`` = P(that item in slot j); ``cascade[j]`` = P(slots 0..j as
    shown); ``explored[j]``: the slot shows another item than the ranked list's."""

    order: np.ndarray
    propensity: np.ndarray
    cascade: np.ndarray

    @property
    def explored(self) -> np.ndarray:
        return self.order != np.arange(len(self.order))


class Policy:
    """The law of one ``PolicySpec`` over ranked lists; ``bandit`` (for ``linucb``) scores
    items from their features (``LinUCBSnapshot``)."""

    def __init__(self, spec: PolicySpec, bandit=None):
        if spec.policy == LINUCB and bandit is None:
            raise ValueError("a linucb policy needs the bandit's parameters")
        self.spec, self.bandit = spec, bandit

    @property
    def needs_features(self) -> bool:
        """True when the law depends on the items' ``bandit_features`` (then every method
        must be given them)."""
        return self.spec.policy == LINUCB or self.spec.new_item_bonus > 0

    # -- the shape of an answer ------------------------------------------------------------
    def _sizes(self, n_items: int, k: int) -> tuple[int, int, int]:
        """(slots filled, explorable slots, items drawn from: the list's first ``pool`` and
        the ``other_categories`` items after them)."""
        slots = min(k, n_items)
        drawn_from = min(n_items, max(self.spec.pool, slots) + self.spec.other_categories)
        return slots, self.spec.explorable_slots(slots), drawn_from

    def _window_log_weights(self, scores: np.ndarray, features: np.ndarray | None,
                            first: int, last: int) -> np.ndarray:
        """Plackett-Luce log weights of list items ``first..last-1`` (the window policies)."""
        if self.needs_features and features is None:
            raise ValueError(f"policy {self.spec.canonical()} needs the items' features")
        if self.spec.policy == UNIFORM:
            return np.zeros(last - first)
        if self.spec.policy == LINUCB:
            values = self.bandit.upper_bounds(np.asarray(features)[first:last], self.spec.alpha)
        else:
            values = np.asarray(scores, dtype=np.float64)[first:last]
        log_weights = values / self.spec.temperature
        if self.spec.new_item_bonus:
            log_weights = log_weights + self.spec.new_item_bonus * new_items(
                np.asarray(features)[first:last])
        return log_weights

    # -- drawing ---------------------------------------------------------------------------
    def choose(self, scores: np.ndarray, k: int, rng: np.random.Generator,
               features: np.ndarray | None = None) -> np.ndarray:
        """An answer of ``min(k, len(scores))`` slots drawn with ``rng``: the index in the
        ranked list of each slot's item (cheap: no propensities; ``slate`` gives them)."""
        slots, explorable, drawn_from = self._sizes(len(scores), k)
        if explorable and self.spec.policy == EPSILON_GREEDY:
            return self._epsilon_greedy(slots, explorable, drawn_from, rng)
        order = np.arange(slots)
        if explorable:
            first = slots - explorable
            weights = plackett_luce.relative_weights(
                self._window_log_weights(scores, features, first, drawn_from))
            order[first:] = first + plackett_luce.sample(weights, explorable, rng)
        return order

    def slate(self, scores: np.ndarray, k: int, order: np.ndarray,
              features: np.ndarray | None = None) -> Slate:
        """``order`` (an answer) with its exact propensities under this policy."""
        order = np.asarray(order, dtype=np.int64)
        steps = self.step_probabilities(scores, k, order, features)
        marginal = self.marginals(scores, k, features, items=order)
        slots = len(order)
        return Slate(order, marginal[np.arange(slots), np.arange(slots)], np.cumprod(steps))

    def _epsilon_greedy(self, slots: int, explorable: int, drawn_from: int,
                        rng: np.random.Generator) -> np.ndarray:
        order = np.arange(slots)
        pool = list(range(slots, drawn_from))
        cap = min(explorable, len(pool))
        explored = 0
        for j in range(slots):
            if explored < cap and rng.random() < self.spec.epsilon:
                order[j] = pool.pop(int(rng.integers(len(pool))))
                explored += 1
        return order

    # -- probabilities ---------------------------------------------------------------------
    def marginals(self, scores: np.ndarray, k: int, features: np.ndarray | None = None,
                  items: np.ndarray | None = None) -> np.ndarray:
        """``(slots, len(items))``: P(item in slot j), items as indices of the ranked list
        (default: all of it)."""
        n_items = len(scores)
        items = np.arange(n_items) if items is None else np.asarray(items, dtype=np.int64)
        slots, explorable, drawn_from = self._sizes(n_items, k)
        out = np.zeros((slots, len(items)))
        fixed = slots - explorable
        for j in range(fixed if self.spec.policy != EPSILON_GREEDY else 0):
            out[j] = items == j
        if not explorable:
            for j in range(slots):
                out[j] = items == j
            return out
        if self.spec.policy == EPSILON_GREEDY:
            pool = drawn_from - slots
            cap = min(explorable, pool)
            # slot j explores with probability epsilon if fewer than `cap` slots above did
            explores = (self.spec.epsilon * stats.binom.cdf(cap - 1, np.arange(slots),
                                                            self.spec.epsilon)
                        if cap else np.zeros(slots))
            in_pool = (items >= slots) & (items < drawn_from)
            out[:] = np.where(items[None, :] == np.arange(slots)[:, None],
                              1.0 - explores[:, None], 0.0)
            out[:, in_pool] = explores[:, None] / max(pool, 1)
            return out
        in_window = (items >= fixed) & (items < drawn_from)
        weights = plackett_luce.relative_weights(
            self._window_log_weights(scores, features, fixed, drawn_from))
        out[fixed:, in_window] = plackett_luce.marginals(weights, explorable,
                                                         items[in_window] - fixed)
        return out

    def step_probabilities(self, scores: np.ndarray, k: int, order: np.ndarray,
                           features: np.ndarray | None = None) -> np.ndarray:
        """P(slot j shows ``order[j]`` | slots above show ``order[:j]``), for a given answer
        (0 from the first slot this policy could not have filled so)."""
        order = np.asarray(order, dtype=np.int64)
        slots, explorable, drawn_from = self._sizes(len(scores), k)
        steps = np.zeros(len(order))
        if self.spec.policy == NONE or not explorable:
            steps[:] = order == np.arange(len(order))
        elif self.spec.policy == EPSILON_GREEDY:
            pool = drawn_from - slots
            cap = min(explorable, pool)
            explored = 0
            for j, item in enumerate(order):
                can = explored < cap
                if item == j:
                    steps[j] = 1.0 - self.spec.epsilon * can
                elif can and slots <= item < drawn_from:
                    steps[j] = self.spec.epsilon / (pool - explored)
                    explored += 1
        else:
            fixed = slots - explorable
            steps[:fixed] = order[:fixed] == np.arange(fixed)
            window = order[fixed:] - fixed
            valid = (window >= 0) & (window < drawn_from - fixed)
            if valid.all() and len(set(window.tolist())) == len(window):
                weights = plackett_luce.relative_weights(
                    self._window_log_weights(scores, features, fixed, drawn_from))
                steps[fixed:] = plackett_luce.sequence_probabilities(weights, window)
        # a slot that could not be reached gives every later slot probability 0
        impossible = np.flatnonzero(steps == 0)
        if len(impossible):
            steps[impossible[0]:] = 0.0
        return steps


__all__ = ["Policy", "Slate"]
