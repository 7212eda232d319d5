"""The transformer ranker on the small platform: stacking lists, listwise training, re-ranking,
save -> restore. (Its quality on MovieLens is measured by the quality benchmark, not here.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from retrieval_support import small_ranker_config

from recsys.errors import ConfigError, SourceError
from recsys.model_contract.arrays import to_arrays, with_missing_columns
from recsys.model_contract.ranker_config import RankerConfig, load_ranker_config
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE, ranker_inputs
from trainer.evaluation_set import build_evaluation_set
from trainer.model_dir import ModelDir
from trainer.ranking.evaluate import reranked
from trainer.ranking.ranker_dir import RankerDir
from trainer.ranking.stacking import split_by_time
from trainer.ranking.train import listwise_loss
from trainer.ranking.workflow import stacking_config

SMALL = small_ranker_config()


@pytest.fixture(scope="module")
def ranking(trained_ranker):
    return trained_ranker


def test_split_by_time_holds_each_users_latest_interactions():
    ts = pd.to_datetime([1, 2, 3, 4, 5, 6, 7, 1], unit="D", utc=True)
    train = pd.DataFrame({"user_id": list("aaaaaaab"), "item_id": list("pqrstuvw"),
                          "event_timestamp": ts, "example_id": [f"e{i}" for i in range(8)]})
    fit, held = split_by_time(train, 0.3)
    assert sorted(held["item_id"]) == ["u", "v", "w"]  # floor(0.3 * 7) = 2; b: max(1, 0)
    assert sorted(fit["item_id"]) == list("pqrst")
    assert fit["event_timestamp"].is_monotonic_increasing


def test_listwise_loss_is_softmax_cross_entropy_over_each_list():
    logits = tf.constant([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    labels = tf.constant([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    log_p = tf.nn.log_softmax(logits[0]).numpy()
    expected = -(0.5 * log_p[0] + 0.5 * log_p[1])  # the list without a positive counts nothing
    assert float(listwise_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_training_writes_a_ranker_that_restores_with_the_same_scores(ranking, small_data,
                                                                    trained_model_dir):
    assert ranking.lists > 0 and ranking.positives > 0
    assert len(ranking.losses) == SMALL.epochs and ranking.losses[-1] < ranking.losses[0]
    directory = RankerDir(ranking.ranker_dir)
    assert (directory.path / "loss.png").is_file()
    assert (directory.stacking_model_dir / "config.json").is_file()
    stacking = ModelDir(directory.stacking_model_dir).read_config()
    retrieval = ModelDir(trained_model_dir).read_config()
    assert retrieval.train.epochs == 2 and stacking.model == retrieval.model
    assert stacking.train.epochs == 1  # stacking_epochs; the rest is the retrieval model's
    restored = directory.restore()
    frame = small_data.test.head(8).assign(item_tags=[["t"]] * 8, item_age_days=1.0)
    frame[RETRIEVAL_SCORE] = np.linspace(-1, 1, 8, dtype=np.float32)
    frame = with_missing_columns(frame, ranker_inputs(SMALL))
    arrays = {k: tf.constant(v) for k, v in to_arrays(frame, ranker_inputs(SMALL)).items()}
    again = directory.restore()(arrays)["click"].numpy()
    np.testing.assert_allclose(restored(arrays)["click"].numpy(), again, atol=1e-6)
    assert np.std(again) > 0  # the inputs matter


def test_stacking_config_caps_epochs_and_ensemble_members_and_keeps_the_rest():
    from trainer.config import RetrievalConfig

    retrieval = RetrievalConfig()
    retrieval = dataclasses.replace(
        retrieval, model=dataclasses.replace(retrieval.model, ensemble_members=3,
                                             temperature=0.07),
        train=retrieval.train.replace(epochs=8))
    stacking = stacking_config(retrieval, RankerConfig(stacking_epochs=4, stacking_members=1))
    assert (stacking.train.epochs, stacking.model.ensemble_members) == (4, 1)
    assert stacking.model.temperature == 0.07 and stacking.train.seed == retrieval.train.seed
    # a cap above the retrieval model's own leaves it; None keeps the retrieval model's
    assert stacking_config(retrieval, RankerConfig(stacking_epochs=20, stacking_members=5)
                           ) == retrieval
    assert stacking_config(retrieval, RankerConfig(stacking_epochs=None,
                                                   stacking_members=None)) == retrieval
    # members at their own temperatures: the stacking model's are the first members'
    mixed = dataclasses.replace(retrieval, model=retrieval.model.replace(
        member_temperatures=(0.05, 0.15, 0.1)))
    two = stacking_config(mixed, RankerConfig(stacking_members=2)).model
    assert (two.ensemble_members, two.temperatures) == (2, (0.05, 0.15))
    assert stacking_config(mixed, RankerConfig(stacking_members=1)).model.temperatures == (0.05,)


def test_reranking_orders_the_two_tower_candidates(ranking, small_data, trained_model_dir,
                                                   small_repo):
    _, _, two_tower = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    order = reranked(RankerDir(ranking.ranker_dir).restore(), two_tower, es,
                     small_data.catalogue, small_repo, depth=20)
    assert order.shape == (len(es.queries), 20)
    for user, row in enumerate(order):
        valid = row[row >= 0]
        assert len(set(valid)) == len(valid)
        assert not set(valid) & set(es.exclude[user])


def test_ranker_config_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="num_heads must be a positive integer"):
        RankerConfig(num_heads=0)
    with pytest.raises(ConfigError, match=r"dropout must be a number in \[0, 1\)"):
        RankerConfig(dropout=1.0)
    with pytest.raises(ConfigError,
                       match=r"holdout_fraction must be a number in \(0, 1\), got 1.0"):
        RankerConfig(holdout_fraction=1.0)
    with pytest.raises(ConfigError, match="max_lists must be None or a positive integer"):
        RankerConfig(max_lists=0)
    with pytest.raises(ConfigError, match="stacking_epochs must be None or a positive integer"):
        RankerConfig(stacking_epochs=0)
    for bad in (0, -1, 1.5, "one"):
        with pytest.raises(ConfigError, match="stacking_members must be None or a positive"):
            RankerConfig(stacking_members=bad)
    path = tmp_path / "ranker.yaml"
    path.write_text("epochs: 2\nhidden_units: [8]\n")
    assert load_ranker_config(path, {"seed": 3}) == RankerConfig(epochs=2, hidden_units=(8,),
                                                                  seed=3)
    path.write_text("epoch: 2\n")
    with pytest.raises(ConfigError, match="unknown key.*'ranker': epoch"):
        load_ranker_config(path)


def test_restoring_a_directory_that_is_not_a_ranker_names_it(tmp_path):
    with pytest.raises(SourceError, match="is not a ranker directory"):
        RankerDir(tmp_path).restore()


@pytest.fixture(scope="module")
def lists_and_rows(small_data, trained_model_dir, small_repo):
    """:func:`_lists_and_rows` once for this module's tests (each build joins Feast features
    chunk by chunk, about a minute); read-only."""
    return _lists_and_rows(small_data, trained_model_dir, small_repo)


def _lists_and_rows(small_data, trained_model_dir, small_repo, depth=7, chunk_users=3):
    """The small platform's lists built in chunks of ``chunk_users``, and the same lists as
    one table of rows (as the ranker was fed before lists were held per request)."""
    from trainer.evaluate import two_tower_top_k
    from trainer.ranking.lists import build_lists, ranker_rows

    _, _, two_tower = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    found, scores = two_tower_top_k(two_tower, es, depth)
    ids = es.candidates["item_id"].to_numpy()[np.maximum(found, 0)]
    labels = (found % 3 == 0).astype(np.float32)
    lists = build_lists(es.queries, ids, scores, labels, labels * 2.5, small_data.catalogue,
                        small_repo, SMALL, chunk_users=chunk_users)
    rows = ranker_rows(es.queries, ids, small_data.catalogue, small_repo)
    rows[RETRIEVAL_SCORE] = scores.ravel()
    return lists, to_arrays(rows, ranker_inputs(SMALL)), len(es.queries)


def test_lists_built_in_chunks_hold_exactly_the_rows_of_every_list(lists_and_rows):
    lists, rows, queries = lists_and_rows
    assert queries > 3 and lists.lists == queries and lists.depth == 7
    assert lists.per_list["history_item_ids"].shape[0] == queries  # once per request
    assert lists.per_row["item_id"].shape[0] == queries * 7
    expanded = lists.row_arrays()
    assert expanded.keys() == rows.keys()
    for name, values in rows.items():
        np.testing.assert_array_equal(expanded[name], values, err_msg=name)


def test_lists_encoded_once_give_the_models_scores_of_every_row(ranking, lists_and_rows):
    from trainer.ranking.train import encode_lists

    lists, rows, _ = lists_and_rows
    model = RankerDir(ranking.ranker_dir).restore()
    request, per_row = encode_lists(model, lists, chunk_lists=2)
    assert all(len(v) == lists.lists for v in request.values())
    assert "history_rows" in request and "item_row" in per_row
    assert not request.keys() & per_row.keys()
    flat = {**per_row, **{k: np.repeat(v, lists.depth, axis=0) for k, v in request.items()}}
    from_encoded = model.core({k: tf.constant(v) for k, v in flat.items()})["click"].numpy()
    direct = model({k: tf.constant(v) for k, v in rows.items()})["click"].numpy()
    np.testing.assert_allclose(from_encoded, direct, atol=1e-5)


def test_vocabularies_from_lists_count_a_request_once_per_candidate(lists_and_rows):
    from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES
    from trainer.ranking.model import build_vocabularies
    from trainer.vocabularies import log_stats, vocabulary

    lists, rows, _ = lists_and_rows
    vocab = build_vocabularies(lists, SMALL)
    assert vocab.categories == vocabulary(np.concatenate([rows["item_category"],
                                                          rows["history_categories"].ravel()]))
    assert vocab.tags == vocabulary(rows["item_tags"])
    for name in CONTEXT_CATEGORICAL_FEATURES:
        assert vocab.strings[name] == vocabulary(rows[name]), name
    for name in (*SMALL.item_numeric_features, *SMALL.user_numeric_features):
        np.testing.assert_allclose(vocab.numeric[name], log_stats(rows[name]), rtol=1e-9,
                                   err_msg=name)


def test_reranking_in_chunks_scores_as_one_table_of_rows(ranking, small_data, trained_model_dir,
                                                        small_repo):
    from trainer.evaluate import two_tower_top_k
    from trainer.ranking.fusion import fuse
    from trainer.ranking.lists import ranker_rows

    ranker = RankerDir(ranking.ranker_dir).restore()
    _, _, two_tower = ModelDir(trained_model_dir).restore()
    es = build_evaluation_set(small_data)
    order = reranked(ranker, two_tower, es, small_data.catalogue, small_repo, depth=9, batch=20)

    candidates, scores = two_tower_top_k(two_tower, es, 9)
    scores = np.nan_to_num(scores, nan=0.0)
    rows = ranker_rows(es.queries, es.candidates["item_id"].to_numpy()[np.maximum(candidates, 0)],
                       small_data.catalogue, small_repo)
    rows[RETRIEVAL_SCORE] = scores.ravel()
    arrays = {k: tf.constant(v) for k, v in to_arrays(rows, ranker_inputs(ranker.cfg)).items()}
    logits = fuse(ranker(arrays, training=False)["click"].numpy().reshape(candidates.shape),
                  scores, ranker.cfg.retrieval_weight)
    logits = np.where(candidates >= 0, logits, -np.inf)
    expected = np.take_along_axis(candidates, np.argsort(-logits, axis=1, kind="stable"), axis=1)
    np.testing.assert_array_equal(order, expected)


def test_max_lists_draws_that_many_users_lists_of_the_whole(small_data, trained_model_dir,
                                                           small_repo):
    from trainer.ranking.stacking import candidate_lists

    _, _, two_tower = ModelDir(trained_model_dir).restore()
    every = candidate_lists(two_tower, small_data, small_repo, SMALL)
    drawn = candidate_lists(two_tower, small_data, small_repo,
                            dataclasses.replace(SMALL, max_lists=5))
    again = candidate_lists(two_tower, small_data, small_repo,
                            dataclasses.replace(SMALL, max_lists=5))
    assert every.lists > 5 and drawn.lists == 5
    np.testing.assert_array_equal(drawn.per_row["item_id"], again.per_row["item_id"])

    def lists_of(built):
        ids = built.per_row["item_id"].reshape(built.lists, built.depth)
        return {tuple(row) for row in ids}
    assert lists_of(drawn) <= lists_of(every)
    assert candidate_lists(two_tower, small_data, small_repo, dataclasses.replace(
        SMALL, max_lists=every.lists + 10)).lists == every.lists


def test_no_query_gives_no_list_with_every_input(lists_and_rows, small_data, small_repo):
    from trainer.ranking.lists import build_lists

    lists, rows, _ = lists_and_rows
    es = build_evaluation_set(small_data)
    none = build_lists(es.queries.iloc[:0], np.empty((0, 7), dtype=object),
                       np.empty((0, 7), np.float32), np.empty((0, 7), np.float32),
                       np.empty((0, 7), np.float32), small_data.catalogue, small_repo, SMALL)
    assert none.lists == 0 and none.positives == 0
    assert none.per_list.keys() == lists.per_list.keys()
    assert none.per_row.keys() == lists.per_row.keys()
    assert all(len(v) == 0 for v in (*none.per_list.values(), *none.per_row.values()))
