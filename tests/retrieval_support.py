"""Test support for the retrieval model: one small synthetic platform pushed through the real
path (lake -> Beam with the temporal split -> Feast apply -> training set), small model
configurations that train in seconds, and logged answers around test positives."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.data.validation import ValidationPolicy
from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.config import RetrievalConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1] / "feature_repo"
PLATFORM = SyntheticConfig(users=400, items=1_500, days=6, seed=7, end_date=dt.date(2026, 11, 1))


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
"""  # a retrieval config file for runs through the CLI


def split_data(rows: list[dict], items: int):
    """RetrievalData of interaction ``rows`` (with a ``split`` column: train or test) over the
    catalogue i0 .. i{items - 1}."""
    from trainer.training_data import RetrievalData

    frame = pd.DataFrame(rows)
    catalogue = pd.DataFrame({"item_id": [f"i{i}" for i in range(items)],
                              "item_created_at_s": 0.0})
    return RetrievalData(frame[frame.split == "train"].reset_index(drop=True),
                         frame[frame.split == "test"].reset_index(drop=True), catalogue)


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


def write_logged_answers(root: Path, examples: pd.DataFrame, unopened: list[list[str]],
                         opened_beside: dict[int, str] | None = None,
                         propensities: list[float] | None = None) -> Lake:
    """A lake holding one answer per example (its item first, then ``unopened``), the
    example's event with that answer's request id, and optionally another opened item;
    ``propensities[n]`` is the logged propensity of example n's item (default 1)."""
    lake = Lake(root, create=True)
    events, exposures = [], []
    for n, row in enumerate(examples.itertuples()):
        when = pd.Timestamp(row.event_timestamp).tz_convert("UTC")
        request = f"r{n}"
        shown = [row.item_id, *unopened[n]]
        extra = (opened_beside or {}).get(n)
        if extra is not None:
            shown.append(extra)
            events.append({"event_id": f"extra-{n}", "user_id": row.user_id,
                           "item_id": extra, "event_type": "click",
                           "timestamp": when.isoformat(), "request_id": request,
                           "position": len(shown) - 1})
        events.append({"event_id": row.example_id, "user_id": row.user_id,
                       "item_id": row.item_id, "event_type": "click",
                       "timestamp": when.isoformat(), "request_id": request, "position": 0})
        exposures += [{"exposure_id": f"{request}/{p}", "request_id": request,
                       "timestamp": (when - pd.Timedelta(seconds=5)).isoformat(),
                       "user_id": row.user_id, "item_id": item, "position": p,
                       "propensity": propensities[n] if propensities and p == 0 else 1.0,
                       "tier": "full", "holdout": 0}
                      for p, item in enumerate(shown)]
    last = max(pd.Timestamp(r["timestamp"]) for r in events).to_pydatetime()
    policy = ValidationPolicy(now=last + dt.timedelta(days=1))
    assert lake.write_events(events, "service", policy=policy).rejected == 0
    assert lake.write_exposures(exposures, "service", policy=policy).rejected == 0
    return lake
