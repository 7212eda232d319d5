"""Training the two-tower model on a small platform built through the real path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from retrieval_support import small_config

from recsys.errors import ConfigError, SchemaError, SourceError
from recsys.model_contract.arrays import to_arrays
from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from trainer.model_dir import ModelDir
from trainer.strategy import make_strategy
from trainer.train import train_retrieval
from trainer.training_data import RetrievalData, load_retrieval_data


def _weights(model_dir):
    _, _, model = ModelDir(model_dir).restore()
    sample = _queries(model)
    model.query_tower(sample)
    return [w.numpy() for w in model.query_tower.weights]


def _queries(model, **values):
    frame = pd.DataFrame({s.name: [s.missing if s.width is None else []]
                          for s in query_inputs(model.cfg)})
    for name, value in values.items():
        frame[name] = [value]
    return {k: tf.constant(v) for k, v in to_arrays(frame, query_inputs(model.cfg)).items()}


def test_loss_decreases_and_the_run_is_recorded(small_data, tmp_path):
    result = train_retrieval(small_data, small_config(epochs=4), tmp_path / "m", progress=False)
    assert result.epochs_run == 4
    assert result.losses[-1] < 0.9 * result.losses[0], result.losses
    assert result.examples == len(small_data.train) > 1000
    assert result.examples_per_second > 0
    directory = ModelDir(tmp_path / "m")
    assert (directory.path / "loss.png").stat().st_size > 0
    assert list((directory.logs / "train").glob("events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(directory.checkpoints).endswith("ckpt-4")


def test_same_seed_same_weights_other_seed_other_weights(small_data, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train_retrieval(small_data, small_config(epochs=1, seed=seed), tmp_path / name,
                        progress=False)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_a_rerun_resumes_after_the_last_checkpoint(small_data, tmp_path):
    train_retrieval(small_data, small_config(epochs=1), tmp_path / "m", progress=False)
    resumed = train_retrieval(small_data, small_config(epochs=3), tmp_path / "m",
                              progress=False)
    assert resumed.epochs_run == 2  # epochs 2 and 3 only
    history = (tmp_path / "m" / "history.json").read_text()
    assert '"initial_epoch": 1' in history


def test_a_rerun_of_a_finished_run_trains_nothing_and_does_not_fail(small_data, tmp_path):
    """A run that checkpointed its last epoch and stopped before it finished (killed) is
    rerun: everything is in the checkpoint, so nothing is trained (Keras refused the fit of
    zero epochs on a model whose weights were still waiting for the deferred restore)."""
    train_retrieval(small_data, small_config(epochs=2), tmp_path / "m", progress=False)
    again = train_retrieval(small_data, small_config(epochs=2), tmp_path / "m",
                            progress=False)
    assert again.epochs_run == 0
    assert '"initial_epoch": 2' in (tmp_path / "m" / "history.json").read_text()


def test_another_model_config_in_the_same_directory_is_refused(small_data, tmp_path):
    train_retrieval(small_data, small_config(epochs=1), tmp_path / "m", progress=False)
    other = small_config(epochs=1)
    other = type(other)(model=type(other.model)(**{**other.model.__dict__,
                                                   "embedding_dim": 8}), train=other.train)
    with pytest.raises(ConfigError, match="another model config"):
        train_retrieval(small_data, other, tmp_path / "m", progress=False)


def test_mirrored_strategy_trains(small_data, tmp_path):
    result = train_retrieval(small_data, small_config(epochs=1, strategy="mirrored"),
                             tmp_path / "m", progress=False)
    assert result.epochs_run == 1 and np.isfinite(result.losses[0])


def test_multi_worker_strategy_needs_tf_config():
    with pytest.raises(ConfigError, match="needs the TF_CONFIG"):
        make_strategy("multi_worker_mirrored", tf_config="")
    with pytest.raises(ConfigError, match="not a valid cluster description"):
        make_strategy("multi_worker_mirrored", tf_config='{"task": {}}')


def test_unseen_users_and_items_get_valid_embeddings(trained_model_dir):
    _, vocab, model = ModelDir(trained_model_dir).restore()
    known_user = vocab.user_ids[0]
    queries = [_queries(model, user_id="never-seen-user"),
               _queries(model, user_id="never-seen-user",
                        history_item_ids=["never-seen-item", vocab.item_ids[0]]),
               _queries(model, user_id=known_user)]
    embeddings = [model.query_tower(q).numpy()[0] for q in queries]
    for e in embeddings:
        assert np.all(np.isfinite(e)) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(embeddings[0], embeddings[2])

    items = pd.DataFrame({"item_id": ["never-seen-item", "never-seen-item", vocab.item_ids[0]],
                          "item_category": [vocab.categories[0], vocab.categories[1],
                                            vocab.categories[0]],
                          "item_language": ["", "", ""], "item_tags": [[], [], []],
                          "item_age_days": [1.0, 1.0, 1.0]})
    arrays = to_arrays(items, candidate_inputs(model.cfg))
    out = model.candidate_tower({k: tf.constant(v) for k, v in arrays.items()}).numpy()
    assert np.all(np.isfinite(out))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1]), "content must move an unseen item's embedding"


def test_missing_training_inputs_are_named(small_data, tmp_path):
    broken = RetrievalData(train=small_data.train.drop(columns=["history_item_ids"]),
                           test=small_data.test, catalogue=small_data.catalogue)
    with pytest.raises(SchemaError, match="lacks column\\(s\\) history_item_ids"):
        train_retrieval(broken, small_config(epochs=1), tmp_path / "m", progress=False)
    with pytest.raises(SourceError, match="no 'split' column"):
        load_retrieval_data(tmp_path, small_data.train.drop(columns=["split"]))


def test_a_repository_without_features_says_to_build_them(tmp_path):
    with pytest.raises(Exception, match="recsys features build"):
        load_retrieval_data(tmp_path)


def test_restoring_a_directory_that_is_not_a_model_says_so(tmp_path):
    with pytest.raises(SourceError, match="not a model directory"):
        ModelDir(tmp_path).restore()


def test_example_weights_weigh_each_examples_loss(small_data, trained_model_dir):
    from trainer.retrieval_model import EXAMPLE_WEIGHT, SAMPLING_PROBABILITY
    from trainer.train import sampling_probability
    from trainer.training_data import with_content

    cfg, _, model = ModelDir(trained_model_dir).restore()
    frame = with_content(small_data.train.head(8), small_data.catalogue)
    features = {**to_arrays(frame, query_inputs(cfg.model)),
                **to_arrays(frame, candidate_inputs(cfg.model))}
    features[SAMPLING_PROBABILITY] = sampling_probability(features["item_id"])

    def loss(weights=None):
        given = dict(features)
        if weights is not None:
            given[EXAMPLE_WEIGHT] = np.asarray(weights, np.float32)
        return float(model.compute_loss({k: tf.constant(v) for k, v in given.items()}))

    first, last = [1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4
    assert loss(first) + loss(last) == pytest.approx(loss([1.0] * 8), rel=1e-5)
    assert loss([1.0] * 8) == pytest.approx(loss(), rel=1e-5)
    assert loss([3.0] * 8) == pytest.approx(3 * loss(), rel=1e-5)
    assert loss(first) != pytest.approx(loss(last), rel=1e-3)


def test_weighted_training_learns_other_weights_and_refuses_bad_ones(small_data, tmp_path):
    from trainer.train import mean_one

    weighted = RetrievalData(
        train=small_data.train.assign(example_weight=np.random.default_rng(0).uniform(
            0.5, 4.0, len(small_data.train))), test=small_data.test,
        catalogue=small_data.catalogue)
    for name, data in (("plain", small_data), ("weighted", weighted)):
        train_retrieval(data, small_config(epochs=1), tmp_path / name, progress=False)
    plain, other = _weights(tmp_path / "plain"), _weights(tmp_path / "weighted")
    assert not all(np.allclose(x, y) for x, y in zip(plain, other))
    assert mean_one(np.array([1.0, 3.0])).tolist() == [0.5, 1.5]
    for bad in ([1.0, np.nan], [1.0, -1.0], [0.0, 0.0], []):
        with pytest.raises(ValueError, match="example weights must be finite"):
            mean_one(np.array(bad))


def test_forgetting_users_starts_every_known_user_as_the_unknown_one(trained_model_dir):
    from trainer.train import forget_users

    _, vocab, model = ModelDir(trained_model_dir).restore()
    model.query_tower(_queries(model))
    table = model.query_tower.user.embedding.embeddings
    before = table.numpy()
    assert not np.allclose(before[2:], before[1])  # trained: users differ
    assert forget_users(model) == len(before) - 2 == len(vocab.user_ids)
    after = table.numpy()
    assert np.array_equal(after[:2], before[:2])  # padding and unknown rows kept
    assert np.array_equal(after[2:], np.repeat(before[1:2], len(before) - 2, axis=0))


def test_mined_negatives_come_from_each_querys_top_in_the_refreshed_index(small_data,
                                                                          tmp_path):
    import dataclasses

    from trainer.retrieval_model import TwoTowerModel
    from trainer.train import _catalogue_arrays

    base = small_config(epochs=1)
    cfg = dataclasses.replace(base, model=base.model.replace(
        num_random_negatives=16, num_hard_negatives=8, num_index_negatives=32,
        index_negative_depth=5))
    result = train_retrieval(small_data, cfg, tmp_path / "m", progress=False)
    assert np.isfinite(result.losses).all()
    _, vocab, restored = ModelDir(tmp_path / "m").restore()  # serving needs no index
    assert restored.index is None
    # the index holds every catalogue item's candidate vector; each mined item is in its
    # query's top 5 there, after the uniform draws
    catalogue = _catalogue_arrays(small_data, cfg, vocab)
    model = TwoTowerModel(cfg.model, vocab, catalogue)
    model.refresh_index()
    direct = model.candidate_tower({k: tf.constant(v) for k, v in catalogue.items()},
                                   training=False).numpy()
    np.testing.assert_allclose(model.index.numpy(), direct, atol=1e-5)
    queries = tf.random.normal([40, cfg.model.embedding_dim], seed=3)
    extra, count = model._extra_negatives(queries)
    assert int(count) == 16 + 32
    top = np.argsort(-(queries.numpy()[:32] @ direct.T), axis=1)[:, :5]
    mined = extra["item_id"].numpy()[16:]
    for row, item in enumerate(mined):
        assert item.decode() in set(catalogue["item_id"][top[row]]), row


def test_a_users_other_training_positives_are_not_its_negatives(small_data, tmp_path):
    """mask_user_positives: a candidate that the query's user has a training positive for
    is left out of that query's negatives (False in the mask), except the query's own
    positive; the mask equals the pairs looked up one by one, and training with it learns."""
    import dataclasses

    from trainer.retrieval_model import TwoTowerModel
    from trainer.train import _catalogue_arrays, user_numbers

    base = small_config(epochs=3)
    cfg = dataclasses.replace(base, model=base.model.replace(
        mask_user_positives=True, num_random_negatives=32, num_hard_negatives=16,
        num_index_negatives=16))
    result = train_retrieval(small_data, cfg, tmp_path / "m", progress=False)
    assert np.isfinite(result.losses).all() and result.losses[-1] < result.losses[0]
    # the mask reaches the loss: the same seed without it trains other weights
    unmasked = dataclasses.replace(cfg, model=cfg.model.replace(mask_user_positives=False))
    train_retrieval(small_data, unmasked, tmp_path / "u", progress=False)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(tmp_path / "m"),
                                                        _weights(tmp_path / "u")))
    _, vocab, _ = ModelDir(tmp_path / "m").restore()
    model = TwoTowerModel(cfg.model, vocab, _catalogue_arrays(small_data, cfg, vocab))
    queries, candidates = small_data.train_arrays(cfg.model)
    encoded = model.encode({**queries, **candidates})
    numbers = user_numbers(queries["user_id"])  # what training keys the mask by
    pairs = set(zip(numbers.tolist(), encoded["item_id"].tolist()))
    rows = np.random.default_rng(5).permutation(len(numbers))[:128]
    users = np.append(numbers[rows], numbers.max() + 1)  # and a user never seen: no mask
    ids = np.concatenate([encoded["item_id"][rows], [0, 1],
                          np.arange(2, len(vocab.item_ids) + 2)])
    expected = np.array([[(u, i) not in pairs or r == c for c, i in enumerate(ids)]
                         for r, u in enumerate(users.tolist())])
    assert (~expected).sum() > 128  # each user's other positives are among the candidates
    assert expected[-1].all()
    for dense_limit in (1 << 26, 0):  # a [users, items] table; per-user lists
        model.set_user_positives(numbers, encoded["item_id"], dense_limit)
        mask = model._negatives_mask(tf.constant(users), tf.constant(ids)).numpy()
        np.testing.assert_array_equal(mask, expected)


def test_the_mask_keeps_users_apart_when_they_share_the_unknown_id_row(small_data, tmp_path):
    """Without id rows every user looks up the one "unknown" row; the positives' mask must
    still be each user's own (pooled, every item anyone liked stops being a negative and the
    model learns nothing): masked, the model finds the training positives about as well as
    unmasked, and far better than chance."""
    import dataclasses

    from trainer.evaluate import embed
    from trainer.train import _catalogue_arrays

    base = small_config(epochs=3)
    found = {}
    for masked in (False, True):
        cfg = dataclasses.replace(base, model=base.model.replace(
            user_id_embedding=False, mask_user_positives=masked, num_random_negatives=32))
        train_retrieval(small_data, cfg, tmp_path / str(masked), progress=False)
        _, vocab, model = ModelDir(tmp_path / str(masked)).restore()
        queries, candidates = small_data.train_arrays(model.cfg)
        rows = np.random.default_rng(3).permutation(len(candidates["item_id"]))[:500]
        catalogue = _catalogue_arrays(small_data, cfg, vocab)
        scores = (embed(model.query_tower, {k: v[rows] for k, v in queries.items()})
                  @ embed(model.candidate_tower, catalogue).T)
        top = np.argsort(-scores, axis=1)[:, :20]
        items = catalogue["item_id"][top]
        found[masked] = np.mean([candidates["item_id"][r] in set(items[i])
                                 for i, r in enumerate(rows)])
    chance = 20 / len(catalogue["item_id"])
    assert found[False] > 3 * chance, found
    assert found[True] > 0.5 * found[False], found


def test_a_stronger_logq_correction_ranks_popular_items_higher(small_data, tmp_path):
    """logq_correction above 1 is a popularity prior: the items' mean score over real
    queries follows their share of the training positives more closely than with none."""
    import dataclasses

    from scipy.stats import spearmanr

    from trainer.evaluate import embed
    from trainer.train import _catalogue_arrays

    base = small_config(epochs=2)
    correlations = {}
    for strength in (0.0, 3.0):
        cfg = dataclasses.replace(base, model=base.model.replace(logq_correction=strength))
        train_retrieval(small_data, cfg, tmp_path / str(strength), progress=False)
        _, vocab, model = ModelDir(tmp_path / str(strength)).restore()
        queries, _ = small_data.train_arrays(model.cfg)
        catalogue = _catalogue_arrays(small_data, cfg, vocab)
        sample = {k: v[:400] for k, v in queries.items()}
        scores = embed(model.query_tower, sample) @ embed(model.candidate_tower, catalogue).T
        counts = small_data.train["item_id"].value_counts()
        positives = counts.reindex(catalogue["item_id"]).fillna(0).to_numpy()
        correlations[strength] = spearmanr(scores.mean(axis=0), positives).correlation
    assert correlations[3.0] > correlations[0.0] + 0.5, correlations


def test_an_ensemble_trains_each_member_and_scores_by_their_mean_cosine(small_data, tmp_path):
    import dataclasses

    from trainer.ensemble_tower import tower_members
    from trainer.evaluate import embed
    from trainer.train import _catalogue_arrays, forget_users

    base = small_config(epochs=1)
    cfg = dataclasses.replace(base, model=base.model.replace(ensemble_members=3))
    result = train_retrieval(small_data, cfg, tmp_path / "m", progress=False)
    assert np.isfinite(result.losses).all()
    _, vocab, model = ModelDir(tmp_path / "m").restore()
    queries, _ = small_data.train_arrays(model.cfg)
    sample = {k: v[:50] for k, v in queries.items()}
    catalogue = _catalogue_arrays(small_data, cfg, vocab)
    q = embed(model.query_tower, sample)
    c = embed(model.candidate_tower, catalogue)
    dim = cfg.model.embedding_dim
    assert q.shape[1] == c.shape[1] == 3 * dim == cfg.model.output_dim
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    members = [(embed(qm, sample), embed(cm, catalogue)) for qm, cm in
               zip(tower_members(model.query_tower), tower_members(model.candidate_tower))]
    np.testing.assert_allclose(q @ c.T, np.mean([a @ b.T for a, b in members], axis=0),
                               atol=1e-5)
    # independently initialised members: different weights, different scores
    assert not np.allclose(members[0][0], members[1][0], atol=1e-3)
    forget_users(model)
    for member in tower_members(model.query_tower):
        table = member.user.embedding.embeddings.numpy()
        assert np.array_equal(table[2:], np.repeat(table[1:2], len(table) - 2, axis=0))


def test_each_ensemble_member_learns_at_its_own_temperature(small_data):
    import tensorflow_recommenders as tfrs

    from trainer.ensemble_tower import split_members
    from trainer.retrieval_model import SAMPLING_PROBABILITY, TwoTowerModel
    from trainer.train import sampling_probability
    from trainer.training_data import with_content
    from trainer.vocabularies import Vocabularies

    base = small_config()
    frame = with_content(small_data.train.head(64), small_data.catalogue)
    queries = to_arrays(frame, query_inputs(base.model))
    candidates = to_arrays(frame, candidate_inputs(base.model))
    vocab = Vocabularies.build(queries, candidates, query_inputs(base.model))
    features = {**queries, **candidates}
    features[SAMPLING_PROBABILITY] = sampling_probability(features["item_id"])
    batch = {k: tf.constant(v) for k, v in features.items()}

    def model_at(temperatures):
        tf.keras.utils.set_random_seed(3)  # the same initial weights for every model
        cfg = base.model.replace(ensemble_members=2, member_temperatures=temperatures)
        return TwoTowerModel(cfg, vocab)

    mixed, swapped, shared = model_at((0.05, 0.5)), model_at((0.5, 0.05)), model_at(())
    loss = float(mixed.compute_loss(batch))
    queries = split_members(mixed.query_tower(batch), 2)
    candidates = split_members(mixed.candidate_tower(batch), 2)
    inclusion = tf.minimum(batch[SAMPLING_PROBABILITY] * 64.0, 1.0)
    expected = sum(float(tfrs.tasks.Retrieval(temperature=t, remove_accidental_hits=True)(
        q, c, candidate_sampling_probability=inclusion, candidate_ids=batch["item_id"],
        compute_metrics=False)) for t, q, c in zip((0.05, 0.5), queries, candidates))
    assert loss == pytest.approx(expected, rel=1e-5)
    # the same weights: another member order, or every member at the shared 0.05, differ
    assert float(swapped.compute_loss(batch)) != pytest.approx(loss, rel=1e-3)
    assert shared.cfg.temperatures == (0.05, 0.05)
    assert float(shared.compute_loss(batch)) != pytest.approx(loss, rel=1e-3)


def test_an_ensemble_exports_with_an_onnx_query_core_of_its_width(small_data, small_repo,
                                                                   tmp_path):
    import dataclasses

    from recsys.features.catalogue import read_catalogue
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.onnx_query import OnnxQueryTower
    from trainer.export import export_models
    from trainer.scann_config import ScannConfig

    base = small_config(epochs=1)
    cfg = dataclasses.replace(base, model=base.model.replace(ensemble_members=2))
    train_retrieval(small_data, cfg, tmp_path / "m", progress=False)
    directory = ModelDir(tmp_path / "m")
    _, _, model = directory.restore()
    export_models(model, read_catalogue(small_repo / "data"), directory.data_end_us(),
                  tmp_path / "models", k=10, scann=ScannConfig(min_recall=0.9),
                  queries=small_data.train.sample(100, random_state=0))
    path = tmp_path / "models" / "retrieval" / "1"
    assert read_manifest(path)["embedding_dim"] == 2 * cfg.model.embedding_dim
    queries, _ = small_data.train_arrays(model.cfg)
    sample = {k: v[:20] for k, v in queries.items()}
    served = tf.saved_model.load(str(path)).signatures["query_embedding"](
        **{k: tf.constant(v) for k, v in sample.items()})["embedding"].numpy()
    assert served.shape == (20, 2 * cfg.model.embedding_dim)
    np.testing.assert_allclose(served, model.query_tower(
        {k: tf.constant(v) for k, v in sample.items()}).numpy(), atol=1e-5)
    np.testing.assert_allclose(OnnxQueryTower(path).embed(sample), served, atol=1e-4)


def test_an_empty_training_set_is_refused_by_name(small_data, tmp_path):
    empty = RetrievalData(train=small_data.train.head(0), test=small_data.test,
                          catalogue=small_data.catalogue)
    with pytest.raises(SourceError, match="no training examples: the training set is empty"):
        train_retrieval(empty, small_config(epochs=1), tmp_path / "m", progress=False)
