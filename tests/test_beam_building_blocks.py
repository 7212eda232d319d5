"""Sessions, histories, snapshot days, windows and positives: the pure parts of the jobs."""

import pytest

from beam_jobs.history import History
from beam_jobs.positives import is_positive, label_weight, watch_fraction
from beam_jobs.sessions import SessionSlot, assign_sessions
from beam_jobs.snapshots import snapshot_days
from beam_jobs.windows import Timeline
from recsys.data.records import US_PER_DAY, US_PER_S, Event, Item
from recsys.errors import ConfigError
from recsys.features.config import FeatureConfig, PositiveRule


def ev(ts_s: float, kind: str = "click", item: str = "i", **kw) -> Event:
    return Event(f"e{ts_s}", "u", item, kind, int(ts_s * US_PER_S), **kw)


def test_sessions_cut_after_more_than_the_gap():
    events = [ev(0), ev(1800), ev(3601), ev(3602)]  # exactly 30 min stays; 30 min + 1 s cuts
    assert assign_sessions(events, 1800) == [
        SessionSlot(0, 0, 0), SessionSlot(0, 1, 0),
        SessionSlot(1, 0, 3601 * US_PER_S), SessionSlot(1, 1, 3601 * US_PER_S)]


def test_history_is_most_recent_first_bounded_and_collapses_repeats():
    h = History(3)
    for ts, item in [(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "d")]:
        h.add(item, item.upper(), ts * US_PER_S)
    cols = h.columns(10 * US_PER_S)
    assert cols == {"history_item_ids": ["d", "c", "b"], "history_categories": ["D", "C", "B"],
                    "history_gaps_s": [5.0, 6.0, 7.0]}


def test_snapshot_days_are_entries_and_exits_of_each_window():
    assert snapshot_days([10], horizon_day=100) == [11, 12, 18, 41]
    assert snapshot_days([10, 10, 11], horizon_day=19) == [11, 12, 13, 18, 19]


def test_timeline_window_is_half_open():
    t = Timeline()
    for day in (0, 1, 2):
        t.append(day * US_PER_DAY, day)
    assert t.window(2 * US_PER_DAY, 1) == [1]  # [day 1, day 2)
    assert t.count(3 * US_PER_DAY, 7) == 3 and t.before(US_PER_DAY) == 1


ITEM = Item("i", duration_s=100.0)


@pytest.mark.parametrize("event, expected", [
    (ev(0, "click", dwell_time_s=10.0), True),
    (ev(0, "click", dwell_time_s=9.9), False),
    (ev(0, "click"), False),
    (ev(0, "watch", watch_time_s=50.0), True),
    (ev(0, "watch", watch_time_s=49.0), False),
    (ev(0, "like"), True),
    (ev(0, "impression"), False),
    (ev(0, "skip"), False),
    (ev(0, "rating", rating=0.5), True),
])
def test_default_positive_rule(event, expected):
    assert is_positive(event, ITEM, PositiveRule()) is expected


def test_clicks_without_dwell_times_count_only_when_the_threshold_is_zero():
    """A clickstream without dwell times (`recsys quickstart -- --positive_min_dwell_s 0`)."""
    every_click = PositiveRule(min_dwell_s=0.0)
    assert is_positive(ev(0, "click"), ITEM, every_click)
    assert is_positive(ev(0, "click", dwell_time_s=0.0), ITEM, every_click)
    assert not is_positive(ev(0, "click"), ITEM, PositiveRule(min_dwell_s=0.5))


def test_rating_threshold_and_weights():
    rule = PositiveRule(event_types=("rating",), min_rating=4.0)
    assert not is_positive(ev(0, "rating", rating=3.5), None, rule)
    assert is_positive(ev(0, "rating", rating=4.0), None, rule)
    assert label_weight(ev(0, "rating", rating=4.0), None) == 4.0
    assert label_weight(ev(0, "watch", watch_time_s=250.0), ITEM) == 1.0  # capped share
    assert watch_fraction(ev(0, "watch", watch_time_s=25.0), Item("i")) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"history_length": 0}, "history_length must be a positive integer, got 0"),
    ({"split": "random"}, "split must be one of ['none', 'temporal', 'last_one']"),
    ({"test_fraction": 1.0}, "test_fraction must be a number in (0, 1), got 1.0"),
    ({"history_event_types": ("purchase",)},
     "history_event_types must be a subset of ['impression', "),
    ({"max_bad_ratio": 2.0}, "max_bad_ratio must be a number in [0, 1], got 2.0"),
])
def test_bad_feature_config(kwargs, message):
    with pytest.raises(ConfigError) as err:
        FeatureConfig(**kwargs)
    assert message in str(err.value)


def test_bad_positive_rule():
    with pytest.raises(ConfigError, match="non-empty subset"):
        PositiveRule(event_types=("impression",))
