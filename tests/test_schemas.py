import pyarrow as pa

from recsys.data.schemas import (EVENTS, INGESTED_AT, ITEMS, SCHEMA_VERSION, TABLES, TIMESTAMP,
                                 USERS)


def test_every_schema_records_its_name_and_version():
    for name, spec in TABLES.items():
        meta = spec.schema.metadata
        assert meta[b"recsys.table"] == name.encode()
        assert meta[b"recsys.schema_version"] == str(SCHEMA_VERSION).encode()


def test_required_fields():
    assert EVENTS.required == ("event_id", "user_id", "item_id", "event_type", "timestamp")
    assert ITEMS.required == ("item_id",)
    assert USERS.required == ("user_id",)  # every profile field is optional


def test_timestamps_are_utc_microseconds():
    for spec in TABLES.values():
        for f in spec.schema:
            if pa.types.is_timestamp(f.type):
                assert f.type == TIMESTAMP == pa.timestamp("us", tz="UTC")


def test_ingested_at_is_lake_owned():
    for spec in TABLES.values():
        assert INGESTED_AT in spec.schema.names
        assert INGESTED_AT not in spec.input_columns


def test_keys():
    assert (EVENTS.key, ITEMS.key, USERS.key) == ("event_id", "item_id", "user_id")
