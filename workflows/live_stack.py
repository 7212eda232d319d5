"""The online system in one process, for the demo, the simulator's benchmark and the closed
loop tests: the recommendation API (real models, Feast, popular lists; an experiments file
with forced arms allowed) with its exposure log, the event stream (a private embedded Redis),
and one stream worker writing events and exposures to a lake, each in its own thread.

Guarantees: everything started is stopped on exit, in reverse order, even on an error.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class LiveStack:
    url: str
    recommender: Any
    lake: Path
    redis_url: str = ""  # the stream's (and the serving profile's windows')


@contextmanager
def live_stack(repo: Path, model_base_path: Path, lake: Path, redis_dir: Path,
               experiments: Path | None = None, profile_max_samples: int = 2_000,
               **service: Any) -> Iterator[LiveStack]:
    """Serve ``repo`` and the models under ``model_base_path`` with ``experiments``; the
    stream lives in ``redis_dir`` (emptied first); the serving profile keeps
    ``profile_max_samples`` samples per window; ``service`` overrides ServiceConfig
    fields."""
    from recsys.exploration.bandit_store import BanditStore
    from recsys.monitoring.serving_windows import ServingWindows
    from recsys.stream.config import StreamConfig
    from recsys.stream.producer import StreamProducer
    from recsys.stream.redis_connection import connect, embedded_url, stop_embedded
    from serving.recommendations.app import create_app
    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.exploration import BanditParameters
    from serving.recommendations.exposure_log import ExposureLog
    from serving.recommendations.http_server import serve_in_thread
    from serving.recommendations.service import build_recommender
    from serving.recommendations.serving_profile import ServingProfile
    from stream_worker.runner import WorkerSpec, build_worker

    stream = StreamConfig(embedded_dir=redis_dir, block_ms=200)
    stop_embedded(redis_dir)
    shutil.rmtree(redis_dir, ignore_errors=True)
    client = connect(stream)
    producer = StreamProducer(client, stream)
    worker = build_worker(WorkerSpec(stream, repo, lake, "live-worker"))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="live-worker",
                              daemon=True)
    thread.start()
    cfg = ServiceConfig(repo=repo, model_base_path=model_base_path,
                        experiments=str(experiments) if experiments else "",
                        experiments_overrides=experiments is not None, **service)
    recommender = exposures = profile = None
    try:
        recommender = build_recommender(cfg, bandit=BanditParameters(BanditStore(client),
                                                                     cfg.bandit_poll_s))
        exposures = ExposureLog(producer, recommender.metrics)
        profile = ServingProfile(ServingWindows(client, max_samples=profile_max_samples))
        with serve_in_thread(create_app(recommender, producer, exposures, profile)) as url:
            yield LiveStack(url, recommender, lake, embedded_url(Path(redis_dir).resolve()))
    finally:
        for sink in (exposures, profile):
            if sink is not None:
                sink.close()
        if recommender is not None:
            recommender.close()
            recommender.models.close()
        stop.set()
        thread.join(timeout=30)
        client.close()
        stop_embedded(redis_dir)


__all__ = ["LiveStack", "live_stack"]
