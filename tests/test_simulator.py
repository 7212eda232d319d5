"""The user simulator's parts that need no running service: the population's true click
probabilities, and the errors of `recsys simulate` and `recsys experiment analyze` on bad
input (an unreachable API, a missing file, an unknown experiment)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.synthetic import SyntheticConfig
from recsys.data.synthetic.responses import click_probability
from recsys.experiments.definitions import parse_experiments
from workflows.cli.main import main
from workflows.simulator import Population, SimulationConfig, SimulationError, Simulator

SMALL = SyntheticConfig(users=50, items=200, days=2, seed=5)


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(SMALL)


def test_true_click_probabilities_follow_the_response_model(population):
    items = [f"i{n:07d}" for n in range(5)]
    known = [i for i in items if i in population.item_index]
    p = population.click_probabilities(3, known + ["not-in-the-catalogue"])
    index = np.array([population.item_index[i] for i in known])
    expected = click_probability(population.users, population.items, np.full(len(known), 3),
                                 index, np.arange(len(known), dtype=float), SMALL.categories)
    assert np.allclose(p[:-1], expected) and p[-1] == 0.0
    first = population.click_probabilities(3, [known[0]])[0]
    shown_late = population.click_probabilities(3, ["x"] * 20 + [known[0]])[-1]
    assert shown_late < first  # position bias


def test_an_unreachable_api_is_named():
    simulator = Simulator("http://127.0.0.1:9", Population(SMALL), parse_experiments({}),
                          SimulationConfig(days=1, users=3, active_share=1.0, timeout_s=2))
    with pytest.raises(SimulationError, match=r"the API at http://127.0.0.1:9 cannot be "
                                              "reached"):
        simulator.run_day(0)


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["simulate", "--api", "http://127.0.0.1:9", "--lake", str(tmp_path),
                 "--experiments", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - {name: exp, arms: [{name: a}, {name: b}]}\n")
    assert main(["experiment", "analyze", "other", "--experiments", str(path),
                 "--outcomes", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no experiment 'other'" in err and "(it has: ['exp'])" in err
    assert main(["experiment", "analyze", "exp", "--experiments", str(path),
                 "--outcomes", str(tmp_path)]) == 1
    assert "no user_outcomes table" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "analyze", "exp", "--experiments", str(path), "--outcomes",
              str(tmp_path), "--alpha", "2"])
    assert "expected a number in [0, 1]" in capsys.readouterr().err


def test_a_shifted_population_moves_every_taste_and_some_users_to_a_new_country(population):
    shifted = population.shifted(seed=3, new_country="NZ", country_share=0.4)
    perm = shifted.taste_permutation
    assert sorted(perm) == list(range(population.users.taste.shape[1]))
    assert not np.any(perm == np.arange(len(perm)))  # no category keeps its fans
    np.testing.assert_array_equal(shifted.users.taste[:, perm], population.users.taste)
    moved = [c["country"] == "NZ" for c in shifted.contexts]
    assert 0.2 < np.mean(moved) < 0.6
    assert all(c["country"] != "NZ" for c in population.contexts)  # the original is kept
    assert shifted.users.language is population.users.language
    again = population.shifted(seed=3, new_country="NZ", country_share=0.4)
    np.testing.assert_array_equal(again.taste_permutation, perm)
    # the truth follows the new tastes: an item of a user's old favourite category is now
    # less likely to be clicked
    u = 0
    favourite = int(np.argmax(population.users.taste[u]))
    item = next(i for i, n in population.item_index.items()
                if population.items.category[n] == favourite)
    assert shifted.click_probabilities(u, [item])[0] < population.click_probabilities(
        u, [item])[0]


def test_the_reference_lists_bound_what_any_list_can_reach(population):
    users = np.arange(20)
    found = population.reference_ctrs(users, 5, seed=1)
    assert found == population.reference_ctrs(users, 5, seed=1)  # seeded
    rng, ids = np.random.default_rng(3), list(population.item_index)  # ids in index order
    for u in users:  # no list of 5 beats the oracle's on average
        lists = [rng.choice(population.items.n, 5, replace=False) for _ in range(50)]
        best = max(population.click_probabilities(int(u), [ids[i] for i in items]).mean()
                   for items in lists)
        assert best <= population.reference_ctrs(np.array([u]), 5)["oracle"] + 1e-12
    assert found["random"] < found["oracle"]


class _RecordingApi:
    """A stand-in for the service's HTTP API that answers every request with the same five
    catalogue items (every fourth from the tier global-popular) and keeps what it was sent
    (the simulator is under test, not the API)."""

    def __init__(self, items: list[str]):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests, self.events, lock = [], [], threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    if self.path == "/v1/recommendations":
                        api.requests.append(body)
                        answer = {"request_id": f"r{len(api.requests)}", "items": [
                            {"item_id": i} for i in items], "tier": "global-popular" if
                            len(api.requests) % 4 == 0 else "full"}
                    else:
                        api.events.extend(body["events"])
                        answer = {"accepted": len(body["events"]), "duplicates": 0,
                                  "rejected": 0}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _clocked(population, days: int):
    """A recording API (answers of five items), the simulated clock's start, and the config
    of 20 users on it, all active, three sessions a day on average."""
    import datetime as dt

    api = _RecordingApi(list(population.item_index)[:5])
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc).timestamp()
    return api, start, SimulationConfig(days=days, users=20, active_share=1.0, sessions=3.0,
                                        seed=4, concurrency=1, start_s=start)


def test_the_simulated_clock_spreads_each_day_and_stamps_requests_and_events(population):
    import datetime as dt

    api, start, cfg = _clocked(population, days=2)
    try:
        simulator = Simulator(api.url, population, parse_experiments({}), cfg)
        reports = [simulator.run_day(0), simulator.run_day(1)]
    finally:
        api.server.shutdown()
    times = [r["now_s"] for r in api.requests]
    assert len(times) == sum(r.requests for r in reports) > 40
    # each day counts the tiers that answered it
    assert [sum(r.tiers.values()) for r in reports] == [r.requests for r in reports]
    assert sum(r.tiers.get("global-popular", 0) for r in reports) == len(times) // 4
    # day 0's sessions, then day 1's, each within its 24 hours and in the order of its time
    first = reports[0].requests
    assert all(start <= t < start + 86_400 for t in times[:first])
    assert all(start + 86_400 <= t < start + 2 * 86_400 for t in times[first:])
    assert times == sorted(times)
    assert np.ptp(times[:first]) > 12 * 3_600  # spread over the day, not bunched
    # a user's day has as many sessions as on the compressed clock (the same draw)
    compressed = Simulator(api.url, population, parse_experiments({}),
                           SimulationConfig(**{**cfg.__dict__, "start_s": None}))
    user = api.requests[0]["user_id"]
    u = population.user_ids.index(user)
    assert len(compressed._session_times(0, u) or []) == 0
    assert sum(r["user_id"] == user for r in api.requests[:first]) == len(
        simulator._session_times(0, u))
    # every event carries its session's time (impressions at the request's own second)
    shown = {r["now_s"] for r in api.requests}
    impressions = [e for e in api.events if e["event_type"] == "impression"]
    assert len(impressions) == 5 * len(times)
    for e in impressions:
        at = dt.datetime.fromisoformat(e["timestamp"]).timestamp()
        assert min(abs(at - t) for t in shown) < 1e-3


def test_a_simulated_clock_that_would_run_into_the_future_is_refused(population, tmp_path,
                                                                      capsys):
    import datetime as dt
    import time

    with pytest.raises(SimulationError, match="in the future"):
        Simulator("http://127.0.0.1:9", population, parse_experiments({}),
                  SimulationConfig(days=2, start_s=time.time() - 86_400))
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments: []\n")
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date()
    assert main(["simulate", "--api", "http://127.0.0.1:9", "--lake", str(tmp_path),
                 "--experiments", str(path), "--start-date", yesterday.isoformat(),
                 "--days", "3", "--platform-users", "50", "--platform-items", "200"]) == 1
    assert "in the future" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--api", "http://127.0.0.1:9", "--lake", str(tmp_path),
              "--experiments", str(path), "--start-date", "2026-13-01"])
    assert "expected a date like" in capsys.readouterr().err


def test_organic_sessions_find_items_by_the_users_true_tastes(population):
    from scipy.stats import chisquare

    from recsys.data.synthetic.behaviour import TASTE_SHARE

    u, n = 7, 4_000
    categories = SMALL.categories
    for pop in (population, population.shifted(seed=3)):  # the shift moves what they find
        items = pop.browse(u, 0, n, np.random.default_rng(1))
        found = np.bincount([pop.items.category[pop.item_index[i]] for i in items],
                            minlength=categories)
        share = TASTE_SHARE * pop.users.taste[u].astype(float) + (1 - TASTE_SHARE) / categories
        assert chisquare(found, n * share / share.sum()).pvalue > 1e-3
    assert population.browse(u, 0, 20, np.random.default_rng(2)) == population.browse(
        u, 0, 20, np.random.default_rng(2))  # seeded


def test_organic_sessions_send_events_without_a_request_and_no_request(population):
    api, _, base = _clocked(population, days=1)
    try:
        plain = Simulator(api.url, population, parse_experiments({}), base).run_day(0)
        requests_before, events_before = len(api.requests), len(api.events)
        organic = Simulator(api.url, population, parse_experiments({}),
                            SimulationConfig(**{**base.__dict__, "organic_share": 0.5}))
        report = organic.run_day(0)
    finally:
        api.server.shutdown()
    assert plain.organic_sessions == 0 and plain.requests == requests_before
    # the same sessions, about half of them without a request
    assert report.requests + report.organic_sessions == plain.requests
    assert 0.3 < report.organic_sessions / plain.requests < 0.7
    assert len(api.requests) - requests_before == report.requests
    events = api.events[events_before:]
    shown_by_api = [e for e in events if "request_id" in e]
    found = [e for e in events if "request_id" not in e]
    impressions = [e for e in found if e["event_type"] == "impression"]
    assert len(impressions) == 10 * report.organic_sessions  # k items per organic session
    assert {e["item_id"] for e in impressions} - set(population.item_index) == set()
    assert len({e["session_id"] for e in impressions}) == report.organic_sessions
    assert sum(e["event_type"] == "impression" for e in shown_by_api) == 5 * report.requests
    # only what the service showed counts in the truth
    assert organic.shown == 5 * report.requests


def test_an_organic_share_outside_0_and_1_is_refused(tmp_path, capsys):
    with pytest.raises(SimulationError, match="organic_share must be in"):
        SimulationConfig(organic_share=1.5)
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments: []\n")
    with pytest.raises(SystemExit):
        main(["simulate", "--api", "http://127.0.0.1:9", "--lake", str(tmp_path),
              "--experiments", str(path), "--organic-share", "-0.1"])
    assert "expected a number in [0, 1]" in capsys.readouterr().err
