"""TensorFlow's thread pools, pinned once per process: TF Serving's
``--tensorflow_intra_op_parallelism`` / ``--tensorflow_inter_op_parallelism`` (0 = TensorFlow's
default, one thread per core in each pool).

Guarantees: the pools are set only before TensorFlow runs its first op; later, nothing changes
and the reason is logged (the process keeps the pools it has).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def pin_tensorflow_threads(intra_op: int, inter_op: int, level: int = logging.WARNING) -> bool:
    """Set the intra- and inter-op pools (0 leaves a pool at TensorFlow's default); True if
    every requested setting took effect; otherwise says why at ``level``."""
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:  # TensorFlow already ran an op in this process
        log.log(level, "cannot change TensorFlow's thread pools now: %s", exc)
        return False
    return True


__all__ = ["pin_tensorflow_threads"]
