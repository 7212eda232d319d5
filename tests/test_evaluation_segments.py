"""Segment metrics: user and item segments by hand and against the pure-Python oracle, the
segment helpers, and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_evaluation_metrics import brute_force_metrics, random_case

from recsys.evaluation import (
    ranking_metrics,
    recent_items,
    segment_metrics,
    short_history_users,
)

# User 0: ranked 4, 2, 7, 1 against T = {4, 7}; user 1: ranked 0, 5, 6, 8 against T = {8, 9, 3};
# user 2 has no test item.
RANKED = np.array([[4, 2, 7, 1], [0, 5, 6, 8], [1, 2, 3, 4]])
RELEVANT = [np.array([4, 7]), np.array([8, 9, 3]), np.array([], dtype=np.int64)]
N = 10


def test_user_segment_evaluates_only_its_users():
    segments = {"first": np.array([True, False, True]), "second": np.array([False, True, True])}
    result = segment_metrics(RANKED, RELEVANT, N, user_segments=segments, ks=(2, 4))
    assert result["first"] == ranking_metrics(RANKED[:1], RELEVANT[:1], N, ks=(2, 4))
    assert result["second"] == ranking_metrics(RANKED[1:2], RELEVANT[1:2], N, ks=(2, 4))
    assert result["second"]["users"] == 1


def test_item_segment_by_hand():
    # Segment {7, 8, 9}: user 0 keeps T = {7} (hit at rank 3), user 1 keeps T = {8, 9} (hit at
    # rank 4); user 2 has nothing. Rankings are unchanged.
    items = np.zeros(N, dtype=bool)
    items[[7, 8, 9]] = True
    result = segment_metrics(RANKED, RELEVANT, N, item_segments={"new": items}, ks=(2, 4))["new"]
    assert result["users"] == 2
    assert result["recall@2"] == 0.0 and result["ndcg@2"] == 0.0 and result["map@2"] == 0.0
    assert result["recall@4"] == pytest.approx((1 / 1 + 1 / 2) / 2)
    user0_ndcg = (1 / math.log2(4)) / (1 / math.log2(2))
    user1_ndcg = (1 / math.log2(5)) / (1 / math.log2(2) + 1 / math.log2(3))
    assert result["ndcg@4"] == pytest.approx((user0_ndcg + user1_ndcg) / 2)
    assert result["map@4"] == pytest.approx(((1 / 3) / 1 + (1 / 4) / 2) / 2)
    # Coverage of the segment: of items {7, 8, 9}, users 0 and 1 show 7 and 8 in their top 4.
    assert result["coverage@2"] == 0 / 3
    assert result["coverage@4"] == 2 / 3


def test_segment_with_no_user_to_evaluate_holds_no_metric():
    items = np.zeros(N, dtype=bool)
    items[5] = True  # nobody's test item
    result = segment_metrics(
        RANKED,
        RELEVANT,
        N,
        user_segments={"only-empty": np.array([False, False, True])},
        item_segments={"unseen": items, "none": np.zeros(N, dtype=bool)},
        ks=(2,),
    )
    assert result == {"only-empty": {"users": 0}, "unseen": {"users": 0}, "none": {"users": 0}}


@pytest.mark.parametrize("seed", range(4))
def test_segments_equal_the_oracle_on_random_data(seed):
    ranked, relevant = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    users = rng.random(len(ranked)) < 0.5
    items = rng.random(40) < 0.3
    ks = (1, 5, 12)
    result = segment_metrics(
        ranked, relevant, 40, user_segments={"some users": users},
        item_segments={"some items": items}, ks=ks,
    )
    chosen = np.flatnonzero(users)
    expected_users = brute_force_metrics(ranked[chosen], [relevant[u] for u in chosen], 40, ks)
    assert result["some users"] == pytest.approx(expected_users, rel=1e-12)
    expected_items = brute_force_metrics(ranked, relevant, 40, ks, items=items)
    assert result["some items"] == pytest.approx(expected_items, rel=1e-12)


def test_no_segments_gives_an_empty_report():
    assert segment_metrics(RANKED, RELEVANT, N, ks=(2,)) == {}


@pytest.mark.parametrize(
    ("user_segments", "item_segments", "message"),
    [
        ({"x": np.array([True, False])}, None,
         (r"user_segments\['x'\] must be a 1-D bool mask over the 3 users, got dtype bool and "
          r"shape \(2,\)")),
        ({"x": np.array([1, 0, 1])}, None, r"user_segments\['x'\] must be a 1-D bool mask"),
        (None, {"y": np.ones(9, dtype=bool)},
         r"item_segments\['y'\] must be a 1-D bool mask over the 10 candidate items"),
        ({"z": np.ones(3, dtype=bool)}, {"z": np.ones(N, dtype=bool)},
         r"segment names \['z'\] are used by both"),
    ],
)
def test_bad_segments_are_refused_with_the_segment_named(user_segments, item_segments, message):
    with pytest.raises(ValueError, match=message):
        segment_metrics(RANKED, RELEVANT, N, user_segments, item_segments, ks=(2,))


def test_bad_rankings_are_refused_before_any_segment():
    with pytest.raises(ValueError, match=r"relevant\[0\] holds candidate index -3"):
        segment_metrics(RANKED, [np.array([-3]), np.array([1]), np.array([2])], N,
                        item_segments={"all": np.ones(N, dtype=bool)}, ks=(2,))


def test_short_history_users():
    lengths = np.array([0, 3, 5, 6, 100])
    assert short_history_users(lengths, 5).tolist() == [True, True, True, False, False]
    assert short_history_users(np.array([], dtype=np.int64), 5).tolist() == []
    with pytest.raises(ValueError, match="history_lengths must be a 1-D integer array"):
        short_history_users(np.array([1.5]), 5)
    with pytest.raises(ValueError, match="negative length -1"):
        short_history_users(np.array([-1]), 5)
    with pytest.raises(ValueError, match="max_length must be an integer >= 0, got -1"):
        short_history_users(lengths, -1)


def test_recent_items():
    day = 86_400
    reference = 1_700_000_000
    created = np.array([reference - 8 * day, reference - 7 * day, reference - day, reference,
                        reference + day, np.nan])
    # At most 7 days before the reference (the edge included), later items count too, unknown
    # creation times never do.
    assert recent_items(created, reference, days=7).tolist() == [
        False, True, True, True, True, False,
    ]
    assert recent_items(np.array([reference - 3600]), reference, days=0.5).tolist() == [True]
    with pytest.raises(ValueError, match="days must be > 0, got 0"):
        recent_items(created, reference, days=0)
    with pytest.raises(ValueError, match="reference_s must be finite"):
        recent_items(created, float("inf"), days=1)
    with pytest.raises(TypeError, match="days must be a number, got '7'"):
        recent_items(created, reference, days="7")
    with pytest.raises(ValueError, match="created_at_s must be a 1-D array of Unix seconds"):
        recent_items(np.zeros((2, 2)), reference, days=1)
