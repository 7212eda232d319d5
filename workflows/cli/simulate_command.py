"""`recsys simulate`: simulated users of the synthetic platform drive a running recommendation
API and its stream worker; after each simulated day the experiments are analysed next to the
simulator's truth (``workflows/simulator.py``, ``workflows/experiment_loop.py``).

    recsys simulate --api http://127.0.0.1:8000 --lake LAKE --experiments FILE --out DIR
        [--days 3] [--users 300] [--platform-users 2000 --platform-items 10000
         --platform-days 7 --platform-seed 42 --platform-end-date YYYY-MM-DD]
        [--repo FEATURE_REPO]  (CUPED's pre-exposure values from Feast)

The platform flags must be those the lake's data was generated with (`recsys data generate`
or `recsys demo`), so that the simulated users are the users the models know. The service
must run with the same experiments file and ``experiments_overrides: true`` (the truth of an
experiment that changes something needs each request answered in every arm).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import time
from pathlib import Path

from recsys.data.synthetic import SyntheticConfig
from recsys.data.synthetic.platform_file import read_platform_config
from recsys.experiments.definitions import load_experiments
from recsys.features.store import PROFILES, profile_repo
from workflows.cli.arguments import fraction, iso_date, non_negative_int, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser(
        "simulate", help="drive a running API with simulated users that know the truth",
        description="Simulated users ask the API for recommendations, respond with the "
                    "synthetic platform's response model, post their events back, and after "
                    "each simulated day every experiment is analysed next to its true uplift.")
    sim.add_argument("--api", required=True, metavar="URL", help="the recommendation API")
    sim.add_argument("--lake", required=True, type=Path, metavar="LAKE",
                     help="the lake the stream worker writes exposures and events to")
    sim.add_argument("--experiments", required=True, type=Path, metavar="FILE",
                     help="the experiments file the service runs")
    sim.add_argument("--out", type=Path, default=Path("simulation"), metavar="DIR")
    sim.add_argument("--days", type=positive_int, default=3, metavar="D")
    sim.add_argument("--users", type=positive_int, default=300, metavar="N",
                     help="simulated users (a seeded sample of the platform's)")
    sim.add_argument("--active-share", type=fraction, default=0.7, metavar="P")
    sim.add_argument("--sessions", type=float, default=1.5, metavar="X",
                     help="mean requests per active user and day (at least 1)")
    sim.add_argument("--concurrency", type=positive_int, default=4, metavar="C")
    sim.add_argument("--organic-share", type=fraction, default=0.0, metavar="P",
                     help="the chance a session finds its items without the API (search, "
                          "browsing), picked from the users' true tastes; default 0")
    sim.add_argument("--seed", type=non_negative_int, default=7, metavar="S")
    sim.add_argument("--start-date", type=iso_date, default=None, metavar="DATE",
                     help="run on a simulated clock: day 0 is this UTC date, every request "
                          "carries its time (the API must run with client_clock: true) and "
                          "the last day must have ended by now; default: the wall clock, "
                          "days compressed")
    defaults = SyntheticConfig()
    sim.add_argument("--platform-users", type=positive_int, default=defaults.users)
    sim.add_argument("--platform-items", type=positive_int, default=defaults.items)
    sim.add_argument("--platform-days", type=positive_int, default=defaults.days)
    sim.add_argument("--platform-seed", type=non_negative_int, default=defaults.seed)
    sim.add_argument("--platform-end-date", type=iso_date, default=None)
    sim.add_argument("--platform-lake", type=Path, default=None, metavar="LAKE",
                     help="a lake made by the synthetic generator: simulate the platform it "
                          "recorded (its _synthetic.json) instead of the --platform-* values")
    sim.add_argument("--repo", type=Path, default=None, metavar="DIR",
                     help="feature repository for CUPED's pre-exposure values")
    sim.add_argument("--profile", choices=list(PROFILES), default="embedded")
    sim.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from recsys.experiments.covariates import covariates_from_feast
    from workflows.experiment_loop import run_loop
    from workflows.simulator import Population, SimulationConfig, Simulator

    definitions = load_experiments(args.experiments)
    if args.platform_lake is not None:
        platform = read_platform_config(args.platform_lake)
    else:
        platform = SyntheticConfig(users=args.platform_users, items=args.platform_items,
                                   days=args.platform_days, seed=args.platform_seed,
                                   end_date=args.platform_end_date)
    cfg = SimulationConfig(days=args.days, users=args.users, active_share=args.active_share,
                           sessions=max(args.sessions, 1.0), concurrency=args.concurrency,
                           seed=args.seed, organic_share=args.organic_share,
                           start_s=None if args.start_date is None else
                           dt.datetime.combine(args.start_date, dt.time(),
                                               dt.timezone.utc).timestamp())
    simulator = Simulator(args.api, Population(platform), definitions, cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    looks_path = args.out / "looks.jsonl"
    looks_path.unlink(missing_ok=True)
    covariates = None
    if args.repo is not None:
        repo = profile_repo(args.repo, args.profile)
        covariates = functools.partial(covariates_from_feast, repo)
    started = time.perf_counter()
    result = run_loop(simulator, definitions, args.lake, args.out / "outcomes", cfg.days,
                      covariates=covariates, log_to=looks_path)
    seconds = time.perf_counter() - started
    requests = sum(d.requests for d in result.days)
    print(f"{cfg.days} simulated days, {len(simulator.sample)} users, {requests:,} requests, "
          f"{simulator.sent:,} events ({simulator.rejected:,} rejected) in {seconds:.0f}s "
          f"({len(simulator.sample) * cfg.days / seconds:.1f} simulated user-days/s)")
    print(f"{'experiment':<20}{'arm':<12}{'users':>12}{'measured':>10}  {'95% CI':<18}"
          f"{'always valid':<18}{'truth':>8}  covered")
    for look in result.final():
        print(f"{look.experiment:<20}{look.arm:<12}{str(list(look.users)):>12}"
              f"{look.measured:>+10.1%}  [{look.fixed_ci[0]:+.1%}, {look.fixed_ci[1]:+.1%}]  "
              f"[{look.sequential_ci[0]:+.1%}, {look.sequential_ci[1]:+.1%}]  "
              f"{look.truth:>+8.1%}  {'yes' if look.covered else 'NO'}")
    for pref in [p for p in result.preferences if p.day == cfg.days - 1]:
        print(f"{pref.experiment:<20}interleaved: {pref.users} users, preferring "
              f"{list(pref.users_preferring)}, p = {pref.p_value:.3g}, winner "
              f"{pref.winner or 'none yet'} (truth: {pref.true_winner})")
    truth = {e.name: simulator.truth_of(e.name) for e in definitions.experiments}
    (args.out / "truth.json").write_text(json.dumps(truth, indent=2))
    print(f"wrote {looks_path} and {args.out / 'truth.json'}")
    return 0
