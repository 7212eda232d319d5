"""`recsys stream-worker`: consumers of the event stream that keep the online features, the
lake and the fresh-item index up to date."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from recsys.errors import ConfigError
from workflows.cli.arguments import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    worker = subparsers.add_parser(
        "stream-worker", help="apply the event stream to the online store and the lake",
        description="Read the Redis stream that POST /v1/events and /v1/items append to, in a "
                    "consumer group (XREADGROUP; XAUTOCLAIM for work a stopped worker left "
                    "pending; a dead-letter stream for malformed entries and entries that "
                    "keep failing), and apply each entry idempotently: session features and "
                    "item counters pushed to the Feast online store, catalogue rows written to "
                    "it, events and items appended to the lake, new items embedded into the "
                    "fresh-item index that retrieval merges with the main one. Stops cleanly on "
                    "Ctrl-C.")
    worker.add_argument("--config", type=Path, metavar="FILE.yaml",
                        help="a file with a `stream` section (see recsys/stream/config.py) "
                             "and a `rewards` section: the contextual bandit's reward per "
                             "event type (recsys/exploration/rewards.py)")
    worker.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR",
                        help="the feature repository profile directory (default feature_repo)")
    worker.add_argument("--lake", type=Path, metavar="DIR",
                        help="append events and items to this lake (the embedded profile); "
                             "with a production repository (PostgreSQL offline store) they go "
                             "to its `events` and `items` tables")
    worker.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                        type=Path, metavar="DIR",
                        help="where `recsys export` writes the models: new items are embedded "
                             "by the newest item tower into the fresh-item index")
    worker.add_argument("--redis-url", metavar="URL",
                        help="redis://host:port/db of the stream; default: the embedded Redis "
                             "in REPO/data/redis, started if needed")
    worker.add_argument("--consumer", default=socket.gethostname(), metavar="NAME",
                        help="consumer name in the group (default: the host name); a worker "
                             "restarted under its name first redoes its own pending entries")
    worker.add_argument("--processes", type=positive_int, default=1, metavar="N",
                        help="run N workers (consumers NAME-1 .. NAME-N), one process each")
    worker.add_argument("--batch-size", type=positive_int, metavar="N",
                        help="entries per read (default 1024)")
    worker.add_argument("--claim-idle-ms", type=positive_int, metavar="MS",
                        help="claim entries another consumer left pending this long "
                             "(default 30000)")
    worker.set_defaults(func=run_stream_worker)


def run_stream_worker(args: argparse.Namespace) -> int:
    from recsys.exploration.rewards import load_reward_config
    from recsys.stream.config import load_stream_config
    from stream_worker.runner import WorkerSpec, run_workers

    repo = args.repo.resolve()
    if not (repo / "feature_store.yaml").is_file():
        raise ConfigError(f"--repo {args.repo} has no feature_store.yaml; point it at a "
                          "feature repository profile such as feature_repo/")
    if args.lake is not None and not (args.lake / "_lake.json").is_file():
        raise ConfigError(f"--lake {args.lake} is not a recsys lake (no _lake.json)")
    cfg = load_stream_config(args.config, {"redis_url": args.redis_url,
                                           "batch_size": args.batch_size,
                                           "claim_idle_ms": args.claim_idle_ms}).for_repo(repo)
    if args.model_base_path is not None and not (args.model_base_path / "item_tower").is_dir():
        raise ConfigError(f"--model-base-path {args.model_base_path} has no item_tower model; "
                          "run `recsys export` first")
    rewards = load_reward_config(args.config)
    run_workers(WorkerSpec(cfg, repo, args.lake.resolve() if args.lake else None,
                           args.consumer, args.model_base_path.resolve()
                           if args.model_base_path else None, rewards), args.processes)
    return 0


__all__ = ["add_parser"]
