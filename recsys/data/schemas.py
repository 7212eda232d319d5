"""The versioned data model shared by every part of recsys: Arrow schemas for events, items and
users, and the vocabularies their fields draw from.

Guarantees:
* Each schema carries its table name and version in its metadata
  (``recsys.table``, ``recsys.schema_version``); the lake records the versions it holds.
* Timestamps are ``timestamp[us, tz=UTC]``; ids are non-empty strings.
* Columns marked ``nullable=False`` are required; every other field is optional, because real
  logs and profiles have gaps.
* ``ingested_at`` is written by the lake, never taken from the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

SCHEMA_VERSION = 1
TIMESTAMP = pa.timestamp("us", tz="UTC")
INGESTED_AT = "ingested_at"

EVENT_TYPES: tuple[str, ...] = (
    "impression",  # the item was shown
    "click",  # the user opened it; dwell_time_s is the time spent on it
    "watch",  # the user consumed it; watch_time_s is how long
    "like",
    "dislike",
    "skip",  # the user abandoned it early or swiped past it
    "share",
    "rating",  # explicit rating; the value is in `rating` (MovieLens)
)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet", "tv", "other")
AGE_BUCKETS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
COUNTRY_PATTERN = r"^[A-Z]{2}$"  # ISO 3166-1 alpha-2
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"  # ISO 639 code, optional region: en, pt-BR
MAX_RATING = 10.0


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its name, Arrow schema and the column that identifies a record."""

    name: str
    schema: pa.Schema
    key: str

    @cached_property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.schema if not f.nullable and f.name != INGESTED_AT)

    @cached_property
    def input_columns(self) -> tuple[str, ...]:
        """Columns an input may carry (everything but the lake-owned ``ingested_at``)."""
        return tuple(f.name for f in self.schema if f.name != INGESTED_AT)

    @cached_property
    def input_column_set(self) -> frozenset[str]:
        """:attr:`input_columns` as a set, for checking every field of every record."""
        return frozenset(self.input_columns)


def _schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    fields = [*fields, pa.field(INGESTED_AT, TIMESTAMP, nullable=False)]
    return pa.schema(
        fields,
        metadata={"recsys.table": name, "recsys.schema_version": str(SCHEMA_VERSION)},
    )


EVENTS = TableSpec(
    "events",
    _schema(
        "events",
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("timestamp", TIMESTAMP, nullable=False),
            pa.field("session_id", pa.string()),
            pa.field("watch_time_s", pa.float32()),
            pa.field("dwell_time_s", pa.float32()),
            pa.field("rating", pa.float32()),
            # context of the request that produced the event
            pa.field("position", pa.int32()),  # 0-based slot in the list the item was shown in
            # the answer of /v1/recommendations it was shown in (its exposures' request_id)
            pa.field("request_id", pa.string()),
            pa.field("device", pa.string()),
            pa.field("country", pa.string()),
            pa.field("language", pa.string()),
        ],
    ),
    key="event_id",
)

ITEMS = TableSpec(
    "items",
    _schema(
        "items",
        [
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("category", pa.string()),
            pa.field("language", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("created_at", TIMESTAMP),
            pa.field("duration_s", pa.float32()),
        ],
    ),
    key="item_id",
)

USERS = TableSpec(
    "users",
    _schema(
        "users",
        [
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("signup_at", TIMESTAMP),
            pa.field("country", pa.string()),
            pa.field("language", pa.string()),
            pa.field("device", pa.string()),  # primary device
            pa.field("age_bucket", pa.string()),
            pa.field("declared_categories", pa.list_(pa.string())),  # onboarding choices
        ],
    ),
    key="user_id",
)

TIERS: tuple[str, ...] = ("full", "retrieval", "segment-popular", "global-popular")

# What the recommendation service showed: one row per item of an answer (its position, score,
# source and the propensity of showing it there), with the answer's request, user, context,
# experiment arms ("experiment=arm"), model versions and tier. Written through the stream.
EXPOSURES = TableSpec(
    "exposures",
    _schema(
        "exposures",
        [
            pa.field("exposure_id", pa.string(), nullable=False),  # request_id/position
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("timestamp", TIMESTAMP, nullable=False),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("item_id", pa.string(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),  # 0-based slot in the answer
            pa.field("score", pa.float32()),
            pa.field("source", pa.string()),  # two-tower, trending, fresh, segment-popular ...
            pa.field("propensity", pa.float32()),  # P(shown here | the serving policy)
            # P(the answer's slots 0..position as shown | the serving policy)
            pa.field("cascade_propensity", pa.float32()),
            pa.field("rank", pa.int32()),  # its place in the ranked list before exploration
            pa.field("policy", pa.string()),  # the exploration policy's spec (canonical JSON)
            pa.field("team", pa.string()),  # interleaving: the arm whose list placed it
            pa.field("tier", pa.string()),
            pa.field("experiments", pa.list_(pa.string())),  # "experiment=arm"
            pa.field("holdout", pa.int32()),  # 1: the user is in the global holdout
            pa.field("retrieval_version", pa.int32()),
            pa.field("ranker_version", pa.int32()),
            pa.field("device", pa.string()),
            pa.field("country", pa.string()),
            pa.field("language", pa.string()),
        ],
    ),
    key="exposure_id",
)

# What an exploring policy drew from and drew, one row per answer: the ranked list (its
# items' ids, scores, categories, ages and sources; the user's recent categories), the seed
# and the slots' ranks and exact propensities. Off-policy evaluation reads it to compute
# other policies' probabilities on the same lists; the stream worker to update the bandit.
DECISIONS = TableSpec(
    "decisions",
    _schema(
        "decisions",
        [
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("timestamp", TIMESTAMP, nullable=False),
            pa.field("user_id", pa.string(), nullable=False),
            pa.field("policy", pa.string(), nullable=False),  # canonical JSON spec
            pa.field("seed", pa.int64()),
            pa.field("k", pa.int32(), nullable=False),
            pa.field("experiments", pa.list_(pa.string())),  # "experiment=arm"
            pa.field("list_item_ids", pa.list_(pa.string()), nullable=False),
            pa.field("list_scores", pa.list_(pa.float64()), nullable=False),
            pa.field("list_categories", pa.list_(pa.string())),
            pa.field("list_ages_s", pa.list_(pa.float64())),  # null: unknown creation time
            pa.field("list_sources", pa.list_(pa.string())),
            pa.field("recent_categories", pa.list_(pa.string())),
            pa.field("ranks", pa.list_(pa.int32()), nullable=False),  # per slot
            pa.field("propensities", pa.list_(pa.float64()), nullable=False),  # per slot
            pa.field("cascade_propensities", pa.list_(pa.float64()), nullable=False),
            pa.field("bandit_updates", pa.int64()),  # the bandit snapshot's shown slots
        ],
    ),
    key="request_id",
)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (EVENTS, ITEMS, USERS, EXPOSURES,
                                                             DECISIONS)}
# tables partitioned by the day of their ``timestamp``, deduplicated by key on write
PARTITIONED: tuple[TableSpec, ...] = (EVENTS, EXPOSURES, DECISIONS)
