"""`recsys stream-worker`: bad flags, and a real worker process applying the stream."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stream_support import events, stream_setup

from recsys.stream.producer import StreamProducer
from workflows.cli.main import main

RECSYS = str(Path(sys.executable).with_name("recsys"))


def test_bad_values_exit_1_naming_them(tmp_path, capsys):
    assert main(["stream-worker", "--repo", str(tmp_path)]) == 1
    assert f"--repo {tmp_path} has no feature_store.yaml" in capsys.readouterr().err
    repo = Path(__file__).parents[1] / "feature_repo"
    assert main(["stream-worker", "--repo", str(repo), "--lake", str(tmp_path)]) == 1
    assert f"--lake {tmp_path} is not a recsys lake" in capsys.readouterr().err
    assert main(["stream-worker", "--repo", str(repo), "--redis-url", "http://x"]) == 1
    assert ("redis_url must start with redis://, rediss:// or unix://, got 'http://x'"
            in capsys.readouterr().err)


@pytest.mark.slow
def test_a_worker_process_applies_the_stream_and_stops_on_sigint(tmp_path):
    setup = stream_setup(tmp_path)
    try:
        records = events(30, users=3, items=20)
        StreamProducer(setup.client, setup.cfg).submit("event", records)
        socket = setup.client.connection_pool.connection_kwargs["path"]
        worker = subprocess.Popen(
            [RECSYS, "stream-worker", "--repo", str(setup.repo), "--lake", str(setup.lake),
             "--consumer", "cli", "--redis-url", f"unix://{socket}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while len(setup.lake_event_ids()) < 30 and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker did not apply the stream"
            time.sleep(0.2)
        worker.send_signal(signal.SIGINT)
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out[-3000:]
        assert "cli: 30 applied" in out and "0 dead-lettered" in out
        assert sorted(setup.lake_event_ids()) == sorted(r["event_id"] for r in records)
        assert setup.sessions(["u0"])["session_length"] == [10]
    finally:
        setup.close()


@pytest.mark.slow
def test_sigterm_to_a_multi_process_worker_stops_every_child(tmp_path):
    import psutil
    import redis

    setup = stream_setup(tmp_path)
    try:
        socket = setup.client.connection_pool.connection_kwargs["path"]
        worker = subprocess.Popen(
            [RECSYS, "stream-worker", "--repo", str(setup.repo), "--lake", str(setup.lake),
             "--consumer", "many", "--redis-url", f"unix://{socket}", "--processes", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        consumers: set[str] = set()
        while consumers != {"many-1", "many-2"}:  # both children read in the group
            assert worker.poll() is None and time.monotonic() < deadline, "no children"
            time.sleep(0.5)
            try:
                consumers = {c["name"].decode() for c in setup.client.xinfo_consumers(
                    setup.cfg.stream, setup.cfg.group)}
            except redis.ResponseError:  # no stream or group yet
                continue
        children = psutil.Process(worker.pid).children()
        assert len(children) >= 2
        worker.terminate()
        out, _ = worker.communicate(timeout=90)
        assert worker.returncode == 0, out[-3000:]
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"children left running: {[p.pid for p in alive]}"
        assert "many-1: 0 applied" in out and "many-2: 0 applied" in out
    finally:
        setup.close()
