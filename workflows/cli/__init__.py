"""The `recsys` command line."""

from workflows.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
