"""Training sets from Feast: the Beam training examples joined, point in time, with a feature
service's features through ``get_historical_features``.

Guarantees: one output row per example, in the examples' order; every feature value is the one
Feast would have served at the example's timestamp (event time <= example time, within the TTL,
and, with ``filter_by_created_timestamp``, created no later than the example time). A column
the examples already carry (``item_category``) is taken from Feast.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.errors import FeatureStoreError
from recsys.features.store import in_repo

ENTITY_COLUMNS = ["user_id", "item_id", "event_timestamp"]


def training_set(path: Path, service: str = "ranking", split: str | None = None,
                 examples_dir: Path | None = None) -> pd.DataFrame:
    """Examples of ``split`` (all when None) from ``<path>/data/training_examples`` joined with
    the features of ``service``."""
    source = examples_dir or path / "data" / "training_examples"
    if not source.is_dir():
        raise FeatureStoreError(f"{source} not found; run `recsys features build` first")
    examples = pq.read_table(source).to_pandas()
    if split is not None:
        examples = examples[examples["split"] == split]
    return join_features(path, examples, service)


JOIN_CHUNK_ROWS = 500_000


def join_features(path: Path, rows: pd.DataFrame, service: str,
                  chunk_rows: int = JOIN_CHUNK_ROWS) -> pd.DataFrame:
    """``rows`` (with ``user_id``, ``item_id``, ``event_timestamp``) joined point in time with
    the features of ``service``; one output row per input row, in order; columns the rows
    already carry that the service also serves are taken from Feast. The join runs on at
    most ``chunk_rows`` rows at a time (each row's join is its own, so the result is the
    same): a whole join of 4.4M ranker rows held 19.6 GB on the production profile."""
    from feast import FeatureStore

    examples = rows.reset_index(drop=True)
    parts = []
    with in_repo(path):
        store = FeatureStore(repo_path=str(path))
        service_ = store.get_feature_service(service)
        for start in range(0, max(len(examples), 1), chunk_rows):
            chunk = examples.iloc[start:start + chunk_rows].copy()
            chunk["_row"] = range(len(chunk))
            joined = store.get_historical_features(
                entity_df=chunk[[*ENTITY_COLUMNS, "_row"]], features=service_,
                filter_by_created_timestamp=True).to_df()
            if len(joined) != len(chunk):
                raise FeatureStoreError(f"the point-in-time join returned {len(joined)} rows "
                                        f"for {len(chunk)} examples")
            features = joined.drop(columns=ENTITY_COLUMNS).sort_values("_row")
            shared = [c for c in features.columns if c in chunk.columns and c != "_row"]
            parts.append(chunk.drop(columns=shared).merge(features, on="_row")
                         .drop(columns="_row"))
            del joined, features, chunk
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def user_values_at(path: Path, users: pd.DataFrame, feature: str) -> pd.Series:
    """``feature`` (``view:name``) of each row's ``user_id`` at its ``event_timestamp``, point in
    time (what Feast would have served then; NaN where it had nothing), indexed like
    ``users``."""
    from feast import FeatureStore

    entities = users[["user_id", "event_timestamp"]].reset_index(drop=True).copy()
    entities["_row"] = range(len(entities))
    with in_repo(path):
        store = FeatureStore(repo_path=str(path))
        try:
            joined = store.get_historical_features(
                entity_df=entities, features=[feature],
                filter_by_created_timestamp=True).to_df()
        except Exception as exc:  # noqa: BLE001 - Feast raises many kinds for a bad reference
            raise FeatureStoreError(f"cannot read {feature!r} from {path}: {exc}") from exc
    name = feature.split(":", 1)[-1]
    values = joined.sort_values("_row")[name].astype(float).to_numpy()
    return pd.Series(values, index=users.index, name=name)
