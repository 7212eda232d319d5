"""`recsys models bless VERSION`: the checks a candidate must pass before it is promoted.

    recsys models bless VERSION [--model-base-path models/serving] [--against stable|N]
        [--config FILE.yaml] [--ope FILE.json] [--queries PARQUET [--requests 300]
        [--concurrency 4]]

Offline metrics from the versions' manifests (`recsys evaluate` at export), an off-policy
estimate from ``--ope`` (a JSON object with ``candidate`` and ``stable`` estimated rewards),
and retrieval's latency under load: ``--requests`` single-query calls of the version's
retrieval signature from ``--concurrency`` threads, on the same version manager and runtime
the service uses, with rows of ``--queries``. Writes ``BASE/blessings/VERSION.json``, which
`recsys models promote` requires; exits 3 when the version is not blessed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from workflows.cli.arguments import positive_int

NOT_BLESSED_EXIT = 3


def add_arguments(bless: argparse.ArgumentParser) -> None:
    bless.add_argument("version", type=positive_int, metavar="VERSION")
    bless.add_argument("--against", default="stable", metavar="stable|N",
                       help="the version to compare with (default: the stable alias)")
    bless.add_argument("--config", type=Path, metavar="FILE.yaml",
                       help="a file with a gate section (GateConfig)")
    bless.add_argument("--ope", type=Path, metavar="FILE.json",
                       help='{"candidate": R, "stable": R}: estimated rewards')
    bless.add_argument("--queries", type=Path, metavar="PARQUET",
                       help="query rows for the latency check (none: skipped)")
    bless.add_argument("--requests", type=positive_int, default=300)
    bless.add_argument("--concurrency", type=positive_int, default=4)


def blessing_path(base: Path, version: int) -> Path:
    from recsys.model_contract.registry import Registry

    return Registry(base).blessing_path(version)


def read_blessing(base: Path, version: int) -> dict | None:
    from recsys.model_contract.registry import Registry

    return Registry(base).blessing(version)


def _gate_config(path: Path | None):
    from recsys.config import read_yaml_mapping
    from recsys.monitoring.blessing import GateConfig

    if path is None:
        return GateConfig()
    return GateConfig.from_dict(read_yaml_mapping(path, "with a section gate").get("gate")
                                or {}, "gate")


def _against(registry, text: str) -> int | None:
    from recsys.errors import ConfigError

    if text.isdigit():
        return int(text)
    aliases = registry.aliases()
    if text not in ("stable", "canary"):
        raise ConfigError(f"--against must be an alias (stable, canary) or a version, got "
                          f"{text!r}")
    return aliases.get(text)


def _ope(path: Path | None) -> tuple[float | None, float | None]:
    from recsys.errors import ConfigError

    if path is None:
        return None, None
    try:
        value = json.loads(path.read_text())
        return float(value["candidate"]), float(value["stable"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"--ope {path} must be a JSON object with numbers candidate and "
                          f"stable ({type(exc).__name__}: {exc})") from None


def measure_latency(base: Path, version: int, queries: Path, requests: int,
                    concurrency: int) -> tuple[float, float]:
    """p50 and p99 (ms) of single-query retrieval calls of ``version`` under load."""
    import numpy as np

    from serving.recommendations.model_clients import InProcessModelClient
    from workflows.cli.monitor_index import query_rows

    rows = query_rows(base, version, "--queries", queries, sample=256)
    n = len(next(iter(rows.values())))
    client = InProcessModelClient({"retrieval": base / "retrieval"},
                                  versions={"retrieval": version})
    times: list[float] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        one = {k: v[i % n:i % n + 1] for k, v in rows.items()}
        started = time.perf_counter()
        client.predict("retrieval", "retrieval", one, 60.0, ("item_ids", "scores"))
        with lock:
            times.append((time.perf_counter() - started) * 1000)

    try:
        for i in range(min(20, requests)):  # warm-up, unmeasured
            call(i)
        times.clear()
        per_thread = [list(range(t, requests, concurrency)) for t in range(concurrency)]
        threads = [threading.Thread(target=lambda ids=ids: [call(i) for i in ids])
                   for ids in per_thread]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        client.close()
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def bless(base: Path, version: int, stable: int | None, cfg, ope=(None, None),
          queries: Path | None = None, requests: int = 300, concurrency: int = 4):
    """The ``Blessing`` of ``version`` against ``stable`` (see recsys/monitoring/blessing.py),
    written to ``BASE/blessings/VERSION.json`` (what promotion requires). Stable's offline
    figures are those the candidate's evaluation measured for it on the same data when it
    has them (a warm start's), else stable's own manifest's."""
    from recsys.model_contract.registry import Registry
    from recsys.monitoring.blessing import Blessing, latency_check, offline_checks, ope_check

    registry = Registry(base)
    registry.check_version(version)
    metrics = {e.version: dict(e.metrics) for e in registry.entries()}
    against = None if stable is None else metrics.get(stable, {})
    paired = registry.paired_baseline(version)
    if stable is not None and paired is not None and paired[0] == stable:
        against = paired[1]  # stable scored on the candidate's own test data
    checks = offline_checks(metrics.get(version, {}), against, cfg)
    checks.append(ope_check(*ope, cfg))
    if queries is None:
        checks.append(latency_check(None, None, cfg, "no --queries given"))
    else:
        p50, p99 = measure_latency(base, version, queries, requests, concurrency)
        checks.append(latency_check(p50, p99, cfg, f"retrieval, {requests} calls from "
                                                   f"{concurrency} threads"))
    blessing = Blessing(version, stable, tuple(checks))
    path = blessing_path(base, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**blessing.to_dict(), "gate": cfg.to_dict(),
                                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                               indent=2))
    return blessing


def run_bless(args: argparse.Namespace) -> int:
    from recsys.model_contract.registry import Registry

    registry = Registry(args.model_base_path)
    registry.check_version(args.version)
    blessing = bless(args.model_base_path, args.version, _against(registry, args.against),
                     _gate_config(args.config), _ope(args.ope), args.queries, args.requests,
                     args.concurrency)
    print(blessing.summary())
    print(f"wrote {blessing_path(args.model_base_path, args.version)}")
    return 0 if blessing.blessed else NOT_BLESSED_EXIT


__all__ = ["add_arguments", "run_bless", "bless", "read_blessing", "blessing_path",
           "measure_latency"]
