"""The offline protocol's evaluation set (../shared/EVALUATION.md), model independent.

Guarantees: candidates are the items that occur in the train split (sorted by id); each
user's relevant items are their test items among the candidates (cold test items are counted
apart, in ``cold_test_items``); each user's excluded items are their train items; one query
row per user with test items: their earliest test example, whose history is the user's state
at the end of the train split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainer.training_data import RetrievalData, timestamps_us


@dataclass
class EvaluationSet:
    candidates: pd.DataFrame      # catalogue rows of the candidate items, index = candidate id
    queries: pd.DataFrame         # one row per evaluated user
    relevant: list[np.ndarray]    # per query row: candidate indices of the test items
    exclude: list[np.ndarray]     # per query row: candidate indices of the train items
    train_counts: np.ndarray      # per candidate: train positives (the popularity baseline)
    history_lengths: np.ndarray   # per query row: train positives of the user
    cold_test_items: int          # test interactions dropped because their item is not a candidate

    @property
    def request_times_us(self) -> np.ndarray:
        return timestamps_us(self.queries)

    def select(self, rows: np.ndarray) -> "EvaluationSet":
        """The same set over the query rows ``rows`` only (in that order)."""
        return dataclasses.replace(
            self, queries=self.queries.iloc[rows].reset_index(drop=True),
            relevant=[self.relevant[r] for r in rows], exclude=[self.exclude[r] for r in rows],
            history_lengths=self.history_lengths[rows])


def build_evaluation_set(data: RetrievalData) -> EvaluationSet:
    counts = data.train["item_id"].value_counts()
    rows = pd.DataFrame({"item_id": sorted(counts.index)})
    candidates = rows.merge(data.catalogue, on="item_id", how="left")
    position = pd.Series(np.arange(len(candidates)), index=candidates["item_id"])
    train_counts = counts.reindex(candidates["item_id"]).to_numpy(np.int64)

    test = data.test.sort_values(["user_id", "event_timestamp"], kind="stable")
    known = test["item_id"].isin(position.index)
    cold = int((~known).sum())
    train_items = data.train.groupby("user_id")["item_id"].agg(list)
    queries = test.drop_duplicates("user_id", keep="first").reset_index(drop=True)
    test_items = test[known].groupby("user_id")["item_id"].agg(list)
    relevant, exclude, lengths = [], [], []
    for user in queries["user_id"]:
        relevant.append(position.reindex(test_items.get(user, [])).to_numpy(np.int64))
        seen = train_items.get(user, [])
        exclude.append(np.unique(position.reindex(seen).to_numpy(np.int64)))
        lengths.append(len(seen))
    return EvaluationSet(candidates, queries, relevant, exclude, train_counts,
                         np.asarray(lengths, dtype=np.int64), cold)


__all__ = ["EvaluationSet", "build_evaluation_set"]
