"""The Feast objects of recsys, built once for any set of batch sources.

The feature repositories (``feature_repo/`` for the embedded profile, ``feature_repo/production/``
for PostgreSQL + Redis) declare only their sources and call :func:`build_definitions`, so both
profiles serve exactly the same entities, views, schemas, TTLs and services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, PushSource
from feast.data_source import DataSource
from feast.types import Array, Float32, Int64, String
from feast.value_type import ValueType

from recsys.features.tables import (ITEM_CATALOGUE, ITEM_FEATURES, ITEM_STREAM, USER_FEATURES,
                                    USER_PROFILE, USER_SESSION, FeatureTable)

OWNER = "ml-platform@recsys.dev"
_FEAST_TYPES = {"int64": Int64, "float32": Float32, "string": String,
                "string_list": Array(String), "int64_list": Array(Int64)}
TTL = {
    USER_FEATURES.name: timedelta(days=90),
    ITEM_FEATURES.name: timedelta(days=90),
    USER_SESSION.name: timedelta(days=30),
    ITEM_STREAM.name: timedelta(days=2),  # stale counters are not "fresh popularity"
    ITEM_CATALOGUE.name: timedelta(0),  # no expiry: attributes hold until changed
    USER_PROFILE.name: timedelta(0),
}
DESCRIPTIONS = {
    USER_FEATURES.name: "Daily batch user activity: engagement counts over 1/7/30 days, "
                        "click-through, watch and dwell time, preferred categories and language, "
                        "sessions per day, mean session length, days since last activity.",
    ITEM_FEATURES.name: "Daily batch item popularity over 1/7/30 days, click-through rate, "
                        "average watch fraction, mean rating and age.",
    ITEM_CATALOGUE.name: "Item attributes from the catalogue: category, language, tags, "
                         "duration and creation time (content features for cold items).",
    USER_PROFILE.name: "User profile: country, language, device, age bucket, declared "
                       "categories and signup time; every field may be missing.",
    USER_SESSION.name: "Fresh session state pushed by the stream worker: the most recent "
                       "items and categories, the current session's length and start.",
    ITEM_STREAM.name: "Fresh item popularity pushed by the stream worker: impressions, clicks "
                      "and engagements in the last hour and day before the item's newest "
                      "event (5-minute buckets); the Beam job writes the same rows in batch.",
}


def schema(table: FeatureTable) -> list[Field]:
    return [Field(name=name, dtype=_FEAST_TYPES[kind]) for name, kind in table.features]


@dataclass(frozen=True)
class Sources:
    """The batch source of each feature table, in the profile's offline store."""

    user_features: DataSource
    item_features: DataSource
    item_catalogue: DataSource
    user_profile: DataSource
    user_session: DataSource
    item_stream: DataSource


@dataclass(frozen=True)
class Definitions:
    user: Entity
    item: Entity
    user_session_push: PushSource
    item_stream_push: PushSource
    user_features: FeatureView
    item_features: FeatureView
    item_catalogue: FeatureView
    user_profile: FeatureView
    user_session: FeatureView
    item_stream: FeatureView
    retrieval: FeatureService
    ranking: FeatureService


def build_definitions(sources: Sources) -> Definitions:
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING,
                  description="A person using the platform.", owner=OWNER,
                  tags={"team": "recsys"})
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING,
                  description="A piece of content that can be recommended.", owner=OWNER,
                  tags={"team": "recsys"})
    push = PushSource(name="user_session_push", batch_source=sources.user_session,
                      description="Session updates from the stream worker.", owner=OWNER)
    item_push = PushSource(name="item_stream_push", batch_source=sources.item_stream,
                           description="Item counters from the stream worker.", owner=OWNER)

    def view(table: FeatureTable, entity: Entity, source, freshness: str) -> FeatureView:
        return FeatureView(name=table.name, entities=[entity], ttl=TTL[table.name],
                           schema=schema(table), source=source, online=True, owner=OWNER,
                           description=DESCRIPTIONS[table.name],
                           tags={"team": "recsys", "freshness": freshness})

    user_features = view(USER_FEATURES, user, sources.user_features, "daily")
    item_features = view(ITEM_FEATURES, item, sources.item_features, "daily")
    item_catalogue = view(ITEM_CATALOGUE, item, sources.item_catalogue, "on-change")
    user_profile = view(USER_PROFILE, user, sources.user_profile, "on-change")
    user_session = view(USER_SESSION, user, push, "streaming")
    item_stream = view(ITEM_STREAM, item, item_push, "streaming")
    retrieval = FeatureService(
        name="retrieval", features=[user_features, user_profile, user_session],
        description="Query-tower inputs of the two-tower retrieval model.", owner=OWNER,
        tags={"team": "recsys"})
    ranking = FeatureService(
        name="ranking",
        features=[user_features, user_profile, user_session, item_features, item_catalogue],
        description="Inputs of the transformer ranking model: user, session and candidate.",
        owner=OWNER, tags={"team": "recsys"})
    return Definitions(user, item, push, item_push, user_features, item_features,
                       item_catalogue, user_profile, user_session, item_stream, retrieval,
                       ranking)
