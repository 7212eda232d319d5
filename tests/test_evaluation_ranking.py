"""top_k: exact expectations, a full-sort oracle on random data with ties, and input errors."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation import top_k


def brute_force_top_k(scores: np.ndarray, k: int, exclude=None) -> np.ndarray:
    """Pure-Python oracle: a full sort by (descending score, ascending index), padded with -1."""
    out = []
    for user, row in enumerate(scores.tolist()):
        banned = set() if exclude is None else {int(i) for i in exclude[user]}
        order = sorted((j for j in range(len(row)) if j not in banned), key=lambda j: (-row[j], j))
        best = order[:k]
        out.append(best + [-1] * (k - len(best)))
    return np.array(out, dtype=np.int64).reshape(len(scores), k)


def test_hand_example_sorted_descending_with_ties_by_lower_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.2],
                       [3.0, 3.0, 3.0, 3.0, 3.0]])
    result = top_k(scores, 3)
    assert result.dtype == np.int64 and result.shape == (2, 3)
    assert result.tolist() == [[1, 3, 2], [0, 1, 2]]


def test_tie_at_the_cut_keeps_the_lowest_indices():
    # Five candidates tie for the last two places: indices 1 and 2 win, whatever their order.
    scores = np.array([[0.5, 0.7, 0.5, 0.5, 0.9, 0.5, 0.5]])
    assert top_k(scores, 4).tolist() == [[4, 1, 0, 2]]


def test_exclusions_never_appear_and_short_rows_are_padded():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0],
                       [5.0, 4.0, 3.0, 2.0, 1.0],
                       [5.0, 4.0, 3.0, 2.0, 1.0]])
    exclude = [np.array([0, 2]), np.array([0, 1, 2, 3]), np.arange(5)]
    assert top_k(scores, 3, exclude).tolist() == [[1, 3, 4], [4, -1, -1], [-1, -1, -1]]


def test_excluded_items_lose_even_against_minus_infinity_scores():
    # A candidate scored -inf is still a candidate; an excluded one never is, even if its score
    # is the best one.
    scores = np.array([[np.inf, -np.inf, 1.0, -np.inf]])
    assert top_k(scores, 4, [np.array([0, 3])]).tolist() == [[2, 1, -1, -1]]
    assert top_k(scores, 4).tolist() == [[0, 2, 1, 3]]


def test_duplicate_exclusions_and_empty_float_arrays_are_accepted():
    scores = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    exclude = [np.array([2, 2, 2]), np.array([])]
    assert top_k(scores, 2, exclude).tolist() == [[1, 0], [2, 1]]


def test_scores_are_not_modified():
    scores = np.array([[1.0, 2.0, 3.0]])
    top_k(scores, 2, [np.array([2])])
    assert scores.tolist() == [[1.0, 2.0, 3.0]]


def test_integer_and_float32_scores():
    assert top_k(np.array([[1, 3, 2]]), 2).tolist() == [[1, 2]]
    scores = np.array([[0.1, 0.3, 0.3, 0.2]], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [[1, 2, 3]]


def test_no_users_gives_an_empty_result():
    assert top_k(np.zeros((0, 4)), 2).shape == (0, 2)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_equals_full_sort_oracle_on_random_scores_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 37, 23
    # Few distinct values, so ties (also at the cut) are everywhere; some -inf and +inf too.
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    scores[rng.random(scores.shape) < 0.02] = np.inf
    exclude = [rng.choice(n_items, size=rng.integers(0, n_items + 1), replace=False)
               for _ in range(n_users)]
    for k in (1, 5, n_items):
        expected = brute_force_top_k(scores, k, exclude)
        for chunk_size in (1, 7, 1024):
            got = top_k(scores, k, exclude, chunk_size=chunk_size)
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(top_k(scores, k), brute_force_top_k(scores, k))


def test_k_larger_than_n_names_both():
    with pytest.raises(ValueError, match=r"k=6 is larger than the number of candidate items N=5"):
        top_k(np.zeros((2, 5)), 6)


@pytest.mark.parametrize(
    ("scores", "k", "exclude", "message"),
    [
        (np.zeros(5), 2, None, r"scores must be a 2-D \[users, candidates\] matrix, got 1-D"),
        (np.zeros((1, 2, 3)), 2, None, "got 3-D"),
        (np.array([["a", "b"]]), 1, None, "scores must hold real numbers, got dtype <U1"),
        (np.array([[True, False]]), 1, None, "scores must hold real numbers, got dtype bool"),
        (np.array([[0.0, 1.0], [np.nan, 1.0]]), 1, None, "NaN .*user row 1"),
        (np.zeros((2, 5)), 0, None, "k must be >= 1, got 0"),
        (np.zeros((2, 5)), 2, [np.array([1])], "one array per user: got 1 arrays for 2"),
        (np.zeros((1, 5)), 2, [np.array([5])], r"exclude\[0\] holds candidate index 5, outside"),
        (np.zeros((1, 5)), 2, [np.array([-1])], r"exclude\[0\] holds candidate index -1"),
        (np.zeros((1, 5)), 2, [np.array([1.0])], r"exclude\[0\] must be a 1-D integer array"),
    ],
)
def test_bad_input_is_refused_with_the_problem_named(scores, k, exclude, message):
    with pytest.raises(ValueError, match=message):
        top_k(scores, k, exclude)


@pytest.mark.parametrize(
    ("k", "chunk_size", "error", "message"),
    [
        (2.0, 4, TypeError, "k must be an integer, got 2.0"),
        (True, 4, TypeError, "k must be an integer, got True"),
        (2, 0, ValueError, "chunk_size must be >= 1, got 0"),
    ],
)
def test_k_and_chunk_size_must_be_integers(k, chunk_size, error, message):
    with pytest.raises(error, match=message):
        top_k(np.zeros((1, 5)), k, chunk_size=chunk_size)
