"""The transformer ranker (a history encoder with target attention), multi-task.

Items are read through the retrieval model's embedding space: an :class:`ItemTable` of the
two-tower candidate embeddings (frozen), so the ranker generalises across items it saw few
labels for. The user's recent items (vector + category + position + time gap) are encoded
by self-attention once per user (``num_blocks`` transformer blocks over the history alone),
and each candidate (vector + category + position) reads that encoding by target attention
(:class:`TargetAttention`): ranking 200 candidates costs one history encoding, not 200 (the
rows of one request, consecutive rows with the same history, share it). The candidate's
output, the pooled history, the candidate's similarity
to each recent item (and the best and mean of them), the retrieval score, the candidate's
content and age, the request context and the Feast item and user features go through an MLP
to two heads: ``click`` (a logit, trained listwise) and ``watch`` (engagement
regression, squared error). The table stays the one the ranker was trained with (that of
its stacking two-tower model): items outside it are read as unknown (similarities 0, a flag).

Input: a mapping with the inputs of :func:`recsys.model_contract.ranker_inputs.ranker_inputs`.
Output: ``{"click": float32 [B], "watch": float32 [B]}``.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import tensorflow as tf

from recsys.model_contract.ranker_config import RankerConfig
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE
from recsys.model_contract.retrieval_config import CONTEXT_CATEGORICAL_FEATURES
from trainer.layers import HistoryPooling, LogStandardize, LookupEmbedding, fixed_width
from trainer.layers.item_table import ItemTable
from trainer.layers.lookup_embedding import PAD_INDEX
from trainer.layers.row_groups import consecutive_groups
from trainer.layers.target_attention import TargetAttention
from trainer.layers.transformer_block import TransformerBlock
from trainer.ranking.lists import RankerLists
from trainer.vocabularies import (
    Vocabularies,
    log_stats,
    ordered_vocabulary,
    value_counts,
    vocabulary,
)

GAP_BUCKETS = 16
MAX_TAGS = 10  # an item's tags read by the ranker (more are dropped, fewer padded)


def build_vocabularies(lists: RankerLists, cfg: RankerConfig) -> Vocabularies:
    """Vocabularies and statistics from the training lists, counted per row (a request's
    inputs once per candidate of its list)."""
    rows, request, depth = lists.per_row, lists.per_list, lists.depth
    categories = ordered_vocabulary(value_counts(rows["item_category"])
                                    + value_counts(request["history_categories"], depth))
    return Vocabularies(
        user_ids=[], item_ids=[], item_counts=[],
        categories=categories, tags=vocabulary(rows["item_tags"]), languages=[],
        strings={n: ordered_vocabulary(value_counts(request[n], depth))
                 for n in CONTEXT_CATEGORICAL_FEATURES},
        numeric={**{n: log_stats(rows[n]) for n in cfg.item_numeric_features},
                 **{n: log_stats(request[n]) for n in cfg.user_numeric_features}})


class RankerModel(tf.keras.Model):
    def __init__(self, cfg: RankerConfig, vocab: Vocabularies, item_ids, item_vectors,
                 **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.vocab = cfg, vocab
        self.table = ItemTable(item_ids, item_vectors, name="item_table")
        self.table_ids, self.table_vectors = list(item_ids), np.asarray(item_vectors, np.float32)
        self.project = tf.keras.layers.Dense(cfg.item_dim, name="item_projection")
        self.token_categories = LookupEmbedding(vocab.categories, cfg.item_dim,
                                                name="token_categories")
        self.positions = tf.keras.layers.Embedding(cfg.history_length + 1, cfg.item_dim,
                                                   name="positions")
        self.gaps = tf.keras.layers.Embedding(GAP_BUCKETS + 1, cfg.item_dim, name="gaps")
        self.blocks = [TransformerBlock(cfg.num_heads, cfg.ff_units, cfg.dropout,
                                        name=f"transformer_{i}") for i in range(cfg.num_blocks)]
        self.target = TargetAttention(cfg.num_heads, cfg.ff_units, cfg.dropout,
                                      name="target_attention")
        self.pool = HistoryPooling(None)
        self.category = LookupEmbedding(vocab.categories, cfg.feature_dim, name="item_category")
        self.tags = LookupEmbedding(vocab.tags, cfg.feature_dim, name="item_tags")
        self.hour = tf.keras.layers.Embedding(24, cfg.feature_dim, name="hour_of_day")
        self.weekday = tf.keras.layers.Embedding(7, cfg.feature_dim, name="day_of_week")
        self.context = {n: LookupEmbedding(vocab.strings.get(n, []), cfg.feature_dim, name=n)
                        for n in CONTEXT_CATEGORICAL_FEATURES}
        self.numeric = LogStandardize({n: vocab.numeric.get(n, (0.0, 1.0)) for n in
                                       (*cfg.item_numeric_features, *cfg.user_numeric_features)})
        self.mlp = tf.keras.Sequential([tf.keras.layers.Dense(u, activation="relu")
                                        for u in cfg.hidden_units], name="mlp")
        self.click_head = tf.keras.layers.Dense(1, name="click")
        self.watch_head = tf.keras.layers.Dense(1, name="watch")

    def get_config(self) -> dict:
        """The ranker config, the vocabularies and the item table's size (JSON-serialisable);
        the item table itself is a constant, saved beside the weights (RankerDir's item_table.npz)
        and rebuilt from there."""
        return {"cfg": dataclasses.asdict(self.cfg), "vocab": dataclasses.asdict(self.vocab),
                "items": len(self.table_ids)}

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None):
        return self.core(self.encode(features, training), training=training)

    def encode(self, features: Mapping[str, tf.Tensor], training: bool | None = None
               ) -> dict[str, tf.Tensor]:
        """Every lookup of a string (items, categories, tags, context), so that
        :meth:`core` reads only numbers: int64 indices into the item table and the
        vocabularies (0 padding, 1 unknown), the history at its fixed width with NaN gaps
        cleaned, and the numeric inputs as they came. The union of
        :meth:`encode_request` and :meth:`encode_candidates`."""
        return {**self.encode_request(features, training),
                **self.encode_candidates(features, training)}

    def encode_request(self, features: Mapping[str, tf.Tensor], training: bool | None = None
                       ) -> dict[str, tf.Tensor]:
        """:meth:`encode`'s part that reads only the request's inputs (history, context, time
        and user features): one row per request is enough, whatever its candidates."""
        width = self.cfg.history_length
        gaps = tf.cast(features["history_gaps_s"], tf.float32)
        encoded = {
            "history_rows": self.table.lookup(
                fixed_width(features["history_item_ids"], width, "")),
            "history_categories": self.token_categories.indices(
                fixed_width(features["history_categories"], width, "")),
            "history_gaps_s": fixed_width(tf.where(tf.math.is_nan(gaps), tf.zeros_like(gaps),
                                                   gaps), width, 0.0),
            **{n: layer.indices(features[n], training) for n, layer in self.context.items()},
        }
        for name in self.request_passthrough():
            encoded[name] = features[name]
        return encoded

    def encode_candidates(self, features: Mapping[str, tf.Tensor],
                          training: bool | None = None) -> dict[str, tf.Tensor]:
        """:meth:`encode`'s part that reads only the candidates' inputs (one row each)."""
        encoded = {
            "item_row": self.table.lookup(features["item_id"]),
            "item_category": self.category.indices(features["item_category"], training),
            "item_tags": self.tags.indices(fixed_width(features["item_tags"], MAX_TAGS, "")),
        }
        for name in self.candidate_passthrough():
            encoded[name] = features[name]
        return encoded

    def request_passthrough(self) -> tuple[str, ...]:
        """The request's numeric inputs :meth:`encode_request` hands on as they came."""
        return ("hour_of_day", "day_of_week", *self.cfg.user_numeric_features)

    def candidate_passthrough(self) -> tuple[str, ...]:
        """The candidates' numeric inputs :meth:`encode_candidates` hands on as they came."""
        return ("item_age_days", RETRIEVAL_SCORE, *self.cfg.item_numeric_features)

    def passthrough_inputs(self) -> tuple[str, ...]:
        """The numeric inputs :meth:`encode` hands to :meth:`core` as they came."""
        return (*self.candidate_passthrough(), *self.request_passthrough())

    def core(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None):
        """The model on :meth:`encode`'s numbers (no string operation)."""
        width = self.cfg.history_length
        history_rows, history_categories = encoded["history_rows"], encoded["history_categories"]
        gaps = encoded["history_gaps_s"]
        # the history is encoded once per user: a request's candidates (and each request of
        # a batched call) share one history, which forms one group of consecutive rows
        group, first = consecutive_groups(history_rows, history_categories, gaps)
        user_rows = tf.gather(history_rows, first)
        mask = user_rows != PAD_INDEX
        user_history, user_known = self.table.rows(user_rows)
        gap_bucket = tf.cast(tf.clip_by_value(
            tf.math.log1p(tf.maximum(tf.gather(gaps, first), 0.0)) / 1.2, 0,
            GAP_BUCKETS - 1), tf.int32) + 1
        x = (self.project(user_history)
             + self.token_categories.embedding(tf.gather(history_categories, first))
             + self.gaps(gap_bucket) + self.positions(tf.range(width))[tf.newaxis])
        for block in self.blocks:
            x = block(x, mask, training=training)
        candidate, candidate_known = self.table.rows(encoded["item_row"])
        token = (self.project(candidate)
                 + self.token_categories.embedding(encoded["item_category"])
                 + self.positions(tf.fill([1], width)))
        attended = self.target(token, x, mask, group, training=training)
        pooled = tf.gather(self.pool(x, mask), group)
        history = tf.gather(user_history, group)
        similarity = tf.einsum("bd,btd->bt", candidate, history)  # 0 where unknown
        history_known = tf.gather(user_known, group)
        known = tf.cast(history_known, tf.float32)
        best = tf.reduce_max(tf.where(history_known, similarity, -tf.ones_like(similarity)),
                             axis=1, keepdims=True)
        best = tf.where(best < -0.5, tf.zeros_like(best), best)
        mean = tf.reduce_sum(similarity, 1, keepdims=True) / tf.maximum(
            tf.reduce_sum(known, 1, keepdims=True), 1.0)
        tag_ids = encoded["item_tags"]
        tags = self.pool(self.tags.embedding(tag_ids), tag_ids != PAD_INDEX)
        age = tf.cast(encoded["item_age_days"], tf.float32)
        age_missing = tf.math.is_nan(age)
        age = tf.where(age_missing, tf.zeros_like(age),
                       tf.math.log1p(tf.maximum(age, 0.0)) / 10.0)
        score = tf.cast(encoded[RETRIEVAL_SCORE], tf.float32)
        score_missing = tf.math.is_nan(score)
        parts = [attended, pooled, attended * pooled,
                 similarity, known, best, mean,
                 tf.where(score_missing, tf.zeros_like(score), score)[:, tf.newaxis],
                 tf.cast(score_missing, tf.float32)[:, tf.newaxis],
                 tf.cast(candidate_known, tf.float32)[:, tf.newaxis],
                 self.category.embedding(encoded["item_category"]), tags,
                 age[:, tf.newaxis], tf.cast(age_missing, tf.float32)[:, tf.newaxis],
                 self.hour(tf.clip_by_value(encoded["hour_of_day"], 0, 23)),
                 self.weekday(tf.clip_by_value(encoded["day_of_week"], 0, 6)),
                 *(layer.embedding(encoded[n]) for n, layer in self.context.items())]
        if self.numeric.stats:
            parts.append(self.numeric(encoded))
        hidden = self.mlp(tf.concat(parts, axis=-1), training=training)
        return {"click": tf.squeeze(self.click_head(hidden), -1),
                "watch": tf.squeeze(self.watch_head(hidden), -1)}


def example_batch(cfg: RankerConfig) -> dict:
    from recsys.model_contract.ranker_inputs import ranker_inputs
    from trainer.onnx_convert import example_inputs

    return example_inputs(ranker_inputs(cfg))


__all__ = ["RankerModel", "build_vocabularies", "example_batch", "MAX_TAGS"]
