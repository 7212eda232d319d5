"""The benchmarks' own flags refuse bad values, naming the flag and the value."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    (["--sections", "workers,bogus"], "--sections: sections must be among"),
    (["--sections", ","], "--sections: sections must be among"),
    (["--worker-processes", "0"], "--worker-processes: expected positive integers"),
    (["--worker-processes", "two"], "--worker-processes: expected positive integers"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer"),
])
def test_stream_ingestion_refuses_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _module("stream_ingestion").main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_stream_ingestion_takes_a_subset_of_sections():
    module = _module("stream_ingestion")
    assert module._sections("workers") == ["workers"]
    assert module._levels("1,2,4") == [1, 2, 4]
