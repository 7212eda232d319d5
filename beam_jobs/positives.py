"""Which events are positive training examples, and with what weight."""

from __future__ import annotations

from recsys.data.records import Event, Item
from recsys.features.config import PositiveRule


def watch_fraction(event: Event, item: Item | None) -> float | None:
    """Share of the item watched, capped at 1; None when either duration is unknown."""
    if event.watch_time_s is None or item is None or not item.duration_s:
        return None
    return min(1.0, event.watch_time_s / item.duration_s)


def is_positive(event: Event, item: Item | None, rule: PositiveRule) -> bool:
    if event.event_type not in rule.event_types:
        return False
    if event.event_type == "click":
        if event.dwell_time_s is None:  # a log without dwell times: every click, at 0
            return rule.min_dwell_s == 0
        return event.dwell_time_s >= rule.min_dwell_s
    if event.event_type == "watch":
        fraction = watch_fraction(event, item)
        if fraction is None:
            return rule.min_watch_fraction == 0 and event.watch_time_s is not None
        return fraction >= rule.min_watch_fraction
    if event.event_type == "rating":
        return event.rating is not None and event.rating >= rule.min_rating
    return True  # like, share


def label_weight(event: Event, item: Item | None) -> float:
    """How strong the positive is: the rating, the watched share, or 1."""
    if event.event_type == "rating" and event.rating is not None:
        return float(event.rating)
    if event.event_type == "watch":
        fraction = watch_fraction(event, item)
        return 1.0 if fraction is None else fraction
    return 1.0
