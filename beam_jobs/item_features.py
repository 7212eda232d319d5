"""Item feature rows: popularity, click-through, watch share and age per snapshot midnight."""

from __future__ import annotations

from typing import Sequence

from beam_jobs.positives import watch_fraction
from beam_jobs.snapshots import day_of, snapshot_days
from beam_jobs.windows import Timeline, mean, ratio
from recsys.data.records import US_PER_DAY, Event, Item
from recsys.features.config import FeatureConfig
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, WINDOWS_DAYS


def item_feature_rows(item_id: str, item: Item | None, events: Sequence[Event],
                      cfg: FeatureConfig, horizon_day: int) -> list[dict]:
    """Rows for one item from its ``events`` (any order); values at S use events before S."""
    impressions: Timeline[None] = Timeline()
    clicks: Timeline[None] = Timeline()
    engaged: Timeline[None] = Timeline()
    fractions: Timeline[float] = Timeline()
    ratings: Timeline[float] = Timeline()
    for event in sorted(events, key=lambda e: e.ts_us):
        if event.event_type == "impression":
            impressions.append(event.ts_us, None)
        if event.event_type == "click":
            clicks.append(event.ts_us, None)
        if event.event_type in cfg.history_event_types:
            engaged.append(event.ts_us, None)
        if event.event_type == "watch":
            fraction = watch_fraction(event, item)
            if fraction is not None:
                fractions.append(event.ts_us, fraction)
        if event.event_type == "rating" and event.rating is not None:
            ratings.append(event.ts_us, event.rating)

    rows = []
    for day in snapshot_days((day_of(e.ts_us) for e in events), horizon_day):
        end = day * US_PER_DAY
        row = {"item_id": item_id, EVENT_TIMESTAMP: end, CREATED_TIMESTAMP: end}
        for w in WINDOWS_DAYS:
            row[f"item_impressions_{w}d"] = impressions.count(end, w)
            row[f"item_clicks_{w}d"] = clicks.count(end, w)
            row[f"item_engagements_{w}d"] = engaged.count(end, w)
        created = item.created_us if item is not None else None
        row.update({
            "item_ctr_7d": ratio(clicks.count(end, 7), impressions.count(end, 7)),
            "item_ctr_30d": ratio(clicks.count(end, 30), impressions.count(end, 30)),
            "item_avg_watch_fraction_30d": mean(fractions.window(end, 30)),
            "item_mean_rating_30d": mean(ratings.window(end, 30)),
            "item_lifetime_engagements": engaged.before(end),
            "item_age_days": None if created is None else (end - created) / US_PER_DAY,
        })
        rows.append(row)
    return rows
