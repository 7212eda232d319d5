"""The query tower's numeric core as an ONNX graph beside the retrieval SavedModel
(``assets.extra/query_core.onnx``) and its vocabularies (``query_encoding.json``), so that
the service computes the query embedding on ONNX Runtime and searches the index with it.

Guarantees: the core is :meth:`QueryTower.core` in inference mode, weights inside
(:func:`trainer.onnx_convert.write_onnx`); the vocabularies are the tower's own lookups'.
"""

from __future__ import annotations

from pathlib import Path

from recsys.model_contract.feature_spec import query_inputs
from recsys.model_contract.query_encoding import QUERY_CORE_FILE, QueryEncoding
from trainer.onnx_convert import example_inputs, spec_of, write_onnx


def write_query_encoding(tower, directory: Path) -> None:
    """The vocabularies :class:`QueryEncoding` needs, beside the export."""
    QueryEncoding.write(directory, tower.cfg.history_length, tower.history_items.vocabulary,
                        tower.history_categories.vocabulary,
                        {name: tower.user.vocabulary if name == "user_id"
                         else tower.strings[name].vocabulary
                         for name in tower.string_inputs()},
                        tower.passthrough_inputs())


def write_query_core(tower, directory: Path) -> Path:
    """Convert ``tower.core`` and write it to ``directory/QUERY_CORE_FILE``."""
    spec = spec_of(tower.encode(example_inputs(query_inputs(tower.cfg)), training=False))
    return write_onnx(lambda encoded: tower.core(encoded, training=False), spec,
                      Path(directory) / QUERY_CORE_FILE, "query tower")


__all__ = ["write_query_encoding", "write_query_core"]
