"""The models page's data and actions: exported versions with their blessings and offline
metrics, the aliases and the promotion log (the registry), the versions this service serves,
the last drift and index health checks (`recsys monitor drift` / `monitor index` JSON in the
monitoring directory), and promote / roll back for admins (the registry's own methods: the
same checks and log as `recsys models promote` and `rollback`)."""

from __future__ import annotations

from dataclasses import dataclass

from recsys.errors import ConfigError
from recsys.model_contract.registry import ALIASES
from serving.console.context import ConsoleContext, plain, read_json

MAX_LOG = 100


def _blessed(registry, version: int):
    try:
        blessing = registry.blessing(version)
    except ConfigError:  # a blessing file that is not JSON: shown as unknown
        return None
    return blessing.get("blessed") if isinstance(blessing, dict) else None


def _log(registry) -> list[dict] | str:
    try:
        return registry.history()[-MAX_LOG:][::-1]
    except ConfigError as exc:  # a corrupt promotion log: the page says so
        return str(exc)


def models_view(ctx: ConsoleContext) -> dict:
    registry, recommender = ctx.registry, ctx.recommender
    entries = registry.entries()
    directory = ctx.monitoring_dir
    return plain({
        "base_path": str(registry.base_path),
        "aliases": registry.aliases(),
        "versions": [{"version": e.version, "models": e.models, "created_at": e.created_at,
                      "aliases": e.aliases, "metrics": dict(e.metrics),
                      "blessed": _blessed(registry, e.version)}
                     for e in entries],
        "log": _log(registry),
        "served": {"retrieval_version": recommender.index.version,
                   "serving_label": recommender.serving_label or "(newest)",
                   "labels": {label: p.index.version
                              for label, p in recommender.labelled.items()}},
        "drift": read_json(None if directory is None else directory / "drift.json"),
        "index_health": read_json(None if directory is None else
                                  directory / "index_health.json"),
        "monitoring_dir": str(directory) if directory else None})


@dataclass(frozen=True)
class Change:
    """A console action on an alias, checked before it is taken."""

    action: str  # promote | rollback
    alias: str
    reason: str
    version: int | None = None
    force: bool = False

    @classmethod
    def parse(cls, action: str, body: object) -> "Change":
        """ConfigError naming the field for a body that is not a valid change."""
        if not isinstance(body, dict):
            raise ConfigError("the body must be a JSON object")
        known = {"alias", "reason", "version", "force"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}; known: {sorted(known)}")
        alias, reason = body.get("alias"), body.get("reason")
        if alias not in ALIASES:
            raise ConfigError(f"alias must be one of {list(ALIASES)}, got {alias!r}")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
            raise ConfigError("reason must be a non-empty string of at most 500 characters")
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                    or version < 1):
            raise ConfigError(f"version must be a positive integer, got {version!r}")
        if action == "promote" and version is None:
            raise ConfigError("a promotion needs a version")
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise ConfigError(f"force must be true or false, got {force!r}")
        return cls(action, alias, reason.strip(), version, force)

    def apply(self, ctx: ConsoleContext, by: str) -> dict:
        """The registry's log entry of the change (ConfigError when the registry refuses)."""
        registry = ctx.registry
        evidence = {"source": "console"}
        if self.action == "promote":
            return registry.promote_blessed(self.version, self.alias, self.reason, self.force,
                                            evidence, by)
        return registry.rollback(self.alias, self.reason, self.version, evidence, by)


__all__ = ["models_view", "Change"]
