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

from workflows.cli import monitor_index, monitor_skew

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
    drift.set_defaults(func=run_drift)
    monitor_index.add_parser(commands)
    monitor_skew.add_parser(commands)


def _choices(config: Path | None):
    from recsys.config import read_yaml_mapping
    from recsys.errors import ConfigError
    from recsys.monitoring.drift import parse_choices

    if config is None:
        return {}
    section = read_yaml_mapping(config, "with a section drift").get("drift") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"config section 'drift' must be a mapping, got {section!r}")
    unknown = set(section) - {"features"}
    if unknown:
        raise ConfigError(f"drift: unknown field(s) {sorted(unknown)} (it takes features)")
    return parse_choices(section.get("features"))


def run_drift(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

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
    if not args.window.exists():
        raise ConfigError(f"--window {args.window} does not exist")
    try:
        window = pq.read_table(args.window).to_pydict()
    except Exception as exc:  # noqa: BLE001 - any unreadable input is named, with the reason
        raise ConfigError(f"--window {args.window} is not readable Parquet: {exc}") from None
    results = drift_report(profile, window, choices)
    if not results:
        known = sorted({c.split("#")[0] for c in profile["columns"]})
        raise ConfigError(f"--window {args.window} shares no profiled column with at least 2 "
                          f"values; the profile has {', '.join(known)}; the window has "
                          f"{', '.join(sorted(window)) or 'no columns'}")
    print(format_results(results))
    document = {"model": str(args.model), "window": str(args.window),
                "drifted": [r.feature for r in results if r.drift],
                "features": [r.to_dict() for r in results]}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2))
    print(f"wrote {args.output}")
    return DRIFTED_EXIT if args.fail_on_drift and document["drifted"] else 0


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
