"""One user's exposures and events -> per-request and per-(experiment, arm) outcomes.

Attribution, point-in-time correct (an outcome never counts for an answer shown after it):
* an outcome event (click, watch, like, skip, share) that names the answer it was shown in
  (``request_id`` of one of the user's answers) counts for that answer when it happened at or
  after the answer and within ``window_s`` of it;
* otherwise it counts for the user's latest answer that showed the same item at or before
  the event, within ``window_s`` (last touch);
* otherwise it is not attributed (organic: found by search, another surface, ...).
Impressions are not outcomes (the exposure log is what was shown). A click on an item of an
interleaved answer is also credited to the item's team (``team_clicks``).

A user's row for an experiment starts at their first answer in it and takes the arm of that
answer. ``returned_dN`` is 1 when the user did anything (an event or a request) between N and
N + 1 days after that first answer, 0 when not, null when ``horizon_us`` (the end of the data)
comes before the end of that day.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from recsys.data.records import Event
from recsys.experiments.outcome_tables import (
    HOLDOUT_ARMS,
    HOLDOUT_EXPERIMENT,
    OUTCOME_COUNTS,
    RETURN_DAYS,
)

US_PER_DAY = 86_400 * 1_000_000
OUTCOME_OF = {"click": "clicks", "like": "likes", "skip": "skips", "share": "shares"}
OUTCOME_TYPES = (*OUTCOME_OF, "watch")


@dataclass
class Answer:
    """One answer of the service to this user, built from its exposure rows."""

    request_id: str
    ts_us: int
    arms: dict[str, str]
    holdout: int
    tier: str | None
    context: dict[str, str | None]
    version: int | None = None  # the retrieval version that served it
    items: dict[str, int] = field(default_factory=dict)  # item -> position
    teams: dict[str, str] = field(default_factory=dict)  # item -> interleaving team
    team_clicks: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COUNTS, 0))
    watch_time_s: float = 0.0


def answers_of(exposures: Iterable[Mapping]) -> list[Answer]:
    """Exposure rows (``timestamp`` in integer microseconds) -> answers, oldest first."""
    answers: dict[str, Answer] = {}
    for row in exposures:
        answer = answers.get(row["request_id"])
        if answer is None:
            arms = dict(entry.split("=", 1) for entry in row.get("experiments") or ()
                        if "=" in entry)
            answer = answers[row["request_id"]] = Answer(
                row["request_id"], row["timestamp"], arms, int(row.get("holdout") or 0),
                row.get("tier"), {k: row.get(k) for k in ("device", "country", "language")},
                row.get("retrieval_version"))
        answer.ts_us = min(answer.ts_us, row["timestamp"])
        answer.items.setdefault(row["item_id"], row["position"])
        if row.get("team"):
            answer.teams.setdefault(row["item_id"], row["team"])
    return sorted(answers.values(), key=lambda a: (a.ts_us, a.request_id))


def attribute(answers: list[Answer], events: Iterable[Event], window_s: float) -> int:
    """Add each outcome event to the answer it is attributed to; returns how many were."""
    window_us = int(window_s * 1_000_000)
    by_id = {a.request_id: a for a in answers}
    times = [a.ts_us for a in answers]
    attributed = 0
    for event in events:
        if event.event_type not in OUTCOME_TYPES:
            continue
        answer = by_id.get(event.request_id) if event.request_id else None
        if answer is None or not answer.ts_us <= event.ts_us < answer.ts_us + window_us:
            answer = _last_touch(answers, times, event, window_us)
        if answer is None:
            continue
        attributed += 1
        if event.event_type == "watch":
            answer.watch_time_s += event.watch_time_s or 0.0
        else:
            answer.counts[OUTCOME_OF[event.event_type]] += 1
            if event.event_type == "click" and event.item_id in answer.teams:
                answer.team_clicks.append(answer.teams[event.item_id])
    return attributed


def _last_touch(answers: list[Answer], times: list[int], event: Event,
                window_us: int) -> Answer | None:
    at = bisect.bisect_right(times, event.ts_us) - 1
    while at >= 0 and event.ts_us - answers[at].ts_us < window_us:
        if event.item_id in answers[at].items:
            return answers[at]
        at -= 1
    return None


def request_rows(user_id: str, answers: list[Answer]) -> list[dict]:
    return [{"request_id": a.request_id, "user_id": user_id, "timestamp": a.ts_us,
             "experiments": [f"{k}={v}" for k, v in sorted(a.arms.items())],
             "holdout": a.holdout, "tier": a.tier, "exposures": len(a.items), **a.counts,
             "watch_time_s": a.watch_time_s, "team_clicks": a.team_clicks,
             "retrieval_version": a.version, "device": a.context.get("device"),
             "country": a.context.get("country")} for a in answers]


def _arms_of(answer: Answer) -> dict[str, str]:
    return {**answer.arms, HOLDOUT_EXPERIMENT: HOLDOUT_ARMS[answer.holdout]}


def user_rows(user_id: str, answers: list[Answer], activity_us: list[int],
              horizon_us: int) -> list[dict]:
    """One row per experiment the user was exposed in; ``activity_us`` are the times of all
    the user's events (sorted), ``horizon_us`` the end of the data."""
    rows: dict[str, dict] = {}
    for answer in answers:
        for experiment, arm in _arms_of(answer).items():
            row = rows.get(experiment)
            if row is None:
                row = rows[experiment] = _first_row(experiment, arm, user_id, answer,
                                                    activity_us)
            if row["arm"] != arm:
                row["other_arm_requests"] += 1
                continue
            row["requests"] += 1
            row["exposures"] += len(answer.items)
            for name in OUTCOME_COUNTS:
                row[name] += answer.counts[name]
            row["watch_time_s"] += answer.watch_time_s
            row["engaged_requests"] += int(answer.counts["clicks"] > 0)
            row["team_clicks"].extend(answer.team_clicks)
    request_times = [a.ts_us for a in answers]
    active = sorted([*activity_us, *request_times])
    for row in rows.values():
        first = row["first_exposure"]
        for n in RETURN_DAYS:
            start, end = first + n * US_PER_DAY, first + (n + 1) * US_PER_DAY
            if end > horizon_us:
                row[f"returned_d{n}"] = None
            else:
                at = bisect.bisect_left(active, start)
                row[f"returned_d{n}"] = int(at < len(active) and active[at] < end)
    return list(rows.values())


def _first_row(experiment: str, arm: str, user_id: str, answer: Answer,
               activity_us: list[int]) -> dict:
    returning = bool(activity_us) and activity_us[0] < answer.ts_us
    return {"experiment": experiment, "arm": arm, "user_id": user_id,
            "first_exposure": answer.ts_us, "requests": 0, "exposures": 0,
            **dict.fromkeys(OUTCOME_COUNTS, 0), "watch_time_s": 0.0, "engaged_requests": 0,
            "team_clicks": [],
            "returning": int(returning), **answer.context, "other_arm_requests": 0}


def user_outcomes(user_id: str, exposures: Iterable[Mapping], events: Iterable[Event],
                  window_s: float, horizon_us: int) -> tuple[list[dict], list[dict], int]:
    """(request rows, user rows, events attributed) of one user."""
    answers = answers_of(exposures)
    events = sorted(events, key=lambda e: (e.ts_us, e.event_id))
    attributed = attribute(answers, events, window_s)
    activity = [e.ts_us for e in events]
    return (request_rows(user_id, answers), user_rows(user_id, answers, activity, horizon_us),
            attributed)


__all__ = ["Answer", "answers_of", "attribute", "request_rows", "user_rows", "user_outcomes",
           "OUTCOME_TYPES"]
