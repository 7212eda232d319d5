"""Monitoring: whether what the service sees still looks like what its models were trained on.

``drift.py``: per feature, a window's values against the reference's, with the test chosen
by type and sample size (Evidently's defaults, computed with SciPy); ``embedding_drift.py``:
query embeddings by the maximum mean discrepancy with a permutation test.
"""
