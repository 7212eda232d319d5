"""Ranking metrics: hand-computed values, a pure-Python oracle on random data, edge cases and
input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.evaluation import (
    DEFAULT_KS,
    METRIC_NAMES,
    average_metrics,
    catalog_coverage,
    per_user_metrics,
    ranking_metrics,
    top_k,
)


def brute_force_user(ranked_row, relevant, k):
    """Pure-Python oracle for one user: (recall, ndcg, map) at k, straight from EVALUATION.md."""
    test = {int(i) for i in relevant}
    top = [int(i) for i in ranked_row[:k]]
    rel = [1 if item != -1 and item in test else 0 for item in top]
    m = min(k, len(test))
    recall = sum(rel) / m
    dcg = sum(r / math.log2(i + 1) for i, r in enumerate(rel, start=1))
    idcg = sum(1 / math.log2(i + 1) for i in range(1, m + 1))
    precision_sum = sum(sum(rel[:i]) / i * rel[i - 1] for i in range(1, len(rel) + 1))
    return recall, dcg / idcg, precision_sum / m


def brute_force_metrics(ranked, relevant, n_candidates, ks, items=None):
    """Pure-Python oracle for ranking_metrics (and for an item segment when ``items`` is given:
    test sets restricted to those items, coverage counted over them)."""
    counted = set(range(n_candidates)) if items is None else {int(i) for i in np.flatnonzero(items)}
    users = []
    for row, test in zip(ranked.tolist(), relevant, strict=True):
        test = {int(i) for i in test} & counted
        if test:
            users.append((row, test))
    result = {}
    for k in ks:
        per_user = [brute_force_user(row, test, k) for row, test in users]
        for position, name in enumerate(("recall", "ndcg", "map")):
            result[f"{name}@{k}"] = sum(values[position] for values in per_user) / len(users)
        shown = {item for row, _ in users for item in row[:k] if item != -1} & counted
        result[f"coverage@{k}"] = len(shown) / len(counted)
    result["users"] = len(users)
    return result


def random_case(seed, n_users=60, n_items=40, width=12):
    """Random rankings (some padded with -1 at the end) and test sets (some empty, some larger
    than every K, some with duplicates)."""
    rng = np.random.default_rng(seed)
    ranked = np.full((n_users, width), -1, dtype=np.int64)
    relevant = []
    for u in range(n_users):
        length = width if rng.random() < 0.7 else int(rng.integers(0, width + 1))
        ranked[u, :length] = rng.choice(n_items, size=length, replace=False)
        size = int(rng.choice([0, 1, 2, 5, 15]))
        test = rng.choice(n_items, size=size, replace=False)
        if size and rng.random() < 0.2:
            test = np.concatenate([test, test[:1]])
        relevant.append(test)
    return ranked, relevant


# ----- hand-computed expectations -------------------------------------------------------------

# User A: ranked 4, 2, 7, 1 against T = {4, 7}: hits at ranks 1 and 3.
# User B: ranked 0, 5, 6, 8 against T = {8, 9, 3}: one hit at rank 4; |T_B| = 3 > K = 2.
RANKED = np.array([[4, 2, 7, 1], [0, 5, 6, 8]])
RELEVANT = [np.array([4, 7]), np.array([8, 9, 3])]

A_AT_2 = {"recall": 1 / 2, "ndcg": (1 / math.log2(2)) / (1 + 1 / math.log2(3)), "map": (1 / 1) / 2}
A_AT_4 = {
    "recall": 2 / 2,
    "ndcg": (1 / math.log2(2) + 1 / math.log2(4)) / (1 + 1 / math.log2(3)),
    "map": (1 / 1 + 2 / 3) / 2,
}
B_AT_2 = {"recall": 0 / 2, "ndcg": 0.0, "map": 0.0}
B_AT_4 = {
    "recall": 1 / 3,
    "ndcg": (1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / math.log2(4)),
    "map": (1 / 4) / 3,
}


def test_hand_computed_single_user():
    result = ranking_metrics(RANKED[:1], RELEVANT[:1], n_candidates=10, ks=(2, 4))
    expected = {f"{name}@2": value for name, value in A_AT_2.items()}
    expected |= {f"{name}@4": value for name, value in A_AT_4.items()}
    expected |= {"coverage@2": 2 / 10, "coverage@4": 4 / 10, "users": 1}
    assert result == pytest.approx(expected, abs=1e-12)


def test_hand_computed_two_users_are_averaged_with_equal_weight():
    result = ranking_metrics(RANKED, RELEVANT, n_candidates=10, ks=(2, 4))
    expected = {"users": 2, "coverage@2": len({4, 2, 0, 5}) / 10, "coverage@4": 8 / 10}
    for name in METRIC_NAMES:
        expected[f"{name}@2"] = (A_AT_2[name] + B_AT_2[name]) / 2
        expected[f"{name}@4"] = (A_AT_4[name] + B_AT_4[name]) / 2
    assert result == pytest.approx(expected, abs=1e-12)
    assert isinstance(result["users"], int)
    assert all(isinstance(value, float) for key, value in result.items() if key != "users")


def test_keys_are_written_exactly_for_every_k():
    ranked = np.tile(np.arange(100), (2, 1))
    result = ranking_metrics(ranked, [np.array([1]), np.array([50])], n_candidates=100)
    assert DEFAULT_KS == (10, 20, 100) and METRIC_NAMES == ("recall", "ndcg", "map")
    assert list(result) == [
        "recall@10", "ndcg@10", "map@10", "coverage@10",
        "recall@20", "ndcg@20", "map@20", "coverage@20",
        "recall@100", "ndcg@100", "map@100", "coverage@100",
        "users",
    ]


def test_test_set_larger_than_k_uses_min_k_t_as_denominator():
    # 5 test items, K = 2, both top-2 items relevant: a perfect score, not 2/5.
    result = ranking_metrics(np.array([[3, 1, 0]]), [np.array([0, 1, 2, 3, 4])], 6, ks=(2,))
    assert result["recall@2"] == 1.0
    assert result["ndcg@2"] == pytest.approx(1.0)
    assert result["map@2"] == pytest.approx((1 / 1 + 2 / 2) / 2)


def test_padding_is_never_relevant():
    # recall@3 = 1 hit / min(3, 2); DCG = 1/log2(2); IDCG = 1 + 1/log2(3).
    result = ranking_metrics(np.array([[3, -1, -1]]), [np.array([3, 9])], 10, ks=(1, 3))
    assert result["recall@3"] == 1 / 2
    assert result["ndcg@3"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert result["coverage@3"] == 1 / 10


def test_padding_never_matches_the_previous_users_last_item():
    # User 1's padding (-1) must not be confused with user 0's test item N - 1.
    n = 5
    ranked = np.array([[0, 1], [-1, -1]])
    relevant = [np.array([n - 1]), np.array([0])]
    per_user = per_user_metrics(ranked, relevant, n, ks=(2,))
    assert per_user["recall@2"].tolist() == [0.0, 0.0]


def test_users_with_empty_test_sets_are_skipped():
    relevant = [np.array([], dtype=np.int64), RELEVANT[1], np.array([])]
    ranked = np.array([[1, 2, 3, 4], RANKED[1], [9, 8, 7, 6]])
    result = ranking_metrics(ranked, relevant, n_candidates=10, ks=(2, 4))
    assert result["users"] == 1
    assert result["recall@4"] == pytest.approx(B_AT_4["recall"])
    assert result["map@4"] == pytest.approx(B_AT_4["map"])
    # Coverage counts the evaluated users' lists only.
    assert result["coverage@4"] == 4 / 10


def test_duplicate_test_items_count_once():
    result = ranking_metrics(np.array([[7, 1]]), [np.array([7, 7, 7, 2])], 10, ks=(2,))
    assert result["recall@2"] == 1 / 2


def test_all_users_empty_raises_a_clear_error():
    with pytest.raises(ValueError, match="no user can be evaluated: all 2 users have an empty"):
        ranking_metrics(np.array([[0, 1], [1, 0]]), [np.array([]), np.array([])], 2, ks=(1,))


def test_per_user_metrics_are_nan_for_skipped_users_and_match_by_hand():
    relevant = [RELEVANT[0], np.array([]), RELEVANT[1]]
    ranked = np.array([RANKED[0], [0, 1, 2, 3], RANKED[1]])
    per_user = per_user_metrics(ranked, relevant, n_candidates=10, ks=(2, 4))
    assert sorted(per_user) == sorted(f"{n}@{k}" for n in METRIC_NAMES for k in (2, 4))
    for name in METRIC_NAMES:
        values = per_user[f"{name}@4"]
        assert values.shape == (3,) and np.isnan(values[1])
        assert values[[0, 2]] == pytest.approx([A_AT_4[name], B_AT_4[name]])


def test_perfect_ranking_from_top_k_scores_one():
    scores = np.array([[0.1, 0.9, 0.8, 0.0], [0.5, 0.1, 0.2, 0.7]])
    ranked = top_k(scores, 2)
    result = ranking_metrics(ranked, [np.array([1, 2]), np.array([3])], 4, ks=(1, 2))
    for name in METRIC_NAMES:
        assert result[f"{name}@1"] == 1.0 and result[f"{name}@2"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(6))
def test_equals_pure_python_oracle_on_random_data(seed):
    ranked, relevant = random_case(seed)
    ks = (1, 3, 5, 12)
    expected = brute_force_metrics(ranked, relevant, 40, ks)
    assert ranking_metrics(ranked, relevant, 40, ks) == pytest.approx(expected, rel=1e-12)


def test_chunked_users_equal_the_oracle():
    # More users than one internal chunk (8192), so chunk boundaries are exercised.
    ranked, relevant = random_case(seed=42, n_users=9000, n_items=30, width=6)
    expected = brute_force_metrics(ranked, relevant, 30, (2, 6))
    assert ranking_metrics(ranked, relevant, 30, (2, 6)) == pytest.approx(expected, rel=1e-12)


def test_wider_rankings_than_the_largest_k_are_cut_at_k():
    ranked, relevant = random_case(seed=7, width=20)
    expected = brute_force_metrics(ranked, relevant, 40, (5,))
    assert ranking_metrics(ranked, relevant, 40, (5,)) == pytest.approx(expected, rel=1e-12)


def test_catalog_coverage_over_an_item_mask():
    ranked = np.array([[0, 1, 2], [2, 3, -1]])
    assert catalog_coverage(ranked, 6, ks=(1, 3)) == {"coverage@1": 2 / 6, "coverage@3": 4 / 6}
    items = np.array([False, True, False, True, True, False])  # items 1, 3, 4
    assert catalog_coverage(ranked, 6, ks=(1, 3), items=items) == {
        "coverage@1": 0 / 3,
        "coverage@3": 2 / 3,
    }
    with pytest.raises(ValueError, match="items selects no candidate item"):
        catalog_coverage(ranked, 6, ks=(1,), items=np.zeros(6, dtype=bool))


def test_average_metrics_over_a_user_mask_and_an_empty_mask():
    per_user = per_user_metrics(RANKED, RELEVANT, 10, ks=(4,))
    only_b = average_metrics(per_user, RANKED, 10, ks=(4,), users=np.array([False, True]))
    assert only_b["users"] == 1 and only_b["recall@4"] == pytest.approx(B_AT_4["recall"])
    assert only_b["coverage@4"] == 4 / 10
    assert average_metrics(per_user, RANKED, 10, (4,), users=np.zeros(2, bool)) == {"users": 0}
    with pytest.raises(ValueError, match=r"per_user lacks \['recall@2', 'ndcg@2', 'map@2'\]"):
        average_metrics(per_user, RANKED, 10, ks=(2, 4))


@pytest.mark.parametrize(
    ("ranked", "relevant", "n_candidates", "ks", "message"),
    [
        (np.array([1, 2]), [np.array([1])], 5, (1,), "ranked must be a 2-D .* got 1-D"),
        (np.array([[1.0, 2.0]]), [np.array([1])], 5, (1,), "ranked must hold integer"),
        (np.array([[1, 5]]), [np.array([1])], 5, (1,), r"ranked holds index 5, outside \[0, 5\)"),
        (np.array([[1, -2]]), [np.array([1])], 5, (1,), "ranked holds index -2"),
        (np.array([[1, 3, 1]]), [np.array([1])], 5, (1,), "ranked row 0 lists item 1 more than"),
        (np.array([[1, 2]]), [np.array([1])], 5, (1, 3), ("K=3 in ks is larger than the ranked "
                                                          "lists' width K_max=2")),
        (np.array([[1, 2]]), [np.array([1])], 5, (), "ks is empty"),
        (np.array([[1, 2]]), [np.array([1])], 5, (0,), "every K in ks must be an integer >= 1"),
        (np.array([[1, 2]]), [np.array([1])], 5, (1.5,), "every K in ks must be an integer"),
        (np.array([[1, 2]]), [np.array([1])], 5, (1, 1), "ks repeats a cut-off"),
        (np.array([[1, 2]]), [], 5, (1,), ("relevant must hold one array per user: got 0 arrays "
                                           "for 1 ranked rows")),
        (np.array([[1, 2]]), [np.array([7])], 5, (1,), r"relevant\[0\] holds candidate index 7"),
        (np.array([[1, 2]]), [np.array([-1])], 5, (1,), r"relevant\[0\] holds candidate index"),
        (np.array([[1, 2]]), [np.array([1.0])], 5, (1,), r"relevant\[0\] must be a 1-D integer"),
        (np.array([[1, 2]]), [np.array([1])], 0, (1,), "n_candidates must be an integer >= 1"),
    ],
)
def test_bad_input_is_refused_with_the_problem_named(ranked, relevant, n_candidates, ks, message):
    with pytest.raises(ValueError, match=message):
        ranking_metrics(ranked, relevant, n_candidates, ks)


def test_the_failing_user_is_named_among_many():
    relevant = [np.array([1]), np.array([], dtype=np.int64), np.array([2, 99])]
    with pytest.raises(ValueError, match=r"relevant\[2\] holds candidate index 99"):
        ranking_metrics(np.zeros((3, 1), dtype=np.int64), relevant, 10, ks=(1,))
