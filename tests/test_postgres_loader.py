import pyarrow.parquet as pq
import pytest

from feast_support import PG, drop_schema, require_services
from recsys.errors import FeatureStoreError
from recsys.features.postgres_loader import connection_string, load_all
from recsys.features.tables import FEATURE_TABLES


def _write_empty_tables(root):
    for name, table in FEATURE_TABLES.items():
        (root / name).mkdir(parents=True)
        pq.write_table(table.arrow_schema().empty_table(), root / name / "part-0.parquet")


def test_missing_tables_say_to_build_first(tmp_path):
    with pytest.raises(FeatureStoreError, match=r"lacks the feature tables \['user_features'"):
        load_all(connection_string(**PG), "x", tmp_path)


def test_unreachable_database_is_named(tmp_path):
    _write_empty_tables(tmp_path)
    dsn = connection_string("127.0.0.1", 1, "postgres", "postgres", "")
    with pytest.raises(FeatureStoreError, match="cannot connect to the PostgreSQL offline store "
                                                r"\(host=127.0.0.1 port=1 "):
        load_all(dsn, "x", tmp_path)


@pytest.mark.services
def test_load_replaces_tables(tmp_path):
    require_services()
    _write_empty_tables(tmp_path)
    schema = "loader_test_schema"
    try:
        assert load_all(connection_string(**PG), schema, tmp_path) == {
            name: 0 for name in FEATURE_TABLES}
        assert load_all(connection_string(**PG), schema, tmp_path)["user_features"] == 0
    finally:
        drop_schema(schema)
