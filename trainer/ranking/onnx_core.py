"""The ranker's numeric core as an ONNX graph, for ONNX Runtime in the service (200 rows, one
thread: 2.6 against 5.6 ms in TensorFlow). Its string lookups are done in NumPy
(:mod:`recsys.model_contract.ranker_encoding`).

Guarantees: the file holds the whole core, weights and item table included
(:func:`trainer.onnx_convert.write_onnx`).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from recsys.model_contract.ranker_encoding import CORE_FILE, RankerEncoding
from trainer.onnx_convert import OnnxConversionError, spec_of, write_onnx
from trainer.ranking.model import MAX_TAGS


def encoded_signature(ranker) -> dict[str, tf.TensorSpec]:
    """The core's inputs (names, dtypes, trailing shapes), from encoding an example batch."""
    from trainer.ranking.model import example_batch

    return spec_of(ranker.encode(example_batch(ranker.cfg), training=False))


def write_encoding(ranker, directory: Path) -> None:
    """The vocabularies :class:`RankerEncoding` needs, beside the export."""
    vocab = ranker.vocab
    RankerEncoding.write(directory, ranker.cfg.history_length, MAX_TAGS, ranker.table_ids,
                         vocab.categories, vocab.tags,
                         {n: vocab.strings.get(n, []) for n in ranker.context},
                         ranker.passthrough_inputs())


def write_onnx_core(ranker, directory: Path) -> Path:
    """Convert ``ranker.core`` (inference mode) and write it to ``directory/CORE_FILE``; the
    item table's matrix (a captured constant) goes inside."""
    matrix = ranker.table.matrix.numpy()
    return write_onnx(lambda encoded: ranker.core(encoded, training=False),
                      encoded_signature(ranker), Path(directory) / CORE_FILE, "ranker",
                      captured={tuple(matrix.shape): matrix})


__all__ = ["write_onnx_core", "write_encoding", "encoded_signature", "CORE_FILE",
           "OnnxConversionError"]
