"""Serving: the TF Serving-compatible model server and the recommendation API (issues 5, 6).

Nothing is here yet; importing it already guarantees Keras 2 for TensorFlow Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
