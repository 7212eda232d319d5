"""Running stream workers: one per process, each a consumer of the group, with progress logged
(entries applied and dead-lettered, rate, freshness p50/p99) and a clean stop on SIGINT or
SIGTERM (the current batch finishes and is acked first)."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from recsys.exploration.rewards import RewardConfig
from recsys.process_lifetime import exit_with_parent
from recsys.stream.config import StreamConfig
from stream_worker.worker import BatchReport, StreamWorker

log = logging.getLogger("recsys.stream")
LOG_EVERY_S = 10.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs; picklable."""

    cfg: StreamConfig
    repo: Path
    lake: Path | None
    consumer: str
    model_base_path: Path | None = None
    rewards: RewardConfig = field(default_factory=RewardConfig)  # the bandit's rewards


def build_worker(spec: WorkerSpec) -> StreamWorker:
    from recsys.exploration.bandit_store import BanditStore
    from recsys.stream.redis_connection import connect
    from stream_worker.bandit_updates import BanditLearner
    from stream_worker.consumer_group import ConsumerGroup
    from stream_worker.sinks import OnlineFeatureSink
    from stream_worker.state_store import StreamState

    client = connect(spec.cfg)
    group = ConsumerGroup(client, spec.cfg, spec.consumer)
    group.ensure()
    fresh = None
    if spec.model_base_path is not None:
        from stream_worker.fresh_items import FreshItemIndexer, FreshItemStore
        from stream_worker.item_embedder import ItemEmbedder

        fresh = FreshItemIndexer(FreshItemStore(client, spec.cfg.stream),
                                 ItemEmbedder(spec.model_base_path))
    return StreamWorker(group, StreamState(client, spec.cfg), OnlineFeatureSink(spec.repo),
                        event_log(spec), fresh,
                        bandit=BanditLearner(BanditStore(client), spec.rewards))


def event_log(spec: WorkerSpec):
    """Where events and items are appended: the lake given (embedded profile), else the
    PostgreSQL event log of a repository whose offline store is PostgreSQL (production
    profile), else nowhere (logged)."""
    from stream_worker.sinks import LakeSink

    if spec.lake is not None:
        return LakeSink(spec.lake, f"stream:{spec.consumer}")
    from recsys.features.store import repo_config

    offline = repo_config(spec.repo).offline_store
    if getattr(offline, "type", "") == "postgres":
        from recsys.features.postgres_loader import connection_string
        from stream_worker.postgres_events import PostgresEventLog

        return PostgresEventLog(connection_string(offline.host, offline.port, offline.database,
                                                  offline.user),
                                offline.db_schema, password=offline.password)
    log.warning("%s: events are not kept for the next batch run (no --lake, and the "
                "repository's offline store is not PostgreSQL)", spec.consumer)
    return None


class Progress:
    """Counts of what the worker did, logged every ``LOG_EVERY_S``."""

    def __init__(self, consumer: str):
        self.consumer, self.started = consumer, time.monotonic()
        self.applied = self.dead = self.failed = 0
        self._freshness: list[float] = []
        self._last_log = self.started

    def add(self, report: BatchReport) -> None:
        self.applied += report.applied
        self.dead += report.dead_lettered
        self.failed += report.failed
        self._freshness.extend(report.freshness_s)
        if time.monotonic() - self._last_log >= LOG_EVERY_S:
            self.log()

    def log(self) -> None:
        now = time.monotonic()
        fresh = np.asarray(self._freshness or [np.nan])
        log.info("%s: %s applied (%.0f/s), %s dead-lettered, %s failed deliveries; freshness "
                 "p50 %.0f ms, p99 %.0f ms", self.consumer, f"{self.applied:,}",
                 self.applied / max(now - self.started, 1e-9), f"{self.dead:,}",
                 f"{self.failed:,}", np.nanpercentile(fresh, 50) * 1000,
                 np.nanpercentile(fresh, 99) * 1000)
        self._freshness.clear()
        self._last_log = now


def run_worker(spec: WorkerSpec, stop: threading.Event | None = None) -> None:
    """Run one worker until ``stop`` is set (or SIGINT / SIGTERM in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    worker = build_worker(spec)
    progress = Progress(spec.consumer)
    log.info("%s reading %s in group %s", spec.consumer, spec.cfg.stream, spec.cfg.group)
    worker.run(stop, progress.add)
    progress.log()


def _child(spec: WorkerSpec, level: int, parent_pid: int) -> None:
    exit_with_parent(parent_pid)  # SIGTERM (finish the batch, stop) if the parent is killed
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(spec)


def run_workers(spec: WorkerSpec, processes: int) -> None:
    """``processes`` workers, consumers ``NAME-1`` .. ``NAME-N``, each in its own process.
    SIGINT or SIGTERM to this process stops them all (each finishes its batch); a child that
    has not stopped within ``STOP_TIMEOUT_S`` is killed (its entries stay pending)."""
    if processes == 1:
        run_worker(spec)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child, name=f"{spec.consumer}-{i}",
                                args=(replace(spec, consumer=f"{spec.consumer}-{i}"),
                                      logging.getLogger().level, os.getpid()))
                for i in range(1, processes + 1)]
    for child in children:
        child.start()
    while not stop.is_set() and any(child.is_alive() for child in children):
        stop.wait(0.5)
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child's own handler stops it after its batch
    for child in children:
        child.join(timeout=STOP_TIMEOUT_S)
        if child.is_alive():
            log.warning("%s did not stop within %.0f s; killing it", child.name, STOP_TIMEOUT_S)
            child.kill()
            child.join()


__all__ = ["WorkerSpec", "build_worker", "run_worker", "run_workers"]
