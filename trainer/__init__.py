"""Model training: the TFRS two-tower retrieval model (``retrieval_model``, ``train``,
``export``) and the transformer ranker (``trainer.ranking``).

Importing this package guarantees Keras 2 for TensorFlow Recommenders; it imports nothing
heavy itself (no TFRS, no ScaNN), so a process can read SavedModels without them.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
