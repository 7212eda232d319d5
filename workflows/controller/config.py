"""The controller's configuration: one YAML file with a ``controller`` section
(``ControllerConfig``) and the sections the steps it runs read: ``gate`` (the blessing),
``canary`` (its guardrails) and ``drift`` (tests per feature, alerts).

Guarantees: the file is read and checked once, at the entry point; an unknown key or a bad
value anywhere is a ConfigError naming the section and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.config import (
    Check,
    Config,
    config_section,
    finite_non_negative_number,
    non_empty_text,
    non_negative_int,
    one_of,
    positive_int,
    read_yaml_mapping,
    setting,
    text,
    tuple_of,
)
from recsys.errors import ConfigError
from recsys.monitoring.alerts import AlertConfig
from recsys.monitoring.blessing import GateConfig
from recsys.monitoring.canary import CanaryConfig

SECTIONS = ("controller", "gate", "canary", "drift")
# features that move with the clock, not with the population: the time of the request, and
# absolute timestamps
CLOCK_FEATURES = ("hour_of_day", "day_of_week", "session_started_at_s",
                  "session_last_event_at_s", "session_recent_event_at_s")
PLACEHOLDERS = ("model_base_path", "stable", "next_version", "lake", "run_id")
# known only to a drift-triggered retrain's commands
DRIFT_PLACEHOLDERS = ("drift_since",)


def _commands(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(c, (list, tuple)) and c and all(isinstance(a, str) for a in c)
        for c in value)


COMMANDS = Check(_commands, "a list of commands, each a non-empty list of strings")


@dataclass(frozen=True)
class ControllerConfig(Config):
    """Attributes:
        model_base_path: the versions, their registry (aliases, promotion log, blessings).
        state_dir: the controller's state, its decision log and its metrics file.
        service_url: the recommendation service, whose /metrics the canary reads.
        experiments_file: the service's experiments file; the canary's experiment is
            written into it (the others are kept as they are).
        canary_experiment: the name (and layer) of that experiment.
        redis_url: the serving windows (drift); "" turns the drift trigger off.
        drift_min_samples: sampled answers a drift window needs.
        drift_reference: serving (the stable version's first drift_reference_samples served
            queries) or training (its export's profile); see drift_watch.py.
        drift_reference_renew: when a serving reference is captured anew: ``promotion``
            (for every new stable version) or ``drift`` (kept across the promotions of
            scheduled and volume retrains, renewed only when a version retrained on a drift
            alert becomes stable): frequent routine promotions then cannot hide a shift.
        drift_ignore: shell-style patterns of features not tested (by default the clock's:
            the request's hour and weekday, and absolute timestamps).
        lake: the lake (the outcome join for the canary's CTR; the volume trigger).
        outcomes_dir: where the canary's outcome join writes; "" turns the CTR guardrail off.
        retrain_every_s: a scheduled full retrain this often (0: never).
        retrain_min_new_events: retrain when the lake has this many events more than at the
            last retrain (0: off).
        cooldown_s: after a retrain, no new trigger for this long.
        retrain_commands: run in order for a retrain (drift, volume); placeholders
            {model_base_path}, {stable}, {next_version}, {lake}, {run_id} (unique per
            retrain: a model directory of its own even when an earlier retrain exported
            nothing). The new version is the newest retrieval version they export.
        full_retrain_commands: the scheduled retrain's commands (empty: retrain_commands).
        drift_retrain_commands: a drift-triggered retrain's commands (empty:
            retrain_commands); they also know {drift_since}: the start (ISO 8601, UTC) of the
            first of the windows in a row in which the alerting features drifted, e.g. for
            the warm start's --since.
        queries: query rows (Parquet) for the blessing's latency check ("": skipped).
        reload_wait_s: how long the service takes to read a changed experiments file (an
            alias is retired only after its users are moved away from it).
        model_server_url: the model server's REST address (TF Serving's --rest_api_port,
            ``http://host:8501``): the canary's users are sent to its label only once the
            model server serves the candidate under it (GET /v1/models/M/labels/L/metadata);
            "" waits reload_wait_s instead.
        label_wait_s: how long the model server may take to serve the canary's label; a
            candidate it does not serve by then is refused and its alias retired.
    """

    model_base_path: str = setting("models/serving", text)
    state_dir: str = setting("controller", text)
    service_url: str = setting("", text)
    experiments_file: str = setting("", text)
    canary_experiment: str = setting("canary", non_empty_text)
    redis_url: str = setting("", text)
    drift_min_samples: int = setting(200, positive_int)
    drift_reference: str = setting("serving", one_of(("serving", "training")))
    drift_reference_samples: int = setting(1000, positive_int)
    drift_reference_renew: str = setting("promotion", one_of(("promotion", "drift")))
    drift_ignore: tuple = setting(CLOCK_FEATURES, tuple_of(text))
    lake: str = setting("", text)
    outcomes_dir: str = setting("", text)
    retrain_every_s: float = setting(0.0, finite_non_negative_number)
    retrain_min_new_events: int = setting(0, non_negative_int)
    cooldown_s: float = setting(3600.0, finite_non_negative_number)
    retrain_commands: tuple = setting((), COMMANDS)
    full_retrain_commands: tuple = setting((), COMMANDS)
    drift_retrain_commands: tuple = setting((), COMMANDS)
    queries: str = setting("", text)
    reload_wait_s: float = setting(5.0, finite_non_negative_number)
    model_server_url: str = setting("", text)
    label_wait_s: float = setting(120.0, finite_non_negative_number)

    def check_together(self) -> None:
        for name in ("retrain_commands", "full_retrain_commands", "drift_retrain_commands"):
            known = (*PLACEHOLDERS, *(DRIFT_PLACEHOLDERS if name.startswith("drift") else ()))
            for command in getattr(self, name):
                for arg in command:
                    try:
                        arg.format(**{p: "" for p in known})
                    except (KeyError, IndexError, ValueError) as exc:
                        raise ConfigError(
                            f"controller.{name}: {arg!r} has an unknown placeholder {exc} "
                            f"(known: {', '.join('{' + p + '}' for p in known)})") from None


@dataclass(frozen=True)
class ControllerSettings:
    controller: ControllerConfig
    gate: GateConfig
    canary: CanaryConfig
    drift_features: dict = field(default_factory=dict)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    path: Path | None = None


def load_settings(path: Path) -> ControllerSettings:
    """The settings of the YAML file ``path`` (see the module docstring)."""
    from recsys.monitoring.drift import parse_choices

    raw = read_yaml_mapping(path, "with a section controller")
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)} (known: "
                          f"{', '.join(SECTIONS)})")
    drift = raw.get("drift") or {}
    if not isinstance(drift, dict) or set(drift) - {"features", "alerts"}:
        raise ConfigError(f"{path}: section drift takes features and alerts, got {drift!r}")
    try:
        settings = ControllerSettings(
            config_section(ControllerConfig, raw.get("controller") or {}, "controller"),
            config_section(GateConfig, raw.get("gate") or {}, "gate"),
            config_section(CanaryConfig, raw.get("canary") or {}, "canary"),
            parse_choices(drift.get("features")),
            config_section(AlertConfig, drift.get("alerts") or {}, "drift.alerts"), path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not settings.controller.retrain_commands:
        raise ConfigError(f"{path}: controller.retrain_commands is empty: the controller "
                          "needs the commands that build features, train and export")
    if not settings.controller.experiments_file:
        raise ConfigError(f"{path}: controller.experiments_file is needed: the canary is "
                          "served as an experiment of the service")
    return settings


__all__ = ["ControllerConfig", "ControllerSettings", "load_settings", "PLACEHOLDERS",
           "DRIFT_PLACEHOLDERS"]
