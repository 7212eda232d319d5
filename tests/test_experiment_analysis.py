"""The analysis of one experiment from user_outcomes rows, judged by simulation with seeds:
intervals cover a known truth as often as they claim, CUPED narrows them without moving
them, a broken split is flagged, and what cannot be compared is said, not made up."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.experiments.analysis import analyze, format_table
from recsys.experiments.definitions import parse_experiments

EXPERIMENT = parse_experiments({"experiments": [{
    "name": "ranker-v2", "salt": "s", "layer": "ranking", "traffic": 1.0,
    "arms": [{"name": "control", "weight": 0.5},
             {"name": "treatment", "weight": 0.5, "changes": {"retrieval_weight": 0.5}}],
    "baseline": "control"}]}).experiments[0]


def user_rows(rng: np.random.Generator, n: int, ctr: dict[str, float],
              share_treatment: float = 0.5) -> tuple[pd.DataFrame, dict[str, float]]:
    """Users with a latent propensity (which the pre-period covariate also reflects)."""
    arm = np.where(rng.random(n) < share_treatment, "treatment", "control")
    propensity = rng.gamma(2.0, 0.5, n)  # mean 1
    exposures = rng.poisson(20, n) + 1
    p = np.clip(np.array([ctr[a] for a in arm]) * propensity, 0, 1)
    clicks = rng.binomial(exposures, p)
    pre = rng.poisson(30 * propensity * 0.1)  # last month's clicks
    users = [f"u{i}" for i in range(n)]
    rows = pd.DataFrame({
        "experiment": "ranker-v2", "arm": arm, "user_id": users,
        "first_exposure": pd.Timestamp("2026-11-01", tz="UTC"), "requests": 2,
        "exposures": exposures, "clicks": clicks, "likes": rng.binomial(clicks, 0.2),
        "skips": 0, "shares": 0, "watch_time_s": clicks * rng.gamma(2.0, 60.0, n),
        "engaged_requests": np.minimum(clicks, 2), "returned_d1": rng.integers(0, 2, n),
        "returned_d7": pd.array([None] * n, dtype="Int32"), "returning": 1,
        "device": rng.choice(["mobile", "desktop"], n), "country": "US", "language": "en",
        "other_arm_requests": 0})
    return rows, dict(zip(users, pre.astype(float), strict=True))


@pytest.mark.slow
def test_ctr_intervals_cover_the_true_uplift_and_cuped_narrows_them():
    truth = 0.055 / 0.05 - 1
    covered = covered_cuped = 0
    narrowing = []
    runs = 300
    for seed in range(runs):
        rows, pre = user_rows(np.random.default_rng(seed), 2_000,
                              {"control": 0.05, "treatment": 0.055})
        result = analyze(rows, EXPERIMENT, covariates=pre).result("ctr", "treatment")
        covered += result.fixed.relative_ci[0] <= truth <= result.fixed.relative_ci[1]
        covered_cuped += result.cuped.relative_ci[0] <= truth <= result.cuped.relative_ci[1]
        narrowing.append(result.cuped_narrowing)
    # 95% claimed: within 2.5 points over 300 runs (binomial sd 1.3 points)
    assert abs(covered / runs - 0.95) <= 0.025
    assert abs(covered_cuped / runs - 0.95) <= 0.025
    assert np.median(narrowing) > 0.1  # the covariate explains a real share of the variance


def test_every_metric_is_compared_with_bh_adjusted_p_values_and_a_readable_table():
    rows, pre = user_rows(np.random.default_rng(1), 1_000, {"control": 0.05, "treatment": 0.05})
    analysis = analyze(rows, EXPERIMENT, covariates=pre)
    metrics = [r.metric for r in analysis.results]
    assert metrics == ["ctr", "clicks_per_user", "engagements", "watch_time_s", "return_d1"]
    assert any("return_d7" in n for n in analysis.notes)  # no user has a day 7 yet
    for r in analysis.results:
        assert r.adjusted_p >= r.fixed.relative_p_value
        # the p printed beside the relative interval agrees with it
        excludes_zero = not (r.fixed.relative_ci[0] <= 0 <= r.fixed.relative_ci[1])
        assert excludes_zero == (r.fixed.relative_p_value < 0.05)
        width = r.sequential.ci[1] - r.sequential.ci[0]
        assert width > r.fixed.ci[1] - r.fixed.ci[0]  # always valid costs width
    assert {s["segment"] for s in analysis.segments} >= {"device"}
    table = format_table(analysis)
    assert "ranker-v2" in table and "treatment" in table and "sample ratio (users)" in table
    json.dumps(analysis.to_dict())  # plain JSON


def test_a_52_48_split_is_flagged_and_an_even_one_is_not():
    rows, _ = user_rows(np.random.default_rng(2), 10_000, {"control": 0.05, "treatment": 0.05},
                        share_treatment=0.48)
    broken = analyze(rows, EXPERIMENT)
    assert broken.srm_users.mismatch and any("sample ratio mismatch" in n for n in broken.notes)
    rows, _ = user_rows(np.random.default_rng(3), 10_000, {"control": 0.05, "treatment": 0.05})
    assert not analyze(rows, EXPERIMENT).srm_users.mismatch


def test_what_cannot_be_compared_is_said_not_made_up():
    rows, _ = user_rows(np.random.default_rng(4), 50, {"control": 0.05, "treatment": 0.05})
    rows.loc[rows.index[:3], "arm"] = "retired"
    alone = rows[rows["arm"] != "treatment"]
    alone = pd.concat([alone, rows[rows["arm"] == "treatment"].head(1)])
    analysis = analyze(alone, EXPERIMENT)
    assert analysis.results == []
    assert any("'retired'" in n for n in analysis.notes)
    assert any("fewer than 2 users" in n for n in analysis.notes)


def test_a_control_without_clicks_has_no_relative_uplift_and_the_rest_is_still_compared():
    # a small run (the demo's) where the control arm has no click at all: the relative uplift
    # of click metrics is undefined, and that must not stop the analysis of the others
    rows, _ = user_rows(np.random.default_rng(5), 60, {"control": 0.0, "treatment": 0.05})
    analysis = analyze(rows, EXPERIMENT)
    ctr = analysis.result("ctr", "treatment")
    assert np.isnan(ctr.fixed.relative) and np.isnan(ctr.adjusted_p)
    assert ctr.fixed.difference > 0
    defined = [r for r in analysis.results if not np.isnan(r.fixed.relative_p_value)]
    assert defined and all(0 <= r.adjusted_p <= 1 for r in defined)
    assert "ctr" in format_table(analysis)


def test_an_interleaving_experiment_is_judged_by_the_users_preferences():
    experiment = parse_experiments({"experiments": [{
        "name": "order", "method": "interleaving",
        "arms": [{"name": "ranked"}, {"name": "retrieval-order"}]}]}).experiments[0]
    rows, _ = user_rows(np.random.default_rng(5), 400, {"control": 0.05, "treatment": 0.05})
    rng = np.random.default_rng(6)
    rows["experiment"], rows["arm"] = "order", "interleaved"
    rows["team_clicks"] = [list(rng.choice(["ranked", "retrieval-order"], c, p=[0.35, 0.65]))
                           for c in rows["clicks"]]
    analysis = analyze(rows, experiment)
    il = analysis.interleaving
    assert il["winner"] == "retrieval-order" and il["p_value"] < 0.05
    assert sum(il["users_preferring"]) + il["ties"] == 400 and analysis.results == []
    assert "winner: retrieval-order" in format_table(analysis)
