"""Training/serving skew: the online store against the offline store's point-in-time values for
the same users at the same time; a feature written online in the wrong unit is reported as
skew on exactly that feature, on a real Feast repository."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pytest

from recsys.monitoring.skew import compare_features, same_value
from workflows.cli.main import main


def test_values_compare_up_to_float32_rounding_and_element_by_element():
    assert same_value(1.0, np.float32(1.0000001)) and not same_value(1.0, 1.001)
    assert same_value(None, float("nan")) and not same_value(None, 0.0)
    assert same_value(["a", "b"], np.array(["a", "b"])) and not same_value(["a"], ["a", "b"])
    assert same_value("US", "US") and not same_value("US", "GB")
    assert same_value(3, 3.0) and not same_value(True, False)


def test_each_feature_is_compared_pair_by_pair():
    users = ["u1", "u2", "u3", "u4"]
    online = {"watch": [10.0, 20.0, None, 40.0], "country": ["US", "GB", None, None]}
    offline = {"watch": [10.0, 20.0, 30.0, 40000.0], "country": ["US", "GB", None, None]}
    results = compare_features(users, online, offline, [("v", "watch"), ("v", "country")],
                               threshold=0.1)
    watch, country = results
    assert (watch.compared, watch.differing, watch.online_missing) == (4, 2, 1)
    assert watch.share == 0.5 and watch.skew and watch.example == ("u3", None, 30.0)
    assert (country.compared, country.differing, country.skew) == (2, 0, False)
    assert watch.to_dict()["share"] == 0.5


@pytest.fixture(scope="module")
def materialized(small_repo, tmp_path_factory):
    """A private copy of the small platform's repository with its online store filled (from
    1970: profiles of users without a sign-up time are dated at the epoch)."""
    from recsys.features.store import materialize

    repo = tmp_path_factory.mktemp("skew") / "feature_repo"
    shutil.copytree(small_repo, repo, ignore=shutil.ignore_patterns("*.sock"))
    materialize(repo, end=dt.datetime.now(dt.timezone.utc),
                start=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    return repo


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_feature_written_online_in_the_wrong_unit_is_skew_on_exactly_that_feature(
        materialized, tmp_path, capsys):
    import pyarrow.parquet as pq

    from recsys.features.store import in_repo, open_store

    common = ["monitor", "skew", "--repo", materialized, "--sample", "60", "--fail-on-skew"]
    code, out, err = _run(capsys, *common, "--output", tmp_path / "clean.json")
    assert code == 0, out + err
    clean = json.loads((tmp_path / "clean.json").read_text())
    assert clean["skewed"] == [] and clean["entities"] == 60
    compared = {f["feature"]: f["compared"] for f in clean["features"]}
    assert compared["user_avg_watch_time_s_30d"] > 0 and compared["user_country"] > 0

    # the bug: a writer of the online path puts watch time in milliseconds
    rows = pq.read_table(materialized / "data" / "user_features").to_pandas()
    latest = rows.sort_values("event_timestamp").groupby("user_id").tail(1).copy()
    latest["user_avg_watch_time_s_30d"] = latest["user_avg_watch_time_s_30d"] * 1000
    with in_repo(materialized):
        open_store(materialized).write_to_online_store("user_features", latest)
    code, out, err = _run(capsys, *common, "--output", tmp_path / "bug.json",
                          "--metrics-file", tmp_path / "skew.prom")
    assert code == 3, out + err
    report = json.loads((tmp_path / "bug.json").read_text())
    assert report["skewed"] == ["user_features:user_avg_watch_time_s_30d"]
    bad = next(f for f in report["features"] if f["feature"] == "user_avg_watch_time_s_30d")
    assert bad["share"] > 0.5
    entity, online, offline = bad["example"]
    assert online == pytest.approx(offline * 1000, rel=1e-5)
    prom = (tmp_path / "skew.prom").read_text()
    assert ('recsys_feature_skew_detected{feature="user_avg_watch_time_s_30d",'
            'feature_view="user_features"} 1.0') in prom
    assert ('recsys_feature_skew_detected{feature="user_ctr_30d",'
            'feature_view="user_features"} 0.0') in prom


@pytest.mark.parametrize("argv, message", [
    (["--views", "user_features,item_features"], "keyed by different entities"),
    (["--views", "user_feats"], "unknown feature view"),
    (["--views", ","], "--views names no feature view"),
    (["--entities", "EMPTY"], "holds no ids"),
    (["--entities", "ABSENT"], "No such file"),
    (["--repo", "NOWHERE"], "has no feature_store.yaml"),
])
def test_bad_skew_flags_are_named(materialized, tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("\n\n")
    argv = [{"EMPTY": tmp_path / "empty.txt", "ABSENT": tmp_path / "absent.txt",
             "NOWHERE": tmp_path}.get(a, a) for a in argv]
    if "--repo" not in argv:
        argv += ["--repo", materialized]
    code, _, err = _run(capsys, "monitor", "skew", "--output", tmp_path / "o.json", *argv)
    assert code != 0 and message in err, err


def test_bad_skew_numbers_are_refused_by_the_parser():
    for argv in (["--threshold", "1"], ["--threshold", "-0.1"], ["--sample", "0"],
                 ["--at", "yesterday"], ["--entities", "f", "--sample", "3"]):
        with pytest.raises(SystemExit) as exc:
            main(["monitor", "skew", *argv])
        assert exc.value.code == 2
