"""Output tables of the feature build that are not Feast feature tables, with their schemas."""

from __future__ import annotations

import pyarrow as pa

from recsys.features.tables import EVENT_TIMESTAMP

_TS = pa.timestamp("us", tz="UTC")
_HISTORY = [
    pa.field("history_item_ids", pa.list_(pa.string())),
    pa.field("history_categories", pa.list_(pa.string())),
    pa.field("history_gaps_s", pa.list_(pa.float64())),
]

SESSION_SEQUENCES = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field(EVENT_TIMESTAMP, _TS, nullable=False),
    pa.field("session_id", pa.string(), nullable=False),
    pa.field("session_position", pa.int64(), nullable=False),
    pa.field("history_length", pa.int64(), nullable=False),
    *_HISTORY,
])

TRAINING_EXAMPLES = pa.schema([
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field(EVENT_TIMESTAMP, _TS, nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("label_weight", pa.float64(), nullable=False),
    pa.field("item_category", pa.string()),
    pa.field("session_position", pa.int64(), nullable=False),
    pa.field("device", pa.string()),
    pa.field("country", pa.string()),
    pa.field("language", pa.string()),
    pa.field("hour_of_day", pa.int64(), nullable=False),
    pa.field("day_of_week", pa.int64(), nullable=False),
    *_HISTORY,
])
