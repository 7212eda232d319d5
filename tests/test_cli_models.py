"""`recsys train retrieval`, `evaluate`, `export`, `export check`, `benchmark quality` from the
command line: the happy path on the small platform and every bad flag."""

from __future__ import annotations

import json
import shutil

import pytest

from recsys.cli.main import main

SMALL_YAML = """
model:
  embedding_dim: 16
  id_embedding_dim: 16
  feature_embedding_dim: 8
  hidden_units: [32]
  history_length: 10
train:
  epochs: 1
  batch_size: 256
  learning_rate: 3e-3
"""


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def repo_copy(small_repo, tmp_path_factory):
    """A private copy of the small repository (the CLI writes next to it)."""
    target = tmp_path_factory.mktemp("cli") / "feature_repo"
    shutil.copytree(small_repo, target)
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

    report = tmp_path / "eval.json"
    code, out, err = _run(capsys, "evaluate", "--repo", repo_copy, "--model-dir", model_dir,
                          "--out", report)
    assert code == 0, err
    assert "most-popular" in out and "two-tower" in out and "recall@100" in out
    document = json.loads(report.read_text())
    assert document["protocol"] == "v1"
    assert set(document["models"]) == {"most-popular", "two-tower"}
    assert {"recall@10", "ndcg@10", "map@10", "coverage@10", "recall@100"} <= set(
        document["models"]["two-tower"])

    base = tmp_path / "models"
    code, out, err = _run(capsys, "export", "--repo", repo_copy, "--model-dir", model_dir,
                          "--model_base_path", base, "--top-k", "20")
    assert code == 0, err
    assert "exported version 1" in out and "Scann>ScannSearchBatched" in out
    manifest = json.loads((base / "retrieval" / "1" / "assets.extra" / "manifest.json")
                          .read_text())
    assert manifest["evaluation"]["models"]["two-tower"]["overall"]["recall@10"] >= 0

    code, out, _ = _run(capsys, "export", "check", base / "retrieval" / "1")
    assert code == 0
    assert "custom: Scann>ScannSearchBatched, Scann>TensorsToScann" in out
    assert "stock TF Serving: cannot load" in out
    code, out, _ = _run(capsys, "export", "check", base / "retrieval_portable" / "1", "--json")
    assert code == 0
    checked = json.loads(out)
    assert checked["custom_ops"] == [] and checked["stock_tf_serving_loadable"] is True


@pytest.mark.parametrize("argv, message", [
    (["train", "retrieval", "--epochs", "0", "--model-dir", "m"],
     "argument --epochs: expected a positive integer, got '0'"),
    (["train", "retrieval"], "the following arguments are required: --model-dir"),
    (["train", "retrieval", "--model-dir", "m", "--strategy", "tpu"],
     "argument --strategy: invalid choice: 'tpu'"),
    (["evaluate", "--ks", "ten"], "argument --ks: expected a positive integer, got 'ten'"),
    (["export", "--top-k", "-1"], "argument --top-k: expected a positive integer, got '-1'"),
    (["benchmark", "quality"], "the following arguments are required: --movielens"),
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
        (["export", "check", tmp_path], "saved_model.pb"),
        (["evaluate", "--repo", repo_copy, "--model-dir", tmp_path / "nothing"],
         "is not a model directory"),
        (["benchmark", "quality", "--movielens", tmp_path], "has no ratings.csv"),
    ]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model:\n  temperature: -1\n")
    cases.append((["train", "retrieval", "--repo", repo_copy, "--model-dir", tmp_path / "m",
                   "--config", bad_yaml], "temperature must be a number > 0, got -1"))
    for argv, message in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 1, (argv, out, err)
        assert err.startswith("recsys: error: ") and message in err, (argv, err)
