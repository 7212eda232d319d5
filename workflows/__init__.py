"""The roof: the ``recsys`` command (:mod:`.cli`), the demo and the end-to-end workflows that
drive every layer below (the feature build, the quality benchmark). Nothing imports this
package but the tests and the benchmarks.
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
