"""The exported artifacts as ``tf.Module``s with named signatures (TF Serving conventions).

* ``RetrievalModule``: query features in, ``item_ids`` string [B, k] and ``scores`` float32
  [B, k] out (signatures ``retrieval`` and ``serving_default``), plus ``query_embedding``
  (features in, ``embedding`` float32 [B, d] out). The index is ScaNN (custom ``Scann>`` ops)
  or brute force (stock ops only).
* ``ItemTowerModule``: item features in, ``embedding`` float32 [B, d] out (signatures
  ``item_tower`` and ``serving_default``), for indexing items the index has not seen.
"""

from __future__ import annotations

from typing import Iterable

import tensorflow as tf

from recsys.model_contract.feature_spec import InputSpec
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE
from trainer.ranking.fusion import fuse_tf


def _signature(specs: Iterable[InputSpec]) -> list[dict[str, tf.TensorSpec]]:
    return [{s.name: s.tensor_spec() for s in specs}]


class RetrievalModule(tf.Module):
    """Top-k retrieval: the query tower, then ``index`` (a TFRS ScaNN or BruteForce layer
    without a query model) searched with its embedding. ``k`` is fixed at export; clients
    slice for fewer. The tower runs once a call (an index holding the tower as its query
    model ran it a second time for the ``query_embedding`` output: 849 graph ops, now 495)."""

    def __init__(self, index, query_tower: tf.keras.Model, specs: Iterable[InputSpec], k: int):
        super().__init__(name="retrieval")
        self.index = index
        self.query_tower = query_tower
        self.k = k
        signature = _signature(specs)

        @tf.function(input_signature=signature)
        def retrieve(features):
            embedding = self.query_tower(features)
            scores, ids = self.index(embedding)
            # ScaNN returns fewer than k when the leaves it searched hold fewer items (a k
            # close to the catalogue's size): pad, so the signature's shape always holds
            missing = [[0, 0], [0, self.k - tf.shape(ids)[1]]]
            ids = tf.pad(ids, missing, constant_values="")
            scores = tf.pad(scores, missing, constant_values=float("-inf"))
            return {"item_ids": tf.ensure_shape(ids, [None, self.k]),
                    "scores": tf.ensure_shape(scores, [None, self.k]),
                    # lets a caller score candidates from other sources on the same scale
                    "query_embedding": embedding}

        @tf.function(input_signature=signature)
        def query_embedding(features):
            return {"embedding": self.query_tower(features)}

        self.retrieve = retrieve
        self.query_embedding = query_embedding

    def signatures(self) -> dict:
        fn = self.retrieve.get_concrete_function()
        return {"retrieval": fn, "serving_default": fn,
                "query_embedding": self.query_embedding.get_concrete_function()}


class ItemTowerModule(tf.Module):
    """The candidate tower alone."""

    def __init__(self, candidate_tower: tf.keras.Model, specs: Iterable[InputSpec]):
        super().__init__(name="item_tower")
        self.candidate_tower = candidate_tower

        @tf.function(input_signature=_signature(specs))
        def embed(features):
            return {"embedding": self.candidate_tower(features)}

        self.embed = embed

    def signatures(self) -> dict:
        fn = self.embed.get_concrete_function()
        return {"item_tower": fn, "serving_default": fn}


class RankerModule(tf.Module):
    """The transformer ranker: ``rank`` scores the (user, candidate) rows of one request:
    ``click`` (logit), ``watch`` and ``score``, the click logit fused with the two-tower score
    over the request's rows (the order to serve)."""

    def __init__(self, ranker: tf.keras.Model, specs: Iterable[InputSpec]):
        super().__init__(name="ranker")
        self.ranker = ranker

        weight = float(ranker.cfg.retrieval_weight)

        @tf.function(input_signature=_signature(specs))
        def rank(features):
            out = self.ranker(features, training=False)
            return {"click": out["click"], "watch": out["watch"],
                    "score": fuse_tf(out["click"], features[RETRIEVAL_SCORE], weight)}

        self.rank = rank

    def signatures(self) -> dict:
        fn = self.rank.get_concrete_function()
        return {"rank": fn, "serving_default": fn}


__all__ = ["RetrievalModule", "ItemTowerModule", "RankerModule"]
