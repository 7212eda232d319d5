"""The stream worker: consumers of the event stream's consumer group that apply each entry
once (session state and item counters pushed to Feast, catalogue rows, the lake or the
PostgreSQL event log, the fresh-item index), with dead letters and a clean stop.

A peer of ``serving`` and ``beam_jobs``: it imports only the ground (``recsys``).
"""

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)
