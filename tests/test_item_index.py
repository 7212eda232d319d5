"""The service's in-memory item index: per-item lookups and their gathered form agree."""

from __future__ import annotations

import numpy as np
import pytest

from serving.recommendations.item_index import ItemIndex


def _index() -> ItemIndex:
    vectors = np.eye(4, dtype=np.float32)
    return ItemIndex(ids=np.array(["a", "b", "c", "d"], dtype=object),
                     categories=np.array(["drama", "", "comedy", "drama"], dtype=object),
                     created_at_s=np.array([1.7e9, np.nan, 1_600_000_123.0, 0.0]),
                     vectors=vectors, version=3)


def test_categories_and_ages_equal_the_per_item_lookups():
    index = _index()
    ids = ["c", "zz", "b", "a", "d", "a", ""]
    categories, created = index.categories_and_ages(ids)
    assert categories == [index.category_of(i) for i in ids]
    assert created == [index.created_at_of(i) for i in ids]
    assert categories == ["comedy", "", "", "drama", "drama", "drama", ""]
    assert created == [1_600_000_123, None, None, 1_700_000_000, 0, 1_700_000_000, None]
    assert all(type(t) is int for t in created if t is not None)
    assert index.categories_and_ages([]) == ([], [])


def test_best_in_category_is_the_exact_nearest_not_excluded():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    categories = np.array([("drama", "comedy", "news")[i % 3] for i in range(60)], object)
    index = ItemIndex(ids=np.array([f"i{i}" for i in range(60)], dtype=object),
                      categories=categories, created_at_s=np.full(60, np.nan),
                      vectors=vectors, version=1)
    query = rng.normal(size=8).astype(np.float32)
    comedy = np.flatnonzero(categories == "comedy")
    ranked = comedy[np.argsort(-(vectors[comedy] @ query))]
    assert index.best_in_category(query, "comedy") == (f"i{ranked[0]}", pytest.approx(
        float(vectors[ranked[0]] @ query)))
    skip = {f"i{ranked[0]}", f"i{ranked[1]}"}
    assert index.best_in_category(query, "comedy", skip)[0] == f"i{ranked[2]}"
    assert index.best_in_category(query, "comedy", {f"i{r}" for r in comedy}) is None
    assert index.best_in_category(query, "opera") is None
