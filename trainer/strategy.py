"""``tf.distribute`` strategies by name, as the ``--strategy`` flag selects them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

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


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster: ``task`` (e.g. ``worker-1``; ``local`` without a
    cluster) and whether it is the chief, the one that writes the model directory (Keras'
    rule: the ``chief`` task, or worker 0 when the cluster has no chief)."""

    task: str
    is_chief: bool


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return WorkerRole("local", True)
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return WorkerRole(f"{task_type}-{task_id}", is_chief)


__all__ = ["WorkerRole", "make_strategy", "worker_role"]
