"""recsys: a real-time personalised recommender built on TFRS, Feast, Beam and TF Serving APIs.

Importing this package first (every entry point does) sets ``TF_USE_LEGACY_KERAS=1`` before
TensorFlow can be imported; see :mod:`recsys.runtime`.
"""

from recsys import runtime as _runtime  # noqa: F401  (must run before anything imports TF)

__version__ = "0.1.0"
__all__ = ["__version__"]
