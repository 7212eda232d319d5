"""``recsys benchmark quality``: the whole offline path on a MovieLens directory under the
protocol of ../shared/EVALUATION.md, timed stage by stage.

Stages: import into a lake -> Beam feature build with the temporal split (or
leave-last-one-out) -> feast apply -> training set through Feast (point in time) -> two-tower
training -> ranker training (its own stacking two-tower model and candidate lists) ->
full-ranking evaluation of most-popular, EASE, a SASRec-style model, two-tower and two-tower +
ranker, and for every pair of them the paired difference of NDCG@10 and Recall@10 with a 95%
bootstrap interval over users. Guarantee: everything the models see comes from the train split
(the Beam job splits before computing anything).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from recsys.evaluation.paired import pairwise_differences
from recsys.evaluation.report import protocol_document
from recsys.model_contract.ranker_config import RankerConfig
from trainer.config import RetrievalConfig
from trainer.evaluate import DEFAULT_KS, Segments

if TYPE_CHECKING:
    from trainer.baselines.sasrec import SasrecConfig

log = logging.getLogger(__name__)
CHECKOUT_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
PAIRED_METRICS = ("ndcg@10", "recall@10")


@dataclass
class Stopwatch:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        log.info("benchmark stage: %s", name)
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("benchmark stage %s done in %.1fs", name, self.seconds[name])
        return result


def _repo_copy(workdir: Path) -> Path:
    repo = workdir / "feature_repo"
    shutil.copytree(CHECKOUT_REPO, repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("data", "__pycache__", "production"))
    return repo


def quality_benchmark(movielens: Path, workdir: Path, cfg: RetrievalConfig = RetrievalConfig(),
                      ks: Sequence[int] = DEFAULT_KS, progress: bool = True,
                      beam_workers: int = 2, ranker: RankerConfig | None = RankerConfig(),
                      split: str = "temporal", sasrec: "SasrecConfig | None" = None) -> dict:
    """Run the protocol on ``movielens`` inside ``workdir``; returns the protocol document.
    ``ranker=None`` leaves the ranker out. ``split`` is the Beam job's: "temporal" (the
    protocol's, the last 20% of each user's positives held out) or "last_one"
    (leave-last-one-out: each user's last positive, still ranked against every item).
    ``sasrec``: the SASRec baseline's settings (None: its defaults)."""
    from recsys.data.lake import Lake
    from recsys.data.movielens import import_movielens
    from recsys.features.store import apply
    from trainer import workflow
    from trainer.ranking.workflow import train_ranking
    from trainer.training_data import load_retrieval_data
    from workflows.features_build import build_features

    start = time.perf_counter()
    clock = Stopwatch()
    lake = workdir / "lake"
    clock.run("import", import_movielens, movielens, Lake(lake, create=True))
    repo = _repo_copy(workdir)
    beam_args = ["--split", split, "--history_length", str(cfg.model.history_length)]
    if beam_workers > 1:
        beam_args += ["--direct_running_mode", "multi_processing",
                      "--direct_num_workers", str(beam_workers)]
    clock.run("beam features", build_features, lake, repo, "embedded", beam_args)
    clock.run("feast apply", apply, repo.resolve())
    data = clock.run("feast training set", load_retrieval_data, repo.resolve())
    model_dir = workdir / "two_tower"
    clock.run("train two-tower", workflow.train, repo, model_dir, cfg, progress, data)
    ranker_dir = None
    if ranker is not None:
        ranker_dir = workdir / "ranker"
        clock.run("train ranker", train_ranking, repo, model_dir, ranker_dir, ranker, data,
                  progress)
    report = clock.run("evaluate", workflow.evaluate, repo, model_dir, ks, Segments(), data,
                       ranker_dir, baselines(sasrec), per_user=True)
    models = {name: result["overall"] for name, result in report["models"].items()}
    segments = {name: result["segments"] for name, result in report["models"].items()}
    differences = clock.run("paired intervals", pairwise_differences, report["per_user"],
                            PAIRED_METRICS)
    total = round(time.perf_counter() - start, 1)
    return protocol_document(str(movielens), models, {
        "users": report["users"], "candidate_items": report["candidate_items"],
        "train_interactions": report["train_interactions"],
        "test_interactions": report["test_interactions"],
        "cold_test_interactions": report["cold_test_interactions"],
        "paired_differences": [d.to_dict() for d in differences],
        "paired_confidence": 0.95, "split": split,
        "segments": segments, "wall_seconds": total, "stage_seconds": clock.seconds,
        "config": cfg.to_dict(), "ranker_config": ranker.to_dict() if ranker else None})


def baselines(sasrec: "SasrecConfig | None" = None) -> dict:
    """The reference models run in the same harness, by row name: EASE at EVALUATION.md's
    lambda, and a SASRec-style sequence model (ids only, softmax loss; ``sasrec`` or its
    defaults)."""
    from recsys.evaluation import top_k
    from trainer.baselines.ease import DEFAULT_LAMBDA, ease_scores
    from trainer.baselines.sasrec import SasrecConfig, sasrec_scores

    sasrec = sasrec or SasrecConfig()

    def ease(data, es, depth):
        return top_k(ease_scores(data.train, es, DEFAULT_LAMBDA), depth, es.exclude)

    def sequence(data, es, depth):
        return top_k(sasrec_scores(data.train, es, sasrec), depth, es.exclude)

    return {f"EASE (lambda {DEFAULT_LAMBDA:g})": ease, "SASRec (ids, softmax)": sequence}


__all__ = ["quality_benchmark", "baselines", "PAIRED_METRICS"]
