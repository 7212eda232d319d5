"""Exploration outside the ranked list: ``OtherCategories`` draws the query's best item of
categories the answer does not show, seeded per request, never an excluded or listed item;
the explorer appends them after the pool, and the policy's propensities over that list are
the frequencies of what it shows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from recsys.exploration import Policy, parse_policy
from serving.recommendations.exploration import (
    EXPLORATION_SOURCE,
    Explorer,
    OtherCategories,
)
from serving.recommendations.item_index import ItemIndex
from serving.recommendations.rules import Candidate

CATEGORIES = ("drama", "comedy", "news", "sport", "music", "kids")
K = 6


@pytest.fixture(scope="module")
def index() -> ItemIndex:
    rng = np.random.default_rng(9)
    n = 120
    return ItemIndex(ids=np.array([f"i{i}" for i in range(n)], dtype=object),
                     categories=np.array([CATEGORIES[i % 6] for i in range(n)], object),
                     created_at_s=np.full(n, 1.7e9), vectors=rng.normal(
                         size=(n, 8)).astype(np.float32), version=1)


def _ranked(index: ItemIndex, n: int, categories=("drama", "comedy")) -> list[Candidate]:
    rows = [r for r in range(len(index)) if index.categories[r] in categories][:n]
    return [Candidate(str(index.ids[r]), 1.0 - i / n, "retrieval", str(index.categories[r]))
            for i, r in enumerate(rows)]


def test_draws_the_best_item_of_categories_the_answer_does_not_show(index):
    query = np.random.default_rng(1).normal(size=8).astype(np.float32)
    answer = _ranked(index, K)
    excluded = {index.best_in_category(query, "news")[0]}
    others = OtherCategories(index, query, excluded)
    seen = Counter()
    for seed in range(200):
        listed = {c.item_id for c in answer}
        drawn = others.draw(3, seed, answer, set(listed))
        assert len(drawn) == 3 and len({c.category for c in drawn}) == 3
        for item in drawn:
            assert item.category not in ("drama", "comedy")
            assert item.source == EXPLORATION_SOURCE and item.score == 0.0
            assert item.item_id not in excluded and item.item_id not in listed
            assert item.item_id == index.best_in_category(query, item.category,
                                                          excluded)[0]
            seen[item.category] += 1
        again = others.draw(3, seed, answer, set(listed))
        assert [c.item_id for c in again] == [c.item_id for c in drawn]
    # four categories left, three drawn each time, uniformly: each in 3/4 of the draws
    assert set(seen) == {"news", "sport", "music", "kids"}
    assert all(abs(n / 200 - 0.75) < 0.12 for n in seen.values()), seen
    # fewer categories left than asked: all of them, once
    wide = _ranked(index, 24, CATEGORIES[:5])[:K] + _ranked(index, 2, ("music",))
    assert {c.category for c in others.draw(4, 0, wide, set())} == {"kids"}
    assert others.draw(0, 0, answer, set()) == []


def test_the_explorer_appends_them_after_the_pool_and_logs_them(index):
    query = np.random.default_rng(2).normal(size=8).astype(np.float32)
    spec = parse_policy("epsilon-greedy:epsilon=0.5,max_explored_share=0.5,pool=8,"
                        "other_categories=2")
    ranked = _ranked(index, 12)
    explorer = Explorer()
    shows = Counter()
    draws = 4000
    for seed in range(draws):
        items, decision = explorer.explore(spec, ranked, K, 0, (), seed,
                                           OtherCategories(index, query, set()))
        listed = decision.ranked
        assert [c.item_id for c in listed[:8]] == [c.item_id for c in ranked[:8]]
        assert [c.source for c in listed[8:]] == [EXPLORATION_SOURCE] * 2
        slate = decision.slate()
        assert np.all(slate.propensity > 0)
        for slot, rank in enumerate(decision.order):
            shows[(slot, rank >= 8)] += 1
            if rank >= 8:
                assert any(r.startswith("explored (epsilon-greedy") for r in
                           items[slot].reasons)
                assert any(r.startswith("other category") for r in items[slot].reasons)
    # the law over the logged list: how often each slot shows an other category's item
    marginals = Policy(spec).marginals(np.asarray(decision.scores), K)
    for slot in range(K):
        p = marginals[slot, 8:].sum()
        assert abs(shows[(slot, True)] / draws - p) <= 4.5 * np.sqrt(p * (1 - p) / draws)
    # without ``others`` the spec explores within the list it is given
    _, plain = explorer.explore(spec, ranked, K, 0, (), 5)
    assert len(plain.ranked) == len(ranked)
