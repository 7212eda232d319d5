"""Online features for a request, from the Feast online store (SQLite or Redis).

Guarantees: user reads return every feature of the ``retrieval`` feature service (None where
the store has no value, so an unknown user reads as all None), the values Feast's
``get_online_features(...).to_dict()`` gives (a test holds them equal on SQLite and Redis),
read through the provider's ``online_read`` per view: a fifth of the cost, without the
response protobuf Feast builds and converts back; item reads return the item
feature and catalogue views for every id asked, in order; relative paths of the embedded
profile (SQLite online store and registry) are resolved against the repository, so the
service may run from any directory; a store failure raises :class:`FeatureStoreUnavailable`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from recsys.features.store import in_repo, open_store
from recsys.features.tables import (
    ITEM_CATALOGUE,
    ITEM_FEATURES,
    USER_FEATURES,
    USER_PROFILE,
    USER_SESSION,
)

USER_VIEWS = (USER_FEATURES, USER_PROFILE, USER_SESSION)
ITEM_VIEWS = (ITEM_FEATURES, ITEM_CATALOGUE)


class FeatureStoreUnavailable(Exception):
    """The online store could not be read."""


def _refs(views) -> list[str]:
    return [f"{view.name}:{name}" for view in views for name in view.feature_names]


class OnlineFeatures:
    """Reads user and item features for the recommendation service."""

    def __init__(self, repo: Path):
        self.repo = Path(repo)
        self._store = open_store(self.repo)
        self._user_refs = _refs(USER_VIEWS)
        self._item_refs = _refs(ITEM_VIEWS)
        self._user_views = None  # (provider, [(feature view, names, types)]) on first read

    def user(self, user_id: str) -> dict[str, Any]:
        """Every user-side feature of ``user_id`` (None where unknown)."""
        try:
            return self._read_user(user_id)
        except Exception as exc:  # noqa: BLE001 - any store failure is one kind for callers
            raise FeatureStoreUnavailable(f"online store read failed: {exc}") from exc

    def user_through_feast(self, user_id: str) -> dict[str, Any]:
        """What :meth:`user` gives, through Feast's ``get_online_features`` (the reference
        the tests hold it to)."""
        table = self._read(self._user_refs, [{"user_id": user_id}])
        return {name: values[0] for name, values in table.items() if name != "user_id"}

    def _read_user(self, user_id: str) -> dict[str, Any]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        if self._user_views is None:
            store = self._store
            self._user_views = (store._get_provider(), [
                (view, list(spec.feature_names),
                 {f.name: f.dtype.to_value_type() for f in view.features})
                for spec in USER_VIEWS for view in [store.get_feature_view(spec.name)]])
        provider, views = self._user_views
        key = EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=user_id)])
        out: dict[str, Any] = {}
        for view, names, types in views:
            [(_, values)] = provider.online_read(config=self._store.config, table=view,
                                                 entity_keys=[key],
                                                 requested_features=list(names))  # a
            # copy: Feast's Redis store appends its timestamp keys to the list it is given
            for name in names:
                value = None if values is None else values.get(name)
                out[name] = (None if value is None
                             else feast_value_type_to_python_type(value, types.get(name)))
        return out

    def items(self, item_ids: Sequence[str]) -> dict[str, list]:
        """Item-side feature columns for ``item_ids`` (in order)."""
        if not item_ids:
            return {name: [] for name in (*ITEM_FEATURES.feature_names,
                                          *ITEM_CATALOGUE.feature_names)}
        table = self._read(self._item_refs, [{"item_id": i} for i in item_ids])
        table.pop("item_id", None)
        return table

    def latest_items(self) -> tuple[list[str], dict[str, list]]:
        """Every item's latest row of the item views from the offline store (Feast's
        ``pull_latest_from_table_or_query``, the read materialization makes), joined on
        item_id: the ids, and the feature columns in their order (None where a view has no
        row for an item). Works from inside the repository (relative source paths): call it
        at start, not beside requests."""
        with in_repo(self.repo):
            return self._latest_items()

    def _latest_items(self) -> tuple[list[str], dict[str, list]]:
        import datetime as dt

        import pandas as pd

        frames = []
        provider = self._store._get_provider()
        for view in ITEM_VIEWS:
            feature_view = self._store.get_feature_view(view.name)
            source = feature_view.batch_source
            job = provider.offline_store.pull_latest_from_table_or_query(
                config=self._store.config, data_source=source, join_key_columns=["item_id"],
                feature_name_columns=list(view.feature_names),
                timestamp_field=source.timestamp_field,
                created_timestamp_column=source.created_timestamp_column or None,
                start_date=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
                end_date=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
            frame = job.to_df()
            frames.append(frame[["item_id", *view.feature_names]].set_index("item_id"))
        joined = pd.concat(frames, axis=1, join="outer")
        joined = joined.astype(object).where(joined.notna(), None)
        return [str(i) for i in joined.index], {
            name: joined[name].tolist() for name in joined.columns}

    def _read(self, refs: list[str], rows: list[dict]) -> dict[str, list]:
        try:
            return self._store.get_online_features(features=refs, entity_rows=rows).to_dict()
        except Exception as exc:  # noqa: BLE001 - any store failure is one kind for callers
            raise FeatureStoreUnavailable(f"online store read failed: {exc}") from exc


__all__ = ["OnlineFeatures", "FeatureStoreUnavailable", "open_store", "USER_VIEWS",
           "ITEM_VIEWS"]
