"""Serving: the TF Serving-compatible model server (``server.ModelServer``, REST in
``rest_api``, gRPC in ``grpc_api``); the recommendation API comes with issue 6.

Importing this package guarantees Keras 2 for TensorFlow Recommenders.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
