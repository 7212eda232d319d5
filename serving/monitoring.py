"""Prometheus monitoring as TF Serving does it: the ``MonitoringConfig`` file and the metrics page.

Guarantees:

* ``load_monitoring_config`` accepts exactly protobuf text format (the same parser family as
  TF Serving's C++ ``TextFormat``) for ``tensorflow.serving.MonitoringConfig``; an empty
  ``path`` means ``/monitoring/prometheus/metrics``. A missing or invalid file is a
  ``ConfigError`` naming the file.
* ``ServingMetrics`` is thread-safe; ``render()`` reproduces TF Serving's
  ``PrometheusExporter::GeneratePage``: only ``# TYPE`` lines (no ``HELP``), metrics ordered by
  their TF name, points ordered by label values, histogram buckets cumulative with an upper
  bound (``le``) printed like ``absl::StrCat(double)`` (6 significant digits), then ``_sum``
  and ``_count``, and a final newline. A value equal to a bucket limit counts in the *next*
  bucket, as in ``tensorflow::histogram::Histogram::Add`` (``std::upper_bound``).

The only difference from TF Serving: a newline in a label value is written as ``\\n`` (TF writes
it raw, which no Prometheus parser accepts).
"""

from __future__ import annotations

import bisect
import enum
import itertools
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from recsys.errors import ConfigError

__all__ = [
    "PROMETHEUS_PATH",
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "PrometheusSettings",
    "load_monitoring_config",
    "exponential_buckets",
    "ServingMetrics",
]

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
CONTENT_TYPE = "text/plain"


def exponential_buckets(scale: float, growth_factor: float, count: int) -> tuple[float, ...]:
    """Bucket limits of ``monitoring::Buckets::Exponential`` (computed by repeated product)."""
    if count <= 0:
        raise ValueError(f"count must be > 0, got {count}")
    limits, bound = [], float(scale)
    for _ in range(count):
        limits.append(bound)
        bound *= growth_factor
    return tuple(limits)


# "Scale of 10, power of 1.8 with bucket count 33 (~20 minutes)", in microseconds.
LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusSettings:
    """``MonitoringConfig.prometheus_config``: serve the page at ``path`` when ``enable``."""

    enable: bool = False
    path: str = PROMETHEUS_PATH


def _monitoring_config_class():
    """``tensorflow.serving.MonitoringConfig``, built in a private descriptor pool (the
    tensorflow-serving-api wheel does not ship ``monitoring_config_pb2``)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving", syntax="proto3")
    field = descriptor_pb2.FieldDescriptorProto
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL,
                         label=field.LABEL_OPTIONAL, json_name="enable")
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING,
                         label=field.LABEL_OPTIONAL, json_name="path")
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=field.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig",
                         label=field.LABEL_OPTIONAL, json_name="prometheusConfig")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


MonitoringConfig = _monitoring_config_class()

_EXAMPLE = f'prometheus_config {{ enable: true, path: "{PROMETHEUS_PATH}" }}'


def load_monitoring_config(path: Path) -> PrometheusSettings:
    """Parse the text-format ``MonitoringConfig`` at ``path`` (``--monitoring_config_file``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"--monitoring_config_file: no such file: '{path}'; pass the path "
                          f"of a text MonitoringConfig such as {_EXAMPLE}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--monitoring_config_file: cannot read '{path}': {exc}") from exc
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"Invalid protobuf file: '{path}': {exc}; expected a text "
                          f"MonitoringConfig such as {_EXAMPLE}") from exc
    prometheus = config.prometheus_config
    route = prometheus.path or PROMETHEUS_PATH
    if not route.startswith("/"):
        raise ConfigError(f"Invalid protobuf file: '{path}': prometheus_config.path "
                          f"{route!r} must start with '/', e.g. \"{PROMETHEUS_PATH}\"")
    return PrometheusSettings(enable=prometheus.enable, path=route)


# --- metrics -------------------------------------------------------------------------------


def _format_double(value: float) -> str:
    """``absl::StrCat(double)``: 6 significant digits, %g style (``1e+06``, ``inf``)."""
    return format(value, "g")


def _metric_name(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + name if name[:1].isdigit() else name


def _label_name(name: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9]", "_", name)
    return "_" + name if name[:1].isdigit() else name


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _status_name(status) -> str:
    return status.name if isinstance(status, enum.Enum) else str(status)


def _microseconds(seconds: float) -> int:
    """TF Serving records whole microseconds and clamps clock skew to 0."""
    return max(0, round(seconds * 1_000_000))


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, size: int):
        self.counts = [0] * size
        self.sum = 0.0


class _Metric:
    """One TF monitoring metric: a ``Counter<N>`` or a ``Sampler<N>`` (histogram)."""

    def __init__(self, name: str, kind: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...] = ()):
        self.name, self.kind, self.labels, self.buckets = name, kind, labels, buckets
        self.cells: dict[tuple[str, ...], int | _Histogram] = {}

    def add(self, values: tuple[str, ...], amount: float) -> None:
        if self.kind == "counter":
            self.cells[values] = self.cells.get(values, 0) + int(amount)
            return
        cell = self.cells.get(values)
        if cell is None:
            cell = self.cells[values] = _Histogram(len(self.buckets) + 1)
        cell.counts[bisect.bisect_right(self.buckets, amount)] += 1
        cell.sum += amount

    def lines(self) -> list[str]:
        name = _metric_name(self.name)
        out = [f"# TYPE {name} {self.kind}"]
        for values in sorted(self.cells):
            labels = ",".join(f'{_label_name(k)}="{_label_value(v)}"'
                              for k, v in zip(self.labels, values))
            cell = self.cells[values]
            if self.kind == "counter":
                out.append(f"{name}{{{labels}}} {cell}")
                continue
            prefix = f"{name}_bucket{{{labels}{',' if labels else ''}"
            cumulative = 0
            for i, count in enumerate(cell.counts):
                cumulative += count
                limit = _format_double(self.buckets[i]) if i < len(self.buckets) else "+Inf"
                out.append(f'{prefix}le="{limit}"}} {cumulative}')
            out.append(f"{name}_sum{{{labels}}} {_format_double(cell.sum)}")
            out.append(f"{name}_count{{{labels}}} {cumulative}")
        return out


class ServingMetrics:
    """The serving metrics, named and labelled as TF Serving names them, plus one of ours.

    * ``/tensorflow/serving/request_count{model_name,status}``: counter, every Predict,
      Classify and Regress call.
    * ``/tensorflow/serving/request_latency{model_name,API,entrypoint}``: histogram (µs), only
      successful calls (TF Serving records latency only when the status is OK).
    * ``/tensorflow/serving/model_warmup_latency{model_path,status}``: histogram (µs).
    * ``/recsys/serving/request_latency{model_name,version,signature,entrypoint,status}``:
      histogram (µs), every call; ours, for latency by version, signature and status.

    Page names replace ``/`` by ``:`` (``:tensorflow:serving:request_count``).
    """

    REQUEST_COUNT = "/tensorflow/serving/request_count"
    REQUEST_LATENCY = "/tensorflow/serving/request_latency"
    WARMUP_LATENCY = "/tensorflow/serving/model_warmup_latency"
    RECSYS_REQUEST_LATENCY = "/recsys/serving/request_latency"

    def __init__(self, latency_buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        """``latency_buckets``: histogram limits in µs (TF Serving's; change only in tests)."""
        buckets = tuple(float(b) for b in latency_buckets)
        if not buckets or any(b >= c for b, c in itertools.pairwise(buckets)):
            raise ValueError(f"latency_buckets must be non-empty and strictly increasing, "
                             f"got {latency_buckets!r}")
        self._lock = threading.Lock()
        metrics = [
            _Metric(self.REQUEST_COUNT, "counter", ("model_name", "status")),
            _Metric(self.REQUEST_LATENCY, "histogram", ("model_name", "API", "entrypoint"),
                    buckets),
            _Metric(self.WARMUP_LATENCY, "histogram", ("model_path", "status"),
                    buckets),
            _Metric(self.RECSYS_REQUEST_LATENCY, "histogram",
                    ("model_name", "version", "signature", "entrypoint", "status"),
                    buckets),
        ]
        # The page lists metrics in the order of their TF names (a std::map in TF).
        self._metrics = {m.name: m for m in sorted(metrics, key=lambda m: m.name)}

    def record_request(self, model_name: str, api: str, entrypoint: str, status_name,
                       seconds: float, *, version: int | str | None = None,
                       signature: str = "") -> None:
        """Record one Predict/Classify/Regress call that took ``seconds``.

        Args:
            model_name: the model name of the request.
            api: ``"Predict"``, ``"Classify"`` or ``"Regress"``.
            entrypoint: ``"GRPC"`` or ``"REST"``.
            status_name: the TF error code name (``"OK"``, ``"NOT_FOUND"``, ...) or a code enum.
            seconds: wall time of the call.
            version: the version that served the call (``None`` or ``""``: none resolved).
            signature: the signature that was run (``""`` if none was resolved).
        """
        status = _status_name(status_name)
        micros = _microseconds(seconds)
        with self._lock:
            self._metrics[self.REQUEST_COUNT].add((model_name, status), 1)
            if status == "OK":
                self._metrics[self.REQUEST_LATENCY].add((model_name, api, entrypoint), micros)
            self._metrics[self.RECSYS_REQUEST_LATENCY].add(
                (model_name, "" if version is None else str(version), signature, entrypoint,
                 status), micros)

    def record_warmup(self, model_path: str, status_name, seconds: float) -> None:
        """Record one warm-up of the version at ``model_path`` (TF Serving's ``export_dir``).

        TF Serving labels the status with ``Status::ToString()``: ``"OK"`` on success, or
        ``"<CODE>: <message>"`` on failure.
        """
        with self._lock:
            self._metrics[self.WARMUP_LATENCY].add(
                (str(model_path), _status_name(status_name)), _microseconds(seconds))

    def request_count(self, model_name: str, status_name) -> int:
        """The current ``request_count`` for ``model_name`` and ``status_name``."""
        with self._lock:
            return self._metrics[self.REQUEST_COUNT].cells.get(
                (model_name, _status_name(status_name)), 0)

    def render(self) -> str:
        """The Prometheus page, byte-compatible with TF Serving's ``GeneratePage``."""
        with self._lock:
            lines = [line for metric in self._metrics.values() for line in metric.lines()]
        return "\n".join(lines) + "\n"
