"""`recsys api` (the recommendation service) and `recsys popular build` (its precomputed
fallback lists)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from workflows.cli.arguments import non_negative_int, positive_float, positive_int

log = logging.getLogger("recsys")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    api = subparsers.add_parser(
        "api", help="the recommendation service (POST /v1/recommendations, GET /v1/explain)",
        description="Serve recommendations over HTTP: Feast online features -> two-tower "
                    "retrieval (ScaNN) -> transformer ranker -> rules -> top k, with deadlines, "
                    "circuit breakers and fallbacks to precomputed popular lists. OpenAPI at "
                    "/openapi.json, docs at /docs, Prometheus metrics at /metrics.")
    api.add_argument("--config", type=Path, metavar="FILE.yaml",
                     help="service settings (see serving/recommendations/config.py)")
    api.add_argument("--repo", type=Path, metavar="DIR",
                     help="feature repository profile directory (default ./feature_repo)")
    api.add_argument("--model-base-path", "--model_base_path", dest="model_base_path",
                     type=Path, metavar="DIR", help="where `recsys export` wrote the models")
    api.add_argument("--model-server", metavar="HOST:PORT",
                     help="the model server's gRPC address, or replicas HOST:PORT,HOST:PORT "
                          "(round robin, health-checked); default: models in process")
    api.add_argument("--popular-lists", metavar="FILE.json",
                     help="default: MODEL_BASE_PATH/popular.json")
    api.add_argument("--deadline-ms", type=positive_float, metavar="MS",
                     help="request deadline (default 250)")
    api.add_argument("--redis-url", metavar="URL",
                     help="the event stream's Redis for POST /v1/events and /v1/items; "
                          "default: the embedded Redis in REPO/data/redis, started if needed")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=non_negative_int, default=8000)
    api.add_argument("--workers", type=positive_int, metavar="N",
                     help="service processes sharing the port (SO_REUSEPORT), each with its "
                          "own models and caches; one per core (default 1)")
    api.add_argument("--dependency-threads", type=positive_int, metavar="N",
                     help="threads for dependency calls, per process (default 16)")
    api.set_defaults(func=run_api)

    popular = subparsers.add_parser("popular", help="precomputed popular lists")
    kinds = popular.add_subparsers(dest="popular_command", required=True, metavar="build")
    build = kinds.add_parser(
        "build", help="global and per-segment popular lists from the training examples",
        description="Recency-weighted popular items overall and per country, language and "
                    "device, from the train split of the Beam training examples; the service's "
                    "last fallback tiers and its trending and cold-start sources.")
    build.add_argument("--repo", type=Path, default=Path("feature_repo"), metavar="DIR")
    build.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    build.add_argument("--per-list", type=positive_int, default=500, metavar="N")
    build.add_argument("--half-life-days", type=positive_float, default=7.0, metavar="D")
    build.add_argument("--window-days", type=positive_float, default=30.0, metavar="D")
    build.add_argument("--min-segment-events", type=positive_int, default=50, metavar="N")
    build.set_defaults(func=run_popular_build)


def run_popular_build(args: argparse.Namespace) -> int:
    from serving.recommendations.popular_lists import build_popular_lists, load_training_examples

    lists = build_popular_lists(load_training_examples(args.repo), args.per_list,
                                args.half_life_days, args.window_days, args.min_segment_events)
    lists.save(args.out)
    segments = sum(len(v) for v in lists.segments.values())
    print(f"wrote {args.out}: {len(lists.global_items)} global items, {segments} segment lists")
    return 0


def run_api(args: argparse.Namespace) -> int:
    from recsys.features.store import is_embedded_profile
    from serving.access.policy import AccessPolicy
    from serving.recommendations.config import load_service_config
    from serving.recommendations.worker_processes import serve_workers

    cfg = load_service_config(args.config, {
        "repo": args.repo, "model_base_path": args.model_base_path,
        "model_server": args.model_server, "popular_lists": args.popular_lists,
        "request_deadline_ms": args.deadline_ms, "workers": args.workers,
        "dependency_threads": args.dependency_threads})
    # keys are read once, here; a service that may not start open stops before loading models
    access = AccessPolicy.for_service(cfg.access, args.host, is_embedded_profile(cfg.repo),
                                      cfg.workers)
    if cfg.workers == 1:
        serve_api(None, 0, cfg, args.config, args.redis_url, args.host, args.port,
                  logging.getLogger().level, access)
        return 0
    return serve_workers(serve_api, (cfg, args.config, args.redis_url, args.host, args.port,
                                     logging.getLogger().level, access),
                         cfg.workers, args.host, args.port)


def serve_api(sock, index: int, cfg, config: Path | None, redis_url: str | None, host: str,
              port: int, log_level: int, access=None) -> None:
    """One service process: the recommender built from ``cfg``, served by uvicorn on
    ``sock`` (a worker's bound socket, which uvicorn makes listen once the recommender is
    built) or on ``host:port`` (``sock`` None), behind ``access`` (an
    :class:`~serving.access.policy.AccessPolicy`; None: open)."""
    import os

    import uvicorn

    from recsys.monitoring.serving_windows import ServingWindows
    from serving.recommendations.app import create_app
    from serving.recommendations.exposure_log import ExposureLog
    from serving.recommendations.metrics import ServiceMetrics
    from serving.recommendations.service import build_recommender, freeze_startup_heap
    from serving.recommendations.serving_profile import ServingProfile
    from serving.recommendations.worker_processes import LISTEN_BACKLOG, MULTIPROC_ENV

    if sock is not None:  # a spawned worker: the parent's logging is not inherited
        logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s worker-{index} "
                                                    "%(name)s: %(message)s")
        for noisy in ("absl", "tensorflow"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, log_level))
    producer, fresh = stream_parts(config, redis_url, cfg.repo)
    metrics = ServiceMetrics(multiprocess_dir=os.environ.get(MULTIPROC_ENV) if sock else None)
    recommender = build_recommender(cfg, metrics=metrics, fresh=fresh,
                                    bandit=bandit_parameters(producer, cfg.bandit_poll_s))
    log.info("%s start-up objects frozen out of the garbage collector",
             f"{freeze_startup_heap():,}")
    log.info("recommendation service on http://%s:%d (docs: /docs)", host,
             sock.getsockname()[1] if sock is not None else port)
    exposures = ExposureLog(producer, metrics)
    profile = ServingProfile(None if producer is None or not cfg.profile_sample_rate
                             else ServingWindows(producer.client))
    if producer is None:
        log.warning("the event stream is unreachable: answers are served but their exposures "
                    "are not logged (counted in recsys_exposures_total{outcome=\"dropped\"})")
    server = uvicorn.Server(uvicorn.Config(create_app(recommender, producer, exposures, profile,
                                                      access),
                                           host=host, port=port, log_level="warning",
                                           backlog=LISTEN_BACKLOG))
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        exposures.close()
        profile.close()
        recommender.close()


def bandit_parameters(producer, poll_s: float):
    """The contextual bandit's parameters, read from the stream's Redis (None without it:
    the bandit's prior)."""
    from recsys.exploration.bandit_store import BanditStore
    from serving.recommendations.exploration import BanditParameters

    return None if producer is None else BanditParameters(BanditStore(producer.client), poll_s)


def stream_parts(config: Path | None, redis_url: str | None, repo: Path):
    """(the producer of /v1/events and /v1/items, the fresh-item source of retrieval), or
    (None, None), logged, when the stream's Redis cannot be reached: the service then answers
    those routes with 503 and retrieves from the main index only."""
    from recsys.stream.config import load_stream_config
    from recsys.stream.producer import StreamProducer
    from recsys.stream.redis_connection import StreamUnavailable, connect
    from serving.recommendations.fresh_source import FreshSource
    from stream_worker.fresh_items import FreshItemStore

    cfg = load_stream_config(config, {"redis_url": redis_url}).for_repo(repo)
    try:
        client = connect(cfg)
    except StreamUnavailable as exc:
        log.warning("POST /v1/events and /v1/items and fresh items are unavailable: %s", exc)
        return None, None
    return StreamProducer(client, cfg), FreshSource(FreshItemStore(client, cfg.stream))
