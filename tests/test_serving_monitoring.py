"""Tests of serving.monitoring: the MonitoringConfig file and TF Serving's Prometheus page."""

from __future__ import annotations

import enum
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from recsys.errors import ConfigError
from serving.monitoring import (
    LATENCY_BUCKETS,
    PROMETHEUS_PATH,
    PrometheusSettings,
    ServingMetrics,
    exponential_buckets,
    load_monitoring_config,
)

# --- configuration -------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitoring.config"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_enabled_config_with_path(tmp_path: Path) -> None:
    path = _config(tmp_path, 'prometheus_config {\n  enable: true,\n  path: "/metrics"\n}\n')
    assert load_monitoring_config(path) == PrometheusSettings(enable=True, path="/metrics")


def test_empty_path_means_default_path(tmp_path: Path) -> None:
    for text in ["prometheus_config { enable: true }",
                 "prometheus_config { enable: true path: '' }"]:
        settings = load_monitoring_config(_config(tmp_path, text))
        assert settings == PrometheusSettings(enable=True, path=PROMETHEUS_PATH)
    assert PROMETHEUS_PATH == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize("text", [
    "prometheus_config { enable: false path: '/m' }",
    "prometheus_config { }",
    "# nothing configured\n",
    "",
])
def test_disabled_unless_enable_is_true(tmp_path: Path, text: str) -> None:
    assert load_monitoring_config(_config(tmp_path, text)).enable is False


def test_accepts_protobuf_text_format_syntax(tmp_path: Path) -> None:
    # Angle brackets, ':' before a message, single quotes and comments are all text format.
    text = "# comment\nprometheus_config: < enable: True ; path: '/x' >\n"
    assert load_monitoring_config(_config(tmp_path, text)) == PrometheusSettings(True, "/x")


@pytest.mark.parametrize("text, detail", [
    ("prometheus_config { enable: yes }", "enable"),
    ("prometheus_config { enable: true", "prometheus_config"),
    ("prometheus_config { port: 9 }", "port"),
    ("enable: true", "enable"),
    ('prometheus_config { path: "/a" path: "/b" }', "path"),
])
def test_invalid_text_names_the_file(tmp_path: Path, text: str, detail: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigError, match="Invalid protobuf file") as info:
        load_monitoring_config(path)
    assert f"'{path}'" in str(info.value)
    assert detail in str(info.value)


def test_path_must_be_absolute(tmp_path: Path) -> None:
    path = _config(tmp_path, "prometheus_config { enable: true path: 'metrics' }")
    with pytest.raises(ConfigError, match="must start with '/'") as info:
        load_monitoring_config(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.config"
    with pytest.raises(ConfigError, match="--monitoring_config_file: no such file") as info:
        load_monitoring_config(path)
    assert f"'{path}'" in str(info.value)


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.config"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=str(path)):
        load_monitoring_config(path)


# --- rendering -----------------------------------------------------------------------------

SMALL_PAGE = r"""# TYPE :recsys:serving:request_latency histogram
:recsys:serving:request_latency_bucket{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND",le="10"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND",le="18"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND",le="32.4"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND",le="+Inf"} 1
:recsys:serving:request_latency_sum{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND"} 5
:recsys:serving:request_latency_count{model_name="movies",version="",signature="",entrypoint="GRPC",status="NOT_FOUND"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK",le="10"} 0
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK",le="18"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK",le="32.4"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK",le="+Inf"} 1
:recsys:serving:request_latency_sum{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK"} 10
:recsys:serving:request_latency_count{model_name="movies",version="2",signature="serving_default",entrypoint="GRPC",status="OK"} 1
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK",le="10"} 0
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK",le="18"} 0
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK",le="32.4"} 0
:recsys:serving:request_latency_bucket{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK",le="+Inf"} 1
:recsys:serving:request_latency_sum{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK"} 40
:recsys:serving:request_latency_count{model_name="movies",version="2",signature="serving_default",entrypoint="REST",status="OK"} 1
# TYPE :tensorflow:serving:model_warmup_latency histogram
:tensorflow:serving:model_warmup_latency_bucket{model_path="/models/m\"x\\1",status="OK",le="10"} 0
:tensorflow:serving:model_warmup_latency_bucket{model_path="/models/m\"x\\1",status="OK",le="18"} 0
:tensorflow:serving:model_warmup_latency_bucket{model_path="/models/m\"x\\1",status="OK",le="32.4"} 0
:tensorflow:serving:model_warmup_latency_bucket{model_path="/models/m\"x\\1",status="OK",le="+Inf"} 1
:tensorflow:serving:model_warmup_latency_sum{model_path="/models/m\"x\\1",status="OK"} 1200
:tensorflow:serving:model_warmup_latency_count{model_path="/models/m\"x\\1",status="OK"} 1
# TYPE :tensorflow:serving:request_count counter
:tensorflow:serving:request_count{model_name="movies",status="NOT_FOUND"} 1
:tensorflow:serving:request_count{model_name="movies",status="OK"} 2
# TYPE :tensorflow:serving:request_latency histogram
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="GRPC",le="10"} 0
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="GRPC",le="18"} 1
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="GRPC",le="32.4"} 1
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="GRPC",le="+Inf"} 1
:tensorflow:serving:request_latency_sum{model_name="movies",API="Predict",entrypoint="GRPC"} 10
:tensorflow:serving:request_latency_count{model_name="movies",API="Predict",entrypoint="GRPC"} 1
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="REST",le="10"} 0
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="REST",le="18"} 0
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="REST",le="32.4"} 0
:tensorflow:serving:request_latency_bucket{model_name="movies",API="Predict",entrypoint="REST",le="+Inf"} 1
:tensorflow:serving:request_latency_sum{model_name="movies",API="Predict",entrypoint="REST"} 40
:tensorflow:serving:request_latency_count{model_name="movies",API="Predict",entrypoint="REST"} 1
"""  # noqa: E501


def _small_metrics() -> ServingMetrics:
    metrics = ServingMetrics(latency_buckets=(10, 18, 32.4))
    # 10 µs equals a limit: like TF's Histogram (std::upper_bound) it counts in the next bucket.
    metrics.record_request("movies", "Predict", "GRPC", "OK", 10e-6, version=2,
                           signature="serving_default")
    metrics.record_request("movies", "Predict", "REST", "OK", 40e-6, version=2,
                           signature="serving_default")
    # A failed call counts, but TF Serving records no request_latency for it.
    metrics.record_request("movies", "Predict", "GRPC", "NOT_FOUND", 5e-6)
    metrics.record_warmup('/models/m"x\\1', "OK", 0.0012)
    return metrics


def test_renders_tf_serving_page_exactly() -> None:
    assert _small_metrics().render() == SMALL_PAGE


def test_empty_page_has_only_type_lines() -> None:
    assert ServingMetrics().render() == (
        "# TYPE :recsys:serving:request_latency histogram\n"
        "# TYPE :tensorflow:serving:model_warmup_latency histogram\n"
        "# TYPE :tensorflow:serving:request_count counter\n"
        "# TYPE :tensorflow:serving:request_latency histogram\n")


def test_default_buckets_are_tf_servings_exponential_10_1_8_33() -> None:
    assert LATENCY_BUCKETS == exponential_buckets(10, 1.8, 33)
    metrics = ServingMetrics()
    metrics.record_request("m", "Predict", "GRPC", "OK", 0.001)
    limits = [line.split('le="')[1].split('"')[0] for line in metrics.render().splitlines()
              if line.startswith(":tensorflow:serving:request_latency_bucket")]
    assert limits == [
        "10", "18", "32.4", "58.32", "104.976", "188.957", "340.122", "612.22", "1102",
        "1983.59", "3570.47", "6426.84", "11568.3", "20823", "37481.3", "67466.4", "121440",
        "218591", "393464", "708235", "1.27482e+06", "2.29468e+06", "4.13043e+06",
        "7.43477e+06", "1.33826e+07", "2.40887e+07", "4.33596e+07", "7.80473e+07",
        "1.40485e+08", "2.52873e+08", "4.55172e+08", "8.19309e+08", "1.47476e+09", "+Inf"]


def test_sum_has_six_significant_digits_like_absl_strcat() -> None:
    metrics = ServingMetrics(latency_buckets=(10,))
    metrics.record_warmup("/m/1", "OK", 1.234567)
    assert ':tensorflow:serving:model_warmup_latency_sum{model_path="/m/1",status="OK"} ' \
           '1.23457e+06\n' in metrics.render()


def test_status_may_be_a_code_enum() -> None:
    class Code(enum.IntEnum):
        OK = 0
        INVALID_ARGUMENT = 3

    metrics = ServingMetrics()
    metrics.record_request("m", "Regress", "REST", Code.INVALID_ARGUMENT, 0.0)
    assert metrics.request_count("m", "INVALID_ARGUMENT") == 1
    assert metrics.request_count("m", Code.INVALID_ARGUMENT) == 1
    assert metrics.request_count("m", Code.OK) == 0


def test_buckets_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        ServingMetrics(latency_buckets=(10, 10))


def test_prometheus_parses_the_page() -> None:
    metrics = _small_metrics()
    metrics.record_request('we"ird\\na\nme', "Classify", "GRPC", "OK", 0.5)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}

    assert {name: f.type for name, f in families.items()} == {
        ":recsys:serving:request_latency": "histogram",
        ":tensorflow:serving:model_warmup_latency": "histogram",
        ":tensorflow:serving:request_count": "counter",
        ":tensorflow:serving:request_latency": "histogram",
    }
    counts = {(s.labels["model_name"], s.labels["status"]): s.value
              for s in families[":tensorflow:serving:request_count"].samples}
    assert counts == {("movies", "NOT_FOUND"): 1, ("movies", "OK"): 2,
                      ('we"ird\\na\nme', "OK"): 1}
    warmup = families[":tensorflow:serving:model_warmup_latency"].samples
    assert {s.labels["model_path"] for s in warmup} == {'/models/m"x\\1'}


# --- concurrency ---------------------------------------------------------------------------


def test_concurrent_recording_loses_nothing() -> None:
    threads, per_thread = 16, 400
    metrics = ServingMetrics()
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            status = "OK" if i % 4 else "INVALID_ARGUMENT"
            entry = "GRPC" if index % 2 else "REST"
            metrics.record_request("m", "Predict", entry, status, 25e-6, version=1,
                                   signature="serving_default")
            metrics.record_warmup(f"/m/{index % 3}", "OK", 7e-6)
            metrics.render()  # rendering while others record must be safe too

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    total = threads * per_thread
    failed = threads * (per_thread // 4)
    assert metrics.request_count("m", "OK") == total - failed
    assert metrics.request_count("m", "INVALID_ARGUMENT") == failed

    samples = [s for f in text_string_to_metric_families(metrics.render()) for s in f.samples]

    def value(name: str, **labels) -> float:
        return sum(s.value for s in samples if s.name == name
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    tf_latency = ":tensorflow:serving:request_latency"
    assert value(tf_latency + "_count") == total - failed
    assert value(tf_latency + "_bucket", le="+Inf") == total - failed
    assert value(tf_latency + "_bucket", le="18") == 0
    assert value(tf_latency + "_bucket", le="32.4") == total - failed
    assert value(tf_latency + "_sum") == 25 * (total - failed)
    assert value(":recsys:serving:request_latency_count") == total
    assert value(":recsys:serving:request_latency_count", status="INVALID_ARGUMENT") == failed
    assert value(":tensorflow:serving:model_warmup_latency_count") == total
    assert value(":tensorflow:serving:model_warmup_latency_sum") == 7 * total
