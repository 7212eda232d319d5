"""Access to the service (serving.access): keys and their files, the JSON nesting check, rate
limits, the start-up policy and the guard itself in front of a real uvicorn server."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading

import pytest
import requests
from fastapi import FastAPI, Request

from recsys.errors import ConfigError
from serving.access.guard import AccessGuard
from serving.access.json_depth import nesting_exceeds
from serving.access.keys import (
    KEYS_ENV,
    KEYS_FILE_ENV,
    ApiKey,
    KeyRing,
    add_key,
    digest,
    load_keys,
    new_token,
    parse_keys,
    read_keys_file,
)
from serving.access.policy import AccessConfig, AccessPolicy
from serving.access.rate_limit import RateLimiter
from serving.recommendations.http_server import serve_in_thread
from workflows.cli.main import main as recsys_main


def _entry(name="web", token="t", scopes=("recommend",), **extra):
    return {"name": name, "sha256": digest(token), "scopes": list(scopes), **extra}


# --- keys ---

def test_a_key_authenticates_by_its_digest_and_only_its_own_token():
    token, other = new_token(), new_token()
    assert token.startswith("rsk_") and len(token) > 40 and token != other
    ring = KeyRing(parse_keys({"keys": [_entry("a", token), _entry("b", other, ["ingest"])]},
                              "test"))
    assert ring.authenticate(token).name == "a"
    assert ring.authenticate(other).scopes == frozenset({"ingest"})
    assert ring.authenticate(token[:-1]) is None
    assert ring.authenticate("") is None
    assert ring.authenticate(digest(token)) is None  # the stored digest is not a key


@pytest.mark.parametrize("entry, message", [
    ({"name": "a", "sha256": "ab", "scopes": ["recommend"]}, "sha256 must be 64 hex digits"),
    (_entry(scopes=["root"]), "unknown scope(s) ['root']"),
    (_entry(scopes=[]), "scopes must be a non-empty list"),
    (_entry(colour="red"), "unknown field(s) ['colour']"),
    (_entry(name=""), "name must be a non-empty string"),
    (_entry(rate_limit_per_s=-1), "rate_limit_per_s must be a number >= 0"),
    (_entry(rate_limit_per_s=5, burst=0.5), "burst must be a number >= 1"),
    ("just a string", "keys[0] must be a mapping"),
])
def test_a_bad_keys_entry_is_refused_naming_the_field(entry, message):
    with pytest.raises(ConfigError) as caught:
        parse_keys({"keys": [entry]}, "keys file k.yaml")
    assert message in str(caught.value) and "keys file k.yaml" in str(caught.value)


def test_two_keys_with_one_name_or_one_digest_are_refused():
    with pytest.raises(ConfigError, match="share the name a"):
        parse_keys({"keys": [_entry("a", "x"), _entry("a", "y")]}, "f")
    with pytest.raises(ConfigError, match="share the sha256"):
        parse_keys({"keys": [_entry("a", "x"), _entry("b", "x")]}, "f")
    with pytest.raises(ConfigError, match="one field, keys"):
        parse_keys({"keys": [], "users": []}, "f")


def test_keys_come_from_a_file_and_the_environment_merged(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps({"keys": [_entry("file-key", "one")]}))
    environ = {KEYS_FILE_ENV: str(path), KEYS_ENV: json.dumps({"keys": [_entry("env-key", "two",
                                                                              ["admin"])]})}
    assert {k.name for k in load_keys("", environ)} == {"file-key", "env-key"}
    assert [k.name for k in load_keys(str(path), {})] == ["file-key"]
    with pytest.raises(ConfigError, match="keys file .*missing.yaml not found"):
        load_keys(str(tmp_path / "missing.yaml"), {})
    with pytest.raises(ConfigError, match="share the name file-key"):
        load_keys(str(path), {KEYS_ENV: json.dumps({"keys": [_entry("file-key", "three")]})})
    with pytest.raises(ConfigError, match=r"\$RECSYS_API_KEYS is not valid"):
        load_keys("", {KEYS_ENV: "keys: [unclosed"})


def test_add_key_stores_the_digest_only_in_a_private_file(tmp_path):
    path = tmp_path / "secrets" / "keys.yaml"
    token = add_key(path, "console", frozenset({"admin", "recommend"}), 10)
    second = add_key(path, "ingest", frozenset({"ingest"}))
    text = path.read_text()
    assert token not in text and second not in text and digest(token) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = {k.name: k for k in read_keys_file(path)}
    assert keys["console"].rate_limit_per_s == 10 and keys["console"].burst == 20
    assert KeyRing(keys.values()).authenticate(second).name == "ingest"
    with pytest.raises(ConfigError, match="share the name console"):
        add_key(path, "console", frozenset({"admin"}))
    assert len(read_keys_file(path)) == 2  # the refused key left the file as it was


def test_cli_creates_and_lists_keys_and_refuses_bad_flags(tmp_path, capsys):
    path = tmp_path / "keys.yaml"
    assert recsys_main(["auth", "create-key", "--keys-file", str(path), "--name", "web",
                        "--scopes", "recommend,ingest", "--rate-limit", "50"]) == 0
    token = capsys.readouterr().out.strip()
    assert KeyRing(read_keys_file(path)).authenticate(token).name == "web"
    assert recsys_main(["auth", "list-keys", "--keys-file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "web" in listed and "ingest,recommend" in listed and "50/s" in listed
    assert token not in listed
    assert recsys_main(["auth", "create-key", "--keys-file", str(path), "--name", "x",
                        "--scopes", "recommend,superuser"]) == 1
    assert "unknown scope(s) ['superuser']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recsys_main(["auth", "create-key", "--keys-file", str(path), "--name", "y",
                     "--scopes", "admin", "--rate-limit", "-3"])
    assert "expected a number >= 0, got '-3'" in capsys.readouterr().err


# --- JSON nesting ---

@pytest.mark.parametrize("body, deeper", [
    (b'{"a": [1, 2, {"b": [3]}]}', False),
    (b"[" * 33 + b"]" * 33, True),
    (b"[" * 32 + b"]" * 32, False),
    (b'{"a": "' + b"[" * 500 + b'"}', False),  # brackets in a string do not nest
    (b'{"a": "\\"' + b"{" * 500 + b'"}', False),  # nor after an escaped quote
    (b"[" * 20 + b'"x"' + b"[" * 20, True),
    (b"[" * 1_000_000, True),  # a truncated body is not read as shallower than it is
])
def test_nesting_is_measured_outside_strings(body, deeper):
    assert nesting_exceeds(body, 32) is deeper


def test_nesting_agrees_with_the_parser_on_random_documents():
    import random

    rng = random.Random(7)

    def doc(depth):
        if depth == 0 or rng.random() < 0.2:
            return rng.choice(["s[{", 'q"[', 1, None, "]}"])
        return [doc(depth - 1)] if rng.random() < 0.5 else {"k[": doc(depth - 1)}

    def true_depth(value):
        if isinstance(value, list):
            return 1 + max((true_depth(v) for v in value), default=0)
        if isinstance(value, dict):
            return 1 + max((true_depth(v) for v in value.values()), default=0)
        return 0
    for _ in range(300):
        value = doc(rng.randint(0, 12))
        body = json.dumps(value).encode()
        for limit in (3, 6, 9):
            assert nesting_exceeds(body, limit) is (true_depth(value) > limit)


# --- rate limits ---

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_key_is_admitted_at_most_burst_plus_rate_times_elapsed():
    clock = Clock()
    limiter = RateLimiter(clock)
    admitted = 0
    for step in range(1000):  # 10 s in steps of 10 ms, asking every step
        clock.now = 100.0 + step * 0.01
        admitted += limiter.retry_after("k", rate=20, burst=5) == 0
    assert 5 + 20 * 9.99 - 1 <= admitted <= 5 + 20 * 9.99
    assert limiter.retry_after("unlimited", rate=0, burst=0) == 0


def test_a_refused_request_is_told_whole_seconds_to_wait():
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.retry_after("k", rate=0.25, burst=1) == 0
    assert limiter.retry_after("k", rate=0.25, burst=1) == 4
    clock.now += 3.5
    assert limiter.retry_after("k", rate=0.25, burst=1) == 1
    clock.now += 0.5
    assert limiter.retry_after("k", rate=0.25, burst=1) == 0


def test_processes_share_a_keys_rate():
    clock = Clock()
    limiters = [RateLimiter.for_processes(2, clock) for _ in range(2)]
    admitted = 0
    for step in range(500):  # 5 s, both processes asked every 10 ms
        clock.now = 100.0 + step * 0.01
        admitted += sum(limiter.retry_after("k", rate=10, burst=10) == 0
                        for limiter in limiters)
    assert admitted <= 10 + 10 * 5


# --- the start-up policy ---

def test_the_embedded_profile_on_localhost_starts_open_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="serving.access.policy"):
        policy = AccessPolicy.for_service(AccessConfig(), "127.0.0.1", True, environ={})
    assert policy.is_open
    assert "access: OPEN" in caplog.text


@pytest.mark.parametrize("host, embedded, named", [
    ("0.0.0.0", True, "address 0.0.0.0"),
    ("127.0.0.1", False, "the production profile"),
    ("10.1.2.3", False, "the production profile"),
])
def test_a_service_that_may_not_be_open_refuses_to_start_without_keys(host, embedded, named):
    with pytest.raises(ConfigError) as caught:
        AccessPolicy.for_service(AccessConfig(), host, embedded, environ={})
    message = str(caught.value)
    assert named in message and "access.keys_file" in message and "allow_open" in message


def test_allow_open_or_keys_let_any_profile_start(tmp_path):
    assert AccessPolicy.for_service(AccessConfig(allow_open=True), "0.0.0.0", False,
                                    environ={}).is_open
    path = tmp_path / "keys.yaml"
    add_key(path, "web", frozenset({"recommend"}))
    policy = AccessPolicy.for_service(AccessConfig(keys_file=str(path)), "0.0.0.0", False,
                                      processes=2, environ={})
    assert not policy.is_open and len(policy.keys) == 1 and policy.processes == 2


@pytest.mark.parametrize("raw, message", [
    ({"max_body_bytes": 0}, "max_body_bytes must be a positive integer"),
    ({"allow_open": "yes"}, "allow_open must be true or false"),
    ({"keys": []}, "unknown key(s) in config section 'access': keys"),
])
def test_a_bad_access_section_is_refused_by_name(raw, message):
    from serving.recommendations.config import load_service_config

    with pytest.raises(ConfigError) as caught:
        load_service_config(None, {"access": raw})
    assert message in str(caught.value)


# --- the guard, on a real server ---

TOKENS = {name: new_token() for name in ("reader", "writer", "admin", "slow")}


def _ring() -> KeyRing:
    return KeyRing([
        ApiKey("reader", digest(TOKENS["reader"]), frozenset({"recommend"})),
        ApiKey("writer", digest(TOKENS["writer"]), frozenset({"ingest"})),
        ApiKey("admin", digest(TOKENS["admin"]), frozenset({"admin", "recommend"})),
        ApiKey("slow", digest(TOKENS["slow"]), frozenset({"recommend"}), 2.0, 4.0)])


@pytest.fixture(scope="module")
def guarded():
    """A small app with one route per scope behind the real guard; ``writes`` records every
    body a write route was given."""
    app, writes = FastAPI(), []

    @app.post("/read")
    async def read(request: Request):
        return {"key": request.scope["state"]["api_key"]["name"]}

    @app.post("/write")
    async def write(request: Request):
        writes.append(await request.json())
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    scopes = {"/read": "recommend", "/write": "ingest"}
    refused = []
    app.add_middleware(AccessGuard, policy=AccessPolicy(_ring(), max_body_bytes=10_000,
                                                        max_json_depth=8),
                       required_scope=lambda method, path: None if path == "/healthz"
                       else scopes.get(path, "admin"),
                       on_refused=lambda path, status: refused.append((path, status)))
    with serve_in_thread(app) as url:
        yield url, writes, refused


def _post(url, path, token=None, scheme="bearer", **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers.update({"authorization": f"Bearer {token}"} if scheme == "bearer"
                       else {"x-api-key": token})
    return requests.post(f"{url}{path}", headers=headers, timeout=10, **kw)


@pytest.mark.parametrize("key, status, code", [
    (None, 401, "unauthorized"),
    ("wrong", 401, "unauthorized"),
    ("reader", 403, "forbidden"),
])
def test_a_write_route_refuses_a_missing_wrong_or_underscoped_key(guarded, key, status, code):
    url, writes, refused = guarded
    token = None if key is None else TOKENS.get(key, "rsk_not-a-key")
    before = len(writes)
    answer = _post(url, "/write", token, json={"event": 1})
    assert answer.status_code == status and answer.json()["error"] == code
    assert len(writes) == before  # nothing reached the route
    assert refused[-1] == ("/write", status)
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_keys_open_their_own_scopes_by_either_header(guarded):
    url, writes, _ = guarded
    assert _post(url, "/write", TOKENS["writer"], json={"n": 1}).status_code == 200
    assert writes[-1] == {"n": 1}
    assert _post(url, "/read", TOKENS["reader"], scheme="x-api-key").json() == {"key": "reader"}
    assert _post(url, "/read", TOKENS["admin"]).status_code == 200
    assert _post(url, "/anything-else", TOKENS["reader"]).status_code == 403  # admin's
    assert _post(url, "/anything-else", TOKENS["admin"]).status_code == 404
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # public


def test_every_answer_carries_the_browser_security_headers(guarded):
    url, _, _ = guarded
    for answer in (requests.get(f"{url}/healthz", timeout=10), _post(url, "/read"),
                   _post(url, "/read", TOKENS["reader"])):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_a_body_over_the_limit_is_refused_before_it_is_read(guarded):
    url, writes, _ = guarded
    before = len(writes)
    answer = _post(url, "/write", TOKENS["writer"], data=b"[" + b"1," * 6000 + b"1]",
                   headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"
    assert "10,000 bytes" in answer.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b" " * 1000
    answer = _post(url, "/write", TOKENS["writer"], data=chunks())
    assert answer.status_code == 413
    assert len(writes) == before


def test_a_declared_size_over_the_limit_is_refused_with_no_body_sent(guarded):
    url, _, _ = guarded
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKENS["writer"].encode() +
                     b"\r\nContent-Length: 52428800\r\n\r\n")
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413") and "Content-Length 52,428,800" in answer


def test_json_nested_past_the_limit_is_refused_before_parsing(guarded):
    url, writes, _ = guarded
    before = len(writes)
    answer = _post(url, "/write", TOKENS["writer"], data=b"[" * 9 + b"]" * 9,
                   headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == "too_deep"
    assert _post(url, "/write", TOKENS["writer"], json=[[[[[[[[1]]]]]]]]).status_code == 200
    assert len(writes) == before + 1


def test_a_rate_limited_key_gets_429_with_retry_after_under_concurrent_clients(guarded):
    url, _, _ = guarded
    statuses, lock = [], threading.Lock()

    def client():
        with requests.Session() as session:
            for _ in range(5):
                status = session.post(f"{url}/read", timeout=10, headers={
                    "authorization": f"Bearer {TOKENS['slow']}"}).status_code
                with lock:
                    statuses.append(status)
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    admitted = statuses.count(200)
    assert statuses.count(429) == 20 - admitted
    assert 4 <= admitted <= 4 + 2 * 5  # burst 4, 2/s: far fewer than the 20 asked in < 5 s
    answer = _post(url, "/read", TOKENS["slow"])
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
    assert _post(url, "/read", TOKENS["reader"]).status_code == 200  # other keys unaffected


# --- `recsys api` at start ---

def test_recsys_api_refuses_to_start_open_in_the_production_profile(capsys, monkeypatch):
    from conftest import ROOT

    monkeypatch.delenv(KEYS_FILE_ENV, raising=False)
    monkeypatch.delenv(KEYS_ENV, raising=False)
    assert recsys_main(["api", "--repo", str(ROOT / "feature_repo" / "production"),
                        "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "no API keys are configured and the production profile does not start open" in err


def test_recsys_api_refuses_to_start_open_on_a_public_address(capsys, monkeypatch):
    from conftest import ROOT

    monkeypatch.delenv(KEYS_FILE_ENV, raising=False)
    monkeypatch.delenv(KEYS_ENV, raising=False)
    assert recsys_main(["api", "--repo", str(ROOT / "feature_repo"), "--host", "0.0.0.0",
                        "--port", "0"]) == 1
    assert "address 0.0.0.0 does not start open" in capsys.readouterr().err


def test_recsys_api_refuses_a_bad_keys_file_before_loading_anything(tmp_path, capsys,
                                                                    monkeypatch):
    from conftest import ROOT

    bad = tmp_path / "keys.yaml"
    bad.write_text("keys:\n  - name: web\n    sha256: not-a-digest\n    scopes: [recommend]\n")
    monkeypatch.setenv(KEYS_FILE_ENV, str(bad))
    assert recsys_main(["api", "--repo", str(ROOT / "feature_repo"), "--port", "0"]) == 1
    assert "keys[0] (web): sha256 must be 64 hex digits" in capsys.readouterr().err


# --- console sessions ---

def test_a_session_cookie_names_its_key_until_it_expires_and_cannot_be_forged():
    from serving.access.sessions import Sessions

    sessions = Sessions(b"s" * 32, lifetime_s=60)
    cookie = sessions.issue("admin", now=1000.0)
    assert "admin" not in cookie.split(".")[-1]
    assert sessions.verify(cookie, now=1059.0) == "admin"
    assert sessions.verify(cookie, now=1061.0) is None  # expired
    assert Sessions(b"t" * 32).verify(cookie, now=1000.0) is None  # another service's secret
    name, expires, nonce, signature = cookie.split(".")
    forged = ".".join([name, str(int(expires) + 10_000), nonce, signature])
    assert sessions.verify(forged, now=1000.0) is None
    assert sessions.verify("garbage", now=1000.0) is None
    token = sessions.csrf_token(cookie)
    assert sessions.csrf_valid(cookie, token)
    assert not sessions.csrf_valid(sessions.issue("admin", now=1000.0), token)
    assert not sessions.csrf_valid(cookie, "")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Sessions(b"short")


@pytest.fixture(scope="module")
def console_like():
    """Console-shaped routes (GET page, POST action) behind the real guard, with keys."""
    from serving.access.sessions import Sessions

    app, actions = FastAPI(), []
    policy = AccessPolicy(_ring(), sessions=Sessions(b"k" * 32))

    @app.get("/console/page")
    async def page(request: Request):
        return {"csrf": request.scope["state"].get("csrf_token")}

    @app.post("/console/act")
    async def act():
        actions.append(1)
        return {"ok": True}

    @app.post("/read")
    async def read():
        return {"ok": True}

    def scope_of(method, path):
        if path == "/healthz":
            return None
        return {"/console/page": "recommend", "/read": "recommend"}.get(path, "admin")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}
    app.add_middleware(AccessGuard, policy=policy, required_scope=scope_of)
    with serve_in_thread(app) as url:
        yield url, policy.sessions, actions


def test_the_console_cookie_opens_pages_and_actions_need_its_csrf_token(console_like):
    url, sessions, actions = console_like
    admin = sessions.issue("admin")
    jar = {"recsys_console": admin}
    csrf = requests.get(f"{url}/console/page", cookies=jar, timeout=10).json()["csrf"]
    assert csrf == sessions.csrf_token(admin)
    before = len(actions)
    refused = requests.post(f"{url}/console/act", cookies=jar, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf"
    wrong = requests.post(f"{url}/console/act", cookies=jar, timeout=10,
                          headers={"x-csrf-token": sessions.csrf_token(sessions.issue("admin"))})
    assert wrong.status_code == 403
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        cross = requests.post(f"{url}/console/act", cookies=jar, timeout=10,
                              headers={"x-csrf-token": csrf, **headers})
        assert cross.status_code == 403 and cross.json()["error"] == "cross_site"
    assert len(actions) == before
    host = url.removeprefix("http://")
    taken = requests.post(f"{url}/console/act", cookies=jar, timeout=10, headers={
        "x-csrf-token": csrf, "origin": f"http://{host}", "sec-fetch-site": "same-origin"})
    assert taken.status_code == 200 and len(actions) == before + 1


def test_a_console_cookie_without_the_scope_or_for_no_key_is_refused(console_like):
    url, sessions, actions = console_like
    reader = sessions.issue("reader")
    assert requests.get(f"{url}/console/page", cookies={"recsys_console": reader},
                        timeout=10).status_code == 200
    refused = requests.post(f"{url}/console/act", cookies={"recsys_console": reader},
                            headers={"x-csrf-token": sessions.csrf_token(reader)}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    gone = sessions.issue("a-key-no-longer-configured")
    to_sign_in = requests.get(f"{url}/console/page", cookies={"recsys_console": gone},
                              timeout=10, allow_redirects=False)
    assert to_sign_in.status_code == 303  # a page: the browser goes to the sign-in form
    assert to_sign_in.headers["location"] == "/console/login"
    assert requests.get(f"{url}/console/api/anything", cookies={"recsys_console": gone},
                        timeout=10).status_code == 401  # the JSON: refused
    # the cookie is the console's: the API routes take keys in headers only
    assert requests.post(f"{url}/read", cookies={"recsys_console": sessions.issue("admin")},
                         timeout=10).status_code == 401


def test_an_open_services_console_actions_still_need_the_pages_csrf_token():
    """No keys (the embedded demo): pages open without sign-in, but an action from another
    site, or without the token a page of this service carries, is refused."""
    from serving.access.sessions import OPEN_SESSION, Sessions

    app, actions = FastAPI(), []
    policy = AccessPolicy.open(sessions=Sessions(b"o" * 32))

    @app.get("/console/page")
    async def page(request: Request):
        return {"csrf": request.scope["state"].get("csrf_token")}

    @app.post("/console/act")
    async def act():
        actions.append(1)
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    app.add_middleware(AccessGuard, policy=policy, required_scope=lambda method, path: None
                       if path == "/healthz" else "admin")
    with serve_in_thread(app) as url:
        csrf = requests.get(f"{url}/console/page", timeout=10).json()["csrf"]
        assert csrf == policy.sessions.csrf_token(OPEN_SESSION)
        assert requests.post(f"{url}/console/act", timeout=10).status_code == 403
        assert requests.post(f"{url}/console/act", timeout=10, headers={
            "x-csrf-token": csrf, "sec-fetch-site": "cross-site"}).status_code == 403
        assert actions == []
        assert requests.post(f"{url}/console/act", timeout=10,
                             headers={"x-csrf-token": csrf}).status_code == 200
        assert actions == [1]


def test_an_open_loopback_service_refuses_other_hosts_and_cross_site_writes():
    """DNS rebinding (a foreign name resolving to 127.0.0.1) and a page on another site
    posting to the service (a form, a no-cors fetch) are refused; local clients pass."""
    app, writes = FastAPI(), []

    @app.post("/v1/items")
    async def items(request: Request):
        writes.append(await request.body())
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    app.add_middleware(AccessGuard, policy=AccessPolicy.open(),
                       required_scope=lambda method, path: None if path == "/healthz"
                       else "ingest")
    with serve_in_thread(app) as url:
        rebound = requests.post(f"{url}/v1/items", data=b"{}", timeout=10,
                                headers={"host": "attacker.example"})
        assert rebound.status_code == 403 and rebound.json()["error"] == "host"
        for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
            cross = requests.post(f"{url}/v1/items", data=b"{}", timeout=10, headers=headers)
            assert cross.status_code == 403 and cross.json()["error"] == "cross_site"
        assert writes == []
        assert requests.post(f"{url}/v1/items", data=b"{}", timeout=10).status_code == 200
        assert requests.get(f"{url}/healthz", timeout=10,
                            headers={"host": "localhost"}).status_code == 200
