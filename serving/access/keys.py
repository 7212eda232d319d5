"""API keys: what a key may do (its scopes), how it is stored (a SHA-256 digest, never the key)
and how a presented token is checked (in constant time against every stored digest).

A keys file (YAML or JSON) holds the digests; `recsys auth create-key` writes entries and
prints the key once::

    keys:
      - name: web-frontend          # for logs and metrics: the key itself is never logged
        sha256: 9f86d08...          # hex SHA-256 of the key
        scopes: [recommend]         # recommend, ingest, console, admin
        rate_limit_per_s: 200       # optional; 0 or absent = unlimited
        burst: 400                  # optional; default twice the rate

Keys are random tokens of 256 bits (``rsk_`` + URL-safe base64), so an unsalted SHA-256 is
the right store for them (as for GitHub's tokens): a slow password hash would cost each
request milliseconds and guard nothing a 256-bit secret does not.

Guarantees: a token is compared with :func:`hmac.compare_digest` against every key's digest,
whatever matches first; a file with an unknown key, a bad digest, an unknown scope or two
keys with one name or digest is refused as a whole, naming the entry and the field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from recsys.config import is_number
from recsys.errors import ConfigError

RECOMMEND, INGEST, CONSOLE, ADMIN = "recommend", "ingest", "console", "admin"
SCOPES = (RECOMMEND, INGEST, CONSOLE, ADMIN)
TOKEN_PREFIX = "rsk_"
ENTRY_FIELDS = ("name", "sha256", "scopes", "rate_limit_per_s", "burst")
KEYS_FILE_ENV = "RECSYS_API_KEYS_FILE"
KEYS_ENV = "RECSYS_API_KEYS"
MAX_NAME_LENGTH = 64


def new_token() -> str:
    """A fresh key: 32 random bytes, URL-safe, with a recognisable prefix (for secret
    scanners)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The hex SHA-256 of ``token``: what a keys file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: its name, digest, scopes and rate limit (requests per second over
    all of the service's processes; 0 = unlimited)."""

    name: str
    sha256: str
    scopes: frozenset[str]
    rate_limit_per_s: float = 0.0
    burst: float = 0.0

    def allows(self, scope: str) -> bool:
        """``admin`` also reads the console (``console``); no other scope implies another."""
        return scope in self.scopes or (scope == CONSOLE and ADMIN in self.scopes)

    def entry(self) -> dict[str, Any]:
        """The key as a keys file entry."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256,
                               "scopes": [s for s in SCOPES if s in self.scopes]}
        if self.rate_limit_per_s:
            out["rate_limit_per_s"] = self.rate_limit_per_s
            out["burst"] = self.burst
        return out


def parse_scopes(raw: Any, where: str) -> frozenset[str]:
    """A non-empty list of known scopes (or a comma-separated string of them)."""
    if isinstance(raw, str):
        raw = [s.strip() for s in raw.split(",") if s.strip()]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{where}: scopes must be a non-empty list of {list(SCOPES)}, "
                          f"got {raw!r}")
    unknown = [s for s in raw if s not in SCOPES]
    if unknown:
        raise ConfigError(f"{where}: unknown scope(s) {unknown}; known: {list(SCOPES)}")
    return frozenset(raw)


def _entry(raw: Any, index: int) -> ApiKey:
    where = f"keys[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(ENTRY_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {list(ENTRY_FIELDS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"{where}: name must be a non-empty string of at most "
                          f"{MAX_NAME_LENGTH} characters, got {name!r}")
    where = f"{where} ({name})"
    sha = raw.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(
            c not in "0123456789abcdef" for c in sha.lower()):
        raise ConfigError(f"{where}: sha256 must be 64 hex digits (the key's SHA-256, not "
                          "the key; `recsys auth create-key` writes it)")
    rate = raw.get("rate_limit_per_s", 0)
    if not is_number(rate) or rate < 0:
        raise ConfigError(f"{where}: rate_limit_per_s must be a number >= 0, got {rate!r}")
    burst = raw.get("burst", 2 * rate)
    if not is_number(burst) or burst < 0 or (rate and burst < 1):
        raise ConfigError(f"{where}: burst must be a number >= 1 with a rate limit, "
                          f"got {burst!r}")
    return ApiKey(name, sha.lower(), parse_scopes(raw.get("scopes"), where), float(rate),
                  float(burst))


def parse_keys(document: Any, source: str) -> tuple[ApiKey, ...]:
    """The keys of a keys document (``{"keys": [...]}``); ConfigError naming ``source``."""
    if document is None:
        return ()
    if not isinstance(document, Mapping) or set(document) - {"keys"}:
        raise ConfigError(f"{source} must hold a mapping with one field, keys: [...]")
    entries = document.get("keys") or []
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: keys must be a list, got {type(entries).__name__}")
    try:
        keys = tuple(_entry(raw, i) for i, raw in enumerate(entries))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for field in ("name", "sha256"):
        seen: set[str] = set()
        for key in keys:
            value = getattr(key, field)
            if value in seen:
                raise ConfigError(f"{source}: two keys share the {field} "
                                  f"{key.name if field == 'name' else '(digest)'}")
            seen.add(value)
    return keys


def read_keys_file(path: Path) -> tuple[ApiKey, ...]:
    import yaml

    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"keys file {path} not found") from exc
    except OSError as exc:
        raise ConfigError(f"keys file {path} cannot be read: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"keys file {path} is not valid YAML or JSON: {exc}") from None
    return parse_keys(document, f"keys file {path}")


def load_keys(keys_file: str = "", environ: Mapping[str, str] | None = None
              ) -> tuple[ApiKey, ...]:
    """Every configured key: ``keys_file`` (or the file ``$RECSYS_API_KEYS_FILE`` names) and
    the keys document in ``$RECSYS_API_KEYS`` (JSON or YAML, for containers that inject
    secrets as variables), merged; a name or digest in both is refused."""
    environ = os.environ if environ is None else environ
    path = keys_file or environ.get(KEYS_FILE_ENV, "")
    keys: tuple[ApiKey, ...] = read_keys_file(Path(path)) if path else ()
    inline = environ.get(KEYS_ENV, "").strip()
    if inline:
        import yaml

        try:
            document = yaml.safe_load(inline)
        except yaml.YAMLError:
            raise ConfigError(f"${KEYS_ENV} is not valid YAML or JSON") from None
        extra = parse_keys(document, f"${KEYS_ENV}")
        keys = parse_keys({"keys": [k.entry() for k in keys + extra]},
                          f"{path or 'no file'} and ${KEYS_ENV} together")
    return keys


class KeyRing:
    """The configured keys, checked against presented tokens."""

    def __init__(self, keys: Iterable[ApiKey]):
        self.keys = tuple(keys)
        self._digests = [(bytes.fromhex(k.sha256), k) for k in self.keys]
        self._by_name = {k.name: k for k in self.keys}

    def __len__(self) -> int:
        return len(self.keys)

    def named(self, name: str) -> ApiKey | None:
        """The key called ``name`` (a console session names its key), or None."""
        return self._by_name.get(name)

    def authenticate(self, token: str) -> ApiKey | None:
        """The key whose digest is ``token``'s, or None; every stored digest is compared, in
        constant time each, whichever matches."""
        presented = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found = None
        for stored, key in self._digests:
            if hmac.compare_digest(stored, presented):
                found = key
        return found


def add_key(path: Path, name: str, scopes: frozenset[str], rate_limit_per_s: float = 0.0,
            burst: float | None = None) -> str:
    """Append a new key to the keys file at ``path`` (created with mode 0600 if missing) and
    return its token: the only time the token exists outside the client that keeps it."""
    existing = read_keys_file(path) if Path(path).exists() else ()
    token = new_token()
    key = ApiKey(name, digest(token), scopes, float(rate_limit_per_s),
                 float(2 * rate_limit_per_s if burst is None else burst))
    entries = [k.entry() for k in existing] + [key.entry()]
    parse_keys({"keys": entries}, f"keys file {path}")  # refuses a name already there
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# recsys API keys: SHA-256 digests only (`recsys auth create-key`)\n")
        f.write(json.dumps({"keys": entries}, indent=2) + "\n")
    os.replace(tmp, path)
    return token


__all__ = ["ApiKey", "KeyRing", "SCOPES", "RECOMMEND", "INGEST", "CONSOLE", "ADMIN", "digest",
           "new_token", "load_keys", "read_keys_file", "parse_keys", "parse_scopes", "add_key",
           "KEYS_FILE_ENV", "KEYS_ENV"]
