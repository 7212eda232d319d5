"""Incremental training: an exported version fine-tuned on the interactions after it, the
quality gate against it, and the next version exported only when the gate passes."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from retrieval_support import small_config, small_ranker_config, write_logged_answers

from recsys.errors import ConfigError, SourceError
from recsys.model_contract.manifest import read_manifest
from recsys.model_contract.versioning import versions
from trainer import workflow
from trainer.quality_gate import QualityGate
from trainer.training_data import RetrievalData, timestamps_us
from trainer.warm_start import (
    WARM_START_FILE,
    split_new,
    warm_start_ranking,
    warm_start_retrieval,
)
from workflows.cli.main import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def version_one(small_repo, small_data, tmp_path_factory):
    """Version 1: a two-tower model and a ranker trained on the earlier 70% of the train
    examples, exported with both."""
    from trainer.ranking.workflow import train_ranking
    from trainer.train import train_retrieval

    root = tmp_path_factory.mktemp("warm")
    ts = timestamps_us(small_data.train)
    cutoff = int(pd.Series(ts).quantile(0.7))
    early = RetrievalData(train=small_data.train[ts <= cutoff].reset_index(drop=True),
                          test=small_data.test, catalogue=small_data.catalogue)
    train_retrieval(early, small_config(), root / "v1_two_tower", progress=False)
    train_ranking(small_repo, root / "v1_two_tower", root / "v1_ranker",
                  small_ranker_config(), early, progress=False)
    base = root / "models"
    workflow.export(small_repo, root / "v1_two_tower", base, k=20,
                    ranker_dir=root / "v1_ranker")
    return root, base, int((ts > cutoff).sum())


def test_a_fine_tuned_model_that_passes_the_gate_is_the_next_version(version_one, small_repo):
    root, base, new_examples = version_one
    result = warm_start_retrieval(small_repo, base, 1, root / "v2_two_tower", {},
                                  QualityGate("recall@100", tolerance=0.5), progress=False)
    assert result.decision.passed and result.exported_version == 2
    assert result.new_examples == new_examples and result.replayed == new_examples
    assert versions(base / "retrieval") == [1, 2]
    manifest = read_manifest(base / "retrieval" / "2")
    assert manifest["model_dir"] == str((root / "v2_two_tower").resolve())
    assert manifest["k"] == 20  # version 1's
    assert read_manifest(base / "ranker" / "2")["ranker_dir"] == str(
        (root / "v1_ranker").resolve())  # the version's ranker goes along
    record = json.loads((root / "v2_two_tower" / WARM_START_FILE).read_text())
    assert record["base_version"] == 1 and record["gate"]["passed"] is True
    assert set(record["metrics"]) == {"current", "candidate"}
    history = json.loads((root / "v2_two_tower" / "history.json").read_text())
    assert history["warm_start_from"].endswith("v1_two_tower")


def test_with_a_lake_both_models_are_scored_within_its_logged_answers(version_one, small_repo,
                                                                       small_data, tmp_path):
    root, base, _ = version_one
    catalogue = small_data.catalogue
    clicked = small_data.test[small_data.test["item_id"].isin(catalogue["item_id"])].head(30)
    others = catalogue["item_id"].tolist()
    lake = write_logged_answers(tmp_path / "lake", clicked,
                                [[i for i in others[n::30] if i != item][:5]
                                 for n, item in enumerate(clicked["item_id"])])
    result = warm_start_retrieval(small_repo, base, 1, tmp_path / "slates", {},
                                  QualityGate("slate_auc", tolerance=1.0 - 1e-9),
                                  progress=False, lake=lake.root)
    assert result.decision.metric == "slate_auc" and result.decision.passed
    record = json.loads((tmp_path / "slates" / WARM_START_FILE).read_text())
    for side in ("current", "candidate"):
        assert 0.0 <= record["metrics"][side]["slate_auc"] <= 1.0
        assert record["metrics"][side]["slate_positives"] == len(clicked)
        assert "recall@100" in record["metrics"][side]
    assert result.decision.current == record["metrics"]["current"]["slate_auc"]


def test_inverse_propensity_weights_come_from_the_logged_answers(small_data, tmp_path):
    from trainer.propensity_weights import inverse_propensity_weights

    catalogue = small_data.catalogue
    clicked = small_data.test[small_data.test["item_id"].isin(catalogue["item_id"])].head(6)
    others = catalogue["item_id"].tolist()
    lake = write_logged_answers(tmp_path / "lake", clicked,
                                [[i for i in others[n::30] if i != item][:3]
                                 for n, item in enumerate(clicked["item_id"])],
                                propensities=[1.0, 0.5, 0.1, 0.01, 1.0, 0.25])
    organic = small_data.train.head(2)  # events the lake does not hold
    examples = pd.concat([clicked, organic], ignore_index=True)
    result = inverse_propensity_weights(lake.root, examples, clip=20.0)
    assert result.weights.tolist() == pytest.approx([1, 2, 10, 20, 1, 4, 1, 1])
    assert (result.logged, result.explored, result.clipped) == (6, 4, 1)
    assert result.summary()["mean_weight"] == pytest.approx(40 / 8)
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="clip must be a finite number >= 1"):
            inverse_propensity_weights(lake.root, examples, clip=bad)


def test_a_warm_start_with_inverse_propensities_records_them(version_one, small_repo,
                                                              small_data, tmp_path):
    root, base, new_examples = version_one
    ts = timestamps_us(small_data.train)
    new = small_data.train[ts > int(pd.Series(ts).quantile(0.7))]
    clicked = new[new["item_id"].isin(small_data.catalogue["item_id"])].head(40)
    others = small_data.catalogue["item_id"].tolist()
    lake = write_logged_answers(tmp_path / "lake", clicked,
                                [[i for i in others[n::30] if i != item][:3]
                                 for n, item in enumerate(clicked["item_id"])],
                                propensities=[0.2] * 20 + [1.0] * 20)
    with pytest.raises(ConfigError, match="inverse propensity weights need the lake"):
        warm_start_retrieval(small_repo, base, 1, tmp_path / "no_lake", {},
                             QualityGate("recall@100", tolerance=0.9), progress=False,
                             ips_clip=10.0)
    result = warm_start_retrieval(small_repo, base, 1, tmp_path / "ips", {},
                                  QualityGate("recall@100", tolerance=0.9), progress=False,
                                  lake=lake.root, ips_clip=4.0, forget_users=True)
    record = json.loads((tmp_path / "ips" / WARM_START_FILE).read_text())
    weighting = record["inverse_propensity"]
    assert weighting["clip"] == 4.0 and weighting["examples"] == new_examples
    assert (weighting["logged"], weighting["explored"], weighting["clipped"]) == (40, 20, 20)
    assert weighting["mean_weight"] == pytest.approx((new_examples + 20 * 3) / new_examples,
                                                     rel=1e-3)
    assert record["forget_users"] is True
    assert result.new_examples == new_examples


def test_a_diverged_fine_tune_is_refused_by_the_gate(version_one, small_repo, capsys):
    root, base, _ = version_one
    before = versions(base / "retrieval")
    code = main(["train", "retrieval", "--repo", str(small_repo), "--model-dir",
                 str(root / "diverged"), "--warm-start", "1", "--model-base-path", str(base),
                 "--learning-rate", "1e30", "--epochs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 3, out
    assert "quality gate failed: recall@100 nan (candidate)" in out and "not exported" in out
    assert versions(base / "retrieval") == before
    record = json.loads((root / "diverged" / WARM_START_FILE).read_text())
    assert math.isnan(record["gate"]["candidate"]) and record["gate"]["passed"] is False


def test_a_fine_tuned_ranker_is_exported_with_the_versions_two_tower_model(version_one,
                                                                           small_repo):
    root, base, _ = version_one
    result = warm_start_ranking(small_repo, base, 1, root / "v_ranker", {"epochs": 1},
                                QualityGate("ndcg@10", tolerance=0.5), progress=False,
                                export_options={"k": 20})
    assert result.decision.passed
    latest = result.exported_version
    assert read_manifest(base / "ranker" / str(latest))["ranker_dir"] == str(
        (root / "v_ranker").resolve())
    assert read_manifest(base / "retrieval" / str(latest))["model_dir"] == str(
        (root / "v1_two_tower").resolve())
    data = json.loads((root / "v_ranker" / "data.json").read_text())
    assert data["lists"] > 0 and data["warm_start_from"].endswith("v1_ranker")


def test_no_new_interactions_is_an_error_saying_what_to_do(version_one, small_repo,
                                                           trained_model_dir, tmp_path):
    base = tmp_path / "models"  # a version trained on all of the train split
    workflow.export(small_repo, trained_model_dir, base, k=20)
    with pytest.raises(SourceError, match="no training examples after version 1's data .*"
                                          "ingest events, then run `recsys features build`"):
        warm_start_retrieval(small_repo, base, 1, tmp_path / "next", {}, QualityGate(),
                             progress=False)


def test_bad_versions_and_directories_are_refused(version_one, small_repo, tmp_path):
    root, base, _ = version_one
    with pytest.raises(SourceError, match=r"retrieval/9 is not an exported version .*"
                                          r"versions of 'retrieval' under .*: \[1, 2"):
        warm_start_retrieval(small_repo, base, 9, tmp_path / "x", {}, QualityGate(),
                             progress=False)
    with pytest.raises(ConfigError, match="needs a new directory; .* is the one the version "
                                          "was trained in"):
        warm_start_retrieval(small_repo, base, 1, root / "v1_two_tower", {}, QualityGate(),
                             progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        warm_start_retrieval(small_repo, base, 1, tmp_path / "full", {}, QualityGate(),
                             progress=False)


@pytest.mark.parametrize("argv, message", [
    (["train", "retrieval", "--model-dir", "m", "--gate-tolerance", "0.1"],
     "--gate-tolerance is for incremental training: give --warm-start VERSION too"),
    (["train", "retrieval", "--model-dir", "m", "--warm-start", "1"],
     "--warm-start needs --model-base-path (where version 1 was exported)"),
    (["train", "retrieval", "--model-dir", "m", "--warm-start", "1", "--model-base-path", "b",
      "--gate-metric", "auc"],
     "gate metric must look like recall@100, ndcg@10, map@10 or coverage@100, or be "
     "slate_auc, got 'auc'"),
    (["train", "ranking", "--ranker-dir", "r", "--warm-start", "1", "--model-base-path", "b",
      "--gate-metric", "slate_auc"], "--gate-metric slate_auc is for the two-tower model's"),
    (["train", "retrieval", "--model-dir", "m", "--warm-start", "1", "--model-base-path", "b",
      "--gate-tolerance", "2"], "gate tolerance must be a number in [0, 1), got 2.0"),
    (["train", "retrieval", "--model-dir", "m", "--warm-start", "1", "--model-base-path", "b",
      "--embedding-dim", "8"], "--warm-start keeps the version's model configuration"),
    (["train", "ranking", "--ranker-dir", "r"],
     "recsys train ranking needs --model-dir (the two-tower model"),
    (["train", "ranking", "--ranker-dir", "r", "--warm-start", "1", "--model-base-path", "b",
      "--max-lists", "10"], "drop --config, --candidates, --max-lists and --model-dir"),
    (["train", "retrieval", "--model-dir", "m", "--since", "2026-11-01"],
     "--since is for incremental training: give --warm-start VERSION too"),
    (["train", "retrieval", "--model-dir", "m", "--replay-ratio", "0.5"],
     "--replay-ratio is for incremental training: give --warm-start VERSION too"),
    (["train", "retrieval", "--model-dir", "m", "--ips-clip", "10"],
     "--ips-clip is for incremental training: give --warm-start VERSION too"),
    (["train", "retrieval", "--model-dir", "m", "--forget-users"],
     "--forget-users is for incremental training: give --warm-start VERSION too"),
])
def test_bad_warm_start_flags_exit_1_naming_them(argv, message, capsys):
    assert main(argv) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--since", "yesterday", "expected an ISO-8601 time like 2026-11-01T00:00:00, got "
                             "'yesterday'"),
    ("--replay-ratio", "-1", "expected a number >= 0, got '-1'"),
    ("--replay-ratio", "nan", "expected a number >= 0, got 'nan'"),
    ("--replay-ratio", "many", "expected a number >= 0, got 'many'"),
    ("--ips-clip", "0.5", "expected a number >= 1, got '0.5'"),
    ("--ips-clip", "inf", "expected a number >= 1, got 'inf'"),
])
def test_bad_since_and_replay_ratio_values_are_refused_by_the_parser(flag, value, message,
                                                                     capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "retrieval", "--model-dir", "m", "--warm-start", "1",
              "--model-base-path", "b", flag, value])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_since_starts_the_new_examples_and_the_ratio_sizes_the_replay(small_data):
    ts = pd.Series(timestamps_us(small_data.train))
    since = int(ts.quantile(0.8))
    newer = int((ts > since).sum())
    for ratio, replayed in ((1.0, newer), (0.25, round(newer * 0.25)), (0.0, 0),
                            (1e9, int((ts <= since).sum()))):  # at most every older one
        old, new, replay = split_new(small_data, since, 1, seed=0, replay_ratio=ratio)
        assert len(new) == newer and len(replay) == replayed
        assert (timestamps_us(new) > since).all() and (timestamps_us(replay) <= since).all()
        assert len(old) + len(new) == len(small_data.train)
    # seeded: the same replay every time
    assert split_new(small_data, since, 1, 0, 0.5)[2].index.equals(
        split_new(small_data, since, 1, 0, 0.5)[2].index)
    with pytest.raises(ConfigError, match="replay ratio must be a number >= 0, got -0.5"):
        split_new(small_data, since, 1, 0, -0.5)
    with pytest.raises(SourceError, match=r"no training examples after --since \(.*; the "
                                          r"newest is .*\): ingest events"):
        split_new(small_data, int(ts.max()), 1, 0, since_given=True)


def test_a_warm_start_from_a_time_with_less_replay_records_both(version_one, small_repo,
                                                                capsys):
    root, base, _ = version_one
    ts = pd.Series(timestamps_us(small_repo_train(small_repo)))
    since = pd.Timestamp(int(ts.quantile(0.9)), unit="us", tz="UTC")
    code = main(["train", "retrieval", "--repo", str(small_repo), "--model-dir",
                 str(root / "since"), "--warm-start", "1", "--model-base-path", str(base),
                 "--epochs", "1", "--since", since.isoformat(), "--replay-ratio", "0.5",
                 "--gate-tolerance", "0.9", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    record = json.loads((root / "since" / WARM_START_FILE).read_text())
    newer = int((ts > since.value // 1000).sum())
    assert record["new_examples"] == newer and record["replayed"] == round(newer * 0.5)
    assert record["replay_ratio"] == 0.5
    assert pd.Timestamp(record["since"]) == since.floor("us")
    assert f"on {newer:,} new examples ({round(newer * 0.5):,} older ones replayed)" in out


def small_repo_train(repo) -> pd.DataFrame:
    from trainer.training_data import load_retrieval_data

    return load_retrieval_data(repo).train


def test_the_gate_judges_one_metric_with_a_tolerance():
    gate = QualityGate("recall@100", 0.01)
    assert gate.judge({"recall@100": 0.30}, {"recall@100": 0.295}).passed
    assert not gate.judge({"recall@100": 0.30}, {"recall@100": 0.28}).passed
    assert gate.k == 100
    with pytest.raises(ConfigError, match=r"the candidate model has no recall@100; it has "
                                          r"\['recall@10'\]"):
        gate.judge({"recall@100": 0.3}, {"recall@10": 0.1})
    for bad in ("recall@0", "precision@10", 5):
        with pytest.raises(ConfigError, match="gate metric must look like"):
            QualityGate(bad)
    for bad in (-0.1, 1.0, True, "0.1"):
        with pytest.raises(ConfigError, match="gate tolerance must be a number in"):
            QualityGate("ndcg@10", bad)


def test_a_warm_start_begins_at_the_sources_weights_with_a_new_optimizer(small_data,
                                                                         trained_model_dir,
                                                                         tmp_path):
    """With a learning rate of 1e-12 the fine-tuned towers equal the source's: the weights
    were restored, and the source's optimizer (learning rate 0.01) was not."""
    import numpy as np

    from trainer.model_dir import ModelDir
    from trainer.train import train_retrieval

    train_retrieval(small_data, small_config(epochs=1, learning_rate=1e-12), tmp_path / "ft",
                    progress=False, init_from=ModelDir(trained_model_dir))
    _, _, source = ModelDir(trained_model_dir).restore()
    _, _, tuned = ModelDir(tmp_path / "ft").restore()
    queries, candidates = small_data.train_arrays(source.cfg)
    sample = {k: v[:2] for k, v in {**queries, **candidates}.items()}
    for model in (source, tuned):  # checkpoints restore into variables made on first call
        model.query_tower(sample)
        model.candidate_tower(sample)
    for tower in ("query_tower", "candidate_tower"):
        want, got = getattr(source, tower).weights, getattr(tuned, tower).weights
        assert [w.shape for w in got] == [w.shape for w in want] and want
        for a, b in zip(want, got):
            np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-6, err_msg=a.name)
