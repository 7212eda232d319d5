"""Serving: the TF Serving-compatible model server (``server.ModelServer``, REST in
``rest_api``, gRPC in ``grpc_api``) and the recommendation service
(``serving.recommendations``: features -> retrieval -> ranking -> rules -> top N).

Imports only the ground (``recsys``; the model contract in ``recsys.model_contract``), never
``trainer`` or ``beam_jobs``. Importing it guarantees Keras 2 for TensorFlow Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
