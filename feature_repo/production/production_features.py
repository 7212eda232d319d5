"""Production profile: the feature tables live in PostgreSQL (loaded by `recsys features build
--profile production`); the online store is Redis. Same views as the embedded profile."""

from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
    PostgreSQLSource,
)

from recsys.features.definitions import Sources, build_definitions

user_features_source = PostgreSQLSource(
    name="user_features_source", query="SELECT * FROM user_features",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
item_features_source = PostgreSQLSource(
    name="item_features_source", query="SELECT * FROM item_features",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
item_catalogue_source = PostgreSQLSource(
    name="item_catalogue_source", query="SELECT * FROM item_catalogue",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
user_profile_source = PostgreSQLSource(
    name="user_profile_source", query="SELECT * FROM user_profile",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")
user_session_source = PostgreSQLSource(
    name="user_session_source", query="SELECT * FROM user_session",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")

item_stream_source = PostgreSQLSource(
    name="item_stream_source", query="SELECT * FROM item_stream",
    timestamp_field="event_timestamp", created_timestamp_column="created_timestamp")

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
