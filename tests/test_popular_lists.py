"""Tests of the precomputed popular lists (global and per segment) on small generated examples."""

from __future__ import annotations

import gc

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.errors import ConfigError, SourceError
from serving.recommendations.popular_lists import (
    SEGMENT_FIELDS,
    PopularItem,
    PopularLists,
    build_popular_lists,
    load_training_examples,
)

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


def event(item: str, days_ago: float = 0.0, split: str = "train", country: str | None = "DE",
          language: str | None = "de", device: str | None = "web",
          category: str | None = "drama") -> dict:
    return {"item_id": item, "days_ago": days_ago, "split": split, "country": country,
            "language": language, "device": device, "item_category": category}


def frame(events: list[dict]) -> pd.DataFrame:
    """Training examples in the Beam output's columns, one per event, ``days_ago`` before NOW."""
    rows = []
    for n, e in enumerate(events):
        at = pd.Timestamp(NOW - dt.timedelta(days=e["days_ago"]))
        rows.append({"example_id": f"ex{n:04d}", "user_id": f"u{n % 3}", "item_id": e["item_id"],
                     "event_type": "click", "event_timestamp": at, "split": e["split"],
                     "label_weight": 1.0, "item_category": e["item_category"],
                     "session_position": 0, "device": e["device"], "country": e["country"],
                     "language": e["language"], "hour_of_day": at.hour,
                     "day_of_week": at.dayofweek, "history_item_ids": [],
                     "history_categories": [], "history_gaps_s": []})
    return pd.DataFrame(rows)


def ids(items: list[PopularItem]) -> list[str]:
    return [item.item_id for item in items]


def item(item_id: str, score: float, category: str = "") -> PopularItem:
    return PopularItem(item_id, score, category)


# -- building -------------------------------------------------------------------------------

def test_recent_event_beats_old_event_of_equal_count() -> None:
    lists = build_popular_lists(frame([event("old", 10), event("old", 10), event("new", 1),
                                       event("new", 1)]))
    assert ids(lists.global_items) == ["new", "old"]
    assert lists.global_items[0].score == pytest.approx(2.0)  # ages count from the latest event
    assert lists.global_items[1].score == pytest.approx(2 * 0.5 ** (9 / 7))
    assert lists.as_of_s == int(NOW.timestamp()) - 86400


def test_half_life_sets_the_weight_and_count_can_beat_recency() -> None:
    events = [event("recent", 0)] + [event("steady", 7)] * 3
    lists = build_popular_lists(frame(events), half_life_days=7.0)
    assert ids(lists.global_items) == ["steady", "recent"]
    assert lists.global_items[0].score == pytest.approx(1.5)
    short = build_popular_lists(frame(events), half_life_days=1.0)
    assert ids(short.global_items) == ["recent", "steady"]
    assert short.global_items[1].score == pytest.approx(3 / 128)
    assert (short.half_life_days, short.window_days) == (1.0, 30.0)


def test_events_older_than_the_window_do_not_count() -> None:
    events = [event("stale", 31)] * 40 + [event("fresh", 29), event("now", 0)]
    lists = build_popular_lists(frame(events), window_days=30.0)
    assert ids(lists.global_items) == ["now", "fresh"]
    wide = build_popular_lists(frame(events), window_days=40.0)
    assert ids(wide.global_items) == ["stale", "now", "fresh"]


def test_a_list_whose_window_is_empty_counts_all_its_train_events() -> None:
    events = ([event("de-item", 0, country="DE")] * 3
              + [event("fr-old", 60, country="FR")] * 2 + [event("fr-older", 90, country="FR")]
              + [event("de-stale", 45, country="DE")] * 5)
    lists = build_popular_lists(frame(events), min_segment_events=3)
    assert ids(lists.segments["country"]["FR"]) == ["fr-old", "fr-older"]
    assert lists.segments["country"]["FR"][0].score == pytest.approx(2 * 0.5 ** (60 / 7))
    assert ids(lists.segments["country"]["DE"]) == ["de-item"]  # DE's window is not empty
    assert ids(lists.global_items) == ["de-item"]


def test_test_rows_never_influence_the_lists() -> None:
    train = [event("a", 5, category="drama")] * 2 + [event("b", 3)]
    test = ([event("test-only", 0, split="test", country="JP", device="tv")] * 10
            + [event("b", 0, split="test", category="comedy")] * 10)
    lists = build_popular_lists(frame(train + test), min_segment_events=1)
    assert ids(lists.global_items) == ["a", "b"]
    assert lists == build_popular_lists(frame(train), min_segment_events=1)
    assert lists.as_of_s == int(NOW.timestamp()) - 3 * 86400
    assert "JP" not in lists.segments["country"] and "tv" not in lists.segments["device"]
    assert lists.global_items[1] == PopularItem("b", 1.0, "drama")


def test_category_is_the_latest_train_examples_and_empty_when_unknown() -> None:
    events = [event("a", 5, category="old"), event("a", 1, category="new"),
              event("b", 2, category=None)]
    lists = build_popular_lists(frame(events))
    assert [(i.item_id, i.category) for i in lists.global_items] == [("a", "new"), ("b", "")]


def test_segments_need_min_segment_events_in_the_window() -> None:
    events = ([event("x", 1, country="DE", language=None, device="")] * 3
              + [event("y", 1, country="FR", language=None, device="")] * 2
              + [event("z", 40, country="FR", language=None, device="")] * 5)
    lists = build_popular_lists(frame(events), min_segment_events=3)
    assert lists.segments == {"country": {"DE": [PopularItem("x", 3.0, "drama")]}}
    assert set(build_popular_lists(frame(events), min_segment_events=2).segments["country"]) == {
        "DE", "FR"}


def test_ties_are_broken_by_item_id_whatever_the_row_order() -> None:
    events = [event(i, d) for d in (0, 2, 5) for i in ("c", "a", "b")]
    lists = build_popular_lists(frame(events), min_segment_events=1)
    assert ids(lists.global_items) == ["a", "b", "c"]
    assert len({i.score for i in lists.global_items}) == 1
    shuffled = frame(events).sample(frac=1.0, random_state=7)
    assert build_popular_lists(shuffled, min_segment_events=1) == lists


def test_per_list_truncates_every_list() -> None:
    events = [event(f"i{n}", n) for n in range(6)]
    lists = build_popular_lists(frame(events), per_list=4, min_segment_events=1)
    assert ids(lists.global_items) == ["i0", "i1", "i2", "i3"]
    assert ids(lists.segments["device"]["web"]) == ["i0", "i1", "i2", "i3"]


# -- serving --------------------------------------------------------------------------------

def lists_by_hand() -> PopularLists:
    return PopularLists(
        global_items=[item("g1", 9.0), item("a", 8.0), item("g2", 7.0), item("g3", 1.0)],
        segments={"country": {"DE": [item("a", 10.0, "drama"), item("b", 5.0)]},
                  "device": {"tv": [item("b", 4.0, "news"), item("c", 2.0)]}},
        as_of_s=1_700_000_000, half_life_days=7.0, window_days=30.0)


def test_segment_lists_merge_by_normalised_score_then_fill_from_global() -> None:
    got, label = lists_by_hand().for_segment(
        {"country": "DE", "language": "xx", "device": "tv"}, k=5)
    assert label == "country=DE,device=tv"
    assert got == [item("b", 1.5), item("a", 1.0, "drama"), item("c", 0.5),
                   item("g1", 9.0), item("g2", 7.0)]


def test_one_segment_and_unknown_or_empty_values() -> None:
    lists = lists_by_hand()
    got, label = lists.for_segment({"country": "DE", "device": None, "language": ""}, k=2)
    assert (ids(got), label) == (["a", "b"], "country=DE")
    assert got[1].score == pytest.approx(0.5)
    for context in ({}, {"country": "FR", "device": "phone"}, {"country": None, "device": ""}):
        got, label = lists.for_segment(context, k=3)
        assert (ids(got), label) == (["g1", "a", "g2"], "global")


def test_merged_segment_lists_are_not_tracked_by_the_garbage_collector() -> None:
    """The service keeps a merged list per segment combination for its lifetime: held as
    objects per item, every full collection walked them all (up to 220 ms on 100K items)."""
    lists = lists_by_hand()
    got, _ = lists.for_segment({"country": "DE", "device": "tv"}, k=3)
    gc.collect()
    gc.collect()  # an outer tuple is untracked once its inner ones are
    merged, _ = lists._merged({"country": "DE", "device": "tv"})
    assert [entry[0] for entry in merged[:3]] == ids(got)
    assert not any(gc.is_tracked(entry) for entry in merged)
    assert not gc.is_tracked(merged)


def test_exclusions_skip_items_and_still_return_k() -> None:
    lists = lists_by_hand()
    assert ids(lists.top(2)) == ["g1", "a"]
    assert ids(lists.top(2, exclude={"g1"})) == ["a", "g2"]
    assert ids(lists.top(10, exclude=["a"])) == ["g1", "g2", "g3"]
    assert lists.top(0) == []
    got, _ = lists.for_segment({"country": "DE", "device": "tv"}, k=3, exclude={"b", "g1"})
    assert ids(got) == ["a", "c", "g2"]


def test_negative_k_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^k must be an integer >= 0, got -1$"):
        lists_by_hand().top(-1)


# -- files ----------------------------------------------------------------------------------

def test_save_and_load_round_trip(tmp_path: Path) -> None:
    events = ([event("a", 0.3, country="DE", device="tv")] * 3
              + [event("b", 2.7, country="FR", language="fr", category=None)] * 3)
    lists = build_popular_lists(frame(events), min_segment_events=3)
    path = tmp_path / "models" / "popular.json"
    lists.save(path)
    assert json.loads(path.read_text())["format"] == "recsys.popular/v1"
    assert PopularLists.load(path) == lists
    assert sorted(lists.segments) == sorted(SEGMENT_FIELDS)
    assert [p.name for p in path.parent.iterdir()] == ["popular.json"]


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def saved(tmp_path: Path) -> dict:
    path = tmp_path / "good.json"
    lists_by_hand().save(path)
    return json.loads(path.read_text())


REBUILD = re.escape("; rebuild it with build_popular_lists(...).save(path)") + "$"


def test_load_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(SourceError, match="^" + re.escape(f"{path}: popular lists not found")
                       + REBUILD):
        PopularLists.load(path)


def test_load_of_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = write(tmp_path / "p.json", "{not json")
    with pytest.raises(SourceError, match="^" + re.escape(f"{path}: not a valid JSON file (")
                       + r"Expecting property name.*\)" + REBUILD):
        PopularLists.load(path)


@pytest.mark.parametrize("fmt, shown", [("recsys.popular/v2", "'recsys.popular/v2'"),
                                        (None, "None")])
def test_load_of_a_wrong_or_missing_format(tmp_path: Path, fmt: str | None, shown: str) -> None:
    data = saved(tmp_path)
    data.pop("format") if fmt is None else data.update(format=fmt)
    path = write(tmp_path / "p.json", data)
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{path}: format is {shown}, expected 'recsys.popular/v1'") + REBUILD):
        PopularLists.load(path)
    path = write(tmp_path / "list.json", [data])
    with pytest.raises(SourceError, match=re.escape(f"{path}: format is None")):
        PopularLists.load(path)


def test_load_of_missing_fields(tmp_path: Path) -> None:
    data = saved(tmp_path)
    del data["as_of_s"], data["window_days"]
    path = write(tmp_path / "p.json", data)
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{path}: missing field(s) as_of_s, window_days") + REBUILD):
        PopularLists.load(path)
    data = saved(tmp_path)
    del data["segments"]["device"]["tv"][1]["score"]
    path = write(tmp_path / "p.json", data)
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{path}: missing field(s) score in segments.device.tv[1]") + REBUILD):
        PopularLists.load(path)


def test_load_of_malformed_values(tmp_path: Path) -> None:
    data = saved(tmp_path)
    data["global_items"][0]["score"] = "high"
    path = write(tmp_path / "p.json", data)
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{path}: malformed popular lists (could not convert string to float: 'high')")
            + REBUILD):
        PopularLists.load(path)
    data = saved(tmp_path)
    data["global_items"] = ["g1"]
    path = write(tmp_path / "p.json", data)
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{path}: global_items[0] is not an object") + REBUILD):
        PopularLists.load(path)


def test_no_train_rows_is_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"^the training examples have no train rows: nothing "
                       r"to rank; rebuild them with `recsys features build`$"):
        build_popular_lists(frame([event("a", 0, split="test")]))


def test_missing_columns_are_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"^the training examples have no column\(s\) "
                       r"language, device: rebuild them with `recsys features build`$"):
        build_popular_lists(frame([event("a")]).drop(columns=["device", "language"]))


@pytest.mark.parametrize("name, value, message", [
    ("per_list", 0, "per_list must be a positive integer, got 0"),
    ("min_segment_events", 2.0, "min_segment_events must be a positive integer, got 2.0"),
    ("half_life_days", 0.0, "half_life_days must be a finite number > 0, got 0.0"),
    ("window_days", math.inf, "window_days must be a finite number > 0, got inf"),
])
def test_bad_parameters_are_config_errors(name: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
        build_popular_lists(frame([event("a")]), **{name: value})


def test_load_training_examples_reads_the_beam_output(tmp_path: Path) -> None:
    examples = frame([event("a", 1), event("b", 0, split="test")])
    target = tmp_path / "data" / "training_examples"
    target.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(examples, preserve_index=False), target / "part-0.parquet")
    loaded = load_training_examples(tmp_path)
    assert list(loaded["item_id"]) == ["a", "b"]
    assert ids(build_popular_lists(loaded).global_items) == ["a"]
    with pytest.raises(SourceError, match="^" + re.escape(
            f"{tmp_path / 'elsewhere' / 'data' / 'training_examples'} not found; run "
            "`recsys features build` first") + "$"):
        load_training_examples(tmp_path / "elsewhere")
