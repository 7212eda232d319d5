"""What both towers share: they are built from the model config and the vocabularies, and
serialise as exactly those two."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf

from recsys.model_contract.retrieval_config import RetrievalModelConfig
from trainer.vocabularies import Vocabularies


class Tower(tf.keras.Model):
    """A Keras model configured by ``cfg`` and ``vocab``; ``get_config`` / ``from_config``
    round-trip both."""

    def __init__(self, cfg: RetrievalModelConfig, vocab: Vocabularies, **kwargs):
        super().__init__(**kwargs)
        self.cfg = cfg
        self.vocab = vocab

    def get_config(self) -> dict:
        return {"cfg": dataclasses.asdict(self.cfg), "vocab": dataclasses.asdict(self.vocab)}

    @classmethod
    def from_config(cls, config: dict) -> Tower:
        model_cfg = RetrievalModelConfig.from_dict(config["cfg"], "model")
        return cls(model_cfg, Vocabularies(**config["vocab"]))


def embed(tower: Callable, arrays: Mapping[str, np.ndarray | tf.Tensor],
          batch_size: int = 4096) -> np.ndarray:
    """``tower(batch, training=False)`` over ``arrays`` (a tower, or its ``core`` on encoded
    arrays), ``batch_size`` rows at a time; float32 [rows, dim]."""
    n = len(next(iter(arrays.values())))
    out = []
    for start in range(0, n, batch_size):
        batch = {k: tf.constant(v[start:start + batch_size]) for k, v in arrays.items()}
        out.append(tower(batch, training=False).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
