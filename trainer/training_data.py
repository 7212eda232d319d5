"""The retrieval model's data: Beam training examples joined point in time with the Feast
``retrieval`` service, and the item catalogue.

Guarantees: train arrays hold one row per ``train`` example, ordered by time then example id
(so the same examples give the same run whatever order the store returns them in), with the
positive item's content as of the catalogue's latest row and its age at the example's time;
nothing from ``test`` examples reaches the vocabularies or the training arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.errors import SourceError
from recsys.features.catalogue import CATALOGUE_COLUMNS, read_catalogue
from recsys.model_contract.arrays import to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from recsys.model_contract.retrieval_config import RetrievalModelConfig


def timestamps_us(frame: pd.DataFrame) -> np.ndarray:
    """``event_timestamp`` as int64 microseconds since the epoch (UTC)."""
    ts = pd.to_datetime(frame["event_timestamp"], utc=True)
    return ts.dt.tz_localize(None).astype("datetime64[us]").to_numpy().astype(np.int64)


def with_content(examples: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """``examples`` with their item's catalogue content and age at the example's time."""
    joined = examples.drop(columns=[c for c in CATALOGUE_COLUMNS[1:] if c in examples.columns])
    joined = joined.merge(catalogue, on="item_id", how="left", validate="many_to_one")
    return with_item_age(joined, timestamps_us(joined))


@dataclass
class RetrievalData:
    """Everything training and evaluation read, already split."""

    train: pd.DataFrame
    test: pd.DataFrame
    catalogue: pd.DataFrame

    def train_arrays(self, cfg: RetrievalModelConfig) -> tuple[dict, dict]:
        """(query arrays, candidate arrays) of the train examples."""
        frame = with_content(self.train, self.catalogue)
        return (to_arrays(frame, query_inputs(cfg), "the training set"),
                to_arrays(frame, candidate_inputs(cfg), "the training set"))


def load_retrieval_data(repo: Path, examples: pd.DataFrame | None = None) -> RetrievalData:
    """Examples of the profile repository ``repo`` joined with the ``retrieval`` service (or
    the given already-joined ``examples``), split by their ``split`` column."""
    if examples is None:
        from recsys.features.training_set import training_set

        examples = training_set(repo, service="retrieval")
    if "split" not in examples.columns:
        raise SourceError("the training examples have no 'split' column: rebuild them with "
                          "`recsys features build`")
    catalogue = read_catalogue(repo / "data")
    examples = examples.sort_values(["event_timestamp", "example_id"], kind="stable")
    train = examples[examples["split"] == "train"].reset_index(drop=True)
    test = examples[examples["split"] == "test"].reset_index(drop=True)
    if train.empty:
        raise SourceError(f"no training examples in {repo / 'data' / 'training_examples'}")
    return RetrievalData(train=train, test=test, catalogue=catalogue)


__all__ = ["RetrievalData", "load_retrieval_data", "with_content", "timestamps_us"]
