"""Test support for the retrieval model: one small synthetic platform pushed through the real
path (lake -> Beam with the temporal split -> Feast apply -> training set), and small model
configurations that train in seconds."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.config import RetrievalConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
PLATFORM = SyntheticConfig(users=400, items=1_500, days=6, seed=7, end_date=dt.date(2026, 11, 1))


def small_config(**train) -> RetrievalConfig:
    model = RetrievalModelConfig(embedding_dim=16, id_embedding_dim=16, feature_embedding_dim=8,
                                 hidden_units=(32,), history_length=10, max_tags=4)
    return RetrievalConfig(model=model, train=TrainConfig(**{"epochs": 2, "batch_size": 256,
                                                            "learning_rate": 0.01, **train}))


def build_small_repo(root: Path) -> Path:
    """A feature repository with features built from a small synthetic platform."""
    from recsys.features.store import apply
    from workflows.features_build import build_features

    lake = root / "lake"
    generate(PLATFORM, Lake(lake, create=True), progress=False)
    repo = root / "feature_repo"
    shutil.copytree(REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    build_features(lake, repo, "embedded", ["--split", "temporal", "--history_length", "10"])
    apply(repo.resolve())
    return repo.resolve()


def small_ranker_config(**overrides):
    from recsys.model_contract.ranker_config import RankerConfig

    return RankerConfig(**{"history_length": 10, "item_dim": 8, "feature_dim": 4,
                           "ff_units": 16, "hidden_units": (16,), "epochs": 3,
                           "batch_size": 100, "candidates": 20, **overrides})
