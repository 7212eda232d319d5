"""Feature tables and Feast definitions shared by the Beam jobs, the loaders and the repos."""

from recsys.features.tables import FEATURE_TABLES, WINDOWS_DAYS, FeatureTable

__all__ = ["FEATURE_TABLES", "FeatureTable", "WINDOWS_DAYS"]
