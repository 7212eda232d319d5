"""The two-tower retrieval model (TFRS): in-batch softmax with sampling-bias correction.

Loss per batch: softmax over (cosine similarity / temperature) of each query against every
candidate of the batch, plus ``num_random_negatives`` catalogue items drawn uniformly when
configured (mixed negative sampling). Each candidate's logit is corrected by ``-log Q`` with Q
its expected inclusion probability in the batch (logQ correction; ``-s log Q`` with
``logq_correction`` s), so popular items are not pushed down just for being frequent
negatives; accidental hits (the positive's own item
appearing as a negative) are removed, and with ``mask_user_positives`` so is every other item
the query's user has a training positive for.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from recsys.model_contract.feature_spec import candidate_inputs, query_inputs
from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.ensemble_tower import QueryEnsemble, make_towers, split_members
from trainer.query_tower import QueryTower
from trainer.tower import embed
from trainer.vocabularies import Vocabularies

SAMPLING_PROBABILITY = "item_sampling_probability"
EXAMPLE_WEIGHT = "example_weight"  # optional: each example's weight in the loss
# with mask_user_positives: each example's user as a number of its own, whatever row the
# query tower's id embedding gives it (without id rows, or for users outside the vocabulary,
# every user shares the "unknown" row, and their positives must not be pooled)
MASK_USER = "mask_user"
DENSE_MASK_LIMIT = 1 << 26  # users x items cells up to which the positives' mask is a table


def encode_arrays(tower, arrays: Mapping[str, np.ndarray], chunk: int = 65_536
                  ) -> dict[str, np.ndarray]:
    """``tower.encode`` (no training) of the tower's inputs among NumPy ``arrays``, ``chunk``
    rows at a time."""
    n = len(next(iter(arrays.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, chunk):
        batch = {k: tf.constant(arrays[k][start:start + chunk]) for k in tower_inputs(tower)}
        for name, values in tower.encode(batch, training=False).items():
            parts.setdefault(name, []).append(values.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def tower_inputs(tower) -> frozenset[str]:
    """The raw inputs a tower reads."""
    query = isinstance(tower, (QueryTower, QueryEnsemble))
    specs = (query_inputs if query else candidate_inputs)(tower.cfg)
    return frozenset(spec.name for spec in specs)


class TwoTowerModel(tfrs.Model):
    """Query tower + candidate tower + a TFRS Retrieval task.

    Training features: the query inputs, the candidate inputs of the positive item, and
    ``item_sampling_probability`` (the item's share of training positives), and optionally
    ``example_weight`` (each example's weight in the loss: inverse propensities, say).
    ``catalogue``: candidate arrays of items to draw random negatives from, and to mine
    negatives from (needed only when ``num_random_negatives`` or ``num_index_negatives`` > 0).
    """

    def __init__(self, cfg: RetrievalModelConfig, vocab: Vocabularies,
                 catalogue: Mapping[str, np.ndarray] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.query_tower, self.candidate_tower = make_towers(cfg, vocab)
        # one task per ensemble member, each at that member's temperature
        self.tasks = [tfrs.tasks.Retrieval(temperature=temperature,
                                           num_hard_negatives=cfg.num_hard_negatives,
                                           remove_accidental_hits=True)
                      for temperature in cfg.temperatures]
        self.inputs_encoded = False  # True: compute_loss reads what encode() made
        self.user_positives = None  # the positives to mask: (table,) or (offsets, items)
        self._catalogue = None
        self.index = None  # the catalogue's candidate vectors, for mined negatives
        if cfg.num_random_negatives or cfg.num_index_negatives:
            if catalogue is None:
                raise ValueError("num_random_negatives or num_index_negatives > 0 needs the "
                                 "catalogue to sample from")
            self._catalogue = {s.name: tf.constant(catalogue[s.name])
                               for s in candidate_inputs(cfg)}
        if cfg.num_index_negatives:
            items = len(catalogue["item_id"])
            self.index = tf.Variable(tf.zeros([items, cfg.output_dim]), trainable=False,
                                     name="negative_index")

    def get_config(self) -> dict:
        """The model config and the vocabularies (JSON-serialisable), as the towers give them;
        the sampling catalogue is training data, not configuration."""
        return self.query_tower.get_config()

    def encode(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Both towers' string lookups (``encode`` without training) of raw training arrays,
        as NumPy; other arrays (the sampling probability, the weights) pass through.
        Training on these (:meth:`use_encoded_inputs`) looks every string up once instead
        of once per epoch."""
        return {**arrays, **encode_arrays(self.query_tower, arrays),
                **encode_arrays(self.candidate_tower, arrays)}

    def use_encoded_inputs(self) -> None:
        """From now on :meth:`compute_loss` reads what :meth:`encode` made (the sampling
        catalogue is encoded here)."""
        if self._catalogue is not None and not self.inputs_encoded:
            raw = {name: values.numpy() for name, values in self._catalogue.items()}
            self._catalogue = {name: tf.constant(values) for name, values in
                               encode_arrays(self.candidate_tower, raw).items()}
        self.inputs_encoded = True

    def set_user_positives(self, user_index: np.ndarray, item_index: np.ndarray,
                           dense_limit: int = DENSE_MASK_LIMIT) -> None:
        """The training positives that ``mask_user_positives`` leaves out of each query's
        negatives, by user number (the ``MASK_USER`` the training examples carry: one per
        distinct user) and item as :meth:`encode` indexed it: a dense [users, items]
        table when it has at most ``dense_limit`` cells, else per user index its distinct
        item indices (sorted), as offsets into one array."""
        users, items = user_index.astype(np.int64), item_index.astype(np.int64)
        shape = (int(users.max(initial=0)) + 2, int(items.max(initial=0)) + 1)
        if shape[0] * shape[1] <= min(dense_limit, 2**31 - 1):  # int32 cell numbers
            table = np.zeros(shape, bool)
            table[users, items] = True
            self.user_positives = (tf.constant(table),)
            return
        pairs = np.unique(np.stack([users, items], axis=1), axis=0)
        counts = np.bincount(pairs[:, 0], minlength=shape[0])
        self.user_positives = (tf.constant(np.concatenate([[0], np.cumsum(counts)])),
                               tf.constant(pairs[:, 1]))

    def _negatives_mask(self, users: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        """[queries, candidates]: False where the candidate is one of the query's user's
        training positives, other than the query's own positive (the diagonal). An index
        beyond the training positives' (a user or item never seen) masks nothing."""
        users, ids = tf.cast(users, tf.int64), tf.cast(ids, tf.int64)
        if len(self.user_positives) == 1:  # one gather of [queries, candidates] cells
            table = self.user_positives[0]  # (at most DENSE_MASK_LIMIT < 2**31 of them)
            shape = tf.shape(table)
            ids = tf.cast(tf.minimum(ids, tf.cast(shape[1], tf.int64)), tf.int32)
            rows = tf.cast(tf.minimum(users, tf.cast(shape[0], tf.int64) - 1), tf.int32)
            cells = rows[:, tf.newaxis] * shape[1] + tf.minimum(ids, shape[1] - 1)
            known = tf.logical_and(tf.gather(tf.reshape(table, [-1]), cells),
                                   (ids < shape[1])[tf.newaxis, :])
        else:
            known = self._sparse_known(users, ids)
        own = (tf.range(tf.size(users))[:, tf.newaxis]
               == tf.range(tf.size(ids))[tf.newaxis, :])
        return tf.logical_or(tf.logical_not(known), own)

    def _sparse_known(self, users: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        """[queries, candidates]: the candidate is a training positive of the query's user,
        from the per-user lists: costs the batch users' positives times log(distinct
        candidates), not queries x candidates lookups."""
        offsets, items = self.user_positives
        users = tf.minimum(users, tf.cast(tf.size(offsets) - 2, tf.int64))
        starts, ends = tf.gather(offsets, users), tf.gather(offsets, users + 1)
        rows = tf.repeat(tf.range(tf.size(users, out_type=tf.int64)), ends - starts)
        liked = tf.gather(items, tf.ragged.range(starts, ends).flat_values)
        distinct, column = tf.unique(ids)
        order = tf.argsort(distinct)
        ranked = tf.gather(distinct, order)
        at = tf.minimum(tf.searchsorted(ranked, liked), tf.size(ranked) - 1)
        hit = tf.gather(ranked, at) == liked
        where = tf.stack([tf.boolean_mask(rows, hit),
                          tf.cast(tf.gather(order, tf.boolean_mask(at, hit)), tf.int64)], 1)
        known = tf.scatter_nd(where, tf.ones([tf.shape(where)[0]], tf.int8),
                              tf.stack([tf.size(users, out_type=tf.int64),
                                        tf.size(distinct, out_type=tf.int64)]))
        return tf.gather(known, column, axis=1) > 0

    def refresh_index(self, chunk: int = 65_536) -> None:
        """The mined negatives' index := every catalogue item's current candidate vector."""
        if self.index is None:
            return
        tower = self.candidate_tower
        self.index.assign(embed(tower.core if self.inputs_encoded else tower, self._catalogue,
                                chunk))

    def _extra_negatives(self, queries: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """The catalogue rows drawn as extra negatives for this batch (uniform draws, then
        one mined item per query for the first ``num_index_negatives`` queries) and their
        count."""
        cfg, n = self.cfg, tf.shape(self._catalogue["item_id"])[0]
        picks = []
        if cfg.num_random_negatives:
            picks.append(tf.random.uniform([cfg.num_random_negatives], 0, n, dtype=tf.int32))
        if self.index is not None:
            mining = tf.stop_gradient(queries[:cfg.num_index_negatives])
            depth = min(cfg.index_negative_depth, int(self.index.shape[0]))
            top = tf.math.top_k(tf.matmul(mining, self.index, transpose_b=True), depth).indices
            column = tf.random.uniform([tf.shape(top)[0], 1], 0, depth, dtype=tf.int32)
            picks.append(tf.gather(top, column, batch_dims=1)[:, 0])
        pick = tf.concat(picks, axis=0)
        extra = {name: tf.gather(values, pick) for name, values in self._catalogue.items()}
        return extra, tf.shape(pick)[0]

    def _towers(self, features: Mapping[str, tf.Tensor], training: bool):
        """(query embeddings, candidate embeddings) of raw features, or of features
        :meth:`encode` made when :attr:`inputs_encoded` (ids dropped here)."""
        q, c = self.query_tower, self.candidate_tower
        if self.inputs_encoded:
            return (q.core(q.drop_ids(features, training), training=training),
                    c.core(c.drop_ids(features, training), training=training))
        return q(features, training=training), c(features, training=training)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False):
        queries, candidates = self._towers(features, training)
        batch = tf.cast(tf.shape(queries)[0], tf.float32)
        inclusion = tf.minimum(tf.cast(features[SAMPLING_PROBABILITY], tf.float32) * batch, 1.0)
        ids = features["item_id"]
        if self._catalogue is not None and training:
            extra, drawn_count = self._extra_negatives(queries)
            tower = self.candidate_tower
            drawn = (tower.core(tower.drop_ids(extra, training), training=training)
                     if self.inputs_encoded else tower(extra, training=training))
            candidates = tf.concat([candidates, drawn], axis=0)
            # every extra item counts as a uniform draw in the logQ correction (the mined
            # ones' true inclusion probability is unknown)
            n = tf.cast(tf.shape(self._catalogue["item_id"])[0], tf.float32)
            uniform = tf.cast(drawn_count, tf.float32) / n
            inclusion = tf.concat([inclusion, tf.fill([drawn_count], uniform)], axis=0)
            ids = tf.concat([ids, extra["item_id"]], axis=0)
        if self.cfg.logq_correction != 1.0:  # TFRS subtracts log Q: Q ** s gives s log Q
            inclusion = inclusion ** self.cfg.logq_correction
        mask = None
        if training and self.user_positives is not None:
            mask = self._negatives_mask(features[MASK_USER], ids)
        # an ensemble's members each on their own loss, at their own temperature (one
        # model: the one loss)
        members = self.cfg.ensemble_members
        return tf.add_n([
            task(q, c, sample_weight=features.get(EXAMPLE_WEIGHT),
                 candidate_sampling_probability=inclusion, candidate_ids=ids,
                 compute_metrics=not training, score_mask=mask)
            for task, q, c in zip(self.tasks, split_members(queries, members),
                                  split_members(candidates, members))])


__all__ = ["TwoTowerModel", "SAMPLING_PROBABILITY", "EXAMPLE_WEIGHT", "MASK_USER",
           "encode_arrays"]
