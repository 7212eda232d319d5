"""The feature build on Beam's DaskRunner against a 2-process dask.distributed LocalCluster:
its outputs equal the DirectRunner's, table by table and row by row."""

import datetime as dt
import gzip
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow.parquet as pq
import pytest

from beam_jobs.pipeline import OUTPUT_SCHEMAS, run
from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.errors import PipelineRunError

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as local:
        yield local
        _close_runner_clients()


def _close_runner_clients():
    """The DaskRunner leaves its client open (the process usually ends with the job); close
    it before its cluster goes, or it keeps trying to reconnect."""
    from distributed.client import _global_clients

    for client in list(_global_clients.values()):
        client.close()


@pytest.fixture(scope="module")
def lake_with_bad_rows(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("dask") / "lake", create=True)
    generate(SyntheticConfig(users=80, items=150, days=4, seed=11,
                             end_date=dt.date(2026, 2, 1)), lake, progress=False)
    # a bad row the lake's own checks would refuse, written past them: the dead letters
    # must match too
    events = sorted((lake.root / "events").glob("*/part-*.parquet"))[0]
    table = pq.read_table(events)
    bad = table.slice(0, 2).to_pylist()
    for row in bad:
        row["event_id"] = f"{row['event_id']}-bad"
        row["event_type"] = "teleport"
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(bad, schema=table.schema),
                   events.parent / "part-zz-bad.parquet")
    return lake.root


def _rows(directory) -> list[str]:
    rows = [json.dumps(row, sort_keys=True, default=str)
            for path in sorted(directory.glob("*.parquet"))
            for row in pq.read_table(path).to_pylist()]
    return sorted(rows)


def _lines(directory, pattern) -> list[str]:
    lines = []
    for path in sorted(directory.glob(pattern)):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            lines.extend(f.read().splitlines())
    return sorted(lines)


def _build(lake, out, *runner_args):
    return run(["--lake", str(lake), "--output", str(out), "--split", "temporal",
                "--max_bad_ratio", "0.5", *runner_args])


def test_the_dask_runner_writes_what_the_direct_runner_writes(cluster, lake_with_bad_rows,
                                                               tmp_path):
    direct = _build(lake_with_bad_rows, tmp_path / "direct", "--runner", "DirectRunner")
    dask = _build(lake_with_bad_rows, tmp_path / "dask", "--runner", DASK_RUNNER,
                  "--dask_client_address", cluster.scheduler_address,
                  "--dask_npartitions", "4")

    assert dask.counters == direct.counters
    assert direct.counters["events_bad"] == 2 and direct.counters["events_read"] > 1_000
    for table in OUTPUT_SCHEMAS:
        expected = _rows(tmp_path / "direct" / table)
        assert expected, f"{table}: the DirectRunner wrote no rows"
        assert _rows(tmp_path / "dask" / table) == expected, table
    assert (_lines(tmp_path / "dask" / "_dead_letter", "*.jsonl")
            == _lines(tmp_path / "direct" / "_dead_letter", "*.jsonl"))


def _kill_a_busy_worker(scheduler_address: str, done: threading.Event) -> list[str]:
    """Poll the scheduler; SIGKILL the first worker process seen running a task (the
    LocalCluster's nanny starts a new one). Returns the killed worker's address."""
    from distributed import Client

    killed: list[str] = []
    with Client(scheduler_address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        while not done.is_set() and not killed:
            busy = [worker for worker, tasks in client.processing().items() if tasks]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)
    return killed


def test_a_worker_killed_mid_build_changes_nothing_in_the_outputs(lake_with_bad_rows,
                                                                  tmp_path):
    """Dask reruns the dead worker's tasks; the files they had written are rewritten under
    the same names, so the outputs equal the DirectRunner's."""
    from distributed import LocalCluster

    direct = _build(lake_with_bad_rows, tmp_path / "direct", "--runner", "DirectRunner")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as local:
        done = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            killer = pool.submit(_kill_a_busy_worker, local.scheduler_address, done)
            try:
                dask = _build(lake_with_bad_rows, tmp_path / "dask", "--runner", DASK_RUNNER,
                              "--dask_client_address", local.scheduler_address,
                              "--dask_npartitions", "4")
            finally:
                done.set()
            assert killer.result(), "no worker was busy long enough to be killed"
        _close_runner_clients()

    assert dask.counters == direct.counters
    for table in OUTPUT_SCHEMAS:
        assert _rows(tmp_path / "dask" / table) == _rows(tmp_path / "direct" / table), table


def test_an_unreachable_cluster_fails_clearly_and_keeps_the_previous_outputs(
        lake_with_bad_rows, tmp_path):
    import dask
    from distributed.client import _global_clients

    out = tmp_path / "out"
    _build(lake_with_bad_rows, out, "--runner", "DirectRunner")
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    clients = set(_global_clients)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(PipelineRunError) as failed:
            _build(lake_with_bad_rows, out, "--runner", DASK_RUNNER,
                   "--dask_client_address", address)
    assert set(_global_clients) == clients
    message = str(failed.value)
    assert DASK_RUNNER in message and "left unchanged" in message and str(out) in message
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".out.staging-*"))
