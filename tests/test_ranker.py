"""The transformer ranker on the small platform: rows, training, re-ranking, save -> load.
(Its quality on MovieLens is measured by the quality benchmark, not here.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from recsys.errors import ConfigError
from trainer.arrays import to_arrays
from trainer.evaluation_set import build_evaluation_set
from trainer.model_dir import ModelDir
from trainer.ranking.config import RankerConfig
from trainer.ranking.evaluate import reranked
from trainer.ranking.inputs import ranker_inputs
from trainer.ranking.samples import NegativeSampling
from trainer.ranking.train import train_ranker, training_rows, watch_targets

SMALL = RankerConfig(history_length=10, item_dim=8, feature_dim=4, ff_units=16,
                     hidden_units=(16,), epochs=2, batch_size=256)


@pytest.fixture(scope="module")
def rows(small_data, trained_model_dir, small_repo):
    _, _, two_tower = ModelDir(trained_model_dir).restore()
    return training_rows(small_data, two_tower, small_repo,
                         NegativeSampling(retrieved=2, popular=2))


@pytest.fixture(scope="module")
def trained(rows):
    return train_ranker(rows, SMALL)


def test_rows_have_negatives_and_point_in_time_features(rows, small_data):
    positives = rows[rows["label"] == 1]
    assert len(positives) == len(small_data.train)
    per_example = rows.groupby("example_index")["label"].agg(["sum", "count"])
    assert (per_example["sum"] == 1).all() and (per_example["count"] <= 5).all()
    assert per_example["count"].mean() > 4.5
    assert {"item_engagements_7d", "item_age_days", "item_category", "user_engagements_30d"} <= \
        set(rows.columns)
    targets = watch_targets(rows)
    assert (targets[rows["label"].to_numpy() == 0] == 0).all() and targets.max() <= 1


def test_training_reduces_the_loss_and_reranking_orders_candidates(trained, small_data,
                                                                  trained_model_dir,
                                                                  small_repo):
    assert trained.losses[-1] < trained.losses[0]
    _, _, two_tower = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    order = reranked(trained.model, two_tower, es, small_data.catalogue, small_repo, depth=20)
    assert order.shape == (len(es.queries), 20)
    for user, row in enumerate(order):
        valid = row[row >= 0]
        assert len(set(valid)) == len(valid)
        assert not set(valid) & set(es.exclude[user])


def test_ranker_save_load_same_output(trained, rows, tmp_path):
    model = trained.model
    specs = ranker_inputs(model.cfg)
    arrays = {k: tf.constant(v) for k, v in to_arrays(rows.head(16), specs).items()}
    expected = model(arrays)["click"].numpy()
    module = tf.Module()
    module.model = model
    module.rank = tf.function(lambda features: model(features, training=False),
                              input_signature=[{s.name: s.tensor_spec() for s in specs}])
    tf.saved_model.save(module, str(tmp_path), signatures={"rank": module.rank
                                                           .get_concrete_function()})
    loaded = tf.saved_model.load(str(tmp_path))
    np.testing.assert_allclose(loaded.signatures["rank"](**arrays)["click"].numpy(), expected,
                               atol=1e-5)


def test_ranker_config_is_checked():
    with pytest.raises(ConfigError, match="num_heads must be a positive integer"):
        RankerConfig(num_heads=0)
    with pytest.raises(ConfigError, match="dropout must be in"):
        RankerConfig(dropout=1.0)


def test_the_retrieval_score_can_be_an_input(rows):
    import dataclasses

    assert rows["retrieval_score"].between(-1.0001, 1.0001).all()
    result = train_ranker(rows, dataclasses.replace(SMALL, use_retrieval_score=True, epochs=1))
    assert np.isfinite(result.losses[0])
