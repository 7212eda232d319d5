"""Exploration in closed loop: simulated users of the small platform drive the real API with a
softmax logging policy, the real stream worker writes decisions and exposures to a lake and
teaches the bandit from them, `recsys ope` (Beam) estimates from that lake, an A/B test runs
the bandit against no exploration, and a click reaches the service's bandit parameters.
Seeded; a small version of ``benchmarks/exploration_simulation.py``."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest
from retrieval_support import PLATFORM

from recsys.data.lake import Lake
from workflows.exploration_acceptance import format_report, run_exploration_acceptance
from workflows.simulator import SimulationConfig

GENEROUS = {"request_deadline_ms": 10_000, "features_timeout_ms": 3_000,
            "retrieval_timeout_ms": 3_000, "ranking_timeout_ms": 3_000}


@pytest.mark.slow
def test_logging_ope_ab_and_freshness_through_the_real_api(service_files, tmp_path):
    repo = tmp_path / "feature_repo"  # the stream worker writes to its online store
    shutil.copytree(service_files.repo, repo, ignore=shutil.ignore_patterns("*.sock"))
    run = tmp_path / "run"
    report = run_exploration_acceptance(
        repo, service_files.base, PLATFORM, run,
        SimulationConfig(days=1, users=200, sessions=2.0, seed=3),
        SimulationConfig(days=1, users=200, sessions=2.0, seed=4), replicates=100,
        **GENEROUS)
    print(format_report(report))
    lake = Lake(run / "lake")
    decisions = lake.read("decisions").to_pandas()
    exposures = lake.read("exposures").to_pandas()
    assert report.logging_requests > 100 and len(decisions) >= report.logging_requests
    # every exploring answer's exposures carry the decision's propensities, slot by slot
    logged = exposures[exposures["policy"].notna()].sort_values(["request_id", "position"])
    first = decisions.iloc[0]
    rows = logged[logged["request_id"] == first["request_id"]]
    assert list(rows["rank"]) == list(first["ranks"])
    assert rows["propensity"].tolist() == pytest.approx(list(first["propensities"]), rel=1e-6)
    # the bandit learned from the logging policy's randomised slots before the test
    assert report.bandit_shown > 0
    # OPE of the ranked list from the logs: sound weights, a finite estimate
    none = report.ope["none"]
    assert 0.7 < none["mean_weight"]["estimate"] < 1.3
    assert all(math.isfinite(none[name]["estimate"]) for name in ("snips", "dr"))
    # both arms served and measured; the bandit shows more of the catalogue
    assert set(report.arms) == {"none", "bandit"}
    assert report.arms["bandit"]["distinct_items"] > report.arms["none"]["distinct_items"]
    assert not pd.isna(report.arms["bandit"]["true_clicks_per_answer"])
    # a click reaches the service's bandit parameters (the figure is in the benchmark)
    assert len(report.freshness_s) >= 1
    assert (run / "exploration_acceptance.json").exists()
