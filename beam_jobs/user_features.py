"""User feature rows: one per snapshot midnight at which one of the user's values changes."""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from beam_jobs.sessions import SessionSlot
from beam_jobs.snapshots import day_of, snapshot_days
from beam_jobs.windows import Timeline, mean, ratio
from recsys.data.records import US_PER_DAY, Event, Item
from recsys.features.config import FeatureConfig
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, WINDOWS_DAYS


def _top(counter: Counter, n: int) -> list[str]:
    return [name for name, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def user_feature_rows(user_id: str, events: Sequence[Event], slots: Sequence[SessionSlot],
                      items: Mapping[str, Item], cfg: FeatureConfig,
                      horizon_day: int) -> list[dict]:
    """Rows for ``events`` (time-ordered, those the features may see) of one user.

    Every value in the row at midnight S is computed from events strictly before S.
    """
    engaged: Timeline[Item | None] = Timeline()
    impressions: Timeline[None] = Timeline()
    clicks: Timeline[None] = Timeline()
    watches: Timeline[float] = Timeline()
    dwells: Timeline[float] = Timeline()
    ratings: Timeline[float] = Timeline()
    activity: Timeline[None] = Timeline()
    sessions: Timeline[int] = Timeline()  # at session start: its length
    lengths: dict[int, int] = Counter(slot.session for slot in slots)
    for event, slot in zip(events, slots, strict=True):
        activity.append(event.ts_us, None)
        if slot.position == 0:
            sessions.append(event.ts_us, lengths[slot.session])
        if event.event_type in cfg.history_event_types:
            engaged.append(event.ts_us, items.get(event.item_id))
        if event.event_type == "impression":
            impressions.append(event.ts_us, None)
        elif event.event_type == "click":
            clicks.append(event.ts_us, None)
            if event.dwell_time_s is not None:
                dwells.append(event.ts_us, event.dwell_time_s)
        elif event.event_type == "watch" and event.watch_time_s is not None:
            watches.append(event.ts_us, event.watch_time_s)
        elif event.event_type == "rating" and event.rating is not None:
            ratings.append(event.ts_us, event.rating)

    rows = []
    for day in snapshot_days((day_of(e.ts_us) for e in events), horizon_day):
        end = day * US_PER_DAY
        row = {"user_id": user_id, EVENT_TIMESTAMP: end, CREATED_TIMESTAMP: end}
        for w in WINDOWS_DAYS:
            row[f"user_engagements_{w}d"] = engaged.count(end, w)
        shown, opened = impressions.count(end, 30), clicks.count(end, 30)
        recent_items = [item for item in engaged.window(end, 30) if item is not None]
        categories = Counter(i.category for i in recent_items if i.category)
        languages = Counter(i.language for i in recent_items if i.language)
        top = _top(categories, cfg.top_categories)
        recent_sessions = sessions.window(end, 7)
        last_active = activity.times[activity.before(end) - 1]
        row.update({
            "user_impressions_30d": shown,
            "user_clicks_30d": opened,
            "user_ctr_30d": ratio(opened, shown),
            "user_avg_watch_time_s_30d": mean(watches.window(end, 30)),
            "user_avg_dwell_time_s_30d": mean(dwells.window(end, 30)),
            "user_mean_rating_30d": mean(ratings.window(end, 30)),
            "user_top_categories_30d": top,
            "user_top_category_share_30d": ratio(categories[top[0]], sum(categories.values()))
            if top else None,
            "user_top_language_30d": _top(languages, 1)[0] if languages else None,
            "user_sessions_7d": len(recent_sessions),
            "user_sessions_per_day_7d": len(recent_sessions) / 7,
            "user_mean_session_length_7d": mean([float(n) for n in recent_sessions]),
            "user_days_since_last_active": (end - last_active) / US_PER_DAY,
            "user_lifetime_engagements": engaged.before(end),
        })
        rows.append(row)
    return rows
