"""Shared by the benchmarks: a small synthetic platform pushed through the real path
(generator -> lake -> Beam features -> feast apply), reused when a workdir already holds it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_platform(workdir: Path, synthetic) -> Path:
    """The feature repository of a small synthetic platform (built unless already there)."""
    from recsys.data.lake import Lake
    from recsys.data.synthetic import generate
    from recsys.features.store import apply
    from workflows.features_build import build_features

    repo = workdir / "feature_repo"
    if (repo / "data" / "training_examples").is_dir() and (repo / "data" / "registry.db").exists():
        print(f"reusing the platform in {repo}", flush=True)
        return repo
    start = time.perf_counter()
    report = generate(synthetic, Lake(workdir / "lake", create=True), progress=False)
    # A copy of the checkout's embedded feature repository, as `recsys demo` makes one.
    shutil.copytree(ROOT / "feature_repo", repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("data", "__pycache__", "production"))
    build_features(workdir / "lake", repo, "embedded", ["--split", "none"])
    apply(repo.resolve())
    print(f"platform: {synthetic.users:,} users, {synthetic.items:,} items, "
          f"{report.events_written:,} events, features built and applied in "
          f"{time.perf_counter() - start:.1f}s", flush=True)
    return repo


def train_once(repo: Path, model_dir: Path, epochs: int, data) -> None:
    """Train the default two-tower model into ``model_dir`` unless it has a checkpoint."""
    import tensorflow as tf

    from trainer import workflow
    from trainer.config import RetrievalConfig, TrainConfig

    if tf.train.latest_checkpoint(model_dir / "checkpoints") is not None:
        print(f"reusing the model in {model_dir}", flush=True)
        return
    start = time.perf_counter()
    workflow.train(repo, model_dir, RetrievalConfig(train=TrainConfig(epochs=epochs)),
                   progress=False, data=data)
    print(f"trained {epochs} epoch(s) in {time.perf_counter() - start:.1f}s", flush=True)
