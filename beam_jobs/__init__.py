"""Apache Beam pipelines over the lake (``pipeline``): Feast feature tables, session sequences
and the retrieval model's training examples, on any Beam runner.

Imports only the ground (``recsys``); importing it guarantees Keras 2 for TensorFlow
Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
