"""The stream worker's batch writes and reads of the online store
(``stream_worker.online_rows``) against Feast's own push and ``get_online_features``: the same
rows read back the same, on SQLite (embedded) and on Redis (production profile)."""

from __future__ import annotations

import datetime as dt

import pytest
from feast_support import drop_schema, embedded_repo, production_repo
from stream_support import catalogue_table

from recsys.features.store import apply, open_store
from recsys.features.tables import ITEM_CATALOGUE, ITEM_STREAM, USER_SESSION
from stream_worker.online_rows import OnlineRows
from stream_worker.sinks import feature_frame

NOW_US = int(dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc).timestamp() * 1e6)


def _sessions(prefix: str) -> list[dict]:
    return [{"user_id": f"{prefix}-u{k}", "event_timestamp": NOW_US + k,
             "created_timestamp": NOW_US + k,
             "session_recent_item_ids": [f"i{k}", "i9"],
             "session_recent_categories": ["news", None],  # an item without a category
             "session_recent_event_at_s": [NOW_US // 10**6 - 5, NOW_US // 10**6 - 60],
             "session_length": k + 2, "session_started_at_s": NOW_US // 10**6 - 600,
             "session_last_event_at_s": NOW_US // 10**6} for k in range(3)]


def _counters(prefix: str) -> list[dict]:
    row = {name: 7 for name in ITEM_STREAM.feature_names}
    return [{**row, "item_id": f"{prefix}-i{k}", "event_timestamp": NOW_US,
             "created_timestamp": NOW_US, "item_stream_clicks_1h": k} for k in range(3)]


def _catalogue(prefix: str) -> list[dict]:
    return [{"item_id": f"{prefix}-c{k}", "event_timestamp": NOW_US, "created_timestamp": NOW_US,
             "item_category": "film" if k else None, "item_language": "en",
             "item_tags": ["a", "b"][:k], "item_duration_s": 90.5 + k,
             "item_created_at_s": NOW_US // 10**6 - k} for k in range(3)]


def _read(store, table, ids) -> dict:
    return store.get_online_features([f"{table.name}:{f}" for f in table.feature_names],
                                     [{table.key: i} for i in ids]).to_dict()


def _same_rows_as_feast(repo) -> None:
    store = open_store(repo)
    rows = OnlineRows(store)
    cases = ((USER_SESSION, _sessions, "user_session_push"),
             (ITEM_STREAM, _counters, "item_stream_push"), (ITEM_CATALOGUE, _catalogue, None))
    for table, make, push_source in cases:
        ours, feasts = make("ours"), make("feast")
        rows.write(table, ours)
        if push_source:
            store.push(push_source, feature_frame(table, feasts))
        else:
            store.write_to_online_store(table.name, feature_frame(table, feasts))
        got_ours = _read(store, table, [r[table.key] for r in ours])
        got_feast = _read(store, table, [r[table.key] for r in feasts])
        for name in table.feature_names:
            assert got_ours[name] == got_feast[name], (table.name, name)
        read_back = rows.read(table, [r[table.key] for r in ours] + ["nobody"])
        assert set(read_back) == {r[table.key] for r in ours}  # no row: absent
        for row in ours:
            for name in table.feature_names:
                assert read_back[row[table.key]][name] == got_ours[name][
                    [r[table.key] for r in ours].index(row[table.key])], (table.name, name)
    assert _read(store, USER_SESSION, ["ours-u0"])["session_recent_categories"] == [
        ["news", ""]]  # Feast's own rule for None in a string list


def test_rows_written_in_one_batch_read_back_and_are_stored_as_feast_writes_them_sqlite(
        tmp_path):
    repo = embedded_repo(tmp_path, {"item_catalogue": catalogue_table(4)})
    apply(repo)
    _same_rows_as_feast(repo)
    _same_bytes_as_feast(repo)


@pytest.mark.services
def test_rows_written_in_one_batch_read_back_and_are_stored_as_feast_writes_them_redis(
        tmp_path):
    repo, schema = production_repo(tmp_path, {"item_catalogue": catalogue_table(4)})
    try:
        apply(repo)
        _same_rows_as_feast(repo)
        _same_bytes_as_feast(repo)
        _older_rows_are_skipped(repo)
    finally:
        drop_schema(schema)


def test_an_unknown_feature_kind_is_refused():
    from stream_worker.store_writers import value_proto

    with pytest.raises(ValueError, match="feature kind 'float64_list'"):
        value_proto("float64_list", [1.0])


def _stored(store, table, entity_id: str):
    """What the online store holds for one entity, as raw bytes (Redis: the hash; SQLite:
    the rows of the table), with nothing that names the entity."""
    from stream_worker.store_writers import RedisWriter, SqliteWriter, _Keys, writer_for

    writer = writer_for(store)
    key = _Keys(table, writer._serialize).of(entity_id)
    view = store.get_feature_view(table.name)
    if isinstance(writer, RedisWriter):
        return writer.client.hgetall(key)
    assert isinstance(writer, SqliteWriter)
    name = f"{store.config.project}_{view.name}"
    return sorted(writer.conn.execute(
        f'SELECT feature_name, value, value_text, event_ts, created_ts FROM "{name}" '
        f"WHERE entity_key = ?", (key,)).fetchall())


def _same_bytes_as_feast(repo) -> None:
    """Rows written here and the same rows written by Feast's ``online_write_batch`` leave
    the same bytes in the store: value, text, times, field names."""
    store = open_store(repo)
    fast, feasts = OnlineRows(store), OnlineRows(store)
    feasts._writer = None  # Feast's own batch write
    for table, make in ((USER_SESSION, _sessions), (ITEM_STREAM, _counters),
                        (ITEM_CATALOGUE, _catalogue)):
        ours, theirs = make("raw-ours"), make("raw-feast")
        fast.write(table, ours)
        feasts.write(table, theirs)
        for mine, other in zip(ours, theirs):
            got = _stored(store, table, mine[table.key])
            assert got and got == _stored(store, table, other[table.key]), table.name


def _older_rows_are_skipped(repo) -> None:
    """Feast's Redis rule: a row not newer than the stored one (or than an earlier row of the
    batch for the same entity) is not written."""
    store = open_store(repo)
    rows = OnlineRows(store)
    newer = {**_counters("order")[0], "item_stream_clicks_1h": 5}
    rows.write(ITEM_STREAM, [newer])
    older = {**newer, "item_stream_clicks_1h": 1, "event_timestamp": NOW_US - 10,
             "created_timestamp": NOW_US - 10}
    rows.write(ITEM_STREAM, [older])
    assert rows.read(ITEM_STREAM, ["order-i0"])["order-i0"]["item_stream_clicks_1h"] == 5
    later = {**newer, "item_stream_clicks_1h": 9, "event_timestamp": NOW_US + 10}
    rows.write(ITEM_STREAM, [later, {**later, "item_stream_clicks_1h": 3,
                                     "event_timestamp": NOW_US + 5}])
    assert rows.read(ITEM_STREAM, ["order-i0"])["order-i0"]["item_stream_clicks_1h"] == 9
    store.config.online_store.skip_dedup = True  # Feast's option: rows written as they come
    rows = OnlineRows(store)
    rows.write(ITEM_STREAM, [older])
    assert rows.read(ITEM_STREAM, ["order-i0"])["order-i0"]["item_stream_clicks_1h"] == 1


def test_integer_values_are_serialized_once_and_match_the_proto():
    from stream_worker.store_writers import ValueBytes, value_proto

    values = ValueBytes()
    first = values.of("int64", 7)
    assert values.of("int64", 7) is first
    assert first == (value_proto("int64", 7).SerializeToString(), "7")
    assert values.of("float32", 0.1) == (value_proto("float32", 0.1).SerializeToString(),
                                         str(value_proto("float32", 0.1).float_val))
    assert values.of("string_list", None) == (b"", None)


def test_categories_are_kept_for_their_ttl_and_a_catalogue_write_updates_them(tmp_path):
    from stream_worker.sinks import OnlineFeatureSink

    repo = embedded_repo(tmp_path, {"item_catalogue": catalogue_table(4)})
    apply(repo)
    sink, other_worker = OnlineFeatureSink(repo, category_ttl_s=3600), OnlineRows(open_store(repo))
    row = _catalogue("x")[1]  # category "film"
    other_worker.write(ITEM_CATALOGUE, [row])
    assert sink.categories([row["item_id"], "unknown"]) == {row["item_id"]: "film",
                                                            "unknown": None}
    other_worker.write(ITEM_CATALOGUE, [{**row, "item_category": "news",
                                         "unknown_field_ignored": 1}])
    assert sink.categories([row["item_id"]]) == {row["item_id"]: "film"}  # within the TTL
    sink.write_catalogue([{**row, "item_category": "music"}])  # this worker's update: at once
    assert sink.categories([row["item_id"]]) == {row["item_id"]: "music"}
    other_worker.write(ITEM_CATALOGUE, [{**_catalogue("x")[1], "item_id": "unknown"}])
    assert sink.categories(["unknown"]) == {"unknown": "film"}  # no category is not kept
    fresh = OnlineFeatureSink(repo, category_ttl_s=0)
    assert fresh.categories([row["item_id"]]) == {row["item_id"]: "music"}
