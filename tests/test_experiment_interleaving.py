"""Team-draft interleaving: the list's invariants, fairness with equal rankers (a random
clicker credits each half the time, and the sign test's false-positive rate stays at alpha),
and the right verdict on a better ranker under a position-biased click model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recsys.experiments.interleaving import credit, preference_test, team_draft


def test_the_list_keeps_each_rankers_order_and_no_duplicates():
    rng = random.Random(0)
    a, b = ["1", "2", "3", "4", "5"], ["3", "6", "1", "7"]
    for _ in range(200):
        shown, teams = team_draft(a, b, 6, rng)
        assert len(shown) == len(set(shown)) == 6
        for team, ranking in (("a", a), ("b", b)):
            mine = [item for item, t in zip(shown, teams) if t == team]
            assert mine == sorted(mine, key=ranking.index)
        assert abs(teams.count("a") - teams.count("b")) <= 1  # turns, neither ran out here
    shown, teams = team_draft(["x"], ["x", "y"], 10, rng)  # fewer items than k
    assert sorted(shown) == ["x", "y"] and len(teams) == 2


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        team_draft(["a"], ["b"], 0, random.Random(0))


def test_equal_rankers_split_random_clicks_and_rarely_declare_a_winner():
    rng = random.Random(1)
    ranking = [str(i) for i in range(20)]
    a_share = []
    winners = 0
    for experiment in range(200):
        per_user = []
        for _ in range(100):
            shown, teams = team_draft(ranking, ranking, 10, rng)
            clicks = [p for p in range(10) if rng.random() < 0.3 / (1 + p)]
            per_user.append(credit(teams, clicks))
        result = preference_test(per_user)
        a_share.append(result.share_a)
        winners += result.winner is not None
    assert abs(np.mean(a_share) - 0.5) < 0.02
    assert winners / 200 <= 0.08


def test_the_better_ranker_wins_under_a_position_biased_click_model():
    rng = random.Random(2)
    np_rng = np.random.default_rng(2)
    per_user = []
    for _ in range(300):  # each user: true relevance of 50 items
        relevance = np_rng.beta(1, 6, 50)
        items = [str(i) for i in range(50)]
        better = sorted(items, key=lambda i: -(relevance[int(i)] + np_rng.normal(0, 0.05)))
        worse = sorted(items, key=lambda i: -(relevance[int(i)] + np_rng.normal(0, 0.3)))
        shown, teams = team_draft(better, worse, 10, rng)
        clicks = [p for p, item in enumerate(shown)
                  if rng.random() < relevance[int(item)] / (1 + 0.5 * p)]
        per_user.append(credit(teams, clicks))
    result = preference_test(per_user)
    assert result.winner == "a" and result.share_a > 0.6
