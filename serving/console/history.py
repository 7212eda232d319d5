"""The last hour of the service, sampled: what the console's overview draws.

Prometheus counters only ever grow, and the console must draw rates and percentiles "over the
last hour" without a Prometheus server. A background thread reads the service's own metrics
(``ServiceMetrics.render``: with several processes, their sum) every ``interval_s`` and keeps
the last ``points`` readings; the overview turns consecutive readings into per-interval
rates and histogram percentiles.

Guarantees: a reading costs one render and parse of the service's metrics (a few
milliseconds every ``interval_s``, off the request path, nothing per request); the buffer
holds at most ``points`` readings; a counter that went down (a worker restarted) yields no
negative rate: that interval counts from zero. Each process samples on its own, so any
process answers the console with the whole service's figures.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)
Key = tuple  # (sample name, sorted label items)
STAGES = ("features", "retrieval", "candidates", "ranking", "exploration", "rules")


@dataclass(frozen=True)
class Reading:
    """One sample of the service's counters and gauges at ``at`` (Unix seconds)."""

    at: float
    values: dict = field(default_factory=dict)  # Key -> value

    def total(self, name: str, **match: str) -> float:
        """The sum of ``name``'s samples whose labels include ``match``."""
        wanted = set(match.items())
        return sum(v for (n, labels), v in self.values.items()
                   if n == name and wanted <= set(labels))

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        """``name``'s samples summed by the value of ``label``."""
        wanted, out = set(match.items()), {}
        for (n, labels), v in self.values.items():
            if n == name and wanted <= set(labels):
                key = dict(labels).get(label)
                if key is not None:
                    out[key] = out.get(key, 0.0) + v
        return out


def parse_metrics(text: str, at: float) -> Reading:
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            key = (sample.name, labels)
            values[key] = values.get(key, 0.0) + sample.value
    return Reading(at, values)


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Per-key increase; a key that went down (a restart) counts from zero."""
    return {k: (v - before.get(k, 0.0)) if v >= before.get(k, 0.0) else v
            for k, v in after.items()}


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """PromQL's ``histogram_quantile`` over cumulative ``buckets`` (upper bound -> count), in
    the buckets' unit; None without observations."""
    from recsys.monitoring.canary import LabelWindow

    value = LabelWindow(buckets=buckets).quantile(q)
    return None if math.isnan(value) else value


class MetricsHistory:
    """The last ``points`` readings of ``render()``, one every ``interval_s``."""

    def __init__(self, render: Callable[[], bytes], interval_s: float = 10.0,
                 points: int = 360, clock: Callable[[], float] = time.time,
                 extra: Callable[[], dict[str, float | None]] | None = None):
        """``extra``: more gauges to read with each sample (the event stream's), kept under
        their names; one that fails is left out of that reading."""
        self.render, self.interval_s, self.clock = render, interval_s, clock
        self.extra = extra
        self.readings: deque[Reading] = deque(maxlen=points)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sample(self) -> Reading:
        """Take one reading now (the thread calls it; tests too)."""
        reading = parse_metrics(self.render().decode(), self.clock())
        if self.extra is not None:
            try:
                reading.values.update({(f"extra:{k}", ()): v for k, v in self.extra().items()
                                       if v is not None})
            except Exception as exc:  # noqa: BLE001 - the stream is down: no stream figures
                log.debug("console history: no extra reading: %r", exc)
        with self._lock:
            self.readings.append(reading)
        return reading

    def start(self) -> "MetricsHistory":
        def loop():
            while not self._stop.is_set():
                try:
                    self.sample()
                except Exception as exc:  # noqa: BLE001 - a bad reading is skipped, logged
                    log.warning("console history: a reading failed: %r", exc)
                self._stop.wait(self.interval_s)
        self._thread = threading.Thread(target=loop, name="recsys-console-history",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def latest_by(self, name: str, *labels: str) -> dict[tuple, float]:
        """``name``'s samples in the newest reading, summed by the values of ``labels``."""
        readings = self.snapshot()
        out: dict[tuple, float] = {}
        if not readings:
            return out
        for (n, items), value in readings[-1].values.items():
            if n == name:
                found = dict(items)
                key = tuple(found.get(label) for label in labels)
                out[key] = out.get(key, 0.0) + value
        return out

    def snapshot(self) -> list[Reading]:
        with self._lock:
            return list(self.readings)

    def series(self, since_s: float = 3600.0) -> dict:
        """Per interval over the last ``since_s``: requests/s by tier, fallbacks/s by reason,
        refusals/s by status, ingested records/s by status, and each stage's p50 and p99 in
        ms (None where the stage did not run)."""
        readings = [r for r in self.snapshot() if r.at >= self.clock() - since_s]
        out: dict = {"t": [], "requests_per_s": {}, "fallbacks_per_s": {},
                     "errors_per_s": {}, "ingested_per_s": {},
                     "stage_p50_ms": {s: [] for s in STAGES},
                     "stage_p99_ms": {s: [] for s in STAGES}, "total_p50_ms": [],
                     "total_p99_ms": [], "extra": {}}
        names = sorted({n[len("extra:"):] for r in readings for (n, _) in r.values
                        if n.startswith("extra:")})
        for before, after in zip(readings, readings[1:]):
            dt = max(after.at - before.at, 1e-9)
            out["t"].append(round(after.at, 3))
            n = len(out["t"])
            for key, name, label, match in (
                    ("requests_per_s", "recsys_requests_total", "tier",
                     {"endpoint": "recommendations"}),
                    ("fallbacks_per_s", "recsys_fallbacks_total", "reason", {}),
                    ("errors_per_s", "recsys_request_errors_total", "status", {}),
                    ("ingested_per_s", "recsys_ingested_records_total", "status", {})):
                delta = _delta(after.by(name, label, **match), before.by(name, label, **match))
                for value_key, value in delta.items():
                    column = out[key].setdefault(value_key, [0.0] * (n - 1))
                    column.append(round(value / dt, 4))
                for column in out[key].values():
                    column.extend([0.0] * (n - len(column)))
            for stage in STAGES:
                buckets = _delta(_buckets(after, "recsys_stage_latency_seconds_bucket",
                                          stage=stage),
                                 _buckets(before, "recsys_stage_latency_seconds_bucket",
                                          stage=stage))
                for q, key in ((0.5, "stage_p50_ms"), (0.99, "stage_p99_ms")):
                    value = histogram_quantile(buckets, q)
                    out[key][stage].append(None if value is None else round(value * 1000, 3))
            total = _delta(_buckets(after, "recsys_request_latency_seconds_bucket",
                                    endpoint="recommendations"),
                           _buckets(before, "recsys_request_latency_seconds_bucket",
                                    endpoint="recommendations"))
            for q, key in ((0.5, "total_p50_ms"), (0.99, "total_p99_ms")):
                value = histogram_quantile(total, q)
                out[key].append(None if value is None else round(value * 1000, 3))
            for name in names:
                out["extra"].setdefault(name, []).append(after.values.get((f"extra:{name}", ())))
        return out


def _buckets(reading: Reading, name: str, **match: str) -> dict[float, float]:
    return {float(le): v for le, v in reading.by(name, "le", **match).items()}


__all__ = ["MetricsHistory", "Reading", "parse_metrics", "histogram_quantile", "STAGES"]
