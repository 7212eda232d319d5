"""Towers of several independently initialised members (``ensemble_members`` > 1).

A seed ensemble of two-tower models is itself a two-tower model: with each member's output
unit length, the members' outputs concatenated and scaled by 1/sqrt(n) are unit length, and
a query's dot product with a candidate is the mean of the members' cosines. One index of
n x ``embedding_dim`` vectors serves it, with the same signatures.

Guarantees: the members share the string lookups (:meth:`encode`, the same vocabularies)
and nothing else; :meth:`member_outputs` gives each member's own unit vectors, so that
each member is trained on its own loss (:class:`~trainer.retrieval_model.TwoTowerModel`),
as n models trained on the same batches would be.
"""

from __future__ import annotations

import math
from typing import Mapping

import tensorflow as tf

from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.candidate_tower import CandidateTower
from trainer.query_tower import QueryTower
from trainer.tower import Tower
from trainer.vocabularies import Vocabularies


class EnsembleTower(Tower):
    """``cfg.ensemble_members`` towers of ``member_class`` behind one tower's interface
    (``encode``, ``drop_ids``, ``core``, ``call``); attributes it does not define (the
    lookups: ``user``, ``history_items`` ...) are the first member's, which every member
    shares in value."""

    member_class: type[Tower]

    def __init__(self, cfg: RetrievalModelConfig, vocab: Vocabularies, **kwargs):
        super().__init__(cfg, vocab, **kwargs)
        self.members = [self.member_class(cfg, vocab, name=f"member_{i}")
                        for i in range(cfg.ensemble_members)]

    def __getattr__(self, name):
        if name.startswith("_") or name == "members":
            raise AttributeError(name)
        return getattr(self.members[0], name)

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None):
        return self.core(self.encode(features, training), training=training)

    def encode(self, features: Mapping[str, tf.Tensor], training: bool | None = None
               ) -> dict[str, tf.Tensor]:
        return self.members[0].encode(features, training)

    def drop_ids(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None
                 ) -> dict[str, tf.Tensor]:
        return self.members[0].drop_ids(encoded, training)

    def member_outputs(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None
                       ) -> list[tf.Tensor]:
        """Each member's unit-length output, float32 [B, embedding_dim] each."""
        return [member.core(encoded, training=training) for member in self.members]

    def core(self, encoded: Mapping[str, tf.Tensor], training: bool | None = None):
        """The members' outputs side by side, scaled to unit length: float32
        [B, members x embedding_dim]."""
        scale = 1.0 / math.sqrt(len(self.members))
        return tf.concat(self.member_outputs(encoded, training), axis=-1) * scale


class QueryEnsemble(EnsembleTower):
    member_class = QueryTower


class CandidateEnsemble(EnsembleTower):
    member_class = CandidateTower


def make_towers(cfg: RetrievalModelConfig, vocab: Vocabularies) -> tuple[Tower, Tower]:
    """(query tower, candidate tower): single towers, or ensembles of
    ``cfg.ensemble_members``."""
    if cfg.ensemble_members == 1:
        return (QueryTower(cfg, vocab, name="query_tower"),
                CandidateTower(cfg, vocab, name="candidate_tower"))
    return (QueryEnsemble(cfg, vocab, name="query_tower"),
            CandidateEnsemble(cfg, vocab, name="candidate_tower"))


def tower_members(tower: Tower) -> list[Tower]:
    """The single towers inside ``tower`` (itself when it is not an ensemble)."""
    return list(tower.members) if isinstance(tower, EnsembleTower) else [tower]


def split_members(vectors: tf.Tensor, members: int) -> list[tf.Tensor]:
    """An ensemble's output cut back into its members' unit vectors (the inverse of
    :meth:`EnsembleTower.core`'s scaling)."""
    if members == 1:
        return [vectors]
    return [part * math.sqrt(members) for part in tf.split(vectors, members, axis=-1)]


__all__ = ["EnsembleTower", "QueryEnsemble", "CandidateEnsemble", "make_towers",
           "tower_members", "split_members"]
