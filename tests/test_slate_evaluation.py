"""Within-slate evaluation on logged answers (trainer/slate_evaluation.py): the test positives
found in the exposure log, the unopened items beside them, and slate_auc of a real trained
two-tower model, checked against answers built from that model's own scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from retrieval_support import write_logged_answers

from recsys.data.lake import Lake
from recsys.errors import ConfigError, LakeError, SourceError
from trainer.evaluate import embed
from trainer.model_dir import ModelDir
from trainer.quality_gate import QualityGate
from trainer.slate_evaluation import SLATE_AUC, logged_slates, slate_auc
from trainer.training_data import timestamps_us
from workflows.cli.main import main

pytestmark = pytest.mark.slow
SLATE = 6  # unopened items per answer


@pytest.fixture(scope="module")
def model(trained_model_dir):
    return ModelDir(trained_model_dir).restore()[2]


def _scores(model, examples: pd.DataFrame, catalogue: pd.DataFrame) -> np.ndarray:
    """The oracle: each example's dot product with every catalogue item (item ages at the
    example's time)."""
    from recsys.model_contract.arrays import to_arrays, with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs, query_inputs

    queries = embed(model.query_tower, to_arrays(examples, query_inputs(model.cfg), "q"))
    out = np.empty((len(examples), len(catalogue)), np.float32)
    for r, at in enumerate(timestamps_us(examples)):
        day = (int(at) // 86_400_000_000) * 86_400_000_000
        items = embed(model.candidate_tower, to_arrays(with_item_age(catalogue, day),
                                                       candidate_inputs(model.cfg), "c"))
        out[r] = items @ queries[r]
    return out


@pytest.fixture(scope="module")
def clicked(small_data):
    """Twenty test examples whose items are in the catalogue."""
    test = small_data.test[small_data.test["item_id"].isin(small_data.catalogue["item_id"])]
    return test.drop_duplicates("user_id").head(20).reset_index(drop=True)


def _extremes(model, clicked, catalogue, lowest: bool) -> list[list[str]]:
    scores = _scores(model, clicked, catalogue)
    ids = catalogue["item_id"].to_numpy()
    out = []
    for r, item in enumerate(clicked["item_id"]):
        order = np.argsort(scores[r] if lowest else -scores[r])
        out.append([i for i in ids[order] if i != item][:SLATE])
    return out


def test_slate_auc_is_one_when_every_unopened_item_scores_below_and_zero_above(
        model, clicked, small_data, tmp_path):
    catalogue = small_data.catalogue
    for name, lowest, want in (("low", True, 1.0), ("high", False, 0.0)):
        lake = write_logged_answers(tmp_path / name, clicked,
                              _extremes(model, clicked, catalogue, lowest))
        slates = logged_slates(lake.root, small_data.test, catalogue)
        assert len(slates) == len(clicked)
        figures = slate_auc(model, slates)
        assert figures["slate_positives"] == len(clicked)
        assert figures[SLATE_AUC] == pytest.approx(want, abs=0.02), name


def test_items_opened_beside_the_positive_are_not_counted_as_unopened(
        model, clicked, small_data, tmp_path):
    catalogue = small_data.catalogue
    unopened = _extremes(model, clicked, catalogue, lowest=True)
    best_other = _extremes(model, clicked, catalogue, lowest=False)
    lake = write_logged_answers(tmp_path / "lake", clicked, unopened,
                          {n: best_other[n][0] for n in range(len(clicked))})
    slates = logged_slates(lake.root, small_data.test, catalogue)
    assert all(len(rows) == SLATE for rows in slates.unopened)
    assert slate_auc(model, slates)[SLATE_AUC] == pytest.approx(1.0, abs=0.02)


def test_only_positives_with_a_logged_answer_count(model, clicked, small_data, tmp_path):
    catalogue = small_data.catalogue
    half = clicked.head(7)
    lake = write_logged_answers(tmp_path / "lake", half,
                          _extremes(model, half, catalogue, lowest=True))
    slates = logged_slates(lake.root, small_data.test, catalogue)
    assert sorted(slates.examples["example_id"]) == sorted(half["example_id"])


def test_a_lake_without_answers_is_an_error_naming_it(small_data, tmp_path):
    empty = Lake(tmp_path / "empty", create=True)
    with pytest.raises(SourceError, match="no test positive .* names an answer .*empty"):
        logged_slates(empty.root, small_data.test, small_data.catalogue)


def test_a_directory_that_is_not_a_lake_is_an_error_naming_it(small_data, tmp_path):
    (tmp_path / "notalake").mkdir()
    with pytest.raises(LakeError, match="notalake is not a recsys lake"):
        logged_slates(tmp_path / "notalake", small_data.test, small_data.catalogue)


def test_the_gate_takes_slate_auc_without_a_cut_off():
    gate = QualityGate(SLATE_AUC, 0.01)
    assert gate.k is None
    assert gate.judge({SLATE_AUC: 0.70}, {SLATE_AUC: 0.695}).passed
    assert not gate.judge({SLATE_AUC: 0.70}, {SLATE_AUC: 0.68}).passed
    with pytest.raises(ConfigError, match="slate_auc"):
        QualityGate("slate_auc@10")


@pytest.mark.parametrize("argv, message", [
    (["--lake", "x"], "--lake is for incremental training"),
    (["--warm-start", "1", "--model-base-path", "b", "--gate-metric", "slate_auc"],
     "slate_auc needs the lake"),
])
def test_slate_flags_without_what_they_need_exit_1_naming_it(argv, message, small_repo,
                                                             tmp_path, capsys):
    code = main(["train", "retrieval", "--repo", str(small_repo), "--model-dir",
                 str(tmp_path / "m"), "--no-progress", *argv])
    assert code == 1
    assert message in capsys.readouterr().err
