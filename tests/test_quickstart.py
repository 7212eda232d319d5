"""`recsys quickstart`: from an imported clickstream lake to answers of the served API, as a
user runs it (subprocesses, the real CLI), and the sizes it picks from the data."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workflows.quickstart import choose_sizes

ROOT = Path(__file__).resolve().parents[1]


def test_sizes_follow_the_data():
    small = choose_sizes(events=5_000, users=100, items=300, p90_events_per_user=120)
    assert (small.history_length, small.epochs, small.batch_size) == (50, 8, 256)
    assert small.ranker_candidates == 15
    large = choose_sizes(events=3_000_000, users=200_000, items=1_000_000,
                         p90_events_per_user=3.2)
    assert (large.history_length, large.epochs, large.batch_size) == (5, 1, 1024)
    assert large.ranker_candidates == 50
    given = choose_sizes(events=5_000, users=100, items=300, p90_events_per_user=12,
                         epochs=3, ranker_epochs=4)
    assert (given.history_length, given.epochs, given.ranker_epochs) == (12, 3, 4)


def test_the_query_line_quotes_any_id_for_the_shell():
    from workflows.quickstart import query_line

    line = query_line("http://127.0.0.1:8000", "x'; touch /tmp/pwned; '")
    assert subprocess.run(["sh", "-c", f"printf %s {line.split(' -d ', 1)[1]}"],
                          capture_output=True, text=True).stdout == (
        '{"user_id": "x\'; touch /tmp/pwned; \'", "k": 10}')


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recsys(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workflows.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False, **kwargs)


def test_a_lake_that_is_not_one_or_too_small_is_refused(tmp_path):
    done = _recsys("quickstart", "--lake", str(tmp_path / "nothing"), "--workdir",
                   str(tmp_path / "w"))
    assert done.returncode == 1 and "is not a recsys lake" in done.stderr
    from recsys.data.lake import Lake

    Lake(tmp_path / "empty", create=True)
    done = _recsys("quickstart", "--lake", str(tmp_path / "empty"), "--workdir",
                   str(tmp_path / "w"))
    assert done.returncode == 1 and "the quickstart needs at least 100" in done.stderr


@pytest.mark.slow
def test_from_raw_clickstream_files_to_served_recommendations(tmp_path):
    import requests

    made = subprocess.run([sys.executable, str(ROOT / "examples/clickstream/make_clickstream.py"),
                           "--out", str(tmp_path / "raw"), "--events", "20000", "--visitors",
                           "400", "--items", "600", "--days", "20"], check=True,
                          capture_output=True, text=True)
    assert "20,000 events" in made.stdout
    imported = _recsys("data", "import", "--events", str(tmp_path / "raw/events.csv"),
                       "--items", str(tmp_path / "raw/items.csv"), "--out",
                       str(tmp_path / "lake"), "--mapping",
                       str(ROOT / "examples/clickstream/mapping.yaml"), "--no-progress")
    assert imported.returncode == 0, imported.stderr
    assert "rejected 20" in imported.stdout
    port = _port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "workflows.cli.main", "quickstart", "--lake",
         str(tmp_path / "lake"), "--workdir", str(tmp_path / "work"), "--epochs", "1",
         "--ranker-epochs", "1", "--port", str(port), "--positive_min_dwell_s", "0"],
        cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if line.startswith("query it: "):
                break
        assert lines and lines[-1].startswith("query it: "), "".join(lines[-40:])
        assert f"http://127.0.0.1:{port}/v1/recommendations" in lines[-1]
        user = json.loads(shlex.split(lines[-1])[-1])["user_id"]
        body = requests.post(f"http://127.0.0.1:{port}/v1/recommendations",
                             json={"user_id": user, "k": 10}, timeout=30).json()
        assert len(body["items"]) == 10
        assert body["tier"] in ("full", "retrieval")
        event = {"event_id": "quickstart-test-1", "user_id": user,
                 "item_id": body["items"][0]["item_id"], "event_type": "click"}
        accepted = requests.post(f"http://127.0.0.1:{port}/v1/events", json=event,
                                 timeout=30).json()
        assert accepted["results"][0]["status"] == "accepted", accepted
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, "".join(lines[-40:])
    leftover = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True)
    assert not leftover.stdout.strip(), "the API or the worker outlived the quickstart"


@pytest.mark.parametrize("flags,message", [
    (["--port", "0"], "argument --port: expected a positive integer, got '0'"),
    (["--epochs", "-1"], "argument --epochs: expected a positive integer, got '-1'"),
    (["--ranker-epochs", "x"], "argument --ranker-epochs: expected a positive integer, got 'x'"),
])
def test_bad_quickstart_flags_exit_2_naming_them(tmp_path, capsys, flags, message):
    from workflows.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["quickstart", "--lake", str(tmp_path), *flags])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
