"""The feature tables: their names, columns and types, declared once.

Every feature name carries its entity (``user_``, ``item_``, ``session_``...), so that a feature
service can join several views without full feature names.

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
    "int64_list": pa.list_(pa.int64()),
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
    *_windowed("user_engagements"),
    ("user_impressions_30d", "int64"),
    ("user_clicks_30d", "int64"),
    ("user_ctr_30d", "float32"),
    ("user_avg_watch_time_s_30d", "float32"),
    ("user_avg_dwell_time_s_30d", "float32"),
    ("user_mean_rating_30d", "float32"),
    ("user_top_categories_30d", "string_list"),
    ("user_top_category_share_30d", "float32"),
    ("user_top_language_30d", "string"),
    ("user_sessions_7d", "int64"),
    ("user_sessions_per_day_7d", "float32"),
    ("user_mean_session_length_7d", "float32"),
    ("user_days_since_last_active", "float32"),
    ("user_lifetime_engagements", "int64"),
))

ITEM_FEATURES = FeatureTable("item_features", "item_id", (
    *_windowed("item_impressions"),
    *_windowed("item_clicks"),
    *_windowed("item_engagements"),
    ("item_ctr_7d", "float32"),
    ("item_ctr_30d", "float32"),
    ("item_avg_watch_fraction_30d", "float32"),
    ("item_mean_rating_30d", "float32"),
    ("item_lifetime_engagements", "int64"),
    ("item_age_days", "float32"),
))

ITEM_CATALOGUE = FeatureTable("item_catalogue", "item_id", (
    ("item_category", "string"),
    ("item_language", "string"),
    ("item_tags", "string_list"),
    ("item_duration_s", "float32"),
    ("item_created_at_s", "int64"),
))

USER_PROFILE = FeatureTable("user_profile", "user_id", (
    ("user_country", "string"),
    ("user_language", "string"),
    ("user_device", "string"),
    ("user_age_bucket", "string"),
    ("user_declared_categories", "string_list"),
    ("user_signup_at_s", "int64"),
))

USER_SESSION = FeatureTable("user_session", "user_id", (
    ("session_recent_item_ids", "string_list"),
    ("session_recent_categories", "string_list"),
    ("session_recent_event_at_s", "int64_list"),  # when each recent item was engaged with
    ("session_length", "int64"),
    ("session_started_at_s", "int64"),
    ("session_last_event_at_s", "int64"),
))

ITEM_STREAM = FeatureTable("item_stream", "item_id", (
    ("item_stream_impressions_1h", "int64"),
    ("item_stream_clicks_1h", "int64"),
    ("item_stream_engagements_1h", "int64"),
    ("item_stream_impressions_24h", "int64"),
    ("item_stream_clicks_24h", "int64"),
    ("item_stream_engagements_24h", "int64"),
    ("item_stream_last_event_at_s", "int64"),
))

FEATURE_TABLES: dict[str, FeatureTable] = {
    t.name: t for t in (USER_FEATURES, ITEM_FEATURES, ITEM_CATALOGUE, USER_PROFILE, USER_SESSION,
                        ITEM_STREAM)
}
