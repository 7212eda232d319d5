"""The statistics of an online experiment's analysis: per-user metrics compared between a
treatment arm and its baseline (control), each figure with its method and source.

* **Difference of means** (engagements or watch time per user): Welch's normal interval for
  ``mean_t - mean_c``; the relative uplift ``mean_t / mean_c - 1`` by the delta method
  (Deng, Knoblich & Lu, "Applying the Delta Method in Metric Analytics", KDD 2018).
* **Ratio metrics** (CTR = clicks / exposures, summed per user): the ratio of sums per arm,
  its variance by the delta method over users (the unit of randomisation, not the exposure:
  exposures of one user are correlated), the same source.
* **CUPED** (Deng, Xu, Kohavi & Walker, WSDM 2013): ``y - theta (x - mean(x))`` with each
  user's pre-exposure value ``x`` and ``theta = cov(y, x) / var(x)`` pooled over both arms;
  the difference keeps its expectation and its variance shrinks by ``1 - rho^2``.
* **Always-valid intervals** for looking every day: the mixture sequential probability ratio
  test with a normal mixture ``N(0, tau^2)`` over the effect (Johari, Koomen, Pekelis &
  Walsh, "Always Valid Inference", Operations Research 2022): the interval
  ``d +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1 / alpha)))`` holds the
  true difference at every look at once with probability ``1 - alpha``.
* **Sample-ratio mismatch**: Pearson's chi-square of the arms' counts against their weights
  (``scipy.stats.chisquare``), flagged at p < 0.001 (Fabijan et al., KDD 2019); on exposures,
  divided by the design effect of users' clusters of exposures (Rao & Scott, JASA 1981).
* **Many metrics**: Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

Guarantees (tested by simulation with seeds, ``tests/test_experiment_statistics.py``): the
95% intervals cover the true difference in 95% (+-2.5%) of repeated experiments, the always
valid ones under daily looks keep the share of A/A experiments ever declared different under
alpha, and the SRM check flags a 52/48 split of 10,000 users.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Comparison:
    """Treatment against control on one metric."""

    control: float  # the control arm's value (mean, or ratio of sums)
    treatment: float
    difference: float  # treatment - control
    ci: tuple[float, float]  # of the difference
    p_value: float
    relative: float  # treatment / control - 1
    relative_ci: tuple[float, float]
    users: tuple[int, int]  # (control, treatment)
    method: str
    # the relative uplift's own test (its delta-method variance), which agrees with
    # ``relative_ci``; ``p_value`` tests the difference, and agrees with ``ci``
    relative_p_value: float = math.nan

    def significant(self) -> bool:
        return not (self.ci[0] <= 0.0 <= self.ci[1])


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def _half_width_and_p(estimate: float, variance: float, alpha: float,
                      sequential_tau: float | None) -> tuple[float, float]:
    """The interval's half width and the p-value of ``estimate`` (of variance ``variance``)
    against 0: fixed horizon (normal), or always valid with mixture scale ``sequential_tau``."""
    if sequential_tau is not None:
        return (always_valid_half_width(variance, sequential_tau, alpha),
                always_valid_p_value(estimate, variance, sequential_tau))
    p_value = (float(2 * stats.norm.sf(abs(estimate) / math.sqrt(variance)))
               if variance > 0 else (1.0 if estimate == 0 else 0.0))
    return _z(alpha) * math.sqrt(max(variance, 0.0)), p_value


def _compare(c_value: float, t_value: float, var_c: float, var_t: float, n: tuple[int, int],
             alpha: float, method: str, sequential_tau: float | None) -> Comparison:
    """The comparison of two estimates with their variances (of the estimates)."""
    difference = t_value - c_value
    half, p_value = _half_width_and_p(difference, var_c + var_t, alpha, sequential_tau)
    # relative uplift t/c - 1: delta method, Var(t/c) ~ var_t/c^2 + t^2 var_c / c^4; an
    # always-valid one uses the same mixture on the relative scale
    if c_value != 0:
        relative = t_value / c_value - 1
        rel_var = var_t / c_value ** 2 + t_value ** 2 * var_c / c_value ** 4
        rel_half, rel_p = _half_width_and_p(
            relative, rel_var, alpha,
            None if sequential_tau is None else sequential_tau / abs(c_value))
    else:
        relative, rel_half, rel_p = math.nan, math.nan, math.nan
    return Comparison(c_value, t_value, difference, (difference - half, difference + half),
                      p_value, relative, (relative - rel_half, relative + rel_half), n,
                      method + (" (always valid, mSPRT)" if sequential_tau is not None else ""),
                      rel_p)


def compare_means(control: np.ndarray, treatment: np.ndarray, alpha: float = 0.05,
                  sequential_tau: float | None = None) -> Comparison:
    """Per-user values of two arms: Welch's interval of the difference of means (normal
    approximation), or the always-valid one when ``sequential_tau`` is given."""
    c, t = np.asarray(control, np.float64), np.asarray(treatment, np.float64)
    _enough(c, t)
    return _compare(float(c.mean()), float(t.mean()), float(c.var(ddof=1) / len(c)),
                    float(t.var(ddof=1) / len(t)), (len(c), len(t)), alpha,
                    "difference of means, Welch (normal)", sequential_tau)


def ratio_and_variance(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """``sum(num) / sum(den)`` over users and the variance of that estimate by the delta
    method, the user being the unit (Deng et al. 2018, section 3)."""
    x, y = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    n = len(x)
    mx, my = x.mean(), y.mean()
    if my == 0:
        raise ValueError("the denominator sums to 0 (no exposures): the ratio is undefined")
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = float(np.cov(x, y, ddof=1)[0, 1])
    variance = (vx / my ** 2 - 2 * mx * cxy / my ** 3 + mx ** 2 * vy / my ** 4) / n
    return float(mx / my), float(max(variance, 0.0))


def compare_ratios(control: tuple[np.ndarray, np.ndarray],
                   treatment: tuple[np.ndarray, np.ndarray], alpha: float = 0.05,
                   sequential_tau: float | None = None) -> Comparison:
    """A ratio metric (per-user numerators and denominators of each arm, e.g. clicks and
    exposures): the delta-method interval of the difference of the arms' ratios."""
    _enough(control[0], treatment[0])
    c_value, c_var = ratio_and_variance(*control)
    t_value, t_var = ratio_and_variance(*treatment)
    return _compare(c_value, t_value, c_var, t_var, (len(control[0]), len(treatment[0])),
                    alpha, "ratio of sums, delta method", sequential_tau)


def cuped(values: np.ndarray, covariate: np.ndarray) -> tuple[np.ndarray, float]:
    """The CUPED-adjusted values (pass both arms together: theta is pooled) and the share of
    variance removed (``rho^2``)."""
    y, x = np.asarray(values, np.float64), np.asarray(covariate, np.float64)
    var_x = x.var(ddof=1)
    if var_x == 0:
        return y.copy(), 0.0
    theta = float(np.cov(y, x, ddof=1)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    removed = 1 - adjusted.var(ddof=1) / y.var(ddof=1) if y.var(ddof=1) > 0 else 0.0
    return adjusted, float(removed)


def always_valid_half_width(variance: float, tau: float, alpha: float = 0.05) -> float:
    """Half the width of the mSPRT interval for an estimate of variance ``variance``."""
    if variance <= 0:
        return 0.0
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2
                     * (math.log((variance + t2) / variance) + 2 * math.log(1 / alpha)))


def always_valid_p_value(difference: float, variance: float, tau: float) -> float:
    """``min(1, 1 / Lambda)``, the mSPRT statistic at this look (Johari et al. 2022); the
    running minimum over looks is the always-valid p-value."""
    if variance <= 0:
        return 1.0
    t2 = tau * tau
    log_lambda = (0.5 * math.log(variance / (variance + t2))
                  + t2 * difference ** 2 / (2 * variance * (variance + t2)))
    return float(min(1.0, math.exp(-log_lambda)))


@dataclass(frozen=True)
class SampleRatio:
    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]
    p_value: float
    mismatch: bool  # p < threshold


def sample_ratio_check(counts, weights, threshold: float = 0.001,
                       cluster_sizes=None) -> SampleRatio:
    """Pearson's chi-square of ``counts`` (users or exposures per arm) against the arms'
    ``weights``; a mismatch below ``threshold`` means the split itself is broken.

    Exposures come in clusters (a user's exposures share the user's arm), so their counts
    vary far more than independent draws would; with ``cluster_sizes`` (each user's
    exposures) the statistic is divided by the design effect ``sum(m^2) / sum(m)`` (Rao &
    Scott's first-order correction, JASA 1981), which makes it the users' chi-square when
    every user has the same number."""
    counts = np.asarray(counts, np.float64)
    shares = np.asarray(weights, np.float64) / float(np.sum(weights))
    if len(counts) != len(shares) or len(counts) < 2:
        raise ValueError("one count per arm, at least two arms")
    statistic = float(stats.chisquare(counts, shares * counts.sum()).statistic)
    if cluster_sizes is not None:
        sizes = np.asarray(cluster_sizes, np.float64)
        if sizes.sum() > 0:
            statistic /= float((sizes ** 2).sum() / sizes.sum())
    p_value = float(stats.chi2.sf(statistic, len(counts) - 1))
    return SampleRatio(tuple(int(c) for c in counts), tuple(float(s) for s in shares),
                       p_value, p_value < threshold)


def benjamini_hochberg(p_values) -> np.ndarray:
    """Adjusted p-values controlling the false discovery rate across metrics. An undefined
    p-value (NaN: e.g. a relative uplift over a control of 0) is no test: it stays NaN and
    does not count among the tests the others are adjusted for."""
    values = np.asarray(p_values, np.float64)
    adjusted = np.full_like(values, np.nan)
    defined = ~np.isnan(values)
    if defined.any():
        adjusted[defined] = stats.false_discovery_control(values[defined], method="bh")
    return adjusted


def _enough(control, treatment) -> None:
    if len(control) < 2 or len(treatment) < 2:
        raise ValueError(f"each arm needs at least 2 users, got {len(control)} and "
                         f"{len(treatment)}")


__all__ = ["Comparison", "compare_means", "compare_ratios", "ratio_and_variance", "cuped",
           "always_valid_half_width", "always_valid_p_value", "SampleRatio",
           "sample_ratio_check", "benjamini_hochberg"]
