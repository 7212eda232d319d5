"""Univariate drift: is a window of a feature's values distributed like its reference?

The test is chosen per feature by its type and the reference's size, with the defaults of
Evidently's data drift preset (its documented "how it works"), computed here with SciPy:

* reference of at most ``SMALL_REFERENCE`` (1,000) values: a hypothesis test, drift when its
  p-value is below ``threshold`` (0.05):

  - numbers with more than ``CATEGORICAL_MAX_UNIQUE`` (5) distinct values: two-sample
    Kolmogorov-Smirnov (``ks``);
  - two categories: the two-proportion z-test (``z``);
  - other categories (and numbers with at most 5 distinct values): chi-square
    (``chi_square``): here the two-sample test of homogeneity on the 2 x categories table,
    not a goodness-of-fit against the reference's shares taken as exact (which rejects
    more often than ``alpha`` when the reference is small);

* larger references: a distance, drift when it is at least ``threshold`` (0.1):

  - numbers: the Wasserstein distance divided by the reference's standard deviation
    (``wasserstein``; at least 0.001);
  - categories: the Jensen-Shannon distance of the two shares (``jensen_shannon``; natural
    logarithm, a category absent from one side given a share of 1e-4).

``psi`` (the population stability index over ten reference deciles, drift at 0.1) can be
chosen per feature. Missing values (None, NaN) are left out and reported as a share.

Guarantees: a hypothesis test rejects a window drawn from the reference's distribution with
probability ``threshold`` at most (up to the tests' own approximations; the tests check it
over seeded repetitions); results are pure functions of the values; a test name or a
threshold that does not fit is a ``ConfigError`` naming the feature.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

from recsys.errors import ConfigError

SMALL_REFERENCE = 1_000
CATEGORICAL_MAX_UNIQUE = 5
ABSENT_SHARE = 1e-4  # the share given to a category or bin one side lacks
MIN_SCALE = 0.001  # the least reference standard deviation Wasserstein is divided by
PSI_BINS = 10

KS, Z, CHI_SQUARE, WASSERSTEIN, JENSEN_SHANNON, PSI = (
    "ks", "z", "chi_square", "wasserstein", "jensen_shannon", "psi")
P_VALUE_TESTS = (KS, Z, CHI_SQUARE)  # drift when the statistic is below the threshold
TESTS = (KS, Z, CHI_SQUARE, WASSERSTEIN, JENSEN_SHANNON, PSI)
DEFAULT_THRESHOLDS = {KS: 0.05, Z: 0.05, CHI_SQUARE: 0.05, WASSERSTEIN: 0.1,
                      JENSEN_SHANNON: 0.1, PSI: 0.1}
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class DriftTestChoice:
    """A feature's test and threshold (``threshold`` None: the test's default)."""

    test: str
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ConfigError(f"test must be one of {list(TESTS)}, got {self.test!r}")
        t = self.threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not math.isfinite(t) or t <= 0
                              or (self.test in P_VALUE_TESTS and t >= 1)):
            bound = "in (0, 1)" if self.test in P_VALUE_TESTS else "> 0"
            raise ConfigError(f"threshold of {self.test} must be a number {bound}, got {t!r}")

    @property
    def limit(self) -> float:
        return DEFAULT_THRESHOLDS[self.test] if self.threshold is None else float(self.threshold)


@dataclass(frozen=True)
class DriftResult:
    """One feature's verdict for one window."""

    feature: str
    kind: str  # numeric or categorical
    test: str
    statistic: float  # a p-value for ks, z, chi_square; a distance for the others
    threshold: float
    drift: bool
    reference_size: int
    current_size: int
    missing_share: float  # of the current window

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_missing(value: Any) -> bool:
    """None or NaN: left out of every test and counted in ``missing_share``."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _present(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if not is_missing(v)]


def kind_of(values: Sequence[Any]) -> str:
    """``numeric`` for numbers with more than ``CATEGORICAL_MAX_UNIQUE`` distinct values,
    else ``categorical`` (strings, booleans, few distinct numbers)."""
    present = _present(values)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating))
                  and not isinstance(v, (bool, np.bool_)) for v in present)
    if numeric and len(set(present)) > CATEGORICAL_MAX_UNIQUE:
        return NUMERIC
    return CATEGORICAL


def default_test(kind: str, reference_size: int, categories: int) -> str:
    """Evidently's choice (the module docstring)."""
    if reference_size <= SMALL_REFERENCE:
        if kind == NUMERIC:
            return KS
        return Z if categories <= 2 else CHI_SQUARE
    return WASSERSTEIN if kind == NUMERIC else JENSEN_SHANNON


# -- the statistics ------------------------------------------------------------------------
def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    return float(stats.ks_2samp(reference, current).pvalue)


def _counts(reference: Sequence[Any], current: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each category seen on either side, in one order."""
    ref, cur = Counter(reference), Counter(current)
    categories = sorted(set(ref) | set(cur), key=repr)
    return (np.array([ref[c] for c in categories], dtype=np.float64),
            np.array([cur[c] for c in categories], dtype=np.float64))


def chi_square_p_value(reference: Sequence[Any], current: Sequence[Any]) -> float:
    """The chi-square test of homogeneity of the two samples' categories."""
    ref, cur = _counts(reference, current)
    if len(ref) < 2:
        return 1.0  # one category on both sides: nothing can differ
    return float(stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue)


def z_p_value(reference: Sequence[Any], current: Sequence[Any]) -> float:
    """The two-proportion z-test (pooled) on the share of one of the two categories."""
    ref, cur = _counts(reference, current)
    if len(ref) < 2:
        return 1.0
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = ref[0] / n1, cur[0] / n2
    pooled = (ref[0] + cur[0]) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / se))


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    scale = max(float(np.std(reference)), MIN_SCALE)
    return float(stats.wasserstein_distance(reference, current) / scale)


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1.0)
    return np.where(shares == 0, ABSENT_SHARE, shares)


def jensen_shannon(reference: Sequence[Any], current: Sequence[Any], kind: str) -> float:
    """The Jensen-Shannon distance (natural log) of the two shares: over the categories, or
    for numbers over common bins (Sturges' rule on both samples together)."""
    if kind == NUMERIC:
        ref, cur = np.asarray(reference, float), np.asarray(current, float)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        ref_counts = np.histogram(ref, edges)[0].astype(float)
        cur_counts = np.histogram(cur, edges)[0].astype(float)
    else:
        ref_counts, cur_counts = _counts(reference, current)
    return float(distance.jensenshannon(_shares(ref_counts), _shares(cur_counts)))


def psi(reference: Sequence[Any], current: Sequence[Any], kind: str) -> float:
    """The population stability index: ``sum (cur - ref) ln(cur / ref)`` over the shares of
    the reference's deciles (numbers) or of the categories."""
    if kind == NUMERIC:
        ref, cur = np.asarray(reference, float), np.asarray(current, float)
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        ref_counts = np.histogram(ref, edges)[0].astype(float)
        cur_counts = np.histogram(cur, edges)[0].astype(float)
    else:
        ref_counts, cur_counts = _counts(reference, current)
    p, q = _shares(ref_counts), _shares(cur_counts)
    return float(np.sum((q - p) * np.log(q / p)))


# -- one feature ---------------------------------------------------------------------------
def feature_drift(feature: str, reference: Sequence[Any], current: Sequence[Any],
                  choice: DriftTestChoice | None = None) -> DriftResult:
    """The verdict for one feature: ``choice`` (None: Evidently's default for its type and
    the reference's size). Needs at least two present values on each side."""
    ref, cur = _present(reference), _present(current)
    if len(ref) < 2 or len(cur) < 2:
        raise ValueError(f"{feature}: drift needs at least 2 values on each side, got "
                         f"{len(ref)} in the reference and {len(cur)} in the window")
    kind = kind_of(ref)
    test = choice.test if choice is not None else default_test(kind, len(ref),
                                                               len(set(ref) | set(cur)))
    if kind != NUMERIC and test in (KS, WASSERSTEIN):
        raise ConfigError(f"{feature}: {test} needs numbers, and the reference holds "
                          f"categories")
    if test == KS:
        value = ks_p_value(np.asarray(ref, float), np.asarray(cur, float))
    elif test == Z:
        if len(set(ref) | set(cur)) > 2:
            raise ConfigError(f"{feature}: z needs two categories, the values have "
                              f"{len(set(ref) | set(cur))}")
        value = z_p_value(ref, cur)
    elif test == CHI_SQUARE:
        value = chi_square_p_value(ref, cur)
    elif test == WASSERSTEIN:
        value = normed_wasserstein(np.asarray(ref, float), np.asarray(cur, float))
    elif test == JENSEN_SHANNON:
        value = jensen_shannon(ref, cur, kind)
    else:
        value = psi(ref, cur, kind)
    limit = (choice or DriftTestChoice(test)).limit
    drift = value < limit if test in P_VALUE_TESTS else value >= limit
    missing = 1.0 - len(cur) / len(current)
    return DriftResult(feature, kind, test, value, limit, bool(drift), len(ref), len(cur),
                       missing)


def parse_choices(raw: Mapping[str, Any] | None, where: str = "drift.features"
                  ) -> dict[str, DriftTestChoice]:
    """Per-feature tests from a config mapping ``{feature: {test: NAME, threshold: X}}``
    (either key may be left out: the default test, or the test's default threshold)."""
    out: dict[str, DriftTestChoice] = {}
    for feature, spec in (raw or {}).items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}.{feature} must be a mapping with test and/or "
                              f"threshold, got {spec!r}")
        unknown = set(spec) - {"test", "threshold"}
        if unknown:
            raise ConfigError(f"{where}.{feature}: unknown field(s) {sorted(unknown)} (a "
                              "feature takes test and threshold)")
        if "test" not in spec:
            raise ConfigError(f"{where}.{feature}: a threshold needs its test (one of "
                              f"{list(TESTS)})")
        try:
            out[feature] = DriftTestChoice(spec["test"], spec.get("threshold"))
        except ConfigError as exc:
            raise ConfigError(f"{where}.{feature}: {exc}") from None
    return out


__all__ = ["DriftResult", "DriftTestChoice", "feature_drift", "parse_choices", "kind_of",
           "is_missing",
           "default_test", "TESTS", "DEFAULT_THRESHOLDS", "NUMERIC", "CATEGORICAL",
           "ks_p_value", "chi_square_p_value", "z_p_value", "normed_wasserstein",
           "jensen_shannon", "psi"]
