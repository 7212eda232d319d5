"""`recsys models list | promote | rollback | log`: the model registry's aliases (``stable``,
``canary``) as the model server's version labels, and the append-only promotion log.

    recsys models list [--model-base-path models/serving] [--json]
    recsys models bless VERSION [--against stable] [--config FILE.yaml] [--queries PARQUET]
    recsys models promote VERSION --to stable|canary --reason TEXT [--evidence FILE.json]
        [--force]
    recsys models rollback [--alias stable|canary] [--to VERSION] --reason TEXT
    recsys models log [--json]

The aliases live in ``BASE/models.config`` (the ``--model_config_file`` of `recsys
model-server`; give it ``--model_config_file_poll_wait_seconds`` to follow changes) and every
change is a line of ``BASE/promotions.jsonl`` (docs/monitoring.md). A version is promoted only
when its blessing (``BASE/blessings/VERSION.json``, written by `recsys models bless`) holds,
unless ``--force`` (recorded in the log).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflows.cli import bless_command
from workflows.cli.arguments import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser(
        "models", help="exported versions, their aliases (stable, canary) and the promotion "
                       "log", description=__doc__.split("\n\n")[0])
    commands = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="versions with their models, aliases and "
                                               "offline metrics")
    _base(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)

    bless = commands.add_parser("bless", help="the checks a candidate must pass before it is "
                                              "promoted (offline, off-policy, latency)")
    _base(bless)
    bless_command.add_arguments(bless)
    bless.set_defaults(func=bless_command.run_bless)

    promote = commands.add_parser("promote", help="point an alias at a blessed version")
    promote.add_argument("version", type=positive_int, metavar="VERSION")
    promote.add_argument("--to", dest="alias", required=True, choices=["stable", "canary"],
                         help="the alias to move")
    promote.add_argument("--force", action="store_true",
                         help="promote without a blessing (recorded in the log)")
    _change_args(promote)
    promote.set_defaults(func=run_promote)

    rollback = commands.add_parser(
        "rollback", help="point an alias back (stable: at the version before; canary: "
                         "retire it, its users go back to stable)")
    rollback.add_argument("--alias", default="stable", choices=["stable", "canary"])
    rollback.add_argument("--to", type=positive_int, metavar="VERSION",
                          help="the version to go back to (default: the one before)")
    _change_args(rollback)
    rollback.set_defaults(func=run_rollback)

    history = commands.add_parser("log", help="the promotion log, oldest first")
    _base(history)
    history.add_argument("--json", action="store_true", help="print JSON lines")
    history.set_defaults(func=run_log)


def _base(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                        type=Path, default=Path("models/serving"), metavar="DIR",
                        help="TF Serving model base path of the exports "
                             "(default: models/serving)")


def _change_args(parser: argparse.ArgumentParser) -> None:
    _base(parser)
    parser.add_argument("--reason", required=True, help="why (recorded in the log)")
    parser.add_argument("--evidence", type=Path, metavar="FILE.json",
                        help="a JSON object recorded with the change (a gate's report, say)")


def _registry(args: argparse.Namespace):
    from recsys.errors import ConfigError
    from recsys.model_contract.registry import Registry

    if not args.model_base_path.is_dir():
        raise ConfigError(f"--model-base-path {args.model_base_path} is not a directory (the "
                          "base path `recsys export` wrote versions under)")
    return Registry(args.model_base_path)


def _evidence(path: Path | None) -> dict:
    from recsys.errors import ConfigError

    if path is None:
        return {}
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--evidence {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--evidence {path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--evidence {path} must hold a JSON object, got "
                          f"{type(value).__name__}")
    return {"file": str(path), **value}


def run_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entries = registry.entries()
    if args.json:
        print(json.dumps({"aliases": registry.aliases(),
                          "versions": [e.__dict__ | {"metrics": dict(e.metrics)}
                                       for e in entries]}, indent=2, default=list))
        return 0
    if not entries:
        print(f"no retrieval versions under {args.model_base_path}")
        return 0
    shown = ("recall@100", "ndcg@10")
    print(f"{'version':>7}  {'aliases':<14} {'created':<25} "
          + "".join(f"{m:>11}" for m in shown) + "  models")
    for e in entries:
        print(f"{e.version:>7}  {','.join(e.aliases) or '-':<14} {e.created_at or '?':<25} "
              + "".join(f"{e.metrics[m]:>11.4f}" if m in e.metrics else f"{'-':>11}"
                        for m in shown) + "  " + ", ".join(e.models))
    if not registry.aliases():
        print("no aliases yet: `recsys models promote VERSION --to stable --reason ...`")
    return 0


def _print_change(entry: dict, registry) -> None:
    before = "none" if entry["from"] is None else entry["from"]
    after = "none" if entry["to"] is None else entry["to"]
    print(f"{entry['action']}: {entry['alias']} {before} -> {after} ({entry['reason']}); "
          f"{registry.config_path} rewritten, logged in {registry.log_path}")


def run_promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entry = registry.promote_blessed(args.version, args.alias, args.reason, args.force,
                                     _evidence(args.evidence))
    _print_change(entry, registry)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entry = registry.rollback(args.alias, args.reason, args.to, _evidence(args.evidence))
    _print_change(entry, registry)
    return 0


def run_log(args: argparse.Namespace) -> int:
    registry = _registry(args)
    for entry in registry.history():
        if args.json:
            print(json.dumps(entry, sort_keys=True))
        else:
            before = "none" if entry.get("from") is None else entry.get("from")
            after = "none" if entry.get("to") is None else entry.get("to")
            print(f"{entry.get('time')}  {entry.get('action'):<8} {entry.get('alias'):<7} "
                  f"{before} -> {after}  by {entry.get('by')}: {entry.get('reason')}")
    return 0
