"""The chunked two-tower ranking equals ranking the full users x candidates score matrix."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("age_resolution_days", [30.0, 1.0])
def test_chunked_top_k_equals_the_full_matrix(trained_model_dir, small_data,
                                              age_resolution_days):
    from recsys.evaluation import top_k
    from trainer.evaluate import two_tower_scores, two_tower_top_k
    from trainer.evaluation_set import build_evaluation_set
    from trainer.model_dir import ModelDir

    _, _, model = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    n = len(es.candidates)
    assert len(es.queries) > 7
    full = two_tower_scores(model, es, age_resolution_days)
    want = top_k(full, 20, es.exclude)
    ranked, scores = two_tower_top_k(model, es, 20, age_resolution_days, max_cells=3 * n)
    np.testing.assert_array_equal(ranked, want)
    np.testing.assert_allclose(
        scores, np.where(want >= 0, np.take_along_axis(full, np.maximum(want, 0), axis=1),
                         np.nan), rtol=1e-6, atol=1e-6)
    for row, excluded in enumerate(es.exclude):
        assert not np.isin(ranked[row], excluded).any()


def test_a_depth_beyond_the_candidates_is_refused(trained_model_dir, small_data):
    from trainer.evaluate import two_tower_top_k
    from trainer.evaluation_set import build_evaluation_set
    from trainer.model_dir import ModelDir

    _, _, model = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    with pytest.raises(ValueError, match="larger than the number of candidate items"):
        two_tower_top_k(model, es, len(es.candidates) + 1)


def test_candidate_vectors_per_age_bucket_equal_the_whole_tower_on_strings(trained_model_dir,
                                                                           small_data):
    """The strings are looked up once and each bucket runs only the numeric core: the vectors
    are the tower's own on that bucket's rows, and every query row is in one bucket."""
    from recsys.model_contract.arrays import US_PER_DAY, to_arrays, with_item_age
    from recsys.model_contract.feature_spec import candidate_inputs
    from trainer.evaluate import candidate_vectors_by_age, embed
    from trainer.evaluation_set import build_evaluation_set
    from trainer.model_dir import ModelDir

    _, _, model = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    step = int(1.0 * US_PER_DAY)
    seen = []
    for rows, vectors in candidate_vectors_by_age(model, es, 1.0):
        bucket = int(es.request_times_us[rows[0]] // step * step)
        assert np.all(es.request_times_us[rows] // step * step == bucket)
        want = embed(model.candidate_tower, to_arrays(with_item_age(es.candidates, bucket),
                                                      candidate_inputs(model.cfg), "c"))
        np.testing.assert_allclose(vectors, want, rtol=1e-5, atol=1e-6)
        seen.extend(rows)
    assert sorted(seen) == list(range(len(es.queries)))
