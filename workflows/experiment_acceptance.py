"""The experiments' acceptance run in closed loop: simulated users drive the real API, stream
worker and lake (``live_stack``) for some simulated days, every experiment is analysed after
each day, and the verdicts are checked against the simulator's truth.

The experiments file it serves (``acceptance_experiments``):

* ``aa-00`` .. ``aa-NN``: A/A experiments, each in its own layer (independent splits of the
  same users), whose arms change nothing: any difference declared is a false positive;
* ``split``: an A/A experiment served 52/48 but analysed as 50/50: the SRM check must flag it
  (given enough users: a 52/48 split of n users gives a chi-square of about 0.0016 n, p <
  0.001 from about 7,000 users);
* in one layer ``pipeline`` (thirds of the users): ``depth`` (the full pipeline against
  segment-popular only: a large true uplift), ``ranker`` (the ranker's order against
  retrieval's: a subtler one) and ``ranker-il``, the same pair interleaved.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from recsys.data.synthetic import SyntheticConfig
from recsys.experiments.analysis import analyze
from recsys.experiments.definitions import load_experiments
from recsys.experiments.statistics import sample_ratio_check
from workflows.experiment_loop import LoopResult, run_loop
from workflows.live_stack import live_stack
from workflows.simulator import Population, SimulationConfig, Simulator

AB_EXPERIMENTS = ("depth", "ranker")
INTERLEAVED, PAIR = "ranker-il", "ranker"


def acceptance_experiments(aa: int = 50) -> str:
    lines = ["experiments:"]
    for n in range(aa):
        lines.append(f"  - {{name: aa-{n:02d}, layer: aa-{n:02d}, "
                     "arms: [{name: a}, {name: b}]}")
    lines += [
        "  - {name: split, layer: split, arms: [{name: a, weight: 52}, {name: b, weight: 48}]}",
        "  - name: depth",
        "    layer: pipeline",
        "    traffic: 0.33",
        "    arms: [{name: full}, {name: popular, changes: {pipeline: popular}}]",
        "  - name: ranker",
        "    layer: pipeline",
        "    traffic: 0.33",
        "    arms: [{name: ranked}, {name: retrieval-order, changes: {pipeline: retrieval}}]",
        "  - name: ranker-il",
        "    layer: pipeline",
        "    method: interleaving",
        "    traffic: 0.34",
        "    arms: [{name: ranked}, {name: retrieval-order, changes: {pipeline: retrieval}}]",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class AcceptanceReport:
    users: int
    days: int
    requests: int
    events: int
    seconds: float
    aa_experiments: int
    aa_declared_sequential: int  # ever, over the daily looks
    aa_declared_fixed_final: int  # at the last look, fixed-horizon 95% interval
    ab: list[dict] = field(default_factory=list)
    interleaving: dict = field(default_factory=dict)
    srm: dict = field(default_factory=dict)

    @property
    def aa_false_positive_share(self) -> float:
        return self.aa_declared_sequential / max(self.aa_experiments, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "aa_false_positive_share": self.aa_false_positive_share}


def _first_right_ab(result: LoopResult, experiment: str) -> int | None:
    """Users (both arms) at the first look whose fixed interval excluded 0 on the side of the
    truth."""
    for look in sorted((x for x in result.looks if x.experiment == experiment),
                       key=lambda x: x.day):
        low, high = look.fixed_ci
        if (low > 0 and look.truth > 0) or (high < 0 and look.truth < 0):
            return sum(look.users)
    return None


def users_to_verdict(rows: pd.DataFrame, experiment, right) -> int | None:
    """The fewest users (the first to be exposed, on a doubling grid) from which on the
    analysis of ``experiment`` gives the right verdict (``right(analysis)``) at every larger
    size up to all of them; None if it never does."""
    rows = rows[rows["experiment"] == experiment.name].sort_values("first_exposure")
    sizes, n = [], 50
    while n < len(rows):
        sizes.append(n)
        n *= 2
    sizes.append(len(rows))
    verdicts = []
    for n in sizes:
        try:
            verdicts.append(bool(right(analyze(rows.head(n), experiment))))
        except (ValueError, KeyError, StopIteration):
            verdicts.append(False)
    found = None
    for n, ok in zip(reversed(sizes), reversed(verdicts)):
        if not ok:
            break
        found = n
    return found


def summarise(result: LoopResult, simulator: Simulator, aa: list[str], outcomes: Path,
              seconds: float, definitions=None) -> AcceptanceReport:
    final = {(x.experiment, x.arm): x for x in result.final()}
    report = AcceptanceReport(
        len(simulator.sample), len(result.days), sum(d.requests for d in result.days),
        simulator.sent, seconds, len(aa), result.ever_declared(aa),
        sum(not (x.fixed_ci[0] <= 0 <= x.fixed_ci[1]) for (e, _), x in final.items()
            if e in aa))
    for name in AB_EXPERIMENTS:
        look = next((x for (e, _), x in final.items() if e == name), None)
        if look is None:
            continue
        narrowing = None
        if look.cuped_ci is not None:
            narrowing = 1 - (look.cuped_ci[1] - look.cuped_ci[0]) / (
                look.fixed_ci[1] - look.fixed_ci[0])
        report.ab.append({
            "experiment": name, "arm": look.arm, "users": list(look.users),
            "measured": look.measured, "ci": list(look.fixed_ci),
            "always_valid_ci": list(look.sequential_ci), "truth": look.truth,
            "covered": look.covered, "right_sign": (look.measured > 0) == (look.truth > 0),
            "cuped_ci": list(look.cuped_ci) if look.cuped_ci else None,
            "cuped_narrowing": narrowing,
            "users_to_right_verdict": _first_right_ab(result, name)})
    preferences = sorted((p for p in result.preferences if p.experiment == INTERLEAVED),
                         key=lambda p: p.day)
    if preferences:
        last = preferences[-1]
        first_right = next((p for p in preferences if p.right), None)
        report.interleaving = {
            "experiment": INTERLEAVED, "users": last.users,
            "users_preferring": list(last.users_preferring), "p_value": last.p_value,
            "winner": last.winner, "true_winner": last.true_winner, "right": last.right,
            "users_to_right_verdict": first_right.users if first_right else None,
            "ab_users_to_right_verdict": _first_right_ab(result, PAIR)}
    rows = pd.read_parquet(outcomes / "user_outcomes")
    if definitions is not None and report.interleaving:
        by_name = definitions.by_name()
        truth = simulator.truth_of(PAIR)
        better = max(("ranked", "retrieval-order"), key=lambda a: truth[a]["ctr"])
        up = better != by_name[PAIR].baseline

        def ab_right(analysis) -> bool:
            ci = analysis.result("ctr", "retrieval-order").fixed.ci
            return ci[0] > 0 if up else ci[1] < 0

        report.interleaving["users_to_right_verdict_by_size"] = users_to_verdict(
            rows, by_name[INTERLEAVED], lambda a: a.interleaving["winner"] == better)
        report.interleaving["ab_users_to_right_verdict_by_size"] = users_to_verdict(
            rows, by_name[PAIR], ab_right)
    split = rows[rows["experiment"] == "split"]["arm"].value_counts()
    counts = [int(split.get("a", 0)), int(split.get("b", 0))]
    if sum(counts):
        check = sample_ratio_check(counts, [1, 1])  # analysed as if it were 50/50
        report.srm = {"served": "52/48", "analysed_as": "50/50", "users": counts,
                      "p_value": check.p_value, "flagged": check.mismatch}
    return report


def run_acceptance(repo: Path, model_base_path: Path, platform: SyntheticConfig,
                   workdir: Path, cfg: SimulationConfig, aa: int = 50,
                   cuped_repo: Path | None = None, **service) -> AcceptanceReport:
    """The whole closed loop in ``workdir`` (a new lake, stream and outcome tables);
    ``service`` overrides ServiceConfig fields."""
    from recsys.experiments.covariates import covariates_from_feast

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "experiments.yaml"
    path.write_text(acceptance_experiments(aa))
    definitions = load_experiments(path)
    lake_dir = workdir / "lake"
    from recsys.data.lake import Lake

    Lake(lake_dir, create=True)
    covariates = None
    if cuped_repo is not None:
        covariates = functools.partial(covariates_from_feast, cuped_repo)
    started = time.perf_counter()
    with live_stack(repo, model_base_path, lake_dir, workdir / "redis", path,
                    **service) as stack:
        simulator = Simulator(stack.url, Population(platform), definitions, cfg)
        looks = workdir / "looks.jsonl"
        looks.unlink(missing_ok=True)
        result = run_loop(simulator, definitions, lake_dir, workdir / "outcomes", cfg.days,
                          covariates=covariates, log_to=looks)
    names = [f"aa-{n:02d}" for n in range(aa)]
    report = summarise(result, simulator, names, workdir / "outcomes",
                       time.perf_counter() - started, definitions)
    (workdir / "acceptance.json").write_text(json.dumps(report.to_dict(), indent=2))
    (workdir / "truth.json").write_text(json.dumps(
        {e.name: simulator.truth_of(e.name) for e in definitions.experiments}, indent=2))
    return report


def format_report(report: AcceptanceReport) -> str:
    lines = [f"{report.users} simulated users, {report.days} days, {report.requests:,} "
             f"requests, {report.events:,} events in {report.seconds:.0f}s "
             f"({report.users * report.days / report.seconds:.1f} user-days/s)",
             f"A/A: {report.aa_declared_sequential} of {report.aa_experiments} declared "
             f"different at any daily look (always valid, alpha 0.05): "
             f"{report.aa_false_positive_share:.2f}; at the last look with fixed-horizon "
             f"intervals: {report.aa_declared_fixed_final}"]
    for ab in report.ab:
        cuped = (f"; CUPED {ab['cuped_narrowing']:+.1%} narrower"
                 if ab["cuped_narrowing"] is not None else "")
        lines.append(
            f"{ab['experiment']} ({ab['arm']}): measured {ab['measured']:+.1%} "
            f"[{ab['ci'][0]:+.1%}, {ab['ci'][1]:+.1%}], truth {ab['truth']:+.1%}: "
            f"{'covered' if ab['covered'] else 'NOT covered'}, sign "
            f"{'right' if ab['right_sign'] else 'WRONG'}{cuped}; right verdict at "
            f"{ab['users_to_right_verdict'] or '-'} users")
    if report.interleaving:
        il = report.interleaving
        lines.append(
            f"{il['experiment']}: {il['users']} users, preferring {il['users_preferring']}, "
            f"p = {il['p_value']:.3g}, winner {il['winner'] or 'none yet'} (truth "
            f"{il['true_winner']}); right verdict at {il['users_to_right_verdict'] or '-'} "
            f"users, the A/B split at {il['ab_users_to_right_verdict'] or '-'} (daily looks); "
            f"on the first N users exposed: interleaving from "
            f"{il.get('users_to_right_verdict_by_size') or '-'}, the A/B split from "
            f"{il.get('ab_users_to_right_verdict_by_size') or '-'}")
    if report.srm:
        srm = report.srm
        lines.append(f"SRM: served 52/48, analysed as 50/50: users {srm['users']}, p = "
                     f"{srm['p_value']:.2g}, {'flagged' if srm['flagged'] else 'not flagged'}")
    return "\n".join(lines)


__all__ = ["acceptance_experiments", "run_acceptance", "summarise", "format_report",
           "AcceptanceReport"]
