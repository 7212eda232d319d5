"""`recsys api --workers 2` as a user runs it: two service processes on one port, each with
the real models and Feast store; /metrics on either reports the sum over both; SIGTERM stops
the service and its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from serving_support import free_port

ROOT = Path(__file__).resolve().parents[1]


def _requests_served(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text)
               if family.name == "recsys_requests" for s in family.samples
               if s.name == "recsys_requests_total"
               and s.labels["endpoint"] == "recommendations")


@pytest.fixture
def two_workers(service_files, tmp_path):
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({  # generous budgets: this test is about processes
        "repo": str(service_files.repo), "model_base_path": str(service_files.base),
        "request_deadline_ms": 10_000, "features_timeout_ms": 3_000,
        "retrieval_timeout_ms": 3_000, "ranking_timeout_ms": 3_000}))
    port = free_port()
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "workflows.cli.main", "api", "--config", str(config),
         "--workers", "2", "--port", str(port), "--redis-url", "redis://127.0.0.1:1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url, pids, deadline = f"http://127.0.0.1:{port}", set(), time.monotonic() + 240
    try:
        while len(pids) < 2:  # a new connection each time: the kernel spreads them
            assert process.poll() is None, (tmp_path / "api.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()[-3000:]
            try:
                pids.add(requests.get(f"{url}/readyz", timeout=2).json()["pid"])
            except requests.RequestException:
                time.sleep(0.5)
        yield url, process, pids
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        log.close()


def test_two_workers_answer_on_one_port_and_report_summed_metrics(two_workers, small_data):
    url, process, _ = two_workers
    user = small_data.train["user_id"].value_counts().index[0]
    before = _requests_served(url)
    for _ in range(12):  # new connections: both workers answer some
        answer = requests.post(f"{url}/v1/recommendations", json={"user_id": user, "k": 5},
                               timeout=30)
        assert answer.status_code == 200 and answer.json()["tier"] == "full"
    # whichever worker answers /metrics, it counts both workers' requests
    assert [_requests_served(url) - before for _ in range(4)] == [12.0] * 4
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/healthz", timeout=5)


def _ready_pids(url: str, want: int, deadline: float) -> set[int]:
    pids: set[int] = set()
    while len(pids) < want and time.monotonic() < deadline:
        try:
            pids.add(requests.get(f"{url}/readyz", timeout=2).json()["pid"])
        except requests.RequestException:
            time.sleep(0.2)
    return pids


def test_a_killed_worker_is_replaced_and_only_a_request_in_flight_can_fail(two_workers,
                                                                            small_data):
    """Requests one at a time, each on a new connection, while one worker is SIGKILLed: at
    most the one request in flight at that moment fails; the others are answered by the
    other worker until the supervisor's replacement is up, and then by both."""
    url, process, pids = two_workers
    user = small_data.train["user_id"].value_counts().index[0]
    # a worker that dies within 30 s of its start stops the service (a start-up failure);
    # this test is about one that dies later
    victim = sorted(pids)[0]
    time.sleep(max(0.0, 31.0 - (time.time() - psutil.Process(victim).create_time())))
    results: list[str] = []
    failures: list[str] = []  # what failed, when (s from the kill) and after how long
    stop = threading.Event()
    killed_at = [float("inf")]

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = requests.post(f"{url}/v1/recommendations",
                                       json={"user_id": user, "k": 5}, timeout=30)
                outcome, detail = str(answer.status_code), answer.text[:200]
            except requests.RequestException as exc:
                outcome, detail = type(exc).__name__, str(exc)
            results.append("ok" if outcome == "200" else outcome)
            if outcome != "200":
                failures.append(f"{outcome} started {started - killed_at[0]:+.3f}s from the "
                                f"kill, after {time.monotonic() - started:.3f}s: {detail}")

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1.0)
        served_before_kill = len(results)
        killed_at[0] = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replacement = set()
        deadline = time.monotonic() + 240
        while not replacement and time.monotonic() < deadline:
            replacement = _ready_pids(url, 2, time.monotonic() + 2) - pids
        assert replacement, "no replacement worker answered within 240 s"
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(60)
    failed = [r for r in results if r != "ok"]
    assert served_before_kill > 0 and len(results) > served_before_kill + 10, results
    assert len(failed) <= 1, failures
    assert process.poll() is None
    assert len(_ready_pids(url, 2, time.monotonic() + 60) - {victim}) == 2
