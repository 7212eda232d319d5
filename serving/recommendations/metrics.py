"""Prometheus metrics of the recommendation service, in a registry of its own.

Guarantees: every finished request increments ``recsys_requests_total`` once with the tier
that served it; every request not served by the full pipeline increments
``recsys_fallbacks_total`` once with its tier and the first reason; each stage that ran
observes its latency, labelled by stage and outcome. Every answer is also counted once under
the model version label whose pipeline served it (``recsys_model_label_requests_total``,
``recsys_model_label_latency_seconds``; ``default`` for the service's own versions), and
every pipeline run adds its CPU seconds under its label
(``recsys_model_label_cpu_seconds_total``): the canary's guardrails compare two labels from
these. With ``multiprocess_dir`` (the
``PROMETHEUS_MULTIPROC_DIR`` of `recsys api --workers N`), ``render`` reports every worker's
counts summed, and the breaker states of each live worker (label ``pid``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)
# finer between 5 and 250 ms, where a canary's p99 is compared with stable's
LABEL_LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                         0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1.0, 2.5)
DEFAULT_LABEL = "default"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class ServiceMetrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter("recsys_requests", "Recommendation requests by serving tier.",
                                ["endpoint", "tier"], registry=self.registry)
        self.errors = Counter("recsys_request_errors", "Requests refused, by HTTP status.",
                              ["endpoint", "status"], registry=self.registry)
        self.fallbacks = Counter("recsys_fallbacks", "Requests served below the full tier.",
                                 ["tier", "reason"], registry=self.registry)
        self.request_latency = Histogram("recsys_request_latency_seconds",
                                         "Whole-request latency.", ["endpoint"],
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self.label_requests = Counter(
            "recsys_model_label_requests", "Recommendation answers by the model version label "
            "that served them (default: the service's own versions) and tier.",
            ["model_label", "tier"], registry=self.registry)
        self.label_latency = Histogram(
            "recsys_model_label_latency_seconds", "Whole-request latency by the model version "
            "label that served the request.", ["model_label"], buckets=LABEL_LATENCY_BUCKETS,
            registry=self.registry)
        self.label_cpu = Counter(
            "recsys_model_label_cpu_seconds", "CPU seconds the service's threads spent in the "
            "pipelines of the model version label (serving/recommendations/cpu_account.py).",
            ["model_label"], registry=self.registry)
        self.stage_latency = Histogram("recsys_stage_latency_seconds",
                                       "Latency of each pipeline stage (the dependency calls, "
                                       "the candidates and rules steps).", ["stage", "outcome"],
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.breaker_state = Gauge("recsys_circuit_breaker_state",
                                   "0 closed, 1 half open, 2 open.", ["dependency"],
                                   registry=self.registry, multiprocess_mode="liveall")
        self.ingested = Counter("recsys_ingested_records", "Records posted to /v1/events and "
                                "/v1/items, by kind and outcome.", ["kind", "status"],
                                registry=self.registry)
        self.cache = Counter("recsys_cache_lookups", "Cache lookups by result.",
                             ["cache", "result"], registry=self.registry)
        self.exposures = Counter(
            "recsys_exposures", "Answers of /v1/recommendations by what became of their "
            "exposure records (logged to the stream, or dropped).", ["outcome"],
            registry=self.registry)
        self.experiment_answers = Counter(
            "recsys_experiment_answers", "Recommendation answers by experiment and arm (the "
            "console's live sample ratio check).", ["experiment", "arm"],
            registry=self.registry)
        self.experiment_reloads = Counter(
            "recsys_experiment_reloads", "Reloads of the experiments file, by outcome "
            "(loaded, or refused: the running experiments kept).", ["outcome"],
            registry=self.registry)

    def count_label(self, label: str, tier: str, seconds: float) -> None:
        label = label or DEFAULT_LABEL
        self.label_requests.labels(label, tier).inc()
        self.label_latency.labels(label).observe(seconds)

    def count_arms(self, arms: dict[str, str]) -> None:
        for experiment, arm in arms.items():
            self.experiment_answers.labels(experiment, arm).inc()

    def count_label_cpu(self, label: str, seconds: float) -> None:
        self.label_cpu.labels(label or DEFAULT_LABEL).inc(seconds)

    def breaker_changed(self, name: str, _old: str, new: str) -> None:
        self.breaker_state.labels(name).set(BREAKER_STATES.get(new, -1))

    def render(self) -> bytes:
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


__all__ = ["ServiceMetrics", "LATENCY_BUCKETS", "LABEL_LATENCY_BUCKETS", "DEFAULT_LABEL"]
