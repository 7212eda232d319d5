"""The stream's session state equals the Beam job's latest session state for the same events
(the batch oracle), and handles repeats and late events as documented."""

from __future__ import annotations

import random

from beam_jobs.timeline import process_user
from recsys.data.records import US_PER_S, Event, Item
from recsys.features.config import FeatureConfig
from stream_worker.session_state import SessionState

T0 = 1_790_000_000 * US_PER_S
TYPES = ("impression", "impression", "click", "watch", "like", "skip", "share")


def _events(seed: int, n: int) -> list[Event]:
    rng = random.Random(seed)
    ts, out = T0, []
    for k in range(n):
        ts += rng.choice([5, 30, 200, 1800, 1801, 4000]) * US_PER_S
        out.append(Event(f"e{k:04d}", "u1", f"i{rng.randrange(12)}", rng.choice(TYPES), ts,
                         watch_time_s=60.0, dwell_time_s=20.0))
    return out


def _stream_row(events, length=50, gap=1800):
    state = SessionState()
    for e in events:
        state.add(e, f"c{e.item_id[1:]}", length, gap)
    return state.feature_row("u1")


def test_matches_the_beam_session_state():
    items = {f"i{k}": Item(f"i{k}", category=f"c{k}", duration_s=100.0) for k in range(12)}
    for seed in range(5):
        events = _events(seed, 80)
        cfg = FeatureConfig(history_length=10)
        expected = process_user("u1", events, items, cfg, horizon_day=30_000).session_state
        row = _stream_row(events, length=10)
        for name in ("session_recent_item_ids", "session_recent_categories", "session_length",
                     "session_started_at_s", "session_last_event_at_s", "event_timestamp"):
            assert row[name] == expected[name], (seed, name)
        assert all(abs(a - b) <= 1 for a, b in zip(row["session_recent_event_at_s"],
                                                    expected["session_recent_event_at_s"]))


def test_repeat_engagement_refreshes_and_late_events_find_their_place():
    click = Event("a", "u1", "i1", "click", T0 + 100 * US_PER_S)
    watch = Event("b", "u1", "i1", "watch", T0 + 160 * US_PER_S)
    late = Event("c", "u1", "i2", "like", T0 + 50 * US_PER_S)
    too_late = Event("d", "u1", "i3", "impression", T0 - 3600 * US_PER_S)
    row = _stream_row([click, watch, late, too_late])
    assert row["session_recent_item_ids"] == ["i1", "i2"]
    assert row["session_recent_event_at_s"] == [T0 // US_PER_S + 160, T0 // US_PER_S + 50]
    assert row["session_last_event_at_s"] == T0 // US_PER_S + 160
    assert row["session_started_at_s"] == T0 // US_PER_S + 50  # the late one opened it
    assert row["session_length"] == 3  # an hour before the start: an earlier session


def test_the_state_of_one_session_does_not_depend_on_arrival_order():
    events = [e for e in _events(11, 200)]
    rng = random.Random(3)
    shuffled = events[:]
    for _ in range(30):  # local disorder, as redeliveries make it
        i = rng.randrange(len(shuffled) - 3)
        shuffled[i], shuffled[i + 2] = shuffled[i + 2], shuffled[i]
    in_order, disordered = _stream_row(events), _stream_row(shuffled)
    for name in ("session_length", "session_started_at_s", "session_last_event_at_s"):
        assert in_order[name] == disordered[name], name


def test_json_round_trip():
    state = SessionState()
    for e in _events(7, 20):
        state.add(e, None, 5, 1800)
    again = SessionState.from_json(state.to_json())
    assert again == state and again.feature_row("u1") == state.feature_row("u1")


def test_a_late_event_that_bridges_two_sessions_joins_them():
    def at(k, seconds):
        return Event(f"e{k}", "u1", "i1", "impression", T0 + seconds * US_PER_S)

    chain = [at(0, 0), at(1, 1000), at(2, 2500)]  # gaps 1000 and 1500: one session
    for order in ([0, 1, 2], [0, 2, 1], [2, 0, 1], [2, 1, 0], [1, 2, 0], [1, 0, 2]):
        row = _stream_row([chain[k] for k in order])
        assert (row["session_length"], row["session_started_at_s"]) == (3, T0 // US_PER_S), \
            order
    apart = _stream_row([at(0, 0), at(2, 2500)])
    assert (apart["session_length"], apart["session_started_at_s"]) == (
        1, T0 // US_PER_S + 2500)


def test_any_arrival_order_gives_the_in_order_state():
    events = _events(5, 60)
    expected = _stream_row(events)
    for seed in range(5):
        shuffled = events[:]
        random.Random(seed).shuffle(shuffled)
        row = _stream_row(shuffled)
        for name in ("session_length", "session_started_at_s", "session_last_event_at_s"):
            assert row[name] == expected[name], (seed, name)


def test_a_state_in_the_first_format_is_read_and_continued():
    first_format = {"recent": [["i1", "c1", T0]], "start": T0 - 60 * US_PER_S, "last": T0,
                    "length": 4, "version": 9}
    state = SessionState.from_json(first_format)
    assert (state.session_start_us, state.last_event_us, state.session_length) == (
        T0 - 60 * US_PER_S, T0, 4)
    state.add(Event("e", "u1", "i2", "click", T0 + 10 * US_PER_S), "c2", 50, 1800)
    assert state.session_length == 5 and state.version == 10
    assert SessionState.from_json({"recent": [], "start": 0, "last": 0, "length": 0,
                                   "version": 0}).sessions == []


def test_a_state_continued_from_its_feature_row_gives_the_same_row():
    """What a worker does for a user it has no state for: continue from the online store's
    row. For events after the row's, the result is the row of the whole sequence."""
    for seed in range(5):
        events = _events(seed, 80)
        for cut in (1, 17, 40, 79):
            state = SessionState.from_feature_row(_stream_row(events[:cut], length=10))
            for e in events[cut:]:
                state.add(e, f"c{e.item_id[1:]}", 10, 1800)
            assert state.feature_row("u1") == _stream_row(events, length=10), (seed, cut)
    empty = SessionState.from_feature_row({"session_recent_item_ids": None})
    assert empty.recent == [] and empty.sessions == []
