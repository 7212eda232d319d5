"""Exploration's acceptance run in closed loop: simulated users drive the real API, its
exposure and decision logs, the stream worker (which teaches the bandit) and the lake.

1. **Logging**: every answer is served by a stochastic logging policy (``logging``, the
   service's own policy) for ``logging_days`` simulated days; the bandit learns from its
   randomised slots.
2. **Off-policy evaluation, before the test**: the bandit's parameters at that moment are
   saved, and ``recsys ope`` estimates, from the last logging day's decisions and events
   (the earlier days warm the users' sessions up: simulated users gain history as they go,
   so the first day's answers are not like the test's), the value (clicks per answer) of
   the bandit policy with those parameters and of the ranked list without exploration.
3. **The A/B test**: an experiment splits users between ``none`` (the ranked list) and the
   bandit (``bandit``, learning on) for ``test_days`` days. Measured per arm: clicks per
   answer with a 95% interval (delta method over users), CTR uplift with its interval (the
   engagement cost), catalogue coverage (distinct items shown) and new-item discovery
   (impressions and clicks of items created less than a day before they were shown); and
   the simulator's truth (expected clicks per answer of each arm, counterfactual).
4. **Freshness**: a click posted for a bandit slot, timed until the service's bandit
   parameters include it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig
from recsys.experiments.definitions import Experiments, load_experiments
from recsys.experiments.statistics import ratio_and_variance
from recsys.exploration.spec import parse_policy
from recsys.stream.config import StreamConfig
from workflows.experiment_loop import run_loop, wait_for_exposures
from workflows.live_stack import live_stack
from workflows.simulator import Population, SimulationConfig, Simulator

log = logging.getLogger(__name__)
LOGGING = "softmax:temperature=0.1,max_explored_share=0.3,pool=40"
# new items' weights times e**2: the explored slots discover them
BANDIT = "linucb:alpha=0.5,temperature=0.05,max_explored_share=0.3,pool=40,new_item_bonus=2"
EXPERIMENT = "explore"
NEW_ITEM_S = 86_400


def ab_experiments(bandit: str) -> str:
    return (f"experiments:\n  - name: {EXPERIMENT}\n    layer: exploration\n"
            f"    arms:\n      - {{name: none, changes: {{exploration: none}}}}\n"
            f"      - {{name: bandit, changes: {{exploration: '{bandit}'}}}}\n")


@dataclass
class ExplorationReport:
    logging_policy: str
    bandit_policy: str
    logging_requests: int
    test_requests: int
    seconds: float
    ope: dict = field(default_factory=dict)  # target -> estimator -> {estimate, low, high}
    arms: dict = field(default_factory=dict)  # arm -> measured figures and truth
    uplift: dict = field(default_factory=dict)  # the analysis' CTR uplift of the bandit arm
    freshness_s: list = field(default_factory=list)
    bandit_shown: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _drained(client, stream: str, group: str) -> bool:
    """The consumer group has read every entry of the stream and acked it (the workers have
    applied everything appended so far)."""
    info = client.xinfo_stream(stream)
    groups = {(g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
              for g in client.xinfo_groups(stream)}
    mine = groups.get(group)
    last = info["last-generated-id"]
    return mine is not None and mine["pending"] == 0 and mine["last-delivered-id"] == last


def _wait(condition, timeout_s: float = 60.0, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def _arm_figures(lake: Path, outcomes: Path, started_us: int, catalogue: pd.DataFrame,
                 truth: dict) -> dict:
    """Per arm: clicks per answer with its interval, coverage, new-item impressions and
    clicks, and the simulator's truth."""
    users = pd.read_parquet(outcomes / "user_outcomes")
    users = users[users["experiment"] == EXPERIMENT]
    exposures = Lake(lake).read("exposures").to_pandas()
    exposures = exposures[exposures["timestamp"] >= pd.Timestamp(started_us, unit="us",
                                                                tz="UTC")]
    exposures["arm"] = exposures["experiments"].map(
        lambda arms: next((a.split("=", 1)[1] for a in (arms if arms is not None else [])
                           if a.startswith(f"{EXPERIMENT}=")), None))
    created = catalogue.set_index("item_id")["created_at"]
    age_s = (exposures["timestamp"] - exposures["item_id"].map(created)).dt.total_seconds()
    exposures["new"] = age_s < NEW_ITEM_S
    events = Lake(lake).read("events").to_pandas()
    clicks = events[(events["event_type"] == "click") & events["request_id"].notna()]
    clicked_slots = set(zip(clicks["request_id"], clicks["position"].astype("Int64")))
    exposures["clicked"] = [(r, p) in clicked_slots for r, p in
                            zip(exposures["request_id"], exposures["position"])]
    figures = {}
    for arm, part in users.groupby("arm"):
        ratio, variance = ratio_and_variance(part["clicks"].to_numpy(float),
                                             part["requests"].to_numpy(float))
        half = 1.96 * np.sqrt(variance)
        shown = exposures[exposures["arm"] == arm]
        figures[arm] = {
            "users": int(len(part)), "answers": int(part["requests"].sum()),
            "clicks_per_answer": ratio, "ci": [ratio - half, ratio + half],
            "distinct_items": int(shown["item_id"].nunique()),
            "coverage": float(shown["item_id"].nunique() / max(len(catalogue), 1)),
            "new_item_impressions": int(shown["new"].sum()),
            "new_item_clicks": int((shown["new"] & shown["clicked"]).sum()),
            "new_item_share": float(shown["new"].mean()) if len(shown) else 0.0,
            "true_clicks_per_answer": (truth.get(arm, {}).get("expected_clicks", np.nan)
                                       / max(truth.get(arm, {}).get("shown", 0), 1)
                                       * _k(shown)),
        }
    return figures


def _k(shown: pd.DataFrame) -> float:
    """Items per answer (to turn the truth's CTR per shown item into clicks per answer)."""
    answers = shown["request_id"].nunique()
    return len(shown) / answers if answers else 0.0


def _freshness(url: str, stack, definitions: Experiments, population: Population,
               simulator: Simulator, rounds: int = 5) -> list[float]:
    """Seconds from a click's POST to the service's bandit parameters including it."""
    bandit = stack.recommender.explorer.bandit
    assigner = stack.recommender.experiments.assigner
    spec = parse_policy(BANDIT)
    found = []
    now = time.time()
    for u in simulator.sample:
        user_id, context = population.user_ids[u], population.contexts[u]
        assignment = assigner.assign(user_id, context, now, True)
        if assignment.arms.get(EXPERIMENT) != "bandit":
            continue
        answer = requests.post(f"{url}/v1/recommendations", timeout=30, json={
            "user_id": user_id, "k": simulator.cfg.k, "context": context}).json()
        slot = len(answer["items"]) - spec.explorable_slots(len(answer["items"]))
        before = bandit.sums.xtr.copy() if bandit.sums is not None else None
        time.sleep(1.5)  # the decision reaches the worker first (as a real click would)
        posted = time.perf_counter()
        event = {"event_id": f"fresh-{answer['request_id']}", "user_id": user_id,
                 "item_id": answer["items"][slot]["item_id"], "event_type": "click",
                 "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                 "request_id": answer["request_id"], "position": slot, **context}
        requests.post(f"{url}/v1/events", json={"events": [event]}, timeout=30)

        def moved() -> bool:
            sums = bandit.sums
            return sums is not None and (before is None or not np.allclose(sums.xtr, before))

        if _wait(moved, timeout_s=30.0, every_s=0.02):
            found.append(time.perf_counter() - posted)
        if len(found) == rounds:
            break
    return found


def run_exploration_acceptance(repo: Path, model_base_path: Path, platform: SyntheticConfig,
                               workdir: Path, logging_cfg: SimulationConfig,
                               test_cfg: SimulationConfig, logging_policy: str = LOGGING,
                               bandit_policy: str = BANDIT, replicates: int = 300,
                               **service) -> ExplorationReport:
    """The whole run in ``workdir`` (a new lake, stream and outputs: an earlier run's are
    removed first)."""
    from beam_jobs.ope import run as run_ope
    from beam_jobs.outcomes import run as run_join

    workdir.mkdir(parents=True, exist_ok=True)
    lake_dir = workdir / "lake"
    for earlier in (lake_dir, workdir / "outcomes", workdir / "redis"):  # stream, bandit
        shutil.rmtree(earlier, ignore_errors=True)
    Lake(lake_dir, create=True)
    experiments_path = workdir / "experiments.yaml"
    experiments_path.write_text("experiments: []\n")
    population = Population(platform)
    started = time.perf_counter()
    report = ExplorationReport(logging_policy, bandit_policy, 0, 0, 0.0)
    with live_stack(repo, model_base_path, lake_dir, workdir / "redis", experiments_path,
                    exploration=logging_policy, bandit_poll_s=0.1, **service) as stack:
        # 1. logging
        logger = Simulator(stack.url, population, Experiments(), logging_cfg)
        shown, last_day_from = 0, dt.datetime.now(dt.timezone.utc)
        for day in range(logging_cfg.days):
            last_day_from = dt.datetime.now(dt.timezone.utc)
            day_report = logger.run_day(day)
            report.logging_requests += day_report.requests
            shown += day_report.requests * logging_cfg.k
            log.info("logging day %d: %d requests", day, day_report.requests)
        wait_for_exposures(lake_dir, shown)
        logged_until = dt.datetime.now(dt.timezone.utc)
        # every decision, exposure and event applied: in the lake and in the bandit
        client, stream = stack.recommender.explorer.bandit.store.client, StreamConfig()
        if not _wait(lambda: _drained(client, stream.stream, stream.group), 900.0, 1.0):
            log.warning("the stream worker has not caught up after 15 minutes")
        bandit = stack.recommender.explorer.bandit
        bandit.refresh()
        ridge = parse_policy(bandit_policy).ridge
        state_path = workdir / "bandit_state.bin"
        sums = bandit.store.read()
        report.bandit_shown = 0 if sums is None else sums.shown
        state_path.write_bytes(sums.state(ridge).to_bytes())
        # 2. off-policy evaluation of the bandit (frozen at this moment) and of no exploration
        for target, extra in ((bandit_policy, ["--bandit_state", str(state_path)]),
                              ("none", [])):
            out = workdir / f"ope-{target.split(':')[0]}.json"
            document = run_ope(["--lake", str(lake_dir), "--output", str(out), "--policy",
                                target, "--slots", str(logging_cfg.k), "--replicates",
                                str(replicates), "--start", last_day_from.isoformat(),
                                "--end", logged_until.isoformat(), *extra])
            report.ope[target.split(":")[0]] = {
                name: document["estimates"][name]
                for name in ("ips", "snips", "dr", "logged", "mean_weight")}
        # 3. the A/B test
        experiments_path.write_text(ab_experiments(bandit_policy))
        stack.recommender.experiments.poll()
        definitions = load_experiments(experiments_path)
        tester = Simulator(stack.url, population, definitions, test_cfg)
        test_started = dt.datetime.now(dt.timezone.utc)
        def join(lake: Path, out: Path) -> None:  # once the worker has applied everything
            _wait(lambda: _drained(client, stream.stream, stream.group), 900.0, 1.0)
            run_join(["--lake", str(lake), "--output", str(out), "--start",
                      test_started.isoformat()])

        result = run_loop(tester, definitions, lake_dir, workdir / "outcomes", test_cfg.days,
                          join=join)
        report.test_requests = sum(d.requests for d in result.days)
        final = [look for look in result.final() if look.experiment == EXPERIMENT]
        if final:
            look = final[0]
            report.uplift = {"arm": look.arm, "measured": look.measured,
                             "ci": list(look.fixed_ci), "truth": look.truth,
                             "covered": look.covered}
        catalogue = _catalogue(repo)
        report.arms = _arm_figures(lake_dir, workdir / "outcomes",
                                   int(test_started.timestamp() * 1e6), catalogue,
                                   tester.truth_of(EXPERIMENT))
        # 4. freshness of the bandit's parameters
        report.freshness_s = _freshness(stack.url, stack, definitions, population, tester)
    report.seconds = time.perf_counter() - started
    (workdir / "exploration_acceptance.json").write_text(json.dumps(report.to_dict(),
                                                                    indent=2, default=float))
    return report


def _catalogue(repo: Path) -> pd.DataFrame:
    """The catalogue's item ids and creation times (the feature build's table)."""
    from recsys.features.catalogue import read_catalogue

    frame = read_catalogue(repo / "data")
    return pd.DataFrame({"item_id": frame["item_id"].astype(str),
                         "created_at": pd.to_datetime(frame["item_created_at_s"], unit="s",
                                                      utc=True)})


def format_report(report: ExplorationReport) -> str:
    lines = [f"logging {report.logging_policy}: {report.logging_requests:,} answers; the "
             f"bandit had learned from {report.bandit_shown:,} slots",
             f"test: {report.test_requests:,} answers in {report.seconds:.0f}s"]
    for target, estimates in report.ope.items():
        arm = "bandit" if target == "linucb" else "none"
        measured = report.arms.get(arm, {})
        for name in ("snips", "dr"):
            e = estimates[name]
            value = measured.get("clicks_per_answer", float("nan"))
            true = measured.get("true_clicks_per_answer", float("nan"))
            lines.append(f"OPE {target:<7} {name:<5} {e['estimate']:.4f} "
                         f"[{e['low']:.4f}, {e['high']:.4f}] | A/B measured {value:.4f} "
                         f"({'covered' if e['low'] <= value <= e['high'] else 'NOT covered'})"
                         f", truth {true:.4f}")
        lines.append(f"OPE {target:<7} mean weight {estimates['mean_weight']['estimate']:.3f}")
    for arm, f in report.arms.items():
        lines.append(f"arm {arm:<7} {f['answers']:,} answers, clicks/answer "
                     f"{f['clicks_per_answer']:.4f} [{f['ci'][0]:.4f}, {f['ci'][1]:.4f}] "
                     f"(truth {f['true_clicks_per_answer']:.4f}); {f['distinct_items']:,} "
                     f"distinct items ({f['coverage']:.1%} of the catalogue); new items: "
                     f"{f['new_item_impressions']:,} impressions, {f['new_item_clicks']:,} "
                     "clicks")
    if report.uplift:
        u = report.uplift
        lines.append(f"CTR uplift of the bandit arm: {u['measured']:+.1%} "
                     f"[{u['ci'][0]:+.1%}, {u['ci'][1]:+.1%}], truth {u['truth']:+.1%}")
    if report.freshness_s:
        lines.append(f"bandit freshness: a click in the service's parameters after "
                     f"{np.median(report.freshness_s):.2f} s (median of "
                     f"{len(report.freshness_s)}; max {max(report.freshness_s):.2f} s)")
    return "\n".join(lines)


__all__ = ["run_exploration_acceptance", "format_report", "ExplorationReport", "LOGGING",
           "BANDIT", "ab_experiments"]
