"""`recsys train retrieval`, `train ranking`, `evaluate`, `export`, `export check`, `benchmark
quality` from the command line: the happy path on the small platform and every bad flag."""

from __future__ import annotations

import json
import shutil

import pytest
from retrieval_support import SMALL_YAML

from workflows.cli.main import main

RANKER_YAML = """
history_length: 10
item_dim: 8
feature_dim: 4
ff_units: 16
hidden_units: [16]
epochs: 1
batch_size: 100
"""


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def repo_copy(small_repo, tmp_path_factory):
    """A private copy of the small repository (the CLI writes next to it)."""
    target = tmp_path_factory.mktemp("cli") / "feature_repo"
    shutil.copytree(small_repo, target, ignore=shutil.ignore_patterns("*.sock"))  # live sockets
    return target


def test_train_evaluate_export_and_check(repo_copy, tmp_path, capsys):
    config = tmp_path / "retrieval.yaml"
    config.write_text(SMALL_YAML)
    model_dir = tmp_path / "two_tower"
    code, out, err = _run(capsys, "train", "retrieval", "--repo", repo_copy, "--model_dir",
                          model_dir, "--config", config, "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert "trained 2 epoch(s) on " in out and "examples/s" in out
    assert json.loads((model_dir / "config.json").read_text())["train"]["epochs"] == 2

    ranker_yaml = tmp_path / "ranker.yaml"
    ranker_yaml.write_text(RANKER_YAML)
    ranker_dir = tmp_path / "ranker"
    code, out, err = _run(capsys, "train", "ranking", "--repo", repo_copy, "--model-dir",
                          model_dir, "--ranker-dir", ranker_dir, "--config", ranker_yaml,
                          "--candidates", "20", "--no-progress")
    assert code == 0, err
    assert "trained the ranker on " in out and "lists of 20 candidates" in out
    assert json.loads((ranker_dir / "config.json").read_text())["candidates"] == 20

    report = tmp_path / "eval.json"
    code, out, err = _run(capsys, "evaluate", "--repo", repo_copy, "--model-dir", model_dir,
                          "--ranker-dir", ranker_dir, "--out", report)
    assert code == 0, err
    assert "most-popular" in out and "two-tower + ranker" in out and "recall@100" in out
    document = json.loads(report.read_text())
    assert document["protocol"] == "v1"
    assert set(document["models"]) == {"most-popular", "two-tower", "two-tower + ranker"}
    assert {"recall@10", "ndcg@10", "map@10", "coverage@10", "recall@100"} <= set(
        document["models"]["two-tower"])

    base = tmp_path / "models"
    code, out, err = _run(capsys, "export", "--repo", repo_copy, "--model-dir", model_dir,
                          "--model_base_path", base, "--top-k", "20", "--ranker-dir", ranker_dir,
                          "--recall-at", "15", "--min-recall", "0.9")
    assert code == 0, err
    assert "exported version 1" in out and "Scann>ScannSearchBatched" in out
    ranker = json.loads((base / "ranker" / "1" / "assets.extra" / "manifest.json").read_text())
    assert set(ranker["signatures"]) == {"rank", "serving_default"}
    assert set(ranker["signatures"]["rank"]["outputs"]) == {"click", "watch", "score"}
    assert ranker["ops"]["stock_tf_serving_loadable"] is True
    manifest = json.loads((base / "retrieval" / "1" / "assets.extra" / "manifest.json")
                          .read_text())
    assert manifest["evaluation"]["models"]["two-tower"]["overall"]["recall@10"] >= 0
    assert manifest["index"]["check_recall_at"] == 15 and manifest["index"]["check_recall"] >= 0.9

    code, out, _ = _run(capsys, "export", "check", base / "retrieval" / "1")
    assert code == 0
    assert "custom: Scann>ScannSearchBatched, Scann>TensorsToScann" in out
    assert "stock TF Serving: cannot load" in out
    code, out, _ = _run(capsys, "export", "check", base / "retrieval_portable" / "1", "--json")
    assert code == 0
    checked = json.loads(out)
    assert checked["custom_ops"] == [] and checked["stock_tf_serving_loadable"] is True
    _monitor_drift(capsys, repo_copy, base / "retrieval" / "1", base / "item_tower" / "1",
                   tmp_path)


def _monitor_drift(capsys, repo, version, no_profile, tmp_path):
    """`recsys monitor drift` on the exported version: the training examples do not drift
    much; a window whose devices and countries moved does, on exactly those features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    examples = repo / "data" / "training_examples"
    code, out, err = _run(capsys, "monitor", "drift", "--model", version, "--window", examples,
                          "--output", tmp_path / "same.json")
    assert code == 0, err
    assert "features drifted" in out and "device" in out
    same = json.loads((tmp_path / "same.json").read_text())
    assert {f["feature"] for f in same["features"]} >= {"device", "country",
                                                         "history_categories#values"}
    table = pq.read_table(examples).select(["device", "country", "hour_of_day"])
    rows = table.num_rows
    moved = table.set_column(0, "device", pa.array(["tv"] * rows)).set_column(
        1, "country", pa.array(["NG"] * rows))
    pq.write_table(moved, tmp_path / "moved.parquet")
    code, out, err = _run(capsys, "monitor", "drift", "--model", version, "--window",
                          tmp_path / "moved.parquet", "--output", tmp_path / "moved.json",
                          "--fail-on-drift")
    assert code == 3, err
    moved_report = json.loads((tmp_path / "moved.json").read_text())
    assert {"device", "country"} <= set(moved_report["drifted"])
    assert "hour_of_day" not in moved_report["drifted"]  # its values did not move
    # across windows (a cron step): alerts after two drifting windows in a row, not one
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text("drift:\n  alerts: {consecutive_windows: 2}\n")
    state, prom = tmp_path / "tracker.json", tmp_path / "drift.prom"
    for window, expected in ((1, []), (2, ["country", "device"])):
        code, out, err = _run(capsys, "monitor", "drift", "--model", version, "--window",
                              tmp_path / "moved.parquet", "--output", tmp_path / "w.json",
                              "--config", alerts, "--state", state, "--metrics-file", prom)
        assert code == 0, err
        report = json.loads((tmp_path / "w.json").read_text())
        assert sorted(a for a in report["alerts"] if a in ("country", "device")) == expected
        assert f"window {window} of" in out
    assert json.loads(state.read_text())["windows"] == 2
    text = prom.read_text()
    assert 'recsys_drift_alert{feature="country",model="retrieval/1"} 1.0' in text
    assert 'recsys_drift_alert{feature="hour_of_day",model="retrieval/1"} 0.0' in text
    state.write_text("[1, 2]")
    code, _, err = _run(capsys, "monitor", "drift", "--model", version, "--window", examples,
                        "--state", state)
    assert code == 1 and "is not a drift tracker's state" in err, err
    bad_config = tmp_path / "drift.yaml"
    bad_config.write_text("drift:\n  features:\n    device: {test: t-test}\n")
    for argv, message in [
            (["--model", no_profile, "--window", examples], "has no assets.extra/profile.json"),
            (["--model", tmp_path / "nowhere", "--window", examples], "is not a directory"),
            (["--model", version, "--window", tmp_path / "none.parquet"], "does not exist"),
            (["--model", version, "--window", bad_config], "is not readable Parquet"),
            (["--model", version, "--window", examples, "--config", bad_config],
             "drift.features.device: test must be one of")]:
        code, _, err = _run(capsys, "monitor", "drift", *argv)
        assert code == 1 and message in err, (argv, err)


@pytest.mark.parametrize("argv, message", [
    (["train", "retrieval", "--epochs", "0", "--model-dir", "m"],
     "argument --epochs: expected a positive integer, got '0'"),
    (["train", "retrieval"], "the following arguments are required: --model-dir"),
    (["train", "retrieval", "--model-dir", "m", "--strategy", "tpu"],
     "argument --strategy: invalid choice: 'tpu'"),
    (["evaluate", "--ks", "ten"], "argument --ks: expected a positive integer, got 'ten'"),
    (["export", "--top-k", "-1"], "argument --top-k: expected a positive integer, got '-1'"),
    (["export", "--min-recall", "1.5"], "argument --min-recall: expected a number in (0, 1]"),
    (["export", "--recall-at", "0"], "argument --recall-at: expected a positive integer"),
    (["benchmark", "quality"], "the following arguments are required: --movielens"),
    (["benchmark", "quality", "--movielens", "ml", "--split", "random"],
     "argument --split: invalid choice: 'random'"),
    (["train", "ranking", "--model-dir", "m"],
     "the following arguments are required: --ranker-dir"),
    (["train", "ranking", "--model-dir", "m", "--ranker-dir", "r", "--candidates", "0"],
     "argument --candidates: expected a positive integer, got '0'"),
    (["train", "ranking", "--model-dir", "m", "--ranker-dir", "r", "--max-lists", "0"],
     "argument --max-lists: expected a positive integer, got '0'"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_inputs_exit_1_with_one_line(repo_copy, tmp_path, capsys):
    cases = [
        (["train", "retrieval", "--repo", tmp_path, "--model-dir", tmp_path / "m"],
         "has no feature_store.yaml"),
        (["train", "retrieval", "--repo", repo_copy, "--model-dir", tmp_path / "m",
          "--config", tmp_path / "absent.yaml"], "config file"),
        (["export", "--repo", repo_copy], "recsys export needs --model-dir and "
                                         "--model-base-path"),
        (["export", "--repo", repo_copy, "--model-dir", tmp_path / "nothing",
          "--model-base-path", tmp_path / "models"], "is not a model directory"),
        (["export", "--repo", repo_copy, "--model-dir", tmp_path / "nothing",
          "--model-base-path", tmp_path / "models", "--top-k", "50", "--recall-at", "60"],
         "--recall-at 60 cannot exceed --top-k 50"),
        (["export", "check", tmp_path], "saved_model.pb"),
        (["evaluate", "--repo", repo_copy, "--model-dir", tmp_path / "nothing"],
         "is not a model directory"),
        (["benchmark", "quality", "--movielens", tmp_path], "has no ratings.csv"),
        (["evaluate", "--repo", repo_copy, "--ranker-dir", tmp_path / "r"],
         "--ranker-dir re-ranks the two-tower model's candidates: give --model-dir too"),
        (["train", "ranking", "--repo", repo_copy, "--model-dir", tmp_path / "nothing",
          "--ranker-dir", tmp_path / "r"], "is not a model directory"),
    ]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  temperature: -1\n")
    cases.append((["train", "retrieval", "--repo", repo_copy, "--model-dir", tmp_path / "m",
                   "--config", bad_yaml], "temperature must be a number > 0, got -1"))
    for argv, message in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert err.startswith("recsys: error: ") and message in err, (argv, err)
