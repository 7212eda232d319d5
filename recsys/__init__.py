"""recsys: the ground every part of the recommender stands on.

The data model and the lake (:mod:`recsys.data`), the feature tables and Feast definitions
(:mod:`recsys.features`), the offline evaluation protocol (:mod:`recsys.evaluation`), the model
contract (:mod:`recsys.model_contract`), the event stream's contract (:mod:`recsys.stream`),
typed configuration (:mod:`recsys.config`) and errors (:mod:`recsys.errors`). It imports no
other package of the project (docs/architecture.md).

Importing this package first (every entry point does) sets ``TF_USE_LEGACY_KERAS=1`` before
TensorFlow can be imported; see :mod:`recsys.runtime`.
"""

from recsys import runtime as _runtime  # noqa: F401  (must run before anything imports TF)

__version__ = "0.1.0"
__all__ = ["__version__"]
