"""The model contract: what the trainer writes and every reader of a SavedModel relies on.

Input specs of the towers and the ranker (:mod:`.feature_spec`, :mod:`.ranker_inputs`), the
model configs that determine them (:mod:`.retrieval_config`, :mod:`.ranker_config`), how
tables become input arrays (:mod:`.arrays`), the manifest beside each version
(:mod:`.manifest`, :mod:`.saved_model_ops`) and the numeric version layout of a model base
path (:mod:`.versioning`). Nothing here imports TensorFlow at import time.
"""
