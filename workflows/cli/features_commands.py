"""`recsys features ...`: build features with Beam, and apply / materialize them with Feast.

These wrap the stock tools for convenience; `feast -c feature_repo apply` (or
`feast -c feature_repo/production ...`) keeps working on the same repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from recsys.features.store import PROFILES, apply, materialize, profile_repo
from workflows.cli.arguments import iso_datetime


def _repo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR",
                        help="the recsys feature repository (default: ./feature_repo)")
    parser.add_argument("--profile", choices=list(PROFILES), default="embedded",
                        help="embedded (DuckDB + SQLite, default) or production "
                             "(PostgreSQL + Redis)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser(
        "features", help="build features with Beam; apply and materialize them with Feast",
        description="Build features with Beam; apply and materialize them with Feast.")
    commands = features.add_subparsers(dest="features_command", required=True,
                                       metavar="COMMAND")
    build = commands.add_parser(
        "build", help="run the Beam feature jobs over a lake",
        description="Run the Beam jobs (user and item features, session sequences, training "
                    "examples) over LAKE into the profile's data directory; the production "
                    "profile then loads them into PostgreSQL. Any further options are Beam "
                    "pipeline options, e.g. --direct_running_mode multi_processing "
                    "--direct_num_workers 2, --split temporal, --history_length 50.")
    build.add_argument("--lake", required=True, type=Path, metavar="LAKE")
    _repo_args(build)
    build.set_defaults(func=run_build, accepts_beam_args=True)

    apply_cmd = commands.add_parser("apply", help="feast apply on the repository",
                                    description="Register the feature definitions (feast apply).")
    _repo_args(apply_cmd)
    apply_cmd.set_defaults(func=run_apply)

    mat = commands.add_parser(
        "materialize", help="load feature values into the online store",
        description="Load the latest feature values up to --end-date into the online store: "
                    "incrementally from the last run, or from --start-date (a backfill).")
    _repo_args(mat)
    mat.add_argument("--end-date", type=iso_datetime, default=None, metavar="TIME",
                     help="default: now")
    mat.add_argument("--start-date", type=iso_datetime, default=None, metavar="TIME")
    mat.set_defaults(func=run_materialize)

    ts = commands.add_parser(
        "training-set", help="point-in-time join of the training examples with a service",
        description="Join the Beam training examples with a feature service's features through "
                    "get_historical_features (point in time, filter_by_created_timestamp) and "
                    "write Parquet.")
    _repo_args(ts)
    ts.add_argument("--service", default="ranking", help="feature service (default: ranking)")
    ts.add_argument("--split", choices=["train", "test"], default=None,
                    help="only this split (default: all examples)")
    ts.add_argument("--out", required=True, type=Path, metavar="FILE.parquet")
    ts.set_defaults(func=run_training_set)


def run_build(args: argparse.Namespace) -> int:
    from workflows.features_build import build_features

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    result = build_features(args.lake, args.repo, args.profile, args.beam_args)
    counters = result.beam.counters
    print(f"features built from {counters.get('events_read', 0):,} events "
          f"({counters.get('events_bad', 0):,} bad) in {result.beam.seconds:.1f}s "
          f"({result.beam.events_per_second:,.0f} events/s) into {result.beam.output}")
    if result.loaded is not None:
        print("loaded into PostgreSQL: " + ", ".join(f"{t} {n:,}" for t, n in
                                                    result.loaded.items()))
    return 0


def run_apply(args: argparse.Namespace) -> int:
    path = profile_repo(args.repo, args.profile)
    apply(path)
    print(f"applied {path}")
    return 0


def run_materialize(args: argparse.Namespace) -> int:
    path = profile_repo(args.repo, args.profile)
    end = args.end_date or dt.datetime.now(dt.timezone.utc)
    materialize(path, end, args.start_date)
    print(f"materialized {path} up to {end.isoformat(timespec='seconds')}")
    return 0


def run_training_set(args: argparse.Namespace) -> int:
    from recsys.features.training_set import training_set

    frame = training_set(profile_repo(args.repo, args.profile), args.service, args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"wrote {len(frame):,} examples with {frame.shape[1]} columns to {args.out}")
    return 0
