"""The experiments page's data: each running experiment's arms and traffic, a live sample ratio
check of the answers served per arm (``recsys_experiment_answers_total``), and its metrics
with their intervals over time (what `recsys experiment analyze` wrote, analysis by analysis,
to ``NAME.history.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path

from recsys.experiments.statistics import sample_ratio_check
from serving.console.context import ConsoleContext, plain

MAX_ANALYSES = 200


def analyses(directory: Path | None, name: str) -> list[dict]:
    """The last MAX_ANALYSES of ``name``'s analyses, oldest first (lines that are not JSON are
    skipped)."""
    path = None if directory is None else Path(directory) / f"{name}.history.jsonl"
    if path is None or not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines()[-MAX_ANALYSES:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def interval_series(history: list[dict]) -> dict:
    """metric -> arm -> {t, difference, low, high, relative, p} over the analyses (the
    fixed-horizon interval of each treatment arm against the baseline)."""
    out: dict = {}
    for entry in history:
        for result in (entry.get("analysis") or {}).get("results", []):
            if not isinstance(result, dict) or "metric" not in result or "arm" not in result:
                continue  # a line written by another version: skipped, not a failed page
            fixed = result.get("fixed") or {}
            ci = fixed.get("ci") or [None, None]
            series = out.setdefault(result["metric"], {}).setdefault(
                result["arm"], {"t": [], "difference": [], "low": [], "high": [],
                                "relative": [], "p": []})
            series["t"].append(entry.get("analyzed_at"))
            series["difference"].append(fixed.get("difference"))
            series["low"].append(ci[0])
            series["high"].append(ci[1])
            series["relative"].append(fixed.get("relative"))
            series["p"].append(fixed.get("p_value"))
    return out


def experiments_view(ctx: ConsoleContext) -> dict:
    definitions = ctx.recommender.experiments.definitions
    served = ctx.history.latest_by("recsys_experiment_answers_total", "experiment", "arm")
    out = []
    for experiment in definitions.experiments:
        arms = [{"name": a.name, "weight": a.weight,
                 "changes": {k: v for k, v in vars(a.changes).items() if v}}
                for a in experiment.arms]
        counts = [served.get((experiment.name, a.name), 0.0) for a in experiment.arms]
        srm = None
        if sum(counts) > 0 and len(counts) >= 2:
            check = sample_ratio_check(counts, [a.weight for a in experiment.arms])
            srm = {"counts": check.counts, "expected_shares": check.expected_shares,
                   "p_value": check.p_value, "mismatch": check.mismatch}
        history = analyses(ctx.experiments_dir, experiment.name)
        latest = history[-1].get("analysis") if history else None
        out.append({"name": experiment.name, "method": experiment.method,
                    "baseline": experiment.baseline, "traffic": experiment.traffic,
                    "start": experiment.start, "stop": experiment.stop,
                    "description": experiment.description, "arms": arms,
                    "answers_srm": srm, "latest_analysis": latest,
                    "intervals_over_time": interval_series(history)})
    return plain({"experiments": out, "holdout": vars(definitions.holdout),
                  "analyses_dir": str(ctx.experiments_dir) if ctx.experiments_dir else None})


__all__ = ["experiments_view", "interval_series", "analyses"]
