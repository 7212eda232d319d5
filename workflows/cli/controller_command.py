"""`recsys controller`: the retraining loop, one step per call (cron, Airflow) or running.

    recsys controller step --config controller.yaml
    recsys controller run --config controller.yaml [--interval 60] [--steps N]
    recsys controller status --config controller.yaml [--last 10]

A step watches drift, the schedule and data volume, retrains, blesses, starts a canary, and
promotes or rolls it back (workflows/controller/controller.py); each prints its decision and
appends it, with its evidence, to ``STATE_DIR/decisions.jsonl``. The gauges for Prometheus'
textfile collector are written to ``STATE_DIR/controller.prom``. Exit code of a step: 0, or 1
when the step failed (an ``error`` decision).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from workflows.cli.arguments import positive_float, positive_int

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    controller = subparsers.add_parser("controller", help="the retraining loop: drift, "
                                       "retrain, bless, canary, promote or roll back",
                                       description=__doc__.split("\n\n")[0])
    commands = controller.add_subparsers(dest="controller_command", required=True,
                                         metavar="COMMAND")
    step = commands.add_parser("step", help="one step (for cron or Airflow)")
    run = commands.add_parser("run", help="a step every --interval seconds")
    status = commands.add_parser("status", help="the stage, aliases and last decisions")
    for parser in (step, run, status):
        parser.add_argument("--config", required=True, type=Path, metavar="FILE.yaml",
                            help="controller, gate, canary and drift sections")
    run.add_argument("--interval", type=positive_float, default=60.0, metavar="SECONDS")
    run.add_argument("--steps", type=positive_int, metavar="N",
                     help="stop after N steps (default: run until interrupted)")
    status.add_argument("--last", type=positive_int, default=10, metavar="N")
    step.set_defaults(func=run_step)
    run.set_defaults(func=run_loop)
    status.set_defaults(func=run_status)


def _print(decision: dict) -> None:
    print(f"{decision['time']}  {decision['decision']:<8} {decision['reason']}")


def run_step(args: argparse.Namespace) -> int:
    from workflows.controller.config import load_settings
    from workflows.controller.controller import Controller

    decision = Controller(load_settings(args.config)).step()
    _print(decision)
    return 1 if decision["decision"] == "error" else 0


def run_loop(args: argparse.Namespace) -> int:
    from workflows.controller.config import load_settings
    from workflows.controller.controller import Controller

    controller = Controller(load_settings(args.config))
    done = 0
    try:
        while args.steps is None or done < args.steps:
            started = time.monotonic()
            _print(controller.step())
            done += 1
            if args.steps is None or done < args.steps:
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        log.info("stopped after %d steps", done)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from recsys.model_contract.registry import Registry
    from workflows.controller.config import load_settings
    from workflows.controller.journal import read_decisions, read_state

    settings = load_settings(args.config)
    state = read_state(Path(settings.controller.state_dir))
    aliases = Registry(Path(settings.controller.model_base_path)).aliases()
    print(f"stage {state.stage}" + (f" (canary: version {state.candidate})"
                                    if state.candidate else "")
          + f"; aliases {json.dumps(aliases)}; {state.steps} steps")
    for decision in read_decisions(Path(settings.controller.state_dir))[-args.last:]:
        _print(decision)
    return 0


__all__ = ["add_parser", "run_step", "run_loop", "run_status"]
