"""`recsys data ...`: generate, import and describe lakes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recsys.data.describe import describe
from recsys.data.lake import Lake
from recsys.data.movielens import import_movielens
from recsys.data.synthetic import SyntheticConfig, generate
from workflows.cli.arguments import fraction, iso_date, non_negative_int, positive_int

log = logging.getLogger("recsys")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="create, import and inspect the event lake",
                                 description="Create, import and inspect the event lake.")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    gen = commands.add_parser(
        "generate", help="simulate a content platform into a lake",
        description="Simulate users, a growing catalogue and their sessions (impressions, clicks, "
                    "watches, likes, skips) into a lake. Deterministic per seed and --end-date; "
                    "rerunning into the same lake adds nothing.")
    gen.add_argument("--out", required=True, type=Path, metavar="LAKE", help="lake directory")
    defaults = SyntheticConfig()
    gen.add_argument("--users", type=positive_int, default=defaults.users, metavar="N")
    gen.add_argument("--items", type=positive_int, default=defaults.items, metavar="M")
    gen.add_argument("--days", type=positive_int, default=defaults.days, metavar="D")
    gen.add_argument("--seed", type=non_negative_int, default=defaults.seed, metavar="S")
    gen.add_argument("--end-date", type=iso_date, default=None, metavar="YYYY-MM-DD",
                     help="first day after the simulated window (default: today, UTC)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=run_generate)

    ml = commands.add_parser(
        "import-movielens", help="import a MovieLens ratings/movies directory",
        description="Import a MovieLens 'latest'-format directory: ratings become rating events, "
                    "movies become items (first genre = category, genres = tags). Importing the "
                    "same directory again adds nothing.")
    ml.add_argument("--src", required=True, type=Path, metavar="DIR")
    ml.add_argument("--out", required=True, type=Path, metavar="LAKE")
    ml.add_argument("--max-bad-fraction", type=fraction, default=0.05, metavar="F",
                    help="fail, writing nothing, if more than this share of a file's records is "
                         "invalid (default 0.05)")
    ml.set_defaults(func=run_import_movielens)

    desc = commands.add_parser("describe", help="summarise what a lake holds",
                               description="Print row counts, the event mix and the time range.")
    desc.add_argument("lake", type=Path, metavar="LAKE")
    desc.set_defaults(func=run_describe)


def run_generate(args: argparse.Namespace) -> int:
    cfg = SyntheticConfig(users=args.users, items=args.items, days=args.days, seed=args.seed,
                          end_date=args.end_date)
    report = generate(cfg, Lake(args.out, create=True), progress=not args.no_progress)
    print(report.users.summary())
    print(report.items.summary())
    print(f"events: received {report.events_received:,}, written {report.events_written:,} "
          f"in {report.seconds:.1f}s ({report.events_received / report.seconds:,.0f} events/s)")
    return 0


def run_import_movielens(args: argparse.Namespace) -> int:
    report = import_movielens(args.src, Lake(args.out, create=True),
                              max_bad_fraction=args.max_bad_fraction)
    for line in report.summaries():
        print(line)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    for line in describe(Lake(args.lake)).lines():
        print(line)
    return 0
