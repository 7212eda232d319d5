"""Everything computed from one user's time-ordered events: the temporal split, session
sequences, training examples, user feature rows and the latest session state.

Guarantees:
* Histories hold only items engaged with strictly before the event's timestamp (events at the
  same microsecond do not see each other).
* With ``split="temporal"`` (the protocol of EVALUATION.md): the user's positives are ordered by
  time (ties in natural event-id order), the last ``max(1, floor(test_fraction * n))`` are test
  examples, and sequences, user features, the session state and the events handed on to item
  features come only from the events before the first test positive. Test examples carry the
  history as of the end of the user's training events. ``split="last_one"`` is the same with
  only the last positive as test (leave-last-one-out).
* A positive that repeats the previous positive's item in the same session (click, then watch,
  then like) yields one example, the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Iterable, Mapping

from beam_jobs.history import History
from beam_jobs.positives import is_positive, label_weight
from beam_jobs.sessions import SessionSlot, assign_sessions, session_id
from beam_jobs.user_features import user_feature_rows
from recsys.data.records import US_PER_S, Event, Item, micros_to_datetime, order_key
from recsys.features.config import FeatureConfig
from recsys.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP


@dataclass
class UserOutputs:
    sequences: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    user_features: list[dict] = field(default_factory=list)
    session_state: dict | None = None
    feature_events: list[Event] = field(default_factory=list)


def _positive_indices(events: list[Event], slots: list[SessionSlot],
                      items: Mapping[str, Item], cfg: FeatureConfig) -> list[int]:
    chosen: list[int] = []
    for i, event in enumerate(events):
        if not is_positive(event, items.get(event.item_id), cfg.positive):
            continue
        if chosen:
            last = chosen[-1]
            if events[last].item_id == event.item_id and slots[last].session == slots[i].session:
                continue
        chosen.append(i)
    return chosen


def _context(event: Event) -> dict:
    when = micros_to_datetime(event.ts_us)
    return {"device": event.device, "country": event.country, "language": event.language,
            "hour_of_day": when.hour, "day_of_week": when.weekday()}


def _example(user_id: str, event: Event, slot: SessionSlot, item: Item | None, split: str,
             history: dict) -> dict:
    return {
        "example_id": event.event_id, "user_id": user_id, "item_id": event.item_id,
        "event_type": event.event_type, EVENT_TIMESTAMP: event.ts_us, "split": split,
        "label_weight": label_weight(event, item),
        "item_category": item.category if item else None,
        "session_position": slot.position, **_context(event), **history,
    }


def process_user(user_id: str, events: Iterable[Event], items: Mapping[str, Item],
                 cfg: FeatureConfig, horizon_day: int) -> UserOutputs:
    ordered = sorted(events, key=order_key)
    all_slots = assign_sessions(ordered, cfg.session_gap_s)
    positives = _positive_indices(ordered, all_slots, items, cfg)
    cutoff = len(ordered)
    if cfg.split != "none" and positives:
        n_test = (1 if cfg.split == "last_one"
                  else max(1, int(cfg.test_fraction * len(positives))))
        cutoff = positives[-n_test]
    split_name = "train"
    train = ordered[:cutoff]
    slots = assign_sessions(train, cfg.session_gap_s)
    positive_set = set(positives)

    out = UserOutputs(feature_events=train)
    history = History(cfg.history_length)
    index = 0
    for ts_us, group in groupby(train, key=lambda e: e.ts_us):
        group = list(group)
        before = history.columns(ts_us)
        for event in group:
            slot = slots[index]
            out.sequences.append({
                "event_id": event.event_id, "user_id": user_id, "item_id": event.item_id,
                "event_type": event.event_type, EVENT_TIMESTAMP: ts_us,
                "session_id": session_id(user_id, slot), "session_position": slot.position,
                "history_length": len(before["history_item_ids"]), **before,
            })
            if index in positive_set:
                out.examples.append(_example(user_id, event, all_slots[index],
                                             items.get(event.item_id), split_name, before))
            index += 1
        for event in group:
            if event.event_type in cfg.history_event_types:
                item = items.get(event.item_id)
                history.add(event.item_id, item.category if item else None, ts_us)

    for i in positives:
        if i >= cutoff:
            event = ordered[i]
            out.examples.append(_example(user_id, event, all_slots[i], items.get(event.item_id),
                                         "test", history.columns(event.ts_us)))
    out.user_features = user_feature_rows(user_id, train, slots, items, cfg, horizon_day)
    if train:
        last, last_slot = train[-1], slots[-1]
        state = history.columns(last.ts_us)
        out.session_state = {
            "user_id": user_id, EVENT_TIMESTAMP: last.ts_us, CREATED_TIMESTAMP: last.ts_us,
            "session_recent_item_ids": state["history_item_ids"],
            "session_recent_categories": state["history_categories"],
            "session_recent_event_at_s": [last.ts_us // US_PER_S - round(gap)
                                          for gap in state["history_gaps_s"]],
            "session_length": last_slot.position + 1,
            "session_started_at_s": last_slot.session_start_us // US_PER_S,
            "session_last_event_at_s": last.ts_us // US_PER_S,
        }
    return out


__all__ = ["UserOutputs", "process_user"]
