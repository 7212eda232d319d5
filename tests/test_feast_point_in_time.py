"""Point-in-time joins through Feast equal a brute-force oracle, on both profiles.

The feature rows and entity rows are built to hit the edges: entity rows exactly at a feature
row's timestamp, exactly at the TTL edge and one microsecond past it, one microsecond before a
row, duplicate entity rows, rows that share a timestamp and differ in created_timestamp, rows
created after their event time (backfills), and users without any row.
"""

from __future__ import annotations

import datetime as dt
import random

import pandas as pd
import pyarrow as pa
import pytest

from feast_support import drop_schema, embedded_repo, production_repo
from recsys.features.definitions import TTL
from recsys.features.store import apply, in_repo
from recsys.features.tables import USER_FEATURES

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
TTL_USER = TTL["user_features"]
US = dt.timedelta(microseconds=1)


def feature_rows(seed: int = 11) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for u in range(300):
        times = [T0 + dt.timedelta(seconds=rng.randrange(0, 200 * 86400)) for _ in range(6)]
        for t in times:
            rows.append((f"u{u}", t, t))
        # a second version at the same event time, created later: it must win
        rows.append((f"u{u}", times[0], times[0] + dt.timedelta(hours=1)))
        # a backfill: known only 10 days after its event time
        late = T0 + dt.timedelta(seconds=rng.randrange(0, 200 * 86400))
        rows.append((f"u{u}", late, late + dt.timedelta(days=10)))
    frame = pd.DataFrame(rows, columns=["user_id", "event_timestamp", "created_timestamp"])
    frame["user_engagements_1d"] = range(len(frame))  # identifies the row that was joined
    return frame


def entity_rows(features: pd.DataFrame, seed: int = 12) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for user, group in features.groupby("user_id"):
        for t in group["event_timestamp"].tolist()[:3]:
            rows += [(user, t), (user, t - US), (user, t + TTL_USER), (user, t + TTL_USER + US)]
        rows += [(user, T0 + dt.timedelta(seconds=rng.randrange(-86400, 300 * 86400)))
                 for _ in range(3)]
        rows.append(rows[-1])  # a duplicate entity row
    rows += [(f"nobody{i}", T0 + dt.timedelta(days=i)) for i in range(20)]
    return pd.DataFrame(rows, columns=["user_id", "event_timestamp"])


def oracle(features: pd.DataFrame, entities: pd.DataFrame, by_created: bool) -> list:
    """Brute force: for each entity row, the newest feature row with event_ts <= t, within
    the TTL (event_ts >= t - ttl), and, when asked, created_ts <= t; ties -> newest created."""
    by_user = {u: g.to_dict("records") for u, g in features.groupby("user_id")}
    out = []
    for user, t in entities.itertuples(index=False):
        best = None
        for row in by_user.get(user, []):
            ts = row["event_timestamp"]
            if ts > t or ts < t - TTL_USER:
                continue
            if by_created and row["created_timestamp"] > t:
                continue
            key = (ts, row["created_timestamp"])
            if best is None or key > best[0]:
                best = (key, row["user_engagements_1d"])
        out.append((user, pd.Timestamp(t).to_pydatetime(), None if best is None else best[1]))
    return sorted(out, key=lambda r: r[:2])


def feast_join(repo, entities: pd.DataFrame, by_created: bool) -> list:
    from feast import FeatureStore

    with in_repo(repo):
        store = FeatureStore(repo_path=str(repo))
        job = store.get_historical_features(entity_df=entities,
                                            features=["user_features:user_engagements_1d"],
                                            filter_by_created_timestamp=by_created)
        frame = job.to_df()
    assert len(frame) == len(entities)  # never more rows out than in (the multi-key bug)
    values = frame["user_engagements_1d"].astype("Int64")
    stamps = pd.to_datetime(frame["event_timestamp"])
    if stamps.dt.tz is None:  # the PostgreSQL store hands back naive UTC
        stamps = stamps.dt.tz_localize("UTC")
    return sorted(((u, pd.Timestamp(t).to_pydatetime(), None if pd.isna(v) else int(v))
                   for u, t, v in zip(frame["user_id"], stamps, values,
                                      strict=True)), key=lambda r: r[:2])


def _tables(features: pd.DataFrame) -> dict[str, pa.Table]:
    records = features.to_dict("records")  # absent columns become nulls
    return {"user_features": pa.Table.from_pylist(records, schema=USER_FEATURES.arrow_schema())}


@pytest.fixture(scope="module")
def data():
    features = feature_rows()
    entities = entity_rows(features)
    assert len(entities) >= 2000
    return features, entities


@pytest.mark.slow
@pytest.mark.parametrize("by_created", [False, True], ids=["event-time", "created-time"])
def test_embedded_profile_matches_the_oracle(tmp_path, data, by_created):
    features, entities = data
    repo = embedded_repo(tmp_path, _tables(features))
    apply(repo)
    expected = oracle(features, entities, by_created)
    assert feast_join(repo, entities, by_created) == expected
    assert sum(v is None for *_, v in expected) > 100  # the edges really were exercised


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.parametrize("by_created", [False, True], ids=["event-time", "created-time"])
def test_production_profile_matches_the_oracle(tmp_path, data, by_created):
    features, entities = data
    repo, schema = production_repo(tmp_path, _tables(features))
    try:
        apply(repo)
        assert feast_join(repo, entities, by_created) == oracle(features, entities, by_created)
    finally:
        drop_schema(schema)
