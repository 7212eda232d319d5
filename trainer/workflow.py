"""The retrieval model's commands as functions over a feature repository and a model
directory: train, evaluate, export. The CLI and the quality benchmark call these.

Guarantees: evaluation writes ``MODEL_DIR/evaluation.json`` and the next export copies those
figures into its manifests; nothing here reads the environment.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recsys.errors import SourceError
from recsys.evaluation import per_user_metrics, top_k
from recsys.features.catalogue import read_catalogue
from recsys.model_contract.arrays import with_missing_columns
from recsys.model_contract.feature_spec import query_inputs
from trainer.config import RetrievalConfig
from trainer.evaluate import (
    DEFAULT_KS,
    Segments,
    evaluate_ranked,
    popularity_scores,
    two_tower_top_k,
)
from trainer.evaluation_set import EvaluationSet, build_evaluation_set
from trainer.export import ExportResult, export_models
from trainer.model_dir import ModelDir
from trainer.scann_config import ScannConfig
from trainer.train import TrainResult, train_retrieval
from trainer.training_data import RetrievalData, load_retrieval_data

log = logging.getLogger(__name__)
EVALUATION_FILE = "evaluation.json"


def train(repo: Path, model_dir: Path, cfg: RetrievalConfig, progress: bool = True,
          data: RetrievalData | None = None) -> TrainResult:
    data = data or load_retrieval_data(repo)
    log.info("training on %s examples (%s users, %s items)", f"{len(data.train):,}",
             f"{data.train['user_id'].nunique():,}", f"{data.train['item_id'].nunique():,}")
    return train_retrieval(data, cfg, model_dir, progress=progress)


Baseline = Callable[[RetrievalData, EvaluationSet, int], np.ndarray]
"""A reference model for :func:`evaluate`: (data, evaluation set, depth) -> its ranked
candidate indices, int [queries, depth], best first, the user's train items left out."""


def evaluate(repo: Path, model_dir: Path | None, ks: Sequence[int] = DEFAULT_KS,
             segments: Segments = Segments(), data: RetrievalData | None = None,
             ranker_dir: Path | None = None, baselines: Mapping[str, Baseline] | None = None,
             per_user: bool = False) -> dict:
    """Protocol metrics of most-popular, the ``baselines`` (name -> ranking function, in
    order), (with ``model_dir``) the two-tower model and (with ``ranker_dir`` too) the
    two-tower model's candidates re-ranked by the ranker. With ``per_user``, the report also
    holds ``per_user``: model -> metric -> float64 [queries], every model's users in the same
    order (left out of ``MODEL_DIR/evaluation.json``)."""
    data = data or load_retrieval_data(repo)
    if data.test.empty:
        raise SourceError("no test examples: build the features with --split temporal")
    es = build_evaluation_set(data)
    depth = max(ks)
    rankings = {"most-popular": top_k(popularity_scores(es), depth, es.exclude)}
    for name, rank in (baselines or {}).items():
        started = time.perf_counter()
        rankings[name] = rank(data, es, depth)
        log.info("baseline %s ranked in %.1fs", name, time.perf_counter() - started)
    if model_dir is not None:
        _, _, model = ModelDir(model_dir).restore()
        ranker = None
        if ranker_dir is not None:
            from trainer.ranking.ranker_dir import RankerDir

            ranker = RankerDir(Path(ranker_dir)).restore()
        rerank_depth = max(ranker.cfg.candidates, *ks) if ranker else depth
        retrieved = two_tower_top_k(model, es, rerank_depth)  # once, for both rows
        rankings["two-tower"] = retrieved[0][:, :depth]
        if ranker is not None:
            from trainer.ranking.evaluate import reranked

            rankings["two-tower + ranker"] = reranked(ranker, model, es, data.catalogue, repo,
                                                      rerank_depth, retrieved=retrieved)
    results = {name: evaluate_ranked(ranked, es, ks, segments)
               for name, ranked in rankings.items()}
    report = {"users": len(es.queries), "candidate_items": len(es.candidates),
              "train_interactions": len(data.train),
              "test_interactions": int(sum(len(r) for r in es.relevant)),
              "cold_test_interactions": es.cold_test_items, "models": results}
    if model_dir is not None:
        (Path(model_dir) / EVALUATION_FILE).write_text(json.dumps(report, indent=2))
    if per_user:
        report["per_user"] = {name: per_user_metrics(ranked[:, :depth], es.relevant,
                                                     len(es.candidates), ks)
                              for name, ranked in rankings.items()}
    return report


CHECK_ROWS = 256  # training examples the export's load and recall checks query
PROFILE_ROWS = 2_000  # training examples the reference profile describes


def _training_queries(repo: Path, cfg: RetrievalConfig, sizes: Sequence[int]
                      ) -> list[pd.DataFrame]:
    """Samples of real queries (training examples; features absent from them left missing),
    one per size, from one read of the table: the export's load and recall checks, and its
    reference profile. Empty frames without training examples."""
    path = repo / "data" / "training_examples"
    if not path.is_dir():
        return [pd.DataFrame() for _ in sizes]
    frame = pq.read_table(path).to_pandas()
    samples = [frame.sample(n=min(rows, len(frame)), random_state=0).reset_index(drop=True)
               for rows in sizes]
    return [with_missing_columns(_with_features(repo, sample), query_inputs(cfg.model))
            for sample in samples]


def _with_features(repo: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` joined point in time with the retrieval service's Feast features, as the
    model was trained on them (a profile without them would describe features the model
    never saw as always missing); unjoined, with a warning, when the store cannot join."""
    from recsys.features.training_set import join_features

    try:
        return join_features(repo, rows, "retrieval")
    except Exception as exc:  # noqa: BLE001 - named; the export goes on without them
        log.warning("the export's query samples lack the Feast features (%s: %s); the "
                    "reference profile will show them as missing", type(exc).__name__, exc)
        return rows


def export(repo: Path, model_dir: Path, base_path: Path, k: int = 100,
           scann: ScannConfig = ScannConfig(), ranker_dir: Path | None = None) -> ExportResult:
    """Index every catalogue item of ``repo`` (ages at the latest training example) and
    publish the three artifacts under ``base_path``."""
    directory = ModelDir(model_dir)
    cfg, _, model = directory.restore()
    evaluation_path = Path(model_dir) / EVALUATION_FILE
    details = {"model_dir": str(Path(model_dir).resolve()), "train_config": cfg.to_dict()["train"]}
    if evaluation_path.exists():
        details["evaluation"] = json.loads(evaluation_path.read_text())
    ranker, ranker_details = None, None
    if ranker_dir is not None:
        from trainer.ranking.ranker_dir import RankerDir

        ranker = RankerDir(Path(ranker_dir)).restore()
        ranker_details = {"ranker_dir": str(Path(ranker_dir).resolve())}
        if evaluation_path.exists():
            ranker_details["evaluation"] = details.get("evaluation")
    checks, profile_rows = _training_queries(repo, cfg, (CHECK_ROWS, PROFILE_ROWS))
    return export_models(model, read_catalogue(repo / "data"), directory.data_end_us(),
                         base_path, k=k, scann=scann, queries=checks, details=details,
                         ranker=ranker, ranker_details=ranker_details,
                         profile_rows=profile_rows)


__all__ = ["train", "evaluate", "export", "Baseline", "EVALUATION_FILE"]
