"""The retraining loop judged in closed loop: simulated users of the synthetic platform drive
the real recommendation service, which serves the ``stable`` label of a real model server
(a subprocess, `recsys model-server`, following the registry's ``models.config``); after
every simulated day the controller (`recsys controller`'s step) looks at the serving windows,
retrains with the real commands (Beam features, Feast materialize, a warm start, export),
blesses, runs the canary on live traffic and promotes or rolls back.

Scenario, by day: ``shift_day`` replaces the population by its shifted self (tastes moved to
other categories; a share of users now in a country the platform never had); ``bad_day``
makes the controller's next retrain a warm start on shuffled labels, exported whatever the
trainer's own gate says (the blessing must refuse it); ``slow_day``
makes the controller's next retrain export a candidate that is good offline but slow online
(the newest model exported again with ``--top-k 3000``: every answer ranks 3,000
candidates). With ``shift_day`` None the run is the no-shift control.

The clock: with ``simulated_clock`` (the default) day d is the d-th UTC day after the demo's
synthetic history ends (``recsys demo --end-date``, which must leave room for the run's days
before today); every request carries its simulated time (the service runs with
``client_clock``), so sessions end between visits, day aggregates roll over, the retrain's
features and the canary's outcomes follow the simulated days, and the controller steps at
the end of each simulated day. The demo's own experiment traffic (after its history's end)
is left out of the loop's copy of the lake. Without it, days are compressed into minutes of
the wall clock, which moves every time-based feature by construction (see
docs/monitoring.md).

Guarantees: everything started is stopped; every day's truth (the expected clicks of what
was shown, from the simulator's response model) is recorded with the controller's decision
and the aliases; a request the service failed stops the run (SimulationError), so a run that
ends answered every request.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from recsys.data.synthetic import SyntheticConfig
from recsys.data.synthetic.platform_file import read_platform_config
from recsys.errors import SourceError
from recsys.experiments.definitions import Experiments
from recsys.exploration.spec import parse_policy
from recsys.model_contract.registry import Registry
from serving.recommendations.http_server import free_port
from workflows.controller.config import CLOCK_FEATURES
from workflows.experiment_loop import wait_for_exposures
from workflows.simulator import Population, SimulationConfig, Simulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    days: int = 12
    shift_day: int | None = 3
    bad_day: int | None = 6
    slow_day: int | None = 8
    users: int = 2000
    seed: int = 7
    new_country: str = "NZ"
    country_share: float = 0.3
    canary_share: float = 0.25
    consecutive_windows: int = 2
    profile_sample_rate: float = 0.25
    sessions: float = 3.0
    warm_start_epochs: int = 3
    platform: SyntheticConfig | None = None  # None: the one recorded in the demo's lake
    simulated_clock: bool = True
    # "retrieval": every answer in retrieval order (an experiment of two identical arms with
    # pipeline: retrieval, which the canary counts as served, not as fallbacks); "full": the
    # ranker too. On the demo's platform the demo's ranker lowers the true CTR of the top 10
    # by a third (0.074 against 0.109 in retrieval order, docs/monitoring.md), and the loop
    # retrains only the two-tower model.
    pipeline: str = "retrieval"
    # a scheduled warm start this often, in simulated days, besides the drift trigger (0:
    # on drift only); retrain False: the controller never steps (the counterfactual of a
    # platform that does not retrain)
    retrain_every_days: float = 0.0
    retrain: bool = True
    # the served lists' exploration policy (``NAME:key=value,...``; None: none): how users
    # show tastes the model does not know yet, such as the shift's
    exploration: str | None = None
    # older examples replayed per new one in a warm start (the trainer's --replay-ratio)
    replay_ratio: float = 1.0
    # a drift-triggered warm start learns from the drift's start on (--since), with this
    # replay ratio (None: no --since, replay_ratio): what came before teaches what no longer
    # holds
    drift_replay_ratio: float | None = None
    # every warm start weighs its new clicks by their inverse logged propensity, at most
    # this (the trainer's --ips-clip; None: unweighted): with exploration, the clicks on what
    # the model would not have shown count as often as they would have been seen
    ips_clip: float | None = None
    # a drift-triggered warm start starts every user's id row as the unknown user's (the
    # trainer's --forget-users): the rows hold the tastes from before the drift
    drift_forget_users: bool = False
    # the chance a simulated session finds its items without the recommender (the
    # simulator's organic_share): on a real platform users also search and browse
    organic_share: float = 0.0


@dataclass
class DayRecord:
    day: int
    shifted: bool
    requests: int
    true_ctr: float
    seconds: float
    decisions: list[dict]
    aliases: dict
    drift: dict | None
    canary_truth: dict = field(default_factory=dict)  # arm -> true CTR, so far
    reference_ctr: dict = field(default_factory=dict)  # random and oracle lists' true CTR
    tiers: dict = field(default_factory=dict)  # the service's tier -> the day's answers
    organic_sessions: int = 0  # sessions without a request (the simulator's organic_share)


# features the loop itself moves without any shift: its recommendations fill the histories,
# sessions and activity aggregates (docs/monitoring.md), a kept reference sees other
# versions' query embeddings and scores, and the compressed clock (--compressed-clock) keeps
# one session open and every aggregate filling. Not watched: the loop watches the request's
# context and the users' profile attributes
FEEDBACK_FEATURES = ("session_*", "history_*", "top_score", "query_embedding", "user_*_1d",
                     "user_*_7d", "user_*_30d", "user_lifetime_*",
                     "user_days_since_last_active")


# the warm start's gate: within the answers of the loop's exposure log (trainer/
# slate_evaluation.py)
SLATE_GATE = ("--lake", "{lake}", "--gate-metric", "slate_auc")


def _recsys() -> list[str]:
    return [sys.executable, "-m", "workflows.cli.main"]


def clock_start_s(lake: Path) -> float:
    """The simulated clock's day 0: midnight UTC of the day the lake's synthetic history
    ends (its ``_synthetic.json``)."""
    end = read_platform_config(lake).end_date
    return dt.datetime.combine(end, dt.time(), dt.timezone.utc).timestamp()


def _after_history(start_s: float):
    """A copytree ignore that leaves out day partitions from ``start_s``'s date on."""
    first = dt.datetime.fromtimestamp(start_s, dt.timezone.utc).date().isoformat()

    def ignore(_directory: str, names: list[str]) -> list[str]:
        return [n for n in names if n.startswith("event_date=") and n[11:] >= first]
    return ignore


def prepare(demo: Path, out: Path, simulated_clock: bool = False
            ) -> tuple[Path, Path, Path]:
    """Copies of the demo's lake, feature repository and models (the demo stays as it was);
    version 1 promoted to stable. With ``simulated_clock`` the lake's day partitions from
    the simulated clock's day 0 on (the demo's own experiment traffic) are left out.
    Returns (lake, repo, models)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    lake, repo, models = out / "lake", out / "feature_repo", out / "models"
    ignore = _after_history(clock_start_s(demo / "lake")) if simulated_clock else None
    shutil.copytree(demo / "lake", lake, ignore=ignore)
    shutil.copytree(demo / "feature_repo", repo, ignore=shutil.ignore_patterns("*.sock"))
    shutil.copytree(demo / "models" / "serving", models)
    Registry(models).promote(1, "stable", "the demo's version", by="retraining loop")
    return lake, repo, models


def serving_order(pipeline: str, exploration: str | None = None) -> str:
    """The loop's experiments file: none for the full pipeline without exploration; else one
    experiment in its own layer whose two identical arms serve every user in ``pipeline``
    order with the ``exploration`` policy (a spec, ``NAME:key=value,...``), since a
    service's pipeline and policy are chosen by arms."""
    if pipeline not in ("full", "retrieval"):
        raise ValueError(f"pipeline must be 'full' or 'retrieval', got {pipeline!r}")
    changes = {} if pipeline == "full" else {"pipeline": pipeline}
    if exploration:
        changes["exploration"] = json.loads(parse_policy(exploration).canonical())
    if not changes:
        return "experiments: []\n"
    arm = json.dumps(changes)
    return ("experiments:\n  - name: serving-order\n    layer: serving-order\n    arms:\n"
            f"      - {{name: a, changes: {arm}}}\n      - {{name: b, changes: {arm}}}\n")


def start_model_server(models: Path, out: Path) -> tuple[subprocess.Popen, int, int]:
    """The model server on the registry's config: (process, gRPC port, REST port)."""
    grpc_port, rest_port = free_port(), free_port()
    log_file = (out / "model_server.log").open("w")
    process = subprocess.Popen(
        [*_recsys(), "model-server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={models / 'models.config'}",
         "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1"],
        stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SourceError(f"the model server exited {process.returncode}: see "
                              f"{out / 'model_server.log'}")
        try:
            status = requests.get(f"http://127.0.0.1:{rest_port}/v1/models/retrieval/labels/"
                                  "stable", timeout=2).json()
            if any(v.get("state") == "AVAILABLE" for v in status.get("model_version_status",
                                                                      [])):
                return process, grpc_port, rest_port
        except (requests.RequestException, ValueError):
            pass
        time.sleep(1)
    process.terminate()
    raise SourceError("the model server did not serve retrieval's stable label in 300 s")


def controller_file(out: Path, lake: Path, repo: Path, models: Path, url: str,
                    redis_url: str, cfg: LoopConfig, start_s: float | None = None,
                    model_server_url: str = "") -> Path:
    """The controller's settings; with ``start_s`` (the simulated clock's day 0) each
    materialization is a backfill from it, since the simulated days lie before the wall
    clock's last materialization. With ``model_server_url`` the canary's users wait until
    the model server serves its label."""
    import yaml

    recsys = _recsys()
    backfill = [] if start_s is None else [
        "--start-date", dt.datetime.fromtimestamp(start_s, dt.timezone.utc).isoformat()]
    features = [[*recsys, "features", "build", "--lake", "{lake}", "--repo", str(repo),
                 "--split", "temporal"],
                [*recsys, "features", "materialize", "--repo", str(repo), *backfill]]

    weighting = [] if cfg.ips_clip is None else ["--ips-clip", f"{cfg.ips_clip:g}"]

    def warm_start(replay_ratio: float, *since: str) -> list[str]:
        return [*recsys, "train", "retrieval", "--repo", str(repo), "--warm-start", "{stable}",
                "--model-base-path", "{model_base_path}", "--model-dir",
                str(out / "model_dirs" / "{run_id}"), "--epochs", str(cfg.warm_start_epochs),
                "--replay-ratio", f"{replay_ratio:g}", *since, *SLATE_GATE, *weighting,
                "--no-progress"]

    document = {
        "controller": {
            "model_base_path": str(models), "state_dir": str(out / "controller"),
            "service_url": url, "experiments_file": str(out / "experiments.yaml"),
            "redis_url": redis_url, "drift_min_samples": 400,
            "drift_reference_samples": 800, "lake": str(lake),
            "drift_ignore": [*CLOCK_FEATURES, *FEEDBACK_FEATURES],
            # routine promotions keep the reference: only a drift's version renews it
            "drift_reference_renew": "drift",
            "outcomes_dir": str(out / "canary_outcomes"), "cooldown_s": 0,
            "retrain_every_s": cfg.retrain_every_days * 86_400,
            "reload_wait_s": 3, "model_server_url": model_server_url,
            "retrain_commands": [*features, warm_start(cfg.replay_ratio)],
            **({} if cfg.drift_replay_ratio is None else {"drift_retrain_commands": [
                *features, warm_start(cfg.drift_replay_ratio, "--since", "{drift_since}",
                                      *(["--forget-users"] if cfg.drift_forget_users
                                        else []))]})},
        # the served answers' own items, not the catalogue: a catalogue-wide metric on the
        # loop's traffic favours the version that chose what was shown
        "gate": {"metrics": {"slate_auc": {"max_drop": 0.0}}, "latency_p99_ms": 200},
        "canary": {"share": cfg.canary_share, "min_duration_s": 0, "min_requests": 300,
                   "require_ctr": True,
                   "served_tiers": ["full"] + (["retrieval"] if cfg.pipeline == "retrieval"
                                               else [])},
        "drift": {"alerts": {"consecutive_windows": cfg.consecutive_windows}},
    }
    path = out / "controller.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def shuffle_labels(repo: str) -> None:
    """Shuffle which item each training example (split train) of ``repo`` names, with its
    category: the labels no longer follow the users, the features still do; the test split
    is left true, so the candidate is judged on real data."""
    import numpy as np
    import pyarrow.parquet as pq

    for n, path in enumerate(sorted((Path(repo) / "data" / "training_examples")
                                    .rglob("*.parquet"))):
        frame = pq.read_table(path).to_pandas()
        train = np.flatnonzero(frame["split"].to_numpy() == "train")
        order = np.random.default_rng(n).permutation(train)
        for column in ("item_id", "item_category"):
            values = frame[column].to_numpy().copy()
            values[train] = values[order]
            frame[column] = values
        frame.to_parquet(path, index=False)


def bad_candidate_commands(repo: Path, out: Path) -> tuple:
    """A warm start on shuffled labels, exported whatever the trainer's own gate says: the
    blessing must refuse it."""
    recsys = _recsys()
    return ((*recsys, "features", "build", "--lake", "{lake}", "--repo", str(repo),
             "--split", "temporal"),
            (sys.executable, "-c", "from workflows.retraining_loop import shuffle_labels; "
                                   f"shuffle_labels({str(repo)!r})"),
            (*recsys, "train", "retrieval", "--repo", str(repo), "--warm-start", "{stable}",
             "--model-base-path", "{model_base_path}", "--model-dir",
             str(out / "model_dirs" / "{run_id}-shuffled"), *SLATE_GATE, "--gate-tolerance",
             "0.99", "--no-progress"))


def slow_candidate_commands(repo: Path, out: Path) -> tuple:
    """Export the newest model again with --top-k 3000: good offline, slow online."""
    newest = max((p for p in (out / "model_dirs").iterdir()
                  if not p.name.endswith("-shuffled")), key=lambda p: p.stat().st_mtime)
    return ((*_recsys(), "export", "--repo", str(repo), "--model-dir", str(newest),
             "--model-base-path", "{model_base_path}", "--top-k", "3000"),)


def run_loop(demo: Path, out: Path, cfg: LoopConfig) -> list[DayRecord]:
    import dataclasses

    from workflows.controller.config import load_settings
    from workflows.controller.controller import Controller
    from workflows.live_stack import live_stack

    lake, repo, models = prepare(demo, out, cfg.simulated_clock)
    start_s = clock_start_s(lake) if cfg.simulated_clock else None
    (out / "experiments.yaml").write_text(serving_order(cfg.pipeline, cfg.exploration))
    server, grpc_port, rest_port = start_model_server(models, out)
    records: list[DayRecord] = []
    try:
        with live_stack(repo, models, lake, out / "redis", out / "experiments.yaml",
                        profile_max_samples=50_000,
                        model_server=f"127.0.0.1:{grpc_port}", model_label="stable",
                        profile_sample_rate=cfg.profile_sample_rate, experiments_poll_s=1.0,
                        request_deadline_ms=1000, features_timeout_ms=200,
                        retrieval_timeout_ms=300, ranking_timeout_ms=300,
                        client_clock=cfg.simulated_clock) as stack:
            settings = load_settings(controller_file(
                out, lake, repo, models, stack.url, stack.redis_url, cfg, start_s,
                model_server_url=f"http://127.0.0.1:{rest_port}"))
            controller = Controller(settings)
            population = Population(cfg.platform or read_platform_config(lake))
            simulator = Simulator(stack.url, population, Experiments(), SimulationConfig(
                days=cfg.days, users=cfg.users, seed=cfg.seed, sessions=cfg.sessions,
                start_s=start_s, organic_share=cfg.organic_share))
            shown = 0
            references = population.reference_ctrs(simulator.sample, simulator.cfg.k)
            for day in range(cfg.days):
                shifted = cfg.shift_day is not None and day >= cfg.shift_day
                if cfg.shift_day is not None and day == cfg.shift_day:
                    simulator.population = population.shifted(cfg.seed, cfg.new_country,
                                                              cfg.country_share)
                    references = simulator.population.reference_ctrs(simulator.sample,
                                                                     simulator.cfg.k)
                for when, make in ((cfg.bad_day, bad_candidate_commands),
                                   (cfg.slow_day, slow_candidate_commands)):
                    if when == day:  # the next retrain makes this candidate
                        controller.settings = dataclasses.replace(settings, controller=(
                            settings.controller.replace(retrain_commands=make(repo, out),
                                                        retrain_every_s=1.0)))
                        controller.cfg = controller.settings.controller
                report = simulator.run_day(day)
                shown += report.requests * simulator.cfg.k
                wait_for_exposures(lake, shown)
                before = len(_decisions(out))
                if cfg.retrain:  # at the end of the simulated day (None: the wall clock)
                    controller.step(None if start_s is None else start_s + (day + 1) * 86_400)
                decisions = _decisions(out)[before:]
                if controller.settings is not settings and any(
                        d["decision"] == "retrain" for d in decisions):
                    # one injected candidate: back to the drift trigger alone
                    controller.settings = settings
                    controller.cfg = settings.controller
                drift = next((d["evidence"].get("drift") for d in decisions
                              if d["evidence"].get("drift")), None)
                record = DayRecord(day, shifted, report.requests, report.true_ctr,
                                   report.seconds, decisions, Registry(models).aliases(),
                                   drift, simulator.truth_of(
                                       settings.controller.canary_experiment), references,
                                   report.tiers, report.organic_sessions)
                records.append(record)
                log.info("day %d%s: %d requests (tiers %s), true CTR %.4f; controller: %s; "
                         "aliases %s", day, " (shifted)" if shifted else "", report.requests,
                         report.tiers, report.true_ctr,
                         ", ".join(d["decision"] for d in decisions), record.aliases)
                with (out / "days.jsonl").open("a") as f:
                    f.write(json.dumps(asdict(record), default=str) + "\n")
            errors = _service_errors(stack.url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    (out / "service_errors.json").write_text(json.dumps(errors))
    return records


def _decisions(out: Path) -> list[dict]:
    from workflows.controller.journal import read_decisions

    return read_decisions(out / "controller")


def _service_errors(url: str) -> dict:
    """The service's refused requests by status (recsys_request_errors_total)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url.rstrip("/") + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "recsys_request_errors_total":
                out[sample.labels["status"]] = out.get(sample.labels["status"], 0) \
                    + sample.value
    return out


__all__ = ["LoopConfig", "DayRecord", "run_loop", "prepare", "start_model_server"]
