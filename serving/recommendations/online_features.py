"""Online features for a request, from the Feast online store (SQLite or Redis).

Guarantees: user reads return every feature of the ``retrieval`` feature service (None where
the store has no value, so an unknown user reads as all None); item reads return the item
feature and catalogue views for every id asked, in order; relative paths of the embedded
profile (SQLite online store and registry) are resolved against the repository, so the
service may run from any directory; a store failure raises :class:`FeatureStoreUnavailable`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from recsys.features.store import open_store
from recsys.features.tables import ITEM_CATALOGUE, ITEM_FEATURES, USER_FEATURES, USER_PROFILE, \
    USER_SESSION

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

    def user(self, user_id: str) -> dict[str, Any]:
        """Every user-side feature of ``user_id`` (None where unknown)."""
        table = self._read(self._user_refs, [{"user_id": user_id}])
        return {name: values[0] for name, values in table.items() if name != "user_id"}

    def items(self, item_ids: Sequence[str]) -> dict[str, list]:
        """Item-side feature columns for ``item_ids`` (in order)."""
        if not item_ids:
            return {name: [] for name in (*ITEM_FEATURES.feature_names,
                                          *ITEM_CATALOGUE.feature_names)}
        table = self._read(self._item_refs, [{"item_id": i} for i in item_ids])
        table.pop("item_id", None)
        return table

    def _read(self, refs: list[str], rows: list[dict]) -> dict[str, list]:
        try:
            return self._store.get_online_features(features=refs, entity_rows=rows).to_dict()
        except Exception as exc:  # noqa: BLE001 - any store failure is one kind for callers
            raise FeatureStoreUnavailable(f"online store read failed: {exc}") from exc


__all__ = ["OnlineFeatures", "FeatureStoreUnavailable", "open_store", "USER_VIEWS",
           "ITEM_VIEWS"]
