"""`recsys experiment ...`: join exposures with outcomes (Beam), and analyse an experiment.

    recsys experiment outcomes --lake LAKE --output OUT [--attribution-window-s S] [--end T]
        [Beam options]
    recsys experiment analyze NAME --experiments FILE --outcomes OUT [--repo DIR --profile P]
        [--covariate user_features:user_ctr_30d] [--alpha 0.05] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.errors import ConfigError
from recsys.experiments.analysis import Analysis, analyze, format_table
from recsys.experiments.covariates import DEFAULT_COVARIATE, covariates_from_feast
from recsys.experiments.definitions import load_experiments
from recsys.features.store import PROFILES, profile_repo
from workflows.cli.arguments import fraction, iso_datetime

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser(
        "experiment", help="join exposures with outcomes; analyse an experiment",
        description="Online experiments: the outcome join (Beam) and the analysis.")
    commands = experiment.add_subparsers(dest="experiment_command", required=True,
                                         metavar="COMMAND")
    outcomes = commands.add_parser(
        "outcomes", help="join the lake's exposures with later events (Beam)",
        description="Join what the service showed (the lake's exposures) with what each user "
                    "did afterwards, per answer and per (experiment, arm, user). Further "
                    "options are Beam pipeline options (--runner, --event_log_dsn ...).")
    outcomes.add_argument("--lake", required=True, type=Path, metavar="LAKE")
    outcomes.add_argument("--output", required=True, type=Path, metavar="DIR")
    outcomes.add_argument("--attribution-window-s", type=float, default=1800.0, metavar="S",
                          help="an outcome counts for an answer shown at most S seconds "
                               "before it (default 1800)")
    outcomes.add_argument("--end", type=iso_datetime, default=None, metavar="TIME",
                          help="where the data is taken to end (default: its latest record)")
    outcomes.set_defaults(func=run_outcomes, accepts_beam_args=True)

    analyze_cmd = commands.add_parser(
        "analyze", help="per-arm metrics, uplifts with intervals, SRM, CUPED, segments",
        description="Analyse experiment NAME from the outcome join's tables: prints a table, "
                    "writes NAME.json and NAME.png to --out-dir.")
    analyze_cmd.add_argument("name", metavar="NAME")
    analyze_cmd.add_argument("--experiments", required=True, type=Path, metavar="FILE",
                             help="the experiments file the service ran")
    analyze_cmd.add_argument("--outcomes", required=True, type=Path, metavar="DIR",
                             help="the output of `recsys experiment outcomes`")
    analyze_cmd.add_argument("--repo", type=Path, default=None, metavar="DIR",
                             help="the feature repository whose point-in-time features give "
                                  "CUPED's pre-exposure values (none: no CUPED)")
    analyze_cmd.add_argument("--profile", choices=list(PROFILES), default="embedded")
    analyze_cmd.add_argument("--covariate", default=DEFAULT_COVARIATE, metavar="VIEW:FEATURE",
                             help=f"CUPED's pre-exposure feature (default {DEFAULT_COVARIATE})")
    analyze_cmd.add_argument("--alpha", type=fraction, default=0.05)
    analyze_cmd.add_argument("--out-dir", type=Path, default=Path("."), metavar="DIR")
    analyze_cmd.set_defaults(func=run_analyze)


def run_outcomes(args: argparse.Namespace) -> int:
    from beam_jobs.outcomes import run

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    argv = ["--lake", str(args.lake), "--output", str(args.output),
            "--attribution_window_s", str(args.attribution_window_s), *args.beam_args]
    if args.end is not None:
        argv += ["--end", args.end.isoformat()]
    result = run(argv)
    c = result.counters
    print(f"outcomes of {c.get('outcome_users', 0):,} users ({c.get('outcomes_attributed', 0):,}"
          f" events attributed) in {result.seconds:.1f}s into {result.output}")
    return 0


def read_user_outcomes(outcomes: Path) -> pd.DataFrame:
    source = outcomes / "user_outcomes"
    if not source.is_dir():
        raise ConfigError(f"--outcomes {outcomes}: no user_outcomes table (run `recsys "
                          "experiment outcomes` first)")
    return pq.read_table(source).to_pandas()


def run_analyze(args: argparse.Namespace) -> int:
    definitions = load_experiments(args.experiments)
    experiment = definitions.by_name().get(args.name)
    if experiment is None:
        raise ConfigError(f"no experiment {args.name!r} in {args.experiments} (it has: "
                          f"{sorted(definitions.by_name())})")
    rows = read_user_outcomes(args.outcomes)
    rows = rows[rows["experiment"] == args.name]
    covariates = None
    if args.repo is not None and len(rows):
        covariates = covariates_from_feast(profile_repo(args.repo, args.profile), rows,
                                           args.covariate)
    analysis = analyze(rows, experiment, alpha=args.alpha, covariates=covariates)
    print(format_table(analysis))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{args.name}.json"
    json_path.write_text(json.dumps(analysis.to_dict(), indent=2))
    # every analysis, appended: the console draws the intervals over time from it
    history_path = args.out_dir / f"{args.name}.history.jsonl"
    with history_path.open("a") as history:
        history.write(json.dumps({"analyzed_at": dt.datetime.now(dt.timezone.utc).isoformat(
            timespec="seconds"), "analysis": analysis.to_dict()}) + "\n")
    plot_path = write_plot(analysis, args.out_dir / f"{args.name}.png")
    print(f"wrote {json_path} and {plot_path}; appended to {history_path}")
    return 0


def write_plot(analysis: Analysis, path: Path) -> Path:
    """Each metric's relative uplift per treatment arm, with its fixed-horizon and
    always-valid 95% intervals (and CUPED's when there is one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = analysis.results
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.5 * max(len(results), 1)))
    for y, r in enumerate(results):
        for ci, offset, style in ((r.sequential.relative_ci, 0.15, "C1"),
                                  (r.fixed.relative_ci, 0.0, "C0"),
                                  (r.cuped.relative_ci if r.cuped else None, -0.15, "C2")):
            if ci is not None:
                ax.plot([100 * ci[0], 100 * ci[1]], [y + offset] * 2, color=style, lw=2)
        ax.plot(100 * r.fixed.relative, y, "o", color="C0")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(results)), [f"{r.metric} ({r.arm})" for r in results])
    ax.set_xlabel(f"uplift against {analysis.baseline}, % (blue: 95% CI, orange: always "
                  "valid, green: CUPED)")
    ax.set_title(f"experiment {analysis.experiment}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
