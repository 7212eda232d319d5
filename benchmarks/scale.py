"""Benchmark: the whole path at scale, per stage: wall time, peak memory and throughput.

From the synthetic lake to the API under load, against the number of events.

    python benchmarks/scale.py --events 10000000 --items 1000000 --users 200000
    python benchmarks/scale.py --events 1000000,3000000,10000000 --items 1000000 --users 200000
    python benchmarks/scale.py --events 100000 --items 20000 --users 5000 --seconds 5
        [--stages generate,beam_dask,...] [--skip-direct] [--epochs 1] [--ranker-epochs 1]
        [--workdir /tmp/recsys-scale] [--out benchmarks/results/scale.json]

Each size in ``--events`` runs in turn, in its own directory under ``--workdir``. Every stage
runs the real `recsys` command(s) as subprocesses, as a user would (the logs of each stage go
to ``WORKDIR/events_N/logs/STAGE.log``; a failed stage prints its path and its tail):

- ``generate``: `recsys data generate --users U --items I --days D` into a fresh lake. The
  generator's size is users x days (about 11-13 events per user and day, fewer per day over
  longer windows as more users sign up late). A pilot (the generator itself on at most 10,000
  users, in this process, not measured) measures that rate; the benchmark then takes the
  fewest whole days D for which ``--users`` users reach the target, and lowers the users to
  land on it: ``--users`` is the most users a size gets (at ``--users 200000``: 1M events is
  1 day of 78,373 users, 3M 2 days of 129,871, 10M 5 days of 181,448). The lake's actual
  count is printed; it lands within a few per cent (the pilot's users are not the run's).
- ``beam_direct``: `recsys features build --profile production --split temporal
  --direct_running_mode in_memory`: the single-process DirectRunner, only for the speed
  comparison (``--skip-direct`` leaves it out; at 10M events it is slow and memory hungry).
  The same command as beam_dask's but for the runner, so both run the same pipeline (the
  production profile's also reads the PostgreSQL event log; here it is empty, so the lake's
  batches are not deduplicated against it) and both load the tables into PostgreSQL.
- ``beam_dask``: a 2-process ``distributed.LocalCluster`` (one thread each) started as a
  subprocess of the stage, then `recsys features build --profile production --split temporal
  --runner apache_beam.runners.dask.dask_runner.DaskRunner --dask_client_address ADDR
  --dask_npartitions 16`, which also loads the tables into PostgreSQL.
- ``feast_apply_materialize``: `recsys features apply` and `recsys features materialize
  --start-date 1970-01-01T00:00:00` on the production profile: PostgreSQL offline store and
  SQL registry in the database ``--pg-database`` (dropped and created by this benchmark), the
  Redis online store in database ``--redis-db`` of 127.0.0.1:6379 (flushed by it; a database
  holding keys it did not write is refused).
- ``train``: `recsys train retrieval --epochs E` (the default model; every training example,
  ``--epochs`` epochs: the CLI has no example limit).
- ``train_ranker``: `recsys train ranking --epochs E --max-lists L` (the transformer ranker,
  lists of 200 candidates, of at most ``--ranker-max-lists`` users drawn at random); without
  it the API serves the retrieval tier at best.
- ``export``: `recsys export --top-k 200` (ScaNN over every catalogue item, tuned as the
  export does by default; the ranker too if trained) and `recsys popular build`.
- ``api_load``: `recsys api --config FILE --workers N` (production profile, behind an API key,
  the event stream in the same Redis database) loaded by benchmarks/recommendation_api.py's
  closed-loop generator (a separate process, not counted) at concurrency 4 and 16 for
  ``--seconds`` each after ``--warmup``.

Measured per stage: wall time (the whole stage: for beam_dask the cluster's start and the
PostgreSQL load are included; Beam's own pipeline time is reported beside it), peak memory
(the maximum over time of the summed RSS of every process the stage started, Dask scheduler
and workers included, sampled every 0.2 s; PostgreSQL and Redis are shared services outside
that tree: their sizes are reported apart) and throughput in the stage's input units per
second (events, online entities, examples x epochs, ranker lists x epochs, indexed items,
requests). A stage above 16 GB is flagged; one above ``--kill-above-gb`` is killed.

Reported: a table of size x stage, the API's levels, the Dask/Direct speed ratio per size
and, over every size in the JSON, each stage's scaling exponent (the log-log slope of cost
against events: 1 is linear). Writes JSON (default benchmarks/results/scale.json; a size run
again replaces its own rows and keeps the others', so sizes can run in separate invocations)
and a plot beside it (.png): per stage, wall time and peak memory against events with a
linear reference line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import recommendation_api as api_bench  # noqa: E402  (its load generator and service runner)

log = logging.getLogger("scale")
STAGES = ("generate", "beam_direct", "beam_dask", "feast_apply_materialize", "train",
          "train_ranker", "export", "api_load")
GB = 2 ** 30
MEMORY_BUDGET_GB = 16.0
SAMPLE_EVERY_S = 0.2
PILOT_MAX_USERS = 10_000
PILOT_MAX_ITEMS = 50_000
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)
REDIS_MARKER = "recsys-scale-benchmark:owner"
PG_COMMENT = "recsys scale benchmark"
RESERVED_DATABASES = {"postgres", "root", "test", "template0", "template1"}
BEAM_OPTIONS = ["--split", "temporal"]
CLUSTER = """
import sys
from distributed import LocalCluster
with LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True,
                  dashboard_address=None, scheduler_port=0) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
"""


class StageFailed(Exception):
    """A stage's command failed; ``log`` (when given) says why."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message)
        self.log = log


# --- command line ----------------------------------------------------------------------------

def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(part.replace("_", ""))) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1_000:
        raise argparse.ArgumentTypeError(
            f"expected event counts of at least 1000, comma-separated (e.g. "
            f"1000000,3000000,10000000), got {text!r}")
    return sorted(set(sizes))


def _stage_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown stage(s) {', '.join(unknown) or repr(text)}; known: {', '.join(STAGES)}")
    return [s for s in STAGES if s in names]


def _at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}")
        return value
    return parse


def _redis_db(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 15:
        raise argparse.ArgumentTypeError(f"expected a Redis database number from 1 to 15 (0 is "
                                         f"the default database others use), got {text!r}")
    return int(text)


def _database_name(text: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", text) or text in RESERVED_DATABASES:
        raise argparse.ArgumentTypeError(
            f"expected a dedicated PostgreSQL database name (lower case letters, digits, _; "
            f"not one of {', '.join(sorted(RESERVED_DATABASES))}), got {text!r}")
    return text


def _past_date(text: str) -> dt.date:
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-01, got {text!r}") \
            from None
    if value > dt.datetime.now(dt.timezone.utc).date():
        raise argparse.ArgumentTypeError(f"--end-date {text} lies in the future")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    add = parser.add_argument
    add("--events", type=_sizes, required=True, metavar="N[,N...]",
        help="target lake sizes in events, run in turn (e.g. 1000000,3000000,10000000)")
    add("--items", type=_at_least(100), default=1_000_000, help="catalogue size")
    add("--users", type=_at_least(100), default=200_000,
        help="the most users a size gets (see the module docstring)")
    add("--stages", type=_stage_list, default=list(STAGES),
        help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    add("--skip-direct", action="store_true", help="leave out the beam_direct stage")
    add("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "recsys-scale",
        help="kept between runs; one directory per size")
    add("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    add("--seconds", type=_at_least(1, float), default=20.0,
        help="measured seconds per API concurrency level")
    add("--warmup", type=_at_least(0, float), default=3.0,
        help="unmeasured seconds before each level")
    add("--concurrency", type=_at_least(1), nargs="+", default=[4, 16])
    add("--api-workers", type=_at_least(1), default=len(os.sched_getaffinity(0)),
        help="`recsys api --workers` (default: one per usable core)")
    add("--epochs", type=_at_least(1), default=1, help="two-tower training epochs")
    add("--ranker-epochs", type=_at_least(1), default=1, help="ranker training epochs")
    add("--ranker-max-lists", type=_at_least(1), default=20_000,
        help="`recsys train ranking --max-lists`: the ranker learns from the lists of at most "
             "this many users, drawn at random")
    add("--top-k", type=_at_least(1), default=200, help="`recsys export --top-k`")
    add("--dask-workers", type=_at_least(1), default=2)
    add("--dask-npartitions", type=_at_least(1), default=16)
    add("--pg-database", type=_database_name, default="recsys_scale",
        help="the benchmark's own PostgreSQL database (dropped and created)")
    add("--redis-db", type=_redis_db, default=13,
        help="the benchmark's own Redis database number, 1-15 (flushed)")
    add("--keep-services", action="store_true",
        help="keep the PostgreSQL database and Redis keys at the end (to rerun later stages)")
    add("--kill-above-gb", type=_at_least(1, float), default=22.0,
        help="kill a stage whose processes hold more than this (the machine has 24 GB)")
    add("--end-date", type=_past_date, default=yesterday,
        help="the lake's window ends at this UTC date (default: yesterday)")
    add("--seed", type=_at_least(0), default=42)
    add("--progress-every", type=_at_least(1, float), default=30.0,
        help="seconds between a long stage's progress lines")
    args = parser.parse_args(argv)
    if args.skip_direct:
        args.stages = [s for s in args.stages if s != "beam_direct"]
    if not args.stages:
        parser.error("--stages with --skip-direct leaves nothing to run")
    return args


# --- sizing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SizePlan:
    target: int
    users: int
    days: int
    items: int
    seed: int
    events_per_user_day: float

    @property
    def expected(self) -> int:
        return round(self.users * self.days * self.events_per_user_day)


def _pilot_rate(days: int, users: int, items: int, seed: int, end: dt.date) -> float:
    """Events per user and day the generator writes over ``days`` days (on at most 10,000
    users: the rate does not depend on their number)."""
    from recsys.data.lake import Lake
    from recsys.data.synthetic import SyntheticConfig, generate

    cfg = SyntheticConfig(users=min(users, PILOT_MAX_USERS), items=min(items, PILOT_MAX_ITEMS),
                          days=days, seed=seed, end_date=end)
    with tempfile.TemporaryDirectory() as tmp:
        report = generate(cfg, Lake(Path(tmp) / "lake", create=True), progress=False)
    return report.events_written / (cfg.users * days)


def plan_size(target: int, max_users: int, items: int, seed: int, end: dt.date) -> SizePlan:
    """The fewest whole days on which ``max_users`` users reach ``target`` events, then the
    users that land on it at that day's measured rate."""
    rates: dict[int, float] = {}

    def rate(days: int) -> float:
        if days not in rates:
            rates[days] = _pilot_rate(days, max_users, items, seed, end)
        return rates[days]

    days = max(1, math.ceil(target / (max_users * rate(1))))
    while max_users * days * rate(days) < target:
        days += 1
    users = min(max_users, max(1, round(target / (days * rate(days)))))
    return SizePlan(target, users, days, items, seed, round(rate(days), 3))


# --- measuring -------------------------------------------------------------------------------

def _descendants() -> list:
    import psutil

    return psutil.Process().children(recursive=True)


class MemorySampler(threading.Thread):
    """Samples the summed RSS of this script's descendants (less ``exclude``) every 0.2 s;
    kills them above ``kill_above`` bytes; calls ``heartbeat`` every ``every`` seconds."""

    def __init__(self, exclude: set[int], kill_above: float, every: float,
                 heartbeat: Callable[[float, float], None]):
        super().__init__(daemon=True)
        self.exclude, self.kill_above, self.every, self.heartbeat = (exclude, kill_above,
                                                                     every, heartbeat)
        self.current = self.peak = 0.0
        self.killed = False
        self._halt = threading.Event()

    def _processes(self) -> list:
        return [p for p in _descendants() if p.pid not in self.exclude]

    def sample(self) -> None:
        total = 0
        processes = self._processes()
        for process in processes:
            with contextlib.suppress(Exception):  # a process that just ended holds nothing
                total += process.memory_info().rss
        self.current, self.peak = total, max(self.peak, total)
        if total > self.kill_above and not self.killed:
            self.killed = True
            log.error("memory guard: %.1f GB > --kill-above-gb %.1f: killing the stage",
                      total / GB, self.kill_above / GB)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.kill()

    def run(self) -> None:
        next_beat = time.monotonic() + self.every
        while not self._halt.wait(SAMPLE_EVERY_S):
            self.sample()
            if time.monotonic() >= next_beat:
                next_beat += self.every
                self.heartbeat(self.current, self.peak)

    def stop(self) -> None:
        self._halt.set()
        self.join()


@dataclass
class CommandResult:
    command: str
    seconds: float
    lines: deque = field(repr=False)  # (seconds since the stage started, text)

    def find(self, pattern: str) -> re.Match | None:
        for _, line in self.lines:
            if match := re.search(pattern, line):
                return match
        return None

    def time_of(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def recsys_command() -> list[str]:
    """The installed `recsys` entry point (or the module it runs)."""
    script = Path(sys.executable).with_name("recsys")
    return [str(script)] if script.exists() else [sys.executable, "-m", "workflows.cli.main"]


class Stage:
    """One measured stage: wall time from entering to leaving, peak memory of every process
    started meanwhile, and the commands it ran (output streamed to ``log``)."""

    def __init__(self, name: str, logs: Path, args: argparse.Namespace):
        self.name, self.log, self.args = name, logs / f"{name}.log", args
        self.commands: list[dict] = []
        self.last_line = ""
        self.seconds = 0.0

    def __enter__(self) -> Stage:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        self.sampler = MemorySampler({p.pid for p in _descendants()},
                                     self.args.kill_above_gb * GB, self.args.progress_every,
                                     self._heartbeat)
        log.info("stage %s: starting (log %s)", self.name, self.log)
        self.started = time.perf_counter()
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
        self.sampler.stop()

    @property
    def peak_gb(self) -> float:
        return self.sampler.peak / GB

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _heartbeat(self, current: float, peak: float) -> None:
        log.info("stage %s: %.0fs, %.2f GB now, peak %.2f GB | %s", self.name, self.elapsed(),
                 current / GB, peak / GB, self.last_line[:120])

    def run(self, argv: list[str]) -> CommandResult:
        """Run ``argv`` to the end, its output into the log; StageFailed if it fails."""
        shown = shlex.join(map(str, argv))
        log.info("stage %s: $ %s", self.name, shown)
        started, lines, first = time.perf_counter(), deque(maxlen=5_000), None
        with open(self.log, "a") as out:
            out.write(f"$ {shown}\n")
            process = subprocess.Popen(list(map(str, argv)), cwd=ROOT, env=_child_env(),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, errors="replace", bufsize=1)
            for line in process.stdout:
                at, line = self.elapsed(), line.rstrip("\n")
                out.write(f"[{at:9.1f}s] {line}\n")
                out.flush()
                lines.append((at, line))
                self.last_line = line
                first = first if first is not None else time.perf_counter() - started
            code = process.wait()
        seconds = time.perf_counter() - started
        # the first output comes after the imports (TensorFlow, Beam, Feast): about the
        # command's fixed start-up cost, which dominates small sizes
        self.commands.append({"command": shown, "seconds": round(seconds, 1),
                              "first_output_seconds": None if first is None
                              else round(first, 1)})
        if code != 0:
            why = " (killed by the memory guard)" if self.sampler.killed else ""
            raise StageFailed(f"`{shown}` exited with {code}{why}", self.log)
        return CommandResult(shown, seconds, lines)

    def row(self, units: float, unit: str, **details) -> dict:
        return {"stage": self.name, "seconds": round(self.seconds, 1),
                "peak_gb": round(self.peak_gb, 3), "units": units, "unit": unit,
                "throughput": round(units / max(self.seconds, 1e-9), 1),
                "commands": self.commands, "log": str(self.log), **details}


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- services --------------------------------------------------------------------------------

def _pg_admin():
    import psycopg

    return psycopg.connect(f"host={PG['host']} port={PG['port']} dbname=postgres "
                           f"user={PG['user']}", autocommit=True)


def _pg_comment(conn, name: str) -> str | None:
    row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                       "WHERE datname = %s", (name,)).fetchone()
    return None if row is None else (row[0] or "")


def drop_database(name: str) -> None:
    """Drop the benchmark's database; one this benchmark did not create is refused."""
    from psycopg import sql

    with _pg_admin() as conn:
        comment = _pg_comment(conn, name)
        if comment is None:
            return
        if comment != PG_COMMENT:
            raise SystemExit(f"--pg-database {name} exists and was not created by this "
                             "benchmark: choose another name")
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(name: str) -> None:
    from psycopg import sql

    drop_database(name)
    with _pg_admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(PG_COMMENT)))


def database_gb(name: str) -> float | None:
    with _pg_admin() as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    return round(row[0] / GB, 3) if row else None


def _redis(db: int):
    import redis

    return redis.Redis(host=REDIS[0], port=REDIS[1], db=db)


def claim_redis(db: int, flush: bool) -> None:
    """Check database ``db`` is the benchmark's (empty, or marked by it); with ``flush``,
    empty it and mark it."""
    client = _redis(db)
    keys = client.dbsize()
    if keys and not client.exists(REDIS_MARKER):
        raise SystemExit(f"--redis-db {db} holds {keys:,} keys this benchmark did not write: "
                         "choose an empty database number")
    if flush:
        client.flushdb()
        client.set(REDIS_MARKER, "1")


def release_services(args: argparse.Namespace) -> None:
    claim_redis(args.redis_db, flush=False)
    _redis(args.redis_db).flushdb()
    drop_database(args.pg_database)
    (args.workdir / "services.json").unlink(missing_ok=True)
    log.info("dropped database %s and flushed Redis database %d", args.pg_database,
             args.redis_db)


def _hold_file(args: argparse.Namespace) -> Path:
    return args.workdir / "services.json"


def _same_services(hold: dict, args: argparse.Namespace, target: int) -> bool:
    return (hold.get("events") == target and hold.get("database") == args.pg_database
            and hold.get("redis_db") == args.redis_db)


def set_services_hold(args: argparse.Namespace, target: int, part: str) -> None:
    """Record that ``part`` of size ``target`` is in this run's database and Redis."""
    path = _hold_file(args)
    hold = json.loads(path.read_text()) if path.exists() else {}
    if not _same_services(hold, args, target):
        hold = {"events": target, "database": args.pg_database, "redis_db": args.redis_db}
    hold[part] = True
    path.write_text(json.dumps(hold))


def require_services_hold(args: argparse.Namespace, target: int, part: str, stage: str) -> None:
    path = _hold_file(args)
    hold = json.loads(path.read_text()) if path.exists() else {}
    if not _same_services(hold, args, target) or not hold.get(part):
        what = "a Beam stage (beam_direct or beam_dask)" if part == "features" else (
            f"the {part} stage")
        raise StageFailed(f"{stage} needs {what} of this size ({target:,} events) in "
                          f"PostgreSQL/Redis first (they hold: {hold or 'nothing'}); run it "
                          "in the same invocation, or earlier with --keep-services")


# --- the size's files ------------------------------------------------------------------------

@dataclass
class SizeRun:
    """Everything a size's stages share: its plan, directories and the lake's count."""

    args: argparse.Namespace
    plan: SizePlan
    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def production(self) -> Path:
        return self.repo / "production"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def model_dir(self) -> Path:
        return self.root / "two_tower"

    @property
    def ranker_dir(self) -> Path:
        return self.root / "ranker"

    @property
    def base(self) -> Path:
        return self.root / "models"

    def events(self) -> int:
        path = self.root / "generated.json"
        if not path.exists():
            raise StageFailed(f"no lake for this size in {self.lake}: run the generate stage")
        generated = json.loads(path.read_text())
        if generated["plan"] != asdict(self.plan):
            raise StageFailed(f"the lake in {self.lake} was generated for another plan "
                              f"({generated['plan']}): run the generate stage")
        return generated["events"]

    def stage(self, name: str) -> Stage:
        return Stage(name, self.logs, self.args)


def copy_repositories(run: SizeRun) -> None:
    """A copy of the feature repository whose production profile uses the benchmark's own
    PostgreSQL database and Redis database."""
    import yaml

    shutil.copytree(ROOT / "feature_repo", run.repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("data", "__pycache__"))
    config_path = run.production / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    database = run.args.pg_database
    config["registry"]["path"] = (f"postgresql+psycopg://{PG['user']}@{PG['host']}:"
                                  f"{PG['port']}/{database}")
    config["offline_store"].update(host=PG["host"], port=PG["port"], database=database)
    config["online_store"]["connection_string"] = (f"{REDIS[0]}:{REDIS[1]},"
                                                   f"db={run.args.redis_db}")
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- stages ----------------------------------------------------------------------------------

def stage_generate(run: SizeRun) -> dict:
    shutil.rmtree(run.lake, ignore_errors=True)
    (run.root / "generated.json").unlink(missing_ok=True)
    plan = run.plan
    with run.stage("generate") as stage:
        result = stage.run([*recsys_command(), "data", "generate", "--out", run.lake,
                            "--users", plan.users, "--items", plan.items, "--days", plan.days,
                            "--seed", plan.seed, "--end-date", run.args.end_date.isoformat(),
                            "--no-progress"])
    match = result.find(r"events: received [\d,]+, written ([\d,]+)")
    events = int(match.group(1).replace(",", "")) if match else 0
    (run.root / "generated.json").write_text(json.dumps({"events": events,
                                                         "plan": asdict(plan)}))
    log.info("lake: %s events (target %s, %+.1f%%)", f"{events:,}", f"{plan.target:,}",
             100 * (events / plan.target - 1))
    return stage.row(events, "events", lake_gb=round(_tree_bytes(run.lake) / GB, 3))


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _beam_run(data: Path) -> dict:
    """What the Beam job recorded about itself (counters, its own seconds)."""
    path = data / "_run.json"
    return json.loads(path.read_text()) if path.exists() else {}


def beam_command(run: SizeRun, runner: list) -> list:
    """`recsys features build` on the production profile with ``runner``'s options."""
    return [*recsys_command(), "features", "build", "--lake", run.lake, "--repo", run.repo,
            "--profile", "production", *BEAM_OPTIONS, *runner]


def _beam_details(run: SizeRun, result: CommandResult, finished: float) -> dict:
    """Beam's own time and count (from the job's _run.json) and the PostgreSQL load after
    it (from the time of the job's last log line to the command's end)."""
    built = _beam_run(run.production / "data")
    beam_done = result.time_of("feature build:")
    return {"units": built.get("counters", {}).get("events_read", 0), "unit": "events",
            "beam_seconds": round(built.get("seconds", 0.0), 1),
            "postgres_load_seconds": None if beam_done is None
            else round(finished - beam_done, 1),
            "postgres_database_gb": database_gb(run.args.pg_database)}


def stage_beam_direct(run: SizeRun) -> dict:
    run.events()
    create_database(run.args.pg_database)
    with run.stage("beam_direct") as stage:
        result = stage.run(beam_command(run, ["--direct_running_mode", "in_memory"]))
    set_services_hold(run.args, run.plan.target, "features")
    return stage.row(**_beam_details(run, result, stage.seconds))


@contextlib.contextmanager
def dask_cluster(stage: Stage, workers: int) -> Iterator[str]:
    """A LocalCluster of ``workers`` processes in a subprocess of the stage; its address."""
    log_path = stage.log.with_suffix(".cluster.log")
    with open(log_path, "w") as err:
        process = subprocess.Popen([sys.executable, "-c", CLUSTER, str(workers)], cwd=ROOT,
                                   env=_child_env(), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            address = process.stdout.readline().strip()
            if not address:
                raise StageFailed("the Dask cluster did not start", log_path)
            log.info("stage %s: Dask LocalCluster of %d workers at %s (log %s)", stage.name,
                     workers, address, log_path)
            yield address.removeprefix("tcp://")
        finally:
            process.stdin.close()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stage_beam_dask(run: SizeRun) -> dict:
    run.events()
    create_database(run.args.pg_database)
    with run.stage("beam_dask") as stage:
        with dask_cluster(stage, run.args.dask_workers) as address:
            cluster_up = stage.elapsed()
            result = stage.run(beam_command(run, [
                "--runner", DASK_RUNNER, "--dask_client_address", address,
                "--dask_npartitions", run.args.dask_npartitions]))
            finished = stage.elapsed()
    set_services_hold(run.args, run.plan.target, "features")
    return stage.row(**_beam_details(run, result, finished),
                     cluster_start_seconds=round(cluster_up, 1))


def stage_feast(run: SizeRun) -> dict:
    require_services_hold(run.args, run.plan.target, "features", "feast_apply_materialize")
    claim_redis(run.args.redis_db, flush=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    profile = ["--repo", run.repo, "--profile", "production"]
    with run.stage("feast_apply_materialize") as stage:
        stage.run([*recsys_command(), "features", "apply", *profile])
        stage.run([*recsys_command(), "features", "materialize", *profile,
                   "--start-date", "1970-01-01T00:00:00", "--end-date", now])
    set_services_hold(run.args, run.plan.target, "feast")
    client = _redis(run.args.redis_db)
    entities = client.dbsize() - 1  # the marker
    memory = client.info("memory")
    return stage.row(entities, "entities", online_keys=entities,
                     redis_used_gb=round(memory["used_memory"] / GB, 3),
                     redis_peak_gb=round(memory["used_memory_peak"] / GB, 3))


def _number(match: re.Match | None, group: int) -> int:
    return int(match.group(group).replace(",", "")) if match else 0


def stage_train(run: SizeRun) -> dict:
    require_services_hold(run.args, run.plan.target, "features", "train")
    shutil.rmtree(run.model_dir, ignore_errors=True)
    with run.stage("train") as stage:
        result = stage.run([*recsys_command(), "train", "retrieval", "--repo", run.repo,
                            "--profile", "production", "--model-dir", run.model_dir,
                            "--epochs", run.args.epochs, "--no-progress"])
    match = result.find(r"trained (\d+) epoch\(s\) on ([\d,]+) examples at ([\d,]+) examples/s")
    epochs, examples = _number(match, 1), _number(match, 2)
    return stage.row(examples * epochs, "examples", examples=examples, epochs=epochs,
                     fit_examples_per_s=_number(match, 3))


def stage_train_ranker(run: SizeRun) -> dict:
    require_services_hold(run.args, run.plan.target, "features", "train_ranker")
    if not (run.model_dir / "checkpoints").is_dir():
        raise StageFailed(f"no two-tower model in {run.model_dir}: run the train stage")
    shutil.rmtree(run.ranker_dir, ignore_errors=True)
    with run.stage("train_ranker") as stage:
        result = stage.run([*recsys_command(), "train", "ranking", "--repo", run.repo,
                            "--profile", "production", "--model-dir", run.model_dir,
                            "--ranker-dir", run.ranker_dir, "--epochs", run.args.ranker_epochs,
                            "--max-lists", run.args.ranker_max_lists, "--no-progress"])
    match = result.find(r"trained the ranker on ([\d,]+) lists of (\d+) candidates "
                        r"\(([\d,]+) positives\)")
    lists = _number(match, 1)
    return stage.row(lists * run.args.ranker_epochs, "lists", lists=lists,
                     candidates=_number(match, 2), positives=_number(match, 3),
                     epochs=run.args.ranker_epochs, max_lists=run.args.ranker_max_lists)


def _retrieval_manifest(base: Path) -> dict:
    from recsys.model_contract.manifest import read_manifest
    from recsys.model_contract.versioning import versions

    found = versions(base / "retrieval")
    return (read_manifest(base / "retrieval" / str(found[-1])) or {}) if found else {}


def stage_export(run: SizeRun) -> dict:
    require_services_hold(run.args, run.plan.target, "features", "export")
    if not (run.model_dir / "checkpoints").is_dir():
        raise StageFailed(f"no two-tower model in {run.model_dir}: run the train stage")
    shutil.rmtree(run.base, ignore_errors=True)
    ranker = (["--ranker-dir", run.ranker_dir] if (run.ranker_dir / "data.json").exists()
              else [])
    with run.stage("export") as stage:
        result = stage.run([*recsys_command(), "export", "--repo", run.repo, "--profile",
                            "production", "--model-dir", run.model_dir, *ranker,
                            "--model-base-path", run.base, "--top-k", run.args.top_k])
        stage.run([*recsys_command(), "popular", "build", "--repo", run.production, "--out",
                   run.base / "popular.json"])
    items = _number(result.find(r"exported version \d+ \(([\d,]+) items indexed\)"), 1)
    manifest = _retrieval_manifest(run.base)
    return stage.row(items, "items", ranker=bool(ranker), scann=manifest.get("index"),
                     export_seconds=round(result.seconds, 1))


def _known_users(run: SizeRun) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(run.production / "data" / "training_examples",
                          columns=["user_id", "split"])
    train = table.filter(pc.equal(table["split"], "train"))
    return sorted(pc.unique(train["user_id"]).to_pylist())


def _service_config(run: SizeRun) -> tuple[Path, str]:
    """The API's config file (production profile, one API key, the stream in the benchmark's
    Redis database), checked as `recsys api` checks it, and the key's token."""
    import yaml

    from serving.access.keys import add_key
    from serving.recommendations.config import load_service_config

    keys = run.root / "api_keys.yaml"
    keys.unlink(missing_ok=True)
    token = add_key(keys, "scale-benchmark", frozenset({"recommend"}))
    config = run.root / "service.yaml"
    config.write_text(yaml.safe_dump({
        "repo": str(run.production), "model_base_path": str(run.base),
        "workers": run.args.api_workers, "access": {"keys_file": str(keys)},
        "stream": {"redis_url": f"redis://{REDIS[0]}:{REDIS[1]}/{run.args.redis_db}"}}))
    load_service_config(config)
    return config, token


def _load_level(pool, url: str, users: list[str], level: int, processes, args, token: str
                ) -> dict:
    cpu, began = api_bench._cpu_seconds(processes), time.perf_counter()
    out = pool.submit(api_bench.load, url, users, level, args.warmup, args.seconds, level,
                      token).result()
    cores = (api_bench._cpu_seconds(processes) - cpu) / (time.perf_counter() - began)
    row = api_bench.summarise(level, args.seconds, out, cores, {})
    keep = ("concurrency", "requests", "throughput_rps", "full_tier_rps", "client_p50_ms",
            "client_p95_ms", "client_p99_ms", "errors", "tiers", "fallback_reasons",
            "server_cpu_ms_per_request", "server_cores")
    return {k: row[k] for k in keep}


def stage_api_load(run: SizeRun) -> dict:
    require_services_hold(run.args, run.plan.target, "feast", "api_load")
    if not (run.base / "popular.json").exists():
        raise StageFailed(f"no export in {run.base}: run the export stage")
    users = _known_users(run)
    config, token = _service_config(run)
    service_log = run.logs / "api_load.service.log"
    args = run.args
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        pool.submit(int).result()  # the load generator exists before measuring: not counted
        with run.stage("api_load") as stage:
            stage.commands.append({"command": shlex.join(
                [sys.executable, "-m", "workflows.cli.main", "api", "--config", str(config),
                 "--port", "PORT", "--workers", str(args.api_workers)]), "log": str(service_log)})
            try:
                with api_bench.run_service(config, args.api_workers, service_log) as \
                        (url, processes):
                    ready = stage.elapsed()
                    levels = []
                    for level in args.concurrency:
                        levels.append(_load_level(pool, url, users, level, processes, args,
                                                  token))
                        log.info("concurrency %d: %.1f req/s, p50 %s ms, p99 %s ms, tiers %s",
                                 level, levels[-1]["throughput_rps"],
                                 levels[-1]["client_p50_ms"], levels[-1]["client_p99_ms"],
                                 levels[-1]["tiers"])
            except RuntimeError as exc:
                raise StageFailed(str(exc), service_log) from exc
    stage.commands[0]["seconds"] = round(stage.seconds, 1)
    top = levels[-1]
    return {**stage.row(sum(r["requests"] for r in levels), "requests",
                        service_start_seconds=round(ready, 1), known_users=len(users),
                        levels=levels),
            "log": str(service_log),
            # req/s at the highest concurrency, not requests over the stage's wall time
            "throughput": top["throughput_rps"]}


STAGE_FUNCTIONS: dict[str, Callable[[SizeRun], dict]] = {
    "generate": stage_generate, "beam_direct": stage_beam_direct, "beam_dask": stage_beam_dask,
    "feast_apply_materialize": stage_feast, "train": stage_train,
    "train_ranker": stage_train_ranker, "export": stage_export, "api_load": stage_api_load}


# --- running a size --------------------------------------------------------------------------

def run_size(args: argparse.Namespace, plan: SizePlan) -> dict:
    """Every chosen stage of one size in order; a failed stage ends the size (but a failed
    beam_direct, which nothing depends on, does not)."""
    run = SizeRun(args, plan, (args.workdir / f"events_{plan.target}").resolve())
    run.root.mkdir(parents=True, exist_ok=True)
    copy_repositories(run)
    log.info("size %s: %d day(s) x %s users (of --users %s), %s items: about %s events "
             "(%.2f events per user and day); in %s", f"{plan.target:,}", plan.days,
             f"{plan.users:,}", f"{args.users:,}", f"{plan.items:,}", f"{plan.expected:,}",
             plan.events_per_user_day, run.root)
    rows: dict[str, dict] = {}
    for name in args.stages:
        try:
            rows[name] = STAGE_FUNCTIONS[name](run)
        except StageFailed as exc:
            stage_log = exc.log or run.logs / f"{name}.log"
            print(f"\n*** stage {name} of size {plan.target:,} FAILED: {exc}\n"
                  f"*** log: {stage_log}\n{log_tail(stage_log)}\n", file=sys.stderr,
                  flush=True)
            rows[name] = {"stage": name, "error": str(exc), "log": str(stage_log)}
            if name != "beam_direct":
                rest = args.stages[args.stages.index(name) + 1:]
                if rest:
                    log.warning("size %s: not run after the failure: %s", f"{plan.target:,}",
                                ", ".join(rest))
                break
            continue
        row = rows[name]
        log.info("stage %s: %.1fs, peak %.2f GB, %s %s/s", name, row["seconds"],
                 row["peak_gb"], f"{row['throughput']:,.1f}", row["unit"])
        if row["peak_gb"] > MEMORY_BUDGET_GB:
            _warn_memory(plan.target, row)
    events = None
    with contextlib.suppress(StageFailed):
        events = run.events()
    return {"plan": asdict(plan), "events": events, "workdir": str(run.root), "stages": rows}


def _warn_memory(target: int, row: dict) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n!!! WARNING: stage {row['stage']} at {target:,} events peaked at "
          f"{row['peak_gb']:.1f} GB, above the {MEMORY_BUDGET_GB:.0f} GB budget\n{bar}\n",
          file=sys.stderr, flush=True)


# --- reporting -------------------------------------------------------------------------------

def _plan_key(plan: dict) -> tuple:
    return tuple(plan.get(k) for k in ("target", "users", "days", "items", "seed"))


def merge_results(path: Path, new: dict[str, dict], meta: dict) -> dict:
    """The JSON at ``path`` with ``new`` sizes merged in: a size run again keeps the rows of
    stages not rerun if its plan is unchanged, and loses them all otherwise."""
    old = json.loads(path.read_text()) if path.exists() else {}
    sizes = old.get("sizes", {}) if old.get("benchmark") == "scale" else {}
    for key, entry in new.items():
        previous = sizes.get(key)
        if previous and _plan_key(previous["plan"]) == _plan_key(entry["plan"]):
            entry = {**entry, "stages": {**previous["stages"], **entry["stages"]},
                     "events": entry["events"] or previous.get("events")}
        sizes[key] = entry
    ordered = dict(sorted(sizes.items(), key=lambda kv: int(kv[0])))
    return {"benchmark": "scale", **meta, "sizes": ordered}


def _ok_rows(document: dict, stage: str) -> list[tuple[int, dict]]:
    """(events, row) of ``stage`` over the sizes where it succeeded, by events."""
    found = [(entry.get("events") or int(key), entry["stages"][stage])
             for key, entry in document["sizes"].items()
             if stage in entry["stages"] and "error" not in entry["stages"][stage]]
    return sorted(found, key=lambda pair: pair[0])


def scaling_exponent(points: list[tuple[int, float]]) -> float | None:
    """The least-squares slope of log(cost) on log(events): 1 is linear."""
    import numpy as np

    points = [(x, y) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.log([x for x, _ in points]), np.log([y for _, y in points])
    return round(float(np.polyfit(xs, ys, 1)[0]), 2)


def print_tables(document: dict) -> None:
    print(f"\n{'size':>12} {'events':>12} {'stage':<24}{'seconds':>9}{'peak GB':>9}"
          f"{'throughput':>22}  notes")
    for key, entry in document["sizes"].items():
        for stage in STAGES:
            row = entry["stages"].get(stage)
            if row is None:
                continue
            events = f"{entry['events']:,}" if entry.get("events") else "-"
            if "error" in row:
                print(f"{int(key):>12,} {events:>12} {stage:<24}  FAILED: {row['error'][:80]}")
                continue
            rate = f"{row['throughput']:,.1f} {row['unit']}/s"
            flag = "  !! ABOVE 16 GB" if row["peak_gb"] > MEMORY_BUDGET_GB else ""
            print(f"{int(key):>12,} {events:>12} {stage:<24}{row['seconds']:>9.1f}"
                  f"{row['peak_gb']:>9.2f}{rate:>22}  {_notes(row)}{flag}")
    _print_api(document)
    _print_ratio(document)
    _print_scaling(document)


def _notes(row: dict) -> str:
    names = ("beam_seconds", "cluster_start_seconds", "postgres_load_seconds",
             "postgres_database_gb", "redis_used_gb", "examples", "epochs", "lists",
             "service_start_seconds", "export_seconds", "lake_gb")
    return ", ".join(f"{n} {row[n]:,}" for n in names if row.get(n) is not None)


def _print_api(document: dict) -> None:
    if not _ok_rows(document, "api_load"):
        return
    print(f"\n{'size':>12} {'conc':>5}{'req/s':>9}{'full/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}  tiers")
    for events, row in _ok_rows(document, "api_load"):
        for level in row["levels"]:
            tiers = " ".join(f"{t} {100 * v:.1f}%" for t, v in level["tiers"].items())
            print(f"{events:>12,} {level['concurrency']:>5}{level['throughput_rps']:>9.1f}"
                  f"{level['full_tier_rps']:>9.1f}{level['client_p50_ms'] or 0:>9.1f}"
                  f"{level['client_p99_ms'] or 0:>9.1f}{level['errors']:>8}  {tiers}")


def _print_ratio(document: dict) -> None:
    pairs = [(key, direct, dask) for key, entry in document["sizes"].items()
             for direct, dask in [(entry["stages"].get(s) for s in ("beam_direct", "beam_dask"))]
             if direct and dask and "error" not in direct and "error" not in dask]
    if pairs:
        print("\nBeam: single-process DirectRunner time / DaskRunner time (>= 1.6 wanted at "
              "10M)")
    for key, direct, dask in pairs:
        pipeline = direct["beam_seconds"] / max(dask["beam_seconds"], 1e-9)
        wall = direct["seconds"] / max(dask["seconds"], 1e-9)
        print(f"{int(key):>12,} events: pipeline {direct['beam_seconds']:.1f}s / "
              f"{dask['beam_seconds']:.1f}s = {pipeline:.2f}x; whole stage (both load "
              f"PostgreSQL; Dask's includes its cluster's start) {wall:.2f}x")


def _print_scaling(document: dict) -> None:
    if len(document["sizes"]) < 2:
        return
    print("\nscaling exponent of cost against events (log-log slope; 1 = linear), over the "
          "sizes in the JSON")
    for stage in STAGES:
        rows = _ok_rows(document, stage)
        time_exp = scaling_exponent([(x, r["seconds"]) for x, r in rows])
        memory_exp = scaling_exponent([(x, r["peak_gb"]) for x, r in rows])
        if time_exp is None:
            continue
        verdict = ("" if 0.85 <= time_exp <= 1.15 else "  <- SUPER-LINEAR" if time_exp > 1.15
                   else "  <- sub-linear: fixed costs (start-up, the catalogue) dominate")
        print(f"  {stage:<24} time {time_exp:>5.2f}  memory {memory_exp:>5.2f}  "
              f"({len(rows)} sizes){verdict}")


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if _ok_rows(document, s)]
    if not stages:
        return
    fig, axes = plt.subplots(len(stages), 2, figsize=(11, 2.6 * len(stages)), squeeze=False)
    for (time_ax, memory_ax), stage in zip(axes, stages):
        rows = _ok_rows(document, stage)
        xs = [x for x, _ in rows]
        for ax, metric, label in ((time_ax, "seconds", "wall time (s)"),
                                  (memory_ax, "peak_gb", "peak memory (GB)")):
            ys = [r[metric] for _, r in rows]
            ax.plot(xs, ys, "o-", label="measured")
            if xs[0] > 0 and ys[0] > 0:
                ax.plot(xs, [ys[0] * x / xs[0] for x in xs], "--", color="grey",
                        label="linear from the smallest size")
            exponent = scaling_exponent(list(zip(xs, ys)))
            ax.set(xscale="log", yscale="log", ylabel=label, xlabel="events in the lake",
                   title=f"{stage}" + (f" (slope {exponent})" if exponent is not None else ""))
            ax.grid(True, which="both", alpha=0.3)
        memory_ax.axhline(MEMORY_BUDGET_GB, color="red", linestyle=":", linewidth=1,
                          label=f"{MEMORY_BUDGET_GB:.0f} GB budget")
        time_ax.legend(fontsize=7)
        memory_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log.info("wrote %s", path)


def _metadata(args: argparse.Namespace) -> dict:
    import psutil

    return {"machine": {**api_bench._machine(),
                        "memory_gb": round(psutil.virtual_memory().total / GB, 1)},
            "settings": {"items": args.items, "max_users": args.users, "epochs": args.epochs,
                         "ranker_epochs": args.ranker_epochs, "top_k": args.top_k,
                         "dask_workers": args.dask_workers,
                         "dask_npartitions": args.dask_npartitions,
                         "api_workers": args.api_workers, "concurrency": args.concurrency,
                         "seconds_per_level": args.seconds, "warmup_seconds": args.warmup,
                         "beam_options": BEAM_OPTIONS},
            "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def uses_services(args: argparse.Namespace) -> bool:
    """Whether a chosen stage uses PostgreSQL or Redis (every one but generate)."""
    return any(stage != "generate" for stage in args.stages)


def preflight(args: argparse.Namespace) -> None:
    """The services are up and the benchmark's Redis database and PostgreSQL database are
    its own, before anything long runs."""
    if not uses_services(args):
        return
    try:
        claim_redis(args.redis_db, flush=False)
        with _pg_admin() as conn:
            comment = _pg_comment(conn, args.pg_database)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the reason is named
        raise SystemExit(f"PostgreSQL on {PG['host']}:{PG['port']} and Redis on "
                         f"{REDIS[0]}:{REDIS[1]} must be up for the production stages: "
                         f"{type(exc).__name__}: {exc}") from None
    if comment not in (None, PG_COMMENT):
        raise SystemExit(f"--pg-database {args.pg_database} exists and was not created by "
                         "this benchmark: choose another name")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("urllib3", "recsys.data"):  # the pilot generator's per-table lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    preflight(args)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    try:
        for target in args.events:
            plan = plan_size(target, args.users, args.items, args.seed, args.end_date)
            results[str(target)] = run_size(args, plan)
            document = merge_results(args.out, results, _metadata(args))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(document, indent=1, default=str))
    finally:
        if not args.keep_services and uses_services(args):
            release_services(args)
    print_tables(document)
    log.info("wrote %s in %.0fs", args.out, time.perf_counter() - started)
    plot(document, args.out.with_suffix(".png"))
    failed = [f"{k}/{s}" for k, e in results.items() for s, r in e["stages"].items()
              if "error" in r]
    if failed:
        print(f"failed stages: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
