"""Training/serving skew: the online store's values against the offline store's point-in-time
values for the same entities at the same time.

What the service reads (Feast's online store, written by materialization and the stream) must
be what a training set joined for the same entity at the same moment (Feast's
``get_historical_features``, point in time). A writer that puts a value in the wrong unit, a
stale materialization or a stream job that computes a feature differently from the Beam job
shows up here as values that differ, per feature.

A pair differs when exactly one side is missing, or when both are present and unequal:
numbers beyond a relative tolerance of ``RELATIVE_TOLERANCE`` (float32 storage rounds), lists
element by element, anything else exactly. A feature is skewed when the share of differing
pairs, among pairs with a value on at least one side, is above ``threshold``.

Guarantees: ``compare_features`` is a pure function of the two tables; ``sample_skew`` reads
both stores through Feast (the real stores of the profile) for the same entities and time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

RELATIVE_TOLERANCE = 1e-5
DEFAULT_VIEWS = ("user_features", "user_profile")


@dataclass(frozen=True)
class SkewResult:
    feature_view: str
    feature: str
    compared: int  # pairs with a value on at least one side
    differing: int
    online_missing: int  # of the compared pairs, those with no online value
    offline_missing: int
    threshold: float
    example: tuple | None  # (entity, online value, offline value) of a differing pair

    @property
    def share(self) -> float:
        return self.differing / self.compared if self.compared else 0.0

    @property
    def skew(self) -> bool:
        return self.share > self.threshold

    def to_dict(self) -> dict:
        return {**asdict(self), "share": self.share, "skew": self.skew}


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, np.floating) and bool(np.isnan(value))


def same_value(online: Any, offline: Any) -> bool:
    """Equal up to float32 rounding for numbers, element by element for lists."""
    if is_missing(online) or is_missing(offline):
        return is_missing(online) and is_missing(offline)
    if isinstance(online, (list, tuple, np.ndarray)) or isinstance(offline,
                                                                   (list, tuple, np.ndarray)):
        a, b = list(online), list(offline)
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(online, (bool, np.bool_)) or isinstance(offline, (bool, np.bool_)):
        return bool(online) == bool(offline)
    if isinstance(online, (int, float, np.number)) and isinstance(offline,
                                                                  (int, float, np.number)):
        return math.isclose(float(online), float(offline), rel_tol=RELATIVE_TOLERANCE,
                            abs_tol=1e-9)
    return online == offline


def compare_features(entities: Sequence[str], online: Mapping[str, Sequence],
                     offline: Mapping[str, Sequence], features: Sequence[tuple[str, str]],
                     threshold: float = 0.01) -> list[SkewResult]:
    """Per ``(feature_view, feature)``: the two stores' values of ``entities`` (aligned
    columns, one value per entity) compared pair by pair."""
    results = []
    for view, name in features:
        compared = differing = online_missing = offline_missing = 0
        example = None
        for entity, a, b in zip(entities, online[name], offline[name]):
            a_missing, b_missing = is_missing(a), is_missing(b)
            if a_missing and b_missing:
                continue
            compared += 1
            online_missing += a_missing
            offline_missing += b_missing
            if not same_value(a, b):
                differing += 1
                if example is None:
                    example = (entity, _plain(a), _plain(b))
        results.append(SkewResult(view, name, compared, differing, online_missing,
                                  offline_missing, threshold, example))
    return results


def view_features(views: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """The entity key and the ``(view, feature)`` pairs of ``views``; unknown views, or views
    of different entities, are a ConfigError naming them."""
    from recsys.errors import ConfigError
    from recsys.features.tables import FEATURE_TABLES

    if not views:
        raise ConfigError("no feature view named")
    unknown = [v for v in views if v not in FEATURE_TABLES]
    if unknown:
        raise ConfigError(f"unknown feature view(s) {unknown}; the views are "
                          f"{', '.join(FEATURE_TABLES)}")
    keys = {FEATURE_TABLES[v].key for v in views}
    if len(keys) != 1:
        raise ConfigError(f"views {list(views)} are keyed by different entities "
                          f"({', '.join(sorted(keys))}): check user views and item views "
                          "separately")
    return keys.pop(), [(v, f) for v in views for f in FEATURE_TABLES[v].feature_names]


def sample_skew(repo: Path, entities: Sequence[str], at: dt.datetime,
                views: Sequence[str] = DEFAULT_VIEWS, threshold: float = 0.01
                ) -> list[SkewResult]:
    """The features of ``views`` (user or item views of one entity) for ``entities``: the
    online store's now against the offline store's point in time at ``at``. ``repo``: a
    profile's Feast repository (``recsys.features.store.profile_repo``)."""
    import pandas as pd
    from feast import FeatureStore

    from recsys.errors import ConfigError, FeatureStoreError
    from recsys.features.store import in_repo

    key, features = view_features(views)
    refs = [f"{v}:{f}" for v, f in features]
    entities = [str(e) for e in entities]
    if not entities:
        raise ConfigError("no entities to compare")
    with in_repo(Path(repo)):
        store = FeatureStore(repo_path=str(repo))
        try:
            served = store.get_online_features(
                features=refs, entity_rows=[{key: e} for e in entities]).to_dict()
            frame = pd.DataFrame({key: entities, "event_timestamp": pd.Timestamp(at),
                                  "_row": range(len(entities))})
            joined = store.get_historical_features(
                entity_df=frame, features=refs, filter_by_created_timestamp=True).to_df()
        except Exception as exc:  # noqa: BLE001 - Feast raises many kinds
            raise FeatureStoreError(f"cannot read {', '.join(views)} from {repo}: "
                                    f"{exc}") from exc
    joined = joined.sort_values("_row")
    offline = {name: joined[name].tolist() for _, name in features}
    return compare_features(entities, served, offline, features, threshold)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = ["SkewResult", "compare_features", "sample_skew", "view_features", "same_value",
           "DEFAULT_VIEWS", "RELATIVE_TOLERANCE"]
