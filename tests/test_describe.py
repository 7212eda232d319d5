from conftest import event
from recsys.data.describe import describe


def test_summary_of_a_small_lake(lake, policy):
    lake.write_items([{"item_id": "i1"}, {"item_id": "i2"}], "t", policy=policy)
    lake.write_users([{"user_id": "u1"}], "t", policy=policy)
    lake.write_events([
        event(event_id="a", event_type="impression", timestamp="2026-10-01T10:00:00Z"),
        event(event_id="b", event_type="impression", item_id="i2",
              timestamp="2026-10-02T10:00:00Z"),
        event(event_id="c", event_type="click", timestamp="2026-10-02T10:00:05Z"),
    ], "t", policy=policy)
    summary = describe(lake)
    assert (summary.events, summary.items, summary.users, summary.partitions) == (3, 2, 1, 2)
    assert summary.event_types == {"impression": 2, "click": 1}
    assert summary.click_through_rate == 0.5
    assert (summary.first_event, summary.last_event) == ("2026-10-01T10:00:00+00:00",
                                                         "2026-10-02T10:00:05+00:00")
    text = "\n".join(summary.lines())
    assert "click-through rate 50.00%" in text and "in 2 daily partitions" in text


def test_summary_of_an_empty_lake(lake):
    summary = describe(lake)
    assert summary.events == 0 and summary.click_through_rate is None
    assert summary.first_event is None
