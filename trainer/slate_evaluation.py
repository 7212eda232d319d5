"""Within-slate evaluation on the answers the service logged: for each test positive that was
clicked in an answer of the exposure log, does the model score it above the items shown
beside it that the user did not open?

Why: after the service has been serving a model, the test split is the users' clicks on what
that model chose to show, so a catalogue-wide metric such as recall@100 favours it over any
candidate (it put those items in front of the users). Within one answer both models rank the
same items, chosen by neither of them, so the comparison no longer asks "who chose what was
shown". What is left of the incumbent's advantage is position bias: the items it ranked first
were shown higher, where they are opened more.

``slate_auc`` is the mean over such positives of the share of the answer's unopened items
scored below the positive (ties count half): 0.5 is chance, 1 orders every answer perfectly.

Guarantees: a positive counts only when its event names a request of the exposure log with at
least one unopened item in the catalogue; every answer's items are scored by the same
towers at the answer's time (item ages as at its day); :func:`logged_slates` raises
SourceError, naming the lake, when no test positive has a logged answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from recsys.errors import SourceError
from recsys.features.config import POSITIVE_CAPABLE
from recsys.model_contract.arrays import US_PER_DAY, to_arrays, with_item_age
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from trainer.training_data import timestamps_us

SLATE_AUC = "slate_auc"
# an item with any of these events in an answer was opened there (the event types that can
# make a positive)
OPENED = POSITIVE_CAPABLE


@dataclass
class LoggedSlates:
    """Test positives with their logged answer: ``examples`` (their query inputs),
    ``positives[i]`` the catalogue row of example i's item, ``unopened[i]`` the catalogue
    rows of the items shown with it and not opened."""

    examples: pd.DataFrame
    positives: np.ndarray
    unopened: list[np.ndarray]
    catalogue: pd.DataFrame

    def __len__(self) -> int:
        return len(self.examples)


def answered_events(lake_root: Path, event_ids=None) -> pd.DataFrame:
    """The lake's events that name the answer they came from (only ``event_ids`` when
    given: the filter is pushed down to the Parquet scan)."""
    from recsys.data.lake import Lake

    wanted = pc.field("request_id").is_valid()
    if event_ids is not None:
        wanted = wanted & pc.field("event_id").isin(sorted(set(event_ids)))
    return Lake(lake_root).events_dataset().to_table(
        columns=["event_id", "request_id", "item_id", "event_type"],
        filter=wanted).to_pandas()


def logged_slates(lake_root: Path, test: pd.DataFrame, catalogue: pd.DataFrame
                  ) -> LoggedSlates:
    """The test examples (``example_id`` is the event id) whose event names an answer of
    the lake's exposure log, with that answer's unopened items."""
    from recsys.data.lake import Lake
    from recsys.data.schemas import EXPOSURES

    events = answered_events(lake_root)
    request_of = events.set_index("event_id")["request_id"]
    requests = test["example_id"].map(request_of)
    wanted = set(requests.dropna())
    if not wanted:
        raise SourceError(f"no test positive of the feature repository names an answer "
                          f"(request_id) of {lake_root}: slate metrics need the service's "
                          "exposure log and events sent with their request ids")
    exposures = Lake(lake_root).partitioned_dataset(EXPOSURES).to_table(
        columns=["request_id", "item_id"],
        filter=pc.field("request_id").isin(sorted(wanted))).to_pandas()
    opened = events[events["event_type"].isin(OPENED)
                    & events["request_id"].isin(wanted)]
    opened_keys = set(zip(opened["request_id"], opened["item_id"]))
    row_of = pd.Series(np.arange(len(catalogue)), index=catalogue["item_id"])
    shown = exposures[exposures["item_id"].isin(row_of.index)]
    unopened_by_request = {
        request: row_of[[i for i in items if (request, i) not in opened_keys]].to_numpy()
        for request, items in shown.groupby("request_id")["item_id"]}
    keep, positives, unopened = [], [], []
    for n, (request, item) in enumerate(zip(requests, test["item_id"])):
        rows = unopened_by_request.get(request)
        if rows is None or not len(rows) or item not in row_of.index:
            continue
        keep.append(n)
        positives.append(int(row_of[item]))
        unopened.append(rows)
    if not keep:
        raise SourceError(f"no test positive of the feature repository was shown beside an "
                          f"unopened item in an answer logged in {lake_root}")
    return LoggedSlates(test.iloc[keep].reset_index(drop=True),
                        np.asarray(positives, np.int64), unopened, catalogue)


def slate_auc(model, slates: LoggedSlates, age_resolution_days: float = 1.0) -> dict:
    """``{slate_auc, slate_positives}`` of a restored two-tower model on ``slates``."""
    from trainer.evaluate import embed

    cfg = model.cfg
    queries = embed(model.query_tower, to_arrays(slates.examples, query_inputs(cfg),
                                                 "slate queries"))
    step = int(age_resolution_days * US_PER_DAY)
    buckets = (timestamps_us(slates.examples) // step) * step
    wins = np.empty(len(slates))
    for bucket in np.unique(buckets):
        rows = np.flatnonzero(buckets == bucket)
        needed = np.unique(np.concatenate([slates.positives[rows],
                                           *(slates.unopened[r] for r in rows)]))
        items = to_arrays(with_item_age(slates.catalogue.iloc[needed], int(bucket)),
                          candidate_inputs(cfg), "slate items")
        column = pd.Series(np.arange(len(needed)), index=needed)
        item_vectors = embed(model.candidate_tower, items)
        for r in rows:
            scores = item_vectors[column[slates.unopened[r]].to_numpy()] @ queries[r]
            positive = item_vectors[column[slates.positives[r]]] @ queries[r]
            wins[r] = float(np.mean((positive > scores) + 0.5 * (positive == scores)))
    return {SLATE_AUC: float(wins.mean()), "slate_positives": int(len(slates))}


__all__ = ["LoggedSlates", "logged_slates", "slate_auc", "SLATE_AUC"]
