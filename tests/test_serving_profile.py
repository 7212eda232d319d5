"""Serving profiles: answers counted and sampled into hourly and daily windows in Redis (an
embedded Redis), a reservoir that stays uniform, and the real service's sampled answers read
back with `recsys monitor window` and tested with `recsys monitor drift` against the
version's reference profile."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest
from scipy import stats

from recsys.monitoring.serving_windows import Answer, ServingWindows, window_names
from workflows.cli.main import main

HOUR = int(dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture
def redis_url(tmp_path):
    from recsys.stream.redis_connection import start_embedded, stop_embedded

    url = start_embedded(tmp_path / "redis")
    yield url
    stop_embedded(tmp_path / "redis")


@pytest.fixture
def windows(redis_url):
    import redis

    return ServingWindows(redis.Redis.from_url(redis_url), max_samples=500,
                          rng=random.Random(7))


def test_window_names_are_utc_hours_and_days():
    assert window_names(HOUR + 3 * 3600 + 59) == ("h2026120203", "d20261202")


def test_answers_are_counted_per_window_and_version(windows):
    answers = [Answer(HOUR + 10, "3", "full", ["i1", "i2"], ["two-tower", "fresh"]),
               Answer(HOUR + 20, "3", "global-popular", ["i2", "i3"], ["popular"] * 2, True),
               Answer(HOUR + 3600, "3", "full", ["i4"], ["two-tower"],
                      sample={"inputs": {"device": "tv"}, "top_score": 0.5}),
               Answer(HOUR + 30, "4", "full", ["i9"], ["two-tower"])]
    assert windows.add(answers) == 4
    first = windows.read_window("3", "h2026120200")
    assert first.counts == {"answers": 2, "tier:full": 1, "tier:global-popular": 1,
                            "cold_start": 1, "source:two-tower": 1, "source:fresh": 1,
                            "source:popular": 2}
    assert first.distinct_items == 3 and first.samples == [] and first.offered == 0
    day = windows.read_window("3", "d20261202")
    assert day.counts["answers"] == 3 and day.distinct_items == 4
    assert day.samples == [{"inputs": {"device": "tv"}, "top_score": 0.5, "tier": "full",
                            "at_s": HOUR + 3600}]
    assert windows.read_window("4", "d20261202").counts["answers"] == 1
    assert windows.windows() == [("3", "d20261202"), ("3", "h2026120200"),
                                 ("3", "h2026120201"), ("4", "d20261202"),
                                 ("4", "h2026120200")]
    assert windows.windows("4") == [("4", "d20261202"), ("4", "h2026120200")]


def test_the_reservoir_keeps_a_uniform_sample_of_what_was_offered(windows):
    offered = 5_000
    for start in range(0, offered, 1_000):
        windows.add([Answer(HOUR + 5, "1", "full", [], [], sample={"n": n})
                     for n in range(start, start + 1_000)])
    window = windows.read_window("1", "h2026120200")
    kept = np.array([s["n"] for s in window.samples])
    assert window.offered == offered and len(kept) == 500 and len(set(kept)) == 500
    # uniform over the offers: the kept numbers fill ten equal bins evenly, early and late
    # offers alike (a reservoir that kept the first 500, or the last, fails this)
    counts = np.histogram(kept, bins=10, range=(0, offered))[0]
    assert stats.chisquare(counts).pvalue > 0.001, counts


def test_the_real_service_profiles_its_answers_and_drift_reads_them(
        service_files, small_data, redis_url, tmp_path, capsys):
    import redis

    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.pipeline import RecommendationRequest
    from serving.recommendations.service import build_recommender
    from serving.recommendations.serving_profile import ServingProfile

    cfg = ServiceConfig(repo=service_files.repo, model_base_path=service_files.base,
                        request_deadline_ms=10_000, features_timeout_ms=3_000,
                        retrieval_timeout_ms=3_000, ranking_timeout_ms=3_000,
                        profile_sample_rate=1.0)
    recommender = build_recommender(cfg)
    profile = ServingProfile(ServingWindows(redis.Redis.from_url(redis_url)), flush_s=0.1)
    users = small_data.test["user_id"].drop_duplicates().head(60).tolist()
    try:
        for user in users:
            profile.observe(recommender.recommend(RecommendationRequest(user, k=10)))
    finally:
        profile.close()
        recommender.close()
        recommender.models.close()
    assert profile.written == len(users) and profile.dropped == 0

    capsys.readouterr()
    assert main(["monitor", "window", "--redis-url", redis_url, "--list"]) == 0
    version, window = next(line.split()[1:] for line in capsys.readouterr().out.splitlines()
                           if line.startswith("version") and " h" in line)
    parquet = tmp_path / "window.parquet"
    assert main(["monitor", "window", "--redis-url", redis_url, "--version", version,
                 "--window", window, "--out", str(parquet), "--catalogue-size", "500"]) == 0
    printed = capsys.readouterr().out
    assert f"{len(users):,} answers" in printed and "tier:full" in printed
    summary = json.loads(parquet.with_suffix(".json").read_text())
    assert summary["samples"] == len(users) and 0 < summary["coverage"] <= 1

    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert {"history_item_ids", "device", "top_score", "embedding"} <= set(table.column_names)
    assert "user_id" not in table.column_names
    # a reference profile as the export writes one: training rows' inputs; embeddings and
    # top scores (here the window's own: the plumbing is under test, MMD in test_drift)
    from recsys.monitoring.profile import build_profile, write_profile

    served = table.to_pydict()
    reference = tmp_path / "reference"
    write_profile(reference, build_profile(
        {c: small_data.train[c].tolist() for c in ("device", "country", "history_item_ids")},
        embeddings=np.asarray(served["embedding"]), scores=np.asarray(served["top_score"]),
        identifiers=("history_item_ids",)))
    assert main(["monitor", "drift", "--model", str(reference), "--window", str(parquet),
                 "--output", str(tmp_path / "drift.json")]) == 0
    report = json.loads((tmp_path / "drift.json").read_text())
    tested = {f["feature"]: f for f in report["features"]}
    assert {"device", "history_item_ids#length", "top_score", "query_embedding"} <= set(tested)
    assert tested["query_embedding"]["test"] == "mmd"


@pytest.mark.parametrize("argv, message", [
    (["--version", "3"], "give --version and --window"),
    (["--version", "3", "--window", "h2026120200"], "no window h2026120200 of version 3"),
])
def test_bad_window_requests_are_named(redis_url, capsys, argv, message):
    code = main(["monitor", "window", "--redis-url", redis_url, *argv])
    assert code != 0 and message in capsys.readouterr().err


def test_bad_window_flags_are_refused(capsys):
    for argv in (["--window", "2026120200"], ["--window", "h20261202"],
                 ["--catalogue-size", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(["monitor", "window", *argv])
        assert exc.value.code == 2
    code = main(["monitor", "window", "--redis-url", "redis://127.0.0.1:1/0", "--list"])
    assert code != 0 and "cannot reach Redis" in capsys.readouterr().err
