"""The `recsys` command: one entry point with subcommands, like `feast` or `tfx`."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Sequence

import recsys  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything can import TensorFlow)
from recsys import __version__
from recsys.errors import RecsysError
from recsys.runtime import check_stack
from workflows.cli import (
    api_commands,
    auth_commands,
    benchmark_commands,
    controller_command,
    data_commands,
    demo,
    experiment_commands,
    features_commands,
    model_commands,
    model_server_command,
    monitor_command,
    ope_command,
    quickstart_command,
    registry_commands,
    simulate_command,
    stream_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="A real-time personalised recommender: event lake, Beam features, Feast, "
                    "TFRS models and a TF Serving-compatible model server.")
    parser.add_argument("--version", action="version", version=f"recsys {__version__}")
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="DEBUG, INFO (default), WARNING or ERROR")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.add_parser(subparsers)
    features_commands.add_parser(subparsers)
    model_commands.add_parsers(subparsers)
    registry_commands.add_parser(subparsers)
    benchmark_commands.add_parser(subparsers)
    model_server_command.add_parser(subparsers)
    api_commands.add_parsers(subparsers)
    auth_commands.add_parser(subparsers)
    stream_commands.add_parser(subparsers)
    experiment_commands.add_parser(subparsers)
    ope_command.add_parser(subparsers)
    ope_command.add_bandit_parser(subparsers)
    monitor_command.add_parser(subparsers)
    controller_command.add_parser(subparsers)
    simulate_command.add_parser(subparsers)
    demo.add_parser(subparsers)
    quickstart_command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_beam_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: "
                                                     "%(message)s")
    # Feast's DuckDB store calls a deprecated ibis method on every read; nothing a user can do
    warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated",
                            category=DeprecationWarning)
    for noisy in ("absl", "tensorflow"):  # per-save and per-callback INFO lines
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        check_stack()
        return args.func(args)
    except RecsysError as exc:
        print(f"recsys: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("recsys: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
