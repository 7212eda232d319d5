"""Prometheus metrics of the monitoring jobs (`recsys monitor ...`) and of the model registry,
in a registry of their own.

The jobs are one-shot steps (cron, Airflow), so they do not serve ``/metrics``: each writes its
gauges in Prometheus' text format to ``--metrics-file`` (node_exporter's textfile collector
reads a directory of such ``*.prom`` files; ``write`` replaces the file atomically, so the
collector never reads half a file). The alert rules of ``monitoring/alerts.yaml`` are written
against these names (``tests/test_alert_rules.py`` checks it).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest


class MonitoringMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.drift_statistic = Gauge(
            "recsys_drift_statistic", "A feature's drift statistic in the latest window (a "
            "p-value for ks/z/chi_square, a distance otherwise).",
            ["model", "feature", "test"], registry=r)
        self.drift_detected = Gauge(
            "recsys_drift_detected", "1 when the feature drifted in the latest window.",
            ["model", "feature"], registry=r)
        self.drift_alert = Gauge(
            "recsys_drift_alert", "1 when the feature drifted in consecutive_windows windows "
            "in a row.", ["model", "feature"], registry=r)
        self.embedding_drift = Gauge(
            "recsys_embedding_drift_p_value", "Query embeddings' MMD permutation-test p-value "
            "in the latest window.", ["model"], registry=r)
        self.skew_share = Gauge(
            "recsys_feature_skew_share", "Share of sampled (entity, time) pairs whose online "
            "value differs from the offline store's point-in-time value.",
            ["feature_view", "feature"], registry=r)
        self.skew_detected = Gauge(
            "recsys_feature_skew_detected", "1 when the feature's skew share is above its "
            "threshold.", ["feature_view", "feature"], registry=r)
        self.index_recall = Gauge(
            "recsys_index_recall", "Recall@k of the served ANN index against exact search on "
            "sampled queries.", ["model", "version", "k"], registry=r)
        self.index_recall_threshold = Gauge(
            "recsys_index_recall_threshold", "The recall@k below which the index is unhealthy.",
            ["model", "version", "k"], registry=r)
        self.alias_version = Gauge(
            "recsys_model_alias_version", "The version an alias (stable, canary) names.",
            ["model", "alias"], registry=r)
        self.controller_stage = Gauge(
            "recsys_controller_stage", "1 for the stage the retraining controller is in "
            "(idle, retraining, gating, canary), 0 for the others.", ["stage"], registry=r)
        self.controller_decision = Gauge(
            "recsys_controller_last_decision_timestamp_seconds", "When the controller last "
            "took each kind of decision (retrain, refuse, promote, rollback).", ["decision"],
            registry=r)
        self.last_run = Gauge(
            "recsys_monitor_last_run_timestamp_seconds", "When a monitoring check last "
            "finished (Unix seconds).", ["check"], registry=r)

    def finished(self, check: str, at: float | None = None) -> None:
        self.last_run.labels(check).set(time.time() if at is None else at)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def write(self, path: Path) -> None:
        """Write the text format to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self.render())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


__all__ = ["MonitoringMetrics"]
