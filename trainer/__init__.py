"""Model training: the TFRS two-tower retrieval model and the transformer ranker (issues 4, 6).

Nothing is here yet; importing it already guarantees Keras 2 for TensorFlow Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
