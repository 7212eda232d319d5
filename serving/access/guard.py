"""The ASGI middleware in front of every route: authentication, scopes, rate limits, body
limits and the browser security headers, in one pass and before any route code runs.

For each HTTP request, in order:

1. the scope the route needs (``required_scope(method, path)``; None = public);
2. the key: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, or on the console's paths the
   login cookie of :mod:`serving.access.sessions` (naming a key configured now). Missing or
   unknown: 401 with ``WWW-Authenticate``; known without the scope: 403. An open service
   grants every scope;
3. the key's rate limit (an open service: the client address's): 429 with ``Retry-After``;
4. a state-changing request to the console (any method but GET, HEAD, OPTIONS): refused with
   403 ``cross_site`` when the browser says it comes from another site (``Sec-Fetch-Site``,
   ``Origin``), and with 403 ``csrf`` unless it carries the session's CSRF token
   (``X-CSRF-Token``) when it rides on the cookie or on an open service. A console page finds
   its token in ``scope["state"]["csrf_token"]``;
5. a body of a POST, PUT or PATCH: 413 when its Content-Length, or the bytes received so far,
   pass ``max_body_bytes`` (nothing more is read); 400 when it nests deeper than
   ``max_json_depth``. The route then reads the buffered body as if from the client.

Every answer, refusals included, carries ``X-Content-Type-Options: nosniff``,
``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin`` (with ``no-referrer`` a browser
sends ``Origin: null`` with the console's own forms, which the cross-site check refuses) and
a Content-Security-Policy (strict: same origin only; the API docs pages get the CDN they load
Swagger UI from).
Refusals have the service's error shape ``{"error": CODE, "detail": ...}``. The key a request
authenticated with is ``scope["state"]["api_key"]`` (its name and scopes, never the token).
"""

from __future__ import annotations

from typing import Callable

import orjson

from serving.access.json_depth import nesting_exceeds
from serving.access.keys import SCOPES
from serving.access.policy import AccessPolicy
from serving.access.rate_limit import RateLimiter
from serving.access.sessions import OPEN_SESSION, cookie_value

STRICT_CSP = (b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
              b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = (b"default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
            b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            b"script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; object-src 'none'; "
            b"base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
COMMON_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                  (b"referrer-policy", b"same-origin")]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONSOLE_PREFIX = "/console"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BIG_BODY = 1 << 16  # bodies checked for nesting in a worker thread, off the event loop
OPEN_IDENTITY = {"name": "(open)", "scopes": SCOPES}


class Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str, headers=()):
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, list(headers)


class AccessGuard:
    """ASGI middleware enforcing ``policy`` (see the module docstring). ``on_refused(path,
    status)`` is told of every refusal (for metrics)."""

    def __init__(self, app, policy: AccessPolicy,
                 required_scope: Callable[[str, str], str | None],
                 on_refused: Callable[[str, int], None] | None = None,
                 console_prefix: str = CONSOLE_PREFIX):
        self.app, self.policy, self.required_scope = app, policy, required_scope
        self.console_prefix = console_prefix
        self.on_refused = on_refused or (lambda path, status: None)
        self.limiter = RateLimiter.for_processes(policy.processes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        csp = DOCS_CSP if path in DOCS_PATHS else STRICT_CSP

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *COMMON_HEADERS,
                                      (b"content-security-policy", csp)]
            await send(message)

        try:
            receive = await self._admit(scope, receive)
        except Refusal as refusal:
            if refusal.status >= 400:  # not a page's way to its sign-in form
                self.on_refused(path, refusal.status)
            return await _refuse(send_with_headers, refusal)
        await self.app(scope, receive, send_with_headers)

    async def _admit(self, scope, receive):
        """The receive callable the route should read from, or a Refusal."""
        method, path = scope["method"], scope["path"]
        needed = self.required_scope(method, path)
        headers = scope["headers"]
        console = path.startswith(self.console_prefix)
        session = None  # the CSRF subject: a login cookie, or an open service's console
        if needed is not None:
            page = console and method == "GET" and not path.startswith(
                self.console_prefix + "/api/")
            identity, session = self._authorised(headers, needed, console, page)
            scope.setdefault("state", {})["api_key"] = identity
            self._within_rate(identity, scope)
        if self.policy.is_open:
            self._open_service_checks(headers, method)
        if console:
            self._console_checks(scope, headers, method, session)
        if method in BODY_METHODS:
            return await self._buffered(headers, receive, check_depth=needed is not None)
        return receive

    def _open_service_checks(self, headers, method: str) -> None:
        """An open service trusts no browser: a page on another site could otherwise write
        events or items with a form or a no-cors fetch, and a DNS-rebinding name could
        reach a loopback-only service as if from its own origin."""
        if self.policy.loopback_only:
            host = (_header(headers, b"host") or "").rsplit(":", 1)[0].strip("[]").lower()
            if host not in LOOPBACK_HOSTS:
                raise Refusal(403, "host", "this open service answers only requests addressed "
                              "to a loopback name (127.0.0.1, localhost, ::1)")
        if method not in SAFE_METHODS:
            _same_site(headers)

    def _authorised(self, headers, needed: str, console: bool, page: bool = False
                    ) -> tuple[dict, str | None]:
        """The identity of the request and its CSRF subject (None: a key in a header)."""
        policy = self.policy
        if policy.keys is None:
            return OPEN_IDENTITY, OPEN_SESSION if console else None
        token, session = _token(headers), None
        if token is None and console:
            session = cookie_value(headers)
            name = None if session is None else policy.sessions.verify(session)
            key = None if name is None else policy.keys.named(name)
            if key is None and page:  # a browser asking for a page: to the sign-in form
                raise Refusal(303, "sign_in", "sign in at /console/login",
                              [(b"location", b"/console/login")])
            if key is None:
                raise Refusal(401, "unauthorized", "sign in at /console/login with an API "
                              "key (or send it as 'Authorization: Bearer KEY')",
                              [(b"www-authenticate", b'Bearer realm="recsys"')])
            return self._scoped(key, needed), session
        if token is None:
            raise Refusal(401, "unauthorized", "this route needs an API key: send "
                          "'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                          [(b"www-authenticate", b'Bearer realm="recsys"')])
        key = policy.keys.authenticate(token)
        if key is None:
            raise Refusal(401, "unauthorized", "the API key is not valid",
                          [(b"www-authenticate",
                            b'Bearer realm="recsys", error="invalid_token"')])
        return self._scoped(key, needed), None

    @staticmethod
    def _scoped(key, needed: str) -> dict:
        if not key.allows(needed):
            raise Refusal(403, "forbidden", f"the key {key.name!r} does not have the "
                          f"{needed!r} scope this route needs")
        return {"name": key.name, "scopes": tuple(sorted(key.scopes)),
                "rate": key.rate_limit_per_s, "burst": key.burst}

    def _console_checks(self, scope, headers, method: str, session: str | None) -> None:
        sessions = self.policy.sessions
        if session is not None:
            scope.setdefault("state", {})["csrf_token"] = sessions.csrf_token(session)
        if method in SAFE_METHODS:
            return
        _same_site(headers)
        if session is not None and not sessions.csrf_valid(
                session, _header(headers, b"x-csrf-token") or ""):
            raise Refusal(403, "csrf", "this console action lacks its page's CSRF token "
                          "(X-CSRF-Token); reload the page and try again")

    def _within_rate(self, identity: dict, scope) -> None:
        if identity is OPEN_IDENTITY:
            rate = self.policy.open_rate_limit_per_s
            if not rate:
                return
            client = scope.get("client") or ("?", 0)
            name, burst = f"client:{client[0]}", 2 * rate
        else:
            name, rate, burst = identity["name"], identity["rate"], identity["burst"]
        wait = self.limiter.retry_after(name, rate, burst)
        if wait:
            raise Refusal(429, "rate_limited", f"{name!r} is over its rate limit of "
                          f"{rate:g} requests/s; retry after {wait} s",
                          [(b"retry-after", str(wait).encode())])

    async def _buffered(self, headers, receive, check_depth: bool = True):
        limit = self.policy.max_body_bytes
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise Refusal(400, "bad_request", "Content-Length is not a number") from None
                if declared > limit:
                    raise _too_large(limit, declared)
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return _replay(b"", message, receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        limit = self.policy.max_json_depth
        if not check_depth:  # a public route (sign-in): not parsed as JSON
            deeper = False
        elif len(body) > BIG_BODY:
            from starlette.concurrency import run_in_threadpool

            deeper = await run_in_threadpool(nesting_exceeds, body, limit)
        else:
            deeper = nesting_exceeds(body, limit)
        if deeper:
            raise Refusal(400, "too_deep", f"the JSON body nests deeper than "
                          f"{self.policy.max_json_depth} levels")
        return _replay(body, None, receive)


def _same_site(headers) -> None:
    """Refuse a request the browser says comes from another site."""
    site, origin, host = _header(headers, b"sec-fetch-site"), _header(
        headers, b"origin"), _header(headers, b"host")
    if (site not in (None, "same-origin", "none")
            or (origin is not None and origin.split("://", 1)[-1] != host)):
        raise Refusal(403, "cross_site", "state-changing requests are taken from this "
                      "service's own pages only (this one comes from another site)")


def _header(headers, wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


def _token(headers) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
    return None


def _too_large(limit: int, declared: int | None) -> Refusal:
    said = f" (Content-Length {declared:,})" if declared is not None else ""
    return Refusal(413, "body_too_large", f"the request body is larger than this service's "
                   f"limit of {limit:,} bytes{said}")


def _replay(body: bytes, pending, receive):
    """A receive callable that gives ``body`` as one message (or ``pending``), then defers to
    ``receive`` (for the disconnect)."""
    first = [pending or {"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        return first.pop() if first else await receive()
    return replay


async def _refuse(send, refusal: Refusal) -> None:
    body = orjson.dumps({"error": refusal.code, "detail": refusal.detail})
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *refusal.headers]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["AccessGuard", "Refusal"]
