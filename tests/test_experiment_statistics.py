"""The experiment statistics judged by simulation with seeds, as the methods claim to work:
their 95% intervals cover the true difference in 95% of repeated experiments (+-2.5%), the
always-valid intervals keep A/A false positives under alpha while looking every day (and a
fixed-horizon interval looked at every day does not), CUPED narrows the interval by
sqrt(1 - rho^2) and still covers, and the SRM check flags a 52/48 split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.experiments.statistics import (
    always_valid_half_width,
    benjamini_hochberg,
    compare_means,
    compare_ratios,
    cuped,
    sample_ratio_check,
)

RUNS = 1500


def _coverage(hits: list[bool]) -> float:
    return sum(hits) / len(hits)


def test_the_difference_of_means_interval_covers_the_truth_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    truth, hits, relative_hits = 0.2, [], []
    for _ in range(RUNS):  # skewed per-user values, like engagements per user
        control = rng.exponential(2.0, 400)
        treatment = rng.exponential(2.2, 400)
        result = compare_means(control, treatment)
        hits.append(result.ci[0] <= truth <= result.ci[1])
        relative_hits.append(result.relative_ci[0] <= 0.1 <= result.relative_ci[1])
    assert abs(_coverage(hits) - 0.95) <= 0.025
    assert abs(_coverage(relative_hits) - 0.95) <= 0.025


def _users(rng, n: int, ctr_scale: float):
    """Per-user exposures and clicks with a CTR that differs by user (so the exposures of a
    user are correlated: the unit of analysis must be the user)."""
    exposures = rng.poisson(6, n) + 1
    ctr = np.clip(rng.beta(2, 18, n) * ctr_scale, 0, 1)
    return rng.binomial(exposures, ctr).astype(float), exposures.astype(float)


def test_the_ratio_metric_interval_covers_the_true_ctr_difference():
    rng = np.random.default_rng(2)
    truth = 0.1 * 1.2 - 0.1  # E[clicks] / E[exposures] = mean CTR: 0.1 and 0.12
    hits, naive_hits = [], []
    for _ in range(RUNS):
        control, treatment = _users(rng, 500, 1.0), _users(rng, 500, 1.2)
        result = compare_ratios(control, treatment)
        hits.append(result.ci[0] <= truth <= result.ci[1])
        # the naive binomial interval, as if every exposure were independent
        p = [c.sum() / e.sum() for c, e in (control, treatment)]
        se = math.sqrt(sum(pi * (1 - pi) / e.sum() for pi, (_, e) in zip(p, (control,
                                                                              treatment))))
        naive_hits.append(abs(p[1] - p[0] - truth) <= 1.96 * se)
    assert abs(_coverage(hits) - 0.95) <= 0.025
    assert _coverage(naive_hits) < _coverage(hits) - 0.02  # why the delta method


def test_cuped_narrows_the_interval_and_still_covers():
    rng = np.random.default_rng(3)
    truth, hits, ratios, removed = 0.3, [], [], []
    for _ in range(600):
        taste = rng.normal(5.0, 2.0, 800)  # each user's level, seen before and during
        before = taste + rng.normal(0, 1.0, 800)
        after = taste + rng.normal(0, 1.0, 800)
        arm = np.arange(800) % 2 == 1
        after[arm] += truth
        adjusted, share = cuped(after, before)
        plain = compare_means(after[~arm], after[arm])
        reduced = compare_means(adjusted[~arm], adjusted[arm])
        hits.append(reduced.ci[0] <= truth <= reduced.ci[1])
        ratios.append((reduced.ci[1] - reduced.ci[0]) / (plain.ci[1] - plain.ci[0]))
        removed.append(share)
    rho2 = 4.0 ** 2 / (5.0 * 5.0)  # cov(after, before)^2 / (var after * var before)
    assert abs(_coverage(hits) - 0.95) <= 0.03
    assert abs(np.mean(removed) - rho2) < 0.02
    assert abs(np.mean(ratios) - math.sqrt(1 - rho2)) < 0.02


def test_always_valid_intervals_hold_alpha_under_daily_looks_and_peeking_does_not():
    rng = np.random.default_rng(4)
    experiments, days, per_day = 300, 30, 60
    always, peeking = 0, 0
    for _ in range(experiments):  # A/A: both arms from one distribution
        control = rng.exponential(1.0, days * per_day)
        treatment = rng.exponential(1.0, days * per_day)
        ever_always = ever_peeking = False
        for day in range(1, days + 1):
            n = day * per_day
            sequential = compare_means(control[:n], treatment[:n], sequential_tau=0.1)
            fixed = compare_means(control[:n], treatment[:n])
            ever_always |= sequential.significant()
            ever_peeking |= fixed.significant()
        always += ever_always
        peeking += ever_peeking
    assert always / experiments <= 0.05
    assert peeking / experiments >= 0.15  # the problem always-valid intervals solve


def test_always_valid_intervals_are_wider_than_fixed_ones_and_shrink_with_data():
    widths = [always_valid_half_width(1.0 / n, 0.1) for n in (100, 1_000, 10_000)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[1] > 1.96 * math.sqrt(1.0 / 1_000)


def test_sample_ratio_mismatch_flags_52_48_and_rarely_a_fair_split():
    assert sample_ratio_check([5_200, 4_800], [1, 1]).mismatch
    assert not sample_ratio_check([5_030, 4_970], [1, 1]).mismatch
    assert sample_ratio_check([7_000, 2_000, 1_000], [70, 20, 10]).p_value > 0.9
    rng = np.random.default_rng(5)
    flagged = sum(sample_ratio_check([k, 10_000 - k], [1, 1]).mismatch
                  for k in rng.binomial(10_000, 0.5, 2_000))
    assert flagged <= 10  # 0.1% expected: 2 of 2,000


def test_the_exposures_srm_check_allows_for_users_clusters_of_exposures():
    """A fair split of users with unequal numbers of exposures: Pearson's chi-square on the
    exposures flags it far too often; divided by the design effect, at its nominal rate."""
    rng = np.random.default_rng(6)
    naive = corrected = 0
    runs = 400
    for _ in range(runs):
        sizes = rng.geometric(1 / 20, 1_000)
        treated = rng.random(1_000) < 0.5
        counts = [sizes[~treated].sum(), sizes[treated].sum()]
        naive += sample_ratio_check(counts, [1, 1], threshold=0.05).mismatch
        corrected += sample_ratio_check(counts, [1, 1], threshold=0.05,
                                        cluster_sizes=sizes).mismatch
    assert naive / runs > 0.5
    assert corrected / runs <= 0.075  # 5% nominal; binomial sd over 400 runs 1.1 points
    sizes = rng.geometric(1 / 20, 20_000)  # a 52/48 split of users shows in the exposures
    treated = rng.random(20_000) < 0.48
    assert sample_ratio_check([sizes[~treated].sum(), sizes[treated].sum()], [1, 1],
                              cluster_sizes=sizes).mismatch


def test_benjamini_hochberg_matches_the_procedure_by_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 -> p * m / rank: 0.04, 0.06, 0.0533, 0.20, then the
    # running minimum from the largest rank down
    assert np.allclose(benjamini_hochberg(p), [0.04, 0.0533333, 0.0533333, 0.20])


def test_benjamini_hochberg_leaves_undefined_p_values_out():
    # a relative uplift over a control of 0 has no p-value: it is no test, so the others are
    # adjusted as three tests and it stays undefined (found when a tiny demo's arms had no clicks)
    adjusted = benjamini_hochberg([0.01, math.nan, 0.04, 0.03])
    assert np.isnan(adjusted[1])
    assert np.allclose(adjusted[[0, 2, 3]], [0.03, 0.04, 0.04])
    assert np.isnan(benjamini_hochberg([math.nan, math.nan])).all()
    assert len(benjamini_hochberg([])) == 0


def test_too_few_users_and_no_exposures_are_refused():
    with pytest.raises(ValueError, match="each arm needs at least 2 users, got 1 and 3"):
        compare_means([1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="the denominator sums to 0"):
        compare_ratios((np.zeros(3), np.zeros(3)), (np.ones(3), np.ones(3)))
    with pytest.raises(ValueError, match="one count per arm"):
        sample_ratio_check([10], [1])


def test_the_relative_intervals_and_their_p_values_agree_whatever_the_sign():
    """The relative uplift has a delta-method variance of its own: its interval and its
    p-value come from it (the difference's p disagreed near the boundary: a -29% uplift
    with an interval excluding 0 printed p = 0.068)."""
    rng = np.random.default_rng(11)
    for effect in (-0.3, -0.1, 0.0, 0.1, 0.3):
        for _ in range(40):
            control = rng.poisson(1.0, 80)
            treatment = rng.poisson(1.0 + effect, 80)
            for tau in (None, 0.1):
                c = compare_means(control, treatment, sequential_tau=tau)
                excludes = not (c.relative_ci[0] <= 0 <= c.relative_ci[1])
                assert excludes == (c.relative_p_value < 0.05), (effect, tau, c)
