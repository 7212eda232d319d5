"""The paired bootstrap interval of recsys.evaluation.paired, judged by repeated simulation:
over seeded samples of users whose true mean difference is known, the 95% interval covers it
about 95% of the time, and with no true difference it excludes 0 about 5% of the time."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.paired import (
    format_differences,
    paired_interval,
    pairwise_differences,
)

USERS = 610  # ml-latest-small's users: the size the benchmark compares on
RUNS = 400


def _ndcg_like(rng, n, quality):
    """Per-user metric values shaped like NDCG@10 on MovieLens: many zeros, a long tail; each
    user's difficulty is shared by both models (the pairing)."""
    difficulty = rng.beta(0.6, 2.5, n)
    zero = rng.random(n) < 0.35
    return np.where(zero, 0.0, np.clip(difficulty * quality, 0, 1)), difficulty


def _pair(rng, shift):
    """Two models' per-user values; b adds ``shift`` times the user's difficulty plus noise of
    mean 0, so the population's mean difference is ``shift * E[difficulty]`` exactly."""
    a, difficulty = _ndcg_like(rng, USERS, 1.0)
    noise = rng.normal(0.0, 0.05, USERS)
    b = a + shift * difficulty + noise
    return b, a


def _coverage(shift: float) -> float:
    truth = shift * 0.6 / (0.6 + 2.5)  # E[Beta(0.6, 2.5)] = 0.6 / 3.1
    covered = 0
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        b, a = _pair(rng, shift)
        _, low, high, _ = paired_interval(b, a, resamples=999, seed=seed)
        covered += low <= truth <= high
    return covered / RUNS


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_the_interval_covers_the_true_difference_as_often_as_it_claims(shift):
    """At shift 0 the truth is 0, so 1 - coverage is the false-positive rate: it stays at
    alpha (5%) within the simulation's error."""
    coverage = _coverage(shift)
    # 400 runs: the binomial standard error of a 95% rate is 1.1 points
    assert 0.92 <= coverage <= 0.98


def test_a_real_difference_is_found():
    rng = np.random.default_rng(7)
    b, a = _pair(rng, 0.1)
    mean, low, high, users = paired_interval(b, a)
    assert users == USERS and low > 0 and low <= mean <= high


def test_the_same_inputs_give_the_same_interval():
    rng = np.random.default_rng(3)
    b, a = _pair(rng, 0.02)
    assert paired_interval(b, a, seed=5) == paired_interval(b, a, seed=5)


def test_users_without_a_value_are_left_out_of_both():
    a = np.array([0.1, np.nan, 0.3, 0.5, 0.2])
    b = np.array([0.0, 0.4, np.nan, 0.1, 0.2])
    mean, _, _, users = paired_interval(a, b)
    assert users == 3 and mean == pytest.approx((0.1 + 0.4 + 0.0) / 3)


def test_identical_models_give_a_zero_width_interval():
    a = np.linspace(0, 1, 50)
    assert paired_interval(a, a.copy()) == (0.0, 0.0, 0.0, 50)


@pytest.mark.parametrize("a, b, confidence, message", [
    (np.zeros(3), np.zeros(4), 0.95, "one length"),
    (np.zeros((2, 2)), np.zeros((2, 2)), 0.95, "1-D"),
    (np.zeros(5), np.zeros(5), 1.5, "confidence"),
    (np.array([1.0, np.nan]), np.array([np.nan, 1.0]), 0.95, "at least 2 users"),
])
def test_bad_input_is_refused_by_name(a, b, confidence, message):
    with pytest.raises(ValueError, match=message):
        paired_interval(a, b, confidence)


def test_every_pair_reads_later_minus_earlier_and_prints_one_line_each():
    rng = np.random.default_rng(1)
    per_user = {name: {"ndcg@10": rng.random(100) + bonus, "recall@10": rng.random(100)}
                for name, bonus in (("popular", 0.0), ("ease", 0.5), ("ours", 0.6))}
    found = pairwise_differences(per_user, ["ndcg@10", "recall@10"], resamples=199)
    assert [(d.a, d.b) for d in found[::2]] == [("ease", "popular"), ("ours", "popular"),
                                                ("ours", "ease")]
    first = found[0]
    assert first.metric == "ndcg@10" and first.significant and first.mean > 0.3
    table = format_differences(found)
    assert len(table.splitlines()) == 4 and "ease  -  popular" in table and "*" in table
