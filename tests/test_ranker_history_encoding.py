"""The ranker encodes a history once per run of rows sharing it: grouping is exact, target
attention matches a NumPy oracle, and a candidate cannot change another's score."""

from __future__ import annotations

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)

# isort: split
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from recsys.errors import SourceError
from recsys.model_contract.ranker_config import RankerConfig
from trainer.layers.row_groups import consecutive_groups
from trainer.layers.target_attention import TargetAttention
from trainer.ranking.model import RankerModel, example_batch
from trainer.vocabularies import Vocabularies


def test_consecutive_groups_split_where_any_column_changes():
    ids = tf.constant([["a", "b"], ["a", "b"], ["a", "c"], ["a", "b"], ["a", "b"]])
    gaps = tf.constant([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 3.0]])
    group, first = consecutive_groups(ids, gaps)
    # rows 0-1 equal; row 2 differs by id; row 3 equals row 0 but is not next to it; row 4
    # differs from row 3 by its gap only
    assert group.numpy().tolist() == [0, 0, 1, 2, 3]
    assert first.numpy().tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("rows", [0, 1])
def test_consecutive_groups_of_zero_and_one_row(rows):
    group, first = consecutive_groups(tf.zeros([rows, 3]))
    assert group.numpy().tolist() == [0] * rows and first.numpy().tolist() == [0] * rows


def _attention_oracle(layer, candidate, memory, mask, group):
    """NumPy: softmax over [history keys where mask, own key] of the scaled query."""
    wq, bq = (w.numpy() for w in layer.query)
    wk, bk = (w.numpy() for w in layer.key)
    wv, bv = (w.numpy() for w in layer.value)
    wo, bo = (w.numpy() for w in layer.output_projection)
    out = []
    for b, g in enumerate(group):
        q = np.einsum("d,dhk->hk", candidate[b], wq) + bq
        keys = np.concatenate([np.einsum("td,dhk->thk", memory[g][mask[g]], wk) + bk,
                               (np.einsum("d,dhk->hk", candidate[b], wk) + bk)[None]])
        values = np.concatenate([np.einsum("td,dhk->thk", memory[g][mask[g]], wv) + bv,
                                 (np.einsum("d,dhk->hk", candidate[b], wv) + bv)[None]])
        scores = np.einsum("hk,thk->ht", q, keys) / np.sqrt(layer.key_dim)
        weights = np.exp(scores - scores.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        out.append(np.einsum("hkd,hk->d", wo, np.einsum("ht,thk->hk", weights, values)) + bo)
    return np.stack(out)


def test_target_attention_matches_the_numpy_oracle_and_ignores_padding():
    rng = np.random.default_rng(0)
    layer = TargetAttention(num_heads=2, ff_units=8, dropout=0.0)
    candidate = rng.normal(size=(5, 8)).astype(np.float32)
    memory = rng.normal(size=(2, 4, 8)).astype(np.float32)
    mask = np.array([[True, True, False, False], [False, False, False, False]])
    group = np.array([0, 0, 1, 0, 1], np.int32)
    out = layer(candidate, memory, mask, group).numpy()
    read = _attention_oracle(layer, candidate, memory, mask, group)
    x = layer.norm1(candidate + read)
    np.testing.assert_allclose(out, layer.norm2(x + layer.ff(x)).numpy(), atol=1e-5)
    # what sits in padded positions is never read
    garbage = memory.copy()
    garbage[~mask] = 1e3
    np.testing.assert_allclose(layer(candidate, garbage, mask, group).numpy(), out, atol=1e-5)


def _ranker(seed=0):
    cfg = RankerConfig(history_length=6, item_dim=8, feature_dim=4, ff_units=8,
                       hidden_units=(8,), candidates=4)
    vocab = Vocabularies(user_ids=[], item_ids=[], item_counts=[], categories=["a", "b"],
                         tags=["t"], languages=[], strings={}, numeric={})
    ids = [f"i{i}" for i in range(50)]
    vectors = np.random.default_rng(seed).normal(size=(50, 16)).astype(np.float32)
    model = RankerModel(cfg, vocab, ids, vectors)
    model(example_batch(cfg))
    return cfg, model


def _rows(cfg, histories, per_user, rng):
    rows = len(histories) * per_user
    batch = {k: np.repeat(v.numpy(), rows, axis=0) for k, v in example_batch(cfg).items()}
    batch["history_item_ids"] = np.repeat(np.array(histories), per_user, axis=0)
    batch["history_categories"] = np.where(batch["history_item_ids"] == "", "", "a")
    batch["history_gaps_s"] = np.repeat(rng.uniform(0, 1e5, (len(histories), cfg.history_length)),
                                        per_user, axis=0).astype(batch["history_gaps_s"].dtype)
    batch["item_id"] = np.array([f"i{rng.integers(50)}" for _ in range(rows)])
    batch["item_category"] = np.array([rng.choice(["a", "b"]) for _ in range(rows)])
    return batch


def test_a_batch_of_requests_scores_each_row_as_if_it_came_alone():
    cfg, model = _ranker()
    rng = np.random.default_rng(1)
    histories = [[f"i{rng.integers(50)}" for _ in range(6)], ["i1", "i2", "", "", "", ""],
                 [""] * 6]
    batch = _rows(cfg, histories, per_user=3, rng=rng)
    together = model(batch)
    for name in ("click", "watch"):
        alone = np.concatenate([model({k: v[i:i + 1] for k, v in batch.items()})[name].numpy()
                                for i in range(len(batch["item_id"]))])
        np.testing.assert_allclose(together[name].numpy(), alone, atol=1e-5)
    # one candidate's features do not move another's score (the history is not read through
    # the candidates, as it was when history and candidate attended to each other)
    changed = {k: v.copy() for k, v in batch.items()}
    changed["item_id"][0] = "i49"
    np.testing.assert_allclose(model(changed)["click"].numpy()[1:],
                               together["click"].numpy()[1:], atol=1e-5)


def test_restoring_a_checkpoint_without_the_models_weights_is_refused(tmp_path):
    from trainer.ranking.ranker_dir import RankerDir

    cfg, model = _ranker()
    RankerDir(tmp_path / "ranker").save(model, {"data_end_us": 0}, [])
    assert RankerDir(tmp_path / "ranker").restore().cfg == cfg
    # a checkpoint of a model that lacks the target attention (an earlier architecture)
    reader = tf.train.Checkpoint(model=tf.Module())
    reader.write(str(tmp_path / "ranker" / "checkpoint" / "ranker"))
    with pytest.raises(SourceError, match="earlier architecture.*recsys train ranking"):
        RankerDir(tmp_path / "ranker").restore()
    # weights of another shape than config.json describes (a hand-edited config)
    RankerDir(tmp_path / "other").save(model, {"data_end_us": 0}, [])
    config = json.loads((tmp_path / "other" / "config.json").read_text())
    (tmp_path / "other" / "config.json").write_text(json.dumps({**config, "ff_units": 12}))
    with pytest.raises(SourceError, match="another config than its config.json"):
        RankerDir(tmp_path / "other").restore()
    # no checkpoint at all
    shutil.rmtree(tmp_path / "other" / "checkpoint")
    with pytest.raises(SourceError, match="no checkpoint"):
        RankerDir(tmp_path / "other").restore()
