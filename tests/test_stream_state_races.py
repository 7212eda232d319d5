"""Two workers' stream states on one real Redis (the embedded server) racing on the same users
and items: no update is lost and none is applied twice, whatever the interleaving."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from recsys.data.records import US_PER_S, Event, order_key
from recsys.features.item_counters import count_events
from recsys.stream.config import StreamConfig
from recsys.stream.redis_connection import connect, stop_embedded
from stream_worker.session_state import HISTORY_EVENT_TYPES, SessionState
from stream_worker.state_store import StreamState

T0 = 1_790_000_000 * US_PER_S
TYPES = ("impression", "click", "watch", "like", "skip")
CATEGORIES = {f"i{k}": f"c{k % 3}" for k in range(15)}


@pytest.fixture
def cfg(tmp_path):
    config = StreamConfig(embedded_dir=tmp_path / "redis")
    yield config
    stop_embedded(tmp_path / "redis")


def _events(n: int, users: int, seed: int) -> list[Event]:
    """``n`` events of ``users`` users; no user engages with an item twice, so the final
    state does not depend on the order events arrive in (a repeat of the newest item
    refreshes it only when it arrives in order)."""
    rng = random.Random(seed)
    seen: Counter = Counter()
    out = []
    for k in range(n):
        user = f"u{rng.randrange(users)}"
        item = f"i{seen[user] % 15}"
        seen[user] += 1
        out.append(Event(f"e{k}", user, item, rng.choice(TYPES),
                         T0 + rng.randrange(0, 7200) * US_PER_S, watch_time_s=60.0,
                         dwell_time_s=20.0))
    return out


def _oracle(events: list[Event], cfg: StreamConfig) -> dict[str, dict]:
    """Each user's session row with every distinct event applied once, in one process."""
    states: dict[str, SessionState] = {}
    for event in sorted({e.event_id: e for e in events}.values(), key=order_key):
        states.setdefault(event.user_id, SessionState()).add(
            event, CATEGORIES[event.item_id], cfg.history_length, cfg.session_gap_s)
    return {u: s.feature_row(u) for u, s in states.items()}


def _check(state: StreamState, events: list[Event], cfg: StreamConfig) -> None:
    expected = _oracle(events, cfg)
    got = state.sessions(expected)
    assert {u: s.feature_row(u) for u, (s, _) in got.items()} == expected
    assert state.session_versions(expected) == {u: v for u, (_, v) in got.items()}
    unique = list({e.event_id: e for e in events}.values())
    rows = state.item_rows({e.item_id for e in unique})
    for item_id, (row, _) in rows.items():
        counts, last = count_events([(e.event_type, e.ts_us) for e in unique
                                     if e.item_id == item_id], HISTORY_EVENT_TYPES)
        assert row["item_stream_last_event_at_s"] == last // US_PER_S
        assert row["item_stream_impressions_24h"] == sum(
            n for (kind, _), n in counts.items() if kind == "impressions")
    assert set(rows) == {e.item_id for e in unique}


def test_a_user_changed_between_read_and_write_is_applied_again_on_the_new_state(cfg):
    """Worker A reads a user's state; worker B applies another event of that user; A's write
    must not overwrite B's: A applies its event again on B's state."""
    a, b = StreamState(connect(cfg), cfg), StreamState(connect(cfg), cfg)
    first, second, third = _events(3, 1, seed=1)
    a.apply([first], CATEGORIES)
    real_script, calls = a._users_script, Counter()

    def racing_script(keys, args):
        calls["a"] += 1
        if calls["a"] == 1:  # between A's read and A's compare-and-set
            b.apply([second, third], CATEGORIES)
        return real_script(keys=keys, args=args)

    a._users_script = racing_script
    written, _ = a.apply([third], CATEGORIES)
    assert calls["a"] == 1 and written == {}  # re-read: B had applied `third` meanwhile
    fourth = _events(4, 1, seed=2)[3]
    calls.clear()

    def racing_again(keys, args):
        calls["a"] += 1
        if calls["a"] == 1:
            b.apply([_events(5, 1, seed=3)[4]], CATEGORIES)
        return real_script(keys=keys, args=args)

    a._users_script = racing_again
    written, _ = a.apply([fourth], CATEGORIES)
    assert calls["a"] == 2  # raced once, written on the second round
    everything = [first, second, third, fourth, _events(5, 1, seed=3)[4]]
    assert written["u0"][0].feature_row("u0") == _oracle(everything, cfg)["u0"]
    _check(a, everything, cfg)


def test_two_workers_applying_overlapping_batches_at_once_lose_and_repeat_nothing(cfg):
    events = _events(100, users=8, seed=7)
    rng = random.Random(8)
    shares = [[], []]
    for event in events:  # each event to one worker, a third of them to both
        picked = rng.sample([0, 1], 2 if rng.random() < 0.33 else 1)
        for k in picked:
            shares[k].append(event)
    errors = []

    def work(share: list[Event]) -> None:
        state = StreamState(connect(cfg), cfg)
        try:
            for start in range(0, len(share), 10):
                state.apply(share[start:start + 10], CATEGORIES)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    _check(StreamState(connect(cfg), cfg), events, cfg)
