"""`recsys quickstart --lake LAKE`: from a lake of your own to served recommendations."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from recsys.errors import RecsysError
from workflows.cli.arguments import positive_int

READY_TIMEOUT_S = 300.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    quick = subparsers.add_parser(
        "quickstart", help="from a lake to served recommendations in one command",
        description="On the embedded profile: build the lake's features with Beam, apply and "
                    "materialize them with Feast, train the two-tower model and the ranker "
                    "with sizes chosen from the data, export them with popular lists, then "
                    "start the recommendation API and a stream worker and say how to query "
                    "them. Fill the lake first with `recsys data import`. Further options go "
                    "to the Beam feature build, e.g. --positive_min_dwell_s 0 for a log "
                    "without dwell times.")
    quick.add_argument("--lake", required=True, type=Path, metavar="LAKE")
    quick.add_argument("--workdir", type=Path, default=Path("quickstart-output"), metavar="DIR",
                       help="where the feature repository and the models go (default: "
                            "./quickstart-output)")
    quick.add_argument("--epochs", type=positive_int, metavar="N",
                       help="two-tower epochs (default: chosen from the event count)")
    quick.add_argument("--ranker-epochs", type=positive_int, metavar="N",
                       help="ranker epochs (default 2)")
    quick.add_argument("--no-ranker", action="store_true",
                       help="serve the two-tower model's order, without training a ranker")
    quick.add_argument("--no-serve", action="store_true",
                       help="stop after the export and print the commands that serve it")
    quick.add_argument("--host", default="127.0.0.1")
    quick.add_argument("--port", type=positive_int, default=8000)
    quick.set_defaults(func=run_quickstart_command, accepts_beam_args=True)


def _recsys(*args: str) -> list[str]:
    """The installed `recsys` beside this interpreter, or the module it runs."""
    script = Path(sys.executable).with_name("recsys")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workflows.cli.main"]
    return [*command, *args]


def run_quickstart_command(args: argparse.Namespace) -> int:
    from recsys.data.describe import describe
    from recsys.data.lake import Lake
    from workflows.quickstart import lake_sizes, query_line, run_quickstart

    lake = Lake(args.lake)  # refused before any work if it is not a lake
    for line in describe(lake).lines():
        print(f"      {line}")
    sizes = lake_sizes(lake, args.epochs, args.ranker_epochs)
    print("sizes chosen from the data:")
    for line in sizes.lines():
        print(f"      {line}")
    done = run_quickstart(args.lake, args.workdir, sizes, ranker=not args.no_ranker,
                          beam_args=args.beam_args)
    api = _recsys("api", "--repo", str(done.repo), "--model-base-path", str(done.base),
                  "--host", args.host, "--port", str(args.port))
    worker = _recsys("stream-worker", "--repo", str(done.repo), "--lake", str(done.lake),
                     "--model-base-path", str(done.base))
    url = f"http://{args.host}:{args.port}"
    if args.no_serve:
        shown = len(_recsys())
        print("\nserve it with:\n      recsys " + " ".join(api[shown:]) + "\n      recsys "
              + " ".join(worker[shown:]))
        print(f"then query it: {query_line(url, done.example_user)}")
        return 0
    return _serve(api, worker, url, done.example_user, query_line)


def _serve(api: list[str], worker: list[str], url: str, user: str, query_line) -> int:
    """The API, then (once it is ready, so it starts the embedded Redis alone) the worker;
    both stopped together on Ctrl-C or SIGTERM."""
    import requests

    processes = [subprocess.Popen(api)]
    stop = {"asked": False}

    def ask_stop(*_):
        stop["asked"] = True

    previous = signal.signal(signal.SIGTERM, ask_stop)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if processes[0].poll() is not None:
                raise RecsysError(f"the recommendation API exited with {processes[0].returncode}"
                                  f"; its log is above")
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RecsysError(f"the recommendation API at {url} was not ready within "
                                  f"{READY_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        processes.append(subprocess.Popen(worker))
        print(f"\nrecommendation API at {url} (OpenAPI at {url}/docs, console at {url}/console),"
              f" stream worker pid {processes[1].pid}; Ctrl-C stops both")
        print(f"query it: {query_line(url, user)}", flush=True)
        while not stop["asked"] and all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    failed = [p for p in processes if p.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed and not stop["asked"] else 0


__all__ = ["add_parser", "run_quickstart_command"]
