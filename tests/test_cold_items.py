"""New items: the item tower embeds them from their features (a real SavedModel), the
category centroid stands in when the tower is down, and the learned embedding takes over as
interactions grow."""

from __future__ import annotations

import numpy as np
import pytest

from serving.recommendations.cold_items import blend, new_item_embedding
from serving.recommendations.config import ServiceConfig
from serving.recommendations.service import build_recommender, latest_manifest
from trainer.config import RetrievalConfig


def test_blend_moves_from_content_to_learned():
    content, learned = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert np.allclose(blend(content, None, 100), [1.0, 0.0])
    assert np.allclose(blend(None, learned, 0), [0.0, 1.0])
    start, middle, late = (blend(content, learned, n) for n in (0, 20, 2000))
    assert np.allclose(start, [1.0, 0.0])
    assert np.allclose(middle, np.array([1.0, 1.0]) / np.sqrt(2))  # n == half_point
    assert late[1] > 0.99
    assert blend(None, None, 5) is None
    for vector in (middle, late):
        assert np.linalg.norm(vector) == pytest.approx(1.0)


class _Down:
    def predict(self, *args, **kwargs):
        raise ConnectionError("model server down")


def test_a_new_item_is_embedded_by_the_tower_or_its_category_centroid(service_files):
    service = build_recommender(ServiceConfig(repo=service_files.repo,
                                              model_base_path=service_files.base))
    try:
        manifest = latest_manifest(service_files.base, "item_tower")
        cfg = RetrievalConfig.from_dict({"model": manifest["model_config"]}).model
        category = str(service.index.categories[0])
        item = {"item_id": "brand-new", "item_category": category, "item_language": "en",
                "item_tags": ["t1"], "item_created_at_s": 1_790_000_000}
        reference = 1_790_100_000 * 1_000_000
        vector, origin = new_item_embedding(service.index, service.models, cfg, item, reference)
        assert origin == "item tower" and vector.shape == (service.index.vectors.shape[1],)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
        assert not np.allclose(vector, service.index.centroids[category])
        fallback, origin = new_item_embedding(service.index, _Down(), cfg, item, reference)
        assert origin == "category centroid"
        assert np.allclose(fallback, service.index.centroids[category])
        learned = service.index.vectors[5]
        mixed, origin = new_item_embedding(service.index, service.models, cfg, item, reference,
                                           learned=learned, interactions=20)
        assert origin == "item tower blended with the learned embedding (20 interactions)"
        assert float(mixed @ learned) > float(vector @ learned)
    finally:
        service.close()
        service.models.close()
