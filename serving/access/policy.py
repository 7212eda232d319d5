"""Who may call the service and how much: the ``access`` section of the service's config, and
the policy `recsys api` builds from it at start.

* ``keys_file`` (or ``$RECSYS_API_KEYS_FILE``, and ``$RECSYS_API_KEYS``): API keys with scopes
  (:mod:`serving.access.keys`). With keys, every route but the probes, the metrics and the
  API docs needs a key with the route's scope.
* Without keys the service is *open*: every client may call every route. It starts open only
  where that is safe by default (the embedded profile, bound to a loopback address) or when
  ``allow_open: true`` says so; elsewhere it refuses to start, naming what to set.
* ``max_body_bytes``: a larger body is refused with 413 before it is read (by its
  Content-Length) or as soon as that many bytes have arrived (a chunked body).
* ``max_json_depth``: a body whose arrays and objects nest deeper is refused with 400 before
  it is parsed.
* ``open_rate_limit_per_s``: open service only, per client address (keys carry their own).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Mapping

from recsys.config import Config, boolean, non_negative_number, positive_int, setting, text
from recsys.errors import ConfigError
from serving.access.keys import KEYS_ENV, KEYS_FILE_ENV, KeyRing, load_keys
from serving.access.sessions import Sessions

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class AccessConfig(Config):
    """The ``access`` section of the service's YAML (see the module docstring)."""

    keys_file: str = setting("", text)
    allow_open: bool = setting(False, boolean)
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, positive_int)
    max_json_depth: int = setting(32, positive_int)
    open_rate_limit_per_s: float = setting(0.0, non_negative_number)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """What the guard (:class:`serving.access.guard.AccessGuard`) enforces. ``keys`` None is an
    open service; ``sessions`` signs the console's login cookies and CSRF tokens (one secret
    for every process of the service: the policy is made once and handed to each)."""

    keys: KeyRing | None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = 32
    open_rate_limit_per_s: float = 0.0
    processes: int = 1
    sessions: Sessions = field(default_factory=Sessions.from_environment)
    # an open service on a loopback address: requests must name a loopback host (DNS
    # rebinding), and state-changing ones must not come from another site
    loopback_only: bool = False

    @property
    def is_open(self) -> bool:
        return self.keys is None

    @classmethod
    def open(cls, **limits) -> "AccessPolicy":
        """An open service on a loopback address (in-process demos and tests) with the
        default limits."""
        return cls(None, **{"loopback_only": True, **limits})

    @classmethod
    def for_service(cls, cfg: AccessConfig, host: str, embedded_profile: bool,
                    processes: int = 1, environ: Mapping[str, str] | None = None
                    ) -> "AccessPolicy":
        """The policy of a service bound to ``host``; ConfigError when it would start open
        where that is not allowed. Logs which it is (never a key)."""
        keys = load_keys(cfg.keys_file, environ)
        limits = dict(max_body_bytes=cfg.max_body_bytes, max_json_depth=cfg.max_json_depth,
                      open_rate_limit_per_s=cfg.open_rate_limit_per_s, processes=processes,
                      sessions=Sessions.from_environment(environ))
        if keys:
            log.info("access: %d API key(s) (%s); each route needs its scope", len(keys),
                     ", ".join(k.name for k in keys))
            return cls(KeyRing(keys), **limits)
        local = is_loopback(host)
        if not (cfg.allow_open or (embedded_profile and local)):
            where = "the production profile" if not embedded_profile else f"address {host}"
            raise ConfigError(
                f"no API keys are configured and {where} does not start open: give "
                f"access.keys_file (or ${KEYS_FILE_ENV}, or the keys in ${KEYS_ENV}; "
                "`recsys auth create-key` makes one), or set access.allow_open: true to serve "
                "every client without a key")
        limits["loopback_only"] = not cfg.allow_open
        log.warning("access: OPEN - no API keys are configured, so every client that reaches "
                    "%s may read recommendations, write events and items and use the admin "
                    "routes (%s). Set access.keys_file to require keys.", host,
                    "embedded profile on a loopback address" if not cfg.allow_open
                    else "access.allow_open is true")
        return cls(None, **limits)


__all__ = ["AccessConfig", "AccessPolicy", "is_loopback"]
