"""Console sessions in a browser: a signed cookie that names a key, and the CSRF token that goes
with it.

A browser cannot attach ``Authorization`` to a page it navigates to, so the console's login
form takes a key once and answers with a cookie ``recsys_console`` (HttpOnly, SameSite=Strict,
path /console) that holds the key's *name*, an expiry and a nonce, signed with HMAC-SHA256 by
the service's secret. The key itself is never in the cookie.

Guarantees:

* :meth:`Sessions.verify` accepts only a cookie this secret signed, before its expiry; the
  guard then looks the name up among the keys configured now, so a key removed from the keys
  file ends its sessions at the next start;
* the CSRF token of a session is an HMAC of the cookie under a separate label: a page gets it
  from the server, a cross-site form cannot read it, and it is useless with another session;
* one secret is shared by the service's processes (made by the parent, or read from
  ``$RECSYS_CONSOLE_SECRET`` so sessions survive a restart).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import Mapping

COOKIE = "recsys_console"
SECRET_ENV = "RECSYS_CONSOLE_SECRET"
SESSION_S = 8 * 3600
OPEN_SESSION = "open"  # the CSRF subject of an open service's console (no login)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Signs and checks console session cookies and their CSRF tokens."""

    def __init__(self, secret: bytes, lifetime_s: float = SESSION_S):
        if len(secret) < 16:
            raise ValueError("a session secret must hold at least 16 bytes")
        self._secret, self.lifetime_s = secret, lifetime_s

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Sessions":
        environ = os.environ if environ is None else environ
        configured = environ.get(SECRET_ENV, "")
        return cls(configured.encode() if configured else secrets.token_bytes(32))

    def _sign(self, label: bytes, payload: str) -> str:
        return _b64(hmac.new(self._secret, label + payload.encode(), hashlib.sha256).digest())

    def issue(self, key_name: str, now: float | None = None) -> str:
        """A cookie value for ``key_name``, valid for ``lifetime_s``."""
        expires = int((time.time() if now is None else now) + self.lifetime_s)
        payload = f"{_b64(key_name.encode())}.{expires}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(b'session:', payload)}"

    def verify(self, cookie: str, now: float | None = None) -> str | None:
        """The key name a valid, unexpired cookie holds, else None (any text: a header's
        bytes decoded as latin-1 may hold anything)."""
        payload, _, signature = cookie.rpartition(".")
        if not payload or not _same(signature, self._sign(b"session:", payload)):
            return None
        try:
            name, expires, _ = payload.split(".")
            if int(expires) < (time.time() if now is None else now):
                return None
            return _unb64(name).decode()
        except (ValueError, UnicodeError):
            return None

    def csrf_token(self, session: str) -> str:
        """The token a page of ``session`` (a cookie, or OPEN_SESSION) sends with its
        actions."""
        return self._sign(b"csrf:", session)

    def csrf_valid(self, session: str, token: str) -> bool:
        return bool(token) and _same(token, self.csrf_token(session))


def _same(presented: str, expected: str) -> bool:
    """Constant-time equality of any two strings (``hmac.compare_digest`` refuses non-ASCII
    ``str``: compare their UTF-8 bytes)."""
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8"))


def cookie_value(headers, name: str = COOKIE) -> str | None:
    """The value of cookie ``name`` in ASGI ``headers``, or None."""
    for header, value in headers:
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, found = part.strip().partition("=")
                if key == name and found:
                    return found
    return None


__all__ = ["Sessions", "COOKIE", "SECRET_ENV", "OPEN_SESSION", "cookie_value"]
