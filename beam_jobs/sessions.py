"""Sessions: a user's events cut at gaps of inactivity."""

from __future__ import annotations

from typing import NamedTuple, Sequence

from recsys.data.records import US_PER_S, Event


class SessionSlot(NamedTuple):
    """Where an event sits: its session (0-based, per user) and its position in that session."""

    session: int
    position: int
    session_start_us: int


def assign_sessions(events: Sequence[Event], gap_s: int) -> list[SessionSlot]:
    """Slots for time-ordered ``events``; a new session starts after more than ``gap_s`` of
    inactivity (a gap of exactly ``gap_s`` stays in the session)."""
    slots: list[SessionSlot] = []
    gap_us = gap_s * US_PER_S
    session, position, start, last = -1, 0, 0, None
    for event in events:
        if last is None or event.ts_us - last > gap_us:
            session, position, start = session + 1, 0, event.ts_us
        else:
            position += 1
        slots.append(SessionSlot(session, position, start))
        last = event.ts_us
    return slots


def session_id(user_id: str, slot: SessionSlot) -> str:
    return f"{user_id}/{slot.session}"
