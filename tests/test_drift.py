"""Drift tests judged as statistical methods: over seeded repetitions, windows drawn from the
reference's distribution are flagged at most as often as the test's level (the hypothesis
tests) or never (the distances, on large samples); shifted windows are flagged; the statistics
equal values computed by hand; bad configs are refused naming the feature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recsys.errors import ConfigError
from recsys.monitoring.alerts import AlertConfig, DriftTracker
from recsys.monitoring.drift import (
    CATEGORICAL,
    NUMERIC,
    DriftResult,
    DriftTestChoice,
    chi_square_p_value,
    default_test,
    feature_drift,
    jensen_shannon,
    kind_of,
    parse_choices,
    psi,
    z_p_value,
)
from recsys.monitoring.embedding_drift import embedding_drift
from recsys.monitoring.profile import build_profile, drift_report, read_profile, write_profile

RUNS = 400
COUNTRIES = np.array(["US", "GB", "DE", "FR", "IN", "BR"])
SHARES = np.array([0.4, 0.2, 0.15, 0.1, 0.1, 0.05])


def _upper(alpha: float, runs: int) -> float:
    """The most flags of ``runs`` a level-``alpha`` test may raise before we call it
    miscalibrated (binomial, one-sided 0.999)."""
    return stats.binom.ppf(0.999, runs, alpha) / runs


def _numbers(rng, n, shift=0.0):
    return (rng.gamma(2.0, 3.0, size=n) + shift).tolist()  # skewed, like engagement counts


def _countries(rng, n, shares=SHARES):
    return rng.choice(COUNTRIES, size=n, p=shares).tolist()


def _devices(rng, n, mobile=0.6):
    return np.where(rng.random(n) < mobile, "mobile", "tv").tolist()


@pytest.mark.parametrize("draw, test", [(_numbers, "ks"), (_countries, "chi_square"),
                                        (_devices, "z")])
def test_small_reference_tests_flag_no_more_than_their_level(draw, test):
    flags = 0
    for run in range(RUNS):
        rng = np.random.default_rng([run, 1])
        result = feature_drift("f", draw(rng, 600), draw(rng, 400))
        assert result.test == test and result.threshold == 0.05
        flags += result.drift
    assert flags / RUNS <= _upper(0.05, RUNS), flags  # calibrated: at most alpha
    assert flags / RUNS >= 0.01  # and a real test (it does reject sometimes)


@pytest.mark.parametrize("draw, test", [(_numbers, "wasserstein"),
                                        (_countries, "jensen_shannon")])
def test_large_reference_distances_raise_no_false_alarm(draw, test):
    for run in range(100):
        rng = np.random.default_rng([run, 2])
        result = feature_drift("f", draw(rng, 5_000), draw(rng, 2_000))
        assert result.test == test and not result.drift, result


def test_shifts_are_flagged_by_every_default_test():
    rng = np.random.default_rng(3)
    moved = np.array([0.1, 0.1, 0.15, 0.1, 0.1, 0.45])  # tastes move, a country grows
    cases = [(_numbers(rng, 600), _numbers(rng, 400, shift=1.5), "ks"),
             (_countries(rng, 600), _countries(rng, 400, moved), "chi_square"),
             (_devices(rng, 600), _devices(rng, 400, mobile=0.45), "z"),
             (_numbers(rng, 5_000), _numbers(rng, 2_000, shift=1.5), "wasserstein"),
             (_countries(rng, 5_000), _countries(rng, 2_000, moved), "jensen_shannon")]
    for reference, current, test in cases:
        result = feature_drift("f", reference, current)
        assert result.test == test and result.drift, result
    # a country the reference never saw
    new = feature_drift("country", _countries(rng, 5_000),
                        _countries(rng, 1_500) + ["NG"] * 500)
    assert new.drift and new.test == "jensen_shannon"


def test_statistics_equal_hand_computed_values():
    reference, current = ["a"] * 60 + ["b"] * 40, ["a"] * 30 + ["b"] * 70
    # two proportions: pooled p = 90/200, se = sqrt(p(1-p)(1/100+1/100))
    pooled = 0.45
    z = (0.6 - 0.3) / math.sqrt(pooled * (1 - pooled) * 0.02)
    assert z_p_value(reference, current) == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    # with two categories the chi-square of homogeneity is the z-test squared
    assert chi_square_p_value(reference, current) == pytest.approx(
        z_p_value(reference, current), rel=1e-9)
    # PSI and Jensen-Shannon of the shares (0.6, 0.4) -> (0.3, 0.7)
    expected_psi = (0.3 - 0.6) * math.log(0.3 / 0.6) + (0.7 - 0.4) * math.log(0.7 / 0.4)
    assert psi(reference, current, CATEGORICAL) == pytest.approx(expected_psi, rel=1e-12)
    m = np.array([0.45, 0.55])
    kl = lambda p, q: float(np.sum(p * np.log(p / q)))  # noqa: E731
    expected_js = math.sqrt((kl(np.array([0.6, 0.4]), m) + kl(np.array([0.3, 0.7]), m)) / 2)
    assert jensen_shannon(reference, current, CATEGORICAL) == pytest.approx(expected_js,
                                                                           rel=1e-12)
    # normed Wasserstein of a pure shift is the shift over the reference's spread
    values = np.linspace(0, 10, 1_001)
    result = feature_drift("x", values.tolist(), (values + 0.5).tolist(),
                           DriftTestChoice("wasserstein"))
    assert result.statistic == pytest.approx(0.5 / values.std(), rel=1e-9)


def test_types_sizes_missing_values_and_choices():
    assert kind_of([1.5, 2.0, 3.0, 4.0, 5.0, 6.5]) == NUMERIC
    assert kind_of([1, 2, 3, 1, 2]) == CATEGORICAL  # few distinct numbers
    assert kind_of(["a", "b"]) == CATEGORICAL
    assert default_test(NUMERIC, 1_000, 50) == "ks"
    assert default_test(NUMERIC, 1_001, 50) == "wasserstein"
    assert default_test(CATEGORICAL, 10, 2) == "z"
    assert default_test(CATEGORICAL, 10, 3) == "chi_square"
    rng = np.random.default_rng(4)
    current = _numbers(rng, 300) + [None] * 50 + [float("nan")] * 50
    result = feature_drift("f", _numbers(rng, 500), current, DriftTestChoice("psi", 0.25))
    assert result.test == "psi" and result.threshold == 0.25
    assert result.current_size == 300 and result.missing_share == pytest.approx(0.25)
    assert set(result.to_dict()) >= {"feature", "test", "statistic", "drift"}


@pytest.mark.parametrize("raw, message", [
    ({"age": {"test": "t-test"}}, r"drift\.features\.age: test must be one of"),
    ({"age": {"test": "ks", "threshold": 1.5}}, r"drift\.features\.age: threshold of ks "
                                                r"must be a number in \(0, 1\), got 1\.5"),
    ({"age": {"test": "psi", "threshold": -1}}, r"threshold of psi must be a number > 0"),
    ({"age": {"threshold": 0.2}}, r"drift\.features\.age: a threshold needs its test"),
    ({"age": {"test": "ks", "alpha": 0.1}}, r"unknown field\(s\) \['alpha'\]"),
    ({"age": "ks"}, r"drift\.features\.age must be a mapping"),
])
def test_bad_choices_are_refused_naming_the_feature(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_choices(raw)


def test_bad_data_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="f: drift needs at least 2 values on each side, got "
                                         "5 in the reference and 1 in the window"):
        feature_drift("f", [1, 2, 3, 4, 5], [None, 3])
    with pytest.raises(ConfigError, match="country: ks needs numbers"):
        feature_drift("country", ["US", "GB"] * 5, ["US"] * 4, DriftTestChoice("ks"))
    with pytest.raises(ConfigError, match="device: z needs two categories"):
        feature_drift("device", ["a", "b", "c"] * 3, ["a"] * 4, DriftTestChoice("z"))
    assert parse_choices({"age": {"test": "ks"}})["age"].limit == 0.05


def test_embedding_drift_is_calibrated_and_sees_a_moved_population():
    flags = 0
    runs = 100
    for run in range(runs):
        rng = np.random.default_rng([run, 5])
        flags += embedding_drift(rng.normal(size=(120, 8)), rng.normal(size=(80, 8)),
                                 permutations=99, seed=run).drift
    assert flags / runs <= _upper(0.05, runs), flags
    rng = np.random.default_rng(6)
    shifted = rng.normal(size=(80, 8))
    shifted[:, 0] += 0.8  # users' tastes moved along one direction
    result = embedding_drift(rng.normal(size=(120, 8)), shifted, permutations=99)
    assert result.drift and result.p_value <= 0.02
    with pytest.raises(ValueError, match=r"two \(n, d\) arrays of one width"):
        embedding_drift(np.zeros((5, 3)), np.zeros((5, 4)))


def test_profiles_sample_lists_ids_and_missing_values_and_round_trip(tmp_path):
    rng = np.random.default_rng(8)
    n = 3_000
    columns = {"user_id": [f"u{i}" for i in range(n)],
               "history_item_ids": [[f"i{j}" for j in range(i % 7)] for i in range(n)],
               "history_categories": [list(rng.choice(["drama", "news"], i % 4))
                                      for i in range(n)],
               "engagements": [None if i % 10 == 0 else float(v)
                               for i, v in enumerate(rng.gamma(2.0, 3.0, n))],
               "country": _countries(rng, n)}
    embeddings, scores = rng.normal(size=(n, 4)), rng.random(n)
    profile = build_profile(columns, sample_size=1_000, seed=3, embeddings=embeddings,
                            scores=scores, identifiers=("user_id", "history_item_ids"))
    assert profile == build_profile(columns, sample_size=1_000, seed=3, embeddings=embeddings,
                                    scores=scores, identifiers=("user_id", "history_item_ids"))
    assert profile != build_profile(columns, sample_size=1_000, seed=4, embeddings=embeddings,
                                    scores=scores, identifiers=("user_id", "history_item_ids"))
    cols = profile["columns"]
    assert set(cols) == {"history_item_ids#length", "history_categories#length",
                         "history_categories#values", "engagements", "country"}
    assert cols["engagements"]["rows"] == n and cols["engagements"]["missing"] == 300
    assert len(cols["engagements"]["sample"]) == 1_000
    assert set(cols["engagements"]["sample"]) <= set(columns["engagements"])  # own values
    assert len(profile["query_embeddings"]) == 300 and len(profile["scores"]) == 1_000
    write_profile(tmp_path, profile)
    assert read_profile(tmp_path) == profile and read_profile(tmp_path / "none") is None
    broken = tmp_path / "broken"
    (broken / "assets.extra").mkdir(parents=True)
    (broken / "assets.extra" / "profile.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken/assets.extra/profile.json is not a "
                                          r"reference profile \(not JSON"):
        read_profile(broken)
    (broken / "assets.extra" / "profile.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="is not a reference profile \\(no columns mapping"):
        read_profile(broken)
    window = {"country": ["NG"] * 400, "engagements": [None] * 400,
              "history_categories": [["news"] * 3] * 400}
    verdicts = {r.feature: r for r in drift_report(profile, window)}
    assert set(verdicts) == {"country", "history_categories#length",
                             "history_categories#values"}  # all-missing left out
    assert all(r.drift for r in verdicts.values())


def _window(rng, features: int, shifted: tuple[int, ...] = (), shift: float = 2.0):
    return [feature_drift(f"f{j}", _numbers(rng, 500),
                          _numbers(rng, 300, shift=shift if j in shifted else 0.0))
            for j in range(features)]


@pytest.mark.parametrize("correction, most", [("none", 1.0), ("bonferroni", 0.05),
                                              ("benjamini-hochberg", 0.05)])
def test_corrections_hold_a_window_of_many_features_to_its_level(correction, most):
    windows, features = 300, 10
    flagged = 0
    for run in range(windows):
        verdict = DriftTracker(AlertConfig(correction=correction)).update(
            _window(np.random.default_rng([run, 9]), features))
        flagged += bool(verdict.drifting)
    share = flagged / windows
    if correction == "none":  # ten tests at 5%: about 1 - 0.95 ** 10 = 40% of windows
        assert 0.25 < share < 0.55, share
    else:
        assert share <= _upper(most, windows), share


def test_a_feature_alerts_after_k_drifting_windows_in_a_row_and_only_it():
    tracker = DriftTracker(AlertConfig(consecutive_windows=3))
    rng = np.random.default_rng(10)
    alerts = []
    for window in range(1, 9):
        shifted = (4,) if window >= 4 else ()
        verdict = tracker.update(_window(rng, 8, shifted))
        alerts += [(window, f) for f in verdict.alerts]
    assert alerts == [(6, "f4")]  # drifting from window 4: the third in a row is window 6
    assert tracker.streaks["f4"] == 5 and tracker.windows == 8
    again = DriftTracker.from_dict(tracker.to_dict())
    assert again.streaks == tracker.streaks and again.cfg == tracker.cfg


def test_streaks_reset_on_a_quiet_window_and_survive_an_absent_feature():
    def result(feature, drift):
        return DriftResult(feature, "numeric", "wasserstein", 0.5 if drift else 0.01, 0.1,
                           drift, 2_000, 500, 0.0)

    tracker = DriftTracker(AlertConfig(consecutive_windows=2, correction="none"))
    assert tracker.update([result("a", True), result("b", True)]).alerts == []
    assert tracker.update([result("a", False)]).alerts == []  # b absent: keeps its streak
    assert tracker.update([result("a", True), result("b", True)]).alerts == ["b"]
    assert tracker.update([result("a", True), result("b", True)]).alerts == ["a"]


@pytest.mark.parametrize("raw, message", [
    ({"consecutive_windows": 0}, "consecutive_windows must be a positive integer, got 0"),
    ({"correction": "holm"}, "correction must be one of"),
    ({"windows": 3}, "unknown"),
])
def test_bad_alert_configs_are_refused_naming_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        AlertConfig.from_dict(raw)
