"""Exploration on the served answer: a request's policy draws its ``k`` items from the ranked
list (the answer the rules would give, then the exploration pool), seeded per request.

``Explorer.explore`` runs on the request path and only draws (a generator seeded with the
request's seed, a Gumbel top-k or a few uniform draws, and for the bandit its features and
bounds: tens of microseconds); the exact propensities are computed later from the
``ExplorationDecision`` it returns (``slate()``), by the exposure log's background thread or
for a debug answer. The same seed and ranked list give the same answer (replay).

A spec with ``other_categories`` (``epsilon-greedy``, ``uniform``) also draws from outside
the ranked list: ``OtherCategories`` picks that many categories the answer does not show,
uniformly with a generator seeded from the request's seed, and takes the query's best item
in each (exact search in the served item index); they join the list after its pool, source
``exploration``, and the decision logs them with it. The propensities it logs are given the
ranked list: the policy's over the whole list times the draw's inclusion probability.

The bandit's parameters come from ``BanditParameters``: a background thread reads the
statistics the stream workers keep in Redis every ``poll_s`` and swaps in a new snapshot; a
request takes the current one without waiting (before the first read, or without Redis, the
prior: every item's bound is its width alone).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Collection

import numpy as np

from recsys.exploration.bandit_store import BanditStore
from recsys.exploration.category_draw import inclusion_factors
from recsys.exploration.features import DIMENSION, bandit_features, new_items
from recsys.exploration.linucb import LinUCBSnapshot, LinUCBState
from recsys.exploration.policies import Policy, Slate
from recsys.exploration.spec import LINUCB, PolicySpec
from serving.recommendations.item_index import ItemIndex
from serving.recommendations.rules import Candidate

log = logging.getLogger(__name__)
SEED_BITS = 53  # exact in a float64 (JSON numbers, the lake's coercion)
EXPLORATION_SOURCE = "exploration"
OTHER_CATEGORIES_STREAM = 1  # the seed's second word for the categories' generator


@dataclass(frozen=True)
class OtherCategories:
    """Where an answer's ``other_categories`` items come from: the served item index, the
    request's query embedding and the items it may not show (consumed, excluded)."""

    index: ItemIndex
    query: np.ndarray
    excluded: Collection[str]

    def draw(self, n: int, seed: int, answer: list[Candidate], listed: set[str]
             ) -> tuple[list[Candidate], int]:
        """(the drawn items, how many categories they were drawn from). The categories are
        those of the index that no item of ``answer`` has and that still hold an item
        outside ``listed`` and ``excluded``; ``min(n, that many)`` of them are drawn
        uniformly without replacement (a generator seeded with ``(seed, 1)``), and each
        gives the query's best item left. Guarantees: one item per drawn category, never
        one of ``listed`` or ``excluded``; the same seed and answer, the same items. Their
        score is 0, the rules' lowest (they are drawn, not ranked)."""
        eligible = self._eligible({c.category for c in answer}, listed)
        if not eligible or n <= 0:
            return [], len(eligible)
        rng = np.random.default_rng((seed, OTHER_CATEGORIES_STREAM))
        picked = rng.choice(len(eligible), size=min(n, len(eligible)), replace=False)
        drawn = []
        taken = listed | set(self.excluded)
        for category in (eligible[i] for i in picked.tolist()):
            item_id, similarity = self.index.best_in_category(self.query, category, taken)
            drawn.append(Candidate(item_id, 0.0, EXPLORATION_SOURCE, category,
                                   self.index.created_at_of(item_id),
                                   [f"other category {category} (similarity "
                                    f"{similarity:.2f})"]))
        return drawn, len(eligible)

    def _eligible(self, shown: set[str], listed: set[str]) -> list[str]:
        """The index's categories outside ``shown`` with an item not listed or excluded."""
        taken = Counter(self.index.category_of(i) for i in listed)
        taken.update(self.index.category_of(i) for i in self.excluded)
        return [c for c, rows in self.index.category_rows.items()
                if c not in shown and len(rows) > taken[c]]


class BanditParameters:
    """The latest snapshot of the bandit's statistics (``store`` None: the prior only)."""

    def __init__(self, store: BanditStore | None, poll_s: float = 1.0, metrics=None):
        self.store, self.poll_s, self.metrics = store, poll_s, metrics
        self._sums = None
        self._snapshots: dict[float, LinUCBSnapshot] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.read_at = 0.0

    def start(self) -> None:
        if self.store is None or self._thread is not None:
            return
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="recsys-bandit", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def refresh(self) -> bool:
        """Read the statistics once; True when they changed (a failed read keeps the last)."""
        try:
            sums = self.store.read()
        except Exception as exc:  # noqa: BLE001 - Redis down: serve the last snapshot
            log.warning("bandit parameters not read (the last ones stay): %s", exc)
            return False
        self.read_at = time.time()
        if sums is None or (self._sums is not None and sums.shown == self._sums.shown
                            and sums.updated_at == self._sums.updated_at):
            return False
        self._sums, self._snapshots = sums, {}  # snapshots are rebuilt per ridge on demand
        return True

    @property
    def sums(self):
        """The statistics last read (``BanditSums``; None before the first read)."""
        return self._sums

    def snapshot(self, ridge: float) -> LinUCBSnapshot:
        snapshots = self._snapshots  # one read: a refresh swaps the dict whole
        found = snapshots.get(ridge)
        if found is None:
            sums = self._sums
            state = sums.state(ridge) if sums is not None else LinUCBState(DIMENSION, ridge)
            found = snapshots[ridge] = state.snapshot()
        return found

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class CategoryDraw:
    """The list's last ``drawn`` items were drawn from ``eligible`` categories."""

    drawn: int
    eligible: int


@dataclass
class ExplorationDecision:
    """What one answer's policy drew from, and what it drew; ``slate()`` adds the exact
    propensities (computed once, when first asked)."""

    spec: PolicySpec
    seed: int
    ranked: list[Candidate]  # best first: the rules' answer, then the pool
    k: int
    order: np.ndarray  # per slot, the index in ``ranked`` of the item shown
    recent_categories: tuple[str, ...]
    now_s: int
    features: np.ndarray | None = None
    bandit: LinUCBSnapshot | None = None
    _ages_s: list[float | None] | None = field(default=None, repr=False)
    draw: CategoryDraw | None = None
    _slate: Slate | None = field(default=None, repr=False)

    @property
    def scores(self) -> np.ndarray:
        return np.array([c.score for c in self.ranked], dtype=np.float64)

    def slate(self) -> Slate:
        """The answer's propensities given the ranked list: with drawn items, the policy's
        over the whole list times their draw's inclusion (``category_draw``)."""
        if self._slate is None:
            policy = Policy(self.spec, self.bandit)
            slate = policy.slate(self.scores, self.k, self.order, self.features)
            if self.draw is not None:
                shows_drawn = self.order >= len(self.ranked) - self.draw.drawn
                marginal, cascade = inclusion_factors(shows_drawn, self.draw.drawn,
                                                      self.draw.eligible)
                slate = Slate(slate.order, slate.propensity * marginal,
                              slate.cascade * cascade)
            self._slate = slate
        return self._slate

    def ages_s(self) -> list[float | None]:
        """Each listed item's age at the decision (None: unknown), computed once."""
        if self._ages_s is None:
            self._ages_s = _ages_s(self.ranked, self.now_s)
        return self._ages_s

    def document(self) -> dict[str, Any]:
        """The debug view: the policy, the seed and per slot its rank in the list, whether it
        explored, and its propensities."""
        slate = self.slate()
        return {"policy": self.spec.canonical(), "seed": self.seed,
                "list_size": len(self.ranked),
                "bandit_updates": None if self.bandit is None else self.bandit.updates,
                "slots": [{"position": j, "rank": int(rank), "explored": bool(rank != j),
                           "propensity": float(slate.propensity[j]),
                           "cascade_propensity": float(slate.cascade[j])}
                          for j, rank in enumerate(self.order)]}


def _ages_s(ranked: list[Candidate], now_s: int) -> list[float | None]:
    return [None if c.created_at_s is None else float(max(0, now_s - c.created_at_s))
            for c in ranked]


class Explorer:
    """Applies exploration policies to ranked lists."""

    def __init__(self, bandit: BanditParameters | None = None):
        self.bandit = bandit or BanditParameters(None)

    def explore(self, spec: PolicySpec, ranked: list[Candidate], k: int, now_s: int,
                recent_categories: tuple[str, ...] = (), seed: int | None = None,
                others: OtherCategories | None = None
                ) -> tuple[list[Candidate], ExplorationDecision]:
        """The answer the policy draws from ``ranked`` (its first ``k`` are the answer
        without exploration; with ``others`` and a spec's ``other_categories``, its first
        ``max(pool, k)`` followed by the drawn items) and the decision to log; explored
        slots say so in their reasons."""
        seed = random.getrandbits(SEED_BITS) if seed is None else seed
        draw = None
        if spec.other_categories and others is not None:
            ranked = ranked[:max(spec.pool, k)]
            drawn, eligible = others.draw(spec.other_categories, seed, ranked[:k],
                                          {c.item_id for c in ranked})
            ranked, draw = ranked + drawn, CategoryDraw(len(drawn), eligible)
        scores = np.fromiter((c.score for c in ranked), dtype=np.float64, count=len(ranked))
        snapshot = self.bandit.snapshot(spec.ridge) if spec.policy == LINUCB else None
        policy = Policy(spec, snapshot)
        ages = features = None
        if policy.needs_features:
            ages = _ages_s(ranked, now_s)
            features = bandit_features(scores, [c.category for c in ranked], ages,
                                       [c.source for c in ranked], set(recent_categories))
        order = policy.choose(scores, k, np.random.default_rng(seed), features)
        new = new_items(features) if spec.new_item_bonus else None
        items = []
        for slot, rank in enumerate(order):
            item = ranked[rank]
            if rank != slot:
                item = item.copy()
                kind = ", new item" if new is not None and new[rank] else ""
                item.reasons.append(f"explored ({spec.policy}, rank {rank + 1}{kind})")
            items.append(item)
        return items, ExplorationDecision(spec, seed, ranked, k, order,
                                          tuple(recent_categories), now_s, features, snapshot,
                                          ages, draw=draw)


__all__ = ["Explorer", "ExplorationDecision", "BanditParameters", "OtherCategories",
           "CategoryDraw",
           "SEED_BITS", "EXPLORATION_SOURCE"]
