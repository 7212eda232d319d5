"""Apache Beam pipelines over the lake: features, session sequences, training data (issue 3).

Nothing is here yet; importing it already guarantees Keras 2 for TensorFlow Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
