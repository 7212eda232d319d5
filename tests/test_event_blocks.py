"""Events shuffled as packed blocks per shard (beam_jobs/event_blocks.py), and the option that
sets how many shards."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from beam_jobs.event_blocks import (
    blocks_by_shard,
    group_blocks,
    item_of,
    pack_events,
    shard_of,
    unpack_events,
    user_of,
)
from beam_jobs.pipeline import run
from recsys.data.records import Event
from recsys.errors import ConfigError

EVENTS = [
    Event("e1", "u1", "i1", "click", 5, None, 3.5, None, "mobile", "DE", "de", "r1", 0),
    Event("e2", "u2", "i1", "watch", 7, 120.0, None, None, None, None, None, None, None),
    Event("e3", "u1", "i2", "rating", 9, None, None, 4.5, "tv", "DE", "de", None, None),
    Event("e4", "u3", "i3", "like", 11, device="mobile", country="FR", language="fr"),
]


def test_a_packed_block_unpacks_to_the_same_events_in_order():
    assert unpack_events(pack_events(EVENTS)) == EVENTS
    assert unpack_events(pack_events(EVENTS[::-1])) == EVENTS[::-1]
    assert unpack_events(pack_events([])) == []
    back = unpack_events(pack_events(EVENTS))
    assert all(type(event) is Event for event in back)


def _text(*parts: str) -> str:
    return "".join(parts)  # a new string object each call, as a reader makes them


def test_equal_strings_are_packed_once():
    events = [Event(f"e{k}", _text("user-", "1"), _text("item-", "1"), _text("cl", "ick"), k,
                    device=_text("mob", "ile"), country=_text("D", "E"),
                    language=_text("d", "e"), request_id=_text("request-", "1"))
              for k in range(1000)]
    block = pack_events(events)
    assert len(block) < 0.7 * len(pickle.dumps(events))
    back = unpack_events(block)
    assert back == events
    assert all(back[0][i] is back[999][i] for i in range(1, 4))  # one object, shared
    assert back[0].device is back[1].device and back[0].request_id is back[2].request_id


def test_shards_are_the_same_in_every_process():
    here = [shard_of(key, 256) for key in ("u1", "u2", "item-42", "ü")]
    script = ("from beam_jobs.event_blocks import shard_of; "
              "print([shard_of(k, 256) for k in ('u1', 'u2', 'item-42', 'ü')])")
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert str(here) == there
    assert all(0 <= shard < 256 for shard in here)


def test_blocks_by_shard_put_each_key_in_its_shard_and_group_blocks_restores_it():
    blocks = blocks_by_shard(EVENTS, user_of, 2) + blocks_by_shard(EVENTS[:2], user_of, 2)
    for shard, block in blocks:
        assert {shard_of(e.user_id, 2) for e in unpack_events(block)} == {shard}
    by_shard: dict[int, list[bytes]] = {}
    for shard, block in blocks:
        by_shard.setdefault(shard, []).append(block)
    grouped = dict(kv for shard_blocks in by_shard.values()
                   for kv in group_blocks(shard_blocks, user_of))
    assert sorted(grouped) == ["u1", "u2", "u3"]
    assert sorted(e.event_id for e in grouped["u1"]) == ["e1", "e1", "e3"]
    items = group_blocks([block for _, block in blocks_by_shard(EVENTS, item_of, 1)], item_of)
    assert [item for item, _ in items] == ["i1", "i2", "i3"]  # key order


@pytest.mark.parametrize("shards", ["0", "-3"])
def test_a_shuffle_shards_below_one_is_refused(tmp_path, shards):
    with pytest.raises(ConfigError, match=f"--shuffle_shards must be at least 1, got {shards}"):
        run(["--lake", str(tmp_path), "--output", str(tmp_path / "out"),
             "--shuffle_shards", shards])


def test_a_parquet_file_is_read_in_pieces_that_cover_it_exactly_once(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from beam_jobs.lake_io import parquet_batches, parquet_pieces, piece_batches

    path = str(tmp_path / "part-0.parquet")
    pq.write_table(pa.table({"event_id": [f"e{k}" for k in range(1000)],
                             "ts": list(range(1000))}), path, row_group_size=300)
    pieces = parquet_pieces(path, piece_rows=128)
    assert {piece.row_group for piece in pieces} == {0, 1, 2, 3}
    assert all(0 < piece.rows <= 128 for piece in pieces)  # none across row groups
    rows = [row["event_id"] for piece in pieces for batch in piece_batches(piece, 50)
            for row in batch.rows]
    assert rows == [f"e{k}" for k in range(1000)]
    sources = [batch.source for piece in pieces for batch in piece_batches(piece, 50)]
    assert len(set(sources)) == len(sources) and sources[0] == f"{path}#0@0"
    assert [r["ts"] for b in parquet_batches(path, 64) for r in b.rows] == list(range(1000))
