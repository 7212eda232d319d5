"""`recsys monitor drift`: a window of query inputs against a model version's reference
profile (``assets.extra/profile.json``, written at export).

    recsys monitor drift --model models/serving/retrieval/3 --window WINDOW.parquet
        [--config FILE.yaml] [--output drift.json] [--fail-on-drift]

``--window``: Parquet (a file or a directory of files) with some of the version's query
inputs as columns, one row per request or training example (for example a newer build's
``feature_repo/data/training_examples``). ``--config``: a file with a ``drift.features``
section choosing a test and threshold per feature. Prints one line per feature (test,
statistic, threshold, verdict, sizes, missing share) and writes the same as JSON; with
``--fail-on-drift`` the exit code is 3 when any feature drifted (for cron or Airflow).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflows.cli import monitor_index, monitor_quality, monitor_skew, monitor_window
from workflows.cli.arguments import read_parquet_flag

DRIFTED_EXIT = 3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    monitor = subparsers.add_parser("monitor", help="drift of what a model sees")
    commands = monitor.add_subparsers(dest="monitor_command", required=True, metavar="COMMAND")
    drift = commands.add_parser(
        "drift", help="a window of query inputs against a version's reference profile",
        description=__doc__.split("\n\n")[0])
    drift.add_argument("--model", required=True, type=Path, metavar="VERSION_DIR",
                       help="an exported retrieval version, e.g. models/serving/retrieval/3")
    drift.add_argument("--window", required=True, type=Path, metavar="PARQUET")
    drift.add_argument("--config", type=Path, metavar="FILE.yaml",
                       help="a file with a drift.features section")
    drift.add_argument("--output", type=Path, default=Path("drift.json"), metavar="FILE")
    drift.add_argument("--fail-on-drift", action="store_true",
                       help=f"exit {DRIFTED_EXIT} when any feature drifted")
    drift.add_argument("--state", type=Path, metavar="FILE.json",
                       help="the alert tracker's state across windows (created if absent): "
                            "the window's tests are corrected for their number and a feature "
                            "alerts after drift.alerts.consecutive_windows drifting windows")
    drift.add_argument("--metrics-file", type=Path, metavar="FILE.prom",
                       help="write the gauges for node_exporter's textfile collector")
    drift.set_defaults(func=run_drift)
    monitor_index.add_parser(commands)
    monitor_skew.add_parser(commands)
    monitor_window.add_parser(commands)
    monitor_quality.add_parser(commands)


def _section(config: Path | None) -> dict:
    from recsys.config import read_yaml_mapping
    from recsys.errors import ConfigError

    if config is None:
        return {}
    section = read_yaml_mapping(config, "with a section drift").get("drift") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config section 'drift' must be a mapping, got {section!r}")
    unknown = set(section) - {"features", "alerts"}
    if unknown:
        raise ConfigError(f"drift: unknown field(s) {sorted(unknown)} (it takes features "
                          "and alerts)")
    return section


def _choices(config: Path | None):
    from recsys.monitoring.drift import parse_choices

    return parse_choices(_section(config).get("features"))


def _tracker(args: argparse.Namespace):
    """The alert tracker of --state (its saved state, or a new one from drift.alerts)."""
    from recsys.errors import ConfigError
    from recsys.monitoring.alerts import AlertConfig, DriftTracker

    if args.state.exists():
        try:
            return DriftTracker.from_dict(json.loads(args.state.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"--state {args.state} is not a drift tracker's state: "
                              f"{exc}") from None
    return DriftTracker(AlertConfig.from_dict(_section(args.config).get("alerts") or {}))


def run_drift(args: argparse.Namespace) -> int:

    from recsys.errors import ConfigError
    from recsys.monitoring.profile import PROFILE, drift_report, read_profile

    choices = _choices(args.config)
    if not args.model.is_dir():
        raise ConfigError(f"--model {args.model} is not a directory (an exported version, "
                          "e.g. models/serving/retrieval/3)")
    profile = read_profile(args.model)
    if profile is None:
        raise ConfigError(f"{args.model} has no {PROFILE}: it was exported without a "
                          "reference profile (re-export it with `recsys export`)")
    window = read_parquet_flag("--window", args.window).to_pydict()
    results = drift_report(profile, window, choices)
    if not results:
        known = sorted({c.split("#")[0] for c in profile["columns"]})
        raise ConfigError(f"--window {args.window} shares no profiled column with at least 2 "
                          f"values; the profile has {', '.join(known)}; the window has "
                          f"{', '.join(sorted(window)) or 'no columns'}")
    alerts, streaks = [], {}
    if args.state is not None:
        tracker = _tracker(args)
        verdict = tracker.update(results)
        results, alerts, streaks = verdict.results, verdict.alerts, verdict.streaks
        args.state.parent.mkdir(parents=True, exist_ok=True)
        args.state.write_text(json.dumps(tracker.to_dict(), indent=2))
    print(format_results(results))
    if args.state is not None:
        print(f"window {tracker.windows} of {args.state}: alerts "
              f"{', '.join(alerts) or 'none'} (after "
              f"{tracker.cfg.consecutive_windows} drifting windows in a row)")
    document = {"model": str(args.model), "window": str(args.window),
                "drifted": [r.feature for r in results if r.drift], "alerts": alerts,
                "streaks": streaks, "features": [r.to_dict() for r in results]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2))
    print(f"wrote {args.output}")
    if args.metrics_file:
        _write_drift_metrics(args, results, streaks, tracker.cfg.consecutive_windows
                             if args.state is not None else None)
    return DRIFTED_EXIT if args.fail_on_drift and document["drifted"] else 0


def _write_drift_metrics(args: argparse.Namespace, results, streaks: dict,
                         consecutive: int | None) -> None:
    from recsys.monitoring.metrics import MonitoringMetrics

    metrics = MonitoringMetrics()
    model = f"{args.model.resolve().parent.name}/{args.model.resolve().name}"
    for r in results:
        metrics.drift_statistic.labels(model, r.feature, r.test).set(r.statistic)
        metrics.drift_detected.labels(model, r.feature).set(int(r.drift))
        if consecutive is not None:
            metrics.drift_alert.labels(model, r.feature).set(
                int(streaks.get(r.feature, 0) >= consecutive))
    metrics.finished("drift")
    metrics.write(args.metrics_file)


def format_results(results) -> str:
    lines = [f"{'feature':<28} {'test':<15} {'statistic':>10} {'threshold':>9} {'verdict':<8} "
             f"{'reference':>9} {'window':>7} {'missing':>7}"]
    for r in results:
        lines.append(f"{r.feature:<28} {r.test:<15} {r.statistic:10.4g} {r.threshold:9.3g} "
                     f"{'DRIFT' if r.drift else 'ok':<8} {r.reference_size:9,} "
                     f"{r.current_size:7,} {r.missing_share:7.1%}")
    drifted = sum(r.drift for r in results)
    lines.append(f"{drifted} of {len(results)} features drifted")
    return "\n".join(lines)


__all__ = ["add_parser", "run_drift", "format_results", "DRIFTED_EXIT"]
