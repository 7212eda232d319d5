"""The feature tables: their names, columns and types, declared once.

The Beam jobs write these columns (plus ``event_timestamp`` and ``created_timestamp``), the
PostgreSQL loader creates tables from them and the Feast feature views declare the same schema,
so a column can never exist on one side only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

WINDOWS_DAYS = (1, 7, 30)
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
_TS = pa.timestamp("us", tz="UTC")

KINDS: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float32": pa.float32(),
    "string": pa.string(),
    "string_list": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class FeatureTable:
    """A feature table keyed by one entity column."""

    name: str
    key: str
    features: tuple[tuple[str, str], ...]  # (column, kind)

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(self.key, pa.string(), nullable=False),
             pa.field(EVENT_TIMESTAMP, _TS, nullable=False),
             pa.field(CREATED_TIMESTAMP, _TS, nullable=False)]
            + [pa.field(name, KINDS[kind]) for name, kind in self.features])


def _windowed(prefix: str, kind: str = "int64", windows=WINDOWS_DAYS) -> tuple:
    return tuple((f"{prefix}_{w}d", kind) for w in windows)


USER_FEATURES = FeatureTable("user_features", "user_id", (
    *_windowed("engagements"),
    ("impressions_30d", "int64"),
    ("clicks_30d", "int64"),
    ("ctr_30d", "float32"),
    ("avg_watch_time_s_30d", "float32"),
    ("avg_dwell_time_s_30d", "float32"),
    ("mean_rating_30d", "float32"),
    ("top_categories_30d", "string_list"),
    ("top_category_share_30d", "float32"),
    ("top_language_30d", "string"),
    ("sessions_7d", "int64"),
    ("sessions_per_day_7d", "float32"),
    ("mean_session_length_7d", "float32"),
    ("days_since_last_active", "float32"),
    ("lifetime_engagements", "int64"),
))

ITEM_FEATURES = FeatureTable("item_features", "item_id", (
    *_windowed("impressions"),
    *_windowed("clicks"),
    *_windowed("engagements"),
    ("ctr_7d", "float32"),
    ("ctr_30d", "float32"),
    ("avg_watch_fraction_30d", "float32"),
    ("mean_rating_30d", "float32"),
    ("lifetime_engagements", "int64"),
    ("age_days", "float32"),
))

ITEM_CATALOGUE = FeatureTable("item_catalogue", "item_id", (
    ("category", "string"),
    ("language", "string"),
    ("tags", "string_list"),
    ("duration_s", "float32"),
    ("created_at_s", "int64"),
))

USER_PROFILE = FeatureTable("user_profile", "user_id", (
    ("country", "string"),
    ("language", "string"),
    ("device", "string"),
    ("age_bucket", "string"),
    ("declared_categories", "string_list"),
    ("signup_at_s", "int64"),
))

USER_SESSION = FeatureTable("user_session", "user_id", (
    ("recent_item_ids", "string_list"),
    ("recent_categories", "string_list"),
    ("session_length", "int64"),
    ("session_started_at_s", "int64"),
    ("last_event_at_s", "int64"),
))

FEATURE_TABLES: dict[str, FeatureTable] = {
    t.name: t for t in (USER_FEATURES, ITEM_FEATURES, ITEM_CATALOGUE, USER_PROFILE, USER_SESSION)
}
