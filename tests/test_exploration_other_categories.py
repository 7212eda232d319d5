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
        drawn, eligible = others.draw(3, seed, answer, set(listed))
        assert eligible == 4 and len(drawn) == 3 and len({c.category for c in drawn}) == 3
        for item in drawn:
            assert item.category not in ("drama", "comedy")
            assert item.source == EXPLORATION_SOURCE and item.score == 0.0
            assert item.item_id not in excluded and item.item_id not in listed
            assert item.item_id == index.best_in_category(query, item.category,
                                                          excluded)[0]
            seen[item.category] += 1
        again, _ = others.draw(3, seed, answer, set(listed))
        assert [c.item_id for c in again] == [c.item_id for c in drawn]
    # four categories left, three drawn each time, uniformly: each in 3/4 of the draws
    assert set(seen) == {"news", "sport", "music", "kids"}
    assert all(abs(n / 200 - 0.75) < 0.12 for n in seen.values()), seen
    # fewer categories left than asked: all of them, once
    wide = _ranked(index, 24, CATEGORIES[:5])[:K] + _ranked(index, 2, ("music",))
    drawn, eligible = others.draw(4, 0, wide, set())
    assert eligible == 1 and {c.category for c in drawn} == {"kids"}
    assert others.draw(0, 0, answer, set()) == ([], 4)
    # a category whose items are all taken is not eligible: never drawn, never counted
    kids = {str(i) for i in index.ids[index.category_rows["kids"]]}
    drawn, eligible = OtherCategories(index, query, kids).draw(4, 0, wide, set())
    assert (drawn, eligible) == ([], 0)


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
    assert decision.draw.drawn == 2 and decision.draw.eligible == 4
    # given the ranked list alone, each item's logged propensity is how often it is shown
    # in its slot, over draws of the categories too
    counted, logged = Counter(), {}
    for seed in range(draws):
        items, decision = explorer.explore(spec, ranked, K, 0, (), seed,
                                           OtherCategories(index, query, set()))
        slate = decision.slate()
        for slot, item in enumerate(items):
            counted[(slot, item.item_id)] += 1
            logged[(slot, item.item_id)] = slate.propensity[slot]
    checked = 0
    for key, p in logged.items():
        if p < 1:
            checked += 1
            assert abs(counted[key] / draws - p) <= 4.5 * np.sqrt(p * (1 - p) / draws), key
    assert checked >= 20
    # without ``others`` the spec explores within the list it is given
    _, plain = explorer.explore(spec, ranked, K, 0, (), 5)
    assert len(plain.ranked) == len(ranked)


def test_inclusion_factors_are_the_draw_probabilities():
    from itertools import combinations

    from recsys.exploration.category_draw import inclusion_factors

    shows = np.array([False, True, False, True, True])
    marginal, cascade = inclusion_factors(shows, 3, 7)
    assert marginal.tolist() == pytest.approx([1, 3 / 7, 1, 3 / 7, 3 / 7])
    # enumerate the draws of 3 of 7 categories: those holding the shown items' categories
    subsets = list(combinations(range(7), 3))
    for slot, d in enumerate(np.cumsum(shows)):
        holding = sum(1 for s in subsets if set(range(d)) <= set(s)) / len(subsets)
        assert cascade[slot] == pytest.approx(holding)
    assert inclusion_factors(np.zeros(4, bool), 0, 0)[1].tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="2 slots show drawn items, but 0 items were drawn"):
        inclusion_factors(np.array([True, True]), 0, 5)
