"""The item lookup every worker loads (``beam_jobs/lookups.py``): the latest version of each
item, parsed; an item whose latest row is bad is absent, even when an older row parses."""

import pyarrow as pa
import pyarrow.parquet as pq

from beam_jobs.lookups import latest_items
from recsys.data.records import Item


def _write(lake, name, rows):
    (lake / "items").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), lake / "items" / f"part-{name}.parquet")


def _row(item_id, ingested_at, **fields):
    row = {"item_id": item_id, "category": "drama", "language": "en", "tags": ["a", "b"],
           "created_at": 1_000_000, "duration_s": 60.0, "ingested_at": ingested_at}
    row.update(fields)
    return row


def test_latest_version_per_item_parsed(tmp_path):
    _write(tmp_path, "1", [_row("i1", 10, category="old"), _row("i2", 10),
                           _row("i3", 30, duration_s=-1.0), _row("i4", 10)])
    _write(tmp_path, "2", [_row("i1", 20, category="new"), _row("i2", 5, category="older"),
                           _row("i3", 20), _row("i4", 10, category="same time: first kept")])
    items = latest_items(tmp_path)
    assert items == {
        "i1": Item("i1", "new", "en", ("a", "b"), 1_000_000, 60.0),
        "i2": Item("i2", "drama", "en", ("a", "b"), 1_000_000, 60.0),
        "i4": Item("i4", "drama", "en", ("a", "b"), 1_000_000, 60.0),
    }  # i3: its latest row is bad (a negative duration), so it is left out


def test_equal_values_are_shared(tmp_path):
    _write(tmp_path, "1", [_row(f"i{n}", 1) for n in range(3)])
    items = list(latest_items(tmp_path).values())
    assert all(item.tags is items[0].tags and item.category is items[0].category
               for item in items)
