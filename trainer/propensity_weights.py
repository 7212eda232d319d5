"""Inverse propensity weights for training examples that came from logged answers.

A model trained on its own platform's clicks learns what was shown as much as what users
like: after a shift in tastes, the items it keeps showing collect most clicks, because it
shows them. An exploring service logs, for each shown item, the probability that its policy
showed it there (``propensity``, exact given the ranked list; ``docs/exploration.md``).
Weighting each click by ``1 / propensity`` makes the clicks on rarely shown items count as
often as they would have been seen (inverse propensity scoring, as in unbiased
learning-to-rank and off-policy recommender training); ``clip`` bounds the weights, trading
a little bias for much less variance.

Guarantees: an example's weight is ``min(1 / p, clip)`` where its event (``example_id`` is
the event id) names a logged answer that showed its item with propensity ``p``; 1 where it
names none (organic, or not logged); never below 1 or above ``clip``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from recsys.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PropensityWeights:
    weights: np.ndarray  # float64 per example, in [1, clip]
    logged: int  # examples whose answer was found in the exposure log
    explored: int  # of those, shown with propensity below 1
    clipped: int  # weights cut at ``clip``

    def summary(self) -> dict:
        return {"examples": len(self.weights), "logged": self.logged,
                "explored": self.explored, "clipped": self.clipped,
                "mean_weight": round(float(self.weights.mean()), 4)
                if len(self.weights) else None}


def inverse_propensity_weights(lake_root: Path, examples: pd.DataFrame, clip: float
                               ) -> PropensityWeights:
    """The weight of each of ``examples`` (in order) from ``lake_root``'s exposure log."""
    from recsys.data.lake import Lake
    from recsys.data.schemas import EXPOSURES
    from trainer.slate_evaluation import answered_events

    if not clip >= 1 or not np.isfinite(clip):
        raise ConfigError(f"the inverse propensity clip must be a finite number >= 1, got "
                          f"{clip!r}")
    lake = Lake(lake_root)
    ids = examples["example_id"].astype(str)
    events = answered_events(lake_root, ids).drop_duplicates("event_id")
    request_of = events.set_index("event_id")["request_id"]
    requests = ids.map(request_of)
    wanted = sorted(set(requests.dropna()))
    propensity = pd.Series(dtype=np.float64)
    if wanted:
        shown = lake.partitioned_dataset(EXPOSURES).to_table(
            columns=["request_id", "item_id", "propensity"],
            filter=pc.field("request_id").isin(wanted)).to_pandas()
        # an item shown twice under one request id (a retried answer): its likelier showing
        shown = shown.groupby(["request_id", "item_id"])["propensity"].max()
        propensity = pd.Series(list(zip(requests, examples["item_id"].astype(str))),
                               index=examples.index).map(shown)
    p = pd.to_numeric(propensity.reindex(examples.index), errors="coerce").to_numpy(
        np.float64)
    found = np.isfinite(p) & (p > 0)
    raw = np.where(found, 1.0 / np.where(found, p, 1.0), 1.0)
    weights = np.minimum(np.maximum(raw, 1.0), clip)
    result = PropensityWeights(weights, int(found.sum()), int((found & (p < 1)).sum()),
                               int((raw > clip).sum()))
    log.info("inverse propensity weights (clip %g): %s", clip, result.summary())
    return result


__all__ = ["inverse_propensity_weights", "PropensityWeights"]
