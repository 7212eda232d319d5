"""Catalogue and profile feature rows: static attributes, valid from when they were known."""

from __future__ import annotations

from recsys.data.records import US_PER_S, Item, to_micros
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP


def catalogue_row(item: Item) -> dict:
    """An item's attributes, valid from its creation (the epoch when unknown)."""
    since = item.created_us if item.created_us is not None else 0
    return {
        "item_id": item.item_id, EVENT_TIMESTAMP: since, CREATED_TIMESTAMP: since,
        "item_category": item.category, "item_language": item.language,
        "item_tags": list(item.tags),
        "item_duration_s": item.duration_s,
        "item_created_at_s": None if item.created_us is None else item.created_us // US_PER_S,
    }


def profile_row(row: dict) -> dict:
    """A user's profile, valid from signup (the epoch when unknown); gaps stay null."""
    signup = row.get("signup_at")
    since = to_micros(signup, "signup_at") if signup is not None else 0
    return {
        "user_id": row["user_id"], EVENT_TIMESTAMP: since, CREATED_TIMESTAMP: since,
        "user_country": row.get("country"), "user_language": row.get("language"),
        "user_device": row.get("device"), "user_age_bucket": row.get("age_bucket"),
        "user_declared_categories": list(row.get("declared_categories") or []),
        "user_signup_at_s": None if signup is None else since // US_PER_S,
    }
