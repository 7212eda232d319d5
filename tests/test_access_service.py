"""`recsys api` with API keys, as a user runs it: the real service process (models, Feast, a real
Redis stream), keys read from the file ``$RECSYS_API_KEYS_FILE`` names. Wrong keys change
nothing, a 50 MB body is refused without the process growing, rate limits hold under
concurrent clients, and no key reaches the log."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from conftest import event
from recommendation_support import PrivateRedis
from serving_support import free_port

from recsys.model_contract.registry import Registry
from recsys.stream.config import StreamConfig
from recsys.stream.envelope import decode
from serving.access.keys import add_key

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
SCOPES = {"reader": {"recommend"}, "writer": {"ingest"}, "admin": {"admin", "recommend"},
          "limited": {"recommend"}, "operator": {"recommend", "ingest", "admin"}}
FUZZ_REQUESTS = 10_000


@pytest.fixture(scope="module")
def api(service_files, tmp_path_factory):
    root = tmp_path_factory.mktemp("secured")
    keys_file = root / "keys.yaml"
    tokens = {name: add_key(keys_file, name, frozenset(scopes),
                            5.0 if name == "limited" else 0.0, 5.0 if name == "limited" else None)
              for name, scopes in SCOPES.items()}
    redis = PrivateRedis(root / "redis").start()
    base = root / "models"  # its own copy: admin routes (and the fuzzer) may move aliases
    shutil.copytree(service_files.base, base)
    config = root / "service.yaml"
    config.write_text(yaml.safe_dump({
        "repo": str(service_files.repo), "model_base_path": str(base),
        "request_deadline_ms": 10_000, "features_timeout_ms": 3_000,
        "retrieval_timeout_ms": 3_000, "ranking_timeout_ms": 3_000,
        "access": {"max_body_bytes": MB}}))
    port, log_path = free_port(), root / "api.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "workflows.cli.main", "--log-level", "DEBUG", "api", "--config",
         str(config), "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis.port}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "RECSYS_API_KEYS_FILE": str(keys_file)})
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 240
    try:
        while True:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        import redis as redis_client

        stream = redis_client.Redis(port=redis.port)
        yield url, tokens, process, stream, log_path, Registry(base)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        log.close()
        redis.stop()


def _length(stream) -> int:
    """Events and items in the stream (the service's own exposure and decision records, which
    it appends in the background for each answer, left out)."""
    entries = stream.xrange(StreamConfig().stream) if stream.exists(StreamConfig().stream) else []
    return sum(decode(eid, fields).kind in ("event", "item") for eid, fields in entries)


WRITES = [("/v1/events", lambda: event(event_id="e-secured")),
          ("/v1/items", lambda: {"item_id": "i-secured", "category": "news", "tags": ["a"],
                                 "duration_s": 60})]


@pytest.mark.parametrize("path, body", WRITES)
@pytest.mark.parametrize("presented", [None, "wrong", "reader", "admin"])
def test_a_write_route_refuses_any_key_without_ingest_and_writes_nothing(api, path, body,
                                                                         presented):
    url, tokens, _, stream, _, _ = api
    headers = {} if presented is None else {
        "authorization": f"Bearer {tokens.get(presented, 'rsk_wrong')}"}
    before = _length(stream)
    answer = requests.post(f"{url}{path}", json=body(), headers=headers, timeout=30)
    assert answer.status_code == (403 if presented in tokens else 401)
    assert answer.json()["error"] == ("forbidden" if presented in tokens else "unauthorized")
    assert _length(stream) == before


ADMIN_ROUTES = [("/console/api/models/promote", {"version": 1, "alias": "stable",
                                                "reason": "not allowed", "force": True}),
                ("/console/api/models/rollback", {"alias": "canary", "reason": "not allowed"})]


@pytest.mark.parametrize("path, body", ADMIN_ROUTES)
@pytest.mark.parametrize("presented", [None, "wrong", "reader", "writer", "limited"])
def test_an_admin_route_refuses_any_key_without_admin_and_changes_nothing(api, path, body,
                                                                          presented):
    url, tokens, _, _, _, registry = api
    headers = {} if presented is None else {
        "authorization": f"Bearer {tokens.get(presented, 'rsk_wrong')}"}
    before = (registry.aliases(), len(registry.history()))
    answer = requests.post(f"{url}{path}", json=body, headers=headers, timeout=30)
    assert answer.status_code == (403 if presented in tokens else 401)
    assert answer.json()["error"] == ("forbidden" if presented in tokens else "unauthorized")
    assert (registry.aliases(), len(registry.history())) == before


def test_the_ingest_key_writes_and_the_recommend_key_reads(api, small_data):
    url, tokens, _, stream, _, _ = api
    before = _length(stream)
    written = requests.post(f"{url}/v1/events", json=event(event_id="e-allowed"), timeout=30,
                            headers={"x-api-key": tokens["writer"]})
    assert written.status_code == 200 and written.json()["accepted"] == 1
    assert _length(stream) == before + 1
    user = small_data.train["user_id"].value_counts().index[0]
    for name in ("reader", "admin"):
        answer = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": 5},
                               headers={"authorization": f"Bearer {tokens[name]}"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5
    for name in ("writer", None):
        answer = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": 5},
                               timeout=30, headers={} if name is None else {
                                   "authorization": f"Bearer {tokens[name]}"})
        assert answer.status_code == (403 if name else 401)
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 200


def _send_body(url: str, token: str, total: int, chunked: bool) -> str:
    """Send a ``total``-byte body in 1 MB pieces (declared or chunked) until the service
    answers or closes; its status line."""
    host, port = url.removeprefix("http://").split(":")
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\n" +
            ("Transfer-Encoding: chunked\r\n\r\n" if chunked else
             f"Content-Length: {total}\r\n\r\n")).encode()
    piece = b" " * MB
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < total:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                             if chunked else piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service answered and closed: read what it said
        try:
            return sock.recv(4096).decode("latin-1").split("\r\n")[0]
        except ConnectionResetError:
            return "reset"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_50_mb_body_gets_413_without_the_process_growing(api, chunked):
    url, tokens, process, stream, _, _ = api
    service = psutil.Process(process.pid)
    before_rss, before_len = service.memory_info().rss, _length(stream)
    status = _send_body(url, tokens["writer"], 50 * MB, chunked)
    assert status.startswith("HTTP/1.1 413"), status
    grown = service.memory_info().rss - before_rss
    assert grown < 4 * MB, f"the service grew by {grown / MB:.1f} MB"
    assert _length(stream) == before_len
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_rate_limit_holds_under_four_concurrent_clients(api, small_data):
    url, tokens, _, _, _, _ = api
    user = small_data.train["user_id"].value_counts().index[0]
    statuses, lock = [], threading.Lock()
    started = time.monotonic()

    def client():
        with requests.Session() as session:
            while time.monotonic() - started < 3.0:
                status = session.post(f"{url}/v1/recommendations", timeout=30,
                                      json={"user_id": user, "k": 5},
                                      headers={"x-api-key": tokens["limited"]}).status_code
                with lock:
                    statuses.append(status)
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) > 0
    assert 5 <= admitted <= 5 + 5 * elapsed + 1  # burst 5, 5/s


def test_a_fuzz_run_from_the_openapi_schema_gets_no_5xx_and_the_service_stays_up(api):
    """At least FUZZ_REQUESTS requests from inputs Schemathesis generates from the service's
    own OpenAPI document, valid and invalid (its negative mode), over every route; each input
    is sent once with a key of every scope and once with none (generating an input costs the
    client several times what the service spends on it, so the unkeyed half, which must stop
    at 401, reuses the keyed half's inputs): no answer is a 5xx and the process is up at the
    end."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    url, tokens, process, _, _, _ = api
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    with_input = [op for op in operations if op.body or op.query]
    assert {op.path for op in with_input} >= {"/v1/recommendations", "/v1/events",
                                              "/v1/items", "/v1/explain"}
    # a quarter more than an even split: some routes have fewer distinct inputs than asked;
    # each input is sent twice
    per_mode = FUZZ_REQUESTS * 5 // (4 * 2 * 2 * len(with_input)) + 1
    sent, failures = [], []
    session = requests.Session()
    for op in operations:  # no invalid input can be made for a route that takes none
        modes = list(schemathesis.GenerationMode) if op in with_input else [
            schemathesis.GenerationMode.POSITIVE]
        for mode in modes:
            @settings(max_examples=per_mode if op in with_input else 5, deadline=None,
                      database=None, derandomize=True, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                for keyed in (True, False):
                    response = case.call(base_url=url, session=session, timeout=60, headers={
                        "authorization": f"Bearer {tokens['operator']}"} if keyed else {})
                    kind = response.headers.get("content-type") or [""]  # a list per header
                    kind = kind[0] if isinstance(kind, list) else kind
                    code = response.json().get("error") if response.status_code in (401, 403) \
                        and kind.startswith("application/json") else None
                    sent.append((keyed, op.path, response.status_code, code))
                    if response.status_code >= 500:
                        failures.append((op.method, op.path, mode.value, keyed,
                                         response.status_code, response.text[:300]))
            try:
                run()
            except Unsatisfiable:  # e.g. a form of one free string has no invalid value
                if mode is not schemathesis.GenerationMode.NEGATIVE:
                    raise
    statuses = sorted({status for _, _, status, _ in sent})
    print(f"fuzz: {len(sent):,} requests over {len(operations)} operations; statuses "
          f"{statuses}")
    assert len(sent) >= FUZZ_REQUESTS
    assert failures == []
    assert process.poll() is None
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    keyed = [status for with_key, _, status, _ in sent if with_key]
    # the operator's key opens every route (a 403 is the route's own: overrides_off ...)
    assert not {"unauthorized", "forbidden"} & {code for with_key, _, _, code in sent
                                                if with_key}
    assert sum(200 <= s < 300 for s in keyed) > len(keyed) // 10  # valid requests served
    assert sum(s in (400, 404, 409, 413, 422) for s in keyed) > len(keyed) // 10  # judged
    # without a key, an API route answers 401 before it reads anything (pages redirect to
    # the sign-in form, which answers 200)
    assert {status for with_key, path, status, _ in sent if not with_key
            and path.startswith(("/v1/", "/console/api/"))} == {401}
    assert {op.path for op in operations} >= {"/console/users/{user_id}", "/console/login",
                                              "/console/api/models/promote"}


def test_no_key_reaches_the_log(api):
    url, tokens, _, _, log_path, _ = api
    requests.post(f"{url}/v1/recommendations", json={"user_id": "u"}, timeout=30,
                  headers={"authorization": "Bearer rsk_this-wrong-key-is-a-secret-too"})
    time.sleep(0.5)
    text = log_path.read_text()
    assert f"access: {len(SCOPES)} API key(s)" in text  # the log was written, naming keys
    for token in [*tokens.values(), "rsk_this-wrong-key-is-a-secret-too"]:
        assert token not in text
