"""``recsys train ranking`` as a function: stacking two-tower model -> candidate lists with
point-in-time features -> listwise fit -> ranker directory.

Guarantees: only the train split is used (see :mod:`trainer.ranking.stacking`); the stacking
model is trained with the retrieval model's own configuration (for at most
``stacking_epochs`` epochs, with at most ``stacking_members`` ensemble members); the ranker
keeps the stacking model's item table, whose vectors were computed at the end of the fit
part.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from recsys.model_contract.arrays import to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs
from recsys.model_contract.ranker_config import RankerConfig
from trainer.config import RetrievalConfig
from trainer.model_dir import ModelDir
from trainer.ranking.ranker_dir import RankerDir
from trainer.ranking.stacking import candidate_lists, split_by_time
from trainer.ranking.train import train_ranker
from trainer.tower import embed
from trainer.train import train_retrieval
from trainer.training_data import RetrievalData, load_retrieval_data, timestamps_us

log = logging.getLogger(__name__)


@dataclass
class RankingResult:
    ranker_dir: Path
    lists: int
    positives: int
    losses: list[float]
    seconds: float


def item_table(two_tower, data: RetrievalData) -> tuple[list[str], "object"]:
    """Every catalogue item's candidate embedding at the end of ``data.train``."""
    catalogue = data.catalogue
    reference = int(timestamps_us(data.train).max())
    vectors = embed(two_tower.candidate_tower,
                    to_arrays(with_item_age(catalogue, reference),
                              candidate_inputs(two_tower.cfg), "the catalogue"))
    return catalogue["item_id"].tolist(), vectors


def stacking_config(retrieval: RetrievalConfig, cfg: RankerConfig) -> RetrievalConfig:
    """The stacking two-tower model's configuration: the retrieval model's, with at most
    ``cfg.stacking_epochs`` epochs and ``cfg.stacking_members`` ensemble members (None: the
    retrieval model's own)."""
    if cfg.stacking_epochs is not None:
        retrieval = dataclasses.replace(retrieval, train=retrieval.train.replace(
            epochs=min(cfg.stacking_epochs, retrieval.train.epochs)))
    if cfg.stacking_members is not None:
        members = min(cfg.stacking_members, retrieval.model.ensemble_members)
        temperatures = retrieval.model.member_temperatures  # the first members' own
        retrieval = dataclasses.replace(retrieval, model=dataclasses.replace(
            retrieval.model, ensemble_members=members,
            member_temperatures=temperatures[:members]))
    return retrieval


def train_ranking(repo: Path, retrieval_model_dir: Path, ranker_dir: Path, cfg: RankerConfig,
                  data: RetrievalData | None = None, progress: bool = True) -> RankingResult:
    started = time.perf_counter()
    data = data or load_retrieval_data(repo)
    retrieval_cfg = stacking_config(ModelDir(retrieval_model_dir).read_config(), cfg)
    fit, held = split_by_time(data.train, cfg.holdout_fraction)
    stacking = RetrievalData(train=fit, test=held, catalogue=data.catalogue)
    directory = RankerDir(Path(ranker_dir))
    log.info("stacking two-tower model on %s of %s train interactions", f"{len(fit):,}",
             f"{len(data.train):,}")
    train_retrieval(stacking, retrieval_cfg, directory.stacking_model_dir, progress=progress)
    _, _, two_tower = ModelDir(directory.stacking_model_dir).restore()
    built = candidate_lists(two_tower, stacking, repo, cfg)
    ids, vectors = item_table(two_tower, stacking)
    lists, positives = built.lists, built.positives
    log.info("ranker lists: %d of %d candidates, %s positives", lists, cfg.candidates,
             f"{positives:,}")
    result = train_ranker(built, cfg, ids, vectors)
    directory.save(result.model, {"data_end_us": int(timestamps_us(data.train).max()),
                                  "lists": lists, "positives": positives,
                                  "retrieval_model_dir": str(Path(retrieval_model_dir).resolve())},
                   result.losses)
    return RankingResult(directory.path, lists, positives, result.losses,
                         time.perf_counter() - started)


__all__ = ["train_ranking", "stacking_config", "item_table", "RankingResult"]
