"""A request's model inputs, encoded exactly as the training data was.

The online features of the user (Feast ``retrieval`` views) and the request context become
one query row with the columns of the Beam training examples; the candidates' online item
features and catalogue content become the ranker's rows. Both go through
:func:`recsys.model_contract.arrays.records_to_arrays`, which encodes exactly as the training
encoder (``to_arrays``) does (a test holds them equal), without a DataFrame per request.

Guarantees: history lists are most recent first, at most ``max_history`` long, with gaps in
seconds from the request time (0 where the time is unknown); context values the request
gives win over the user's profile; hour and weekday are those of the request time in UTC,
as in the Beam job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from recsys.model_contract.arrays import records_to_arrays
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE
from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES

PROFILE_FIELDS = {"device": "user_device", "country": "user_country",
                  "language": "user_language"}


@dataclass
class History:
    item_ids: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    gaps_s: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.item_ids)


def _list(value: Any) -> list:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(value)


def user_history(user: Mapping[str, Any], now_s: int, max_history: int) -> History:
    """The user's recent items from the session features."""
    ids = [str(i) for i in _list(user.get("session_recent_item_ids")) if i]
    ids = ids[:max_history]
    categories = [str(c or "") for c in _list(user.get("session_recent_categories"))]
    times = _list(user.get("session_recent_event_at_s"))
    categories = (categories + [""] * len(ids))[:len(ids)]
    gaps = [float(max(now_s - t, 0)) if t is not None else 0.0 for t in times[:len(ids)]]
    gaps += [0.0] * (len(ids) - len(gaps))
    return History(ids, categories, gaps)


def context_values(user: Mapping[str, Any], context: Mapping[str, str | None]
                   ) -> dict[str, str | None]:
    """device, country, language: the request's, else the profile's."""
    return {name: context.get(name) or user.get(PROFILE_FIELDS[name]) or None
            for name in CONTEXT_CATEGORICAL_FEATURES}


def query_row(user_id: str, user: Mapping[str, Any], history: History,
              context: Mapping[str, str | None], now_s: int) -> dict[str, Any]:
    """One row with the columns of a training example at request time."""
    when = dt.datetime.fromtimestamp(now_s, dt.timezone.utc)
    return {**user, "user_id": user_id, "history_item_ids": history.item_ids,
            "history_categories": history.categories, "history_gaps_s": history.gaps_s,
            "hour_of_day": when.hour, "day_of_week": when.weekday(),
            **context_values(user, context)}


def query_arrays(row: Mapping[str, Any], specs) -> dict[str, np.ndarray]:
    """The retrieval signature's inputs for one query row."""
    return records_to_arrays([row], specs)


def ranker_arrays(row: Mapping[str, Any], candidates: Sequence[str],
                  item_features: Mapping[str, Sequence[Any]],
                  retrieval_scores: Sequence[float], now_s: int,
                  specs) -> dict[str, np.ndarray]:
    """The ``rank`` signature's inputs: the query row repeated per candidate, with each
    candidate's online item features, its age at ``now_s`` and its retrieval score (NaN for
    candidates outside the index)."""
    records = []
    for i, item in enumerate(candidates):
        record = {name: values[i] for name, values in item_features.items()}
        created = record.get("item_created_at_s")
        record["item_id"] = item
        record["item_age_days"] = ((now_s - float(created)) / 86_400.0
                                   if created is not None and created == created else None)
        record[RETRIEVAL_SCORE] = float(retrieval_scores[i])
        records.append(record)
    item_side = {*item_features, "item_id", "item_age_days", RETRIEVAL_SCORE}
    shared = {k: v for k, v in row.items() if k not in item_side}
    return records_to_arrays(records, specs, shared)


class RankerEncoder:
    """The ``rank`` signature's inputs built column-wise: the user side encoded once and
    repeated, the item side gathered from encoded columns (an ``ItemFeatureTable``'s). Gives
    the arrays :func:`ranker_arrays` gives for the same rows (a test holds them equal), at a
    fraction of its cost."""

    def __init__(self, specs, item_specs):
        self.specs = tuple(specs)
        item_side = {s.name for s in item_specs} | {"item_id", "item_age_days",
                                                    RETRIEVAL_SCORE}
        self.user_specs = tuple(s for s in self.specs if s.name not in item_side)

    def encode(self, row: Mapping[str, Any], item_ids: Sequence[str],
               item_columns: Mapping[str, np.ndarray], created_at_s: np.ndarray,
               retrieval_scores: np.ndarray, now_s: int) -> dict[str, np.ndarray]:
        n = len(item_ids)
        user = records_to_arrays([row], self.user_specs)
        computed = {
            "item_id": np.asarray(item_ids, dtype=object).reshape(n),
            "item_age_days": ((now_s - created_at_s) / 86_400.0).astype(np.float32),
            RETRIEVAL_SCORE: np.asarray(retrieval_scores, dtype=np.float32).reshape(n)}
        out = {}
        for spec in self.specs:
            name = spec.name
            if name in user:
                out[name] = np.repeat(user[name], n, axis=0)
            elif name in computed:
                out[name] = computed[name]
            else:
                out[name] = item_columns[name]
        return out


__all__ = ["History", "user_history", "context_values", "query_row", "query_arrays",
           "ranker_arrays", "RankerEncoder", "PROFILE_FIELDS"]
