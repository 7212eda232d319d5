"""Benchmark: ``POST /v1/recommendations`` end to end over HTTP, per stage and per tier.

    python benchmarks/recommendation_api.py [--items 100000] [--concurrency 1 4 16]
        [--seconds 20] [--warmup 3] [--workdir DIR]
    python benchmarks/recommendation_api.py --items 1000000 --workdir DIR

Setup (each step skipped when ``--workdir`` already holds its output, so a second run only
measures): a synthetic platform of ``--items`` items, ``--users`` users and ``--days`` days
through the real path (generator -> lake -> Beam features with the temporal split, history 10
-> feast apply), a small two-tower model (``small_config``) and transformer ranker
(``small_ranker_config``, lists of 20 for training; ``--ranker-config FILE.yaml`` takes
RankerConfig's fields instead, e.g. ``{}`` for the defaults `recsys train ranking` and the demo
use), ``trainer.workflow.export`` with
``k=--candidates`` (200) and the default ScaNN config (tuned to recall@k >= 0.97 on check
queries, k those 200 candidates) indexing every catalogue item, the online store materialized
(SQLite), popular lists.

Run: the real `recsys api --config FILE --workers N` in a process of its own (N service
processes on one port, default one per usable core), with the default ``ServiceConfig``
(models in process, batched across requests, TensorFlow on one thread per pool, 250 ms
deadline); measuring starts once every worker answers ``/readyz``. Server CPU is that of
the service's processes (psutil), cache hit rates come from its ``/metrics`` (summed over the
workers), its log goes next to the JSON (.log).
The load generator is a separate process (its own GIL): ``--concurrency`` closed-loop threads,
one ``requests.Session`` each, ``{"user_id": <random user of the training examples>, "k": 10}``.
Per level: ``--warmup`` s unmeasured, then ``--seconds`` s measured. Reported: client latency
p50/p95/p99, req/s, full-tier answers per second, server CPU ms per request, the server-side
total (queueing included) at p99.9 and its maximum, each stage's server-side ``latency_ms``
p50/p99, the share of each tier (anything but ``full`` is a fallback), item feature cache hit
rate and CPU cores used by the server and client processes. Client and server share the
machine's cores.

``--relaxed-deadlines`` gives every budget 60 s, so each request runs the full pipeline: its
capacity rather than its degradation. ``--api-key`` serves behind a keys file (one key,
scope ``recommend``) and sends the key with every request, as production runs. Prints a
table, writes JSON (benchmarks/results/recommendation_api_<items>[_relaxed].json) and a plot
next to it (.png).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
STAGES = ("features", "retrieval", "candidates", "ranking", "rules", "exploration", "total")
TIERS = ("full", "retrieval", "segment-popular", "global-popular")
log = logging.getLogger("recommendation_api")


def _step(times: dict, name: str, done: bool, fn) -> None:
    """Run setup step ``fn`` unless ``done``; its wall time goes into ``times``."""
    if done:
        log.info("setup: %s cached", name)
        return
    log.info("setup: %s ...", name)
    start = time.perf_counter()
    fn()
    times[name] = round(time.perf_counter() - start, 1)
    log.info("setup: %s done in %.1fs", name, times[name])


def ranker_config(args):
    """The ranker trained in the setup: ``--ranker-config``'s fields over the defaults, or the
    tests' small ranker; ``--epochs`` either way."""
    if args.ranker_config is None:
        from retrieval_support import small_ranker_config

        return small_ranker_config(epochs=args.epochs)
    from recsys.model_contract.ranker_config import load_ranker_config

    return load_ranker_config(args.ranker_config, {"epochs": args.epochs})


def setup(args, workdir: Path) -> tuple[Path, Path, list[str], dict]:
    """The feature repository, model base path, known users and the setup step times."""
    from retrieval_support import small_config

    from recsys.data.lake import Lake
    from recsys.data.synthetic import SyntheticConfig, generate
    from recsys.features.store import apply, materialize
    from serving.recommendations.popular_lists import build_popular_lists, load_training_examples
    from trainer import workflow
    from trainer.ranking.workflow import train_ranking
    from trainer.train import train_retrieval
    from trainer.training_data import load_retrieval_data
    from workflows.features_build import build_features

    repo, base = (workdir / "feature_repo").resolve(), workdir / "models"
    model_dir, ranker_dir = workdir / "two_tower", workdir / "ranker"
    times_file, users_file = workdir / "setup_seconds.json", workdir / "users.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    synthetic = SyntheticConfig(users=args.users, items=args.items, days=args.days, seed=7,
                                end_date=args.end_date)

    def platform_() -> None:
        report = generate(synthetic, Lake(workdir / "lake", create=True), progress=False)
        events = sum(e.written for e in report.events)
        log.info("generated %s users, %s items, %s events in %.1fs", f"{synthetic.users:,}",
                 f"{report.items.written:,}", f"{events:,}", report.seconds)
        shutil.copytree(ROOT / "feature_repo", repo, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("data", "__pycache__", "production"))
        start = time.perf_counter()
        build_features(workdir / "lake", repo, "embedded",
                       ["--split", "temporal", "--history_length", "10"])
        log.info("Beam features built in %.1fs", time.perf_counter() - start)
        apply(repo)

    _step(times, "platform (generate + Beam + apply)",
          (repo / "data" / "registry.db").exists(), platform_)
    loaded = []

    def data():
        """The training data (Feast point-in-time join), loaded once and only if needed."""
        if not loaded:
            start = time.perf_counter()
            loaded.append(load_retrieval_data(repo))
            times["load training data (Feast)"] = round(time.perf_counter() - start, 1)
            log.info("training data: %s train, %s test examples, %s catalogue items",
                     f"{len(loaded[0].train):,}", f"{len(loaded[0].test):,}",
                     f"{len(loaded[0].catalogue):,}")
        return loaded[0]

    if not users_file.exists():
        users_file.write_text(json.dumps(sorted(data().train["user_id"].unique().tolist())))
    _step(times, "train two-tower", (model_dir / "checkpoints").is_dir(),
          lambda: train_retrieval(data(), small_config(epochs=args.epochs), model_dir,
                                  progress=False))
    _step(times, "train ranker", (ranker_dir / "data.json").exists(),
          lambda: train_ranking(repo, model_dir, ranker_dir,
                                ranker_config(args), data(), progress=False))
    _step(times, f"export (k={args.candidates}, ScaNN)", (base / "ranker").is_dir(),
          lambda: workflow.export(repo, model_dir, base, k=args.candidates,
                                  ranker_dir=ranker_dir))
    materialized = workdir / "materialized.ok"  # apply already creates online_store.db
    _step(times, "materialize online store", materialized.exists(),
          lambda: (materialize(repo, end=dt.datetime.now(dt.timezone.utc),
                               start=dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)),
                   materialized.touch()))
    _step(times, "popular lists", (base / "popular.json").exists(),
          lambda: build_popular_lists(load_training_examples(repo), min_segment_events=20)
          .save(base / "popular.json"))
    times_file.write_text(json.dumps(times, indent=2))
    return repo, base, json.loads(users_file.read_text()), times


def load(url: str, users: list[str], concurrency: int, warmup_s: float, seconds: float,
         seed: int, token: str | None = None) -> dict:
    """Closed-loop clients (in the load generator process); the measured requests (each with
    the API key ``token``, if given)."""
    import requests

    logging.basicConfig(level=logging.INFO, format="%(asctime)s client %(message)s")
    cpu, began = time.process_time(), time.perf_counter()
    measure_from = began + warmup_s
    stop = measure_from + seconds
    records: list[list[tuple]] = [[] for _ in range(concurrency)]

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        with requests.Session() as session:
            if token is not None:
                session.headers["Authorization"] = f"Bearer {token}"
            while (start := time.perf_counter()) < stop:
                answer = session.post(f"{url}/v1/recommendations", timeout=30,
                                      json={"user_id": rng.choice(users), "k": 10})
                ms = (time.perf_counter() - start) * 1000
                if start >= measure_from and start + ms / 1000 <= stop:
                    body = answer.json() if answer.ok else {}
                    reasons = [re.sub(r"\d+", "N", why) for why in body.get("degraded", [])]
                    records[i].append((ms, answer.status_code, body.get("tier", "error"),
                                       body.get("latency_ms", {}), len(body.get("items", [])),
                                       reasons))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    while time.perf_counter() < stop:
        time.sleep(min(5.0, max(stop - time.perf_counter(), 0.0)))
        n, elapsed = sum(map(len, records)), time.perf_counter() - measure_from
        if elapsed > 1:
            logging.info("concurrency %d: %d measured requests, %.1f req/s", concurrency, n,
                         n / elapsed)
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {"records": [r for part in records for r in part],
            "client_cores": (time.process_time() - cpu) / wall}


def _cache(url: str) -> dict[tuple[str, str], float]:
    """The service's cache lookups so far, by (cache, hit or miss), from its /metrics (the sum
    over its workers)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", timeout=10).text
    return {(s.labels["cache"], s.labels["result"]): s.value
            for family in text_string_to_metric_families(text)
            if family.name == "recsys_cache_lookups"
            for s in family.samples if s.name.endswith("_total")}


def _service_processes(pid: int) -> list:
    """The service's processes: `recsys api` and its workers (not the embedded Redis)."""
    import psutil

    parent = psutil.Process(pid)
    return [parent] + [p for p in parent.children(recursive=True)
                       if "redis" not in p.name().lower()]


def _cpu_seconds(processes) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except Exception:  # noqa: BLE001 - a process that ended counts no more
            continue
        total += times.user + times.system
    return total


@contextlib.contextmanager
def run_service(config: Path, workers: int, log_path: Path, start_timeout_s: float = 900.0):
    """`recsys api --config CONFIG --workers N` in a process of its own; yields (its URL, its
    processes) once every worker answers /readyz (told apart by pid)."""
    import subprocess

    import requests

    from serving.recommendations.http_server import free_port

    port = free_port()
    command = [sys.executable, "-m", "workflows.cli.main", "api", "--config", str(config),
               "--port", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=ROOT)
        try:
            pids, deadline = set(), time.monotonic() + start_timeout_s
            while len(pids) < workers:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"`{' '.join(command)}` did not start; see {log_path}")
                try:  # a new connection each time: the kernel spreads them over the workers
                    pids.add(requests.get(f"{url}/readyz", timeout=2).json()["pid"])
                except (requests.RequestException, ValueError, KeyError):
                    time.sleep(0.5)
            log.info("service up: %d worker(s), pids %s", workers, sorted(pids))
            yield url, _service_processes(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def summarise(concurrency: int, seconds: float, out: dict, server_cores: float,
              cache: dict) -> dict:
    records, names = out["records"], sorted({name for name, _ in cache})
    client = np.array([r[0] for r in records])
    row = {"concurrency": concurrency, "requests": len(records),
           "throughput_rps": round(len(records) / seconds, 2),
           **{f"client_p{q}_ms": _pct(client, q) for q in (50, 95, 99)},
           "errors": sum(r[1] != 200 for r in records),
           "short_answers": sum(r[1] == 200 and r[4] < 10 for r in records),
           "tiers": {t: round(sum(r[2] == t for r in records) / max(len(records), 1), 4)
                     for t in (*TIERS, "error") if any(r[2] == t for r in records)},
           # a stage whose breaker was open did not run (0 ms): left out of its percentiles
           "stages": {s: {"p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99), "n": len(v)}
                      for s in STAGES
                      for v in [[r[3][s] for r in records if s in r[3] and not any(
                          w.startswith(f"{s}: circuit breaker") for w in r[5])]]},
           "fallback_reasons": dict(Counter(r[5][0] for r in records if r[5]).most_common()),
           "cache_hit_rates": {n: round(cache.get((n, "hit"), 0) / max(
               cache.get((n, "hit"), 0) + cache.get((n, "miss"), 0), 1), 3) for n in names},
           "server_cores": round(server_cores, 2), "client_cores": round(out["client_cores"], 2)}
    # personalised answers per second, the server's CPU per request, and how far the
    # server-side total goes past the deadline at its tail
    row["full_tier_rps"] = round(sum(r[2] == "full" for r in records) / seconds, 2)
    row["server_cpu_ms_per_request"] = round(
        1000 * server_cores * seconds / max(len(records), 1), 2)
    totals = [r[3]["total"] + r[3].get("queued", 0.0) for r in records if "total" in r[3]]
    row["server_total_p999_ms"] = _pct(totals, 99.9)
    row["server_total_max_ms"] = round(max(totals), 2) if totals else None
    # the slowest answers as the server saw them: where the time went past the deadline
    row["slowest"] = [{"tier": r[2], "latency_ms": r[3], "degraded": r[5]} for r in sorted(
        (r for r in records if "total" in r[3]),
        key=lambda r: -(r[3]["total"] + r[3].get("queued", 0.0)))[:5]]
    row["client_latencies_ms"] = sorted(round(float(x), 2) for x in client)
    return row


def _pair(stage: dict) -> str:
    return "-" if stage["p50_ms"] is None else f"{stage['p50_ms']:.1f}/{stage['p99_ms']:.1f}"


def _table(rows: list[dict]) -> None:
    print(f"\n{'conc':>4} {'reqs':>6} {'req/s':>7} {'full/s':>7} {'cpu ms':>7} {'p50':>7} "
          f"{'p95':>7} {'p99':>7} {'srv p99.9':>10} "
          + "".join(f"{s + ' p50/p99':>19}" for s in STAGES)
          + f"{'cache i/r':>11}{'cores s/c':>11}  tiers")
    for r in rows:
        stages = "".join(f"{_pair(r['stages'][s]):>19}" for s in STAGES)
        tiers = " ".join(f"{t} {100 * v:.1f}%" for t, v in r["tiers"].items())
        print(f"{r['concurrency']:>4} {r['requests']:>6} {r['throughput_rps']:>7.1f} "
              f"{r['full_tier_rps']:>7.1f} {r['server_cpu_ms_per_request']:>7.2f} "
              f"{r['client_p50_ms']:>7.1f} {r['client_p95_ms']:>7.1f} {r['client_p99_ms']:>7.1f} "
              f"{r['server_total_p999_ms'] or 0:>10.1f} {stages}"
              f"{r['cache_hit_rates'].get('item_features', 0):>6.2f}/"
              f"{r['cache_hit_rates'].get('retrieval', 0):.2f}"
              f"{r['server_cores']:>6.2f}/{r['client_cores']:.2f}  {tiers}")
    for r in rows:
        if r["fallback_reasons"]:
            print(f"  concurrency {r['concurrency']} first degradation reasons: "
                  + "; ".join(f"{n} x {why}" for why, n in r["fallback_reasons"].items()))
    print("(full/s: answers in the full tier per second; cpu ms: server CPU per request; srv "
          "p99.9: the server-side total including time queued before the pipeline)")
    print("(latency in ms: client p50/p95/p99, then the server's latency_ms per stage, over "
          "the requests where it ran (its breaker closed); cache: hit rates of the item feature "
          "and retrieval caches; cores: CPU s per wall s, server/client process)")


def _plot(rows: list[dict], items: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in rows:
        lat = r["client_latencies_ms"]
        left.plot(lat, np.arange(1, len(lat) + 1) / len(lat),
                  label=f"concurrency {r['concurrency']}: {r['throughput_rps']:.0f} req/s, "
                        f"{100 * r['tiers'].get('full', 0):.0f}% full tier")
    left.set_xscale("log")
    left.set(xlabel="client latency (ms)", ylabel="share of requests <= x",
             title=f"POST /v1/recommendations, {items:,} items")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    width, x = 0.8 / len(rows), np.arange(len(STAGES) - 1)
    for i, r in enumerate(rows):
        p50, p99 = ([r["stages"][s][q] or 0 for s in STAGES[:-1]] for q in ("p50_ms", "p99_ms"))
        right.bar(x + i * width, p50, width, yerr=[[0] * len(x), np.subtract(p99, p50)],
                  capsize=3, label=f"concurrency {r['concurrency']}")
    right.set_xticks(x + 0.4 - width / 2, STAGES[:-1])
    right.set(ylabel="server latency_ms (bar p50, whisker p99)", title="per stage")
    right.legend()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    log.info("wrote %s", path)


def _machine() -> dict:
    cpu = [x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model n")]
    packages = ("tensorflow", "tensorflow-recommenders", "scann", "feast", "fastapi", "uvicorn")
    return {"cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": cpu[0].split(":", 1)[1].strip() if cpu else platform.processor(),
            "python": platform.python_version(), **{n: metadata.version(n) for n in packages}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--end-date", type=dt.date.fromisoformat,
                        default=dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
    parser.add_argument("--epochs", type=int, default=2, help="two-tower and ranker epochs")
    parser.add_argument("--candidates", type=int, default=200, help="retrieval k (export)")
    parser.add_argument("--ranker-config", type=Path, default=None, metavar="FILE.yaml",
                        help="RankerConfig fields for the setup's ranker (default: the tests' "
                             "small ranker; an empty mapping gives the defaults)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep (and reuse) the platform, models and online store here")
    parser.add_argument("--relaxed-deadlines", action="store_true",
                        help="60 s request and stage budgets instead of the defaults, so every "
                             "request runs the full pipeline (capacity, not degradation)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="service processes (`recsys api --workers N`; default: one per "
                             "usable core)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="FIELD=VALUE", help="a ServiceConfig field for this run (YAML "
                        "value), e.g. --set max_in_flight=2; repeatable")
    parser.add_argument("--api-key", action="store_true",
                        help="serve behind an API key (a keys file with one recommend key, as "
                             "in production) and send it with every request; default: the "
                             "embedded profile's open service")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    suffix = "_relaxed" if args.relaxed_deadlines else ""
    out = args.out or ROOT / "benchmarks" / "results" / (
        f"recommendation_api_{args.items}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("apache_beam", "feast", "absl", "tensorflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import yaml

    import recsys  # noqa: F401  (before tensorflow: tf.keras is Keras 2)
    from serving.recommendations.config import load_service_config
    from serving.recommendations.service import latest_manifest

    with tempfile.TemporaryDirectory() as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        repo, base, users, setup_seconds = setup(args, workdir)
        budgets = {name: 60_000.0 for name in ("request_deadline_ms", "features_timeout_ms",
                                               "retrieval_timeout_ms", "ranking_timeout_ms")}
        settings = {}
        for setting in args.settings:
            field, _, value = setting.partition("=")
            settings[field] = yaml.safe_load(value)
        token = None
        if args.api_key:
            from serving.access.keys import add_key

            keys_file = workdir / "benchmark_keys.yaml"
            keys_file.unlink(missing_ok=True)
            token = add_key(keys_file, "benchmark", frozenset({"recommend"}))
            settings["access"] = {"keys_file": str(keys_file)}
        # checked as a config file is: an unknown field or a bad value is named
        cfg = load_service_config(None, {"repo": repo, "model_base_path": base,
                                         "workers": args.workers,
                                         **(budgets if args.relaxed_deadlines else {}),
                                         **settings})
        config = workdir / f"service{suffix}.yaml"
        config.write_text(yaml.safe_dump({k: v for k, v in cfg.to_dict().items()
                                          if k != "rules"}))
        retrieval = latest_manifest(base, "retrieval")
        start = time.perf_counter()
        rows = []
        with run_service(config, args.workers, out.with_suffix(".log")) as (url, processes), \
                ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            setup_seconds["service start (load models, embed item index)"] = round(
                time.perf_counter() - start, 1)
            log.info("service up in %.1fs: retrieval index %s items, k=%s, ScaNN %s",
                     time.perf_counter() - start, f"{retrieval['item_count']:,}",
                     retrieval["k"], retrieval["index"])
            for level in args.concurrency:
                cache, cpu = _cache(url), _cpu_seconds(processes)
                began = time.perf_counter()
                result = pool.submit(load, url, users, level, args.warmup, args.seconds,
                                     level, token).result()
                cores = (_cpu_seconds(processes) - cpu) / (time.perf_counter() - began)
                after = _cache(url)
                rows.append(summarise(level, args.seconds, result, cores,
                                      {k: v - cache.get(k, 0) for k, v in after.items()}))
                log.info("concurrency %d: %d requests, %.1f req/s, p50 %.1f ms, p99 %.1f ms, "
                         "tiers %s", level, rows[-1]["requests"], rows[-1]["throughput_rps"],
                         rows[-1]["client_p50_ms"], rows[-1]["client_p99_ms"],
                         rows[-1]["tiers"])
    print(f"\n{args.items:,} items in the catalogue, the retrieval index "
          f"({retrieval['item_count']:,}); retrieval k={retrieval['k']}; {args.workers} "
          f"service process(es); "
          f"{len(users):,} known users; {args.seconds:.0f}s per level; deadline "
          f"{cfg.request_deadline_ms:.0f} ms")
    _table(rows)
    print("setup seconds:", json.dumps(setup_seconds))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "recommendation_api", "items": args.items, "users": args.users,
        "days": args.days, "end_date": args.end_date.isoformat(), "known_users": len(users),
        "retrieval_index_items": retrieval["item_count"],
        "workers": args.workers, "retrieval_k": retrieval["k"],
        "scann": retrieval["index"], "ranker": ranker_config(args).to_dict(),
        "seconds_per_level": args.seconds,
        "warmup_seconds": args.warmup, "service_config": cfg.to_dict(),
        "setup_seconds": setup_seconds, "machine": _machine(), "results": rows}, indent=1,
        default=str))
    log.info("wrote %s", out)
    _plot(rows, args.items, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
