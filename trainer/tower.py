"""What both towers share: they are built from the model config and the vocabularies, and
serialise as exactly those two."""

from __future__ import annotations

import dataclasses

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
