"""Acceptance on ml-latest-small under ../shared/EVALUATION.md: the whole offline path through
`recsys benchmark quality`, then an export whose ScaNN model is checked in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workflows.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.movielens
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_two_tower_and_ranker_meet_the_protocol_bar_and_export(movielens_dir, tmp_path, capsys):
    out = tmp_path / "quality.json"
    work = tmp_path / "work"
    code = main(["benchmark", "quality", "--movielens", str(movielens_dir), "--out", str(out),
                 "--workdir", str(work), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "most-popular" in printed and "two-tower" in printed and "wall time" in printed
    doc = json.loads(out.read_text())
    assert doc["protocol"] == "v1"
    # The split is exactly the protocol's.
    assert (doc["users"], doc["candidate_items"], doc["train_interactions"],
            doc["test_interactions"]) == (610, 8_246, 80_896, 18_258)
    popular, two_tower = doc["models"]["most-popular"], doc["models"]["two-tower"]
    assert popular["recall@10"] == pytest.approx(0.0830, abs=0.002)  # reference table
    # EASE in the same harness reproduces EVALUATION.md's reference row
    ease = doc["models"]["EASE (lambda 200)"]
    assert ease["ndcg@10"] == pytest.approx(0.1294, abs=0.0005)
    assert ease["recall@100"] == pytest.approx(0.3765, abs=0.0005)
    # the SASRec-style baseline in the same harness (0.0986 on one machine) learns more than
    # popularity
    sasrec = doc["models"]["SASRec (ids, softmax)"]
    assert sasrec["recall@10"] > popular["recall@10"]
    # With mixed and hard negatives the two-tower model alone reaches EASE's figures. The run
    # is deterministic on one machine, but CPUs differ in their float kernels and the model's
    # figures with them (NDCG@10 0.1434 on one machine, 0.1385-0.1430 on another): the bars
    # are EASE's own figures and the paired intervals, not a machine's last digits.
    assert two_tower["recall@10"] >= ease["recall@10"]
    assert two_tower["ndcg@10"] >= ease["ndcg@10"]
    assert two_tower["recall@100"] > popular["recall@100"]
    ranked = doc["models"]["two-tower + ranker"]
    # the paired intervals: the whole pipeline is above EASE, and above retrieval alone
    pairs = {(d["a"], d["b"], d["metric"]): d for d in doc["paired_differences"]}
    assert len(pairs) == 10 * 2 and doc["paired_confidence"] == 0.95
    over_ease = pairs[("two-tower + ranker", "EASE (lambda 200)", "ndcg@10")]
    assert over_ease["low"] > 0 and over_ease["mean"] == pytest.approx(
        ranked["ndcg@10"] - ease["ndcg@10"])
    assert pairs[("two-tower + ranker", "two-tower", "ndcg@10")]["mean"] > 0
    assert pairs[("two-tower", "SASRec (ids, softmax)", "ndcg@10")]["low"] > 0
    assert "paired differences over users" in printed
    for k in (10, 20, 100):
        for metric in ("recall", "ndcg", "map", "coverage"):
            assert 0.0 <= two_tower[f"{metric}@{k}"] <= 1.0

    base = tmp_path / "models"
    repo = work / "feature_repo"
    assert main(["export", "--repo", str(repo), "--model-dir", str(work / "two_tower"),
                 "--model-base-path", str(base)]) == 0
    manifest = json.loads((base / "retrieval" / "1" / "assets.extra" / "manifest.json")
                          .read_text())
    assert manifest["item_count"] == 9_742
    assert manifest["evaluation"]["models"]["two-tower"]["overall"]["recall@10"] >= 0.125
    queries = tmp_path / "queries.parquet"
    from trainer.training_data import load_retrieval_data

    data = load_retrieval_data(repo.resolve())
    data.test.drop_duplicates("user_id").to_parquet(queries)  # one query per user
    result = subprocess.run([sys.executable, "-m", "trainer.export_recall", str(base), "1",
                             str(queries)], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    recall = json.loads(result.stdout.strip().splitlines()[-1])
    assert recall["queries"] == 610
    assert recall["recall@10"] >= 0.95
    assert isinstance(pd.read_parquet(queries), pd.DataFrame)
