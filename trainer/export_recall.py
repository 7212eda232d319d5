"""Recall@10 of an exported ``retrieval`` (ScaNN) version against exact search, measured the
way a server sees it: in a fresh process, through ``tf.saved_model.load`` and the signatures.

The oracle is the same version's ``retrieval_portable`` artifact: brute force over the same
item embeddings. Run ``python -m trainer.export_recall BASE VERSION QUERIES.parquet``; it
prints one JSON line ``{"recall@10": ..., "queries": ...}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import recsys  # noqa: F401  (Keras 2 before TensorFlow)


def scann_recall(base: Path, version: int, queries_parquet: Path) -> dict:
    import pandas as pd
    import scann  # noqa: F401  (registers the Scann ops, as a server of this model must)
    import tensorflow as tf

    from recsys.model_contract.arrays import to_arrays
    from recsys.model_contract.feature_spec import query_inputs
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.retrieval_config import model_config_of

    scann_path = base / "retrieval" / str(version)
    cfg = model_config_of(read_manifest(scann_path))
    feed = {k: tf.constant(v) for k, v in
            to_arrays(pd.read_parquet(queries_parquet), query_inputs(cfg)).items()}
    found = tf.saved_model.load(str(scann_path)).signatures["retrieval"](**feed)
    exact = tf.saved_model.load(str(base / "retrieval_portable" / str(version))).signatures[
        "retrieval"](**feed)
    a, b = found["item_ids"].numpy()[:, :10], exact["item_ids"].numpy()[:, :10]
    hits = sum(len(set(x) & set(y)) for x, y in zip(a, b))
    return {"recall@10": hits / b.size, "queries": int(b.shape[0])}


if __name__ == "__main__":
    print(json.dumps(scann_recall(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))))
