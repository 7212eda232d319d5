"""``tf.distribute`` strategies by name, as the ``--strategy`` flag selects them."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from recsys.errors import ConfigError
from trainer.config import STRATEGIES


def make_strategy(name: str, tf_config: str | None = None) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all local devices, synchronous) or
    ``multi_worker_mirrored`` (the cluster described by ``tf_config``, which defaults to the
    TF_CONFIG environment variable, as every TensorFlow launcher sets it)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        raw = tf_config if tf_config is not None else os.environ.get("TF_CONFIG")
        if not raw:
            raise ConfigError("--strategy multi_worker_mirrored needs the TF_CONFIG environment "
                              'variable, e.g. {"cluster": {"worker": ["host1:port", '
                              '"host2:port"]}, "task": {"type": "worker", "index": 0}}')
        try:
            parsed = json.loads(raw)
            parsed["cluster"]["worker"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"TF_CONFIG is not a valid cluster description: {raw!r}") from exc
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


__all__ = ["make_strategy"]
