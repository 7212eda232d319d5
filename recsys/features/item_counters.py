"""Fresh item popularity: counts of impressions, clicks and engagements in the last hour and
day before an item's newest event, in 5-minute buckets.

One definition for both writers of the ``item_stream`` feature table: the stream worker keeps
per-bucket counters in Redis and the Beam job counts the lake's events, and both turn them
into a row with :func:`item_stream_row`, so training data and the online store agree.

Guarantees: a window of W minutes covers the ``W / 5`` buckets ending with the newest event's
bucket (so "the last hour" is 55 to 60 minutes long); counts never include events after the
newest one; the row's event time is the newest event's time.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP

BUCKET_US = 300 * 1_000_000
WINDOWS = {"1h": 12, "24h": 288}  # name -> buckets
KINDS = ("impressions", "clicks", "engagements")


def bucket_of(ts_us: int) -> int:
    return ts_us // BUCKET_US


def kinds_of(event_type: str, engagement_types: Iterable[str]) -> list[str]:
    """Which counters an event of ``event_type`` increments."""
    kinds = []
    if event_type == "impression":
        kinds.append("impressions")
    if event_type == "click":
        kinds.append("clicks")
    if event_type in engagement_types:
        kinds.append("engagements")
    return kinds


def oldest_kept_bucket(last_us: int) -> int:
    """Buckets before this one no longer count in any window."""
    return bucket_of(last_us) - max(WINDOWS.values()) + 1


def item_stream_row(item_id: str, counts: Mapping[tuple[str, int], int],
                    last_us: int) -> dict:
    """The ``item_stream`` row from per-(kind, bucket) counts and the newest event's time."""
    newest = bucket_of(last_us)
    row = {"item_id": item_id, EVENT_TIMESTAMP: last_us, CREATED_TIMESTAMP: last_us}
    totals = {(kind, window): 0 for window in WINDOWS for kind in KINDS}
    for (kind, bucket), n in counts.items():  # one pass over the buckets
        age = newest - bucket
        for window, buckets in WINDOWS.items():
            if 0 <= age < buckets and (kind, window) in totals:
                totals[(kind, window)] += n
    for (kind, window), n in totals.items():
        row[f"item_stream_{kind}_{window}"] = n
    row["item_stream_last_event_at_s"] = last_us // 1_000_000
    return row


def count_events(events: Iterable[tuple[str, int]], engagement_types: Iterable[str]) -> (
        tuple[Counter, int]):
    """(event_type, ts_us) pairs -> per-(kind, bucket) counts and the newest time."""
    engagement_types = tuple(engagement_types)
    counts: Counter = Counter()
    last = 0
    for event_type, ts_us in events:
        last = max(last, ts_us)
        for kind in kinds_of(event_type, engagement_types):
            counts[(kind, bucket_of(ts_us))] += 1
    return counts, last


__all__ = ["item_stream_row", "count_events", "kinds_of", "bucket_of", "oldest_kept_bucket",
           "BUCKET_US", "WINDOWS", "KINDS"]
