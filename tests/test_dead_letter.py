from recsys.data.dead_letter import read_dead_letter, write_dead_letter
from recsys.data.validation import Rejection


def test_entries_round_trip_with_locations(tmp_path):
    path = tmp_path / "dl" / "run.jsonl"
    rejections = [Rejection(0, "why", {"a": 1}), Rejection(4, "other", {"b": None}, "f.csv:9")]
    assert write_dead_letter(path, "events", "src", rejections, lambda row: f"line {row + 2}") == 2
    assert read_dead_letter(path) == [
        {"table": "events", "source": "src", "location": "line 2", "reason": "why",
         "record": {"a": 1}},
        {"table": "events", "source": "src", "location": "f.csv:9", "reason": "other",
         "record": {"b": None}},
    ]


def test_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "run.jsonl"
    write_dead_letter(path, "items", "s", [Rejection(1, "x", {})])
    write_dead_letter(path, "items", "s", [Rejection(2, "y", {})])
    assert [e["location"] for e in read_dead_letter(path)] == ["row 1", "row 2"]
