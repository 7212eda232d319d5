"""`trainer.workflow.evaluate` with reference models and per-user metrics, as the quality
benchmark runs it: baselines ranked in the same harness, per-user figures that average to the
reported ones, and a model directory's evaluation.json without the per-user arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.evaluation import top_k
from recsys.evaluation.paired import pairwise_differences
from trainer.baselines.ease import ease_scores
from trainer.workflow import EVALUATION_FILE, evaluate


def _ease(data, es, depth):
    return top_k(ease_scores(data.train, es, 50.0), depth, es.exclude)


def test_baselines_and_per_user_metrics(small_repo, small_data, trained_model_dir):
    report = evaluate(small_repo, trained_model_dir, (10, 20), data=small_data,
                      baselines={"EASE": _ease}, per_user=True)
    assert list(report["models"]) == ["most-popular", "EASE", "two-tower"]
    for name, result in report["models"].items():
        per_user = report["per_user"][name]
        for metric in ("ndcg@10", "recall@10", "recall@20"):
            values = per_user[metric]
            assert len(values) == report["users"]
            assert np.nanmean(values) == pytest.approx(result["overall"][metric])
    written = json.loads((trained_model_dir / EVALUATION_FILE).read_text())
    assert "per_user" not in written and list(written["models"]) == list(report["models"])
    differences = pairwise_differences(report["per_user"], ["ndcg@10"], resamples=199)
    assert [(d.a, d.b) for d in differences] == [("EASE", "most-popular"),
                                                 ("two-tower", "most-popular"),
                                                 ("two-tower", "EASE")]
    ease, popular = report["models"]["EASE"]["overall"], report["models"]["most-popular"]
    assert differences[0].mean == pytest.approx(ease["ndcg@10"] - popular["overall"]["ndcg@10"])


def test_without_per_user_the_report_is_as_before(small_repo, small_data):
    report = evaluate(small_repo, None, (10,), data=small_data)
    assert "per_user" not in report and list(report["models"]) == ["most-popular"]
