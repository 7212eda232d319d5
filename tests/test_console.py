"""The operator console in a real headless browser (Debian's Chromium, driven by Playwright):
the real service (models, Feast, a real Redis stream) behind API keys, signed in through the
console's own form. Each page loads with no console errors and is saved as a screenshot; the
user page shows what the API answers; a promotion as admin moves the alias; without the admin
scope it is refused and nothing moves.

Skipped with a message where no Chromium is installed; under CI (``CI=true``) a missing
browser fails instead (`.ci/run` installs it). Screenshots go to ``$RECSYS_ARTIFACTS_DIR``
(default ``tests/artifacts``)/console/.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from recsys.model_contract.registry import Registry
from serving.access.keys import ApiKey, KeyRing, digest, new_token
from serving.access.policy import AccessPolicy

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("RECSYS_ARTIFACTS_DIR", ROOT / "tests" / "artifacts")) / "console"
TOKENS = {"operator": new_token(), "viewer": new_token(), "ingester": new_token(),
          "frontend": new_token()}
SCOPES = {"operator": {"admin", "recommend"}, "viewer": {"console"}, "ingester": {"ingest"},
          "frontend": {"recommend"}}


EXPERIMENTS = """
experiments:
  - name: fusion
    layer: ranking
    arms:
      - {name: control}
      - {name: retrieval-heavy, changes: {retrieval_weight: 5.0}}
"""


def _analysis(day: int, difference: float) -> dict:
    """One line of ``NAME.history.jsonl`` as `recsys experiment analyze` appends it (the
    fields the console reads)."""
    fixed = {"control": 0.1, "treatment": 0.1 + difference, "difference": difference,
             "ci": [difference - 0.008, difference + 0.008], "p_value": 0.2,
             "relative": difference / 0.1, "relative_ci": [-0.05, 0.15]}
    return {"analyzed_at": f"2026-12-0{day}T00:00:00+00:00", "analysis": {
        "experiment": "fusion", "baseline": "control",
        "results": [{"metric": "ctr", "arm": "retrieval-heavy", "fixed": fixed}]}}


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = ("no Chromium: `apt-get install chromium` (Debian's package; .ci/run "
                   "installs it)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def console(service_files, tmp_path_factory):
    """The service with the console, behind keys, on a free port; a Playwright browser."""
    from playwright.sync_api import sync_playwright

    from recsys.stream.config import StreamConfig
    from recsys.stream.producer import StreamProducer
    from recsys.stream.redis_connection import connect, stop_embedded
    from serving.console.config import ConsoleConfig
    from serving.recommendations.app import create_app
    from serving.recommendations.config import ServiceConfig
    from serving.recommendations.http_server import serve_in_thread
    from serving.recommendations.service import build_recommender

    executable = _chromium()
    base = tmp_path_factory.mktemp("console-models") / "models"  # promotions change it
    shutil.copytree(service_files.base, base)
    stream_cfg = StreamConfig(embedded_dir=tmp_path_factory.mktemp("console-redis"))
    client = connect(stream_cfg)
    experiments = tmp_path_factory.mktemp("console-experiments")
    (experiments / "experiments.yaml").write_text(EXPERIMENTS)
    (experiments / "fusion.history.jsonl").write_text("".join(
        json.dumps(_analysis(day, difference)) + "\n"
        for day, difference in ((1, 0.010), (2, 0.006), (3, 0.004))))
    recommender = build_recommender(ServiceConfig(
        repo=service_files.repo, model_base_path=base,
        request_deadline_ms=10_000, features_timeout_ms=3_000, retrieval_timeout_ms=3_000,
        ranking_timeout_ms=3_000, experiments=str(experiments / "experiments.yaml"),
        console=ConsoleConfig(history_interval_s=0.5, experiments_dir=str(experiments))))
    policy = AccessPolicy(KeyRing(ApiKey(name, digest(TOKENS[name]), frozenset(scopes))
                                  for name, scopes in SCOPES.items()))
    app = create_app(recommender, StreamProducer(client, stream_cfg), access=policy)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_in_thread(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--no-sandbox"])
        try:
            yield url, browser, recommender, Registry(base)
        finally:
            browser.close()
    recommender.close()
    recommender.models.close()
    client.close()
    stop_embedded(stream_cfg.embedded_dir)


def _signed_in(browser, url: str, who: str):
    """A browser page signed in through the console's form as ``who``, and the console
    messages and page errors it logs."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.goto(f"{url}/console")
    assert page.url.endswith("/console/login")  # no session: sent to the sign-in form
    page.fill("#key", TOKENS[who])
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url == f"{url}/console", (page.url, page.content()[:3000], problems)
    return page, problems


def _user_and_item(small_data) -> tuple[str, str]:
    user = small_data.train["user_id"].value_counts().index[0]
    item = small_data.train["item_id"].value_counts().index[0]
    return str(user), str(item)


def test_every_page_loads_without_console_errors(console, small_data):
    url, browser, _, _ = console
    for _ in range(5):  # some traffic for the overview's charts
        requests.post(f"{url}/v1/recommendations", json={"user_id": "u-traffic", "k": 5},
                      headers={"x-api-key": TOKENS["frontend"]}, timeout=60)
    page, problems = _signed_in(browser, url, "operator")
    user, item = _user_and_item(small_data)
    pages = {"login": "/console/login", "overview": "/console", "user": f"/console/users/{user}",
             "item": f"/console/items/{item}", "experiments": "/console/experiments",
             "models": "/console/models"}
    for name, path in pages.items():
        page.goto(f"{url}{path}")
        page.wait_for_load_state("networkidle")
        if name in ("overview", "user", "item"):  # charts drawn from the page's data
            page.wait_for_selector("body[data-drawn=yes]", timeout=10_000)
        assert page.title().endswith("recsys console"), name
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert problems == []
    assert page.locator("header .who").inner_text().startswith("operator")
    page.goto(f"{url}/console/experiments")
    served = page.locator("#experiment-fusion table.arms tbody td:nth-child(4)")
    assert sum(int(n) for n in served.all_inner_texts()) >= 5  # the traffic above, by arm
    assert page.locator("#experiment-fusion table.results tbody tr").count() == 1


def test_the_user_page_shows_the_items_the_api_answers(console, small_data):
    url, browser, _, _ = console
    user, _ = _user_and_item(small_data)
    page, problems = _signed_in(browser, url, "viewer")
    page.goto(f"{url}/console/users/{user}")
    shown = page.locator("#recommendations td.item-id").all_inner_texts()
    answer = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": 10},
                           headers={"authorization": f"Bearer {TOKENS['frontend']}"},
                           timeout=60).json()
    assert answer["tier"] == "full"
    assert shown == [item["item_id"] for item in answer["items"]]
    sources = page.locator("#recommendations tbody tr td:nth-child(4)").all_inner_texts()
    assert sources == [item["source"] for item in answer["items"]]
    assert problems == []


def test_a_promotion_clicked_by_an_admin_moves_the_alias(console):
    url, browser, _, registry = console
    version = registry.entries()[0].version
    page, problems = _signed_in(browser, url, "operator")
    page.goto(f"{url}/console/models")
    page.fill("#reason", "browser test")
    page.check("#force")  # the test's export has no blessing
    page.click(f"button.promote[data-version='{version}'][data-alias='stable']")
    result = page.locator("#action-result")
    result.wait_for(state="visible")
    page.wait_for_function("document.getElementById('action-result').textContent !== ''")
    assert result.inner_text().startswith("promote: stable"), result.inner_text()
    page.wait_for_selector("#alias-stable")  # the page reloads once the registry answered
    assert registry.aliases()["stable"] == version
    assert page.locator("#alias-stable").inner_text() == f"stable = v{version}"
    entry = registry.history()[-1]
    assert (entry["action"], entry["to"], entry["by"], entry["reason"]) == (
        "promote", version, "console:operator", "browser test")
    page.screenshot(path=str(ARTIFACTS / "models-after-promotion.png"), full_page=True)
    assert problems == []


def test_a_promotion_without_the_admin_scope_is_refused_and_moves_nothing(console):
    url, browser, _, registry = console
    before = (registry.aliases(), len(registry.history()))
    page, _ = _signed_in(browser, url, "viewer")
    page.goto(f"{url}/console/models")
    assert page.locator("button.promote").count() == 0  # no buttons without the scope
    version = registry.entries()[0].version
    refused = page.evaluate("""async (version) => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch('/console/api/models/promote', {method: 'POST',
            headers: {'content-type': 'application/json', 'x-csrf-token': token},
            body: JSON.stringify({version: version, alias: 'stable', reason: 'no', force: true})});
        return [r.status, (await r.json()).error];
    }""", version)
    assert refused == [403, "forbidden"]
    assert (registry.aliases(), len(registry.history())) == before


def test_a_wrong_key_or_one_without_the_console_scope_cannot_sign_in(console):
    url, browser, _, _ = console
    for token in ("rsk_wrong", TOKENS["ingester"], TOKENS["frontend"]):
        page = browser.new_page()
        page.goto(f"{url}/console/login")
        page.fill("#key", token)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/console/login?failed=1")
        assert page.locator("#login-failed").is_visible()
        assert requests.get(f"{url}/console/api/overview", timeout=10).status_code == 401
        page.close()
    # the key a public frontend holds reads recommendations, not users' features
    assert requests.get(f"{url}/console/api/users/u1", timeout=10, headers={
        "x-api-key": TOKENS["frontend"]}).json()["error"] == "forbidden"


@pytest.mark.parametrize("method, path, body, status, code", [
    ("GET", "/console/api/users/" + "u" * 300, None, 422, "invalid_request"),
    ("GET", "/console/api/users/u1?compare=no-such-label", None, 404, "unknown_label"),
    ("GET", "/console/api/users/u1?k=0", None, 422, "invalid_request"),
    ("GET", "/console/api/items/no-such-item", None, 404, "unknown_item"),
    ("GET", "/console/api/overview?since_s=-1", None, 422, "invalid_request"),
    ("POST", "/console/api/models/promote", b"{not json", 400, "malformed_json"),
    ("POST", "/console/api/models/promote", {"alias": "stable", "reason": "x"}, 422,
     "invalid_request"),
    ("POST", "/console/api/models/promote", {"alias": "prod", "reason": "x", "version": 1},
     422, "invalid_request"),
    ("POST", "/console/api/models/promote", {"alias": "stable", "reason": "", "version": 1},
     422, "invalid_request"),
    ("POST", "/console/api/models/promote", {"alias": "stable", "reason": "x", "version": 1,
                                             "by": "someone else"}, 422, "invalid_request"),
    ("POST", "/console/api/models/promote", {"alias": "stable", "reason": "x",
                                             "version": 999}, 409, "refused"),
    ("POST", "/console/api/models/rollback", {"alias": "canary", "reason": "x", "to": 1},
     422, "invalid_request"),
])
def test_bad_console_requests_get_exact_errors(console, method, path, body, status, code):
    url, _, _, registry = console
    before = len(registry.history())
    headers = {"authorization": f"Bearer {TOKENS['operator']}"}
    if isinstance(body, bytes):
        answer = requests.request(method, f"{url}{path}", data=body, headers=headers,
                                  timeout=30)
    else:
        answer = requests.request(method, f"{url}{path}", json=body, headers=headers,
                                  timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert len(registry.history()) == before
