"""Live quality per model version from the outcome join's request outcomes: CTR with its
delta-method interval over users, per period and segment; a version against another, whose
interval covers the true relative change as often as it claims (seeded simulations)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.monitoring.live_quality import compare_versions, quality_table
from workflows.cli.main import main

T0 = pd.Timestamp("2026-12-02T10:00:00Z")


def simulated(rng, users: int, ctr: dict[int, float], exposures: int = 10,
              requests_per_user: int = 3) -> pd.DataFrame:
    """Answers of ``users`` users split between versions; each user has a taste that moves
    their CTR (users are the unit: their answers are correlated)."""
    rows = []
    versions = list(ctr)
    for u in range(users):
        version = versions[u % len(versions)]
        taste = rng.beta(2, 2) * 2  # mean 1
        for r in range(requests_per_user):
            clicks = rng.binomial(exposures, min(1.0, ctr[version] * taste))
            rows.append({"request_id": f"r{u}-{r}", "user_id": f"u{u}",
                         "timestamp": T0 + pd.Timedelta(minutes=20 * r + u % 7),
                         "retrieval_version": version, "exposures": exposures,
                         "clicks": clicks, "watch_time_s": float(clicks * 30),
                         "device": "tv" if u % 3 == 0 else "mobile", "country": "US"})
    return pd.DataFrame(rows)


def test_ctr_per_version_period_and_segment():
    frame = pd.DataFrame([
        {"request_id": "a", "user_id": "u1", "timestamp": T0, "retrieval_version": 1,
         "exposures": 10, "clicks": 2, "watch_time_s": 60.0, "device": "tv", "country": "US"},
        {"request_id": "b", "user_id": "u2", "timestamp": T0 + pd.Timedelta(minutes=5),
         "retrieval_version": 1, "exposures": 10, "clicks": 0, "watch_time_s": 0.0,
         "device": "mobile", "country": "US"},
        {"request_id": "c", "user_id": "u1", "timestamp": T0 + pd.Timedelta(hours=1),
         "retrieval_version": 2, "exposures": 5, "clicks": 1, "watch_time_s": 30.0,
         "device": "tv", "country": "US"},
        {"request_id": "d", "user_id": "u3", "timestamp": T0 + pd.Timedelta(hours=1),
         "retrieval_version": None, "exposures": 5, "clicks": 0, "watch_time_s": 0.0,
         "device": None, "country": "US"}])
    table = quality_table(frame, "hour")
    first = table.iloc[0]
    assert (first["version"], first["requests"], first["users"], first["clicks"]) == (
        "1", 2, 2, 2)
    assert first["ctr"] == pytest.approx(0.1) and first["ctr_low"] < 0.1 < first["ctr_high"]
    one_user = table[table["version"] == "2"].iloc[0]
    assert one_user["ctr"] == pytest.approx(0.2) and np.isnan(one_user["ctr_low"])
    assert set(table["version"]) == {"1", "2", "none"}  # a popular answer has no version
    daily = quality_table(frame, "day", "device")
    assert set(zip(daily["version"], daily["device"])) == {
        ("1", "tv"), ("1", "mobile"), ("2", "tv"), ("none", "unknown")}
    with pytest.raises(ValueError, match="period must be one of"):
        quality_table(frame, "week")
    with pytest.raises(ValueError, match="segment must be one of"):
        quality_table(frame, "hour", "age")


def test_the_relative_change_interval_covers_the_truth_as_often_as_it_claims():
    rng = np.random.default_rng(11)
    truth = 0.06 / 0.05 - 1
    covered = 0
    runs = 300
    for _ in range(runs):
        found = compare_versions(simulated(rng, 300, {1: 0.05, 2: 0.06}), 1, 2)
        covered += found.low <= truth <= found.high
    # 95% intervals: a binomial(300, 0.95) count stays within [271, 295] with 99.9%
    assert 271 <= covered <= 295, covered
    with pytest.raises(ValueError, match="version 3 served 0 user"):
        compare_versions(simulated(rng, 20, {1: 0.05, 2: 0.06}), 1, 3)


def test_the_quality_command_prints_writes_and_plots(tmp_path, capsys):
    outcomes = tmp_path / "outcomes" / "request_outcomes"
    outcomes.mkdir(parents=True)
    simulated(np.random.default_rng(3), 200, {1: 0.05, 2: 0.02}).to_parquet(
        outcomes / "part-0.parquet")
    code = main(["monitor", "quality", "--outcomes", str(tmp_path / "outcomes"), "--compare",
                 "1:2", "--segment", "device", "--output", str(tmp_path / "q.json"),
                 "--plot", str(tmp_path / "q.png")])
    out = capsys.readouterr().out
    assert code == 0 and "version 2 against 1" in out
    document = json.loads((tmp_path / "q.json").read_text())
    assert document["comparison"]["high"] < 0  # a CTR cut by more than half is seen as such
    assert {r["device"] for r in document["rows"]} == {"tv", "mobile"}
    assert (tmp_path / "q.png").stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["--outcomes", "NOWHERE"], "does not exist"),
    (["--outcomes", "OLD"], "has no retrieval_version"),
    (["--outcomes", "GOOD", "--compare", "1:9"], "--compare 1:9: version 9 served 0 user"),
])
def test_bad_quality_inputs_are_named(tmp_path, capsys, argv, message):
    old = tmp_path / "old" / "request_outcomes"
    old.mkdir(parents=True)
    pd.DataFrame({"request_id": ["a"], "clicks": [1]}).to_parquet(old / "p.parquet")
    good = tmp_path / "good" / "request_outcomes"
    good.mkdir(parents=True)
    simulated(np.random.default_rng(1), 20, {1: 0.05}).to_parquet(good / "p.parquet")
    argv = [{"NOWHERE": str(tmp_path / "none"), "OLD": str(tmp_path / "old"),
             "GOOD": str(tmp_path / "good")}.get(a, a) for a in argv]
    code = main(["monitor", "quality", "--output", str(tmp_path / "q.json"), *argv])
    assert code != 0 and message in capsys.readouterr().err


def test_bad_quality_flags_are_refused_by_the_parser():
    for argv in (["--compare", "1-2"], ["--compare", "0:2"], ["--period", "week"],
                 ["--alpha", "2"], ["--segment", "age"]):
        with pytest.raises(SystemExit) as exc:
            main(["monitor", "quality", "--outcomes", "o", *argv])
        assert exc.value.code == 2
