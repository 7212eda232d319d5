"""Embedded profile: the feature tables are Parquet files written by `recsys features build`
into data/ beside this file, read by DuckDB. Paths are relative to this directory, where feast
runs (see feature_store.yaml)."""

from feast import FileSource
from feast.data_format import ParquetFormat

from recsys.features.definitions import Sources, build_definitions

user_features_source = FileSource(
    name="user_features_source", path="data/user_features/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")
item_features_source = FileSource(
    name="item_features_source", path="data/item_features/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")
item_catalogue_source = FileSource(
    name="item_catalogue_source", path="data/item_catalogue/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")
user_profile_source = FileSource(
    name="user_profile_source", path="data/user_profile/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")
user_session_source = FileSource(
    name="user_session_source", path="data/user_session/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")

item_stream_source = FileSource(
    name="item_stream_source", path="data/item_stream/*.parquet",
    file_format=ParquetFormat(), timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp")

_definitions = build_definitions(Sources(
    user_features=user_features_source, item_features=item_features_source,
    item_catalogue=item_catalogue_source, user_profile=user_profile_source,
    user_session=user_session_source, item_stream=item_stream_source))

user = _definitions.user
item = _definitions.item
user_session_push = _definitions.user_session_push
item_stream_push = _definitions.item_stream_push
user_features = _definitions.user_features
item_features = _definitions.item_features
item_catalogue = _definitions.item_catalogue
user_profile = _definitions.user_profile
user_session = _definitions.user_session
item_stream = _definitions.item_stream
retrieval = _definitions.retrieval
ranking = _definitions.ranking
