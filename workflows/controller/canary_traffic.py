"""The canary's traffic and its measurements: the canary's experiment written into the
service's experiments file (its own layer; ``share`` of users on the canary label and as many
on stable, so both arms see the same period), the service's per-label counts read from its
``/metrics``, and the CTR comparison from the outcome join of the canary's period.

Guarantees: the experiments file is rewritten atomically and only after the whole new file
parses as experiments (the team's own experiments are kept as they are); removing the canary
from a file that has none changes nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from recsys.errors import ConfigError, SourceError
from recsys.monitoring.canary import LabelWindow, label_windows


def canary_experiment(name: str, version: int, label: str, share: float,
                      stable: int | None = None) -> dict:
    """Arms named by version (``v3`` on stable, ``v4`` on the canary label), so two canaries'
    exposure logs never share an arm name."""
    return {"name": name, "layer": name, "traffic": round(min(1.0, 2 * share), 6),
            "arms": [{"name": f"v{stable}" if stable is not None else "stable"},
                     {"name": f"v{version}", "changes": {"model_label": label}}]}


def _read(path: Path) -> dict:
    import yaml

    if not path.exists():
        return {"experiments": []}
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"experiments file {path} must hold a mapping")
    raw.setdefault("experiments", [])
    return raw


def _write(path: Path, document: dict) -> None:
    import yaml

    from recsys.experiments import parse_experiments

    parse_experiments(document)  # never write a file the service would refuse
    text = yaml.safe_dump(document, sort_keys=False)
    tmp = path.with_name(f".{path.name}.controller")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_canary(path: Path, experiment: dict | None, name: str) -> bool:
    """Put ``experiment`` (None: no canary) in the file in place of the experiment ``name``;
    returns whether the file changed."""
    document = _read(path)
    kept = [e for e in document["experiments"] if not (isinstance(e, dict)
                                                      and e.get("name") == name)]
    if experiment is None and len(kept) == len(document["experiments"]):
        return False
    document["experiments"] = kept + ([experiment] if experiment is not None else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, document)
    return True


def scrape(service_url: str, timeout_s: float = 5.0) -> dict[str, LabelWindow]:
    """Each model label's counts on the service now."""
    import requests

    url = service_url.rstrip("/") + "/metrics"
    try:
        response = requests.get(url, timeout=timeout_s)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise SourceError(f"cannot read the service's metrics at {url}: {exc}") from None
    return label_windows(response.text)


def to_plain(windows: dict[str, LabelWindow]) -> dict:
    return {label: {"tiers": w.tiers, "buckets": {str(b): v for b, v in w.buckets.items()}}
            for label, w in windows.items()}


def from_plain(raw: dict) -> dict[str, LabelWindow]:
    return {label: LabelWindow(dict(w["tiers"]), {math.inf if b == "inf" else float(b): v
                                                  for b, v in w["buckets"].items()})
            for label, w in raw.items()}


def since(now: dict[str, LabelWindow], baseline: dict[str, LabelWindow], label: str
          ) -> LabelWindow:
    return now.get(label, LabelWindow()).minus(baseline.get(label, LabelWindow()))


def ctr_comparison(lake: Path, outcomes: Path, started_s: float, stable: int, candidate: int,
                   alpha: float) -> tuple[dict | None, str]:
    """The canary's CTR against stable's on the answers since ``started_s`` (the outcome
    join run now), always valid; (None, why) when it cannot be made yet."""
    import datetime as dt

    import pandas as pd

    from beam_jobs.outcomes import run as run_join
    from recsys.monitoring.live_quality import compare_versions

    start = dt.datetime.fromtimestamp(started_s, dt.timezone.utc).isoformat()
    try:
        run_join(["--lake", str(lake), "--output", str(outcomes), "--start", start])
    except Exception as exc:  # noqa: BLE001 - the guardrail waits, saying why
        return None, f"the outcome join failed: {type(exc).__name__}: {exc}"
    table = outcomes / "request_outcomes"
    if not table.exists():
        return None, "no answers joined yet"
    requests = pd.read_parquet(table)
    try:
        found = compare_versions(requests, stable, candidate, alpha, sequential_tau=0.1)
    except ValueError as exc:
        return None, str(exc)
    return dataclasses.asdict(found), ""


__all__ = ["canary_experiment", "set_canary", "scrape", "to_plain", "from_plain", "since",
           "ctr_comparison"]
