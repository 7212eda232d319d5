"""The ranker's candidate lists as arrays, held compactly and built a chunk of users at a time.

A list is one request: the user's history, context and user features are the same for its
``depth`` candidates, so they are held once per list (``per_list``, [lists, ...]); the
candidate's content, item features and retrieval score once per row (``per_row``,
[lists * depth, ...]). Held per row, the history alone (three columns of 50 entries) was most
of the memory: at 22K lists of 200 it took the ranker's training past 22 GB.

Guarantees: :meth:`RankerLists.row_arrays` is exactly what :func:`to_arrays` gives for the
rows of every list; the lists are built ``chunk_users`` users at a time, so only one chunk's
rows (a DataFrame with the Feast features joined) exist at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.ranker_config import RankerConfig
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE, ranker_inputs
from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES

log = logging.getLogger(__name__)
CHUNK_USERS = 2048


def per_list_inputs(cfg: RankerConfig) -> frozenset[str]:
    """The ranker inputs that are the request's, the same for every candidate of a list."""
    return frozenset(("history_item_ids", "history_categories", "history_gaps_s",
                      "hour_of_day", "day_of_week", *CONTEXT_CATEGORICAL_FEATURES,
                      *cfg.user_numeric_features))


@dataclass
class RankerLists:
    per_list: dict[str, np.ndarray]  # [lists, ...]: the request's inputs
    per_row: dict[str, np.ndarray]   # [lists * depth, ...]: the candidate's inputs
    labels: np.ndarray               # float32 [lists, depth]: 1 where the user engaged
    engagement: np.ndarray           # float32 [lists, depth]: that engagement's label weight
    depth: int

    @property
    def lists(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def row_arrays(self) -> dict[str, np.ndarray]:
        """Every input per row ([lists * depth, ...]), the request's repeated per candidate."""
        return {**self.per_row, **{name: np.repeat(values, self.depth, axis=0)
                                   for name, values in self.per_list.items()}}


def ranker_rows(queries: pd.DataFrame, item_ids: np.ndarray, catalogue: pd.DataFrame,
                repo: Path) -> pd.DataFrame:
    """One row per (query, candidate) of ``item_ids`` ([queries, depth]): the query's columns,
    the candidate's content and the Feast features at the request time."""
    from recsys.features.training_set import join_features
    from trainer.training_data import with_content

    users, depth = item_ids.shape
    repeated = queries.iloc[np.repeat(np.arange(users), depth)].reset_index(drop=True)
    return join_features(repo, with_content(repeated.assign(item_id=item_ids.ravel()),
                                            catalogue), "ranking")


def list_chunks(queries: pd.DataFrame, item_ids: np.ndarray, scores: np.ndarray,
                catalogue: pd.DataFrame, repo: Path, cfg: RankerConfig,
                chunk_users: int = CHUNK_USERS
                ) -> Iterator[tuple[slice, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(the chunk's queries, per-list arrays, per-row arrays) for ``chunk_users`` queries at a
    time; ``scores`` ([queries, depth]) is each candidate's retrieval score."""
    users, depth = item_ids.shape
    specs = ranker_inputs(cfg)
    shared = per_list_inputs(cfg)
    for start in range(0, users, chunk_users):
        part = slice(start, min(start + chunk_users, users))
        rows = ranker_rows(queries.iloc[part], item_ids[part], catalogue, repo)
        rows[RETRIEVAL_SCORE] = scores[part].ravel()
        arrays = to_arrays(rows, specs, "the ranker rows")
        yield (part, {n: v[::depth] for n, v in arrays.items() if n in shared},
               {n: v for n, v in arrays.items() if n not in shared})


def build_lists(queries: pd.DataFrame, item_ids: np.ndarray, scores: np.ndarray,
                labels: np.ndarray, engagement: np.ndarray, catalogue: pd.DataFrame,
                repo: Path, cfg: RankerConfig, chunk_users: int = CHUNK_USERS) -> RankerLists:
    """The lists of every query, built ``chunk_users`` at a time (see the module docstring)."""
    per_list: dict[str, list[np.ndarray]] = {}
    per_row: dict[str, list[np.ndarray]] = {}
    for part, request, candidates in list_chunks(queries, item_ids, scores, catalogue, repo,
                                                 cfg, chunk_users):
        for into, arrays in ((per_list, request), (per_row, candidates)):
            for name, values in arrays.items():
                into.setdefault(name, []).append(values)
        log.info("ranker lists: %s of %s built", f"{part.stop:,}", f"{len(queries):,}")
    depth = item_ids.shape[1]
    if not per_list:  # no query: empty arrays of the right shapes
        empty = ranker_rows(queries, item_ids.reshape(0, depth), catalogue, repo)
        arrays = to_arrays(empty.assign(**{RETRIEVAL_SCORE: np.float32(0)}),
                           ranker_inputs(cfg), "the ranker rows")
        shared = per_list_inputs(cfg)
        per_list = {n: [v] for n, v in arrays.items() if n in shared}
        per_row = {n: [v] for n, v in arrays.items() if n not in shared}
    return RankerLists({n: np.concatenate(v) for n, v in per_list.items()},
                       {n: np.concatenate(v) for n, v in per_row.items()},
                       np.asarray(labels, np.float32), np.asarray(engagement, np.float32),
                       depth)


__all__ = ["CHUNK_USERS", "RankerLists", "build_lists", "list_chunks", "per_list_inputs",
           "ranker_rows"]
